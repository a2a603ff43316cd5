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
use regmix_core::atomic::{self, OutputDir};
use regmix_core::lock::Lock;
use regmix_core::schema::{Lists, Schema};
use regmix_core::table::Table;
use regmix_core::table::{batch, col, read_parquet, read_parquet_hashed, write_parquet};
use regmix_core::Provenance;
use regmix_plot as plot;
use regmix_regress::cv::fit_kinds;
use regmix_regress::metrics::score;
use regmix_regress::saved::{load_xy, Xy};
use regmix_regress::target::Target;
use regmix_regress::transfer::same_mixture;
use regmix_regress::{predict_many, Kind, Model, SavedFit};

mod horizon;
mod target_law;

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
    /// linear, log-linear, xgboost, gp, ensemble (mean of gp and xgboost), target-law (with
    /// --target-runs, where auto means it), or auto.
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
    /// Held-out dataset files (same schema) to score the final model on; repeatable. Rows of
    /// a training mixture (the same weights) are scored by the fold model that held it out;
    /// with --at-tokens each row is predicted at its own tokens.
    #[arg(long, value_name = "TEST.parquet")]
    pub evaluate: Vec<PathBuf>,
    /// Predict the target at this many training tokens from every run's loss curve (a power
    /// law per validation domain, its asymptote and scale regressed on the weights) instead
    /// of at the runs' last evaluation. Reads the trajectories collect wrote beside the
    /// dataset.
    #[arg(long, value_name = "N")]
    pub at_tokens: Option<u64>,
    /// With --at-tokens: the trajectories file [default: the one the dataset names].
    #[arg(long, value_name = "FILE", requires = "at_tokens")]
    pub trajectories: Option<PathBuf>,
    /// With --at-tokens: fit the curves on the evaluations up to this many tokens only (for
    /// backtests: the rest of each run stays unseen).
    #[arg(long, value_name = "T", requires = "at_tokens")]
    pub until_tokens: Option<u64>,
    /// Runs at the target's scale (dataset files: collect --targets, or collect
    /// --import-table of past runs), all of one training length; repeatable. Fits the target
    /// law: each domain's loss in the data that helps it, at the target's scale, with which
    /// domain helps which taken from the proxies of --dataset. Scored by leaving one target
    /// mixture out at a time. Needs at least 4 distinct mixtures.
    #[arg(long, value_name = "FILE", conflicts_with = "at_tokens")]
    pub target_runs: Vec<PathBuf>,
}

/// A row of fit_report.parquet: one regressor's scores on one split (and, for a domain's
/// law, its exponent and curve error).
pub(crate) struct ReportRow {
    pub regressor: String,
    pub split: String,
    pub s: regmix_regress::metrics::Scores,
    pub rows: usize,
    pub exponent: Option<f64>,
    pub curve_rmse: Option<f64>,
}

impl ReportRow {
    pub fn new(regressor: &str, split: String, s: regmix_regress::metrics::Scores, rows: usize) -> Self {
        ReportRow { regressor: regressor.to_string(), split, s, rows, exponent: None, curve_rmse: None }
    }
}

/// A row of predictions.parquet: one run's true and predicted target.
pub(crate) struct Prediction {
    pub regressor: &'static str,
    pub split: String,
    /// The fold that held the run out (-1 on test files).
    pub fold: i32,
    pub mixture_id: u32,
    pub truth: f64,
    pub predicted: f64,
}

/// One regressor fitted with cross-validation, with its out-of-fold predictions for the rows
/// of an --evaluate file that are training mixtures.
pub(crate) struct Candidate {
    pub kind: Kind,
    pub cv_spearman: f64,
    pub model: Model,
    /// Out of fold at `tokens` for training run `i`.
    pub oof_at: Box<dyn Fn(usize, u64) -> f64>,
    /// A target law's prediction for a mixture among its target-scale runs, that mixture
    /// left out.
    pub oof_mixture: Option<OofMixture>,
}

/// A prediction for a mixture with that mixture left out (None: not a fitted mixture).
pub(crate) type OofMixture = Box<dyn Fn(&[f64]) -> Option<f64>>;

/// What a fit produced, before it is written.
pub(crate) struct Outcome {
    pub report: Vec<ReportRow>,
    pub preds: Vec<Prediction>,
    pub fitted: Vec<Candidate>,
    /// The metadata `regmix.horizon` of the report.
    pub horizon: String,
}

