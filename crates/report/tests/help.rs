//! Golden test of `report --help`.

#[test]
fn help_matches_golden() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_report")).arg("--help").output().unwrap();
    assert!(out.status.success());
    regmix_core::cli::check_golden(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/help.txt"),
        &String::from_utf8(out.stdout).unwrap(),
    );
}
