//! Test support shared by the training tests (included with `#[path]` by proxy-train and
//! target-train): the tests' own corpus of real text, `tests/corpus/` (a fixed snapshot of
//! this repository's files, so edits to the code or the docs do not move the tests' losses),
//! tokenized by `regmix-tokenize` into three domains: `prose`, `code`, `config`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Parser;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

/// Builds (once per test process) the corpus and its shards; returns the shards folder.
pub fn shards() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = tempfile::Builder::new()
            .prefix("regmix-train-test")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let corpus = repo_root().join("tests/corpus");
        let shards = base.join("shards");
        let args = regmix_tokenize::Args::parse_from([
            "tokenize-shard",
            "--input",
            corpus.to_str().unwrap(),
            "--output",
            shards.to_str().unwrap(),
            "--train-bpe",
            "512",
            "--valid-fraction",
            "0.1",
        ]);
        regmix_tokenize::run(&args).unwrap();
        shards
    })
}

/// A model small enough to train in a second: the micro preset shrunk further.
pub fn tiny_model_json() -> serde_json::Value {
    serde_json::json!({"n_layer": 2, "n_head": 2, "n_query_groups": 1, "d_model": 32, "mlp_hidden": 64, "context": 32})
}

pub fn write_model_config(dir: &Path) -> PathBuf {
    let p = dir.join("tiny.json");
    std::fs::write(&p, tiny_model_json().to_string()).unwrap();
    p
}

/// Every column of a metrics file except elapsed_s, which is wall-clock time.
pub fn metrics_without_time(path: &Path) -> Vec<String> {
    let t = regmix_core::table::read_parquet(path, regmix_core::schema::Schema::get("run_metrics")).unwrap();
    let b = &t.batch;
    (0..b.num_columns())
        .filter(|&c| b.schema().field(c).name() != "elapsed_s")
        .map(|c| format!("{}={:?}", b.schema().field(c).name(), b.column(c)))
        .collect()
}
