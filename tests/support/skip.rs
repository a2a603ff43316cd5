//! How a Rust test skips what a clean clone lacks, in one place (included with
//! `#[path = "../../../tests/support/skip.rs"] mod skip;` by the tests that need it).
//!
//! A test that cannot run says so on stderr as `SKIPPED: <why>` and returns, so `cargo test`
//! reports it `ok` but the log says it did not run. Under `CI=true` what CI must have (the
//! paper's runs in `../shared/`) is a failure, not a skip; what CI does not have either (torch)
//! stays a skip.
#![allow(dead_code)]

use std::path::PathBuf;

/// True under `CI=true`.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips for want of something CI must have: prints `SKIPPED: <why>`, or panics under `CI=true`.
pub fn skip_required(why: &str) {
    if ci() {
        panic!("CI must have what this test needs: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// Skips for want of something CI lacks too (torch): prints `SKIPPED: <why>`, also under CI.
pub fn skip_optional(why: &str) {
    eprintln!("SKIPPED: {why}");
}

/// The paper's published runs: `REGMIX_PAPER_DATA`, else `../shared/regmix-paper-data` beside
/// the checkout. `None` (through [`skip_required`]) when it does not hold the CSV files.
pub fn paper_data() -> Option<PathBuf> {
    let p = std::env::var_os("REGMIX_PAPER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/regmix-paper-data"));
    if p.join("train_mixture_1m.csv").exists() && p.join("train_pile_loss_1m.csv").exists() {
        Some(p)
    } else {
        skip_required(&format!(
            "../shared/regmix-paper-data, the paper's runs: not found at {} (set REGMIX_PAPER_DATA)",
            p.display()
        ));
        None
    }
}
