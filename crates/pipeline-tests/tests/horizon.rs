//! collect → fit --at-tokens → optimize on runs whose curves follow a known law: the law's
//! horizon changes which mixture is predicted best, agrees with the plain fit at the runs' own
//! length, and bad curves are left out or refused with a clear message.

use std::path::{Path, PathBuf};

use clap::Parser;
use rand::{Rng, SeedableRng};
use regmix_core::run::{RunDir, RunStatus};
use regmix_core::Provenance;
use regmix_mixture::Mixtures;
use regmix_regress::{predict_many, Model, SavedFit};
use regmix_train::metrics::{self, Row};
use regmix_train::train::{RunSpec, TrainSpec};

const DOMS: [&str; 2] = ["a", "b"];
/// Tokens of the evaluations; the runs end at the last.
const TOKENS: [u64; 6] = [2000, 3000, 4000, 5000, 6000, 8000];
const END: f64 = 8000.0;

/// Domain a's loss after t tokens at weight w of a: E = 3 − w, B = 0.4 + 1.2w, β = 0.5. At the
/// runs' end (t = END) it is 3.4 + 0.2w, lowest for little of a; at 16× END it is about
/// 3.1 − 0.7w, lowest for much of a: the ranking crosses.
fn loss_a(w: f64, t: f64) -> f64 {
    3.0 - w + (0.4 + 1.2 * w) * (t / END).powf(-0.5)
}

/// Writes `n` runs on mixtures with weight of a spread over (0, 1), with noise `sd`; the
/// mixtures file; returns the dataset collect wrote.
fn runs(dir: &Path, n: u32, sd: f64, edit: impl Fn(u32, &mut Vec<Row>)) -> PathBuf {
    let prov = Provenance::new("test", "0", &[]);
    let domains: Vec<String> = DOMS.iter().map(|s| s.to_string()).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let weights: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let w = 0.05 + 0.9 * i as f64 / (n - 1) as f64;
            vec![w, 1.0 - w]
        })
        .collect();
    let m = Mixtures { domains: domains.clone(), ids: (0..n).collect(), weights: weights.clone() };
    m.write_parquet(&dir.join("mixtures.parquet"), &serde_json::Value::Null, &prov).unwrap();
    for (id, w) in weights.iter().enumerate() {
        let mut rows: Vec<Row> = TOKENS
            .iter()
            .enumerate()
            .map(|(s, &t)| {
                let noise = |rng: &mut rand_chacha::ChaCha8Rng| sd * (rng.random::<f64>() - 0.5) * 3.46; // uniform, sd `sd`
                Row {
                    step: s as u64 + 1,
                    tokens: t,
                    lr: 1e-3,
                    train_loss: 4.0,
                    grad_norm: 1.0,
                    elapsed_s: s as f64,
                    valid: vec![Some(loss_a(w[0], t as f64) + noise(&mut rng)), Some(3.0 + noise(&mut rng))],
                }
            })
            .collect();
        edit(id as u32, &mut rows);
        // The train settings as proxy-train records them (optimize reads the model from them:
        // the proxies' tokens per parameter).
        let mut train = TrainSpec::example(regmix_model::Config::preset("micro", 512).unwrap(), 8000);
        train.warmup_steps = 0;
        let spec = RunSpec {
            mixture_id: id as u64,
            domains: domains.clone(),
            weights: w.clone(),
            train,
            tokenizer_sha256: "t".into(),
            shards_sha256: "s".into(),
        };
        let extra = vec![
            ("regmix.run_spec".to_string(), serde_json::to_string(&spec).unwrap()),
            ("regmix.mixture_id".to_string(), id.to_string()),
            ("regmix.model".to_string(), "{}".to_string()),
            ("regmix.train".to_string(), serde_json::to_string(&spec.train).unwrap()),
            ("regmix.backend".to_string(), "test".to_string()),
        ];
        let path = RunDir::of(&dir.join("runs"), id as u64).metrics();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        metrics::write(&path, &domains, &rows, RunStatus::Finished, &extra, &prov).unwrap();
    }
    let out = dir.join("dataset.parquet");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    collect::run(&collect::Args::parse_from([
        "collect",
        "--runs",
        &s(&dir.join("runs")),
        "--mixtures",
        &s(&dir.join("mixtures.parquet")),
        "--output",
        &s(&out),
    ]))
    .unwrap();
    out
}

