//! The training engine on real text (this repository's files; see common/mod.rs).

mod common;

use std::path::Path;

use regmix_core::schema::Schema;
use regmix_core::table::read_parquet;
use regmix_core::Provenance;
use regmix_model::cpu::CpuBackend;
use regmix_model::Config;
use regmix_train::data::{Corpus, Draw, EvalSet, MixtureSampler};
use regmix_train::train::{self, Run, RunDir, RunSpec, Schedule, TrainSpec};

fn spec(vocab: usize, tokens: u64) -> TrainSpec {
    let model = Config::preset("micro", vocab).unwrap().override_with(&common::tiny_model_json()).unwrap();
    TrainSpec {
        model,
        tokens,
        batch_tokens: 8 * 32,
        micro_batch: 4,
        lr: 3e-3,
        warmup_steps: 5,
        schedule: Schedule::Constant,
        adamw: Default::default(),
        grad_clip: 1.0,
        eval_every: 10,
        eval_at: vec![],
        eval_windows: 16,
        match_epochs_of: None,
        checkpoint_every: 4,
        seed: 42,
    }
}

fn weights(corpus: &Corpus, pairs: &[(&str, f64)]) -> Vec<f64> {
    corpus.domains.iter().map(|d| pairs.iter().find(|(n, _)| n == d).map(|p| p.1).unwrap_or(0.0)).collect()
}

fn train_in(
    dir: &Path,
    corpus: &Corpus,
    spec: &TrainSpec,
    w: &[f64],
    stop_after: Option<u64>,
) -> anyhow::Result<train::Outcome> {
    let eval = EvalSet::new(corpus, spec.context(), spec.eval_windows);
    let mut backend = CpuBackend::<f32>::new(&spec.model, spec.seed);
    let prov = Provenance::new("test", "0", &[]);
    train::train(
        &mut backend,
        &Run {
            corpus,
            eval: &eval,
            spec,
            mixture_id: 7,
            weights: w,
            dir: RunDir::new(dir),
            prov: &prov,
            keep_checkpoint: false,
            stop_after,
            hf_dir: None,
            retrain: false,
        },
    )
}

#[test]
fn sampling_frequencies_match_the_mixture_weights() {
    let corpus = Corpus::open(common::shards()).unwrap();
    let w = weights(&corpus, &[("code", 0.5), ("prose", 0.3), ("config", 0.2)]);
    let s = MixtureSampler::new(&corpus, &w, 32, 1, 3).unwrap();
    let n = 30_000usize;
    let mut counts = vec![0usize; corpus.domains.len()];
    let mut draws = vec![Draw { domain: 0, start: 0 }; 1000];
    for step in 0..(n / 1000) as u64 {
        s.draws_for_step(step, &corpus, &mut draws);
        for d in &draws {
            counts[d.domain] += 1;
            assert!(d.start + 33 <= corpus.train[d.domain].len());
        }
    }
    // Pearson's chi-square with 2 degrees of freedom; the 0.001 critical value is 13.82.
    let chi2: f64 = counts.iter().zip(&w).map(|(&c, &p)| (c as f64 - n as f64 * p).powi(2) / (n as f64 * p)).sum();
    assert!(chi2 < 13.82, "chi-square {chi2:.2} for counts {counts:?} (weights {w:?})");
    // And the test has power: the same counts are far from a uniform mixture.
    let chi2_uniform: f64 = counts.iter().map(|&c| (c as f64 - n as f64 / 3.0).powi(2) / (n as f64 / 3.0)).sum();
    assert!(chi2_uniform > 100.0, "{chi2_uniform}");
    // A domain with zero weight is never drawn.
    let w0 = weights(&corpus, &[("code", 1.0)]);
    let s0 = MixtureSampler::new(&corpus, &w0, 32, 1, 3).unwrap();
    s0.draws_for_step(0, &corpus, &mut draws);
    assert!(draws.iter().all(|d| corpus.domains[d.domain] == "code"));
}

