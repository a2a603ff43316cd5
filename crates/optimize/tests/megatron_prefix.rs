//! `optimize --megatron-prefix` is checked against the export it names: a prefix whose export is
//! here must have export-megatron's marker for every domain of the fit, recording that domain,
//! the shards and tokenizer the fit's dataset records, and a `.bin` of the recorded size; an
//! export with domains the fit lacks, or a prefix missing its `/`, is refused. A prefix of which
//! nothing is here (a cluster path) is written as before, unchecked.

use std::path::{Path, PathBuf};

use clap::Parser;
use regmix_core::megatron::{marker, prefix, Marker};
use regmix_core::schema::{domains_and_eval, Schema};
use regmix_core::table::{batch, col, write_parquet};
use regmix_core::Provenance;
use regmix_regress::linear::Linear;
use regmix_regress::target::Target;
use regmix_regress::{Kind, Model, SavedFit};
use regmix_spec::{Config, RunSettings, TrainSpec};

const DOMS: [&str; 3] = ["books", "code", "web"];
const SHARDS: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
const TOKENIZER: &str = "7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e";

fn doms() -> Vec<String> {
    DOMS.iter().map(|s| s.to_string()).collect()
}

/// A dataset that records the shards and tokenizer its runs trained on, a linear fit of it, and
/// prior.json; returns the fit folder.
fn fit(dir: &Path) -> PathBuf {
    let prov = Provenance::new("test", "0", &["megatron-prefix-test"]);
    let doms = doms();
    let weights: Vec<[f64; 3]> = vec![[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]];
    let loss = |w: &[f64; 3]| 4.0 - w[0] - 0.5 * w[1];
    let s = Schema::get("dataset");
    let lists = domains_and_eval(&doms, &doms);
    let n = weights.len();
    let mut cols = vec![
        col::u32((0..n as u32).collect()),
        col::str(&(0..n).map(|i| i.to_string()).collect::<Vec<_>>()),
        col::u64(vec![1000; n]),
        col::u64(vec![10; n]),
        col::str(&vec!["finished".to_string(); n]),
    ];
    for j in 0..3 {
        cols.push(col::f64(weights.iter().map(|w| w[j]).collect()));
    }
    for _ in 0..3 {
        cols.push(col::f64_opt(weights.iter().map(|w| Some(loss(w))).collect()));
    }
    // What the runs trained on (the data is what the blend is checked against).
    let settings = RunSettings {
        domains: doms.clone(),
        train: TrainSpec::example(Config::preset("micro", 256).unwrap(), 10_240),
        tokenizer_sha256: TOKENIZER.into(),
        shards_sha256: SHARDS.into(),
    }
    .to_value();
    let md = vec![
        ("regmix.trajectories".to_string(), String::new()),
        ("regmix.trajectories_sha256".to_string(), String::new()),
        ("regmix.run_settings".to_string(), settings.to_string()),
    ];
    let ds = dir.join("dataset.parquet");
    write_parquet(&ds, s, &lists, &batch(s, &lists, cols).unwrap(), &md, &prov).unwrap();
    let columns: Vec<String> = doms.iter().map(|d| format!("valid_loss.{d}")).collect();
    let saved = SavedFit {
        target: Target::parse("mean(valid_loss.*)", &columns).unwrap(),
        domains: doms.clone(),
        regressor: Kind::Linear,
        dataset: ds.canonicalize().unwrap(),
        dataset_sha256: regmix_core::digest::sha256_file(&ds).unwrap(),
        folds: 2,
        seed: 0,
        cv_spearman: 1.0,
        model: Model::Linear(Linear { intercept: 4.0, coef: vec![-1.0, -0.5, 0.0] }),
    };
    let out = dir.join("fit");
    std::fs::create_dir_all(&out).unwrap();
    saved.save(&out, &prov).unwrap();
    let prior = serde_json::json!({"weights": {"books": 0.2, "code": 0.3, "web": 0.5}});
    std::fs::write(dir.join("prior.json"), prior.to_string()).unwrap();
    out
}

/// What export-megatron would leave for `domains`: each train pair (a `.bin` of `tokens` uint16
/// tokens) and its marker.
fn export(out: &Path, domains: &[&str]) {
    for d in domains {
        let p = prefix(out, "train", d);
        std::fs::create_dir_all(out).unwrap();
        std::fs::write(p.with_extension("bin"), vec![0u8; 2 * 100]).unwrap();
        std::fs::write(p.with_extension("idx"), b"MMIDIDX\x00\x00").unwrap();
        let m = Marker {
            domain: Some(d.to_string()),
            split: Some("train".into()),
            shards_sha256: SHARDS.into(),
            tokenizer_sha256: Some(TOKENIZER.into()),
            tokens: 100,
            token_type_code: 8,
            documents: 3,
            bin_sha256: "b".into(),
            idx_sha256: "i".into(),
        };
        m.write(&marker(out, "train", d)).unwrap();
    }
}

