//! `fit`: regress a target on mixture weights; choose and evaluate regressors honestly.
//!
//! Writes into the output folder: `model.json` (what `optimize` loads: the target, the
//! domains, the selected model, and how to refit it), `fit_report.parquet`,
//! `predictions.parquet`, and `predicted_vs_true.svg`.

pub mod svg;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use regmix_core::schema::{Lists, Schema};
use regmix_core::table::{batch, col, read_parquet, write_parquet, Table};
use regmix_core::{atomic, Provenance};
use regmix_regress::metrics::score;
use regmix_regress::target::Target;
use regmix_regress::model::ENSEMBLE;
use regmix_regress::{ensemble_of, fit_cv, Fitted, Kind, Model};
use serde::{Deserialize, Serialize};

/// Fit a regression of a target loss on mixture weights.
///
/// Hyper-parameters and early stopping come from K-fold cross-validation inside the dataset;
/// files given to --evaluate are read only after the final model is fixed. `auto` fits every
/// regressor and keeps the one with the best cross-validated Spearman correlation.
#[derive(Parser, Debug, Clone)]
#[command(name = "fit", version, term_width = regmix_core::cli::HELP_WIDTH)]
pub struct Args {
    /// dataset.parquet from collect.
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// A column (valid_loss.pile_cc), a weighted sum (0.5*valid_loss.a + 0.5*valid_loss.b), or mean(valid_loss.*).
    #[arg(long, value_name = "EXPR")]
    pub target: String,
    /// linear, log-linear, xgboost, gp, ensemble (mean of gp and xgboost), or auto.
    #[arg(long, value_name = "NAME", default_value = "auto")]
    pub regressor: String,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Seed of the fold assignment and of the trees.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Held-out dataset files (same schema) to score the final model on; repeatable.
    #[arg(long, value_name = "TEST.parquet")]
    pub evaluate: Vec<PathBuf>,
}

/// What `optimize` loads from `model.json`.
#[derive(Serialize, Deserialize)]
pub struct SavedFit {
    pub target: Target,
    pub domains: Vec<String>,
    pub regressor: Kind,
    pub dataset: PathBuf,
    pub folds: usize,
    pub seed: u64,
    pub cv_spearman: f64,
    pub model: Model,
}

