//! Mixtures: priors, the RegMix Dirichlet sampler, constraints, and mixture files.
//!
//! - [`prior`]: a domain's share of training tokens, from a manifest or a `prior.json`.
//! - [`sampler`]: the paper's sampler (sail-sg/regmix `mixture_config/synthesize_mixture.py`)
//!   and the Dirichlet draw that `optimize` reuses.
//! - [`io`]: `mixtures.parquet`, the paper's mixture CSV, and regmix YAML configs.
//!
//! **Invariant:** this crate knows nothing of models or training; `optimize` and
//! `sample-mixtures` share it so that proxies and simulated mixtures come from one sampler.

pub mod io;
pub mod prior;
pub mod sampler;

pub use io::Mixtures;
pub use prior::Prior;
pub use sampler::{Sampler, SamplerParams};
