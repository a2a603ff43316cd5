//! Regression of a target (a validation loss or a blend of them) on mixture weights.
//!
//! - [`model`]: the regressors behind one [`Model`] type (serialisable), refitting; the
//!   horizon model ([`model::Horizon`]), a variant whose laws each hold a [`Model`].
//! - [`cv`]: K-fold cross-validation ([`fit_cv`]): out-of-fold predictions, final model.
//! - [`linear`]: linear (the paper's baseline) and log-linear (Data Mixing Laws).
//! - [`law`]: the loss at another training length, a power law in tokens per domain, and its
//!   fit to evaluation curves. [`horizon`]: its asymptote and scale regressed on the
//!   weights with cross-validation.
//! - [`gp`]: a Gaussian process with one length-scale per domain on log weights.
//! - [`linalg`]: Cholesky, solves and inverse for the GP's marginal likelihood.
//! - [`xgb`]: gradient-boosted trees through XGBoost.
//! - [`score`]: a fitted model prepared for scoring millions of mixtures (`optimize`), and
//!   [`score::predict_many`]; XGBoost's trees flattened for it in [`trees`].
//! - [`saved`]: the fitted-model contract, `model.json` ([`SavedFit`]), and a dataset's rows
//!   as the regression sees them ([`saved::load_xy`]).
//! - [`metrics`]: Spearman, Pearson, MSE, MAE. [`target`]: target expressions.
//! - [`transfer`]: the target law (`fit --target-runs`): each domain's loss in the data that
//!   helps it, fitted on target-scale runs, which domain helps which from the proxies; and its
//!   bounded least squares.
//! - [`agreement`]: how one ranking of mixtures agrees with another (pairwise accuracy, the
//!   decisions against the prior, a paired bootstrap) and the recommended proxy recipe, for
//!   `calibrate`. It depends on [`metrics`] only.
//!
//! Modules depend one way (a test in `pipeline-tests` fails on a circle), from the bottom:
//! `law`, `linalg`, `linear`, `xgb`, `metrics` and `target` use no other module; `gp` uses
//! `linalg` (and `metrics` in its tests); `transfer` `linalg` and `metrics`; `model` the
//! regressors, `law` and `transfer`; `trees` `xgb`; `score` `model`, `law`, `trees`,
//! `transfer` and the regressors; `cv` `model`, `score` and `xgb`; `horizon` `cv`, `model` and
//! `law`; `saved` `model`, `trees` and `target`.
//!
//! **Invariant:** the only file this crate reads or writes is its own contract, `model.json`
//! ([`saved`]); datasets come in as tables the stages have read.

pub mod agreement;
pub mod cv;
pub mod gp;
pub mod horizon;
pub mod law;
pub mod linalg;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod saved;
pub mod score;
pub mod target;
pub mod transfer;
pub mod trees;
pub mod xgb;

pub use cv::{ensemble_of, fit_cv, Fitted};
pub use model::{Kind, Model};
pub use saved::SavedFit;
pub use score::{predict_many, Scorer};

/// True where the AVX2+FMA copies of the hot loops ([`score`], [`trees`], [`linalg`]) can run.
pub(crate) fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Deterministic mixture-like rows (`n` rows of `d` weights summing to 1) for the unit tests.
#[cfg(test)]
mod test_rows {
    pub fn rows(n: usize, d: usize) -> Vec<Vec<f64>> {
        (0..n)
            .map(|i| {
                let mut w: Vec<f64> =
                    (0..d).map(|k| (((i * 7919 + k * 104_729) % 1009) as f64 / 1009.0).powi(3)).collect();
                let s: f64 = w.iter().sum();
                w.iter_mut().for_each(|x| *x /= s);
                w
            })
            .collect()
    }
}
