//! A predicted-versus-true scatter plot as a self-contained SVG.

use std::fmt::Write;

/// Series of (truth, prediction) points with a label and colour.
pub struct Series<'a> {
    pub label: String,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
}

pub fn scatter(title: &str, series: &[Series]) -> String {
    let (w, h, m) = (560.0, 520.0, 60.0);
    let all: Vec<f64> = series.iter().flat_map(|s| s.points.iter().flat_map(|p| [p.0, p.1])).collect();
    let lo = all.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = all.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let pad = (hi - lo).max(1e-9) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let sx = |v: f64| m + (v - lo) / (hi - lo) * (w - 2.0 * m);
    let sy = |v: f64| h - m - (v - lo) / (hi - lo) * (h - 2.0 * m);
    let mut s = String::new();
    writeln!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#).unwrap();
    writeln!(s, r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="24" text-anchor="middle" font-size="14">{title}</text>"#, w / 2.0).unwrap();
    writeln!(s, r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4"/>"##, sx(lo), sy(lo), sx(hi), sy(hi)).unwrap();
    writeln!(s, r#"<rect x="{m}" y="{m}" width="{}" height="{}" fill="none" stroke="black"/>"#, w - 2.0 * m, h - 2.0 * m).unwrap();
    for i in 0..=4 {
        let v = lo + (hi - lo) * i as f64 / 4.0;
        writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">{v:.3}</text>"#, sx(v), h - m + 16.0).unwrap();
        writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{v:.3}</text>"#, m - 4.0, sy(v) + 4.0).unwrap();
    }
    writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">true</text>"#, w / 2.0, h - 16.0).unwrap();
    writeln!(s, r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">predicted</text>"#, h / 2.0, h / 2.0).unwrap();
    for (k, se) in series.iter().enumerate() {
        for (t, p) in &se.points {
            writeln!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}" fill-opacity="0.6"/>"#, sx(*t), sy(*p), se.color).unwrap();
        }
        writeln!(s, r#"<circle cx="{}" cy="{}" r="4" fill="{}"/><text x="{}" y="{}">{}</text>"#, m + 12.0, m + 16.0 + 16.0 * k as f64, se.color, m + 22.0, m + 20.0 + 16.0 * k as f64, se.label).unwrap();
    }
    s.push_str("</svg>\n");
    s
}
