//! Every chart regmix draws (fit's scatter, optimize's bars, the report's figures) as a
//! self-contained SVG string: no scripts, no external fonts, one palette.

use std::fmt::Write;

/// The series colours, in order (matplotlib's tab10 less its grey and olive).
pub const PALETTE: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
/// The main series (the optimum, the proxies' dots): the palette's first colour.
pub const MAIN: &str = PALETTE[0];
/// The reference a series is compared with (the prior).
pub const REFERENCE: &str = "#aaa";
/// The fill of a box around the main series' dots.
pub const BOX_FILL: &str = "#dde8f3";

/// The colour of series `k`.
pub fn color(k: usize) -> &'static str {
    PALETTE[k % PALETTE.len()]
}

/// Text safe inside SVG/HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The q-quantile of sorted values (linear interpolation).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let p = q * (sorted.len() - 1) as f64;
    let (i, f) = (p.floor() as usize, p - p.floor());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - f) + sorted[i + 1] * f
    } else {
        sorted[i]
    }
}

/// The series' legend along the top, from `left`: a dot of each series' colour and its name.
fn legend(s: &mut String, series: &[String], left: f64) {
    for (k, name) in series.iter().enumerate() {
        let x = left + 110.0 * k as f64;
        writeln!(
            s,
            r#"<circle cx="{x}" cy="14" r="5" fill="{}"/><text x="{}" y="18">{}</text>"#,
            color(k),
            x + 8.0,
            esc(name)
        )
        .unwrap();
    }
}

fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    (0..=4).map(|i| lo + (hi - lo) * i as f64 / 4.0).collect()
}

/// One row per domain: the weights it got across the sampled mixtures as dots (spread
/// vertically by a fixed pattern so they do not hide each other), with a box from the first
/// to the third quartile and the median marked.
pub fn strips(domains: &[String], weights: &[Vec<f64>]) -> String {
    let (left, width, row) = (150.0, 460.0, 30.0);
    let h = 70.0 + row * domains.len() as f64;
    let max = weights.iter().flatten().cloned().fold(0.0, f64::max).max(1e-9);
    let sx = |v: f64| left + v / max * width;
    let mut s = String::new();
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{h}" font-family="sans-serif" font-size="12">"#,
        left + width + 30.0
    )
    .unwrap();
    writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#).unwrap();
    for (i, (d, w)) in domains.iter().zip(weights).enumerate() {
        let y = 20.0 + row * i as f64;
        let mut sorted = w.clone();
        sorted.sort_by(f64::total_cmp);
        writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, left - 6.0, y + 15.0, esc(d)).unwrap();
        let (q1, med, q3) = (quantile(&sorted, 0.25), quantile(&sorted, 0.5), quantile(&sorted, 0.75));
        writeln!(
            s,
            r##"<rect x="{:.1}" y="{}" width="{:.1}" height="20" fill="{BOX_FILL}" stroke="{MAIN}"/>"##,
            sx(q1),
            y,
            (sx(q3) - sx(q1)).max(1.0)
        )
        .unwrap();
        writeln!(
            s,
            r#"<line x1="{:.1}" y1="{}" x2="{:.1}" y2="{}" stroke="black" stroke-width="2"/>"#,
            sx(med),
            y,
            sx(med),
            y + 20.0
        )
        .unwrap();
        for (k, v) in w.iter().enumerate() {
            let jitter = ((k * 37) % 17) as f64 / 17.0 * 16.0 + 2.0;
            writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="1.8" fill="{MAIN}" fill-opacity="0.5"/>"##,
                sx(*v),
                y + jitter
            )
            .unwrap();
        }
    }
    let base = 25.0 + row * domains.len() as f64;
    writeln!(s, r#"<line x1="{left}" y1="{base}" x2="{}" y2="{base}" stroke="black"/>"#, left + width).unwrap();
    for t in ticks(0.0, max) {
        writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{t:.2}</text>"#, sx(t), base + 16.0).unwrap();
    }
    writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">weight</text>"#, left + width / 2.0, base + 36.0).unwrap();
    s.push_str("</svg>\n");
    s
}

