//! Gaussian-process regression with one length-scale per domain on log weights.
//!
//! Inputs are z = ln(w + ε) (ε = 1e-3): the effect of a domain's weight on loss is closer to
//! logarithmic than linear, and zero weights stay finite. The kernel is an ARD squared
//! exponential σ_f² exp(−½ Σ_d (z_d − z'_d)² / ℓ_d²) plus noise σ_n². Targets are
//! standardised. Hyper-parameters maximise the log marginal likelihood of the training data
//! (Adam on their logarithms, analytic gradients), so nothing is tuned on held-out data.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

pub const EPS: f64 = 1e-3;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Gp {
    pub log_ls: Vec<f64>,
    pub log_sf: f64,
    pub log_sn: f64,
    pub y_mean: f64,
    pub y_std: f64,
    pub z: Vec<Vec<f64>>,
    pub alpha: Vec<f64>,
}

/// e^(−x) for x ≥ 0 without branches, so the kernel loop vectorises: 2^−n · e^r with
/// n = round(x·log2 e), |r| ≤ ln2/2, e^r by its degree-12 Taylor polynomial (truncation
/// < 1e-15 relative; within 2e-15 of `f64::exp`, tested); x is clamped at 690, where the
/// kernel value (2e-300) is zero for any sum it enters.
#[inline(always)]
fn exp_neg(x: f64) -> f64 {
    let x = x.min(690.0);
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5·2^52: adding it rounds to an integer
    let n = (x * std::f64::consts::LOG2_E + SHIFT) - SHIFT;
    // e^(−x) = 2^(−n) · e^r with r = n·ln2 − x, ln2 split in two (Cody–Waite) so r stays
    // exact for large n.
    const LN2_HI: f64 = 6.931_471_803_691_238_2e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let r = (n * LN2_HI - x) + n * LN2_LO;
    let mut p = 1.0 / 479_001_600.0;
    for c in [39_916_800.0, 3_628_800.0, 362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        p = p * r + 1.0 / c;
    }
    f64::from_bits(((1023 - n as i64) as u64) << 52) * p
}

fn to_z(w: &[f64]) -> Vec<f64> {
    w.iter().map(|v| (v + EPS).ln()).collect()
}

fn kernel(z: &[Vec<f64>], inv_ls2: &[f64], sf2: f64, sn2: f64) -> DMatrix<f64> {
    let n = z.len();
    let mut k = DMatrix::zeros(n, n);
    for i in 0..n {
        for j in 0..=i {
            let mut s = 0.0;
            for d in 0..inv_ls2.len() {
                let t = z[i][d] - z[j][d];
                s += t * t * inv_ls2[d];
            }
            let v = sf2 * (-0.5 * s).exp();
            k[(i, j)] = v;
            k[(j, i)] = v;
        }
        k[(i, i)] += sn2;
    }
    k
}

