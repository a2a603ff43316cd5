//! The target-scale law: each validation domain's loss as a function of how much data the
//! target sees that helps that domain, fitted on runs at the target's own scale, with which
//! domain helps which (the transfer) measured on the cheap proxies. For domain d of mixture w:
//!
//! ```text
//! e_d(w) = w_d + g_d · Σ_{j≠d} τ_dj · w_j + ε        the data that helps d (g_d per form)
//! log form:    L_d = c_d − s_d · ln e_d
//! power form:  L_d = c_d + b_d · e_d^(−β_d)
//! ```
//!
//! τ_dj comes from the proxies (a fit of the log form with every τ_dj free, [`fit_transfer`]):
//! many cheap runs tell which domains help each other. c_d, s_d (b_d, β_d) and g_d, a scale
//! of the proxies' transfer (one per form), are fitted on the target-scale runs ([`TargetLaw::fit`]): a few
//! expensive runs tell how much each domain's own data is worth at the target's scale, which
//! is what proxies far below it misjudge (docs/calibration.md). The model's prediction is the
//! mean of the forms, each domain's term weighted as in the target expression.
//!
//! Fits are least squares by a box-bounded Levenberg–Marquardt ([`least_squares`]), each
//! parameter clamped to its bounds, from fixed starting points: deterministic.
//!
//! A leaf: this module uses only [`crate::linalg`] and [`crate::metrics`].

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::linalg::{cholesky, cholesky_solve};
use crate::metrics::spearman;

/// Added to every domain's data: a domain the mixture gives nothing and nothing helps still
/// has a finite loss.
pub const EPS: f64 = 1e-4;
/// The fewest distinct mixtures among the target-scale runs: as many as the parameters of the
/// larger form (four).
pub const MIN_MIXTURES: usize = 4;

/// A functional form of one domain's loss in its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// `c − s · ln e`, parameters [c, s, ln g].
    Log,
    /// `c + exp(ln b) · e^(−β)`, parameters [c, ln b, ln g, β].
    Power,
}

impl Form {
    pub const ALL: [Form; 2] = [Form::Log, Form::Power];

    /// The loss at data `e` (the transfer scale is applied by the caller).
    fn value(self, p: &[f64], e: f64) -> f64 {
        match self {
            Form::Log => p[0] - p[1] * e.ln(),
            Form::Power => p[0] + p[1].exp() * e.powf(-p[3]),
        }
    }

    /// Bounds of the parameters given the losses' range [lo, hi]: the level c within 20 of
    /// it, losses that fall with data (s, β ≥ 0), the proxies' transfer scaled by e^−8 to e^4.
    fn bounds(self, lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
        let (c_lo, c_hi) = ((lo - 20.0).min(-20.0), (hi + 20.0).max(20.0));
        match self {
            Form::Log => (vec![c_lo, 0.0, -8.0], vec![c_hi, 5.0, 4.0]),
            Form::Power => (vec![c_lo, -10.0, -8.0, 0.01], vec![c_hi, 5.0, 4.0, 3.0]),
        }
    }

    /// How many parameters the form has.
    pub fn parameters(self) -> usize {
        match self {
            Form::Log => 3,
            Form::Power => 4,
        }
    }

    /// Whether a fitted form's loss falls with the domain's data only at its bound: the data
    /// say the loss does not fall (or rises) with it, and the law holds it flat.
    pub fn flat(self, p: &[f64]) -> bool {
        match self {
            Form::Log => p[1] <= 0.0,
            Form::Power => p[3] <= 0.01,
        }
    }

    /// The starting points tried: the proxies' transfer shrunk (e^−3) and as it is.
    fn starts(self) -> Vec<Vec<f64>> {
        [-3.0, 0.0]
            .iter()
            .map(|&lg| match self {
                Form::Log => vec![4.0, 0.3, lg],
                Form::Power => vec![3.0, 0.0, lg, 0.3],
            })
            .collect()
    }
}

