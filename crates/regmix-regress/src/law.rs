//! The power law of a loss in training tokens, one per validation domain, and its fit to the
//! runs' evaluation curves. For domain d and mixture w, evaluated after t training tokens:
//!
//! ```text
//! L_d(w, t) = E_d(w) + B_d(w) · (t / t_ref)^(−β_d)
//! ```
//!
//! β_d is shared by every mixture; E_d and B_d are each run's own. [`fit_curves`] fits them
//! from the runs' evaluation curves: for each β a closed-form weighted least squares of every
//! curve's (E, B) under Huber's loss (iteratively reweighted), β by a log-spaced grid refined
//! by golden-section search on the summed Huber loss. [`value`] is a law's loss at another
//! horizon. The regression of E and B on the weights is [`crate::horizon`]'s; the model that
//! predicts with them is [`crate::model::Horizon`].
//!
//! The law describes a run at a constant learning rate after its warm-up (the proxies'
//! schedule, the paper's): warm-up evaluations are the caller's to drop, and a target whose
//! learning rate decays ends lower than the law's constant-rate loss, by an annealing gain
//! that the law does not model (see [`ASSUMPTION`]).
//!
//! A leaf: this module uses no other module of the crate.

use anyhow::{bail, Result};

/// What the law assumes about the learning-rate schedule, recorded in every fit that uses it.
pub const ASSUMPTION: &str = "the law is fitted to constant-learning-rate curves after warm-up and predicts the \
loss a run at that constant rate reaches after the horizon's tokens; a target whose rate decays (cosine) ends \
lower by an annealing gain the law does not model, assumed to shift every mixture alike, so it ranks mixtures \
but its absolute values are those of a constant-rate run";

/// Bounds of the exponent search: losses of language models fall with t^(−β) for β well
/// inside this range (Kaplan et al.: 0.095 in data at scale; small models early in training:
/// up to about 1).
pub const BETA_MIN: f64 = 0.01;
pub const BETA_MAX: f64 = 4.0;
/// Grid points over [BETA_MIN, BETA_MAX] (log-spaced) before the golden-section refinement.
const GRID: usize = 48;
const GOLDEN_STEPS: usize = 40;
const IRLS_STEPS: usize = 8;
/// Huber's δ in robust standard deviations (95% efficiency under Gaussian noise).
const HUBER_K: f64 = 1.345;
/// The smallest scale B a curve keeps: a curve that does not fall (B ≤ 0: noise, or a domain
/// the run barely sees) is fitted with B at this floor, so that ln B stays finite.
pub const B_FLOOR: f64 = 1e-4;

/// One run's evaluations on one domain (warm-up dropped): tokens and losses.
#[derive(Clone, Debug, Default)]
pub struct Curve {
    pub tokens: Vec<f64>,
    pub loss: Vec<f64>,
}

/// The fitted curves of one domain.
#[derive(Clone, Debug)]
pub struct CurveFit {
    pub beta: f64,
    /// Per curve.
    pub e: Vec<f64>,
    pub b: Vec<f64>,
    /// Root mean square of the residuals over every point.
    pub rmse: f64,
    /// Curves whose B was held at [`B_FLOOR`].
    pub clamped: usize,
    pub points: usize,
}

/// The fewest evaluations a curve needs: three values for two parameters per curve and a
/// shared exponent.
pub const MIN_POINTS: usize = 3;

fn huber(r: f64, delta: f64) -> f64 {
    let a = r.abs();
    if a <= delta {
        0.5 * r * r
    } else {
        delta * (a - 0.5 * delta)
    }
}

/// Weighted least squares of y = e + b·x with Huber reweighting; returns (e, b). Where the
/// x do not vary (β → 0), b = 0 and e is the robust mean.
fn fit_line(x: &[f64], y: &[f64], delta: f64) -> (f64, f64) {
    let mut w = vec![1.0; x.len()];
    let (mut e, mut b) = (0.0, 0.0);
    for _ in 0..IRLS_STEPS {
        let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for i in 0..x.len() {
            sw += w[i];
            sx += w[i] * x[i];
            sy += w[i] * y[i];
            sxx += w[i] * x[i] * x[i];
            sxy += w[i] * x[i] * y[i];
        }
        let det = sw * sxx - sx * sx;
        if det.abs() <= 1e-12 * sw * sxx.max(1e-300) {
            (e, b) = (sy / sw, 0.0);
        } else {
            b = (sw * sxy - sx * sy) / det;
            e = (sy - b * sx) / sw;
        }
        if b < B_FLOOR {
            b = B_FLOOR;
            e = (sy - b * sx) / sw;
        }
        for i in 0..x.len() {
            let r = (y[i] - e - b * x[i]).abs();
            w[i] = if r <= delta { 1.0 } else { delta / r };
        }
    }
    (e, b)
}