/// Whether `dir` holds a fit of ours: a model.json of the fit_model contract. Only such a
/// folder (or an empty one) is replaced by `fit --output`.
pub fn is_fit_folder(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join(regmix_regress::saved::FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["regmix"]["schema"] == "fit_model")
}

/// Every row's weights must be a mixture: finite, none negative, summing to 1 (within
/// [`SUM_TOLERANCE`]). A NaN would stall or break a regressor; a row summing to 4 is not a
/// mixture, and a fit over it would be fitted silently to something else. Names the row.
pub fn check_mixtures(t: &Table) -> Result<()> {
    let domains = t.list("domain")?.to_vec();
    let rows = t.wide_rows(regmix_core::columns::WEIGHT, &domains)?;
    for (r, w) in rows.iter().enumerate() {
        let col = |j: usize| regmix_core::columns::wide(regmix_core::columns::WEIGHT, &domains[j]);
        if let Some(j) = w.iter().position(|v| !v.is_finite()) {
            bail!(
                "{}: row {r}, field `{}`: {} is not a weight (finite, in [0, 1]): every row must be a mixture",
                t.path.display(),
                col(j),
                w[j]
            );
        }
        if let Some(j) = w.iter().position(|v| *v < 0.0) {
            bail!(
                "{}: row {r}, field `{}`: {} is negative: every row must be a mixture",
                t.path.display(),
                col(j),
                w[j]
            );
        }
        let sum: f64 = w.iter().sum();
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            bail!(
                "{}: row {r}: the weights sum to {sum}, not 1 (tolerance {SUM_TOLERANCE}): every row must be a mixture",
                t.path.display()
            );
        }
    }
    Ok(())
}

/// How far from 1 a row's weights may sum: loose enough for a hand-made table rounded to a few
/// decimals (collect's imports renormalise theirs), tight enough that a row that is not a
/// mixture (one summing to 4) is refused.
pub const SUM_TOLERANCE: f64 = 1e-2;

