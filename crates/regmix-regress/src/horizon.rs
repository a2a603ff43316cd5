//! The loss at another training length, fitted: every domain's law ([`crate::law`]) with its
//! loss at t_ref (E + B) and ln B regressed on the mixture weights by one kind of regressor,
//! with the same folds for every law ([`fit_laws_cv`]), so that the composite target is
//! predicted out of fold at any horizon. The fitted model is [`crate::model::Horizon`], a
//! [`Model`] variant; its scorer is in [`crate::score`].

use anyhow::Result;

use crate::cv::{fit_kinds, Fitted};
use crate::law::{value, CurveFit, ASSUMPTION};
use crate::model::{Horizon, Kind, Law};

/// One domain's fitted curves as a term of the target.
pub struct LawInput {
    pub column: String,
    pub coef: f64,
    pub fit: CurveFit,
}

/// A horizon model of one regressor kind fitted with cross-validation: the out-of-fold E and
/// ln B of every run (per law), so the composite can be predicted out of fold at any horizon.
pub struct HorizonCv {
    pub kind: Kind,
    pub horizon: Horizon,
    pub fold_of: Vec<usize>,
    pub at_ref_oof: Vec<Vec<f64>>,
    pub log_b_oof: Vec<Vec<f64>>,
}

impl HorizonCv {
    /// Each training run's target at `tokens`, predicted by the fold model that held it out.
    pub fn oof_at(&self, tokens: u64) -> Vec<f64> {
        (0..self.horizon.x.len()).map(|r| self.oof_of(r, tokens)).collect()
    }

    /// Training run `r`'s target at `tokens`, out of fold.
    pub fn oof_of(&self, r: usize, tokens: u64) -> f64 {
        let h = &self.horizon;
        h.laws
            .iter()
            .enumerate()
            .map(|(j, l)| l.coef * value(self.at_ref_oof[j][r], self.log_b_oof[j][r], h.decay(l, tokens)))
            .sum()
    }
}

/// Regresses every law's E and ln B on the weights `x` with each of `kinds` (the same folds
/// for all, so the composite's out-of-fold predictions are out of fold), one [`HorizonCv`]
/// per kind.
pub fn fit_laws_cv(
    kinds: &[Kind],
    x: &[Vec<f64>],
    laws: &[LawInput],
    at_tokens: u64,
    t_ref: f64,
    fit_tokens: [u64; 2],
    folds: usize,
    seed: u64,
) -> Result<Vec<HorizonCv>> {
    use rayon::prelude::*;
    // Per law: the fitted kinds of E and of ln B.
    type Kinds = Vec<(Kind, Fitted)>;
    let per_law: Vec<(Kinds, Kinds)> = laws
        .par_iter()
        .map(|l| {
            let lb: Vec<f64> = l.fit.b.iter().map(|b| b.ln()).collect();
            let a: Vec<f64> = l.fit.e.iter().zip(&l.fit.b).map(|(e, b)| e + b).collect();
            Ok((fit_kinds(kinds, x, &a, folds, seed)?, fit_kinds(kinds, x, &lb, folds, seed)?))
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    for (k, &kind) in kinds.iter().enumerate() {
        let mut built = Vec::new();
        let (mut at_ref_oof, mut b_oof) = (Vec::new(), Vec::new());
        let mut fold_of = Vec::new();
        for (l, (es, bs)) in laws.iter().zip(&per_law) {
            let (e, b) = (&es[k].1, &bs[k].1);
            fold_of = e.fold_of.clone();
            at_ref_oof.push(e.oof.clone());
            b_oof.push(b.oof.clone());
            built.push(Law {
                column: l.column.clone(),
                coef: l.coef,
                beta: l.fit.beta,
                curve_rmse: l.fit.rmse,
                clamped: l.fit.clamped,
                at_ref: e.model.clone(),
                log_b: b.model.clone(),
                at_ref_of_run: l.fit.e.iter().zip(&l.fit.b).map(|(e, b)| e + b).collect(),
                log_b_of_run: l.fit.b.iter().map(|b| b.ln()).collect(),
            });
        }
        let horizon =
            Horizon { at_tokens, t_ref, fit_tokens, assumption: ASSUMPTION.to_string(), laws: built, x: x.to_vec() };
        out.push(HorizonCv { kind, horizon, fold_of, at_ref_oof, log_b_oof: b_oof });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::law::{fit_curves, Curve};
    use crate::model::Model;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn the_composite_at_the_last_evaluation_tracks_the_observed_losses() {
        // Two domains whose curves depend on the weight of the first: E = 3 − w, B = 1 + 2w.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let tokens: Vec<f64> = (0..6).map(|i| 20_000.0 * 1.6f64.powi(i)).collect();
        let t_ref = tokens[5];
        let x: Vec<Vec<f64>> = (0..40)
            .map(|_| {
                let w: f64 = rng.random();
                vec![w, 1.0 - w]
            })
            .collect();
        let curves = |scale: f64, beta: f64| -> Vec<Curve> {
            x.iter()
                .map(|w| Curve {
                    tokens: tokens.clone(),
                    loss: tokens
                        .iter()
                        .map(|t| scale * (3.0 - w[0] + (1.0 + 2.0 * w[0]) * (t / t_ref).powf(-beta)))
                        .collect(),
                })
                .collect()
        };
        let laws: Vec<LawInput> = [(1.0, 0.5), (0.8, 0.9)]
            .iter()
            .enumerate()
            .map(|(j, &(scale, beta))| LawInput {
                column: format!("valid_loss.d{j}"),
                coef: 0.5,
                fit: fit_curves(&curves(scale, beta), t_ref).unwrap(),
            })
            .collect();
        let cv = fit_laws_cv(&[Kind::Gp], &x, &laws, t_ref as u64, t_ref, [20_000, t_ref as u64], 5, 1).unwrap();
        let observed: Vec<f64> = x.iter().map(|w| 0.9 * (4.0 + w[0])).collect();
        let oof = cv[0].oof_at(t_ref as u64);
        let worst = oof.iter().zip(&observed).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 0.01, "largest out-of-fold error at the last evaluation {worst}");
        let fitted = crate::predict_many(&Model::Horizon(Box::new(cv[0].horizon.clone())), &x).unwrap();
        let worst = fitted.iter().zip(&observed).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 0.01, "largest in-sample error {worst}");
    }
}
