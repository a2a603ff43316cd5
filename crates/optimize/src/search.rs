//! The search: simulate mixtures from Dirichlet(prior × strength) (as the paper's search
//! notebook does; not the proxies' sampler), score them with the fitted model in parallel
//! blocks, keep the best top-k in a streaming heap, and average them.

use std::collections::BinaryHeap;

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use regmix_core::{progress, seed};
use regmix_mixture::sampler::Dirichlet;
use regmix_regress::Scorer;

use crate::constraints::enforce;

/// A kept candidate: predicted target, index of the simulated mixture, weights. Ordered by
/// prediction, then index, so the heap's top is the worst kept and ties break the same way
/// whatever the number of threads.
pub struct Cand {
    pub predicted: f64,
    pub index: u64,
    pub weights: Vec<f64>,
}
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o).is_eq()
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.predicted.total_cmp(&o.predicted).then(self.index.cmp(&o.index))
    }
}

/// What a search found and where its time went.
pub struct Found {
    /// The top-k candidates, best first.
    pub top: Vec<Cand>,
    /// Simulated mixtures that broke no cap (the others are not scored).
    pub feasible: u64,
    /// Thread-seconds spent drawing mixtures and scoring them.
    pub sample_s: f64,
    pub score_s: f64,
}

/// Per-thread state of the search: buffers reused from block to block and a local heap.
struct Local {
    heap: BinaryHeap<Cand>,
    x: Vec<f64>,
    idx: Vec<u64>,
    pred: Vec<f64>,
    w: Vec<f64>,
    feasible: u64,
    sample_s: f64,
    score_s: f64,
}

/// What to search: mixtures simulated from Dirichlet(`alpha`), those within `caps` scored,
/// the best `top_k` kept.
pub struct Space<'a> {
    pub alpha: &'a [f64],
    pub caps: &'a [f64],
    pub samples: u64,
    /// Mixtures drawn and scored at once by one thread.
    pub block: usize,
    pub top_k: usize,
    pub seed: u64,
    /// A pull toward the prior: λ·KL(w ‖ prior) added to every prediction (`--kl-to-prior`).
    pub kl: Option<&'a Kl>,
}

/// The KL-to-prior term of the objective: `lambda` · Σ w ln(w / prior).
pub struct Kl {
    pub lambda: f64,
    pub prior: Vec<f64>,
}

impl Kl {
    /// KL(w ‖ prior) in nats (0 · ln 0 = 0; a weight where the prior is 0 is infinitely far).
    pub fn divergence(prior: &[f64], w: &[f64]) -> f64 {
        w.iter()
            .zip(prior)
            .map(|(x, p)| {
                if *x <= 0.0 {
                    0.0
                } else if *p <= 0.0 {
                    f64::INFINITY
                } else {
                    x * (x / p).ln()
                }
            })
            .sum()
    }

    pub fn penalty(&self, w: &[f64]) -> f64 {
        if self.lambda == 0.0 {
            0.0
        } else {
            self.lambda * Kl::divergence(&self.prior, w)
        }
    }
}

/// The search. Blocks of `block` mixtures run in parallel; each is drawn from its own
/// stream, seeded by (seed, search, `refit`, block index) through [`seed::derive`], scored in
/// one call, and offered to its thread's top-k heap; the heaps are merged at the end. Memory
/// is threads × block × domains, not samples × domains, and the result does not depend on
/// the number of threads. `refit` is 0 for the fitted model and 1 + i for bootstrap refit i,
/// so each refit searches its own mixtures.
pub fn search(scorer: &Scorer, space: &Space, refit: u64) -> Found {
    let Space { alpha, caps, samples, block, top_k, seed, kl } = *space;
    let d = alpha.len();
    let dirichlet = Dirichlet::new(alpha);
    // A block larger than the search is the search (the same single block 0, the same draws).
    let block = block.max(1).min(usize::try_from(samples.max(1)).unwrap_or(usize::MAX));
    let blocks = samples.div_ceil(block as u64);
    let pb = progress::bar(samples, "optimize");
    let offer = |heap: &mut BinaryHeap<Cand>, c: Cand| {
        if heap.len() < top_k {
            heap.push(c);
        } else if heap.peek().is_some_and(|worst| c < *worst) {
            heap.pop();
            heap.push(c);
        }
    };
    let new_local = || Local {
        heap: BinaryHeap::with_capacity(top_k + 1),
        x: Vec::with_capacity(block * d),
        idx: Vec::with_capacity(block),
        pred: vec![0.0; block],
        w: vec![0.0; d],
        feasible: 0,
        sample_s: 0.0,
        score_s: 0.0,
    };
    let merged = (0..blocks)
        .into_par_iter()
        .fold(new_local, |mut st, b| {
            let t0 = std::time::Instant::now();
            let mut rng = ChaCha8Rng::seed_from_u64(seed::derive(&[seed, seed::stream::SEARCH, refit, b]));
            let first = b * block as u64;
            let m = (samples - first).min(block as u64);
            st.x.clear();
            st.idx.clear();
            for i in 0..m {
                dirichlet.sample(&mut rng, &mut st.w);
                if st.w.iter().zip(caps).all(|(x, c)| x <= c) {
                    st.x.extend_from_slice(&st.w);
                    st.idx.push(first + i);
                }
            }
            let t1 = std::time::Instant::now();
            let rows = st.idx.len();
            scorer.score(&st.x, d, &mut st.pred[..rows]);
            if let Some(kl) = kl {
                for r in 0..rows {
                    st.pred[r] += kl.penalty(&st.x[r * d..(r + 1) * d]);
                }
            }
            for r in 0..rows {
                let (p, i) = (st.pred[r], st.idx[r]);
                // Most candidates lose to the worst kept: compare before copying the weights.
                if st.heap.len() < top_k
                    || st.heap.peek().is_some_and(|worst| Cand { predicted: p, index: i, weights: Vec::new() } < *worst)
                {
                    offer(&mut st.heap, Cand { predicted: p, index: i, weights: st.x[r * d..(r + 1) * d].to_vec() });
                }
            }
            st.feasible += rows as u64;
            st.sample_s += (t1 - t0).as_secs_f64();
            st.score_s += t1.elapsed().as_secs_f64();
            pb.inc(m);
            st
        })
        .reduce(new_local, |mut a, b| {
            for c in b.heap {
                offer(&mut a.heap, c);
            }
            a.feasible += b.feasible;
            a.sample_s += b.sample_s;
            a.score_s += b.score_s;
            a
        });
    pb.finish_and_clear();
    Found {
        top: merged.heap.into_sorted_vec(),
        feasible: merged.feasible,
        sample_s: merged.sample_s,
        score_s: merged.score_s,
    }
}

/// The paper's rule: the mean of the top-k candidates, made to satisfy the constraints.
pub fn optimum_of(top: &[Cand], caps: &[f64], min_weight: f64) -> Result<Vec<f64>> {
    let d = caps.len();
    let mut w = vec![0.0; d];
    for c in top {
        for j in 0..d {
            w[j] += c.weights[j] / top.len() as f64;
        }
    }
    enforce(&mut w, caps, min_weight)?;
    Ok(w)
}
