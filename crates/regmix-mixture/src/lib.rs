//! Mixtures: priors, the RegMix Dirichlet sampler, constraints, and mixture files.
//!
//! - [`prior`]: a domain's share of training tokens, from a manifest or a `prior.json`.
//! - [`sampler`]: the paper's sampler (sail-sg/regmix `mixture_config/synthesize_mixture.py`)
//!   for the proxies' mixtures, and the plain Dirichlet draw. `optimize` simulates its
//!   candidates from Dirichlet(prior × strength), as the paper's search notebook does, not
//!   from the proxies' sampler.
//! - [`io`]: `mixtures.parquet`, the paper's mixture CSV, and regmix YAML configs.
//! - [`optimum`]: `optimum.parquet` (the recommended mixture and its gain over the prior),
//!   written by `optimize`, read by `target-train` and `report`.
//!
//! **Invariant:** this crate knows nothing of models or training.

pub mod io;
pub mod optimum;
pub mod prior;
pub mod sampler;

pub use io::Mixtures;
pub use optimum::{Choice, Gain, Optimum, Recommendation};
pub use prior::Prior;
pub use sampler::{Sampler, SamplerParams};