/// The transfer into one domain, measured on the proxies.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transfer {
    /// τ_dj for every domain j (τ_dd = 1: a domain's own data counts once).
    pub tau: Vec<f64>,
    /// The proxies' fit: its slope s and root mean square error.
    pub proxy_slope: f64,
    pub proxy_rmse: f64,
}

/// The data that helps domain `d`, with the proxies' transfer scaled by `g`.
fn data(w: &[f64], d: usize, tau: &[f64], g: f64) -> f64 {
    w.iter().zip(tau).enumerate().map(|(j, (wj, t))| if j == d { *wj } else { g * t * wj }).sum::<f64>() + EPS
}

/// Fits the transfer into domain `d` on the proxies: `L_d = c − s · ln(w_d + Σ_{j≠d} τ_j w_j + ε)`
/// with every τ_j in [e^−12, e^2], by least squares over the rows `x` (weights) and `loss`.
pub fn fit_transfer(x: &[Vec<f64>], loss: &[f64], d: usize) -> Result<Transfer> {
    let k = x.first().map_or(0, |w| w.len());
    if x.len() < k + 2 {
        bail!(
            "the transfer into a domain needs at least {} proxy runs (one per domain and two); have {}",
            k + 2,
            x.len()
        );
    }
    let mean = loss.iter().sum::<f64>() / loss.len() as f64;
    let mut p0 = vec![mean, 0.3];
    p0.extend(std::iter::repeat_n(-3.0, k));
    let mut lo = vec![-20.0, 0.0];
    lo.extend(std::iter::repeat_n(-12.0, k));
    let mut hi = vec![20.0, 5.0];
    hi.extend(std::iter::repeat_n(2.0, k));
    // τ_dd is not a parameter: pinned at its start.
    lo[2 + d] = p0[2 + d];
    hi[2 + d] = p0[2 + d];
    let tau_of = |p: &[f64]| -> Vec<f64> { (0..k).map(|j| if j == d { 1.0 } else { p[2 + j].exp() }).collect() };
    let (p, cost) = least_squares(
        |p, r| {
            let tau = tau_of(p);
            for (i, w) in x.iter().enumerate() {
                r[i] = p[0] - p[1] * data(w, d, &tau, 1.0).ln() - loss[i];
            }
        },
        &p0,
        &lo,
        &hi,
        x.len(),
    );
    Ok(Transfer { tau: tau_of(&p), proxy_slope: p[1], proxy_rmse: (2.0 * cost / x.len() as f64).sqrt() })
}

/// One domain's law at the target's scale: a term of the target expression.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DomainLaw {
    /// The loss column (`valid_loss.<domain>`), its coefficient in the target, and the index
    /// of its domain among the weights.
    pub column: String,
    pub coef: f64,
    pub domain: usize,
    pub transfer: Transfer,
    /// Per form (in [`TargetLaw::forms`] order): the fitted parameters.
    pub params: Vec<Vec<f64>>,
    /// Per form: the in-sample root mean square error over the target runs.
    pub rmse: Vec<f64>,
}

impl DomainLaw {
    fn predict(&self, forms: &[Form], w: &[f64]) -> f64 {
        let mut sum = 0.0;
        for (f, p) in forms.iter().zip(&self.params) {
            sum += f.value(p, data(w, self.domain, &self.transfer.tau, p[2].exp()));
        }
        sum / forms.len() as f64
    }
}

/// The target-scale law of every term of the target: the model `fit --target-runs` fits.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TargetLaw {
    pub forms: Vec<Form>,
    pub laws: Vec<DomainLaw>,
    /// The target-scale runs fitted: weights, and per run the loss of each law's column.
    pub x: Vec<Vec<f64>>,
    pub losses: Vec<Vec<f64>>,
    /// The files the runs came from (for provenance; refits use `x` and `losses`).
    #[serde(default)]
    pub sources: Vec<Source>,
}

/// A file of target-scale runs a law was fitted on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Source {
    pub path: String,
    pub sha256: String,
    pub rows: usize,
}