pub fn run(args: &Args) -> Result<()> {
    let prov = Provenance::from_env("fit", env!("CARGO_PKG_VERSION"));
    let mut inputs: Vec<(&str, &std::path::Path)> = vec![("--dataset", args.dataset.as_path())];
    inputs.extend(args.evaluate.iter().map(|p| ("--evaluate", p.as_path())));
    inputs.extend(args.trajectories.as_deref().map(|p| ("--trajectories", p)));
    inputs.extend(args.target_runs.iter().map(|p| ("--target-runs", p.as_path())));
    regmix_core::atomic::refuse_overlap(&args.output, "--output", &inputs)?;
    let _lock = Lock::output(&args.output, &format!("{} (fit's output)", args.output.display()))?;
    // The folder is staged and swapped in whole: model.json and the reports always belong to
    // one fit. Only an empty folder or an earlier fit is replaced, and that is known before
    // any work is done.
    let staged = OutputDir::create_owned(&args.output, "a fit", is_fit_folder)?;
    // The hash is of exactly the bytes fitted: one descriptor, hashed and parsed (collect
    // renaming a new dataset over this one meanwhile changes neither).
    let (t, dataset_sha256) = read_parquet_hashed(&args.dataset, Schema::get("dataset"))?;
    if t.rows() == 0 {
        bail!("{}: the dataset is empty: it has no runs to fit", args.dataset.display());
    }
    check_mixtures(&t)?;
    let columns: Vec<(String, bool)> = t
        .batch
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), matches!(f.data_type(), DataType::Float64 | DataType::Float32)))
        .collect();
    let target = Target::parse_floats(&args.target, &columns).with_context(|| args.dataset.display().to_string())?;
    let xy = load_xy(&t, None, &target)?;
    log::info!("{}: {} runs, {} domains, target {}", args.dataset.display(), xy.x.len(), xy.domains.len(), target.expr);
    let y = &xy.y;
    let (lo, hi) = y.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    if !y.is_empty() && lo == hi {
        bail!(
            "{}: the target `{}` is {lo} in every one of the {} runs: there is nothing to regress",
            args.dataset.display(),
            target.expr,
            y.len()
        );
    }
    let kinds: Vec<Kind> = match args.regressor.as_str() {
        "auto" if !args.target_runs.is_empty() => vec![Kind::TargetLaw],
        "auto" => Kind::ALL.to_vec(),
        other => vec![Kind::parse(other)?],
    };
    if kinds == [Kind::TargetLaw] && args.target_runs.is_empty() {
        bail!("--regressor target-law is fitted on runs at the target's scale: give them with --target-runs");
    }
    let Outcome { mut report, mut preds, mut fitted, horizon } = match args.at_tokens {
        _ if !args.target_runs.is_empty() => target_law::fit(args, &t, &target, &xy, &kinds)?,
        Some(n) => horizon::fit(args, &t, &target, &xy, &kinds, n)?,
        None => fit_plain(args, &xy, &kinds)?,
    };
    // The model is fixed now; only then are held-out files read. A NaN Spearman (a constant
    // target) ranks below every number.
    let best = (0..fitted.len())
        .max_by(|&a, &b| fitted[a].cv_spearman.total_cmp(&fitted[b].cv_spearman).then(b.cmp(&a)))
        .context("no regressor was fitted")?;
    for file in &args.evaluate {
        evaluate(file, &xy, &target, &fitted, &mut report, &mut preds)?;
    }
    let domains = xy.domains.clone();
    let Candidate { kind, cv_spearman: cv, model, .. } = fitted.swap_remove(best);
    log::info!("selected {} (cross-validated Spearman {:.2})", kind.name(), cv * 100.0);
    let out = staged.path();
    let md = vec![
        (regmix_core::keys::TARGET.to_string(), target.expr.clone()),
        (regmix_core::keys::SELECTED.to_string(), kind.name().to_string()),
        (regmix_core::keys::HORIZON.to_string(), horizon),
    ];
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
            col::f64_opt(report.iter().map(|r| r.exponent).collect()),
            col::f64_opt(report.iter().map(|r| r.curve_rmse).collect()),
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
    write_parquet(
        &out.join("predictions.parquet"),
        s,
        &lists,
        &b,
        &[(regmix_core::keys::TARGET.into(), target.expr.clone())],
        &prov,
    )?;
    // The plot: the selected regressor, out of fold and on each test set.
    let mut svg_series = Vec::new();
    // A target law is scored by leaving one target mixture out ("lomo"), the rest out of fold.
    let mut splits: Vec<String> = vec![if kind == Kind::TargetLaw { "lomo" } else { "oof" }.into()];
    splits.extend(preds.iter().filter(|p| p.split.starts_with("test:")).map(|p| p.split.clone()));
    splits.dedup();
    for sp in &splits {
        let pts: Vec<(f64, f64)> = preds
            .iter()
            .filter(|p| p.regressor == kind.name() && &p.split == sp)
            .map(|p| (p.truth, p.predicted))
            .collect();
        let (t, p): (Vec<f64>, Vec<f64>) = pts.iter().cloned().unzip();
        let rho = regmix_regress::metrics::spearman(&t, &p);
        // One point per run: a target law's repeated mixtures count once per run here.
        let per = if sp == "lomo" { " over runs" } else { "" };
        svg_series.push(plot::Series { label: format!("{sp}: ρ = {:.2}{per}", rho * 100.0), points: pts });
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
        dataset_sha256,
        folds: args.folds,
        seed: args.seed,
        cv_spearman: cv,
        model,
    };
    saved.save(out, &prov)?;
    staged.commit()?;
    log::info!(
        "wrote {}/{{model.json, fit_report.parquet, predictions.parquet, predicted_vs_true.svg}}",
        args.output.display()
    );
    Ok(())
}

