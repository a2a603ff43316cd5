//! collect --import-table → fit --target-runs → optimize on a world where the proxies and the
//! target disagree: on the proxies domain `a`'s loss falls most steeply with its data, at the
//! target's scale domain `b`'s falls four times as steeply as `a`'s. The target law, fitted on
//! a dozen target-scale runs with the transfer from the proxies, leans on `b` and beats the
//! prior at the target's scale; bad target-scale inputs are refused naming the file, the row or
//! the field, and nothing is written.

use std::path::{Path, PathBuf};

use clap::Parser;
use rand::{Rng, SeedableRng};
use regmix_regress::{Model, SavedFit};

/// Domain a is helped by b (τ = 0.5); the others by nothing.
const TAU_A_FROM_B: f64 = 0.5;
const EPS: f64 = 1e-4;

fn data(w: &[f64; 3], d: usize) -> f64 {
    w[d] + if d == 0 { TAU_A_FROM_B * w[1] } else { 0.0 } + EPS
}

/// The proxies: slopes 0.5, 0.2 and 0.3, so they prefer a.
fn proxy_loss(w: &[f64; 3], d: usize) -> f64 {
    6.0 - [0.5, 0.2, 0.3][d] * data(w, d).ln()
}

/// The target: slopes 0.2, 0.8 and 0.4.
fn target_loss(w: &[f64; 3], d: usize) -> f64 {
    [4.0, 3.5, 3.8][d] - [0.2, 0.8, 0.4][d] * data(w, d).ln()
}

fn target_mean(w: &[f64; 3]) -> f64 {
    (0..3).map(|d| target_loss(w, d)).sum::<f64>() / 3.0
}

fn mixtures(n: usize, seed: u64, concentration: f64) -> Vec<[f64; 3]> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let g: Vec<f64> = (0..3).map(|_| rng.random::<f64>().powf(1.0 / concentration).max(1e-9)).collect();
            let s: f64 = g.iter().sum();
            [g[0] / s, g[1] / s, g[2] / s]
        })
        .collect()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A results table (`run,tokens,steps,weight.<d>…,valid_loss.<d>…`) through collect
/// --import-table; `extra` adds a column of that name (0.01 × the row's index).
fn table(dir: &Path, name: &str, rows: &[([f64; 3], Vec<f64>)], tokens: &[u64], extra: Option<&str>) -> PathBuf {
    let mut csv = String::from("run,tokens,steps,weight.a,weight.b,weight.c,valid_loss.a,valid_loss.b,valid_loss.c");
    if let Some(e) = extra {
        csv += &format!(",{e}");
    }
    csv += "\n";
    for (i, (w, l)) in rows.iter().enumerate() {
        csv +=
            &format!("r{i},{},{},{},{},{},{},{},{}", tokens[i], tokens[i] / 1000, w[0], w[1], w[2], l[0], l[1], l[2]);
        if extra.is_some() {
            csv += &format!(",{}", 0.01 * i as f64);
        }
        csv += "\n";
    }
    let src = dir.join(format!("{name}.csv"));
    std::fs::write(&src, csv).unwrap();
    let out = dir.join(format!("{name}.parquet"));
    collect::run(&collect::Args::parse_from(["collect", "--import-table", &s(&src), "--output", &s(&out)])).unwrap();
    out
}

/// 120 proxies and 12 target-scale runs (mixtures near and far from uniform, with noise).
fn world(dir: &Path) -> (PathBuf, PathBuf) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut noise = move || 0.01 * (rng.random::<f64>() - 0.5);
    let proxies: Vec<([f64; 3], Vec<f64>)> =
        mixtures(120, 1, 0.3).into_iter().map(|w| (w, (0..3).map(|d| proxy_loss(&w, d) + noise()).collect())).collect();
    let targets: Vec<([f64; 3], Vec<f64>)> = mixtures(6, 2, 0.3)
        .into_iter()
        .chain(mixtures(6, 3, 5.0))
        .map(|w| (w, (0..3).map(|d| target_loss(&w, d) + noise()).collect()))
        .collect();
    (table(dir, "proxies", &proxies, &[1000; 120], None), table(dir, "targets", &targets, &[16000; 12], None))
}

