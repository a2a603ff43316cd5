//! `report`: one self-contained HTML page from the outputs of the stages — the recommended
//! mixture and how sure we are, then the evidence, figure by figure, each with the table
//! behind it, and the provenance of every file read.
//!
//! Every input is optional (a section is left out when its file is not given), so the report
//! can be drawn at any point of the pipeline. The page has no external resources; a small
//! inline script records, after layout, the size and number of marks of every figure in
//! `#render-check`, which the render test reads back from headless Chromium.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use regmix_core::columns::{VALID_LOSS, WEIGHT};
use regmix_core::run::RunDir;
use regmix_core::schema::Schema;
use regmix_core::table::{read_parquet, Table};
use regmix_core::{atomic, Provenance};
use regmix_mixture::{Gain, Optimum};
use regmix_plot::{self as svg, esc};
use regmix_regress::metrics::{pearson, spearman};
use regmix_regress::target::Target;
use regmix_regress::{Model, SavedFit};

/// Draw one HTML report (inline SVG, no network) from the outputs of the stages.
///
/// Sections: the recommended mixture beside the prior (with bootstrap spread), the sampled
/// mixtures, each domain's weight against the target across the proxies, predicted versus
/// true loss, the target models' comparison, and the provenance of every input. Give the
/// files you have; a section whose input is missing is left out.
#[derive(Parser, Debug, Clone)]
#[command(name = "report", version, term_width = regmix_core::cli::HELP_WIDTH)]
pub struct Args {
    /// The HTML file to write.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// mixtures.parquet from sample-mixtures.
    #[arg(long, value_name = "FILE")]
    pub mixtures: Option<PathBuf>,
    /// dataset.parquet from collect.
    #[arg(long, value_name = "FILE")]
    pub dataset: Option<PathBuf>,
    /// The folder written by fit.
    #[arg(long, value_name = "DIR")]
    pub fit: Option<PathBuf>,
    /// The folder written by optimize.
    #[arg(long, value_name = "DIR")]
    pub optimum: Option<PathBuf>,
    /// comparison.parquet from target-train.
    #[arg(long, value_name = "FILE")]
    pub comparison: Option<PathBuf>,
    /// The page's title.
    #[arg(long, default_value = "RegMix report")]
    pub title: String,
}

/// The page being built: sections in order, and the files they read.
struct Page {
    body: String,
    files: Vec<Table>,
}

impl Page {
    fn read(&mut self, path: &Path, schema: &str) -> Result<Table> {
        let t =
            read_parquet(path, Schema::get(schema)).with_context(|| format!("report: reading {}", path.display()))?;
        self.files.push(t.clone());
        Ok(t)
    }

    fn section(&mut self, id: &str, title: &str, intro: &str) {
        write!(self.body, "<section id=\"{id}\"><h2>{}</h2><p>{intro}</p>", esc(title)).unwrap();
    }

    fn figure(&mut self, name: &str, svg: &str, caption: &str) {
        write!(self.body, "<figure data-figure=\"{name}\">{svg}<figcaption>{caption}</figcaption></figure>").unwrap();
    }

    /// A table, folded under the figure it stands behind.
    fn table(&mut self, summary: &str, head: &[&str], rows: &[Vec<String>]) {
        write!(self.body, "<details><summary>{}</summary><table><tr>", esc(summary)).unwrap();
        for h in head {
            write!(self.body, "<th>{}</th>", esc(h)).unwrap();
        }
        self.body.push_str("</tr>");
        for r in rows {
            self.body.push_str("<tr>");
            for c in r {
                write!(self.body, "<td>{}</td>", esc(c)).unwrap();
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</table></details></section>");
    }
}

fn f4(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "—".into()
    }
}

/// Each domain's weights in a table with `weight.{domain}` columns.
fn weights(t: &Table) -> Result<(Vec<String>, Vec<Vec<f64>>)> {
    let doms = t.list("domain")?.to_vec();
    let w = t.wide_f64(WEIGHT, &doms)?;
    Ok((doms, w))
}

/// What the page says of the gain the regression predicts over the prior.
pub fn verdict(gain: &Gain) -> &'static str {
    if gain.is_clear() {
        "The proxies support this gain at their own scale: it is over two bootstrap standard deviations and every refit predicts it. \
         Whether it carries over to a target trained on many more tokens is what the target comparison tests."
    } else if gain.std.is_some() {
        "<b>The proxies do not clearly support this gain</b> (under two bootstrap standard deviations, or not predicted by every refit): \
         the optimum and the prior are not told apart; more or longer proxy runs would."
    } else {
        ""
    }
}