impl SavedFit {
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join("model.json");
        let text = std::fs::read_to_string(&p).with_context(|| format!("{}: cannot read (run fit first)", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a regmix fit", p.display()))
    }
}

/// Rows (weights in `domains` order) and target values of a dataset file.
pub fn load_xy(t: &Table, domains: Option<&[String]>, target: &Target) -> Result<(Vec<String>, Vec<u32>, Vec<Vec<f64>>, Vec<f64>)> {
    let own = t.list("domain")?.to_vec();
    let doms = domains.map(|d| d.to_vec()).unwrap_or(own.clone());
    for d in &own {
        if !doms.contains(d) {
            bail!("{}: domain `{d}` is not among the fitted domains {doms:?}", t.path.display());
        }
    }
    let cols: Vec<Option<Vec<f64>>> =
        doms.iter().map(|d| if own.contains(d) { t.f64_values(&format!("weight.{d}")).ok() } else { None }).collect();
    let x: Vec<Vec<f64>> = (0..t.rows()).map(|r| cols.iter().map(|c| c.as_ref().map(|c| c[r]).unwrap_or(0.0)).collect()).collect();
    let y = target.eval(t.rows(), |c| t.f64_values(c).unwrap());
    let ids = t.u32("mixture_id")?.values().to_vec();
    // Rows whose target is missing cannot be used.
    let keep: Vec<usize> = (0..y.len()).filter(|&i| y[i].is_finite()).collect();
    if keep.len() < y.len() {
        log::warn!("{}: {} rows have no value for `{}`; left out", t.path.display(), y.len() - keep.len(), target.expr);
    }
    Ok((doms, keep.iter().map(|&i| ids[i]).collect(), keep.iter().map(|&i| x[i].clone()).collect(), keep.iter().map(|&i| y[i]).collect()))
}

struct ReportRow {
    regressor: String,
    split: String,
    s: regmix_regress::metrics::Scores,
    rows: usize,
}

pub fn run(args: &Args) -> Result<()> {
    let prov = Provenance::from_env("fit", env!("CARGO_PKG_VERSION"));
    let t = read_parquet(&args.dataset, Schema::get("dataset"))?;
    let columns: Vec<String> = t.batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    let target = Target::parse(&args.target, &columns)?;
    let (domains, ids, x, y) = load_xy(&t, None, &target)?;
    log::info!("{}: {} runs, {} domains, target {}", args.dataset.display(), x.len(), domains.len(), target.expr);
    let kinds: Vec<Kind> = if args.regressor == "auto" { Kind::ALL.to_vec() } else { vec![Kind::parse(&args.regressor)?] };

    let mut report = Vec::new();
    let mut preds: Vec<(String, String, i32, u32, f64, f64)> = Vec::new();
    let mut fitted = Vec::new();
    let mut parts: Vec<(Kind, Fitted)> = Vec::new();
    for kind in kinds {
        let started = std::time::Instant::now();
        let members: Option<Vec<Fitted>> =
            ENSEMBLE.iter().map(|m| parts.iter().find(|(k, _)| k == m).map(|(_, f)| f.clone())).collect();
        let f = match (kind, members) {
            // `auto` has fitted the members with the same folds: average them, do not refit.
            (Kind::Ensemble, Some(members)) => ensemble_of(members),
            _ => fit_cv(kind, &x, &y, args.folds, args.seed)?,
        };
        if ENSEMBLE.contains(&kind) {
            parts.push((kind, f.clone()));
        }
        for k in 0..args.folds {
            let idx: Vec<usize> = (0..x.len()).filter(|&i| f.fold_of[i] == k).collect();
            let tr: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
            let pr: Vec<f64> = idx.iter().map(|&i| f.oof[i]).collect();
            report.push(ReportRow { regressor: kind.name().into(), split: format!("fold-{k}"), s: score(&tr, &pr), rows: idx.len() });
        }
        let s = score(&y, &f.oof);
        log::info!("{:>10}: cross-validated Spearman {:.2} ({:.1}s)", kind.name(), s.spearman * 100.0, started.elapsed().as_secs_f64());
        report.push(ReportRow { regressor: kind.name().into(), split: "oof".into(), s, rows: x.len() });
        for i in 0..x.len() {
            preds.push((kind.name().into(), "oof".into(), f.fold_of[i] as i32, ids[i], y[i], f.oof[i]));
        }
        fitted.push((kind, s.spearman, f.model));
    }
    // The model is fixed now; only then are held-out files read.
    let best = fitted.iter().enumerate().max_by(|a, b| a.1 .1.partial_cmp(&b.1 .1).unwrap()).unwrap().0;
    for file in &args.evaluate {
        let tt = read_parquet(file, Schema::get("dataset"))?;
        let (_, tids, tx, ty) = load_xy(&tt, Some(&domains), &target)?;
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("test").to_string();
        for (kind, _, model) in &fitted {
            let p = model.predict_many(&tx);
            let s = score(&ty, &p);
            log::info!("{:>10}: Spearman {:.2} on {}", kind.name(), s.spearman * 100.0, file.display());
            report.push(ReportRow { regressor: kind.name().into(), split: format!("test:{stem}"), s, rows: tx.len() });
            for i in 0..tx.len() {
                preds.push((kind.name().into(), format!("test:{stem}"), -1, tids[i], ty[i], p[i]));
            }
        }
    }
    let (kind, cv, model) = fitted.swap_remove(best);
    log::info!("selected {} (cross-validated Spearman {:.2})", kind.name(), cv * 100.0);

    std::fs::create_dir_all(&args.output).with_context(|| format!("{}: cannot create", args.output.display()))?;
    let md = vec![("regmix.target".to_string(), target.expr.clone()), ("regmix.selected".to_string(), kind.name().to_string())];
    let s = Schema::get("fit_report");
    let lists = Lists::new();
    let b = batch(
        s,
        &lists,
        vec![
            col::str(&vec![target.expr.as_str(); report.len()]),
            col::str(&report.iter().map(|r| r.regressor.as_str()).collect::<Vec<_>>()),
            col::str(&report.iter().map(|r| r.split.as_str()).collect::<Vec<_>>()),
            col::f64(report.iter().map(|r| r.s.spearman).collect()),
            col::f64(report.iter().map(|r| r.s.pearson).collect()),
            col::f64(report.iter().map(|r| r.s.mse).collect()),
            col::f64(report.iter().map(|r| r.s.mae).collect()),
            col::u64(report.iter().map(|r| r.rows as u64).collect()),
        ],
    )?;
    write_parquet(&args.output.join("fit_report.parquet"), s, &lists, &b, &md, &prov)?;
    let s = Schema::get("predictions");
    let b = batch(
        s,
        &lists,
        vec![
            col::str(&preds.iter().map(|p| p.0.as_str()).collect::<Vec<_>>()),
            col::str(&preds.iter().map(|p| p.1.as_str()).collect::<Vec<_>>()),
            col::i32(preds.iter().map(|p| p.2).collect()),
            col::u32(preds.iter().map(|p| p.3).collect()),
            col::f64(preds.iter().map(|p| p.4).collect()),
            col::f64(preds.iter().map(|p| p.5).collect()),
        ],
    )?;
    write_parquet(&args.output.join("predictions.parquet"), s, &lists, &b, &[("regmix.target".into(), target.expr.clone())], &prov)?;
    // The plot: the selected regressor, out of fold and on each test set.
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut svg_series = Vec::new();
    let mut splits: Vec<String> = vec!["oof".into()];
    splits.extend(preds.iter().filter(|p| p.1.starts_with("test:")).map(|p| p.1.clone()));
    splits.dedup();
    for (i, sp) in splits.iter().enumerate() {
        let pts: Vec<(f64, f64)> = preds.iter().filter(|p| p.0 == kind.name() && &p.1 == sp).map(|p| (p.4, p.5)).collect();
        let (t, p): (Vec<f64>, Vec<f64>) = pts.iter().cloned().unzip();
        let rho = regmix_regress::metrics::spearman(&t, &p);
        svg_series.push(svg::Series { label: format!("{sp}: ρ = {:.2}", rho * 100.0), color: colors[i % colors.len()], points: pts });
    }
    atomic::write_bytes(
        &args.output.join("predicted_vs_true.svg"),
        svg::scatter(&format!("{} — {}", kind.name(), target.expr), &svg_series).as_bytes(),
    )?;
    let saved = SavedFit {
        target,
        domains,
        regressor: kind,
        dataset: std::fs::canonicalize(&args.dataset).unwrap_or(args.dataset.clone()),
        folds: args.folds,
        seed: args.seed,
        cv_spearman: cv,
        model,
    };
    atomic::write_bytes(&args.output.join("model.json"), serde_json::to_string(&saved)?.as_bytes())?;
    log::info!("wrote {}/{{model.json, fit_report.parquet, predictions.parquet, predicted_vs_true.svg}}", args.output.display());
    Ok(())
}