fn fit(dataset: &Path, out: &Path, extra: &[&str]) -> anyhow::Result<SavedFit> {
    let mut args = vec![
        "fit",
        "--dataset",
        dataset.to_str().unwrap(),
        "--target",
        "valid_loss.a",
        "--regressor",
        "gp",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    fit::run(&fit::Args::parse_from(args))?;
    SavedFit::load(out)
}

#[test]
fn the_horizon_reverses_a_ranking_that_crosses_after_the_runs_end() {
    let dir = tempfile::tempdir().unwrap();
    let ds = runs(dir.path(), 30, 0.002, |_, _| {});
    let plain = fit(&ds, &dir.path().join("plain"), &[]).unwrap();
    let far = fit(&ds, &dir.path().join("far"), &["--at-tokens", "128000"]).unwrap();
    let (little, much) = (vec![0.1, 0.9], vec![0.9, 0.1]);
    let p = predict_many(&plain.model, &[little.clone(), much.clone()]).unwrap();
    let h = predict_many(&far.model, &[little, much]).unwrap();
    assert!(p[0] < p[1], "at the runs' end little of a is better: {p:?}");
    assert!(h[1] < h[0] - 0.3, "at 16× the tokens much of a is better: {h:?}");
    // And the law's own prediction is the truth's within its noise.
    assert!((h[1] - loss_a(0.9, 128000.0)).abs() < 0.05, "{} vs {}", h[1], loss_a(0.9, 128000.0));
    let Model::Horizon(law) = &far.model else { panic!("not a horizon model") };
    assert!((law.laws[0].beta - 0.5).abs() < 0.05, "β = {}", law.laws[0].beta);
}

#[test]
fn at_the_runs_own_tokens_the_law_agrees_with_the_last_evaluation_fit() {
    let dir = tempfile::tempdir().unwrap();
    let ds = runs(dir.path(), 30, 0.002, |_, _| {});
    let plain = fit(&ds, &dir.path().join("plain"), &[]).unwrap();
    let here = fit(&ds, &dir.path().join("here"), &["--at-tokens", "8000"]).unwrap();
    let rows: Vec<Vec<f64>> = (0..9)
        .map(|i| {
            let w = 0.1 + 0.1 * i as f64;
            vec![w, 1.0 - w]
        })
        .collect();
    let (p, h) = (predict_many(&plain.model, &rows).unwrap(), predict_many(&here.model, &rows).unwrap());
    let worst = p.iter().zip(&h).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < 0.006, "the two fits differ by up to {worst} (noise sd 0.002)");
}

#[test]
fn a_run_with_two_evaluations_or_a_nan_is_left_out_and_a_horizon_before_the_end_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ds = runs(dir.path(), 30, 0.002, |id, rows| match id {
        4 => rows.iter_mut().take(4).for_each(|r| r.valid = vec![None, None]),
        7 => (0..4).for_each(|i| rows[i].valid[0] = Some(f64::NAN)),
        _ => {}
    });
    let far = fit(&ds, &dir.path().join("far"), &["--at-tokens", "128000"]).unwrap();
    let Model::Horizon(law) = &far.model else { panic!("not a horizon model") };
    assert_eq!(law.x.len(), 28, "runs 4 and 7 have two finite evaluations of valid_loss.a");
    let report = regmix_core::table::read_parquet(
        &dir.path().join("far/fit_report.parquet"),
        regmix_core::Schema::get("fit_report"),
    )
    .unwrap();
    let horizon: serde_json::Value = serde_json::from_str(&report.metadata["regmix.horizon"]).unwrap();
    assert_eq!(
        horizon["excluded"],
        serde_json::json!([
            "4 (2 evaluations of valid_loss.a after warm-up)",
            "7 (2 evaluations of valid_loss.a after warm-up)"
        ])
    );
    let e = fit(&ds, &dir.path().join("early"), &["--at-tokens", "4000"]).unwrap_err().to_string();
    assert_eq!(e, "--at-tokens 4000 is below the runs' 8000 tokens: the law extrapolates forward; fit without --at-tokens for the runs' own horizon");
}

#[test]
fn trajectories_from_another_collect_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ds = runs(dir.path(), 12, 0.002, |_, _| {});
    let other = tempfile::tempdir().unwrap();
    let ds2 = runs(other.path(), 12, 0.004, |_, _| {});
    let t2 = regmix_core::trajectories::path_for(&ds2);
    let e = fit(&ds, &dir.path().join("f"), &["--at-tokens", "16000", "--trajectories", t2.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not the trajectories of") && e.contains("collect again"), "{e}");
}

/// 30 runs fitted at 16× their tokens in `dir/far`, and optimize on that fit into `dir/<out>`
/// from a prior of one half each, with `extra` flags; the optimum's weight of a.
fn optimize_far(dir: &Path, out: &str, extra: &[&str]) -> regmix_mixture::Optimum {
    if !dir.join("far/model.json").exists() {
        let ds = runs(dir, 30, 0.002, |_, _| {});
        fit(&ds, &dir.join("far"), &["--at-tokens", "128000"]).unwrap();
        std::fs::write(dir.join("prior.json"), r#"{"weights": {"a": 0.5, "b": 0.5}}"#).unwrap();
    }
    let s = |p: PathBuf| p.to_str().unwrap().to_string();
    let (f, p, o) = (s(dir.join("far")), s(dir.join("prior.json")), s(dir.join(out)));
    let mut args = vec!["optimize", "--fit", &f, "--prior", &p, "--output", &o, "--samples", "20000", "--top-k", "20"];
    args.extend_from_slice(extra);
    optimize::run(&optimize::Args::parse_from(args)).unwrap();
    regmix_mixture::Optimum::read(&dir.join(out).join("optimum.parquet")).unwrap()
}

#[test]
fn optimize_searches_the_horizon_and_reports_the_proxies_optimum_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let at_horizon = optimize_far(dir.path(), "opt", &[]);
    let at_proxies = regmix_mixture::Optimum::read(&dir.path().join("opt/optimum_at_proxies.parquet")).unwrap();
    assert!(at_horizon.weights[0] > 0.7, "{:?}", at_horizon.weights);
    assert!(at_proxies.weights[0] < 0.3, "{:?}", at_proxies.weights);
}

#[test]
fn a_pull_toward_the_prior_moves_the_optimum_toward_it() {
    let dir = tempfile::tempdir().unwrap();
    let free = optimize_far(dir.path(), "free", &["--kl-to-prior", "0"]).weights[0];
    let pulled = optimize_far(dir.path(), "pulled", &["--kl-to-prior", "2"]).weights[0];
    assert!(pulled < free - 0.1 && pulled > 0.5, "a's weight {free} without the pull, {pulled} with λ = 2");
}
