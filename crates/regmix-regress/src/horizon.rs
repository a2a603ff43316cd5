//! The loss at another training length: a power law in tokens per validation domain, its
//! asymptote and scale regressed on the mixture weights.
//!
//! For domain d and mixture w, evaluated after t training tokens:
//!
//! ```text
//! L_d(w, t) = E_d(w) + B_d(w) · (t / t_ref)^(−β_d)
//! ```
//!
//! β_d is shared by every mixture; E_d and B_d are each run's own. [`fit_curves`] fits them
//! from the runs' evaluation curves: for each β a closed-form weighted least squares of every
//! curve's (E, B) under Huber's loss (iteratively reweighted), β by a log-spaced grid refined
//! by golden-section search on the summed Huber loss. [`Horizon`] then holds E_d + B_d (the
//! loss at t_ref) and ln B_d regressed on the weights (the regressors of [`crate::model`]) and predicts a target
//! expression at any number of tokens from the predicted domain losses.
//!
//! The law describes a run at a constant learning rate after its warm-up (the proxies'
//! schedule, the paper's): warm-up evaluations are the caller's to drop, and a target whose
//! learning rate decays ends lower than the law's constant-rate loss, by an annealing gain
//! that the law does not model (see [`ASSUMPTION`]).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::cv::{fit_kinds, Fitted};
use crate::model::{Kind, Model};
use crate::score::Scorer;

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
        if let Some(j) = (0..c.loss.len()).find(|&j| !c.loss[j].is_finite() || !(c.tokens[j].is_finite() && c.tokens[j] > 0.0)) {
            bail!("curve {i}: evaluation {j} (tokens {}, loss {}) is not a finite loss at a positive token count", c.tokens[j], c.loss[j]);
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
    let grid: Vec<f64> = (0..GRID).map(|i| BETA_MIN * (BETA_MAX / BETA_MIN).powf(i as f64 / (GRID - 1) as f64)).collect();
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

/// One validation domain's law, as a term of the target expression.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Law {
    /// The loss column (`valid_loss.<domain>`) and its coefficient in the target.
    pub column: String,
    pub coef: f64,
    pub beta: f64,
    /// In-sample root mean square error of the fitted curves, and the curves held at
    /// [`B_FLOOR`].
    pub curve_rmse: f64,
    pub clamped: usize,
    /// The loss at `t_ref` (E + B) and ln B, regressed on the weights: the pair a curve
    /// determines well (E and B alone trade off against each other when β is small).
    pub at_ref: Model,
    pub log_b: Model,
    /// Each training run's fitted E + B and ln B (the regressions' targets, for bootstrap
    /// refits).
    pub at_ref_of_run: Vec<f64>,
    pub log_b_of_run: Vec<f64>,
}

/// The horizon-aware model: the target at `at_tokens` from every domain's law.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Horizon {
    /// The horizon predicted.
    pub at_tokens: u64,
    /// Tokens at which B is the loss above the asymptote (the largest fitted evaluation).
    pub t_ref: f64,
    /// The evaluations fitted: from the first after warm-up to the last read.
    pub fit_tokens: [u64; 2],
    pub assumption: String,
    pub laws: Vec<Law>,
    /// The training runs' weights (rows of the regressions), for bootstrap refits.
    pub x: Vec<Vec<f64>>,
}

impl Horizon {
    /// The factor of B at `tokens` for a law.
    pub fn decay(&self, law: &Law, tokens: u64) -> f64 {
        (tokens as f64 / self.t_ref).powf(-law.beta)
    }

    /// The same model predicting another horizon (e.g. the proxies' own length).
    pub fn at(&self, tokens: u64) -> Horizon {
        Horizon { at_tokens: tokens, ..self.clone() }
    }

    /// The same laws with E and ln B refitted on the training runs `idx` (a bootstrap
    /// resample), each regressor with its hyper-parameters.
    pub fn refit_rows(&self, idx: &[usize], seed: u64) -> Result<Horizon> {
        let xb: Vec<Vec<f64>> = idx.iter().map(|&i| self.x[i].clone()).collect();
        let laws = self
            .laws
            .iter()
            .map(|l| {
                let eb: Vec<f64> = idx.iter().map(|&i| l.at_ref_of_run[i]).collect();
                let bb: Vec<f64> = idx.iter().map(|&i| l.log_b_of_run[i]).collect();
                Ok(Law { at_ref: l.at_ref.refit(&xb, &eb, seed)?, log_b: l.log_b.refit(&xb, &bb, seed)?, ..l.clone() })
            })
            .collect::<Result<_>>()?;
        Ok(Horizon { laws, x: xb, ..self.clone() })
    }
}

/// A law's loss at the horizon whose decay factor is `decay` ((t/t_ref)^(−β)), from its loss
/// at t_ref and ln B: L = (E + B) − B·(1 − decay).
pub fn value(at_ref: f64, log_b: f64, decay: f64) -> f64 {
    at_ref + log_b.exp() * (decay - 1.0)
}

/// One domain's fitted curves as a term of the target.
pub struct LawInput {
    pub column: String,
    pub coef: f64,
    pub fit: CurveFit,
}

/// A horizon model of one regressor kind fitted with cross-validation: the out-of-fold E and
/// ln B of every run (per law), so the composite can be predicted out of fold at any horizon.
pub struct HorizonCv {
    pub kind: Kind,
    pub horizon: Horizon,
    pub fold_of: Vec<usize>,
    pub at_ref_oof: Vec<Vec<f64>>,
    pub log_b_oof: Vec<Vec<f64>>,
}

