//! Parameter initialisation, shared by every backend so that the same seed gives the same
//! starting point on any device.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::{Config, Float, Layout};

/// Normal(0, init_std) for the embedding and every linear weight, with the two projections
/// that write into the residual stream (`o_proj`, `down_proj`) scaled by 1/√(2·n_layer) as
/// in GPT-2; norm weights are one. Draws are made in f64 in layout order from
/// `ChaCha8(seed)`, then rounded to `T`, so f32 and f64 models start at the same point.
pub fn init_params<T: Float>(cfg: &Config, layout: &Layout, seed: u64) -> Vec<T> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(layout.len());
    let residual_scale = 1.0 / (2.0 * cfg.n_layer as f64).sqrt();
    for t in &layout.tensors {
        if t.shape.len() == 1 {
            out.extend(std::iter::repeat_n(T::ONE, t.numel()));
            continue;
        }
        let std = if t.name.ends_with("o_proj.weight") || t.name.ends_with("down_proj.weight") {
            cfg.init_std * residual_scale
        } else {
            cfg.init_std
        };
        let normal = Normal::new(0.0, std).expect("finite std");
        out.extend((0..t.numel()).map(|_| T::from_f64(normal.sample(&mut rng))));
    }
    out
}
