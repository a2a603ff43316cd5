//! Logging set-up and progress bars, the same for every stage.
//!
//! Logs go to stderr (`RUST_LOG` selects the level, `info` by default). Progress bars draw only
//! on a terminal; elsewhere (Slurm, CI, pipes) they stay silent and the stage logs a line at
//! the end of each long step instead.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Initialises `env_logger` once; later calls do nothing.
pub fn init_logging() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,xgboost_rs=warn"))
        .format_timestamp_secs()
        .try_init();
}

fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A bar over `len` items of `unit` (e.g. "bytes", "runs").
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), target());
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap(),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// A bar over `len` bytes.
pub fn byte_bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), target());
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap(),
    );
    pb.set_prefix(what.to_string());
    pb
}
