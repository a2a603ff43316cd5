//! `fit --at-tokens N`: the runs' loss curves from the trajectories, one power law per
//! validation domain of the target ([`regmix_regress::law`]), E and ln B regressed on the
//! weights ([`regmix_regress::horizon`]), the target predicted at N tokens.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use regmix_core::columns::{self, VALID_LOSS};
use regmix_core::digest;
use regmix_core::table::Table;
use regmix_core::trajectories::{Point, Trajectories};
use regmix_regress::horizon::{fit_laws_cv, HorizonCv, LawInput};
use regmix_regress::law::{fit_curves, Curve, ASSUMPTION, MIN_POINTS};
use regmix_regress::metrics::{score, Scores};
use regmix_regress::saved::Xy;
use regmix_regress::target::Target;
use regmix_regress::{Kind, Model};
use regmix_spec::{Schedule, TrainSpec};

use crate::{Args, Candidate, Outcome, Prediction, ReportRow};

/// The trajectories of the dataset: `--trajectories`, or the file the dataset names beside
/// it; either way it must be the file collect wrote with these rows (its sha256).
fn read_trajectories(args: &Args, t: &Table) -> Result<Trajectories> {
    let name = t.metadata.get(regmix_core::keys::TRAJECTORIES).cloned().unwrap_or_default();
    let want = t.metadata.get("regmix.trajectories_sha256").cloned().unwrap_or_default();
    if name.is_empty() || want.is_empty() {
        bail!(
            "{}: the dataset names no trajectories (imported results have none); --at-tokens needs runs gathered by collect --runs or --targets",
            args.dataset.display()
        );
    }
    let path = args.trajectories.clone().unwrap_or_else(|| args.dataset.with_file_name(&name));
    let have = digest::sha256_file(&path)?;
    if have != want {
        bail!(
            "{}: not the trajectories of {} (sha256 {} here, {} recorded by collect): collect again, or give the file it wrote",
            path.display(),
            args.dataset.display(),
            &have[..12],
            &want[..12.min(want.len())]
        );
    }
    Ok(Trajectories::read(&path)?)
}

/// A term of the target: its coefficient, its column, and its domain's index among the
/// trajectories' evaluation domains.
type Term = (f64, String, usize);

pub(crate) fn fit(args: &Args, t: &Table, target: &Target, xy: &Xy, kinds: &[Kind], at_tokens: u64) -> Result<Outcome> {
    let traj = read_trajectories(args, t)?;
    log_assumption(&traj);
    let terms = target_terms(target, &traj)?;
    let RunCurves { keep, curves, excluded } = run_curves(args, &traj, xy, &terms)?;
    let t_ref = curves.iter().flatten().flat_map(|c| c.tokens.iter()).fold(0.0f64, |m, t| m.max(*t));
    let t_min = curves.iter().flatten().flat_map(|c| c.tokens.iter()).fold(f64::INFINITY, |m, t| m.min(*t));
    if (at_tokens as f64) < t_ref {
        bail!(
            "--at-tokens {at_tokens} is below the runs' {} tokens: the law extrapolates forward; fit without --at-tokens for the runs' own horizon",
            t_ref as u64
        );
    }
    let mut report = Vec::new();
    let laws = fit_term_laws(&terms, &curves, t_ref, &mut report)?;
    let x: Vec<Vec<f64>> = keep.iter().map(|&i| xy.x[i].clone()).collect();
    let fit_tokens = [t_min as u64, t_ref as u64];
    let started = std::time::Instant::now();
    let cvs = fit_laws_cv(kinds, &x, &laws, at_tokens, t_ref, fit_tokens, args.folds, args.seed)?;
    let mut preds = Vec::new();
    let mut fitted = Vec::new();
    for cv in cvs {
        fitted.push(score_candidate(args, xy, &keep, cv, at_tokens, started, &mut report, &mut preds));
    }
    let horizon = serde_json::json!({
        "at_tokens": at_tokens,
        "t_ref": t_ref,
        "fit_tokens": fit_tokens,
        "until_tokens": args.until_tokens,
        "assumption": ASSUMPTION,
        "excluded": excluded,
    })
    .to_string();
    Ok(Outcome { report, preds, fitted, horizon })
}

/// Logs the law's assumption, with a warning when the runs' schedule breaks it.
fn log_assumption(traj: &Trajectories) {
    if let Some(w) = schedule_warning(&traj.train) {
        log::warn!("{w}");
    }
    log::info!("the law's assumption: {ASSUMPTION}");
}

/// The warning the runs' training settings (the trajectories' `regmix.train`) call for: a
/// schedule that is not constant after warm-up breaks the law's assumption. None for a
/// constant one and for curves without settings (imported: `{"imported": FILE}`, or null).
fn schedule_warning(train: &serde_json::Value) -> Option<String> {
    if train.is_null() || train.get("imported").is_some() {
        return None;
    }
    match serde_json::from_value::<TrainSpec>(train.clone()) {
        Ok(t) if t.schedule == Schedule::Constant => None,
        Ok(t) => Some(format!(
            "the runs' learning-rate schedule is {}, not constant after warm-up: {ASSUMPTION}; a decaying schedule bends the curves and the law fits them less well",
            serde_json::to_string(&t.schedule).expect("a schedule serialises")
        )),
        Err(e) => Some(format!(
            "the trajectories' training settings (regmix.train) are not readable ({e}): their schedule is not checked"
        )),
    }
}