/// One term of the target: its column, coefficient, domain index, and its transfer from the
/// proxies.
pub struct Term {
    pub column: String,
    pub coef: f64,
    pub domain: usize,
    pub transfer: Transfer,
}

impl TargetLaw {
    /// Fits every term's forms on the target-scale runs `x` (weights) with `losses` (per run,
    /// per term).
    pub fn fit(terms: Vec<Term>, x: &[Vec<f64>], losses: &[Vec<f64>]) -> Result<TargetLaw> {
        let mixtures = groups(x).len();
        if mixtures < MIN_MIXTURES {
            bail!(
                "the target-scale runs hold {mixtures} distinct mixtures; a target law needs at least {MIN_MIXTURES} \
                 (it fits up to four parameters per domain)"
            );
        }
        Ok(TargetLaw::fit_any(&Form::ALL, terms, x, losses))
    }

    /// The fit without the minimum: a refit on some of the runs (one mixture left out, a
    /// bootstrap resample) may hold fewer mixtures than a user's input must; the bounds keep
    /// every parameter finite.
    fn fit_any(forms: &[Form], terms: Vec<Term>, x: &[Vec<f64>], losses: &[Vec<f64>]) -> TargetLaw {
        let forms = forms.to_vec();
        let laws = terms
            .into_iter()
            .enumerate()
            .map(|(t, term)| {
                let y: Vec<f64> = losses.iter().map(|l| l[t]).collect();
                let (params, rmse): (Vec<Vec<f64>>, Vec<f64>) =
                    forms.iter().map(|&f| fit_form(f, x, &y, term.domain, &term.transfer.tau)).unzip();
                DomainLaw {
                    column: term.column,
                    coef: term.coef,
                    domain: term.domain,
                    transfer: term.transfer,
                    params,
                    rmse,
                }
            })
            .collect();
        TargetLaw { forms, laws, x: x.to_vec(), losses: losses.to_vec(), sources: Vec::new() }
    }

    /// The target at mixture `w`.
    pub fn predict(&self, w: &[f64]) -> f64 {
        self.laws.iter().map(|l| l.coef * l.predict(&self.forms, w)).sum()
    }

    /// The target of each fitted run, as observed.
    pub fn observed(&self) -> Vec<f64> {
        self.losses.iter().map(|l| self.laws.iter().zip(l).map(|(law, v)| law.coef * v).sum()).collect()
    }

    /// The same law refitted on the runs `idx` (a bootstrap resample); the proxies' transfer
    /// is kept.
    pub fn refit_rows(&self, idx: &[usize]) -> Result<TargetLaw> {
        let x: Vec<Vec<f64>> = idx.iter().map(|&i| self.x[i].clone()).collect();
        let losses: Vec<Vec<f64>> = idx.iter().map(|&i| self.losses[i].clone()).collect();
        Ok(TargetLaw { sources: self.sources.clone(), ..TargetLaw::fit_any(&self.forms, self.terms(), &x, &losses) })
    }

    fn terms(&self) -> Vec<Term> {
        self.laws
            .iter()
            .map(|l| Term { column: l.column.clone(), coef: l.coef, domain: l.domain, transfer: l.transfer.clone() })
            .collect()
    }

    /// Leave one mixture out: for each distinct mixture of the runs, the law refitted on the
    /// others predicts it. Returns the prediction for every run (its mixture's).
    pub fn leave_one_mixture_out(&self) -> Result<Vec<f64>> {
        let mut out = vec![f64::NAN; self.x.len()];
        for g in groups(&self.x) {
            let rest: Vec<usize> = (0..self.x.len()).filter(|i| !g.contains(i)).collect();
            let m = self.refit_rows(&rest)?;
            let p = m.predict(&self.x[g[0]]);
            g.iter().for_each(|&i| out[i] = p);
        }
        Ok(out)
    }

    /// The Spearman correlation, over distinct mixtures, of the observed target (a mixture's
    /// runs averaged) and the leave-one-mixture-out prediction.
    pub fn lomo_spearman(&self, lomo: &[f64]) -> f64 {
        let obs = self.observed();
        let (mut t, mut p) = (Vec::new(), Vec::new());
        for g in groups(&self.x) {
            t.push(g.iter().map(|&i| obs[i]).sum::<f64>() / g.len() as f64);
            p.push(lomo[g[0]]);
        }
        spearman(&t, &p)
    }
}

