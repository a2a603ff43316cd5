//! The constraints an optimum satisfies: per-domain caps (availability: a domain repeated at
//! most `max_epochs` times in the target run; `--max-weight`), a minimum weight below which
//! a domain is dropped, and Σ w = 1. The search skips simulated mixtures that break a cap;
//! [`enforce`] makes the mean of the top-k satisfy all of them.

use anyhow::{bail, Context, Result};
use regmix_mixture::Prior;

use crate::Args;

/// Iterations of [`enforce`] before it gives up: each one caps at least one more domain or
/// ends, so a feasible problem over d domains needs at most d + 1.
pub const ENFORCE_ITERS: usize = 100;

/// The caps of each domain of `prior` (in its order) from the flags.
pub fn caps(args: &Args, prior: &Prior) -> Result<Vec<f64>> {
    let doms = &prior.domains;
    let mut caps: Vec<f64> = vec![1.0; doms.len()];
    if let Some(k) = args.max_epochs {
        for (c, b) in caps.iter_mut().zip(prior.bounds(k, args.target_tokens)?) {
            *c = c.min(b);
        }
    }
    for mw in &args.max_weight {
        let (d, x) = mw.split_once('=').with_context(|| format!("--max-weight `{mw}`: expected DOMAIN=X"))?;
        let i =
            doms.iter().position(|v| v == d).with_context(|| format!("--max-weight: no domain `{d}` in {doms:?}"))?;
        let x: f64 = x.parse().with_context(|| format!("--max-weight `{mw}`: not a number"))?;
        if !(0.0..=1.0).contains(&x) {
            bail!("--max-weight `{mw}`: {x} is not in [0, 1]");
        }
        caps[i] = caps[i].min(x);
    }
    if caps.iter().sum::<f64>() < 1.0 {
        bail!("the caps sum to {:.4} < 1: no mixture satisfies them", caps.iter().sum::<f64>());
    }
    Ok(caps)
}

/// Makes `w` satisfy 0 ≤ w ≤ cap, w = 0 or w ≥ min_weight, Σ w = 1: weights below the
/// minimum are dropped, excess above a cap is handed to the domains with room in proportion
/// to their weight, until nothing moves. An error when no such mixture is near `w`, or when
/// it has not converged after [`ENFORCE_ITERS`] iterations.
pub fn enforce(w: &mut [f64], caps: &[f64], min_weight: f64) -> Result<()> {
    enforce_within(w, caps, min_weight, ENFORCE_ITERS)
}

/// [`enforce`] with at most `iters` iterations.
pub fn enforce_within(w: &mut [f64], caps: &[f64], min_weight: f64, iters: usize) -> Result<()> {
    let mut excess = f64::NAN;
    for _ in 0..iters {
        for x in w.iter_mut() {
            if *x < min_weight {
                *x = 0.0;
            }
        }
        let s: f64 = w.iter().sum();
        if !(s > 0.0) {
            bail!("every weight of the optimum is below --min-weight {min_weight}");
        }
        for x in w.iter_mut() {
            *x /= s;
        }
        excess = 0.0;
        for (x, c) in w.iter_mut().zip(caps) {
            if *x > *c {
                excess += *x - *c;
                *x = *c;
            }
        }
        if excess < 1e-15 {
            return Ok(());
        }
        let room: f64 = w.iter().zip(caps).filter(|(x, c)| **x > 0.0 && **x < **c).map(|(x, _)| *x).sum();
        if room <= 0.0 {
            bail!("the constraints leave no feasible mixture near the optimum");
        }
        for (x, c) in w.iter_mut().zip(caps) {
            if *x > 0.0 && *x < *c {
                *x += excess * *x / room;
            }
        }
    }
    bail!("the caps and --min-weight {min_weight} did not converge in {iters} iterations (weight {excess:.3e} still above a cap)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforce_hands_the_excess_to_the_domains_with_room_in_proportion_and_drops_small_weights() {
        let mut w = vec![0.7, 0.2, 0.095, 0.005];
        enforce(&mut w, &[0.5, 1.0, 1.0, 1.0], 0.01).unwrap();
        assert_eq!(w[0], 0.5, "capped");
        assert_eq!(w[3], 0.0, "below the minimum");
        assert!((w[1] / w[2] - 0.2 / 0.095).abs() < 1e-12, "the excess goes in proportion: {w:?}");
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((w[1] - 0.5 * 0.2 / 0.295).abs() < 1e-12, "{w:?}");
    }

    #[test]
    fn enforce_that_has_not_converged_is_an_error() {
        // Capping the first domain pushes the second over its own cap: two iterations needed.
        let caps = [0.4, 0.35, 1.0];
        let mut w = vec![0.6, 0.3, 0.1];
        let e = enforce_within(&mut w.clone(), &caps, 0.0, 1).unwrap_err().to_string();
        assert!(e.contains("did not converge in 1 iterations"), "{e}");
        enforce(&mut w, &caps, 0.0).unwrap();
        assert!(w.iter().zip(&caps).all(|(x, c)| x <= c) && (w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{w:?}");
    }

    #[test]
    fn enforce_with_every_weight_below_the_minimum_is_an_error() {
        let e = enforce(&mut [0.5, 0.5], &[1.0, 1.0], 0.9).unwrap_err().to_string();
        assert!(e.contains("every weight of the optimum is below --min-weight 0.9"), "{e}");
    }
}
