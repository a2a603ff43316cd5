//! proxy-train as a user runs it: the binary on real text (the repository's files).

#[path = "../../regmix-train/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regmix_core::columns::VALID_LOSS;
use regmix_core::run::{RunDir, RunStatus};
use regmix_core::schema::Schema;
use regmix_core::table::read_parquet;
use regmix_core::Provenance;
use regmix_mixture::io::Mixtures;

fn mixtures(dir: &Path) -> PathBuf {
    let m = Mixtures {
        domains: vec!["code".into(), "config".into(), "prose".into()],
        ids: vec![0, 1, 2],
        weights: vec![vec![0.6, 0.1, 0.3], vec![0.2, 0.2, 0.6], vec![0.4, 0.4, 0.2]],
    };
    let p = dir.join("mixtures.parquet");
    m.write_parquet(&p, &serde_json::Value::Null, &Provenance::new("test", "0", &[])).unwrap();
    p
}

fn cmd(dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxy-train"));
    let model = common::write_model_config(dir);
    c.args(["--shards", common::shards().to_str().unwrap()])
        .args(["--mixtures", mixtures(dir).to_str().unwrap()])
        .args(["--preset", "micro", "--model-config", model.to_str().unwrap()])
        .args(["--batch-tokens", "128", "--micro-batch", "2", "--eval-windows", "4", "--threads", "2"])
        .args(extra);
    c
}

#[test]
fn a_run_killed_with_sigkill_and_restarted_ends_bit_identical_to_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let flags = ["--tokens", "38400", "--checkpoint-every", "5", "--eval-every", "50", "--ids", "1"];
    let st = cmd(dir.path(), &[&["--output", a.to_str().unwrap()], &flags[..]].concat())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());

    let mut child = cmd(dir.path(), &[&["--output", b.to_str().unwrap()], &flags[..]].concat())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = b.join("1/checkpoint.safetensors");
    let t0 = Instant::now();
    while !ckpt.exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!b.join("1/done.json").exists(), "the run finished before it could be killed: lengthen it");
    let st = cmd(dir.path(), &[&["--output", b.to_str().unwrap()], &flags[..]].concat())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        common::metrics_without_time(&a.join("1/metrics.parquet")),
        common::metrics_without_time(&b.join("1/metrics.parquet"))
    );
    // No temporary files are left behind.
    for e in std::fs::read_dir(b.join("1")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.contains(".tmp-"), "{name}");
    }
}

#[test]
fn a_diverged_run_is_recorded_and_the_other_runs_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let st = cmd(dir.path(), &["--output", out.to_str().unwrap(), "--tokens", "1280", "--lr", "1e30", "--ids", "0,2"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "divergence is not a failure of the stage");
    for id in [0, 2] {
        let t = read_parquet(&out.join(format!("{id}/metrics.parquet")), Schema::get("run_metrics")).unwrap();
        let status = t.str("status").unwrap();
        assert_eq!(status.value(t.rows() - 1), "diverged", "mixture {id}");
        assert!(t.rows() < 10, "stopped at the divergence");
    }
    assert!(!out.join("1").exists(), "mixture 1 was not selected");
}

#[test]
fn finished_runs_are_skipped_and_collect_reads_the_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let run = |extra: &[&str]| {
        let o = cmd(dir.path(), &[&["--output", out.to_str().unwrap(), "--tokens", "1280"], extra].concat())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stderr).unwrap()
    };
    // A Slurm array of two tasks shares the three mixtures.
    run(&["--array-index", "0", "--array-count", "2"]);
    assert!(out.join("0/done.json").exists() && out.join("2/done.json").exists() && !out.join("1").exists());
    let before = std::fs::metadata(out.join("0/metrics.parquet")).unwrap().modified().unwrap();
    let log = run(&[]);
    assert!(log.contains("mixture 0: already finished"), "{log}");
    assert_eq!(std::fs::metadata(out.join("0/metrics.parquet")).unwrap().modified().unwrap(), before);
    assert!(out.join("1/done.json").exists());
    // What the next stage reads: every run's metrics under the run_metrics contract, finished,
    // with a final evaluation of every domain.
    for id in 0..3 {
        let t = read_parquet(&RunDir::of(&out, id).metrics(), Schema::get("run_metrics")).unwrap();
        assert_eq!(t.list("domain").unwrap(), ["code", "config", "prose"]);
        assert_eq!(t.str("status").unwrap().value(t.rows() - 1), RunStatus::Finished.as_str());
        let last: Vec<f64> =
            t.wide_f64(VALID_LOSS, t.list("domain").unwrap()).unwrap().iter().map(|c| c[t.rows() - 1]).collect();
        assert!(last.iter().all(|l| *l > 0.0 && *l < 7.0), "mixture {id}: {last:?}");
    }
}

#[test]
fn a_rerun_of_finished_runs_opens_no_backend() {
    // Finished runs are skipped before a backend is built: rerunning a finished GPU sweep (or
    // its Slurm array) on a machine without CUDA is a no-op, not an error.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let flags = ["--output", out.to_str().unwrap(), "--tokens", "640", "--ids", "0"];
    let first = cmd(dir.path(), &flags).output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let again = cmd(dir.path(), &[&flags[..], &["--backend", "cuda"]].concat()).output().unwrap();
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && log.contains("mixture 0: already finished"), "{log}");
}

#[test]
fn concurrent_runs_end_with_the_metrics_of_runs_trained_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (one, three) = (dir.path().join("one"), dir.path().join("three"));
    let flags = ["--tokens", "2560", "--eval-every", "5"];
    for (out, n) in [(&one, "1"), (&three, "3")] {
        let o = cmd(dir.path(), &[&["--output", out.to_str().unwrap(), "--concurrent-runs", n], &flags[..]].concat())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for id in 0..3 {
        let m = format!("{id}/metrics.parquet");
        assert_eq!(
            common::metrics_without_time(&one.join(&m)),
            common::metrics_without_time(&three.join(&m)),
            "mixture {id}"
        );
    }
}

#[test]
fn bad_flags_are_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let o = cmd(dir.path(), &["--output", out.to_str().unwrap(), "--tokens", "1280", "--eval-every", "0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("--eval-every"), "{e}");
    let o = cmd(dir.path(), &["--output", out.to_str().unwrap(), "--tokens", "1280", "--ids", "9"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("mixture 9"));
}
