//! Scoring many mixtures fast: the hot loop of `optimize`.
//!
//! A [`Scorer`] is a fitted [`Model`] prepared once for batch prediction: the Gaussian
//! process's training inputs scaled by their length-scales in a structure-of-arrays copy,
//! XGBoost's trees flattened into perfect binary trees that are walked without branches
//! ([`crate::trees`]), a horizon model as the scorers of its laws.
//! [`Scorer::score`] scores a block of rows stored flat (row-major, one row per mixture) on
//! the calling thread; callers parallelise over blocks. On x86-64 CPUs with AVX2 and FMA the
//! same code is compiled a second time for them and picked at run time, so one binary runs
//! everywhere and uses the wide units where they exist.

use anyhow::{bail, Result};

use crate::gp::{self, Gp};
use crate::law::value;
use crate::linear::{Linear, LogLinear};
use crate::model::{Horizon, Model};
use crate::transfer::TargetLaw;
use crate::trees::TreeScorer;
#[cfg(target_arch = "x86_64")]
use crate::wide;

/// A model prepared for batch scoring.
pub enum Scorer<'a> {
    Linear(&'a Linear),
    LogLinear(&'a LogLinear),
    Gp(GpScorer),
    Trees(TreeScorer),
    /// The mean of the members' predictions.
    Ensemble(Vec<Scorer<'a>>),
    Horizon(Box<HorizonScorer<'a>>),
    /// A target law, row by row: a few domains' closed forms, cheap beside the search.
    TargetLaw(&'a TargetLaw),
}

impl<'a> Scorer<'a> {
    pub fn new(model: &'a Model) -> Result<Scorer<'a>> {
        Ok(match model {
            Model::Linear(m) => Scorer::Linear(m),
            Model::LogLinear(m) => Scorer::LogLinear(m),
            Model::Gp(m) => Scorer::Gp(GpScorer::new(m)),
            Model::Xgboost(m) => Scorer::Trees(TreeScorer::new(m)?),
            Model::Ensemble { members } => Scorer::Ensemble(members.iter().map(Scorer::new).collect::<Result<_>>()?),
            Model::Horizon(h) => Scorer::Horizon(Box::new(HorizonScorer::new(h)?)),
            Model::TargetLaw(t) => Scorer::TargetLaw(t),
        })
    }

    /// Predictions for the rows of `x` (row-major, `d` values per row) into `out`.
    pub fn score(&self, x: &[f64], d: usize, out: &mut [f64]) {
        assert_eq!(x.len(), d * out.len(), "scorer: {} values for {} rows of {d}", x.len(), out.len());
        match self {
            Scorer::Linear(m) => out.iter_mut().zip(x.chunks_exact(d)).for_each(|(o, r)| *o = m.predict(r)),
            Scorer::LogLinear(m) => out.iter_mut().zip(x.chunks_exact(d)).for_each(|(o, r)| *o = m.predict(r)),
            Scorer::Gp(s) => s.score(x, d, out),
            Scorer::Trees(s) => s.score(x, d, out),
            Scorer::Ensemble(members) => {
                out.fill(0.0);
                let mut tmp = vec![0.0; out.len()];
                for m in members {
                    m.score(x, d, &mut tmp);
                    out.iter_mut().zip(&tmp).for_each(|(o, t)| *o += t);
                }
                out.iter_mut().for_each(|o| *o /= members.len() as f64);
            }
            Scorer::Horizon(s) => s.score(x, d, out),
            Scorer::TargetLaw(t) => out.iter_mut().zip(x.chunks_exact(d)).for_each(|(o, r)| *o = t.predict(r)),
        }
    }
}

/// Predictions of `model` for many rows, in parallel blocks of 256 through a [`Scorer`].
/// A model the scorer cannot prepare (an XGBoost model with a feature this crate does not
/// fit) is an error, never a silent slow path.
pub fn predict_many(model: &Model, rows: &[Vec<f64>]) -> Result<Vec<f64>> {
    use rayon::prelude::*;
    let Some(d) = rows.first().map(Vec::len) else { return Ok(Vec::new()) };
    if let Some(r) = rows.iter().position(|r| r.len() != d) {
        bail!("row {r} has {} weights, row 0 has {d}", rows[r].len());
    }
    let scorer = Scorer::new(model)?;
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let mut out = vec![0.0; rows.len()];
    out.par_chunks_mut(256).zip(flat.par_chunks(256 * d)).for_each(|(o, x)| scorer.score(x, d, o));
    Ok(out)
}

/// [`Horizon`] prepared for batch scoring: the scorers of every E and ln B.
pub struct HorizonScorer<'a> {
    terms: Vec<(f64, f64, Scorer<'a>, Scorer<'a>)>,
}

impl<'a> HorizonScorer<'a> {
    pub fn new(h: &'a Horizon) -> Result<Self> {
        let terms = h
            .laws
            .iter()
            .map(|l| Ok((l.coef, h.decay(l, h.at_tokens), Scorer::new(&l.at_ref)?, Scorer::new(&l.log_b)?)))
            .collect::<Result<_>>()?;
        Ok(HorizonScorer { terms })
    }

    pub fn score(&self, x: &[f64], d: usize, out: &mut [f64]) {
        out.fill(0.0);
        let (mut e, mut lb) = (vec![0.0; out.len()], vec![0.0; out.len()]);
        for (coef, decay, se, sb) in &self.terms {
            se.score(x, d, &mut e);
            sb.score(x, d, &mut lb);
            for i in 0..out.len() {
                out[i] += coef * value(e[i], lb[i], *decay);
            }
        }
    }
}

/// a·b + c, fused where the CPU has FMA (the wide copy), plain otherwise: `mul_add` without
/// hardware FMA is a slow library call.
#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// e^(−x) for x ≥ 0 without branches, so the kernel loop vectorises: 2^−n · e^r with
/// n = round(x·log2 e), |r| ≤ ln2/2, e^r by its degree-12 Taylor polynomial (truncation
/// < 1e-15 relative; within 2e-15 of `f64::exp`, tested); x is clamped at 690, where the
/// kernel value (2e-300) is zero for any sum it enters. The scorer runs [`exp_neg_lanes`],
/// the same steps over a vector's worth of lanes; this scalar form is their test reference.
#[cfg(test)]
fn exp_neg<const FMA: bool>(x: f64) -> f64 {
    let x = x.min(690.0);
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5·2^52: adding it rounds to an integer
    let kd = x * std::f64::consts::LOG2_E + SHIFT;
    let n = kd - SHIFT;
    // n as an integer straight from the bits of kd (its low mantissa bits hold n), because
    // AVX2 has no packed f64 → i64 conversion and `n as i64` would stop the vectorisation.
    let ni = kd.to_bits().wrapping_sub(SHIFT.to_bits());
    // e^(−x) = 2^(−n) · e^r with r = n·ln2 − x, ln2 split in two (Cody–Waite) so r stays
    // exact for large n.
    #[allow(clippy::excessive_precision)] // Cody–Waite's split of ln 2, digits as published
    const LN2_HI: f64 = 6.931_471_803_691_238_2e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let r = (n * LN2_HI - x) + n * LN2_LO;
    let mut p = 1.0 / 479_001_600.0;
    for c in [39_916_800.0, 3_628_800.0, 362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        p = madd::<FMA>(p, r, 1.0 / c);
    }
    f64::from_bits(1023u64.wrapping_sub(ni) << 52) * p
}

/// [`exp_neg`] on a register's worth of values, written one step at a time over all lanes
/// so that every step compiles to vector instructions (the scalar function, unrolled, left
/// some steps scalar). Same operations, same results.
#[inline(always)]
fn exp_neg_lanes<const FMA: bool>(x: [f64; GP_LANES]) -> [f64; GP_LANES] {
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    #[allow(clippy::excessive_precision)] // Cody–Waite's split of ln 2, digits as published
    const LN2_HI: f64 = 6.931_471_803_691_238_2e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let mut xc = [0f64; GP_LANES];
    let mut n = [0f64; GP_LANES];
    let mut ni = [0u64; GP_LANES];
    let mut r = [0f64; GP_LANES];
    let mut p = [1.0 / 479_001_600.0; GP_LANES];
    for l in 0..GP_LANES {
        xc[l] = x[l].min(690.0);
    }
    for l in 0..GP_LANES {
        let kd = xc[l] * std::f64::consts::LOG2_E + SHIFT;
        n[l] = kd - SHIFT;
        ni[l] = kd.to_bits().wrapping_sub(SHIFT.to_bits());
    }
    for l in 0..GP_LANES {
        r[l] = (n[l] * LN2_HI - xc[l]) + n[l] * LN2_LO;
    }
    for c in [39_916_800.0, 3_628_800.0, 362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        for l in 0..GP_LANES {
            p[l] = madd::<FMA>(p[l], r[l], 1.0 / c);
        }
    }
    let mut out = [0f64; GP_LANES];
    for l in 0..GP_LANES {
        out[l] = f64::from_bits(1023u64.wrapping_sub(ni[l]) << 52) * p[l];
    }
    out
}

/// The Gaussian process prepared for scoring. In f64: α can be large with cancelling signs,
/// and an f32 version was off by 7e-5 relative on the GP's unit test.
pub struct GpScorer {
    /// The training inputs z_jk / ℓ_k · √½, so that exp(−Σ_k (q_k − t_jk)²) is the kernel
    /// without its σ_f², in groups of [`GP_LANES`] points: group g holds, domain after
    /// domain, the values of points 8g … 8g+7. The last group is padded with points whose
    /// α is 0.
    train: Vec<f64>,
    /// 1/ℓ_k · √½: a query's log weight times this is comparable with `train`.
    scale: Vec<f64>,
    /// α_j · σ_f².
    alpha: Vec<f64>,
    y_mean: f64,
    y_std: f64,
}

impl GpScorer {
    pub fn new(m: &Gp) -> Self {
        let (d, n) = (m.log_ls.len(), m.z.len());
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let scale: Vec<f64> = m.log_ls.iter().map(|l| (-l).exp() * h).collect();
        let groups = n.div_ceil(GP_LANES);
        let mut train = vec![0.0; groups * d * GP_LANES];
        for (j, z) in m.z.iter().enumerate() {
            for k in 0..d {
                train[(j / GP_LANES) * d * GP_LANES + k * GP_LANES + j % GP_LANES] = z[k] * scale[k];
            }
        }
        let sf2 = (2.0 * m.log_sf).exp();
        let mut alpha: Vec<f64> = m.alpha.iter().map(|a| a * sf2).collect();
        alpha.resize(groups * GP_LANES, 0.0);
        GpScorer { train, scale, alpha, y_mean: m.y_mean, y_std: m.y_std }
    }

    fn score(&self, x: &[f64], d: usize, out: &mut [f64]) {
        assert_eq!(d, self.scale.len(), "GP: rows of {d} for a model of {} domains", self.scale.len());
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above), which implies FMA.
            unsafe { self.score_avx512(x, d, out) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if wide() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            unsafe { self.score_wide(x, d, out) };
            return;
        }
        self.score_with::<false>(x, d, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn score_wide(&self, x: &[f64], d: usize, out: &mut [f64]) {
        self.score_with::<true>(x, d, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn score_avx512(&self, x: &[f64], d: usize, out: &mut [f64]) {
        self.score_with::<true>(x, d, out)
    }

    /// Per row, per group of [`GP_LANES`] training points: the squared scaled distances
    /// accumulate over the domains in registers, then go through the branch-free exp and
    /// are dotted with α. (The compiler maps a group onto one or two vector registers.)
    #[inline(always)]
    fn score_with<const FMA: bool>(&self, x: &[f64], d: usize, out: &mut [f64]) {
        let mut q = vec![0f64; d];
        for (o, w) in out.iter_mut().zip(x.chunks_exact(d)) {
            for k in 0..d {
                q[k] = (w[k] + gp::EPS).ln() * self.scale[k];
            }
            let mut s = [0f64; GP_LANES];
            for (group, al) in self.train.chunks_exact(d * GP_LANES).zip(self.alpha.chunks_exact(GP_LANES)) {
                let mut acc = [0f64; GP_LANES];
                for (t, &qk) in group.chunks_exact(GP_LANES).zip(&q) {
                    for l in 0..GP_LANES {
                        let diff = qk - t[l];
                        acc[l] = madd::<FMA>(diff, diff, acc[l]);
                    }
                }
                let e = exp_neg_lanes::<FMA>(acc);
                for l in 0..GP_LANES {
                    s[l] = madd::<FMA>(e[l], al[l], s[l]);
                }
            }
            *o = self.y_mean + self.y_std * s.iter().sum::<f64>();
        }
    }
}

/// Training points per register group in the GP kernel: one AVX-512 register of f64, two
/// AVX2 ones.
const GP_LANES: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rows::rows;
    use crate::xgb::Xgb;

    #[test]
    fn predict_many_gives_each_models_own_prediction() {
        let x = rows(300, 4);
        let y: Vec<f64> = x.iter().map(|w| 3.0 - w[0] + 0.5 * w[1] * w[2]).collect();
        let lin = Model::Linear(Linear::fit(&x, &y));
        let ens = Model::Ensemble {
            members: vec![
                lin.clone(),
                Model::Gp(Gp::fit(&x[..60], &y[..60], 20)),
                Model::Xgboost(Xgb::fit(&x, &y, 30, 3).unwrap()),
            ],
        };
        let probe = rows(700, 4); // more than two blocks of 256, the last one partial
        for m in [&lin, &ens] {
            let fast = predict_many(m, &probe).unwrap();
            for (i, (a, b)) in fast.iter().zip(m.predict(&probe)).enumerate() {
                assert!((a - b).abs() <= 1e-5 * b.abs(), "{} row {i}: {a} vs {b}", m.kind().name());
            }
        }
        assert!(predict_many(&lin, &[vec![0.5, 0.5], vec![1.0]])
            .unwrap_err()
            .to_string()
            .contains("row 1 has 1 weights"));
    }

    #[test]
    fn branch_free_exp_matches_std_exp() {
        let mut x = 0.0;
        while x < 690.0 {
            let (a, c, b) = (exp_neg::<false>(x), exp_neg::<true>(x), (-x).exp());
            let lanes = exp_neg_lanes::<true>([x; GP_LANES]);
            assert!(lanes.iter().all(|&v| v == c), "x {x}: lanes {lanes:?} vs {c}");
            assert!((a - b).abs() <= 2e-15 * b + 1e-300, "x {x}: {a} vs {b}");
            assert!((c - b).abs() <= 2e-15 * b + 1e-300, "x {x}, fused: {c} vs {b}");
            x += 0.0137;
        }
        // Beyond, the value is clamped at e^−690 ≈ 2e-300: zero for any kernel sum.
        assert!(exp_neg::<false>(5000.0) < 1e-299);
    }

    #[test]
    fn gp_scorer_matches_one_by_one_prediction_on_both_code_paths() {
        let x = rows(90, 4);
        let y: Vec<f64> = x.iter().map(|w| 3.0 - 0.3 * (w[0] + gp::EPS).ln() + 0.1 * w[1]).collect();
        let m = Gp::fit(&x, &y, 30);
        let s = GpScorer::new(&m);
        let probe = rows(37, 4); // not a multiple of 4 rows or of the unrolling
        let flat: Vec<f64> = probe.iter().flatten().copied().collect();
        let mut plain = vec![f64::NAN; probe.len()];
        s.score_with::<false>(&flat, 4, &mut plain);
        let mut auto = vec![f64::NAN; probe.len()];
        s.score(&flat, 4, &mut auto);
        for (i, w) in probe.iter().enumerate() {
            let one = m.predict(w);
            assert!((plain[i] - one).abs() < 1e-9, "row {i}: {} vs {one}", plain[i]);
            assert!((auto[i] - one).abs() < 1e-9, "row {i}: {} vs {one}", auto[i]);
        }
    }
}