fn xs(c: &Curve, beta: f64, t_ref: f64) -> Vec<f64> {
    c.tokens.iter().map(|t| (t / t_ref).powf(-beta)).collect()
}

/// The summed Huber loss of every curve at exponent `beta`, and the curves' (e, b).
fn objective(curves: &[Curve], beta: f64, t_ref: f64, delta: f64) -> (f64, Vec<(f64, f64)>) {
    let mut total = 0.0;
    let mut eb = Vec::with_capacity(curves.len());
    for c in curves {
        let x = xs(c, beta, t_ref);
        let (e, b) = fit_line(&x, &c.loss, delta);
        total += x.iter().zip(&c.loss).map(|(xi, yi)| huber(yi - e - b * xi, delta)).sum::<f64>();
        eb.push((e, b));
    }
    (total, eb)
}

/// Fits the power law to every curve of one domain, with one exponent for all. Each curve
/// needs [`MIN_POINTS`] finite losses at positive token counts (the caller leaves out, with a
/// logged reason, the runs that do not have them; here they are an error).
pub fn fit_curves(curves: &[Curve], t_ref: f64) -> Result<CurveFit> {
    if curves.is_empty() {
        bail!("no curves to fit");
    }
    if !(t_ref.is_finite() && t_ref > 0.0) {
        bail!("the reference token count {t_ref} must be positive");
    }
    for (i, c) in curves.iter().enumerate() {
        if c.tokens.len() != c.loss.len() {
            bail!("curve {i}: {} token counts for {} losses", c.tokens.len(), c.loss.len());
        }
        if c.tokens.len() < MIN_POINTS {
            bail!("curve {i}: {} evaluations, the law needs at least {MIN_POINTS}", c.tokens.len());
        }
        if let Some(j) =
            (0..c.loss.len()).find(|&j| !c.loss[j].is_finite() || !(c.tokens[j].is_finite() && c.tokens[j] > 0.0))
        {
            bail!(
                "curve {i}: evaluation {j} (tokens {}, loss {}) is not a finite loss at a positive token count",
                c.tokens[j],
                c.loss[j]
            );
        }
    }
    // Huber's δ from a robust spread of the residuals of an unweighted fit at a middle
    // exponent; held fixed while β is searched, so the objective compares like with like.
    let (_, eb0) = objective(curves, 0.5, t_ref, f64::INFINITY);
    let mut res: Vec<f64> = Vec::new();
    for (c, (e, b)) in curves.iter().zip(&eb0) {
        res.extend(xs(c, 0.5, t_ref).iter().zip(&c.loss).map(|(x, y)| (y - e - b * x).abs()));
    }
    res.sort_by(f64::total_cmp);
    let mad = res[res.len() / 2];
    let scale = curves.iter().flat_map(|c| c.loss.iter()).fold(0.0f64, |m, v| m.max(v.abs())).max(1.0);
    let delta = (HUBER_K * 1.4826 * mad).max(1e-9 * scale);

    let f = |beta: f64| objective(curves, beta, t_ref, delta).0;
    let grid: Vec<f64> =
        (0..GRID).map(|i| BETA_MIN * (BETA_MAX / BETA_MIN).powf(i as f64 / (GRID - 1) as f64)).collect();
    let vals: Vec<f64> = grid.iter().map(|&b| f(b)).collect();
    let best = (0..GRID).min_by(|&a, &b| vals[a].total_cmp(&vals[b])).expect("a grid");
    let (mut lo, mut hi) = (grid[best.saturating_sub(1)].ln(), grid[(best + 1).min(GRID - 1)].ln());
    // Golden section on ln β between the grid neighbours of the best grid point.
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (hi - g * (hi - lo), lo + g * (hi - lo));
    let (mut fa, mut fb) = (f(a.exp()), f(b.exp()));
    for _ in 0..GOLDEN_STEPS {
        if fa < fb {
            hi = b;
            (b, fb) = (a, fa);
            a = hi - g * (hi - lo);
            fa = f(a.exp());
        } else {
            lo = a;
            (a, fa) = (b, fb);
            b = lo + g * (hi - lo);
            fb = f(b.exp());
        }
    }
    let mut beta = ((lo + hi) / 2.0).exp();
    if f(beta) > vals[best] {
        beta = grid[best];
    }
    let (_, eb) = objective(curves, beta, t_ref, delta);
    let (mut sq, mut points, mut clamped) = (0.0, 0, 0);
    for (c, (e, b)) in curves.iter().zip(&eb) {
        if *b <= B_FLOOR {
            clamped += 1;
        }
        for (x, y) in xs(c, beta, t_ref).iter().zip(&c.loss) {
            sq += (y - e - b * x).powi(2);
            points += 1;
        }
    }
    Ok(CurveFit {
        beta,
        e: eb.iter().map(|p| p.0).collect(),
        b: eb.iter().map(|p| p.1).collect(),
        rmse: (sq / points as f64).sqrt(),
        clamped,
        points,
    })
}

