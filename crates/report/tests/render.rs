//! The report binary's errors: nothing to report, and a bad input named. (The report drawn
//! from a real pipeline's outputs is tested in `crates/pipeline-tests/tests/report.rs`.)

use std::process::Command;

#[test]
fn nothing_given_is_an_error_and_a_bad_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.html");
    let o = Command::new(env!("CARGO_BIN_EXE_report")).args(["--output", out.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to report"));
    let bad = dir.path().join("mixtures.parquet");
    std::fs::write(&bad, b"not parquet").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_report"))
        .args(["--mixtures", bad.to_str().unwrap(), "--output", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains(bad.to_str().unwrap()));
    assert!(!out.exists(), "no report left behind");
}
