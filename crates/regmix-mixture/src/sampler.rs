//! The RegMix mixture sampler, as the paper's `synthesize_mixture.py` does it:
//!
//! 1. q = p^temperature, renormalised (p: the token-share prior);
//! 2. each draw picks one of `strengths` concentrations log-spaced in [min, max] uniformly
//!    and samples w ~ Dirichlet(q · strength);
//! 3. a draw with any w_d above its availability bound b_d is rejected;
//! 4. weights below `min_weight` become 0; the rest are renormalised and rounded to the
//!    `min_weight` grid;
//! 5. `count × oversample` draws are made, near-duplicates (L1 < 1e-5) dropped, and `count`
//!    kept at random.
//!
//! Two deliberate refinements over the paper's script, both documented in the README:
//! rounding puts its residual on the largest weight so every row sums to exactly 1 on the
//! grid, and the bound is checked again after rounding so it holds in the output itself.
//! Same seed, same output: all randomness comes from one ChaCha8 stream seeded by `seed`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use serde::Serialize;

use crate::prior::Prior;
use regmix_core::{Error, Result};

/// The sampler's parameters; defaults are the paper's.
#[derive(Clone, Debug, Serialize)]
pub struct SamplerParams {
    pub count: usize,
    pub seed: u64,
    pub temperature: f64,
    pub min_strength: f64,
    pub max_strength: f64,
    pub strengths: usize,
    pub min_weight: f64,
    pub max_epochs: f64,
    pub target_tokens: Option<u64>,
    pub oversample: usize,
    pub dedup_l1: f64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            count: 512,
            seed: 42,
            temperature: 0.5,
            min_strength: 0.1,
            max_strength: 5.0,
            strengths: 15,
            min_weight: 2e-4,
            max_epochs: 15.0,
            target_tokens: None,
            oversample: 100,
            dedup_l1: 1e-5,
        }
    }
}

/// A configured sampler over one prior.
#[derive(Clone, Debug)]
pub struct Sampler {
    pub params: SamplerParams,
    pub prior: Prior,
    pub tempered: Vec<f64>,
    pub bounds: Vec<f64>,
    pub strengths: Vec<f64>,
}

/// Statistics of one sampling run, for the log and the file's metadata.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SampleStats {
    pub draws: usize,
    pub rejected: usize,
    pub duplicates: usize,
    pub kept: usize,
}

/// Log-spaced values: `n` points from `lo` to `hi` inclusive (numpy's `logspace`).
pub fn logspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![lo];
    }
    let (a, b) = (lo.log10(), hi.log10());
    (0..n).map(|i| 10f64.powf(a + (b - a) * i as f64 / (n - 1) as f64)).collect()
}

/// Draws w ~ Dirichlet(alpha) into `out`, robust for tiny alphas (see [`Dirichlet`]).
pub fn dirichlet<R: Rng + ?Sized>(rng: &mut R, alpha: &[f64], out: &mut [f64]) {
    Dirichlet::new(alpha).sample(rng, out)
}

/// Dirichlet(alpha) with its gamma distributions built once, for drawing millions of
/// mixtures (`optimize`); draws the same numbers as [`dirichlet`] from the same stream.
///
/// Gamma variates with shape a < 1 are formed as G(a+1) · U^(1/a) in log space, because
/// U^(1/a) underflows to 0 for the concentrations RegMix uses (a ≈ 1e-3), which would make
/// every component 0. The result is normalised with a log-sum-exp.
pub struct Dirichlet {
    /// Per component: the gamma to draw, and a itself when a < 1 (the boost U^(1/a)).
    parts: Vec<(Gamma<f64>, Option<f64>)>,
}