#[test]
fn repetition_matching_draws_a_domain_the_target_repeats_from_a_spread_subset_as_often() {
    let corpus = Corpus::open(common::shards()).unwrap();
    let w = weights(&corpus, &[("code", 0.5), ("prose", 0.5)]);
    let (code, prose) = (
        corpus.domains.iter().position(|d| d == "code").unwrap(),
        corpus.domains.iter().position(|d| d == "prose").unwrap(),
    );
    let n = corpus.train[code].len();
    // A target that sees code 3 times and a run of a tenth of its tokens.
    let target = (6.0 * n as f64) as u64;
    let mut s = MixtureSampler::new(&corpus, &w, 32, 1, 3).unwrap();
    let m = s.match_epochs(&corpus, &w, target / 10, target);
    let mine: Vec<_> = m.iter().filter(|x| x.domain == code).collect();
    assert_eq!(mine.len(), 1, "{m:?}");
    assert!((mine[0].target_epochs - 3.0).abs() < 1e-9, "{m:?}");
    let want = n / 10;
    assert!(
        mine[0].subset_tokens <= want + 64 && mine[0].subset_tokens + 64 * 33 >= want,
        "{} of {n} tokens for a tenth",
        mine[0].subset_tokens
    );
    // Every code window lies in one of the subset's pieces, and the pieces span the stream.
    let sub = s.subset(code).unwrap();
    let mut draws = vec![Draw { domain: 0, start: 0 }; 1000];
    let (mut lo, mut hi) = (u64::MAX, 0);
    for step in 0..20 {
        s.draws_for_step(step, &corpus, &mut draws);
        for d in draws.iter().filter(|d| d.domain == code) {
            assert!(
                d.start / sub.stride < sub.chunks && d.start % sub.stride + 33 <= sub.chunk_len,
                "window at {} outside {sub:?}",
                d.start
            );
            lo = lo.min(d.start);
            hi = hi.max(d.start);
        }
    }
    assert!(hi > n / 2 && lo < n / 10, "code windows from {lo} to {hi} of {n}: the subset is spread, not a prefix");
    // Exactly the domains the target would repeat are cut.
    for (d, &wd) in w.iter().enumerate() {
        let epochs = wd * target as f64 / corpus.train[d].len() as f64;
        assert_eq!(
            m.iter().any(|x| x.domain == d),
            wd > 0.0 && epochs > 1.0,
            "domain {} ({epochs:.2} target epochs)",
            corpus.domains[d]
        );
        assert_eq!(s.subset(d).is_some(), wd > 0.0 && epochs > 1.0);
    }
    let _ = prose;
}

