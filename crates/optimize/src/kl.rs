//! `--kl-to-prior`: the weight λ of a pull toward the prior, λ·KL(w ‖ prior) added to the
//! predicted target (olmix's hedge against a regression that trusts itself too far from the
//! mixtures it saw). `auto` chooses λ on held-out runs, never by hand: the λ of a fixed grid
//! whose objective ranks the held-out runs' measured target best (Spearman), the smaller λ on
//! a tie.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use regmix_core::schema::Schema;
use regmix_core::table::read_parquet;
use regmix_regress::metrics::spearman;
use regmix_regress::saved::load_xy;
use regmix_regress::{predict_many, Model, SavedFit};

use crate::search::Kl;

/// The λ tried by `auto`, smallest first.
pub const GRID: [f64; 12] = [0.0, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];
/// The fewest held-out runs `auto` ranks.
pub const MIN_HOLDOUT: usize = 5;

/// How λ was chosen.
pub struct Choice {
    pub lambda: f64,
    /// (λ, Spearman of the objective against the held-out target) for every λ tried.
    pub table: Vec<(f64, f64)>,
    pub holdout: PathBuf,
    pub rows: usize,
}

/// The model's prediction for each held-out row, at the row's own tokens for a horizon model.
fn predictions(saved: &SavedFit, x: &[Vec<f64>], tokens: &[u64]) -> Result<Vec<f64>> {
    match &saved.model {
        Model::Horizon(h) => {
            let mut out = vec![0.0; x.len()];
            for i in 0..x.len() {
                out[i] = predict_many(&Model::Horizon(Box::new(h.at(tokens[i]))), &x[i..i + 1])?[0];
            }
            Ok(out)
        }
        m => predict_many(m, x),
    }
}

/// Chooses λ on the runs of `holdout` (a dataset file, e.g. `collect --targets` of target
/// runs no fit has read).
pub fn choose(saved: &SavedFit, prior: &[f64], holdout: &Path) -> Result<Choice> {
    let t = read_parquet(holdout, Schema::get("dataset"))?;
    let xy = load_xy(&t, Some(&saved.domains), &saved.target)?;
    if xy.x.len() < MIN_HOLDOUT {
        bail!(
            "{}: {} runs with a value for `{}`; --kl-to-prior auto ranks at least {MIN_HOLDOUT}",
            holdout.display(),
            xy.x.len(),
            saved.target.expr
        );
    }
    let pred = predictions(saved, &xy.x, &xy.tokens)?;
    let kl: Vec<f64> = xy.x.iter().map(|w| Kl::divergence(prior, w)).collect();
    let table: Vec<(f64, f64)> = GRID
        .iter()
        .map(|&l| {
            let obj: Vec<f64> = pred.iter().zip(&kl).map(|(p, k)| p + l * k).collect();
            (l, spearman(&xy.y, &obj))
        })
        .collect();
    let best = table.iter().copied().fold((f64::NAN, f64::NEG_INFINITY), |b, (l, s)| if s > b.1 { (l, s) } else { b });
    if !best.1.is_finite() {
        bail!("{}: the held-out target does not vary; nothing to choose λ by", holdout.display());
    }
    Ok(Choice { lambda: best.0, table, holdout: holdout.to_path_buf(), rows: xy.x.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_is_zero_at_the_prior_and_grows_away_from_it() {
        let p = [0.5, 0.3, 0.2];
        assert_eq!(Kl::divergence(&p, &p), 0.0);
        let near = Kl::divergence(&p, &[0.45, 0.35, 0.2]);
        let far = Kl::divergence(&p, &[0.1, 0.1, 0.8]);
        assert!(near > 0.0 && far > near, "{near} {far}");
        assert_eq!(Kl::divergence(&p, &[1.0, 0.0, 0.0]), (2.0f64).ln());
        assert!(Kl::divergence(&[1.0, 0.0], &[0.5, 0.5]).is_infinite());
    }
}