impl Dirichlet {
    pub fn new(alpha: &[f64]) -> Self {
        let parts = alpha
            .iter()
            .map(|&a| {
                if a >= 1.0 {
                    (Gamma::new(a, 1.0).unwrap(), None)
                } else {
                    (Gamma::new(a + 1.0, 1.0).unwrap(), Some(a))
                }
            })
            .collect();
        Dirichlet { parts }
    }

    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) {
        debug_assert_eq!(self.parts.len(), out.len());
        let mut max = f64::NEG_INFINITY;
        for (o, (g, small)) in out.iter_mut().zip(&self.parts) {
            let lg = match small {
                None => g.sample(rng).ln(),
                Some(a) => {
                    let g = g.sample(rng).ln();
                    let u: f64 = rng.random::<f64>();
                    // random() is in [0, 1); 1 - u is in (0, 1], so its log is finite.
                    g + (1.0 - u).ln() / a
                }
            };
            *o = lg;
            if lg > max {
                max = lg;
            }
        }
        let mut s = 0.0;
        for o in out.iter_mut() {
            *o = (*o - max).exp();
            s += *o;
        }
        for o in out.iter_mut() {
            *o /= s;
        }
    }
}

/// Zeroes weights below `min_weight`, renormalises, and rounds to the `min_weight` grid with
/// the residual on the largest weight, so the row sums to 1 on the grid.
pub fn snap_to_grid(w: &mut [f64], min_weight: f64) {
    for x in w.iter_mut() {
        if *x < min_weight {
            *x = 0.0;
        }
    }
    let s: f64 = w.iter().sum();
    let steps_total = (1.0 / min_weight).round() as i64;
    let mut steps: Vec<i64> = w.iter().map(|x| (x / s / min_weight).round() as i64).collect();
    let residual = steps_total - steps.iter().sum::<i64>();
    let imax = (0..w.len()).max_by(|&a, &b| steps[a].cmp(&steps[b]).then(b.cmp(&a))).unwrap();
    steps[imax] += residual;
    for (x, k) in w.iter_mut().zip(steps) {
        *x = k as f64 / steps_total as f64;
    }
}

/// The memory the draws may take before deduplication (8 GB).
pub const MAX_DRAW_BYTES: u64 = 8_000_000_000;

impl Sampler {
    pub fn new(prior: Prior, params: SamplerParams) -> Result<Self> {
        let p = &params;
        let bad = |m: &str| Err(Error::Invalid(m.to_string()));
        if p.count == 0 {
            return bad("--count must be at least 1");
        }
        if !(p.min_strength > 0.0 && p.max_strength >= p.min_strength && p.max_strength.is_finite()) {
            return bad("strengths must satisfy 0 < --min-strength <= --max-strength");
        }
        if !(p.min_weight > 0.0 && p.min_weight < 1.0) {
            return bad("--min-weight must be in (0, 1)");
        }
        if !(p.temperature > 0.0 && p.temperature.is_finite()) {
            return bad("--temperature must be a positive number");
        }
        if p.oversample == 0 {
            return bad("--oversample must be at least 1");
        }
        let tempered = prior.tempered(p.temperature);
        if !tempered.iter().all(|q| q.is_finite()) {
            return Err(Error::Invalid(format!(
                "--temperature {}: the tempered prior p^t underflows to 0 for every domain; use a temperature near 1",
                p.temperature
            )));
        }
        let bounds = prior.bounds(p.max_epochs, p.target_tokens)?;
        if bounds.iter().sum::<f64>() < 1.0 {
            return Err(Error::Invalid(format!(
                "the availability bounds sum to {:.4} < 1: no mixture can satisfy them; raise --max-epochs or lower --target-tokens",
                bounds.iter().sum::<f64>()
            )));
        }
        let strengths = if p.min_strength == p.max_strength {
            vec![p.min_strength]
        } else {
            logspace(p.min_strength, p.max_strength, p.strengths)
        };
        Ok(Sampler { params, prior, tempered, bounds, strengths })
    }

    fn within_bounds(&self, w: &[f64]) -> bool {
        w.iter().zip(&self.bounds).all(|(x, b)| *x <= *b + 1e-12)
    }

