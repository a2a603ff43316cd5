//! The `regmix.*` metadata keys are spelled in one place, `regmix_core::keys`: no other Rust
//! source of the workspace holds a string literal that is a whole metadata key.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `"regmix.name"` literals (a lowercase name with underscores, the whole literal) in `text`.
fn key_literals(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (i, _) in line.match_indices("\"regmix.") {
            let rest = &line[i + 8..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && rest[name.len()..].starts_with('"') {
                found.push((n + 1, format!("regmix.{name}")));
            }
        }
    }
    found
}

#[test]
fn metadata_keys_are_spelled_only_in_regmix_core_keys() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for c in std::fs::read_dir(crates).unwrap() {
        let src = c.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    let keys = crates.join("regmix-core/src/keys.rs");
    assert!(files.contains(&keys), "{} is missing", keys.display());
    let mut stray = Vec::new();
    for f in files.iter().filter(|f| **f != keys) {
        for (line, key) in key_literals(&std::fs::read_to_string(f).unwrap()) {
            stray.push(format!("{}:{line}: \"{key}\"", f.display()));
        }
    }
    assert!(stray.is_empty(), "name these keys through regmix_core::keys:\n{}", stray.join("\n"));
}

#[test]
fn the_checker_finds_a_whole_key_literal_and_nothing_else() {
    let found = key_literals("let a = \"regmix.run_settings\";\nlet b = \"regmix.{k}\"; // \"regmix.x y\"\n");
    assert_eq!(found, vec![(1, "regmix.run_settings".to_string())]);
}