pub fn run(args: &Args) -> Result<()> {
    if args.mixtures.is_none()
        && args.dataset.is_none()
        && args.fit.is_none()
        && args.optimum.is_none()
        && args.comparison.is_none()
    {
        bail!("nothing to report: give at least one of --mixtures, --dataset, --fit, --optimum, --comparison");
    }
    let _lock = regmix_core::lock::Lock::output(&args.output, &args.output.display().to_string())?;
    let mut page = Page { body: String::new(), files: Vec::new() };
    let saved = match &args.fit {
        Some(dir) => Some(SavedFit::load(dir)?),
        None => None,
    };
    let mut figures = Vec::new();

    if let Some(dir) = &args.optimum {
        optimum_section(&mut page, &dir.join("optimum.parquet"), saved.as_ref())?;
        figures.push("optimum");
    }
    if let Some(p) = &args.comparison {
        let names = comparison_section(&mut page, p)?;
        figures.push("comparison");
        if curves_section(&mut page, p, &names)? {
            figures.push("target-curves");
        }
    }
    if let Some(p) = &args.mixtures {
        let t = page.read(p, "mixtures")?;
        let (doms, w) = weights(&t)?;
        page.section(
            "mixtures",
            "The sampled proxy mixtures",
            &format!("{} mixtures over {} domains: where each domain's weight fell.", t.rows(), doms.len()),
        );
        page.figure("mixtures", &svg::strips(&doms, &w), "Each domain's weight across the sampled mixtures: dots, the box from the first to the third quartile, the median.");
        let rows: Vec<Vec<String>> = doms
            .iter()
            .zip(&w)
            .map(|(d, v)| {
                let mut s = v.clone();
                s.sort_by(f64::total_cmp);
                let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
                let zeros = v.iter().filter(|x| **x == 0.0).count();
                vec![
                    d.clone(),
                    f4(s[0]),
                    f4(svg::quantile(&s, 0.25)),
                    f4(svg::quantile(&s, 0.5)),
                    f4(svg::quantile(&s, 0.75)),
                    f4(s[s.len() - 1]),
                    f4(mean),
                    zeros.to_string(),
                ]
            })
            .collect();
        page.table(
            "Table: weight quantiles per domain",
            &["domain", "min", "q1", "median", "q3", "max", "mean", "zero in"],
            &rows,
        );
        figures.push("mixtures");
    }
    if let Some(p) = &args.dataset {
        let t = page.read(p, "dataset")?;
        let (doms, w) = weights(&t)?;
        let columns: Vec<String> = t.batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        let expr = saved.as_ref().map(|s| s.target.expr.clone()).unwrap_or_else(|| "mean(valid_loss.*)".into());
        let target = Target::parse(&expr, &columns)?;
        let y = target.eval(t.rows(), |c| Ok(t.f64_values(c)?))?;
        let keep: Vec<usize> = (0..y.len()).filter(|&i| y[i].is_finite()).collect();
        let y: Vec<f64> = keep.iter().map(|&i| y[i]).collect();
        let w: Vec<Vec<f64>> = w.iter().map(|v| keep.iter().map(|&i| v[i]).collect()).collect();
        let rho: Vec<f64> = w.iter().map(|v| spearman(v, &y)).collect();
        let r: Vec<f64> = w.iter().map(|v| pearson(v, &y)).collect();
        page.section(
            "evidence",
            "Each domain's weight against the target",
            &format!(
                "{} proxy runs; target <code>{}</code>. A strongly negative ρ: more of that domain, lower loss.",
                y.len(),
                esc(&expr)
            ),
        );
        page.figure(
            "weight-vs-target",
            &svg::small_multiples(&doms, &w, &y, &rho, &expr),
            "One panel per domain: the proxies' target loss against the domain's weight, with Spearman's ρ.",
        );
        let mut order: Vec<usize> = (0..doms.len()).collect();
        order.sort_by(|a, b| rho[*a].total_cmp(&rho[*b]));
        let rows: Vec<Vec<String>> =
            order.iter().map(|&i| vec![doms[i].clone(), format!("{:+.3}", rho[i]), format!("{:+.3}", r[i])]).collect();
        page.table(
            "Table: rank and linear correlation of weight with the target, most helpful first",
            &["domain", "Spearman ρ", "Pearson r"],
            &rows,
        );
        figures.push("weight-vs-target");
    }
    if let Some(dir) = &args.fit {
        fit_section(&mut page, dir, saved.as_ref().expect("loaded above"))?;
        figures.push("predicted-vs-true");
    }
    provenance_section(&mut page);

    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head><body>\
         <h1>{title}</h1><p class=\"meta\">Written by report {version}; figures: {figs}.</p>{body}\
         <pre id=\"render-check\" hidden></pre><script>{SCRIPT}</script></body></html>\n",
        title = esc(&args.title),
        version = env!("CARGO_PKG_VERSION"),
        figs = figures.join(", "),
        body = page.body,
    );
    atomic::write_bytes(&args.output, html.as_bytes())?;
    log::info!(
        "read {}; wrote {} ({} figures: {}; {} bytes)",
        page.files.iter().map(|t| t.path.display().to_string()).collect::<Vec<_>>().join(", "),
        args.output.display(),
        figures.len(),
        figures.join(", "),
        html.len()
    );
    Ok(())
}