fn optimize(dir: &Path, prefix: &str, output: &str) -> anyhow::Result<String> {
    let p = |s: &str| dir.join(s).to_str().unwrap().to_string();
    let args = optimize::Args::parse_from([
        "optimize",
        "--fit",
        &p("fit"),
        "--prior",
        &p("prior.json"),
        "--output",
        &p(output),
        "--samples",
        "2000",
        "--top-k",
        "10",
        "--megatron-prefix",
        prefix,
    ]);
    optimize::run(&args)?;
    Ok(std::fs::read_to_string(dir.join(output).join("megatron_data_path.txt")).unwrap())
}

fn err(r: anyhow::Result<String>) -> String {
    format!("{:#}", r.expect_err("optimize accepted an export that is not the fit's"))
}

fn edit(m: &Path, f: impl FnOnce(&mut Marker)) {
    let mut k = Marker::read(m).unwrap();
    f(&mut k);
    k.write(m).unwrap();
}

#[test]
fn an_export_of_the_fits_shards_is_accepted_and_named_in_the_blend() {
    let dir = tempfile::tempdir().unwrap();
    fit(dir.path());
    let meg = dir.path().join("megatron");
    export(&meg, &DOMS);
    let pre = format!("{}/", meg.display());
    let blend = optimize(dir.path(), &pre, "opt").unwrap();
    for d in DOMS {
        assert!(blend.contains(&format!("{pre}{d}")), "{blend}");
    }
    // A marker written before domain and tokenizer were recorded is checked on what it records.
    let m = marker(&meg, "train", "web");
    edit(&m, |k| {
        k.domain = None;
        k.tokenizer_sha256 = None;
    });
    optimize(dir.path(), &pre, "opt").unwrap();
}

#[test]
fn a_prefix_of_which_nothing_is_here_is_written_unchecked() {
    let dir = tempfile::tempdir().unwrap();
    fit(dir.path());
    let blend = optimize(dir.path(), "/nonexistent-cluster/scratch/megatron/", "opt").unwrap();
    assert!(blend.contains("/nonexistent-cluster/scratch/megatron/web"), "{blend}");
}

#[test]
fn a_missing_marker_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    fit(dir.path());
    let meg = dir.path().join("megatron");
    export(&meg, &DOMS);
    let m = marker(&meg, "train", "code");
    std::fs::remove_file(&m).unwrap();
    let e = err(optimize(dir.path(), &format!("{}/", meg.display()), "opt"));
    assert!(e.contains(&m.display().to_string()) && e.contains("marker is missing"), "{e}");
    assert!(!dir.path().join("opt").exists(), "an optimum was written: {e}");
    // The pair alone, without the marker folder, is an export that did not finish too.
    std::fs::remove_dir_all(meg.join(".done")).unwrap();
    let e = err(optimize(dir.path(), &format!("{}/", meg.display()), "opt"));
    assert!(e.contains("marker is missing"), "{e}");
}

#[test]
fn an_export_of_other_shards_or_another_tokenizer_is_an_error_naming_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    fit(dir.path());
    let meg = dir.path().join("megatron");
    export(&meg, &DOMS);
    let pre = format!("{}/", meg.display());
    let m = marker(&meg, "train", "books");
    edit(&m, |k| k.shards_sha256 = "0".repeat(64));
    let e = err(optimize(dir.path(), &pre, "opt"));
    assert!(
        e.contains(&m.display().to_string()) && e.contains("shards sha256 000000000000") && e.contains("5a5a5a5a5a5a"),
        "{e}"
    );
    edit(&m, |k| {
        k.shards_sha256 = SHARDS.into();
        k.tokenizer_sha256 = Some("1".repeat(64));
    });
    let e = err(optimize(dir.path(), &pre, "opt"));
    assert!(e.contains(&m.display().to_string()) && e.contains("tokenizer sha256 111111111111"), "{e}");
}

#[test]
fn a_marker_of_another_domain_or_a_bin_of_another_size_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fit(dir.path());
    let meg = dir.path().join("megatron");
    export(&meg, &DOMS);
    let pre = format!("{}/", meg.display());
    // code's marker copied over web's: it records code.
    let web = marker(&meg, "train", "web");
    std::fs::copy(marker(&meg, "train", "code"), &web).unwrap();
    let e = err(optimize(dir.path(), &pre, "opt"));
    assert!(e.contains(&web.display().to_string()) && e.contains("records domain code"), "{e}");
    edit(&web, |k| k.domain = Some("web".into()));
    let bin = prefix(&meg, "train", "web").with_extension("bin");
    std::fs::write(&bin, vec![0u8; 10]).unwrap();
    let e = err(optimize(dir.path(), &pre, "opt"));
    assert!(e.contains(&bin.display().to_string()) && e.contains("10 bytes"), "{e}");
}

#[test]
fn an_export_with_domains_the_fit_lacks_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fit(dir.path());
    let meg = dir.path().join("megatron");
    export(&meg, &["books", "code", "math", "web"]);
    let e = err(optimize(dir.path(), &format!("{}/", meg.display()), "opt"));
    assert!(e.contains("domains the fit does not have (math"), "{e}");
}

#[test]
fn an_export_folder_given_without_its_slash_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fit(dir.path());
    let meg = dir.path().join("megatron");
    export(&meg, &DOMS);
    let e = err(optimize(dir.path(), meg.to_str().unwrap(), "opt"));
    assert!(e.contains(&format!("give {}/", meg.display())), "{e}");
}
