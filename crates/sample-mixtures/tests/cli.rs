//! The binary end to end: `--help` golden, a prior.json run, determinism, paper CSV import.

#[path = "../../../tests/support/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::Command;

use regmix_mixture::Mixtures;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sample-mixtures"))
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

#[test]
fn help_matches_golden() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    regmix_core::cli::check_golden(&golden("help.txt"), &String::from_utf8(out.stdout).unwrap());
}

#[test]
fn same_seed_gives_identical_files_and_rows_sum_to_one() {
    let dir = tempfile::tempdir().unwrap();
    let prior = dir.path().join("prior.json");
    std::fs::write(&prior, r#"{"tokens": {"web": 6000, "code": 3000, "books": 1000}}"#).unwrap();
    let run = |out: &str| {
        let s = bin()
            .args(["--prior", prior.to_str().unwrap(), "--count", "16", "--output"])
            .arg(dir.path().join(out))
            .status()
            .unwrap();
        assert!(s.success());
        Mixtures::read_parquet(&dir.path().join(out)).unwrap()
    };
    let a = run("a.parquet");
    let b = run("b.parquet");
    assert_eq!(a, b);
    assert_eq!(a.len(), 16);
    assert_eq!(a.domains, vec!["books", "code", "web"]);
}

#[test]
fn missing_prior_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["--prior", "/nonexistent/prior.json", "--count", "4", "--output"])
        .arg(dir.path().join("m.parquet"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("/nonexistent/prior.json"), "{err}");
    assert!(!dir.path().join("m.parquet").exists());
}

#[test]
fn imports_the_papers_mixture_csv() {
    let Some(d) = skip::paper_data() else { return };
    let csv = d.join("train_mixture_1m.csv");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("paper.parquet");
    let yaml = dir.path().join("yaml");
    let s = bin()
        .arg("--import")
        .arg(&csv)
        .arg("--output")
        .arg(&out)
        .arg("--write-yaml")
        .arg(&yaml)
        .args(["--yaml-prefix", "train_the_pile_"])
        .status()
        .unwrap();
    assert!(s.success());
    let m = Mixtures::read_parquet(&out).unwrap();
    assert_eq!(m.len(), 512);
    assert_eq!(m.domains.len(), 17);
    assert!(yaml.join("n1.yaml").exists());
    let (_, w) = regmix_mixture::io::read_regmix_yaml(&yaml.join("n1.yaml")).unwrap();
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}

/// mixtures.parquet opens in pyarrow with its provenance (REGMIX_PYTHON: a Python with pyarrow).
#[test]
fn mixtures_open_in_pyarrow() {
    let Some(py) = std::env::var_os("REGMIX_PYTHON") else {
        skip::skip_required("REGMIX_PYTHON, a Python with pyarrow: not set (make test sets it to its venv)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prior = dir.path().join("prior.json");
    std::fs::write(&prior, r#"{"web": 0.7, "code": 0.3}"#).unwrap();
    let out = dir.path().join("m.parquet");
    assert!(bin()
        .args(["--prior", prior.to_str().unwrap(), "--count", "8", "--output"])
        .arg(&out)
        .status()
        .unwrap()
        .success());
    let script = r#"
import sys, json, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
md = pq.read_metadata(sys.argv[1]).metadata
assert t.column_names == ["mixture_id", "weight.code", "weight.web"], t.column_names
assert md[b"regmix.schema"] == b"mixtures" and md[b"regmix.producer"] == b"sample-mixtures"
assert json.loads(md[b"regmix.domains"]) == ["code", "web"]
rows = t.to_pylist()
assert len(rows) == 8 and all(abs(r["weight.code"] + r["weight.web"] - 1) < 1e-9 for r in rows)
"#;
    let o = Command::new(py).arg("-c").arg(script).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
