//! Test support shared by the training tests (included with `#[path]` by proxy-train and
//! target-train): a small corpus of *real text* that every clone has, this repository's own
//! files, tokenized by tokenize-shard into three domains:
//! `prose` (Markdown), `code` (Rust), `config` (JSON, TOML, YAML, Makefile, shell).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Parser;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('.') || name == "target" || name == "data" || name == "golden" {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn domain_of(p: &Path) -> Option<&'static str> {
    let name = p.file_name()?.to_str()?;
    match p.extension().and_then(|e| e.to_str()) {
        Some("md") => Some("prose"),
        Some("rs") => Some("code"),
        Some("json" | "toml" | "yaml" | "yml" | "sh") => Some("config"),
        _ if name == "Makefile" => Some("config"),
        _ => None,
    }
}

/// Builds (once per test process) the corpus and its shards; returns the shards folder.
pub fn shards() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = tempfile::Builder::new().prefix("regmix-train-test").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap().keep();
        let corpus = base.join("corpus");
        std::fs::create_dir_all(&corpus).unwrap();
        let mut files = Vec::new();
        walk(&repo_root(), &mut files);
        let mut lines: std::collections::BTreeMap<&str, String> = Default::default();
        for f in &files {
            let Some(d) = domain_of(f) else { continue };
            let Ok(text) = std::fs::read_to_string(f) else { continue };
            // One document per paragraph, so the validation split gets a share of each file.
            for para in text.split("\n\n").filter(|p| p.trim().len() > 20) {
                let rec = serde_json::json!({ "text": para });
                let s = lines.entry(d).or_default();
                s.push_str(&rec.to_string());
                s.push('\n');
            }
        }
        for (d, body) in &lines {
            std::fs::write(corpus.join(format!("{d}.jsonl")), body).unwrap();
        }
        let shards = base.join("shards");
        let args = tokenize_shard::Args::parse_from([
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
        tokenize_shard::run(&args).unwrap();
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
