//! Regression of a target (a validation loss or a blend of them) on mixture weights.
//!
//! - [`model`]: the regressors behind one [`Model`] type, K-fold cross-validation, saving.
//! - [`linear`]: linear (the paper's baseline) and log-linear (Data Mixing Laws).
//! - [`gp`]: a Gaussian process with one length-scale per domain on log weights.
//! - [`linalg`]: Cholesky, solves and inverse for the GP's marginal likelihood.
//! - [`xgb`]: gradient-boosted trees through XGBoost.
//! - [`score`]: a fitted model prepared for scoring millions of mixtures (`optimize`).
//! - [`metrics`]: Spearman, Pearson, MSE, MAE. [`target`]: target expressions.
//!
//! **Invariant:** this crate does no file I/O; `fit` and `optimize` read and write.

pub mod gp;
pub mod linalg;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod score;
pub mod target;
pub mod xgb;

pub use model::{ensemble_of, fit_cv, Fitted, Kind, Model};
pub use score::Scorer;

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
