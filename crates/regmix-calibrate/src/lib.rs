//! Calibration of proxy recipes against target-scale runs, as the stages share it:
//!
//! - [`table`]: the contract `calibration.parquet` (schemas/calibration.json), one row per
//!   proxy recipe, written by `calibrate score` and read by the guardrail.
//! - [`guard`]: whether proxies of given settings are in a regime that ranks mixtures as the
//!   target does: what the calibration measured for these settings or, without one, the
//!   published tokens-per-parameter floor. `proxy-train` and `optimize` say it once.
//!
//! The statistics (Spearman, pairwise accuracy, the paired bootstrap, the recommendation)
//! are `regmix_regress::agreement`'s; this crate holds no arithmetic beyond a ratio.

pub mod guard;
pub mod table;

pub use guard::{Regime, PUBLISHED_TOKENS_PER_PARAM};
pub use table::{Calibration, RecipeRow};
