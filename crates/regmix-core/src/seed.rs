//! The one way a seed is derived for a sub-stream: xxh3 of the parts as little-endian u64s.
//!
//! Every random stream that is not the user's seed itself comes from here (a training step's
//! batch, a search block, a bootstrap resample), so two streams never share a seed by an
//! accident of arithmetic (`seed + b` for one loop and `seed + 1000 + b` for another meet at
//! b = 1000), and the streams do not depend on the thread count or the order of work.

/// The seed of the stream named by `parts` (e.g. `[seed, mixture_id, step]`).
pub fn derive(parts: &[u64]) -> u64 {
    // Streamed, so the training step's seed costs no allocation; the digest equals the one of
    // the concatenated bytes (tested below).
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    for p in parts {
        h.update(&p.to_le_bytes());
    }
    h.digest()
}

/// Names of the streams of one process, the first part after the user's seed, so the streams
/// of different jobs never coincide.
pub mod stream {
    /// optimize: block `b` of the simulated mixtures (`[seed, SEARCH, refit, b]`, refit 0 for
    /// the fitted model, 1 + i for bootstrap refit i).
    pub const SEARCH: u64 = 1;
    /// optimize: the resample of bootstrap refit `i` (`[seed, RESAMPLE, i]`).
    pub const RESAMPLE: u64 = 2;
    /// optimize: the model fitted to bootstrap resample `i` (`[seed, REFIT, i]`).
    pub const REFIT: u64 = 3;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_is_xxh3_of_the_little_endian_parts() {
        // The training loop's batch seed was defined this way before this module existed:
        // runs trained before and after it draw the same batches.
        let mut key = [0u8; 24];
        key[..8].copy_from_slice(&42u64.to_le_bytes());
        key[8..16].copy_from_slice(&7u64.to_le_bytes());
        key[16..].copy_from_slice(&3u64.to_le_bytes());
        assert_eq!(derive(&[42, 7, 3]), xxhash_rust::xxh3::xxh3_64(&key));
        assert_ne!(derive(&[42, 7, 3]), derive(&[42, 3, 7]));
    }
}
