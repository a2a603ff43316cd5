//! XGBoost's trees prepared for scoring many mixtures ([`TreeScorer`], one of the
//! [`crate::score::Scorer`]s): flattened into perfect binary trees walked without branches,
//! read from XGBoost's own JSON model and checked against its predictions.

use anyhow::{bail, Context, Result};
use serde_json::Value;

#[cfg(target_arch = "x86_64")]
use crate::wide;
use crate::xgb::Xgb;

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
        let parsed: Vec<RawTree> = trees
            .iter()
            .enumerate()
            .map(|(i, t)| RawTree::parse(t).with_context(|| format!("XGBoost tree {i}")))
            .collect::<Result<_>>()?;
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

    pub(crate) fn score(&self, x: &[f64], d: usize, out: &mut [f64]) {
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
                    node = 2 * node
                        + 1
                        + (w[self.feature[t * inner + node] as usize] as f32 >= self.threshold[t * inner + node])
                            as usize;
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
            t[k].as_array()
                .with_context(|| format!("no `{k}`"))?
                .iter()
                .map(|x| x.as_i64().with_context(|| format!("`{k}`: not an integer")))
                .collect()
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
    use crate::test_rows::rows;

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
    fn a_model_that_is_not_squared_error_regression_is_refused() {
        let json = r#"{"learner":{"objective":{"name":"binary:logistic"},"learner_model_param":{"base_score":"5E-1","num_feature":"2"},"gradient_booster":{"model":{"trees":[]}}}}"#;
        let e = TreeScorer::from_json(json).err().unwrap().to_string();
        assert!(e.contains("binary:logistic"), "{e}");
    }
}