/// The target's terms as evaluation domains; refuses a term that is no validation loss of
/// the trajectories.
fn target_terms(target: &Target, traj: &Trajectories) -> Result<Vec<Term>> {
    let mut terms: Vec<Term> = Vec::new();
    for (coef, col) in &target.terms {
        let d = col.strip_prefix(VALID_LOSS).and_then(|d| traj.eval_domains.iter().position(|e| e == d));
        match d {
            Some(j) => terms.push((*coef, col.clone(), j)),
            None => bail!(
                "--at-tokens: the target's column `{col}` is not a validation loss of the trajectories ({})",
                columns::wide_all(VALID_LOSS, &traj.eval_domains).join(", ")
            ),
        }
    }
    Ok(terms)
}

/// The runs' curves the laws are fitted to.
struct RunCurves {
    /// The dataset's rows (indices into `xy`) whose every curve has enough points.
    keep: Vec<usize>,
    /// Per term, the curve of each kept run, in `keep`'s order.
    curves: Vec<Vec<Curve>>,
    /// The runs left out, and why.
    excluded: Vec<String>,
}

/// Every run's curve on every term's domain: evaluations after warm-up, up to
/// `--until-tokens`. A run with a curve of fewer than [`MIN_POINTS`] points is left out
/// (logged); fewer than two runs per fold left is an error.
fn run_curves(args: &Args, traj: &Trajectories, xy: &Xy, terms: &[Term]) -> Result<RunCurves> {
    let until = args.until_tokens.unwrap_or(u64::MAX);
    let mut by_run: HashMap<u32, Vec<&Point>> = HashMap::new();
    for p in &traj.points {
        by_run.entry(p.mixture_id).or_default().push(p);
    }
    let mut keep: Vec<usize> = Vec::new();
    let mut curves: Vec<Vec<Curve>> = vec![Vec::new(); terms.len()];
    let mut excluded: Vec<String> = Vec::new();
    for (i, id) in xy.ids.iter().enumerate() {
        let Some(points) = by_run.get(id) else {
            bail!("{}: mixture {id} of the dataset has no evaluations in the trajectories", args.dataset.display());
        };
        match curves_of_run(*id, points, terms, until) {
            Err(why) => excluded.push(why),
            Ok(mine) => {
                keep.push(i);
                for (k, c) in mine.into_iter().enumerate() {
                    curves[k].push(c);
                }
            }
        }
    }
    if !excluded.is_empty() {
        log::warn!(
            "left out {} runs with fewer than {MIN_POINTS} finite evaluations for the law: {}",
            excluded.len(),
            excluded.join(", ")
        );
    }
    if keep.len() < 2 * args.folds {
        bail!(
            "{} runs have curves the law can fit; {}-fold cross-validation needs at least {}",
            keep.len(),
            args.folds,
            2 * args.folds
        );
    }
    Ok(RunCurves { keep, curves, excluded })
}

/// Run `id`'s curve on each term's domain, from its evaluations after warm-up up to
/// `until` tokens; or, when one has fewer than [`MIN_POINTS`] points, why the run is left out.
fn curves_of_run(id: u32, points: &[&Point], terms: &[Term], until: u64) -> std::result::Result<Vec<Curve>, String> {
    let mut mine = Vec::new();
    let mut short = None;
    for (_, col, j) in terms {
        let mut c = Curve::default();
        for p in points.iter().filter(|p| !p.warmup && p.tokens > 0 && p.tokens <= until) {
            if let Some(l) = p.losses[*j] {
                c.tokens.push(p.tokens as f64);
                c.loss.push(l);
            }
        }
        if c.tokens.len() < MIN_POINTS && short.is_none() {
            short = Some(format!(
                "{id} ({} evaluations of {col} after warm-up{})",
                c.tokens.len(),
                if until < u64::MAX { format!(" up to {until} tokens") } else { String::new() }
            ));
        }
        mine.push(c);
    }
    match short {
        Some(why) => Err(why),
        None => Ok(mine),
    }
}