#[test]
fn loss_falls_on_real_text() {
    let corpus = Corpus::open(common::shards()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sp = spec(corpus.vocab_size, 60 * 256);
    sp.eval_every = 5;
    let w = weights(&corpus, &[("code", 0.4), ("prose", 0.4), ("config", 0.2)]);
    let out = train_in(dir.path(), &corpus, &sp, &w, None).unwrap();
    assert_eq!(out.status, train::RunStatus::Finished);
    let t = read_parquet(&dir.path().join("metrics.parquet"), Schema::get("run_metrics")).unwrap();
    let loss = t.f64_values("train_loss").unwrap();
    let first_eval = t.f64_values("valid_loss.prose").unwrap()[4];
    let last_eval = t.f64_values("valid_loss.prose").unwrap()[loss.len() - 1];
    // Uniform guessing over 512 tokens is ln 512 = 6.24 nats.
    assert!(loss[0] > 6.0, "{}", loss[0]);
    assert!(loss[loss.len() - 1] < loss[0] - 0.8, "train loss {} → {}", loss[0], loss[loss.len() - 1]);
    assert!(last_eval < first_eval - 0.5, "prose validation loss {first_eval} → {last_eval}");
    assert!(dir.path().join("done.json").exists());
    assert!(!dir.path().join("checkpoint.safetensors").exists(), "proxies drop their checkpoint");
}

#[test]
fn metrics_record_the_training_settings_as_regmix_train_and_the_run_as_regmix_run_spec() {
    let corpus = Corpus::open(common::shards()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sp = spec(corpus.vocab_size, 4 * 256);
    let w = weights(&corpus, &[("code", 0.5), ("prose", 0.5)]);
    train_in(dir.path(), &corpus, &sp, &w, None).unwrap();
    let t = read_parquet(&dir.path().join("metrics.parquet"), Schema::get("run_metrics")).unwrap();
    assert_eq!(t.json_metadata::<TrainSpec>(regmix_core::keys::TRAIN).unwrap(), sp);
    let run: RunSpec = t.json_metadata(regmix_core::keys::RUN_SPEC).unwrap();
    assert_eq!((run.mixture_id, run.weights, run.train), (7, w, sp));
}

#[test]
fn eval_at_adds_evaluations_at_exactly_those_steps() {
    let corpus = Corpus::open(common::shards()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sp = spec(corpus.vocab_size, 12 * 256);
    sp.eval_every = 100;
    sp.eval_at = vec![2, 3, 7];
    let w = weights(&corpus, &[("code", 0.5), ("prose", 0.5)]);
    train_in(dir.path(), &corpus, &sp, &w, None).unwrap();
    let t = read_parquet(&dir.path().join("metrics.parquet"), Schema::get("run_metrics")).unwrap();
    let steps = t.u64("step").unwrap().values().to_vec();
    let prose = t.f64_values("valid_loss.prose").unwrap();
    let evaluated: Vec<u64> = steps.iter().zip(&prose).filter(|(_, v)| v.is_finite()).map(|(s, _)| *s).collect();
    assert_eq!(evaluated, vec![2, 3, 7, 12]);
}

#[test]
fn the_same_seed_gives_bit_identical_metrics() {
    let corpus = Corpus::open(common::shards()).unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sp = spec(corpus.vocab_size, 12 * 256);
    let w = weights(&corpus, &[("code", 0.7), ("prose", 0.3)]);
    train_in(a.path(), &corpus, &sp, &w, None).unwrap();
    train_in(b.path(), &corpus, &sp, &w, None).unwrap();
    let (ma, mb) = (
        common::metrics_without_time(&a.path().join("metrics.parquet")),
        common::metrics_without_time(&b.path().join("metrics.parquet")),
    );
    assert_eq!(ma, mb);
    // A different seed changes the run (the test can fail).
    let c = tempfile::tempdir().unwrap();
    let mut sp2 = sp.clone();
    sp2.seed = 43;
    train_in(c.path(), &corpus, &sp2, &w, None).unwrap();
    assert_ne!(ma, common::metrics_without_time(&c.path().join("metrics.parquet")));
}

#[test]
fn a_stopped_run_resumes_from_its_checkpoint_bit_identical() {
    let corpus = Corpus::open(common::shards()).unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sp = spec(corpus.vocab_size, 14 * 256);
    let w = weights(&corpus, &[("code", 0.5), ("config", 0.5)]);
    train_in(a.path(), &corpus, &sp, &w, None).unwrap();
    // Stop after 6 steps: the checkpoint is at step 4, so steps 5-6 are redone.
    let e = train_in(b.path(), &corpus, &sp, &w, Some(6)).unwrap_err();
    assert!(e.to_string().contains("stopped after 6"), "{e}");
    assert!(b.path().join("checkpoint.safetensors").exists());
    assert!(!b.path().join("done.json").exists());
    // Settings that differ are refused, naming the folder.
    let mut other = sp.clone();
    other.lr = 1e-3;
    let e = train_in(b.path(), &corpus, &other, &w, None).unwrap_err().to_string();
    assert!(e.contains("other settings") && e.contains(&b.path().display().to_string()), "{e}");
    // Resume twice more (stop at 10 → checkpoint at 8), then finish.
    train_in(b.path(), &corpus, &sp, &w, Some(4)).unwrap_err();
    train_in(b.path(), &corpus, &sp, &w, None).unwrap();
    assert_eq!(
        common::metrics_without_time(&a.path().join("metrics.parquet")),
        common::metrics_without_time(&b.path().join("metrics.parquet"))
    );
    // A finished run is skipped: its outcome comes back from the marker.
    let again = train_in(b.path(), &corpus, &sp, &w, None).unwrap();
    assert_eq!(again.status, train::RunStatus::Finished);
    assert_eq!(again.steps, 14);
}

#[test]
fn a_larger_weight_gives_a_lower_validation_loss_on_that_domain() {
    let corpus = Corpus::open(common::shards()).unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sp = spec(corpus.vocab_size, 50 * 256);
    let code_heavy =
        train_in(a.path(), &corpus, &sp, &weights(&corpus, &[("code", 0.9), ("prose", 0.1)]), None).unwrap();
    let prose_heavy =
        train_in(b.path(), &corpus, &sp, &weights(&corpus, &[("code", 0.1), ("prose", 0.9)]), None).unwrap();
    let idx = |d: &str| corpus.domains.iter().position(|x| x == d).unwrap();
    let (c, p) = (idx("code"), idx("prose"));
    let loss = |o: &train::Outcome, d: usize| o.valid[d].unwrap();
    assert!(
        loss(&code_heavy, c) < loss(&prose_heavy, c),
        "code: {} vs {}",
        loss(&code_heavy, c),
        loss(&prose_heavy, c)
    );
    assert!(
        loss(&prose_heavy, p) < loss(&code_heavy, p),
        "prose: {} vs {}",
        loss(&prose_heavy, p),
        loss(&code_heavy, p)
    );
}

#[test]
fn a_domain_with_weight_but_no_window_is_an_error_naming_it() {
    let corpus = Corpus::open(common::shards()).unwrap();
    let w = weights(&corpus, &[("config", 1.0)]);
    let e = MixtureSampler::new(&corpus, &w, 10_000_000, 1, 5).err().unwrap().to_string();
    assert!(e.contains("config") && e.contains("mixture 5"), "{e}");
}