impl HorizonCv {
    /// Each training run's target at `tokens`, predicted by the fold model that held it out.
    pub fn oof_at(&self, tokens: u64) -> Vec<f64> {
        (0..self.horizon.x.len()).map(|r| self.oof_of(r, tokens)).collect()
    }

    /// Training run `r`'s target at `tokens`, out of fold.
    pub fn oof_of(&self, r: usize, tokens: u64) -> f64 {
        let h = &self.horizon;
        h.laws.iter().enumerate().map(|(j, l)| l.coef * value(self.at_ref_oof[j][r], self.log_b_oof[j][r], h.decay(l, tokens))).sum()
    }
}

impl Horizon {
    /// Each training run's target at `tokens` from its own fitted curves (no regression): what
    /// the regression of E and ln B is scored against.
    pub fn curves_at(&self, tokens: u64) -> Vec<f64> {
        let mut out = vec![0.0; self.x.len()];
        for l in &self.laws {
            let decay = self.decay(l, tokens);
            for i in 0..out.len() {
                out[i] += l.coef * value(l.at_ref_of_run[i], l.log_b_of_run[i], decay);
            }
        }
        out
    }
}

/// Regresses every law's E and ln B on the weights `x` with each of `kinds` (the same folds
/// for all, so the composite's out-of-fold predictions are out of fold), one [`HorizonCv`]
/// per kind.
pub fn fit_laws_cv(kinds: &[Kind], x: &[Vec<f64>], laws: &[LawInput], at_tokens: u64, t_ref: f64, fit_tokens: [u64; 2], folds: usize, seed: u64) -> Result<Vec<HorizonCv>> {
    use rayon::prelude::*;
    // Per law: the fitted kinds of E and of ln B.
    let per_law: Vec<(Vec<(Kind, Fitted)>, Vec<(Kind, Fitted)>)> = laws
        .par_iter()
        .map(|l| {
            let lb: Vec<f64> = l.fit.b.iter().map(|b| b.ln()).collect();
            let a: Vec<f64> = l.fit.e.iter().zip(&l.fit.b).map(|(e, b)| e + b).collect();
            Ok((fit_kinds(kinds, x, &a, folds, seed)?, fit_kinds(kinds, x, &lb, folds, seed)?))
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    for (k, &kind) in kinds.iter().enumerate() {
        let mut built = Vec::new();
        let (mut at_ref_oof, mut b_oof) = (Vec::new(), Vec::new());
        let mut fold_of = Vec::new();
        for (l, (es, bs)) in laws.iter().zip(&per_law) {
            let (e, b) = (&es[k].1, &bs[k].1);
            fold_of = e.fold_of.clone();
            at_ref_oof.push(e.oof.clone());
            b_oof.push(b.oof.clone());
            built.push(Law {
                column: l.column.clone(),
                coef: l.coef,
                beta: l.fit.beta,
                curve_rmse: l.fit.rmse,
                clamped: l.fit.clamped,
                at_ref: e.model.clone(),
                log_b: b.model.clone(),
                at_ref_of_run: l.fit.e.iter().zip(&l.fit.b).map(|(e, b)| e + b).collect(),
                log_b_of_run: l.fit.b.iter().map(|b| b.ln()).collect(),
            });
        }
        let horizon = Horizon { at_tokens, t_ref, fit_tokens, assumption: ASSUMPTION.to_string(), laws: built, x: x.to_vec() };
        out.push(HorizonCv { kind, horizon, fold_of, at_ref_oof, log_b_oof: b_oof });
    }
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

    #[test]
    fn the_composite_at_the_last_evaluation_tracks_the_observed_losses() {
        // Two domains whose curves depend on the weight of the first: E = 3 − w, B = 1 + 2w.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let tokens: Vec<f64> = (0..6).map(|i| 20_000.0 * 1.6f64.powi(i)).collect();
        let t_ref = tokens[5];
        let x: Vec<Vec<f64>> = (0..40).map(|_| { let w: f64 = rng.random(); vec![w, 1.0 - w] }).collect();
        let curves = |scale: f64, beta: f64| -> Vec<Curve> {
            x.iter()
                .map(|w| Curve { tokens: tokens.clone(), loss: tokens.iter().map(|t| scale * (3.0 - w[0] + (1.0 + 2.0 * w[0]) * (t / t_ref).powf(-beta))).collect() })
                .collect()
        };
        let laws: Vec<LawInput> = [(1.0, 0.5), (0.8, 0.9)]
            .iter()
            .enumerate()
            .map(|(j, &(scale, beta))| LawInput { column: format!("valid_loss.d{j}"), coef: 0.5, fit: fit_curves(&curves(scale, beta), t_ref).unwrap() })
            .collect();
        let cv = fit_laws_cv(&[Kind::Gp], &x, &laws, t_ref as u64, t_ref, [20_000, t_ref as u64], 5, 1).unwrap();
        let observed: Vec<f64> = x.iter().map(|w| 0.9 * (4.0 + w[0])).collect();
        let oof = cv[0].oof_at(t_ref as u64);
        let worst = oof.iter().zip(&observed).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 0.01, "largest out-of-fold error at the last evaluation {worst}");
        let fitted = crate::predict_many(&Model::Horizon(Box::new(cv[0].horizon.clone())), &x).unwrap();
        let worst = fitted.iter().zip(&observed).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 0.01, "largest in-sample error {worst}");
    }
}
