//! `fit --target-runs FILE…`: the target-scale law ([`regmix_regress::transfer`]). Which
//! domain helps which comes from the proxies (the dataset); how much each domain's data is
//! worth comes from runs at the target's scale (the files given), which is what proxies far
//! below that scale misjudge. Scored by leaving one target mixture out at a time.

use anyhow::{bail, Context, Result};
use regmix_core::columns::{self, VALID_LOSS};
use regmix_core::schema::Schema;
use regmix_core::table::{read_parquet_hashed, Table};
use regmix_regress::metrics::score;
use regmix_regress::saved::{load_xy, Xy};
use regmix_regress::target::Target;
use regmix_regress::transfer::{fit_transfer, groups, same_mixture, Source, TargetLaw, Term};
use regmix_regress::{Kind, Model};

use crate::{check_mixtures, Args, Candidate, Outcome, Prediction, ReportRow};

/// The target-scale runs of every `--target-runs` file, in the fit's domain order.
struct Runs {
    x: Vec<Vec<f64>>,
    /// Per run, per term of the target: the loss.
    losses: Vec<Vec<f64>>,
    ids: Vec<u32>,
    sources: Vec<Source>,
}

/// A term's domain: the target's term must be a domain's loss column.
fn term_domain(column: &str, domains: &[String], expr: &str) -> Result<usize> {
    domains.iter().position(|d| columns::wide(VALID_LOSS, d) == column).with_context(|| {
        format!(
            "target `{expr}`: term `{column}` is not the loss of a training domain ({} for one of {domains:?}); \
             a target law models each domain's loss in that domain's data",
            columns::wide(VALID_LOSS, "<domain>")
        )
    })
}

fn read_runs(files: &[std::path::PathBuf], domains: &[String], target: &Target) -> Result<Runs> {
    let mut runs = Runs { x: Vec::new(), losses: Vec::new(), ids: Vec::new(), sources: Vec::new() };
    let mut tokens_seen: Option<(u64, String)> = None;
    for file in files {
        let (tt, sha256): (Table, String) = read_parquet_hashed(file, Schema::get("dataset"))?;
        if tt.rows() == 0 {
            bail!("{}: no target-scale runs in this file", file.display());
        }
        check_mixtures(&tt)?;
        // Every loss of the target, row by row, before load_xy would leave a row out.
        let per_term: Vec<Vec<f64>> =
            target.terms.iter().map(|(_, c)| tt.f64_values(c)).collect::<regmix_core::Result<_>>()?;
        for r in 0..tt.rows() {
            if let Some(j) = per_term.iter().position(|v| !v[r].is_finite()) {
                bail!("{}: row {r}, field `{}`: {} is not a loss", file.display(), target.terms[j].1, per_term[j][r]);
            }
        }
        let xy = load_xy(&tt, Some(domains), target)?;
        for (r, &tok) in xy.tokens.iter().enumerate() {
            match &tokens_seen {
                None => tokens_seen = Some((tok, file.display().to_string())),
                Some((t0, f0)) if *t0 != tok => bail!(
                    "{}: row {r} was trained for {tok} tokens, but {f0} holds runs of {t0}: a target law is fitted on runs of one training length",
                    file.display()
                ),
                _ => {}
            }
            runs.losses.push(per_term.iter().map(|v| v[r]).collect());
        }
        runs.x.extend(xy.x);
        runs.ids.extend(xy.ids);
        runs.sources.push(Source { path: file.display().to_string(), sha256, rows: tt.rows() });
    }
    Ok(runs)
}