/// The regression at the runs' last evaluation: every kind with cross-validation.
fn fit_plain(args: &Args, xy: &Xy, kinds: &[Kind]) -> Result<Outcome> {
    let (x, y, ids) = (&xy.x, &xy.y, &xy.ids);
    let mut report = Vec::new();
    let mut preds: Vec<Prediction> = Vec::new();
    let mut fitted: Vec<Candidate> = Vec::new();
    let started = std::time::Instant::now();
    for (kind, f) in fit_kinds(kinds, x, y, args.folds, args.seed)? {
        for k in 0..args.folds {
            let idx: Vec<usize> = (0..x.len()).filter(|&i| f.fold_of[i] == k).collect();
            let tr: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
            let pr: Vec<f64> = idx.iter().map(|&i| f.oof[i]).collect();
            report.push(ReportRow::new(kind.name(), format!("fold-{k}"), score(&tr, &pr), idx.len()));
        }
        let s = score(y, &f.oof);
        log::info!(
            "{:>10}: cross-validated Spearman {:.2} ({:.1}s)",
            kind.name(),
            s.spearman * 100.0,
            started.elapsed().as_secs_f64()
        );
        report.push(ReportRow::new(kind.name(), "oof".into(), s, x.len()));
        for i in 0..x.len() {
            preds.push(Prediction {
                regressor: kind.name(),
                split: "oof".into(),
                fold: f.fold_of[i] as i32,
                mixture_id: ids[i],
                truth: y[i],
                predicted: f.oof[i],
            });
        }
        let oof = f.oof.clone();
        fitted.push(Candidate {
            kind,
            cv_spearman: s.spearman,
            model: f.model,
            oof_at: Box::new(move |i, _| oof[i]),
            oof_mixture: None,
        });
    }
    Ok(Outcome { report, preds, fitted, horizon: String::new() })
}

/// Scores every candidate on a held-out dataset file. A row whose weights are a training
/// mixture's is predicted out of fold (by the fold model that held that mixture out), so a
/// file of the same runs at a later step is a fair test; a horizon model predicts each row
/// at the row's own tokens.
fn evaluate(
    file: &std::path::Path,
    train: &Xy,
    target: &Target,
    fitted: &[Candidate],
    report: &mut Vec<ReportRow>,
    preds: &mut Vec<Prediction>,
) -> Result<()> {
    let tt: Table = read_parquet(file, Schema::get("dataset"))?;
    check_mixtures(&tt)?;
    let test = load_xy(&tt, Some(&train.domains), target)?;
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("test").to_string();
    let training: Vec<Option<usize>> = test.x.iter().map(|w| train.x.iter().position(|v| same_mixture(v, w))).collect();
    let n_train = training.iter().filter(|t| t.is_some()).count();
    // A target law's training mixtures are its target-scale runs' (scored with each left out).
    let proxies_fitted = fitted.iter().any(|c| c.kind != Kind::TargetLaw);
    if n_train > 0 && proxies_fitted {
        log::info!(
            "{}: {n_train} of {} rows are training mixtures: each is scored by the fold model that held it out",
            file.display(),
            test.x.len()
        );
    }
    for c in fitted {
        let mut p = vec![0.0; test.x.len()];
        // Fresh mixtures, grouped by tokens (a horizon model predicts at each row's own).
        let mut by_tokens: Vec<(u64, Vec<usize>)> = Vec::new();
        for i in 0..test.x.len() {
            // A training mixture the model did not fit (left out of a law) is a fresh one.
            let oof = training[i]
                .map(|r| (c.oof_at)(r, test.tokens[i]))
                .filter(|v| v.is_finite())
                .or_else(|| c.oof_mixture.as_ref().and_then(|f| f(&test.x[i])));
            match oof {
                Some(v) => p[i] = v,
                None => {
                    let t = if matches!(c.model, Model::Horizon(_)) { test.tokens[i] } else { 0 };
                    match by_tokens.iter_mut().find(|(k, _)| *k == t) {
                        Some((_, v)) => v.push(i),
                        None => by_tokens.push((t, vec![i])),
                    }
                }
            }
        }
        for (t, rows) in by_tokens {
            let m = match &c.model {
                Model::Horizon(h) => Model::Horizon(Box::new(h.at(t))),
                other => other.clone(),
            };
            let xs: Vec<Vec<f64>> = rows.iter().map(|&i| test.x[i].clone()).collect();
            for (&i, v) in rows.iter().zip(predict_many(&m, &xs)?) {
                p[i] = v;
            }
        }
        let s = score(&test.y, &p);
        log::info!("{:>10}: Spearman {:.2} on {}", c.kind.name(), s.spearman * 100.0, file.display());
        report.push(ReportRow::new(c.kind.name(), format!("test:{stem}"), s, test.x.len()));
        for i in 0..test.x.len() {
            preds.push(Prediction {
                regressor: c.kind.name(),
                split: format!("test:{stem}"),
                fold: -1,
                mixture_id: test.ids[i],
                truth: test.y[i],
                predicted: p[i],
            });
        }
    }
    Ok(())
}