/// Small multiples: one scatter of y against each domain's weight, titled with ρ.
pub fn small_multiples(domains: &[String], x: &[Vec<f64>], y: &[f64], rho: &[f64], y_label: &str) -> String {
    let (cw, ch, cols) = (230.0, 190.0, 4usize);
    let rows = domains.len().div_ceil(cols);
    let (ylo, yhi) = y.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let pad = (yhi - ylo).max(1e-9) * 0.05;
    let (ylo, yhi) = (ylo - pad, yhi + pad);
    let mut s = String::new();
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        cw * cols as f64,
        ch * rows as f64 + 20.0
    )
    .unwrap();
    writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#).unwrap();
    for (i, d) in domains.iter().enumerate() {
        let (ox, oy) = (cw * (i % cols) as f64, ch * (i / cols) as f64);
        let (l, t, w, h) = (ox + 44.0, oy + 22.0, cw - 56.0, ch - 52.0);
        let xmax = x[i].iter().cloned().fold(0.0, f64::max).max(1e-9);
        let sx = |v: f64| l + v / xmax * w;
        let sy = |v: f64| t + h - (v - ylo) / (yhi - ylo) * h;
        writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="12">{} (ρ = {:+.2})</text>"#,
            l + w / 2.0,
            oy + 14.0,
            esc(d),
            rho[i]
        )
        .unwrap();
        writeln!(s, r##"<rect x="{l}" y="{t}" width="{w}" height="{h}" fill="none" stroke="#888"/>"##).unwrap();
        for (xv, yv) in x[i].iter().zip(y) {
            writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{MAIN}" fill-opacity="0.55"/>"##,
                sx(*xv),
                sy(*yv)
            )
            .unwrap();
        }
        writeln!(
            s,
            r#"<text x="{l}" y="{}">0</text><text x="{}" y="{}" text-anchor="end">{xmax:.2}</text>"#,
            t + h + 13.0,
            l + w,
            t + h + 13.0
        )
        .unwrap();
        writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{:.2}</text><text x="{}" y="{}" text-anchor="end">{:.2}</text>"#,
            l - 3.0,
            t + 8.0,
            yhi,
            l - 3.0,
            t + h,
            ylo
        )
        .unwrap();
    }
    writeln!(s, r#"<text x="8" y="{}">x: the domain's weight; y: {}</text>"#, ch * rows as f64 + 12.0, esc(y_label))
        .unwrap();
    s.push_str("</svg>\n");
    s
}

/// A dot plot: one row per evaluation domain (and the mean), one coloured dot per target
/// model, x = validation loss. Dots, not bars: the differences are small against the loss
/// itself, and a bar would have to start at an arbitrary baseline.
pub fn dot_plot(rows: &[String], series: &[String], values: &[Vec<f64>]) -> String {
    let (left, width, row) = (150.0, 460.0, 24.0);
    let h = 80.0 + row * rows.len() as f64;
    let all: Vec<f64> = values.iter().flatten().cloned().filter(|v| v.is_finite()).collect();
    let (lo, hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let pad = (hi - lo).max(1e-9) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let sx = |v: f64| left + (v - lo) / (hi - lo) * width;
    let mut s = String::new();
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{h}" font-family="sans-serif" font-size="12">"#,
        left + width + 30.0
    )
    .unwrap();
    writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#).unwrap();
    legend(&mut s, series, left);
    for (i, r) in rows.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, left - 6.0, y + 4.0, esc(r)).unwrap();
        writeln!(s, r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/>"##, left + width).unwrap();
        for (k, v) in values.iter().enumerate() {
            if v[i].is_finite() {
                writeln!(s, r#"<circle cx="{:.1}" cy="{y}" r="5" fill="{}" fill-opacity="0.85"/>"#, sx(v[i]), color(k))
                    .unwrap();
            }
        }
    }
    let base = 30.0 + row * rows.len() as f64;
    writeln!(s, r#"<line x1="{left}" y1="{base}" x2="{}" y2="{base}" stroke="black"/>"#, left + width).unwrap();
    for t in ticks(lo, hi) {
        writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{t:.3}</text>"#, sx(t), base + 16.0).unwrap();
    }
    writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">validation loss (lower is better)</text>"#,
        left + width / 2.0,
        base + 36.0
    )
    .unwrap();
    s.push_str("</svg>\n");
    s
}