fn fit(proxies: &Path, target_runs: &[&Path], out: &Path, target: &str) -> anyhow::Result<SavedFit> {
    let mut args = vec!["fit".to_string(), "--dataset".into(), s(proxies), "--target".into(), target.into()];
    args.extend(["--output".into(), s(out)]);
    for t in target_runs {
        args.extend(["--target-runs".into(), s(t)]);
    }
    fit::run(&fit::Args::parse_from(args))?;
    SavedFit::load(out)
}

const MEAN: &str = "mean(valid_loss.*)";

/// optimize on the fit in `dir/<fit>` from a near-even prior, searching near it; the optimum.
fn optimum(dir: &Path, fit: &str) -> [f64; 3] {
    let prior = dir.join("prior.json");
    std::fs::write(&prior, r#"{"weights": {"a": 0.34, "b": 0.33, "c": 0.33}}"#).unwrap();
    let out = dir.join(format!("opt-{fit}"));
    optimize::run(&optimize::Args::parse_from([
        "optimize",
        "--fit",
        &s(&dir.join(fit)),
        "--prior",
        &s(&prior),
        "--output",
        &s(&out),
        "--samples",
        "20000",
        "--top-k",
        "20",
        "--strength",
        "30",
        "--bootstrap",
        "4",
    ]))
    .unwrap();
    let o = regmix_mixture::Optimum::read(&out.join("optimum.parquet")).unwrap();
    [o.weights[0], o.weights[1], o.weights[2]]
}

const PRIOR: [f64; 3] = [0.34, 0.33, 0.33];

#[test]
fn the_target_law_learns_the_transfer_from_the_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let (proxies, targets) = world(dir.path());
    let saved = fit(&proxies, &[&targets], &dir.path().join("fit"), MEAN).unwrap();
    let Model::TargetLaw(law) = &saved.model else { panic!("a {} model, not a target law", saved.regressor.name()) };
    assert!((law.laws[0].transfer.tau[1] - TAU_A_FROM_B).abs() < 0.1, "τ(a ← b) = {}", law.laws[0].transfer.tau[1]);
}

#[test]
fn the_target_law_ranks_target_mixtures_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let (proxies, targets) = world(dir.path());
    let saved = fit(&proxies, &[&targets], &dir.path().join("fit"), MEAN).unwrap();
    assert!(saved.cv_spearman > 0.9, "left-one-mixture-out Spearman {}", saved.cv_spearman);
}

#[test]
fn the_target_laws_optimum_beats_the_prior_at_the_targets_scale() {
    let dir = tempfile::tempdir().unwrap();
    let (proxies, targets) = world(dir.path());
    fit(&proxies, &[&targets], &dir.path().join("fit"), MEAN).unwrap();
    let w = optimum(dir.path(), "fit");
    assert!(
        target_mean(&w) < target_mean(&PRIOR) - 0.05,
        "optimum {w:?}: {} at the target's scale, the prior {}",
        target_mean(&w),
        target_mean(&PRIOR)
    );
}

#[test]
fn the_proxies_alone_choose_a_mixture_worse_at_the_targets_scale_than_the_target_laws() {
    let dir = tempfile::tempdir().unwrap();
    let (proxies, targets) = world(dir.path());
    fit(&proxies, &[&targets], &dir.path().join("fit"), MEAN).unwrap();
    fit::run(&fit::Args::parse_from([
        "fit",
        "--dataset",
        &s(&proxies),
        "--target",
        MEAN,
        "--regressor",
        "gp",
        "--output",
        &s(&dir.path().join("plain")),
    ]))
    .unwrap();
    let (law, plain) = (optimum(dir.path(), "fit"), optimum(dir.path(), "plain"));
    assert!(
        target_mean(&law) < target_mean(&plain) - 0.05,
        "target law {law:?}: {}; proxies alone {plain:?}: {}",
        target_mean(&law),
        target_mean(&plain)
    );
}

/// The error of a fit with these target-scale runs, and whether it wrote its output folder.
fn refused(target_runs: &[&Path], target: &str) -> (String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let (proxies, _) = world(dir.path());
    let out = dir.path().join("fit");
    let e = fit(&proxies, target_runs, &out, target).unwrap_err().to_string();
    (e, out.exists())
}

