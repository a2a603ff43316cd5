//! Linear regression of the target on the weights (the paper's baseline), and the Data
//! Mixing Laws form L = c + k·exp(Σ t_j w_j).

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// y = b + Σ β_j x_j by least squares. The weights sum to 1, so the design is rank-deficient;
/// the SVD gives the minimum-norm solution, as numpy's `lstsq` and sklearn do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Linear {
    pub intercept: f64,
    pub coef: Vec<f64>,
}

/// A NaN or an infinity in `x` or `y` gives NaN coefficients at once: nalgebra's SVD never
/// converges on such a matrix and would loop forever (fit refuses such rows before this; the
/// guard is for every other caller, log-linear's ln(L − c) included).
pub fn lstsq(x: &[Vec<f64>], y: &[f64]) -> (f64, Vec<f64>) {
    let n = x.len();
    let d = x[0].len();
    if y.iter().chain(x.iter().flatten()).any(|v| !v.is_finite()) {
        return (f64::NAN, vec![f64::NAN; d]);
    }
    let a = DMatrix::from_fn(n, d + 1, |i, j| if j == 0 { 1.0 } else { x[i][j - 1] });
    let b = DVector::from_column_slice(y);
    let svd = a.svd(true, true);
    let sol = svd.solve(&b, 1e-10).expect("SVD solve");
    (sol[0], sol.iter().skip(1).copied().collect())
}

impl Linear {
    pub fn fit(x: &[Vec<f64>], y: &[f64]) -> Self {
        let (intercept, coef) = lstsq(x, y);
        Linear { intercept, coef }
    }

    pub fn predict(&self, x: &[f64]) -> f64 {
        self.intercept + self.coef.iter().zip(x).map(|(c, v)| c * v).sum::<f64>()
    }
}

/// L = c + k·exp(Σ t_j w_j) (Ye et al., Data Mixing Laws). For a fixed c, log(L − c) is
/// linear in the weights, so c is searched on a grid below min(L) and the rest solved by
/// least squares; the c with the smallest squared error on L wins.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogLinear {
    pub c: f64,
    pub log_k: f64,
    pub t: Vec<f64>,
}

impl LogLinear {
    pub fn fit(x: &[Vec<f64>], y: &[f64]) -> Self {
        let min = y.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let range = (max - min).max(1e-9);
        let mut best: Option<(f64, LogLinear)> = None;
        // c from min − 3·range up to just below min, denser near min.
        for i in 0..60 {
            let gap = range * 3.0 * (0.9f64).powi(i) + range * 1e-4;
            let c = min - gap;
            let ly: Vec<f64> = y.iter().map(|v| (v - c).ln()).collect();
            let (log_k, t) = lstsq(x, &ly);
            let m = LogLinear { c, log_k, t };
            let err: f64 = x.iter().zip(y).map(|(xi, yi)| (m.predict(xi) - yi).powi(2)).sum();
            if best.as_ref().map(|(e, _)| err < *e).unwrap_or(true) {
                best = Some((err, m));
            }
        }
        best.unwrap().1
    }

    pub fn predict(&self, x: &[f64]) -> f64 {
        self.c + (self.log_k + self.t.iter().zip(x).map(|(t, v)| t * v).sum::<f64>()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_weight_or_target_gives_nan_coefficients_instead_of_an_endless_svd() {
        let x = vec![vec![0.5, 0.5], vec![f64::NAN, 0.2], vec![0.1, 0.9]];
        let (b, c) = lstsq(&x, &[1.0, 2.0, 3.0]);
        assert!(b.is_nan() && c.iter().all(|v| v.is_nan()));
        assert!(LogLinear::fit(&x, &[1.0, 2.0, 3.0]).t.iter().all(|v| v.is_nan()), "log-linear ends, with no model");
        let x = vec![vec![0.5, 0.5], vec![0.8, 0.2], vec![0.1, 0.9]];
        assert!(lstsq(&x, &[1.0, f64::NAN, 3.0]).0.is_nan());
    }

    fn simplex(n: usize) -> Vec<Vec<f64>> {
        (0..n)
            .map(|i| {
                let a = ((i * 37) % 100) as f64 / 100.0;
                let b = ((i * 61) % 100) as f64 / 100.0 * (1.0 - a);
                vec![a, b, 1.0 - a - b]
            })
            .collect()
    }

    #[test]
    fn linear_recovers_a_linear_function_of_weights() {
        let x = simplex(50);
        let y: Vec<f64> = x.iter().map(|w| 3.0 + 2.0 * w[0] - w[1]).collect();
        let m = Linear::fit(&x, &y);
        for (w, t) in x.iter().zip(&y) {
            assert!((m.predict(w) - t).abs() < 1e-9);
        }
    }

    #[test]
    fn log_linear_recovers_its_own_form() {
        let x = simplex(80);
        let y: Vec<f64> = x.iter().map(|w| 2.0 + 0.5 * (1.0 * w[0] - 2.0 * w[1]).exp()).collect();
        let m = LogLinear::fit(&x, &y);
        let err: f64 = x.iter().zip(&y).map(|(w, t)| (m.predict(w) - t).abs()).fold(0.0, f64::max);
        assert!(err < 0.02, "max error {err}");
    }
}