/// A law's loss at the horizon whose decay factor is `decay` ((t/t_ref)^(−β)), from its loss
/// at t_ref and ln B: L = (E + B) − B·(1 − decay).
pub fn value(at_ref: f64, log_b: f64, decay: f64) -> f64 {
    at_ref + log_b.exp() * (decay - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Curves of `n` runs on the law with exponent `beta`, asymptotes 2..3 and scales
    /// 0.5..1.5 at `t_ref`, evaluated at log-spaced tokens, with Gaussian noise `sd`.
    fn synthetic(n: usize, beta: f64, sd: f64, seed: u64) -> (Vec<Curve>, Vec<f64>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tokens: Vec<f64> = (0..8).map(|i| 25_000.0 * 1.5f64.powi(i)).collect();
        let t_ref = tokens[tokens.len() - 1];
        let (mut curves, mut es, mut bs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let e = 2.0 + rng.random::<f64>();
            let b = 0.5 + rng.random::<f64>();
            let loss = tokens
                .iter()
                .map(|t| {
                    // Box–Muller.
                    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
                    e + b * (t / t_ref).powf(-beta) + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
                })
                .collect();
            curves.push(Curve { tokens: tokens.clone(), loss });
            es.push(e);
            bs.push(b);
        }
        (curves, es, bs)
    }

    #[test]
    fn the_fit_recovers_the_exponent_and_asymptotes_of_noisy_curves() {
        let (curves, es, bs) = synthetic(64, 0.6, 0.005, 1);
        let t_ref = curves[0].tokens[7];
        let f = fit_curves(&curves, t_ref).unwrap();
        assert!((f.beta - 0.6).abs() < 0.05, "β = {}", f.beta);
        let e_err = f.e.iter().zip(&es).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let b_err = f.b.iter().zip(&bs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(e_err < 0.08, "largest asymptote error {e_err}");
        assert!(b_err < 0.08, "largest scale error {b_err}");
        assert!((f.rmse - 0.005).abs() < 0.002, "rmse {}", f.rmse);
        assert_eq!(f.clamped, 0);
    }

    #[test]
    fn exact_curves_give_the_exponent_to_many_digits() {
        let (curves, _, _) = synthetic(8, 0.35, 0.0, 2);
        let f = fit_curves(&curves, curves[0].tokens[7]).unwrap();
        assert!((f.beta - 0.35).abs() < 1e-4, "β = {}", f.beta);
        assert!(f.rmse < 1e-6, "rmse {}", f.rmse);
    }

    #[test]
    fn an_outlying_evaluation_does_not_move_the_exponent() {
        let (mut curves, _, _) = synthetic(32, 0.6, 0.005, 3);
        for c in curves.iter_mut().take(4) {
            c.loss[3] += 2.0; // a spike on a few curves
        }
        let f = fit_curves(&curves, curves[0].tokens[7]).unwrap();
        assert!((f.beta - 0.6).abs() < 0.06, "β = {} with four spikes", f.beta);
    }

    #[test]
    fn a_flat_curve_is_held_at_the_floor_not_given_a_negative_scale() {
        let (mut curves, _, _) = synthetic(16, 0.6, 0.002, 4);
        curves[0].loss = curves[0].loss.iter().enumerate().map(|(i, _)| 3.0 + 0.01 * i as f64).collect();
        let f = fit_curves(&curves, curves[0].tokens[7]).unwrap();
        assert_eq!(f.clamped, 1);
        assert_eq!(f.b[0], B_FLOOR);
    }

    #[test]
    fn a_curve_of_two_evaluations_or_a_nan_is_refused_naming_it() {
        let (mut curves, _, _) = synthetic(4, 0.6, 0.0, 5);
        curves[2].tokens.truncate(2);
        curves[2].loss.truncate(2);
        let e = fit_curves(&curves, 1e5).unwrap_err().to_string();
        assert_eq!(e, "curve 2: 2 evaluations, the law needs at least 3");
        let (mut curves, _, _) = synthetic(4, 0.6, 0.0, 5);
        curves[1].loss[4] = f64::NAN;
        let e = fit_curves(&curves, 1e5).unwrap_err().to_string();
        assert!(e.starts_with("curve 1: evaluation 4 "), "{e}");
    }
}