fn optimum_section(page: &mut Page, path: &Path, saved: Option<&SavedFit>) -> Result<()> {
    let t = page.read(path, "optimum")?;
    let o = Optimum::from_table(&t)?;
    let (doms, w, sd, prior) = (&o.domains, &o.weights, &o.weight_std, &o.prior);
    let target =
        if o.target.is_empty() { saved.map(|s| s.target.expr.clone()).unwrap_or_default() } else { o.target.clone() };
    let spread = o.predicted_std.map(|s| format!(" ± {s:.4}")).unwrap_or_default();
    let (predicted, gain, verdict) = (o.predicted, o.gain, verdict(&o.gain));
    page.section(
        "optimum",
        "The optimum and the recommendation",
        &format!(
            "<b>Recommendation: train the target on the {}</b> ({}). Predicted <code>{}</code> at the optimum: <b>{predicted:.4}{spread}</b>; {}. {verdict} {}",
            o.recommendation.choice.as_str(),
            esc(&o.recommendation.reason),
            esc(&target),
            esc(&gain.describe()),
            if sd.is_some() { "Error bars: one standard deviation over bootstrap refits of the regression." } else { "No bootstrap was run (optimize --bootstrap B gives error bars)." }
        ),
    );
    page.figure(
        "optimum",
        &svg::bar_chart(doms, w, sd.as_deref(), prior),
        "The optimum (blue, with ± one bootstrap standard deviation) beside the token-share prior (grey).",
    );
    let mut order: Vec<usize> = (0..doms.len()).collect();
    order.sort_by(|a, b| w[*b].total_cmp(&w[*a]));
    let rows: Vec<Vec<String>> = order
        .iter()
        .map(|&i| {
            vec![
                doms[i].clone(),
                f4(w[i]),
                sd.as_ref().map(|s| f4(s[i])).unwrap_or("—".into()),
                f4(prior[i]),
                if prior[i] > 0.0 { format!("{:.2}×", w[i] / prior[i]) } else { "—".into() },
            ]
        })
        .collect();
    page.table("Table: the optimum, largest first", &["domain", "weight", "± sd", "prior", "weight / prior"], &rows);
    Ok(())
}

/// The comparison figure and table; returns the target models' names.
fn comparison_section(page: &mut Page, path: &Path) -> Result<Vec<String>> {
    let t = page.read(path, "comparison")?;
    let names: Vec<String> =
        (0..t.rows()).map(|i| t.str("mixture").map(|c| c.value(i).to_string())).collect::<regmix_core::Result<_>>()?;
    let evals = t.list("eval_domain")?.to_vec();
    let mut rows: Vec<String> = evals.clone();
    rows.push("mean".into());
    let losses = t.wide_f64(VALID_LOSS, &evals)?;
    let values: Vec<Vec<f64>> = (0..t.rows())
        .map(|m| {
            let mut v: Vec<f64> = losses.iter().map(|c| c[m]).collect();
            let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            v.push(if finite.len() == v.len() { finite.iter().sum::<f64>() / finite.len() as f64 } else { f64::NAN });
            v
        })
        .collect();
    let mean_of = |m: usize| values[m][evals.len()];
    let best = (0..names.len()).filter(|&m| mean_of(m).is_finite()).min_by(|a, b| mean_of(*a).total_cmp(&mean_of(*b)));
    page.section(
        "comparison",
        "The target models",
        &format!(
            "{} target models trained on the same tokens; lowest mean validation loss: <b>{}</b>.",
            names.len(),
            best.map(|b| format!("{} ({:.4})", esc(&names[b]), mean_of(b))).unwrap_or("none finished".into())
        ),
    );
    page.figure(
        "comparison",
        &svg::dot_plot(&rows, &names, &values),
        "Validation loss per evaluation domain (and their mean) for each target model.",
    );
    let mut head = vec!["domain"];
    head.extend(names.iter().map(String::as_str));
    let table: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| std::iter::once(r.clone()).chain(values.iter().map(|v| f4(v[i]))).collect())
        .collect();
    page.table("Table: validation loss per domain", &head, &table);
    Ok(names)
}

