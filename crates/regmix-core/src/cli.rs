//! The shape every stage binary shares: set up logging, run, and turn an error into a
//! message on stderr and exit code 2 (ripgrep's convention). A broken pipe exits 0.

/// Runs a stage's `main` body and exits with its status.
pub fn main(run: impl FnOnce() -> anyhow::Result<()>) -> ! {
    crate::progress::init_logging();
    match run() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    std::process::exit(0);
                }
            }
            // A full disk reached through a library that kept only its text (an anyhow chain,
            // a writer's error) is still said as a full disk.
            let full = e.chain().any(|c| crate::error::is_disk_full(&c.to_string()));
            let said = e.chain().any(|c| c.to_string().contains("the disk is full"));
            if full && !said {
                eprintln!("error: the disk is full (no space left on device): {e}");
            } else {
                eprintln!("error: {e}");
            }
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::exit(2);
        }
    }
}

/// The width `--help` is wrapped at, fixed so the golden tests of `--help` are stable.
pub const HELP_WIDTH: usize = 100;

/// Compares `--help` output with the golden file, or rewrites it when `UPDATE_GOLDEN=1`.
/// For the stages' `tests/cli.rs`.
pub fn check_golden(path: &std::path::Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", path.display()));
    assert!(
        expected == actual,
        "--help differs from {} (run with UPDATE_GOLDEN=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// The most threads a `--threads` flag may ask for: more would only exhaust the machine
/// (each thread needs a stack) before any work is done.
pub const MAX_THREADS: usize = 1024;

/// Checks a `--threads` value (0 means all cores).
pub fn check_threads(n: usize) -> crate::Result<()> {
    if n > MAX_THREADS {
        return Err(crate::Error::Invalid(format!("--threads {n}: at most {MAX_THREADS} (0 uses every core)")));
    }
    Ok(())
}
