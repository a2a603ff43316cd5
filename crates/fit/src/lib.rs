//! `fit`: regress a target on mixture weights; choose and evaluate regressors honestly.
//!
//! Writes into the output folder: `model.json` (what `optimize` loads: the target, the
//! domains, the selected model, and how to refit it; the contract is
//! [`regmix_regress::SavedFit`]), `fit_report.parquet`, `predictions.parquet`, and
//! `predicted_vs_true.svg`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use arrow_schema::DataType;
use clap::Parser;
use regmix_core::schema::{Lists, Schema};
use regmix_core::table::{batch, col, read_parquet, write_parquet};
use regmix_core::atomic::{self, OutputDir};
use regmix_core::lock::Lock;
use regmix_core::{digest, Provenance};
use regmix_plot as plot;
use regmix_regress::metrics::score;
use regmix_regress::model::ENSEMBLE;
use regmix_regress::saved::{load_xy, Xy};
use regmix_regress::target::Target;
use regmix_regress::{ensemble_of, fit_cv, predict_many, Fitted, Kind, Model, SavedFit};

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

/// A row of fit_report.parquet: one regressor's scores on one split.
struct ReportRow {
    regressor: String,
    split: String,
    s: regmix_regress::metrics::Scores,
    rows: usize,
}

/// A row of predictions.parquet: one run's true and predicted target.
struct Prediction {
    regressor: &'static str,
    split: String,
    /// The fold that held the run out (-1 on test files).
    fold: i32,
    mixture_id: u32,
    truth: f64,
    predicted: f64,
}

/// One regressor fitted with cross-validation.
struct Candidate {
    kind: Kind,
    cv_spearman: f64,
    model: Model,
}

pub fn run(args: &Args) -> Result<()> {
    let prov = Provenance::from_env("fit", env!("CARGO_PKG_VERSION"));
    let _lock = Lock::output(&args.output, &format!("{} (fit's output)", args.output.display()))?;
    let t = read_parquet(&args.dataset, Schema::get("dataset"))?;
    let columns: Vec<(String, bool)> =
        t.batch.schema().fields().iter().map(|f| (f.name().clone(), matches!(f.data_type(), DataType::Float64 | DataType::Float32))).collect();
    let target = Target::parse_floats(&args.target, &columns).with_context(|| args.dataset.display().to_string())?;
    let Xy { domains, ids, x, y } = load_xy(&t, None, &target)?;
    log::info!("{}: {} runs, {} domains, target {}", args.dataset.display(), x.len(), domains.len(), target.expr);
    let (lo, hi) = y.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    if !y.is_empty() && lo == hi {
        bail!("{}: the target `{}` is {lo} in every one of the {} runs: there is nothing to regress", args.dataset.display(), target.expr, y.len());
    }
    let kinds: Vec<Kind> = if args.regressor == "auto" { Kind::ALL.to_vec() } else { vec![Kind::parse(&args.regressor)?] };

    let mut report = Vec::new();
    let mut preds: Vec<Prediction> = Vec::new();
    let mut fitted: Vec<Candidate> = Vec::new();
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
            preds.push(Prediction { regressor: kind.name(), split: "oof".into(), fold: f.fold_of[i] as i32, mixture_id: ids[i], truth: y[i], predicted: f.oof[i] });
        }
        fitted.push(Candidate { kind, cv_spearman: s.spearman, model: f.model });
    }
    // The model is fixed now; only then are held-out files read. A NaN Spearman (a constant
    // target) ranks below every number.
    let best = (0..fitted.len())
        .max_by(|&a, &b| fitted[a].cv_spearman.total_cmp(&fitted[b].cv_spearman).then(b.cmp(&a)))
        .context("no regressor was fitted")?;
    for file in &args.evaluate {
        let tt = read_parquet(file, Schema::get("dataset"))?;
        let test = load_xy(&tt, Some(&domains), &target)?;
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("test").to_string();
        for c in &fitted {
            let p = predict_many(&c.model, &test.x)?;
            let s = score(&test.y, &p);
            log::info!("{:>10}: Spearman {:.2} on {}", c.kind.name(), s.spearman * 100.0, file.display());
            report.push(ReportRow { regressor: c.kind.name().into(), split: format!("test:{stem}"), s, rows: test.x.len() });
            for i in 0..test.x.len() {
                preds.push(Prediction { regressor: c.kind.name(), split: format!("test:{stem}"), fold: -1, mixture_id: test.ids[i], truth: test.y[i], predicted: p[i] });
            }
        }
    }
    let Candidate { kind, cv_spearman: cv, model } = fitted.swap_remove(best);
    log::info!("selected {} (cross-validated Spearman {:.2})", kind.name(), cv * 100.0);

    // The folder is staged and swapped in whole: model.json and the reports always belong to
    // one fit.
    let staged = OutputDir::create(&args.output)?;
    let out = staged.path();
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
    write_parquet(&out.join("fit_report.parquet"), s, &lists, &b, &md, &prov)?;
    let s = Schema::get("predictions");
    let b = batch(
        s,
        &lists,
        vec![
            col::str(&preds.iter().map(|p| p.regressor).collect::<Vec<_>>()),
            col::str(&preds.iter().map(|p| p.split.as_str()).collect::<Vec<_>>()),
            col::i32(preds.iter().map(|p| p.fold).collect()),
            col::u32(preds.iter().map(|p| p.mixture_id).collect()),
            col::f64(preds.iter().map(|p| p.truth).collect()),
            col::f64(preds.iter().map(|p| p.predicted).collect()),
        ],
    )?;
    write_parquet(&out.join("predictions.parquet"), s, &lists, &b, &[("regmix.target".into(), target.expr.clone())], &prov)?;
    // The plot: the selected regressor, out of fold and on each test set.
    let mut svg_series = Vec::new();
    let mut splits: Vec<String> = vec!["oof".into()];
    splits.extend(preds.iter().filter(|p| p.split.starts_with("test:")).map(|p| p.split.clone()));
    splits.dedup();
    for sp in &splits {
        let pts: Vec<(f64, f64)> = preds.iter().filter(|p| p.regressor == kind.name() && &p.split == sp).map(|p| (p.truth, p.predicted)).collect();
        let (t, p): (Vec<f64>, Vec<f64>) = pts.iter().cloned().unzip();
        let rho = regmix_regress::metrics::spearman(&t, &p);
        svg_series.push(plot::Series { label: format!("{sp}: ρ = {:.2}", rho * 100.0), points: pts });
    }
    atomic::write_bytes(
        out.join("predicted_vs_true.svg"),
        plot::scatter(&format!("{} — {}", kind.name(), target.expr), &svg_series).as_bytes(),
    )?;
    let saved = SavedFit {
        target,
        domains,
        regressor: kind,
        dataset: std::fs::canonicalize(&args.dataset).unwrap_or(args.dataset.clone()),
        dataset_sha256: digest::sha256_file(&args.dataset)?,
        folds: args.folds,
        seed: args.seed,
        cv_spearman: cv,
        model,
    };
    saved.save(out, &prov)?;
    staged.commit()?;
    log::info!("wrote {}/{{model.json, fit_report.parquet, predictions.parquet, predicted_vs_true.svg}}", args.output.display());
    Ok(())
}
