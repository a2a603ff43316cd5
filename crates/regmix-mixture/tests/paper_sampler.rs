//! The sampler against the paper's published mixtures (`train_mixture_1m.csv`).
//!
//! 512 mixtures sampled with the Pile prior and the paper's defaults are compared with the
//! paper's 512, domain by domain, by the two-sample Kolmogorov–Smirnov statistic D.
//!
//! Threshold: both samples are rounded to the CSV's 3 decimals first (the published file is
//! rounded, so ties at 0 and on the grid must be treated alike). For n = m = 512 the
//! asymptotic critical value is c(α)·sqrt((n+m)/(n·m)) with c(α) = sqrt(-ln(α/2)/2). We test
//! 17 domains, so we take α = 0.001 per domain (a family-wise level of about 1.7%, Bonferroni):
//! c = 1.949, D_crit = 0.1218. A sampler that matches the paper passes every domain at that
//! level with probability ≈ 98%; the negative controls below show the test has power.
//!
//! Finding: the constants printed in the paper's script (T = 0.5, strengths 0.1..5) do not
//! reproduce the published file: run with numpy, that script gives far sparser mixtures
//! (nih_exporter is 0 in 90% of its mixtures, 58% in the CSV; worst D ≈ 0.35). A grid search
//! over (T, min strength, max strength) with the same algorithm put the published mixtures at
//! T ≈ 0.1 with strengths 1..5 (worst D 0.06–0.09 in Python). The test therefore checks the
//! algorithm with those parameters; the defaults of `sample-mixtures` stay the script's.
//! Needs `../shared/regmix-paper-data/` beside the checkout (or REGMIX_PAPER_DATA); skips
//! with a message when absent, fails under CI=true (`tests/support/skip.rs`).

use std::path::PathBuf;

use regmix_mixture::io::read_paper_csv;
use regmix_mixture::prior::pile_prior;
use regmix_mixture::{Sampler, SamplerParams};

#[path = "../../../tests/support/skip.rs"]
mod skip;

fn paper_data() -> Option<PathBuf> {
    skip::paper_data()
}

/// Two-sample Kolmogorov–Smirnov statistic.
fn ks(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

const D_CRIT: f64 = 0.1218;
const PUBLISHED_TEMPERATURE: f64 = 0.1;
const PUBLISHED_MIN_STRENGTH: f64 = 1.0;

fn ks_per_domain(params: SamplerParams) -> Option<Vec<(String, f64)>> {
    let dir = paper_data()?;
    let paper = read_paper_csv(&dir.join("train_mixture_1m.csv")).unwrap();
    let prior = pile_prior();
    assert_eq!(paper.domains, prior.domains, "the CSV's column order is the prior's");
    let (ours, _) = Sampler::new(prior.clone(), params).unwrap().sample().unwrap();
    Some(
        prior
            .domains
            .iter()
            .enumerate()
            .map(|(j, d)| {
                // The paper's rows were renormalised on import; round both to the CSV's grid.
                let a: Vec<f64> = paper.weights.iter().map(|w| round3(w[j])).collect();
                let b: Vec<f64> = ours.iter().map(|w| round3(w[j])).collect();
                (d.clone(), ks(&a, &b))
            })
            .collect(),
    )
}

#[test]
fn ks_statistic_is_zero_for_identical_samples_and_one_for_disjoint() {
    assert_eq!(ks(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
    assert_eq!(ks(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
}

/// The parameters that reproduce the published mixtures (see the module comment).
fn published_params(seed: u64) -> SamplerParams {
    SamplerParams {
        count: 512,
        seed,
        temperature: PUBLISHED_TEMPERATURE,
        min_strength: PUBLISHED_MIN_STRENGTH,
        ..Default::default()
    }
}

#[test]
fn sampled_mixtures_match_the_papers_domain_by_domain() {
    let Some(ds) = ks_per_domain(published_params(42)) else { return };
    let mut failed = Vec::new();
    for (d, stat) in &ds {
        eprintln!("KS {d:>20}: D = {stat:.4} (critical {D_CRIT})");
        if *stat >= D_CRIT {
            failed.push(format!("{d}: {stat:.4}"));
        }
    }
    assert!(failed.is_empty(), "domains whose distribution differs from the paper's: {failed:?}");
}

#[test]
fn the_scripts_printed_defaults_do_not_reproduce_the_published_mixtures() {
    // Negative control and a recorded finding: T = 0.5 with strengths 0.1..5 (the constants
    // in synthesize_mixture.py) gives far sparser mixtures than the published CSV; the
    // paper's own Python script with numpy shows the same gap (worst D ≈ 0.35).
    let Some(ds) = ks_per_domain(SamplerParams { count: 512, ..Default::default() }) else { return };
    let worst = ds.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    assert!(worst >= D_CRIT, "the KS test should tell the script's defaults apart (worst D {worst:.4})");
}

#[test]
fn without_temperature_the_mixtures_differ_from_the_papers() {
    let Some(ds) = ks_per_domain(SamplerParams { temperature: 1.0, ..published_params(42) }) else { return };
    let worst = ds.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    assert!(worst >= D_CRIT, "the KS test should detect a sampler without temperature (worst D {worst:.4})");
}
