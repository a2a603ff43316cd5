//! Scoring many mixtures fast: the hot loop of `optimize`.
//!
//! A [`Scorer`] is a fitted [`Model`] prepared once for batch prediction: the Gaussian
//! process's training inputs scaled by their length-scales in a structure-of-arrays copy,
//! XGBoost's trees flattened into perfect binary trees that are walked without branches.
//! [`Scorer::score`] scores a block of rows stored flat (row-major, one row per mixture) on
//! the calling thread; callers parallelise over blocks. On x86-64 CPUs with AVX2 and FMA the
//! same code is compiled a second time for them and picked at run time, so one binary runs
//! everywhere and uses the wide units where they exist.

use anyhow::{bail, Context, Result};

#[cfg(target_arch = "x86_64")]
use crate::wide;
use serde_json::Value;

use crate::gp::{self, Gp};
use crate::model::Model;
use crate::xgb::Xgb;

/// A model prepared for batch scoring.
pub enum Scorer<'a> {
    Linear(&'a crate::linear::Linear),
    LogLinear(&'a crate::linear::LogLinear),
    Gp(GpScorer),
    Trees(TreeScorer),
    /// The mean of the members' predictions.
    Ensemble(Vec<Scorer<'a>>),
    Horizon(Box<crate::horizon::HorizonScorer<'a>>),
}

impl<'a> Scorer<'a> {
    pub fn new(model: &'a Model) -> Result<Scorer<'a>> {
        Ok(match model {
            Model::Linear(m) => Scorer::Linear(m),
            Model::LogLinear(m) => Scorer::LogLinear(m),
            Model::Gp(m) => Scorer::Gp(GpScorer::new(m)),
            Model::Xgboost(m) => Scorer::Trees(TreeScorer::new(m)?),
            Model::Ensemble { members } => Scorer::Ensemble(members.iter().map(Scorer::new).collect::<Result<_>>()?),
            Model::Horizon(h) => Scorer::Horizon(Box::new(crate::horizon::HorizonScorer::new(h)?)),
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

/// XGBoost's trees (reg:squarederror: the prediction is the base score plus the sum of one
/// leaf per tree) flattened for branch-free walking. Every tree is padded to a perfect tree
/// of the largest depth: a leaf above the bottom becomes a node that always goes left
/// (threshold +∞) with copies of its value below. A node sends a row right when
/// x[feature] ≥ threshold, compared in f32 as XGBoost does, so the leaves are XGBoost's.
pub struct TreeScorer {
    depth: u32,
    /// Per tree: 2^depth − 1 internal nodes, then 2^depth leaves.
    feature: Vec<u32>,
    threshold: Vec<f32>,
    leaf: Vec<f32>,
    trees: usize,
    features: usize,
    base: f64,
}

/// Rows walked through one tree before the next: their features stay in L1.
const TREE_BLOCK: usize = 128;
/// Deeper trees would make the padded copy large; the fit uses depth 4.
const MAX_DEPTH: u32 = 12;

impl TreeScorer {
    pub fn new(m: &Xgb) -> Result<Self> {
        Self::from_json(&m.model_json)
    }

    /// The number of features (mixture weights) the trees were trained on.
    pub fn features(&self) -> usize {
        self.features
    }

    /// From XGBoost's JSON model (the format of `save_model("x.json")`).
    pub fn from_json(json: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(json).context("XGBoost model JSON")?;
        let learner = &v["learner"];
        let objective = learner["objective"]["name"].as_str().unwrap_or("");
        if objective != "reg:squarederror" {
            bail!("XGBoost model: objective `{objective}`, only reg:squarederror is scored");
        }
        let param = &learner["learner_model_param"];
        let num = |x: &Value| -> Result<f64> {
            let s = x.as_str().context("XGBoost model: expected a number as a string")?;
            s.trim_matches(|c| c == '[' || c == ']').parse::<f64>().with_context(|| format!("XGBoost model: `{s}`"))
        };
        let base = num(&param["base_score"])? as f32 as f64;
        let features = num(&param["num_feature"])? as usize;
        let trees = learner["gradient_booster"]["model"]["trees"].as_array().context("XGBoost model: no trees")?;
        let parsed: Vec<RawTree> = trees.iter().enumerate().map(|(i, t)| RawTree::parse(t).with_context(|| format!("XGBoost tree {i}"))).collect::<Result<_>>()?;
        let depth = parsed.iter().map(|t| t.depth(0)).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            bail!("XGBoost model: trees of depth {depth}, at most {MAX_DEPTH} are scored");
        }
        let (inner, leaves) = ((1usize << depth) - 1, 1usize << depth);
        let mut s = TreeScorer {
            depth,
            feature: vec![0; inner * parsed.len()],
            threshold: vec![f32::INFINITY; inner * parsed.len()],
            leaf: vec![0.0; leaves * parsed.len()],
            trees: parsed.len(),
            features,
            base,
        };
        for (i, t) in parsed.iter().enumerate() {
            let (f, th, l) = (
                &mut s.feature[i * inner..(i + 1) * inner],
                &mut s.threshold[i * inner..(i + 1) * inner],
                &mut s.leaf[i * leaves..(i + 1) * leaves],
            );
            t.fill(0, 0, 0, depth, f, th, l);
            if f.iter().any(|&x| x as usize >= features) {
                bail!("XGBoost tree {i}: a split on a feature ≥ num_feature {features}");
            }
        }
        Ok(s)
    }

    fn score(&self, x: &[f64], d: usize, out: &mut [f64]) {
        assert_eq!(d, self.features, "trees: rows of {d} for a model of {} features", self.features);
        #[cfg(target_arch = "x86_64")]
        if wide() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            unsafe { self.score_wide(x, d, out) };
            return;
        }
        self.score_plain(x, d, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn score_wide(&self, x: &[f64], d: usize, out: &mut [f64]) {
        self.score_plain(x, d, out)
    }

    #[inline(always)]
    fn score_plain(&self, x: &[f64], d: usize, out: &mut [f64]) {
        // The depth as a constant, so the walk down a tree is unrolled.
        match self.depth {
            1 => self.walk::<1>(x, d, out),
            2 => self.walk::<2>(x, d, out),
            3 => self.walk::<3>(x, d, out),
            4 => self.walk::<4>(x, d, out),
            5 => self.walk::<5>(x, d, out),
            6 => self.walk::<6>(x, d, out),
            7 => self.walk::<7>(x, d, out),
            8 => self.walk::<8>(x, d, out),
            _ => self.walk_any(x, d, out),
        }
    }

    /// Rows in blocks of [`TREE_BLOCK`] (features converted to f32 once), tree after tree,
    /// [`WALKERS`] rows walked down each tree side by side: their loads are independent, so
    /// the CPU overlaps them instead of waiting on one chain of dependent loads.
    #[inline(always)]
    fn walk<const D: u32>(&self, x: &[f64], d: usize, out: &mut [f64]) {
        let (inner, leaves) = ((1usize << D) - 1, 1usize << D);
        let mut xf = vec![0f32; TREE_BLOCK * d];
        let mut sum = [0f64; TREE_BLOCK];
        for (rows, o) in x.chunks(TREE_BLOCK * d).zip(out.chunks_mut(TREE_BLOCK)) {
            let m = o.len();
            for (a, b) in xf.iter_mut().zip(rows) {
                *a = *b as f32;
            }
            sum[..m].fill(0.0);
            let full = m - m % WALKERS;
            for t in 0..self.trees {
                let f = &self.feature[t * inner..(t + 1) * inner];
                let th = &self.threshold[t * inner..(t + 1) * inner];
                let l = &self.leaf[t * leaves..(t + 1) * leaves];
                for r in (0..full).step_by(WALKERS) {
                    let mut node = [0usize; WALKERS];
                    for _ in 0..D {
                        for (k, nk) in node.iter_mut().enumerate() {
                            // SAFETY: at every level node < inner = f.len() = th.len() (a
                            // perfect tree of depth D); f[node] < d (checked in from_json,
                            // `score` asserts d = features), and row r + k < m ≤ TREE_BLOCK
                            // lies inside xf.
                            unsafe {
                                let feat = *f.get_unchecked(*nk) as usize;
                                let v = *xf.get_unchecked((r + k) * d + feat);
                                *nk = 2 * *nk + 1 + (v >= *th.get_unchecked(*nk)) as usize;
                            }
                        }
                    }
                    for (k, nk) in node.iter().enumerate() {
                        sum[r + k] += l[nk - inner] as f64;
                    }
                }
                for (r, s) in sum[full..m].iter_mut().enumerate() {
                    let row = &xf[(full + r) * d..(full + r + 1) * d];
                    let mut node = 0usize;
                    for _ in 0..D {
                        node = 2 * node + 1 + (row[f[node] as usize] >= th[node]) as usize;
                    }
                    *s += l[node - inner] as f64;
                }
            }
            for (o, s) in o.iter_mut().zip(&sum) {
                *o = self.base + s;
            }
        }
    }

    /// Any depth (up to [`MAX_DEPTH`]), one row at a time: the reference for [`Self::walk`].
    fn walk_any(&self, x: &[f64], d: usize, out: &mut [f64]) {
        let (inner, leaves) = ((1usize << self.depth) - 1, 1usize << self.depth);
        for (o, w) in out.iter_mut().zip(x.chunks_exact(d)) {
            let mut s = 0f64;
            for t in 0..self.trees {
                let mut node = 0usize;
                for _ in 0..self.depth {
                    node = 2 * node + 1 + (w[self.feature[t * inner + node] as usize] as f32 >= self.threshold[t * inner + node]) as usize;
                }
                s += self.leaf[t * leaves + node - inner] as f64;
            }
            *o = self.base + s;
        }
    }
}

/// Rows walked down a tree side by side.
const WALKERS: usize = 8;

/// One tree as XGBoost's JSON stores it.
struct RawTree {
    left: Vec<i64>,
    right: Vec<i64>,
    feature: Vec<u32>,
    cond: Vec<f32>,
}

impl RawTree {
    fn parse(t: &Value) -> Result<Self> {
        let ints = |k: &str| -> Result<Vec<i64>> {
            t[k].as_array().with_context(|| format!("no `{k}`"))?.iter().map(|x| x.as_i64().with_context(|| format!("`{k}`: not an integer"))).collect()
        };
        let left = ints("left_children")?;
        let right = ints("right_children")?;
        let feature = ints("split_indices")?.into_iter().map(|x| x as u32).collect::<Vec<_>>();
        let cond: Vec<f32> = t["split_conditions"]
            .as_array()
            .context("no `split_conditions`")?
            .iter()
            .map(|x| x.as_f64().map(|v| v as f32).context("`split_conditions`: not a number"))
            .collect::<Result<_>>()?;
        let n = left.len();
        if [right.len(), feature.len(), cond.len()].iter().any(|&l| l != n) || n == 0 {
            bail!("node arrays of different lengths");
        }
        if left.iter().chain(&right).any(|&c| c >= n as i64 || (c < 0 && c != -1)) {
            bail!("a child index out of range");
        }
        if t["categories"].as_array().is_some_and(|c| !c.is_empty()) {
            bail!("categorical splits are not supported");
        }
        Ok(RawTree { left, right, feature, cond })
    }

    fn is_leaf(&self, i: usize) -> bool {
        self.left[i] < 0
    }

    fn depth(&self, i: usize) -> u32 {
        if self.is_leaf(i) {
            0
        } else {
            1 + self.depth(self.left[i] as usize).max(self.depth(self.right[i] as usize))
        }
    }

    /// Writes node `i` at position `pos` of level `level` of the perfect tree.
    #[allow(clippy::too_many_arguments)]
    fn fill(&self, i: usize, pos: usize, level: u32, depth: u32, f: &mut [u32], th: &mut [f32], l: &mut [f32]) {
        let inner = (1usize << depth) - 1;
        if level == depth {
            debug_assert!(self.is_leaf(i));
            l[pos - inner] = self.cond[i];
        } else if self.is_leaf(i) {
            // Always left (x ≥ +∞ is false); both halves carry the value.
            f[pos] = 0;
            th[pos] = f32::INFINITY;
            self.fill(i, 2 * pos + 1, level + 1, depth, f, th, l);
            self.fill(i, 2 * pos + 2, level + 1, depth, f, th, l);
        } else {
            f[pos] = self.feature[i];
            th[pos] = self.cond[i];
            self.fill(self.left[i] as usize, 2 * pos + 1, level + 1, depth, f, th, l);
            self.fill(self.right[i] as usize, 2 * pos + 2, level + 1, depth, f, th, l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, d: usize) -> Vec<Vec<f64>> {
        (0..n)
            .map(|i| {
                let mut w: Vec<f64> = (0..d).map(|k| (((i * 7919 + k * 104_729) % 1009) as f64 / 1009.0).powi(3)).collect();
                let s: f64 = w.iter().sum();
                w.iter_mut().for_each(|x| *x /= s);
                w
            })
            .collect()
    }

    #[test]
    fn predict_many_gives_each_models_own_prediction() {
        let x = rows(300, 4);
        let y: Vec<f64> = x.iter().map(|w| 3.0 - w[0] + 0.5 * w[1] * w[2]).collect();
        let lin = Model::Linear(crate::linear::Linear::fit(&x, &y));
        let ens = Model::Ensemble { members: vec![lin.clone(), Model::Gp(Gp::fit(&x[..60], &y[..60], 20)), Model::Xgboost(Xgb::fit(&x, &y, 30, 3).unwrap())] };
        let probe = rows(700, 4); // more than two blocks of 256, the last one partial
        for m in [&lin, &ens] {
            let fast = predict_many(m, &probe).unwrap();
            for (i, (a, b)) in fast.iter().zip(m.predict(&probe)).enumerate() {
                assert!((a - b).abs() <= 1e-5 * b.abs(), "{} row {i}: {a} vs {b}", m.kind().name());
            }
        }
        assert!(predict_many(&lin, &[vec![0.5, 0.5], vec![1.0]]).unwrap_err().to_string().contains("row 1 has 1 weights"));
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
    fn tree_scorer_gives_xgboosts_own_predictions() {
        let x = rows(300, 5);
        let y: Vec<f64> = x.iter().map(|w| 2.0 - w[0] + 0.5 * (w[1] * 10.0).sin() + w[2] * w[3]).collect();
        let m = Xgb::fit(&x, &y, 120, 7).unwrap();
        let s = TreeScorer::new(&m).unwrap();
        assert!(s.depth >= 3, "the trees are deep enough to test padding: {}", s.depth);
        let probe = rows(1000, 5);
        let flat: Vec<f64> = probe.iter().flatten().copied().collect();
        let mut ours = vec![f64::NAN; probe.len()];
        s.score(&flat, 5, &mut ours);
        let theirs = m.predict_many(&probe);
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            // XGBoost sums the leaves in f32, we in f64: about 1e-7 relative per addition.
            assert!((a - b).abs() <= 1e-5 * b.abs(), "row {i}: ours {a}, XGBoost {b}");
        }
        // The unrolled, interleaved walk and the plain one give the same sums.
        let mut plain = vec![f64::NAN; probe.len()];
        s.walk_any(&flat, 5, &mut plain);
        assert_eq!(ours, plain);
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

    #[test]
    fn a_model_that_is_not_squared_error_regression_is_refused() {
        let json = r#"{"learner":{"objective":{"name":"binary:logistic"},"learner_model_param":{"base_score":"5E-1","num_feature":"2"},"gradient_booster":{"model":{"trees":[]}}}}"#;
        let e = TreeScorer::from_json(json).err().unwrap().to_string();
        assert!(e.contains("binary:logistic"), "{e}");
    }
}
