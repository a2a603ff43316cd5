//! A training run's folder and status: the layout `proxy-train` and `target-train` write and
//! `collect` reads, in one place.
//!
//! ```text
//! <runs>/<mixture_id>/metrics.parquet          run_metrics rows so far
//! <runs>/<mixture_id>/checkpoint.safetensors   while unfinished (kept for targets)
//! <runs>/<mixture_id>/done.json                run_done, written last
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{json, Error, Provenance, Result, Schema};

/// The status of a run, as the `status` column of `run_metrics` and `done.json` spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Training (every row but a finished or diverged run's last).
    Running,
    /// Reached its last step.
    Finished,
    /// Stopped at a non-finite loss or gradient norm.
    Diverged,
}

impl RunStatus {
    pub const ALL: [RunStatus; 3] = [RunStatus::Running, RunStatus::Finished, RunStatus::Diverged];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Diverged => "diverged",
        }
    }

    /// The status a file spells `s`; `path` and `row` name it in the error.
    pub fn parse(s: &str, path: &Path, row: usize) -> Result<RunStatus> {
        RunStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::value(path, row, "status", format!("`{s}` is not running, finished or diverged")))
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended: `done.json` (contract `run_done`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub status: RunStatus,
    pub steps: u64,
    pub tokens: u64,
    /// Final validation loss per domain (corpus order), if evaluated.
    pub valid: Vec<Option<f64>>,
    pub elapsed_s: f64,
    /// What the run is (regmix-spec's `RunSpec`, kept as JSON: a record of another build is
    /// compared field by field, not refused for its shape): a rerun compares its own with this.
    pub spec: serde_json::Value,
}

/// The data-stream id of a named run (a target model, `target/<name>/`): a hash of the name,
/// stable across invocations; recorded as the run's `regmix.mixture_id`.
pub fn named_stream_id(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

/// The paths of one run's folder. The only code that names a run's files.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub dir: PathBuf,
}

impl RunDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RunDir { dir: dir.into() }
    }
    /// The folder of mixture `id` under a runs folder.
    pub fn of(runs: &Path, id: u64) -> Self {
        RunDir::new(runs.join(id.to_string()))
    }
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.parquet")
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }
    pub fn done(&self) -> PathBuf {
        self.dir.join("done.json")
    }
    /// The lock a trainer holds while it trains this run.
    pub fn lock(&self) -> PathBuf {
        self.dir.join(".lock")
    }
    /// The outcome of an ended (finished or diverged) run, if its marker exists.
    pub fn ended(&self) -> Result<Option<Done>> {
        let p = self.done();
        if !p.exists() {
            return Ok(None);
        }
        Ok(Some(json::read(&p, Schema::get("run_done"))?.0))
    }
    /// Writes the completion marker (last, after every other file of the run).
    pub fn write_done(&self, done: &Done, prov: &Provenance) -> Result<()> {
        json::write(&self.done(), Schema::get("run_done"), done, prov)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_parses_from_its_own_spelling_only() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str(), Path::new("m.parquet"), 0).unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        let e = RunStatus::parse("done", Path::new("m.parquet"), 4).unwrap_err().to_string();
        assert_eq!(e, "m.parquet: row 4, field `status`: `done` is not running, finished or diverged");
    }

    #[test]
    fn a_run_folder_is_named_by_its_mixture_id() {
        let r = RunDir::of(Path::new("runs"), 7);
        assert_eq!(r.metrics(), Path::new("runs/7/metrics.parquet"));
        assert_eq!(r.done(), Path::new("runs/7/done.json"));
    }
}
