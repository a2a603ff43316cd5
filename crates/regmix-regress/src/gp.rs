//! Gaussian-process regression with one length-scale per domain on log weights.
//!
//! Inputs are z = ln(w + ε) (ε = 1e-3): the effect of a domain's weight on loss is closer to
//! logarithmic than linear, and zero weights stay finite. The kernel is an ARD squared
//! exponential σ_f² exp(−½ Σ_d (z_d − z'_d)² / ℓ_d²) plus noise σ_n². Targets are
//! standardised. Hyper-parameters maximise the log marginal likelihood of the training data
//! (Adam on their logarithms, analytic gradients), so nothing is tuned on held-out data.

use nalgebra::{DMatrix, DVector};

use crate::linalg;
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
        let mut l = k.as_slice().to_vec();
        if !linalg::cholesky(&mut l, n) {
            return vec![0.0; p.len()];
        }
        let mut alpha = y.as_slice().to_vec();
        linalg::cholesky_solve(&l, n, &mut alpha);
        let kinv = linalg::inverse_from_cholesky(&l, n);
        // A = α αᵀ − K⁻¹; dNLL/dθ = −½ tr(A ∂K/∂θ) = −½ Σ_ij A_ij ∂K_ij/∂θ. K and A are
        // symmetric: sum the pairs j < i twice and the diagonal once. Both matrices are read
        // along a column (contiguous in nalgebra's layout), which by symmetry is row i.
        let (ks, kis) = (k.as_slice(), &kinv[..]);
        let zf: Vec<f64> = z.iter().flatten().copied().collect();
        let mut gd = vec![0.0; d];
        let (mut g_sf, mut g_sn) = (0.0, 0.0);
        for i in 0..n {
            let zi = &zf[i * d..(i + 1) * d];
            for j in 0..i {
                // ∂K/∂ln ℓ_d = K_f · (z_d − z'_d)² / ℓ_d², ∂K/∂ln σ_f = 2 K_f (off the
                // diagonal K = K_f); the factor 2 of the pair cancels the ½.
                let w = (alpha[i] * alpha[j] - kis[i * n + j]) * ks[i * n + j];
                g_sf += w;
                for ((g, &a), &b) in gd.iter_mut().zip(zi).zip(&zf[j * d..(j + 1) * d]) {
                    let t = a - b;
                    *g += w * t * t;
                }
            }
            let a_ii = alpha[i] * alpha[i] - kis[i * n + i];
            g_sf += 0.5 * a_ii * (ks[i * n + i] - sn2);
            g_sn += 0.5 * a_ii * sn2;
        }
        let mut g: Vec<f64> = gd.iter().zip(&inv).map(|(g, i)| -g * i).collect();
        g.push(-2.0 * g_sf);
        g.push(-2.0 * g_sn);
        g
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

    /// The negative log marginal likelihood (without the constant), for the gradient check.
    fn nll(z: &[Vec<f64>], y: &DVector<f64>, p: &[f64]) -> f64 {
        let d = p.len() - 2;
        let inv: Vec<f64> = p[..d].iter().map(|l| (-2.0 * l).exp()).collect();
        let k = kernel(z, &inv, (2.0 * p[d]).exp(), (2.0 * p[d + 1]).exp());
        let chol = k.cholesky().unwrap();
        0.5 * y.dot(&chol.solve(y)) + chol.l_dirty().diagonal().iter().map(|v| v.ln()).sum::<f64>()
    }

    #[test]
    fn marginal_likelihood_gradient_matches_central_differences() {
        let z: Vec<Vec<f64>> =
            (0..40).map(|i| (0..3).map(|k| ((i * 13 + k * 7) % 17) as f64 / 17.0 * 4.0 - 3.0).collect()).collect();
        let y = DVector::from_iterator(40, z.iter().map(|r| (r[0] * 0.7).sin() + 0.3 * r[1] - 0.1 * r[2] * r[2]));
        let p = vec![0.3, -0.2, 0.8, 0.1, -1.5];
        let g = Gp::grad(&z, &y, &p);
        for i in 0..p.len() {
            let h = 1e-5;
            let (mut a, mut b) = (p.clone(), p.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (nll(&z, &y, &a) - nll(&z, &y, &b)) / (2.0 * h);
            // Central differences are exact to O(h²) ≈ 1e-10 here; rounding adds ~1e-9.
            assert!((g[i] - fd).abs() <= 1e-6 * (1.0 + fd.abs()), "parameter {i}: analytic {} vs {fd}", g[i]);
        }
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
        assert!(rho > 0.95, "spearman {rho}");
    }
}
