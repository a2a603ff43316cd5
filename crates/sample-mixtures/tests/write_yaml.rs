//! `--write-yaml DIR` owns only what it writes: a folder that is, holds or lies in an input or
//! `--output` is refused before anything is written, a folder of other files is never replaced,
//! and its own folder is replaced whole (no configs of an earlier, larger draw left behind).

use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sample-mixtures"));
    c.current_dir(dir).args(args);
    c.output().unwrap()
}

fn refused(o: &Output, what: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "accepted: {err}");
    for w in what {
        assert!(err.contains(w), "`{w}` not in: {err}");
    }
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/prior.json"), r#"{"tokens": {"web": 6000, "code": 3000, "books": 1000}}"#)
        .unwrap();
    dir
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn a_yaml_folder_overlapping_an_input_or_the_output_is_refused() {
    let dir = setup();
    let d = dir.path();
    let base = ["--prior", "in/prior.json", "--count", "4", "--output"];
    // The input's folder, the input itself, a folder inside the input's folder.
    for yaml in ["in", "in/prior.json", "."] {
        let o = run(d, &[&base[..], &["m.parquet", "--write-yaml", yaml]].concat());
        refused(&o, &["--write-yaml", "--prior"]);
    }
    // The output file itself, the folder holding it, and a folder inside it.
    let o = run(d, &[&base[..], &["out/m.parquet", "--write-yaml", "out/m.parquet"]].concat());
    refused(&o, &["--write-yaml out/m.parquet: the output is the input --output"]);
    let o = run(d, &[&base[..], &["out/m.parquet", "--write-yaml", "out"]].concat());
    refused(&o, &["--write-yaml out: the output holds the input --output"]);
    // Nothing was written, and the input is untouched.
    assert!(!d.join("m.parquet").exists() && !d.join("out").exists());
    assert_eq!(names(&d.join("in")), ["prior.json"]);
}

#[test]
fn a_folder_of_other_files_is_never_replaced_and_its_own_is_replaced_whole() {
    let dir = setup();
    let d = dir.path();
    // A user's folder (the paper's configs, say) is refused, and kept as it was.
    std::fs::create_dir(d.join("configs")).unwrap();
    std::fs::write(d.join("configs/n0.yaml"), "train:\n  train_web: 1\nmodel_name: tinyllama_1_1b\n").unwrap();
    std::fs::write(d.join("configs/notes.txt"), "mine").unwrap();
    let o = run(d, &["--prior", "in/prior.json", "--count", "4", "--output", "m.parquet", "--write-yaml", "configs"]);
    refused(&o, &["configs: refusing to replace this folder", "sample-mixtures' YAML configs"]);
    assert_eq!(names(&d.join("configs")), ["n0.yaml", "notes.txt"]);
    // Its own folder: 8 configs, then 3 replace them whole.
    let o = run(d, &["--prior", "in/prior.json", "--count", "8", "--output", "m.parquet", "--write-yaml", "yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(names(&d.join("yaml")).len(), 9, "8 configs and the marker: {:?}", names(&d.join("yaml")));
    assert!(names(&d.join("yaml")).contains(&".sample-mixtures.json".to_string()));
    let o = run(d, &["--prior", "in/prior.json", "--count", "3", "--output", "m.parquet", "--write-yaml", "yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(names(&d.join("yaml")), [".sample-mixtures.json", "n0.yaml", "n1.yaml", "n2.yaml"]);
    // A folder written before the marker existed (nothing but n<id>.yaml ending in `seed:`) is ours.
    std::fs::remove_file(d.join("yaml/.sample-mixtures.json")).unwrap();
    let o = run(d, &["--prior", "in/prior.json", "--count", "2", "--output", "m.parquet", "--write-yaml", "yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(names(&d.join("yaml")), [".sample-mixtures.json", "n0.yaml", "n1.yaml"]);
    // A user's file put into our folder makes it not ours: refused, the file kept.
    std::fs::remove_file(d.join("yaml/.sample-mixtures.json")).unwrap();
    std::fs::write(d.join("yaml/README"), "mine").unwrap();
    let o = run(d, &["--prior", "in/prior.json", "--count", "2", "--output", "m.parquet", "--write-yaml", "yaml"]);
    refused(&o, &["refusing to replace this folder"]);
    assert!(d.join("yaml/README").exists());
}
