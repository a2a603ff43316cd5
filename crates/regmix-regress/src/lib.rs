//! Regression of a target (a validation loss or a blend of them) on mixture weights.
//!
//! - [`model`]: the regressors behind one [`Model`] type (serialisable), refitting.
//! - [`cv`]: K-fold cross-validation ([`fit_cv`]): out-of-fold predictions, final model.
//! - [`linear`]: linear (the paper's baseline) and log-linear (Data Mixing Laws).
//! - [`horizon`]: the loss at another training length (a power law in tokens per domain,
//!   its asymptote and scale regressed on the weights) and its fit to evaluation curves.
//! - [`gp`]: a Gaussian process with one length-scale per domain on log weights.
//! - [`linalg`]: Cholesky, solves and inverse for the GP's marginal likelihood.
//! - [`xgb`]: gradient-boosted trees through XGBoost.
//! - [`score`]: a fitted model prepared for scoring millions of mixtures (`optimize`), and
//!   [`score::predict_many`].
//! - [`saved`]: the fitted-model contract, `model.json` ([`SavedFit`]), and a dataset's rows
//!   as the regression sees them ([`saved::load_xy`]).
//! - [`metrics`]: Spearman, Pearson, MSE, MAE. [`target`]: target expressions.
//! - [`agreement`]: how one ranking of mixtures agrees with another (pairwise accuracy, the
//!   decisions against the prior, a paired bootstrap) and the recommended proxy recipe, for
//!   `calibrate`. It depends on [`metrics`] only.
//!
//! Modules depend one way: `cv` and `saved` on `score` and `model`, `score` on `model` and
//! `horizon`, `horizon` on `model` and `score`'s regressor scorers, `model` on the regressors.
//!
//! **Invariant:** the only file this crate reads or writes is its own contract, `model.json`
//! ([`saved`]); datasets come in as tables the stages have read.

pub mod agreement;
pub mod cv;
pub mod gp;
pub mod horizon;
pub mod linalg;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod saved;
pub mod score;
pub mod target;
pub mod xgb;

pub use cv::{ensemble_of, fit_cv, Fitted};
pub use model::{Kind, Model};
pub use saved::SavedFit;
pub use score::{predict_many, Scorer};

/// True where the AVX2+FMA copies of the hot loops ([`score`], [`linalg`]) can run.
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