/// One line per series of (x, y) points, with a dot at each point and a legend: the target
/// models' validation loss over training tokens, where crossing lines are a change of ranking.
pub fn curves(series: &[String], points: &[Vec<(f64, f64)>], x_label: &str, y_label: &str) -> String {
    let (left, top, width, height) = (70.0, 40.0, 500.0, 280.0);
    let all: Vec<(f64, f64)> =
        points.iter().flatten().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let (x0, x1) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (x0, x1) = if all.is_empty() { (0.0, 1.0) } else { (x0.min(0.0), x1.max(x0 + 1e-9)) };
    let pad = if all.is_empty() { 1.0 } else { (y1 - y0).max(1e-9) * 0.05 };
    let (y0, y1) = if all.is_empty() { (0.0, 1.0) } else { (y0 - pad, y1 + pad) };
    let sx = |v: f64| left + (v - x0) / (x1 - x0) * width;
    let sy = |v: f64| top + (y1 - v) / (y1 - y0) * height;
    let mut s = String::new();
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">"#,
        left + width + 30.0,
        top + height + 50.0
    )
    .unwrap();
    writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#).unwrap();
    legend(&mut s, series, left);
    writeln!(
        s,
        r#"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        top + height,
        left + width,
        top + height
    )
    .unwrap();
    writeln!(s, r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/>"#, top + height).unwrap();
    for t in ticks(x0, x1) {
        writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#, sx(t), top + height + 16.0, human(t))
            .unwrap();
    }
    for t in ticks(y0, y1) {
        writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{t:.3}</text>"#, left - 6.0, sy(t) + 4.0).unwrap();
    }
    writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        left + width / 2.0,
        top + height + 38.0,
        esc(x_label)
    )
    .unwrap();
    writeln!(
        s,
        r#"<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        top + height / 2.0,
        top + height / 2.0,
        esc(y_label)
    )
    .unwrap();
    for (k, pts) in points.iter().enumerate() {
        let c = color(k);
        let xy: Vec<(f64, f64)> =
            pts.iter().filter(|p| p.0.is_finite() && p.1.is_finite()).map(|p| (sx(p.0), sy(p.1))).collect();
        let path: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        writeln!(s, r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#, path.join(" ")).unwrap();
        for (x, y) in &xy {
            writeln!(s, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{c}"/>"#).unwrap();
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Series of (truth, prediction) points with a label; series k is drawn in [`color`]`(k)`.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Predicted against true: one colour per series, the diagonal dashed, labels escaped.
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
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    )
    .unwrap();
    writeln!(s, r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="24" text-anchor="middle" font-size="14">{}</text>"#, w / 2.0, esc(title)).unwrap();
    writeln!(
        s,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4"/>"##,
        sx(lo),
        sy(lo),
        sx(hi),
        sy(hi)
    )
    .unwrap();
    writeln!(
        s,
        r#"<rect x="{m}" y="{m}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        w - 2.0 * m,
        h - 2.0 * m
    )
    .unwrap();
    for i in 0..=4 {
        let v = lo + (hi - lo) * i as f64 / 4.0;
        writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">{v:.3}</text>"#, sx(v), h - m + 16.0).unwrap();
        writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{v:.3}</text>"#, m - 4.0, sy(v) + 4.0).unwrap();
    }
    writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">true</text>"#, w / 2.0, h - 16.0).unwrap();
    writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">predicted</text>"#,
        h / 2.0,
        h / 2.0
    )
    .unwrap();
    for (k, se) in series.iter().enumerate() {
        for (t, p) in &se.points {
            writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}" fill-opacity="0.6"/>"#,
                sx(*t),
                sy(*p),
                color(k)
            )
            .unwrap();
        }
        writeln!(
            s,
            r#"<circle cx="{}" cy="{}" r="4" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            m + 12.0,
            m + 16.0 + 16.0 * k as f64,
            color(k),
            m + 22.0,
            m + 20.0 + 16.0 * k as f64,
            esc(&se.label)
        )
        .unwrap();
    }
    s.push_str("</svg>\n");
    s
}