/// Fits each term's power law to the runs' curves (tokens relative to `t_ref`), adding a
/// report row of how well each fits; returns the laws.
fn fit_term_laws(
    terms: &[Term],
    curves: &[Vec<Curve>],
    t_ref: f64,
    report: &mut Vec<ReportRow>,
) -> Result<Vec<LawInput>> {
    let mut laws = Vec::new();
    for ((coef, col, _), cs) in terms.iter().zip(curves) {
        let f = fit_curves(cs, t_ref).with_context(|| format!("the law of {col}"))?;
        log::info!(
            "law of {col}: β = {:.3}, curve rmse {:.4} over {} evaluations of {} runs{}",
            f.beta,
            f.rmse,
            f.points,
            cs.len(),
            if f.clamped > 0 {
                format!(" ({} curves did not fall: scale held at its floor)", f.clamped)
            } else {
                String::new()
            }
        );
        let (obs, fitted): (Vec<f64>, Vec<f64>) = cs
            .iter()
            .zip(f.e.iter().zip(&f.b))
            .flat_map(|(c, (e, b))| {
                c.tokens.iter().zip(&c.loss).map(move |(t, l)| (*l, e + b * (t / t_ref).powf(-f.beta)))
            })
            .unzip();
        let mut row = ReportRow::new(
            "power-law",
            format!("law:{}", col.trim_start_matches(VALID_LOSS)),
            score(&obs, &fitted),
            cs.len(),
        );
        row.exponent = Some(f.beta);
        row.curve_rmse = Some(f.rmse);
        report.push(row);
        laws.push(LawInput { column: col.clone(), coef: *coef, fit: f });
    }
    Ok(laws)
}

/// Scores one regressor's cross-validated laws: per fold and out of fold at `at_tokens`
/// (against the curves) and at each run's last evaluation (against its losses), adding the
/// report rows and out-of-fold predictions; returns it as a candidate model.
fn score_candidate(
    args: &Args,
    xy: &Xy,
    keep: &[usize],
    cv: HorizonCv,
    at_tokens: u64,
    started: std::time::Instant,
    report: &mut Vec<ReportRow>,
    preds: &mut Vec<Prediction>,
) -> Candidate {
    let n = keep.len();
    let kind = cv.kind;
    let truth = cv.horizon.curves_at(at_tokens);
    let oof = cv.oof_at(at_tokens);
    for k in 0..args.folds {
        let idx: Vec<usize> = (0..n).filter(|&i| cv.fold_of[i] == k).collect();
        let tr: Vec<f64> = idx.iter().map(|&i| truth[i]).collect();
        let pr: Vec<f64> = idx.iter().map(|&i| oof[i]).collect();
        report.push(ReportRow::new(kind.name(), format!("fold-{k}"), score(&tr, &pr), idx.len()));
    }
    let s: Scores = score(&truth, &oof);
    // Out of fold at each run's own last evaluation in the dataset, against what it measured.
    let at_own: Vec<f64> = keep.iter().enumerate().map(|(r, &i)| cv.oof_of(r, xy.tokens[i])).collect();
    let observed: Vec<f64> = keep.iter().map(|&i| xy.y[i]).collect();
    let so = score(&observed, &at_own);
    log::info!(
        "{:>10}: cross-validated Spearman {:.2} at {at_tokens} tokens (against the curves), {:.2} at the runs' last evaluation (against the losses) ({:.1}s)",
        kind.name(),
        s.spearman * 100.0,
        so.spearman * 100.0,
        started.elapsed().as_secs_f64()
    );
    report.push(ReportRow::new(kind.name(), "oof".into(), s, n));
    report.push(ReportRow::new(kind.name(), "oof:observed".into(), so, n));
    for i in 0..n {
        preds.push(Prediction {
            regressor: kind.name(),
            split: "oof".into(),
            fold: cv.fold_of[i] as i32,
            mixture_id: xy.ids[keep[i]],
            truth: truth[i],
            predicted: oof[i],
        });
    }
    // Training mixtures of an --evaluate file are found by weights among `keep`'s rows,
    // in xy order; map back.
    let row_of: Vec<Option<usize>> = (0..xy.x.len()).map(|i| keep.iter().position(|&k| k == i)).collect();
    let model = Model::Horizon(Box::new(cv.horizon.clone()));
    let cv_spearman = s.spearman;
    let oof_at = move |i: usize, tokens: u64| -> f64 {
        match row_of[i] {
            Some(r) => cv.oof_of(r, tokens),
            None => f64::NAN,
        }
    };
    Candidate { kind, cv_spearman, model, oof_at: Box::new(oof_at), oof_mixture: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regmix_spec::Config;

    fn train(schedule: Schedule) -> serde_json::Value {
        let t = TrainSpec { schedule, ..TrainSpec::example(Config::preset("micro", 256).unwrap(), 8192) };
        serde_json::to_value(t).unwrap()
    }

    #[test]
    fn a_constant_schedule_calls_for_no_warning() {
        assert_eq!(schedule_warning(&train(Schedule::Constant)), None);
    }

    #[test]
    fn a_cosine_schedule_is_warned_about_naming_it() {
        let w = schedule_warning(&train(Schedule::Cosine { min_lr: 1e-4 })).unwrap();
        assert!(w.starts_with(r#"the runs' learning-rate schedule is {"cosine":{"min_lr":0.0001}}"#), "{w}");
    }

    #[test]
    fn imported_curves_call_for_no_warning() {
        assert_eq!(schedule_warning(&serde_json::json!({"imported": "curves.csv"})), None);
    }

    #[test]
    fn unreadable_settings_are_warned_about() {
        let w = schedule_warning(&serde_json::json!({"tokens": 8192})).unwrap();
        assert!(w.starts_with("the trajectories' training settings (regmix.train) are not readable"), "{w}");
    }
}