/// The target models' mean validation loss over training tokens, from the metrics target-train
/// writes beside comparison.parquet (`<dir>/<mixture>/metrics.parquet`). Left out, with a log
/// line, when any of them is missing (a comparison file copied on its own); returns whether
/// the figure was added.
fn curves_section(page: &mut Page, comparison: &Path, names: &[String]) -> Result<bool> {
    let dir = comparison.parent().unwrap_or(Path::new("."));
    let files: Vec<PathBuf> = names.iter().map(|n| RunDir::new(dir.join(n)).metrics()).collect();
    if let Some(missing) = files.iter().find(|f| !f.exists()) {
        log::info!("no training curves of the target models: {} not found", missing.display());
        return Ok(false);
    }
    let mut curves: Vec<Vec<(f64, f64)>> = Vec::new();
    for f in &files {
        let t = page.read(f, "run_metrics")?;
        let doms = t.list("domain")?.to_vec();
        let tokens = t.u64("tokens")?;
        let losses = t.wide_f64(VALID_LOSS, &doms)?;
        let mut pts: Vec<(f64, f64)> = Vec::new();
        for i in 0..t.rows() {
            let v: Vec<f64> = losses.iter().map(|l| l[i]).collect();
            if !v.is_empty()
                && v.iter().all(|x| x.is_finite())
                && pts.last().is_none_or(|p| p.0 < tokens.value(i) as f64)
            {
                pts.push((tokens.value(i) as f64, v.iter().sum::<f64>() / v.len() as f64));
            }
        }
        curves.push(pts);
    }
    page.section(
        "curves",
        "The target models during training",
        "Mean validation loss over training tokens for each target model. Where the lines cross, which mixture is best depends on \
         how long the model trains: proxies trained on as few tokens as the crossing rank mixtures for the short run, not the long one.",
    );
    page.figure(
        "target-curves",
        &svg::curves(names, &curves, "training tokens", "mean validation loss"),
        "Mean validation loss of each target model at each evaluation.",
    );
    let mut tokens: Vec<f64> = curves.iter().flatten().map(|p| p.0).collect();
    tokens.sort_by(f64::total_cmp);
    tokens.dedup();
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|x| {
            std::iter::once(format!("{}", *x as u64))
                .chain(curves.iter().map(|c| c.iter().find(|p| p.0 == *x).map(|p| f4(p.1)).unwrap_or("—".into())))
                .collect()
        })
        .collect();
    let mut head = vec!["tokens"];
    head.extend(names.iter().map(String::as_str));
    page.table("Table: mean validation loss during training", &head, &rows);
    Ok(true)
}

