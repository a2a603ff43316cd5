//! The training engine behind `proxy-train` and `target-train`.
//!
//! - [`data`]: the shards as per-domain token streams, the mixture sampler, the fixed
//!   validation windows;
//! - [`train`]: the loop (schedules, gradient accumulation, clipping, AdamW through the
//!   [`regmix_model::Backend`]), evaluation, resumption;
//! - [`checkpoint`], [`metrics`], [`hf`]: what a run writes.

pub mod backends;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod hf;
pub mod metrics;
pub mod train;

pub use train::{Outcome, Run, RunDir, Schedule, TrainSpec};