/// Horizontal bars: the optimum (with bootstrap error bars) beside the prior.
pub fn bar_chart(doms: &[String], w: &[f64], sd: Option<&[f64]>, prior: &[f64]) -> String {
    let (left, width, row) = (160.0, 420.0, 26.0);
    let h = 60.0 + row * doms.len() as f64;
    let max = w.iter().chain(prior).cloned().fold(0.0, f64::max).max(1e-9) * 1.1;
    let sx = |v: f64| left + v / max * width;
    let mut s = String::new();
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{h}" font-family="sans-serif" font-size="12">"#,
        left + width + 40.0
    )
    .unwrap();
    writeln!(s, r##"<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="14">Optimum (blue) and token-share prior (grey)</text>"##).unwrap();
    for (i, d) in doms.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, left - 6.0, y + 14.0, esc(d)).unwrap();
        writeln!(s, r#"<rect x="{left}" y="{y}" width="{:.1}" height="10" fill="{MAIN}"/>"#, sx(w[i]) - left).unwrap();
        writeln!(
            s,
            r#"<rect x="{left}" y="{}" width="{:.1}" height="8" fill="{REFERENCE}"/>"#,
            y + 11.0,
            sx(prior[i]) - left
        )
        .unwrap();
        if let Some(sd) = sd {
            writeln!(
                s,
                r#"<line x1="{:.1}" y1="{}" x2="{:.1}" y2="{}" stroke="black"/>"#,
                sx((w[i] - sd[i]).max(0.0)),
                y + 5.0,
                sx(w[i] + sd[i]),
                y + 5.0
            )
            .unwrap();
        }
        writeln!(s, r#"<text x="{:.1}" y="{}">{:.3}</text>"#, sx(w[i].max(prior[i])) + 4.0, y + 10.0, w[i]).unwrap();
    }
    s.push_str("</svg>\n");
    s
}

/// 4194304 → "4.19M", 524288 → "524k": axis labels for token counts.
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.3}B", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_are_labelled_in_k_m_and_b() {
        assert_eq!(human(524_288.0), "524k");
        assert_eq!(human(4_194_304.0), "4.19M");
        assert_eq!(human(25e9), "25.000B");
        assert_eq!(human(0.0), "0");
    }

    #[test]
    fn each_curve_is_a_line_with_a_dot_per_point() {
        let svg = curves(
            &["a".into(), "b<".into()],
            &[vec![(0.0, 2.0), (10.0, 1.0)], vec![(0.0, 2.5), (10.0, f64::NAN)]],
            "tokens",
            "loss",
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("r=\"3\"").count(), 3, "the NaN point is left out");
        assert!(svg.contains("b&lt;") && !svg.contains("NaN"));
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert!((quantile(&v, 0.5) - 2.5).abs() < 1e-12);
    }

    #[test]
    fn the_scatter_draws_each_series_in_its_palette_colour() {
        let s = scatter(
            "t",
            &[
                Series { label: "oof".into(), points: vec![(1.0, 1.1)] },
                Series { label: "test".into(), points: vec![(2.0, 1.9)] },
            ],
        );
        assert!(
            s.contains(&format!(r#"r="2.5" fill="{}""#, PALETTE[0]))
                && s.contains(&format!(r#"r="2.5" fill="{}""#, PALETTE[1]))
        );
    }

    #[test]
    fn the_bar_chart_draws_the_optimum_in_the_main_colour_and_the_prior_in_the_reference() {
        let s = bar_chart(&["a".into()], &[0.6], Some(&[0.1]), &[0.4]);
        assert!(s.contains(&format!(r#"fill="{MAIN}""#)) && s.contains(&format!(r#"fill="{REFERENCE}""#)));
        assert_eq!(s.matches("<line").count(), 1, "one error bar");
    }

    #[test]
    fn labels_are_escaped() {
        let s = strips(&["a<b>&\"c\"".into()], &[vec![0.5]]);
        assert!(s.contains("a&lt;b&gt;&amp;&quot;c&quot;") && !s.contains("a<b>"));
    }
}