fn fit_section(page: &mut Page, dir: &Path, saved: &SavedFit) -> Result<()> {
    let rep = page.read(&dir.join("fit_report.parquet"), "fit_report")?;
    let pred = page.read(&dir.join("predictions.parquet"), "predictions")?;
    let selected =
        rep.metadata.get(regmix_core::keys::SELECTED).cloned().unwrap_or_else(|| saved.regressor.name().to_string());
    let (reg, split) = (pred.str("regressor")?, pred.str("split")?);
    let (truth, p) = (pred.f64_values("truth")?, pred.f64_values("prediction")?);
    let mut splits: Vec<String> = Vec::new();
    for i in 0..pred.rows() {
        if reg.value(i) == selected && !splits.iter().any(|s| s == split.value(i)) {
            splits.push(split.value(i).to_string());
        }
    }
    let series: Vec<svg::Series> = splits
        .iter()
        .map(|s| {
            let pts: Vec<(f64, f64)> = (0..pred.rows())
                .filter(|&i| reg.value(i) == selected && split.value(i) == s)
                .map(|i| (truth[i], p[i]))
                .collect();
            let (a, b): (Vec<f64>, Vec<f64>) = pts.iter().copied().unzip();
            let label = match s.as_str() {
                "oof" => "out of fold".to_string(),
                "lomo" => "each target mixture left out, over runs".to_string(),
                other => other.trim_start_matches("test:").to_string(),
            };
            svg::Series { label: format!("{label} (ρ = {:.3})", spearman(&a, &b)), points: pts }
        })
        .collect();
    let scored = match &saved.model {
        Model::TargetLaw(t) => format!(
            "fitted on {} runs at the target's scale; Spearman {:.2} leaving one target mixture out at a time",
            t.x.len(),
            saved.cv_spearman * 100.0
        ),
        _ => format!("{}-fold cross-validated Spearman {:.2}", saved.folds, saved.cv_spearman * 100.0),
    };
    page.section(
        "fit",
        "How well the regression predicts",
        &format!(
            "Target <code>{}</code>; selected regressor <b>{}</b> ({scored}). Test files are scored only after the model is fixed.",
            esc(&saved.target.expr),
            esc(&selected),
        ),
    );
    page.figure(
        "predicted-vs-true",
        &svg::scatter(&format!("{selected}: predicted vs true"), &series),
        if matches!(saved.model, Model::TargetLaw(_)) {
            "Predicted against true target for every target-scale run, its mixture left out, and on each test file."
        } else {
            "Predicted against true target for every proxy run, out of fold, and on each test file."
        },
    );
    let (r, s) = (rep.str("regressor")?, rep.str("split")?);
    let cols = ["spearman", "pearson", "mse", "mae"].map(|c| rep.f64_values(c));
    let rows_n = rep.u64("rows")?;
    let mut rows = Vec::new();
    for i in 0..rep.rows() {
        if s.value(i).starts_with("fold-") {
            continue;
        }
        let mut row = vec![r.value(i).to_string(), s.value(i).to_string()];
        for c in &cols {
            let c = c.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
            row.push(f4(c[i]));
        }
        row.push(rows_n.value(i).to_string());
        rows.push(row);
    }
    page.table(
        "Table: every regressor, out of fold and on test files",
        &["regressor", "split", "Spearman", "Pearson", "MSE", "MAE", "rows"],
        &rows,
    );
    Ok(())
}

fn provenance_section(page: &mut Page) {
    let rows: Vec<Vec<String>> = page
        .files
        .iter()
        .map(|t| {
            let p = Provenance::from_metadata(&t.metadata);
            vec![
                t.path.display().to_string(),
                t.metadata.get(regmix_core::provenance::KEY_SCHEMA).cloned().unwrap_or_default(),
                p.as_ref().map(|p| format!("{} {}", p.producer, p.version)).unwrap_or("unknown".into()),
                p.as_ref().map(|p| p.arguments.join(" ")).unwrap_or_default(),
            ]
        })
        .collect();
    page.section(
        "provenance",
        "Where every number came from",
        "The files this report read, and the command that wrote each (from its Parquet metadata).",
    );
    page.body.push_str("<table><tr><th>file</th><th>schema</th><th>written by</th><th>command</th></tr>");
    for r in rows {
        write!(
            page.body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&r[0]),
            esc(&r[1]),
            esc(&r[2]),
            esc(&r[3])
        )
        .unwrap();
    }
    page.body.push_str("</table></section>");
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:2em}figure{margin:1em 0}figcaption{color:#555;font-size:90%}\
table{border-collapse:collapse;font-size:90%;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}\
th{background:#f4f4f4}code{background:#f4f4f4;padding:0 3px}.meta{color:#666}summary{cursor:pointer;color:#1f5fa0}";

/// After layout: each figure's drawn size and number of marks, for the render test.
const SCRIPT: &str = "window.addEventListener('load',function(){var out=[];\
document.querySelectorAll('figure[data-figure]').forEach(function(f){var s=f.querySelector('svg');var b=s?s.getBBox():{width:0,height:0};\
out.push({figure:f.dataset.figure,width:b.width,height:b.height,marks:s?s.querySelectorAll('circle,rect,line,path').length:0});});\
document.getElementById('render-check').textContent=JSON.stringify(out);});";