/// Whether two rows of weights are one mixture (equal within 1e-9).
pub fn same_mixture(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 1e-9)
}

/// The runs grouped by mixture ([`same_mixture`]), in order of first appearance.
pub fn groups(x: &[Vec<f64>]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (i, w) in x.iter().enumerate() {
        match out.iter_mut().find(|g| same_mixture(&x[g[0]], w)) {
            Some(g) => g.push(i),
            None => out.push(vec![i]),
        }
    }
    out
}

/// One form fitted on one domain's losses `y`; returns the parameters and the RMSE.
fn fit_form(form: Form, x: &[Vec<f64>], y: &[f64], d: usize, tau: &[f64]) -> (Vec<f64>, f64) {
    let (y_lo, y_hi) = y.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let (lo, hi) = form.bounds(y_lo, y_hi);
    let mut best: Option<(Vec<f64>, f64)> = None;
    for p0 in form.starts() {
        let (p, cost) = least_squares(
            |p, r| {
                let g = p[2].exp();
                for (i, w) in x.iter().enumerate() {
                    r[i] = form.value(p, data(w, d, tau, g)) - y[i];
                }
            },
            &p0,
            &lo,
            &hi,
            x.len(),
        );
        if best.as_ref().is_none_or(|(_, c)| cost < *c) {
            best = Some((p, cost));
        }
    }
    let (p, cost) = best.expect("every form has a starting point");
    (p, (2.0 * cost / y.len().max(1) as f64).sqrt())
}

/// Iterations of [`least_squares`] at most.
const LM_ITERS: usize = 300;