    /// One draw (steps 2–4) into `w`; false when a bound rejects it.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R, alpha: &mut [f64], w: &mut [f64]) -> bool {
        let s = self.strengths[rng.random_range(0..self.strengths.len())];
        for (a, q) in alpha.iter_mut().zip(&self.tempered) {
            *a = q * s;
        }
        dirichlet(rng, alpha, w);
        if !self.within_bounds(w) {
            return false;
        }
        snap_to_grid(w, self.params.min_weight);
        self.within_bounds(w)
    }

    /// Samples `count` mixtures (steps 1–5).
    pub fn sample(&self) -> Result<(Vec<Vec<f64>>, SampleStats)> {
        let p = &self.params;
        let n = self.prior.domains.len();
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let draws = p
            .count
            .checked_mul(p.oversample)
            .ok_or_else(|| Error::Invalid("--count × --oversample overflows".into()))?;
        // Mixtures are snapped to a grid of --min-weight: no more distinct ones exist than its
        // points, C(1/min_weight + n − 1, n − 1), whatever the draws.
        let steps = (1.0 / p.min_weight).round();
        let grid: f64 = (1..n).map(|k| (steps + k as f64) / k as f64).product();
        if p.count as f64 > grid {
            return Err(Error::Invalid(format!(
                "--count {}: only {grid:.0} distinct mixtures of {n} domains exist on the grid of --min-weight {}",
                p.count, p.min_weight
            )));
        }
        // The draws are kept in memory to remove duplicates: refuse what would not fit.
        let bytes = draws as f64 * (n * 8 + 24) as f64;
        if bytes > MAX_DRAW_BYTES as f64 {
            return Err(Error::Invalid(format!(
                "--count {} × --oversample {} = {draws} draws would need {:.1} GB; lower either (at most {:.1} GB)",
                p.count,
                p.oversample,
                bytes / 1e9,
                MAX_DRAW_BYTES as f64 / 1e9
            )));
        }
        let mut stats = SampleStats { draws, ..Default::default() };
        let pb = regmix_core::progress::bar(draws as u64, "sample");
        let mut alpha = vec![0.0; n];
        let mut w = vec![0.0; n];
        let mut cands: Vec<Vec<f64>> = Vec::new();
        for i in 0..draws {
            if self.draw(&mut rng, &mut alpha, &mut w) {
                cands.push(w.clone());
            } else {
                stats.rejected += 1;
            }
            if i % 65536 == 0 {
                pb.set_position(i as u64);
            }
        }
        pb.finish_and_clear();
        // Drop near-duplicates: sort, then keep a row only if it is far enough from the last kept.
        // Lexicographic by total_cmp: a NaN cannot panic the sort (the snapped weights are
        // multiples of --min-weight, never NaN or −0, so the order is partial_cmp's).
        cands.sort_by(|a, b| {
            a.iter().zip(b).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne()).unwrap_or(a.len().cmp(&b.len()))
        });
        let mut uniq: Vec<Vec<f64>> = Vec::with_capacity(cands.len());
        for c in cands {
            let dup = uniq
                .last()
                .map(|l| l.iter().zip(&c).map(|(x, y)| (x - y).abs()).sum::<f64>() <= p.dedup_l1)
                .unwrap_or(false);
            if dup {
                stats.duplicates += 1;
            } else {
                uniq.push(c);
            }
        }
        if uniq.len() < p.count {
            return Err(Error::Invalid(format!(
                "only {} distinct mixtures passed the bounds out of {} draws, fewer than --count {}; raise --oversample or --max-epochs",
                uniq.len(),
                draws,
                p.count
            )));
        }
        // Keep `count` at random: a partial Fisher–Yates shuffle.
        for i in 0..p.count {
            let j = rng.random_range(i..uniq.len());
            uniq.swap(i, j);
        }
        uniq.truncate(p.count);
        stats.kept = uniq.len();
        Ok((uniq, stats))
    }

    /// The sampler's parameters, prior, tempered prior and bounds as JSON (file metadata).
    pub fn describe(&self, stats: &SampleStats) -> serde_json::Value {
        serde_json::json!({
            "algorithm": "regmix-dirichlet (sail-sg/regmix synthesize_mixture.py)",
            "params": self.params,
            "prior": self.prior.to_json(),
            "tempered_prior": self.tempered,
            "bounds": self.bounds,
            "strengths": self.strengths,
            "stats": stats,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_above_the_grids_distinct_mixtures_is_refused_before_any_draw() {
        let prior =
            Prior { domains: vec!["a".into(), "b".into(), "c".into()], weights: vec![0.5, 0.3, 0.2], tokens: None };
        // min weight 2e-4: 5000 steps, C(5002, 2) = 12,507,501 points for three domains.
        let s = Sampler::new(prior, SamplerParams { count: 100_000_000, ..Default::default() }).unwrap();
        let e = s.sample().unwrap_err().to_string();
        assert!(
            e.contains("only 12507501 distinct mixtures of 3 domains exist on the grid of --min-weight 0.0002"),
            "{e}"
        );
    }
    use crate::prior::pile_prior;

    #[test]
    fn logspace_matches_numpy_endpoints() {
        let s = logspace(0.1, 5.0, 15);
        assert_eq!(s.len(), 15);
        assert!((s[0] - 0.1).abs() < 1e-12 && (s[14] - 5.0).abs() < 1e-9);
        assert!((s[7] - (0.1f64 * 5.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn dirichlet_with_tiny_alphas_is_finite_and_sums_to_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let alpha = vec![1e-4; 17];
        let mut w = vec![0.0; 17];
        for _ in 0..1000 {
            dirichlet(&mut rng, &alpha, &mut w);
            assert!(w.iter().all(|x| x.is_finite() && *x >= 0.0));
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn dirichlet_means_match_alpha_shares() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let alpha = [0.2, 0.5, 1.3, 3.0];
        let total: f64 = alpha.iter().sum();
        let mut mean = [0.0; 4];
        let mut w = [0.0; 4];
        let n = 200_000;
        for _ in 0..n {
            dirichlet(&mut rng, &alpha, &mut w);
            for i in 0..4 {
                mean[i] += w[i] / n as f64;
            }
        }
        for i in 0..4 {
            // Var of a Dirichlet component <= 1/4/(total+1); 5 standard errors of the mean.
            let se = (0.25 / (total + 1.0) / n as f64).sqrt();
            assert!((mean[i] - alpha[i] / total).abs() < 5.0 * se, "{i}: {} vs {}", mean[i], alpha[i] / total);
        }
    }

    #[test]
    fn snap_to_grid_zeroes_small_weights_and_sums_to_one() {
        let mut w = vec![0.00015, 0.33333, 0.66652];
        snap_to_grid(&mut w, 2e-4);
        assert_eq!(w[0], 0.0);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        for x in &w {
            assert!(((x / 2e-4) - (x / 2e-4).round()).abs() < 1e-6);
        }
    }

    #[test]
    fn same_seed_same_mixtures_other_seed_other_mixtures() {
        let params = SamplerParams { count: 32, oversample: 20, ..Default::default() };
        let a = Sampler::new(pile_prior(), params.clone()).unwrap().sample().unwrap().0;
        let b = Sampler::new(pile_prior(), params.clone()).unwrap().sample().unwrap().0;
        assert_eq!(a, b);
        let c = Sampler::new(pile_prior(), SamplerParams { seed: 43, ..params }).unwrap().sample().unwrap().0;
        assert_ne!(a, c);
    }

    #[test]
    fn sampled_mixtures_respect_bounds_grid_and_uniqueness() {
        let s = Sampler::new(pile_prior(), SamplerParams { count: 256, ..Default::default() }).unwrap();
        let (m, stats) = s.sample().unwrap();
        assert_eq!(m.len(), 256);
        assert!(stats.rejected > 0, "the paper's bounds reject some draws");
        for w in &m {
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            for (x, b) in w.iter().zip(&s.bounds) {
                assert!(*x <= b + 1e-12 && (*x == 0.0 || *x >= 2e-4));
            }
        }
        for i in 0..m.len() {
            for j in i + 1..m.len() {
                let d: f64 = m[i].iter().zip(&m[j]).map(|(x, y)| (x - y).abs()).sum();
                assert!(d > 1e-5);
            }
        }
    }

    #[test]
    fn impossible_bounds_are_refused_with_advice() {
        let p = crate::Prior::from_tokens(vec!["a".into(), "b".into()], vec![10, 10]).unwrap();
        let e = Sampler::new(p, SamplerParams { max_epochs: 1.0, target_tokens: Some(1000), ..Default::default() })
            .unwrap_err()
            .to_string();
        assert!(e.contains("--max-epochs"), "{e}");
    }
}