pub(crate) fn fit(args: &Args, t: &Table, target: &Target, xy: &Xy, kinds: &[Kind]) -> Result<Outcome> {
    if !kinds.contains(&Kind::TargetLaw) {
        bail!(
            "--regressor {} with --target-runs: the target-scale runs are fitted by the target law only (--regressor target-law or auto)",
            kinds[0].name()
        );
    }
    let domains = &xy.domains;
    // The terms' domains and the target-scale runs first: a bad file stops the fit before any work.
    let term_domains: Vec<usize> =
        target.terms.iter().map(|(_, column)| term_domain(column, domains, &target.expr)).collect::<Result<_>>()?;
    let runs = read_runs(&args.target_runs, domains, target)?;
    let mut terms = Vec::new();
    for ((coef, column), &d) in target.terms.iter().zip(&term_domains) {
        // The transfer into this domain, on the proxies' rows that have its loss.
        let one = Target { expr: column.clone(), terms: vec![(1.0, column.clone())] };
        let p = load_xy(t, Some(domains), &one)?;
        let transfer = fit_transfer(&p.x, &p.y, d).with_context(|| format!("{}: {column}", args.dataset.display()))?;
        let top: Vec<String> = {
            let mut j: Vec<usize> = (0..domains.len()).filter(|&j| j != d).collect();
            j.sort_by(|a, b| transfer.tau[*b].total_cmp(&transfer.tau[*a]));
            j.iter().take(3).map(|&j| format!("{} {:.2}", domains[j], transfer.tau[j])).collect()
        };
        log::info!(
            "{column}: on the proxies, slope {:.3}, rmse {:.4}; helped most by {}",
            transfer.proxy_slope,
            transfer.proxy_rmse,
            top.join(", ")
        );
        terms.push(Term { column: column.clone(), coef: *coef, domain: d, transfer });
    }
    let mixtures = groups(&runs.x);
    log::info!(
        "target-scale runs: {} runs of {} distinct mixtures from {} files",
        runs.x.len(),
        mixtures.len(),
        args.target_runs.len()
    );
    let mut law = TargetLaw::fit(terms, &runs.x, &runs.losses)?;
    law.sources = runs.sources;
    for l in &law.laws {
        let fits: Vec<String> = law
            .forms
            .iter()
            .zip(&l.params)
            .zip(&l.rmse)
            .map(|((f, p), e)| format!("{f:?}: transfer scale {:.2}, rmse {e:.4}", p[2].exp()))
            .collect();
        log::info!("{}: at the target's scale, {}", l.column, fits.join("; "));
        if law.forms.iter().zip(&l.params).any(|(f, p)| f.flat(p)) {
            log::warn!(
                "{}: at the target's scale this loss does not fall with its domain's data (a form's slope is held at its bound): \
                 the law holds it flat; check that the column is a loss and the runs are alike",
                l.column
            );
        }
    }
    let lomo = law.leave_one_mixture_out()?;
    let observed = law.observed();
    let rho = law.lomo_spearman(&lomo);
    // Per mixture (its runs averaged) for the report; per run for predictions.parquet.
    let mean_of = |v: &[f64], g: &[usize]| g.iter().map(|&i| v[i]).sum::<f64>() / g.len() as f64;
    let (truth, pred): (Vec<f64>, Vec<f64>) = mixtures.iter().map(|g| (mean_of(&observed, g), lomo[g[0]])).unzip();
    log::info!(
        "target-law: left one target mixture out at a time, Spearman {:.2} over {} mixtures",
        rho * 100.0,
        mixtures.len()
    );
    let report = vec![ReportRow::new(Kind::TargetLaw.name(), "lomo".into(), score(&truth, &pred), mixtures.len())];
    let mut preds = Vec::new();
    for (k, g) in mixtures.iter().enumerate() {
        for &i in g {
            preds.push(Prediction {
                regressor: Kind::TargetLaw.name(),
                split: "lomo".into(),
                fold: k as i32,
                mixture_id: runs.ids[i],
                truth: observed[i],
                predicted: lomo[i],
            });
        }
    }
    // An --evaluate row of a target mixture is predicted with that mixture left out.
    let held: Vec<(Vec<f64>, f64)> = mixtures.iter().map(|g| (runs.x[g[0]].clone(), lomo[g[0]])).collect();
    let candidate = Candidate {
        kind: Kind::TargetLaw,
        cv_spearman: rho,
        model: Model::TargetLaw(Box::new(law)),
        oof_at: Box::new(|_, _| f64::NAN),
        oof_mixture: Some(Box::new(move |w: &[f64]| held.iter().find(|(x, _)| same_mixture(x, w)).map(|(_, p)| *p))),
    };
    Ok(Outcome { report, preds, fitted: vec![candidate], horizon: String::new() })
}