/// Minimises ½‖r(p)‖² over the box [lo, hi] by Levenberg–Marquardt: a forward-difference
/// Jacobian, the damped normal equations (JᵀJ + λ·diag(JᵀJ)) δ = −Jᵀr solved by Cholesky, each
/// step clamped into the box; a step that lowers the cost is taken and λ shrinks, else λ
/// grows; a parameter at a bound that the gradient pushes outward is held for the step. Stops when a taken step lowers the cost by less than 1e-12 of it, or λ exceeds 1e10.
/// `r(p, out)` writes the `m` residuals. Returns the parameters and the cost.
pub fn least_squares(r: impl Fn(&[f64], &mut [f64]), p0: &[f64], lo: &[f64], hi: &[f64], m: usize) -> (Vec<f64>, f64) {
    let n = p0.len();
    let clamp = |p: &mut [f64]| p.iter_mut().enumerate().for_each(|(i, v)| *v = v.clamp(lo[i], hi[i]));
    let cost_of = |res: &[f64]| 0.5 * res.iter().map(|v| v * v).sum::<f64>();
    let mut p = p0.to_vec();
    clamp(&mut p);
    let mut res = vec![0.0; m];
    r(&p, &mut res);
    let mut cost = cost_of(&res);
    let mut lambda = 1e-3;
    let (mut jac, mut shifted, mut trial_res) = (vec![0.0; m * n], vec![0.0; m], vec![0.0; m]);
    for _ in 0..LM_ITERS {
        // The Jacobian, column by column; a parameter at its upper bound steps down.
        for k in 0..n {
            if lo[k] == hi[k] {
                (0..m).for_each(|i| jac[i * n + k] = 0.0);
                continue;
            }
            let h = 1e-7 * p[k].abs().max(1.0);
            let h = if p[k] + h > hi[k] { -h } else { h };
            let mut q = p.clone();
            q[k] += h;
            r(&q, &mut shifted);
            (0..m).for_each(|i| jac[i * n + k] = (shifted[i] - res[i]) / h);
        }
        let mut a = vec![0.0; n * n];
        let mut g = vec![0.0; n];
        for i in 0..m {
            let row = &jac[i * n..(i + 1) * n];
            for k in 0..n {
                g[k] += row[k] * res[i];
                for l in 0..=k {
                    a[k * n + l] += row[k] * row[l];
                }
            }
        }
        for k in 0..n {
            for l in 0..k {
                a[l * n + k] = a[k * n + l];
            }
        }
        // A pinned parameter (lo = hi), or one at a bound that the gradient pushes out of the
        // box, is held for this step: an identity row and no gradient, so the others' step
        // does not count on a move the box forbids.
        for k in 0..n {
            let held = lo[k] == hi[k] || (p[k] <= lo[k] && g[k] > 0.0) || (p[k] >= hi[k] && g[k] < 0.0);
            if held {
                (0..n).for_each(|l| {
                    a[k * n + l] = 0.0;
                    a[l * n + k] = 0.0;
                });
                a[k * n + k] = 1.0;
                g[k] = 0.0;
            }
        }
        let mut improved = false;
        while lambda <= 1e10 {
            let mut damped = a.clone();
            for k in 0..n {
                damped[k * n + k] += lambda * a[k * n + k].max(1e-12);
            }
            let mut step: Vec<f64> = g.iter().map(|v| -v).collect();
            if !cholesky(&mut damped, n) {
                lambda *= 10.0;
                continue;
            }
            cholesky_solve(&damped, n, &mut step);
            let mut trial: Vec<f64> = p.iter().zip(&step).map(|(a, b)| a + b).collect();
            clamp(&mut trial);
            r(&trial, &mut trial_res);
            let c = cost_of(&trial_res);
            if c.is_finite() && c < cost {
                let done = cost - c <= 1e-12 * cost;
                p = trial;
                std::mem::swap(&mut res, &mut trial_res);
                cost = c;
                lambda = (lambda / 3.0).max(1e-12);
                improved = !done;
                break;
            }
            lambda *= 4.0;
        }
        if !improved {
            break;
        }
    }
    (p, cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Sparse random mixtures of `k` domains (a few domains each, as Dirichlet draws with a
    /// small concentration give).
    fn mixtures(n: usize, k: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let mut w: Vec<f64> = (0..k).map(|_| rng.random::<f64>().powi(3)).collect();
                let s: f64 = w.iter().sum();
                w.iter_mut().for_each(|v| *v /= s);
                w
            })
            .collect()
    }

    #[test]
    fn least_squares_finds_a_known_minimum_inside_its_bounds_and_stops_at_a_bound() {
        // r = (p0 − 3, 2(p1 + 1)): minimum at (3, −1).
        let f = |p: &[f64], r: &mut [f64]| {
            r[0] = p[0] - 3.0;
            r[1] = 2.0 * (p[1] + 1.0);
        };
        let (p, cost) = least_squares(f, &[0.0, 0.0], &[-10.0, -10.0], &[10.0, 10.0], 2);
        assert!((p[0] - 3.0).abs() < 1e-6 && (p[1] + 1.0).abs() < 1e-6 && cost < 1e-12, "{p:?} {cost}");
        let (p, _) = least_squares(f, &[0.0, 0.0], &[-10.0, 0.0], &[10.0, 10.0], 2);
        assert!((p[0] - 3.0).abs() < 1e-6 && p[1] == 0.0, "held at the bound p1 = 0: {p:?}");
    }

    #[test]
    fn fit_transfer_recovers_which_domain_helps_which() {
        // Three domains: domain 0 is helped much by domain 1 (τ = 0.5), little by domain 2 (0.01).
        let x = mixtures(200, 3, 1);
        let loss: Vec<f64> = x.iter().map(|w| 5.0 - 0.4 * (w[0] + 0.5 * w[1] + 0.01 * w[2] + EPS).ln()).collect();
        let t = fit_transfer(&x, &loss, 0).unwrap();
        assert!((t.tau[1] - 0.5).abs() < 0.005, "τ from domain 1 {}", t.tau[1]);
        assert!((t.tau[2] - 0.01).abs() < 0.001, "τ from domain 2 {}", t.tau[2]);
        assert_eq!(t.tau[0], 1.0);
        assert!((t.proxy_slope - 0.4).abs() < 0.01 && t.proxy_rmse < 1e-4, "{t:?}");
    }

    /// Target-scale runs of two domains, each a log law in its own weight with domain-specific
    /// slopes (0.2 and 0.8), no transfer: the mean of the two is lowest at w_1 = 0.8.
    fn two_domain_law(x: &[Vec<f64>]) -> TargetLaw {
        let terms = (0..2)
            .map(|d| Term {
                column: format!("valid_loss.d{d}"),
                coef: 0.5,
                domain: d,
                transfer: Transfer { tau: vec![1e-6, 1e-6], proxy_slope: 0.3, proxy_rmse: 0.0 },
            })
            .collect();
        let losses: Vec<Vec<f64>> =
            x.iter().map(|w| vec![4.0 - 0.2 * (w[0] + EPS).ln(), 3.0 - 0.8 * (w[1] + EPS).ln()]).collect();
        TargetLaw::fit(terms, x, &losses).unwrap()
    }

    #[test]
    fn the_law_predicts_a_mixture_it_did_not_fit_and_prefers_the_steeper_domain() {
        let x: Vec<Vec<f64>> = [0.05, 0.2, 0.4, 0.6, 0.9, 0.97].iter().map(|&a| vec![a, 1.0 - a]).collect();
        let law = two_domain_law(&x);
        let truth = |a: f64| 0.5 * (4.0 - 0.2 * (a + EPS).ln()) + 0.5 * (3.0 - 0.8 * (1.0 - a + EPS).ln());
        assert!((law.predict(&[0.3, 0.7]) - truth(0.3)).abs() < 0.01, "{} vs {}", law.predict(&[0.3, 0.7]), truth(0.3));
        let best = (1..100)
            .map(|i| i as f64 / 100.0)
            .min_by(|a, b| law.predict(&[*a, 1.0 - a]).total_cmp(&law.predict(&[*b, 1.0 - b])));
        assert!((best.unwrap() - 0.2).abs() <= 0.02, "optimum w_0 = {best:?}, the truth's 0.2");
    }

    #[test]
    fn leave_one_mixture_out_ranks_held_out_mixtures_and_groups_repeated_runs() {
        let mut x: Vec<Vec<f64>> = [0.05, 0.2, 0.4, 0.6, 0.9, 0.97].iter().map(|&a| vec![a, 1.0 - a]).collect();
        x.push(x[2].clone());
        let law = two_domain_law(&x);
        let lomo = law.leave_one_mixture_out().unwrap();
        assert_eq!(lomo[2], lomo[6], "the two runs of one mixture are held out together");
        assert!(law.lomo_spearman(&lomo) > 0.99, "{}", law.lomo_spearman(&lomo));
    }

    #[test]
    fn four_mixtures_fit_and_each_can_be_left_out() {
        let x: Vec<Vec<f64>> = [0.1, 0.4, 0.7, 0.9].iter().map(|&a| vec![a, 1.0 - a]).collect();
        let law = two_domain_law(&x);
        let lomo = law.leave_one_mixture_out().unwrap();
        assert!(lomo.iter().all(|p| p.is_finite()), "{lomo:?}");
    }

    #[test]
    fn fewer_than_four_mixtures_are_refused_naming_the_count() {
        let x: Vec<Vec<f64>> = vec![vec![0.5, 0.5], vec![0.2, 0.8], vec![0.2, 0.8], vec![0.9, 0.1]];
        let terms = vec![Term {
            column: "valid_loss.d0".into(),
            coef: 1.0,
            domain: 0,
            transfer: Transfer { tau: vec![1.0, 0.0], proxy_slope: 0.0, proxy_rmse: 0.0 },
        }];
        let e = TargetLaw::fit(terms, &x, &vec![vec![1.0]; 4]).unwrap_err().to_string();
        assert!(e.starts_with("the target-scale runs hold 3 distinct mixtures"), "{e}");
    }
}