impl Gp {
    /// Fits hyper-parameters by `iters` Adam steps on the negative log marginal likelihood.
    pub fn fit(x: &[Vec<f64>], y: &[f64], iters: usize) -> Self {
        let n = x.len();
        let d = x[0].len();
        let z: Vec<Vec<f64>> = x.iter().map(|w| to_z(w)).collect();
        let y_mean = y.iter().sum::<f64>() / n as f64;
        let y_std = (y.iter().map(|v| (v - y_mean).powi(2)).sum::<f64>() / n as f64).sqrt().max(1e-12);
        let ys = DVector::from_iterator(n, y.iter().map(|v| (v - y_mean) / y_std));
        // Start: length-scale 2 in log space per domain, unit signal, small noise.
        let mut p: Vec<f64> = vec![2f64.ln(); d];
        p.push(0.0); // log σ_f
        p.push((0.1f64).ln()); // log σ_n
        let (mut m, mut v) = (vec![0.0; d + 2], vec![0.0; d + 2]);
        let (b1, b2, lr) = (0.9, 0.999, 0.05);
        for t in 1..=iters {
            let g = Self::grad(&z, &ys, &p);
            for i in 0..p.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let mh = m[i] / (1.0 - b1.powi(t as i32));
                let vh = v[i] / (1.0 - b2.powi(t as i32));
                p[i] -= lr * mh / (vh.sqrt() + 1e-8);
            }
            // Keep the noise from collapsing to a singular kernel.
            p[d + 1] = p[d + 1].max((1e-3f64).ln());
        }
        let (log_ls, log_sf, log_sn) = (p[..d].to_vec(), p[d], p[d + 1]);
        let inv: Vec<f64> = log_ls.iter().map(|l| (-2.0 * l).exp()).collect();
        let k = kernel(&z, &inv, (2.0 * log_sf).exp(), (2.0 * log_sn).exp());
        let chol = k.cholesky().expect("kernel is positive definite with the noise floor");
        let alpha = chol.solve(&ys);
        Gp { log_ls, log_sf, log_sn, y_mean, y_std, z, alpha: alpha.iter().copied().collect() }
    }

    /// Gradient of the negative log marginal likelihood with respect to the log parameters.
    fn grad(z: &[Vec<f64>], y: &DVector<f64>, p: &[f64]) -> Vec<f64> {
        let n = z.len();
        let d = p.len() - 2;
        let inv: Vec<f64> = p[..d].iter().map(|l| (-2.0 * l).exp()).collect();
        let sf2 = (2.0 * p[d]).exp();
        let sn2 = (2.0 * p[d + 1]).exp();
        let k = kernel(z, &inv, sf2, sn2);
        let chol = match k.clone().cholesky() {
            Some(c) => c,
            None => return vec![0.0; p.len()],
        };
        let alpha = chol.solve(y);
        let kinv = chol.inverse();
        // A = α αᵀ − K⁻¹; dNLL/dθ = −½ tr(A ∂K/∂θ).
        let mut g = vec![0.0; p.len()];
        for i in 0..n {
            for j in 0..n {
                let a = alpha[i] * alpha[j] - kinv[(i, j)];
                let kf = k[(i, j)] - if i == j { sn2 } else { 0.0 };
                for dd in 0..d {
                    let t = z[i][dd] - z[j][dd];
                    // ∂K/∂ln ℓ_d = K_f · (z_d − z'_d)² / ℓ_d²
                    g[dd] -= 0.5 * a * kf * t * t * inv[dd];
                }
                g[d] -= 0.5 * a * 2.0 * kf;
                if i == j {
                    g[d + 1] -= 0.5 * a * 2.0 * sn2;
                }
            }
        }
        g
    }

    /// Predictions for many rows at once, the hot path of `optimize`. Row blocks run in
    /// parallel; per row the squared scaled distances to all training points are
    /// accumulated domain by domain over a structure-of-arrays copy of the training inputs
    /// (a loop the compiler vectorises), then the kernel row (a branch-free `exp`, also
    /// vectorised) is dotted with α. In f64: α can be large with cancelling signs, and an
    /// f32 version was off by 7e-5 relative on the unit test below.
    pub fn predict_many(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        use rayon::prelude::*;
        let d = self.log_ls.len();
        let n = self.z.len();
        let inv_ls: Vec<f64> = self.log_ls.iter().map(|l| (-l).exp()).collect();
        // train[k][j] = z_jk / ℓ_k (domain-major), √½ folded in so exp(−Σ) is the kernel.
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let train: Vec<Vec<f64>> = (0..d).map(|k| (0..n).map(|j| self.z[j][k] * inv_ls[k] * h).collect()).collect();
        let sf2 = (2.0 * self.log_sf).exp();
        let alpha: Vec<f64> = self.alpha.iter().map(|a| a * sf2).collect();
        rows.par_chunks(256)
            .flat_map_iter(|block| {
                let mut acc = vec![0f64; n];
                block
                    .iter()
                    .map(|w| {
                        acc.fill(0.0);
                        for (k, tk) in train.iter().enumerate() {
                            let q = (w[k] + EPS).ln() * inv_ls[k] * h;
                            for (a, &t) in acc.iter_mut().zip(tk) {
                                let diff = q - t;
                                *a += diff * diff;
                            }
                        }
                        let mut s = 0f64;
                        for (&a, &al) in acc.iter().zip(&alpha) {
                            s += exp_neg(a) * al;
                        }
                        self.y_mean + self.y_std * s
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn predict(&self, w: &[f64]) -> f64 {
        let z = to_z(w);
        let sf2 = (2.0 * self.log_sf).exp();
        let inv: Vec<f64> = self.log_ls.iter().map(|l| (-2.0 * l).exp()).collect();
        let mut s = 0.0;
        for (zi, a) in self.z.iter().zip(&self.alpha) {
            let mut q = 0.0;
            for dd in 0..inv.len() {
                let t = z[dd] - zi[dd];
                q += t * t * inv[dd];
            }
            s += a * sf2 * (-0.5 * q).exp();
        }
        self.y_mean + self.y_std * s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_free_exp_matches_std_exp() {
        let mut x = 0.0;
        while x < 690.0 {
            let (a, b) = (exp_neg(x), (-x).exp());
            assert!((a - b).abs() <= 2e-15 * b + 1e-300, "x {x}: {a} vs {b}");
            x += 0.0137;
        }
        // Beyond, the value is clamped at e^−690 ≈ 2e-300: zero for any kernel sum.
        assert!(exp_neg(5000.0) < 1e-299);
    }

    #[test]
    fn gp_fits_a_smooth_function_of_log_weights_out_of_sample() {
        let pts: Vec<Vec<f64>> = (0..120)
            .map(|i| {
                let a = ((i * 37) % 97) as f64 / 97.0;
                let b = ((i * 61) % 89) as f64 / 89.0 * (1.0 - a);
                vec![a, b, 1.0 - a - b]
            })
            .collect();
        let f = |w: &[f64]| 3.0 - 0.3 * (w[0] + EPS).ln() + 0.1 * w[1];
        let (train, test) = pts.split_at(90);
        let y: Vec<f64> = train.iter().map(|w| f(w)).collect();
        let gp = Gp::fit(train, &y, 60);
        let truth: Vec<f64> = test.iter().map(|w| f(w)).collect();
        let pred: Vec<f64> = test.iter().map(|w| gp.predict(w)).collect();
        let rho = crate::metrics::spearman(&truth, &pred);
        let batched = gp.predict_many(test);
        for (a, b) in pred.iter().zip(&batched) {
            assert!((a - b).abs() < 1e-9, "batched {b} vs one by one {a}");
        }
        assert!(rho > 0.95, "spearman {rho}");
    }
}