#[test]
fn target_runs_with_another_domain_are_refused_naming_the_file_and_the_domain() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("run,tokens,weight.a,weight.b,weight.z,valid_loss.a,valid_loss.b,valid_loss.c\n");
    for (i, w) in mixtures(6, 4, 1.0).iter().enumerate() {
        csv += &format!("r{i},16000,{},{},{},3,3,3\n", w[0], w[1], w[2]);
    }
    std::fs::write(dir.path().join("other.csv"), csv).unwrap();
    let other = dir.path().join("other.parquet");
    collect::run(&collect::Args::parse_from([
        "collect",
        "--import-table",
        &s(&dir.path().join("other.csv")),
        "--output",
        &s(&other),
    ]))
    .unwrap();
    let (e, wrote) = refused(&[&other], MEAN);
    assert!(e.starts_with(&format!("{}: domain `z` is not among the fitted domains", other.display())), "{e}");
    assert!(!wrote);
}

#[test]
fn fewer_than_four_target_mixtures_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<([f64; 3], Vec<f64>)> = mixtures(3, 6, 1.0).into_iter().map(|w| (w, vec![3.0, 3.0, 3.0])).collect();
    let few = table(dir.path(), "few", &rows, &[16000; 3], None);
    let (e, wrote) = refused(&[&few], MEAN);
    assert!(e.starts_with("the target-scale runs hold 3 distinct mixtures; a target law needs at least 4"), "{e}");
    assert!(!wrote);
}

#[test]
fn target_runs_of_two_training_lengths_are_refused_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<([f64; 3], Vec<f64>)> = mixtures(6, 7, 1.0).into_iter().map(|w| (w, vec![3.0, 3.0, 3.0])).collect();
    let mixed = table(dir.path(), "mixed", &rows, &[16000, 16000, 16000, 16000, 8000, 16000], None);
    let (e, wrote) = refused(&[&mixed], MEAN);
    assert!(e.starts_with(&format!("{}: row 4 was trained for 8000 tokens", mixed.display())), "{e}");
    assert!(!wrote);
}

#[test]
fn a_target_term_that_is_no_domains_loss_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<([f64; 3], Vec<f64>)> = mixtures(120, 8, 0.3).into_iter().map(|w| (w, vec![3.0, 3.0, 3.0])).collect();
    let proxies = table(dir.path(), "proxies", &rows, &[1000; 120], Some("valid_loss.heldout"));
    let out = dir.path().join("fit");
    let e = fit(&proxies, &[&proxies], &out, "valid_loss.heldout").unwrap_err().to_string();
    assert!(
        e.starts_with("target `valid_loss.heldout`: term `valid_loss.heldout` is not the loss of a training domain"),
        "{e}"
    );
    assert!(!out.exists());
}

#[test]
fn the_report_says_a_target_law_was_scored_leaving_target_mixtures_out() {
    let dir = tempfile::tempdir().unwrap();
    let (proxies, targets) = world(dir.path());
    fit(&proxies, &[&targets], &dir.path().join("fit"), MEAN).unwrap();
    optimum(dir.path(), "fit");
    let html = dir.path().join("report.html");
    report::run(&report::Args::parse_from([
        "report",
        "--fit",
        &s(&dir.path().join("fit")),
        "--optimum",
        &s(&dir.path().join("opt-fit")),
        "--output",
        &s(&html),
    ]))
    .unwrap();
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        text.contains("fitted on 12 runs at the target's scale; Spearman"),
        "the fit section says how it was scored"
    );
}

#[test]
fn a_weighted_target_gets_one_law_per_term_with_its_coefficient() {
    let dir = tempfile::tempdir().unwrap();
    let (proxies, targets) = world(dir.path());
    let saved = fit(&proxies, &[&targets], &dir.path().join("fit"), "0.7*valid_loss.a + 0.3*valid_loss.c").unwrap();
    let Model::TargetLaw(law) = &saved.model else { panic!("a {} model, not a target law", saved.regressor.name()) };
    let terms: Vec<(usize, f64)> = law.laws.iter().map(|l| (l.domain, l.coef)).collect();
    assert_eq!(terms, vec![(0, 0.7), (2, 0.3)]);
}
