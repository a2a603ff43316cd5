//! calibrate on datasets written in the dataset contract: the golden `--help`, the scores of
//! constructed recipes, and bad inputs refused with nothing written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regmix_calibrate::Calibration;
use regmix_core::schema::{domains_and_eval, Schema};
use regmix_core::table::{batch, col, write_parquet};
use regmix_core::Provenance;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_calibrate"))
}

fn golden(args: &[&str], file: &str) {
    let out = bin().args(args).output().unwrap();
    assert!(out.status.success());
    regmix_core::cli::check_golden(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(file),
        &String::from_utf8(out.stdout).unwrap(),
    );
}

#[test]
fn help_matches_golden() {
    golden(&["--help"], "help.txt");
    golden(&["mixtures", "--help"], "help-mixtures.txt");
    golden(&["score", "--help"], "help-score.txt");
}

/// Eight mixtures over web and code: web's weight k/8 for k = 0..8 (the prior is k = 4).
fn mixture(k: usize) -> Vec<f64> {
    let w = k as f64 / 8.0;
    vec![w, 1.0 - w]
}

/// A run's settings as collect records them (null for an import).
fn settings(lr: f64, tokenizer: &str) -> serde_json::Value {
    let model = regmix_model::Config::preset("micro", 256).unwrap();
    serde_json::json!({
        "domains": ["web", "code"],
        "train": regmix_spec::TrainSpec { lr, ..regmix_spec::TrainSpec::example(model, 65536) },
        "tokenizer_sha256": tokenizer,
        "shards_sha256": "s",
    })
}

/// A dataset of one run per (name, mixture k, loss), with `domains` as its training domains.
fn dataset(path: &Path, rows: &[(&str, usize, f64)], domains: &[&str], settings: serde_json::Value) {
    let d: Vec<String> = domains.iter().map(|s| s.to_string()).collect();
    let lists = domains_and_eval(&d, &d);
    let n = rows.len();
    let mut cols = vec![
        col::u32((0..n as u32).collect()),
        col::str(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        col::u64(vec![65536; n]),
        col::u64(vec![64; n]),
        col::str(&vec!["finished"; n]),
    ];
    for j in 0..d.len() {
        cols.push(col::f64(rows.iter().map(|r| mixture(r.1).get(j).copied().unwrap_or(0.0)).collect()));
    }
    for _ in 0..d.len() {
        cols.push(col::f64_opt(rows.iter().map(|r| Some(r.2)).collect()));
    }
    let s = Schema::get("dataset");
    let md = vec![
        ("regmix.trajectories".to_string(), String::new()),
        ("regmix.trajectories_sha256".to_string(), String::new()),
        ("regmix.run_settings".to_string(), settings.to_string()),
    ];
    write_parquet(path, s, &lists, &batch(s, &lists, cols).unwrap(), &md, &Provenance::new("collect", "0", &["test"]))
        .unwrap();
}

/// Targets: k = 0..8, loss lowest at the prior (k = 4) and rising away from it.
fn targets(dir: &Path) -> PathBuf {
    let p = dir.join("targets.parquet");
    let names = ["m0", "m1", "m2", "m3", "prior", "m5", "m6", "m7"];
    let rows: Vec<(&str, usize, f64)> =
        (0..8).map(|k| (names[k], k, 4.0 + (k as f64 - 4.0).abs() * 0.1 + k as f64 * 0.001)).collect();
    dataset(&p, &rows, &["web", "code"], serde_json::Value::Null);
    p
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_recipe_that_orders_the_targets_exactly_is_recommended_over_one_that_reverses_them() {
    let dir = tempfile::tempdir().unwrap();
    let t = targets(dir.path());
    let good = dir.path().join("good.parquet");
    let bad = dir.path().join("bad.parquet");
    let rows = |sign: f64| -> Vec<(&'static str, usize, f64)> {
        (0..8).map(|k| ("r", k, 6.0 + sign * ((k as f64 - 4.0).abs() * 0.2 + k as f64 * 0.002))).collect()
    };
    dataset(&good, &rows(1.0), &["web", "code"], settings(3e-4, "t"));
    dataset(&bad, &rows(-1.0), &["web", "code"], settings(3e-3, "t"));
    let out = dir.path().join("calibration.parquet");
    let o = run(&[
        "score",
        "--targets",
        t.to_str().unwrap(),
        "--recipe",
        &format!("good={}", good.display()),
        "--recipe",
        &format!("bad={}", bad.display()),
        "--bootstrap",
        "200",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = Calibration::read(&out).unwrap();
    let g = &c.rows[0];
    assert_eq!(
        (g.recipe.as_str(), g.spearman, g.pairwise, g.prior_agree, g.prior_decisions),
        ("good", Some(1.0), Some(1.0), 7, 7)
    );
    assert_eq!(g.verdict, "recommended");
    assert_eq!(c.rows[1].verdict, "no signal");
    assert_eq!(c.inputs.prior.as_deref(), Some("prior"));
}

#[test]
fn a_mixture_in_two_target_files_is_one_mixture_with_their_mean_loss() {
    let dir = tempfile::tempdir().unwrap();
    let t = targets(dir.path());
    let again = dir.path().join("seed-43.parquet");
    dataset(&again, &[("prior", 4, 3.9)], &["web", "code"], serde_json::Value::Null);
    let out = dir.path().join("mixtures.parquet");
    let o = run(&[
        "mixtures",
        "--targets",
        t.to_str().unwrap(),
        "--targets",
        again.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "8");
    assert_eq!(regmix_mixture::Mixtures::read_parquet(&out).unwrap().len(), 8);
}

/// Runs `calibrate score` with one recipe and expects an error naming `needle`, no output.
fn refused(dir: &Path, targets: &[&Path], recipe: &Path, needle: &str) {
    let out = dir.join("calibration.parquet");
    let mut args = vec!["score".to_string()];
    for t in targets {
        args.extend(["--targets".to_string(), t.display().to_string()]);
    }
    args.extend(["--recipe".into(), format!("r={}", recipe.display()), "--output".into(), out.display().to_string()]);
    let o = bin().args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(needle), "{needle:?} not in: {}", stderr(&o));
    assert!(!out.exists(), "nothing is written on an error");
}

#[test]
fn targets_with_other_domains_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = targets(dir.path());
    let other = dir.path().join("other.parquet");
    dataset(&other, &[("x", 0, 4.0)], &["web", "books"], serde_json::Value::Null);
    let r = dir.path().join("r.parquet");
    dataset(&r, &[("r", 0, 5.0)], &["web", "code"], settings(3e-3, "t"));
    refused(dir.path(), &[&t, &other], &r, "other domains than the targets");
}

#[test]
fn recipes_on_another_tokenizer_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = targets(dir.path());
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    dataset(&a, &[("r", 0, 5.0)], &["web", "code"], settings(3e-3, "tok-a"));
    dataset(&b, &[("r", 0, 5.0)], &["web", "code"], settings(3e-3, "tok-b"));
    let out = dir.path().join("calibration.parquet");
    let o = run(&[
        "score",
        "--targets",
        t.to_str().unwrap(),
        "--recipe",
        &format!("a={}", a.display()),
        "--recipe",
        &format!("b={}", b.display()),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("was trained on other data (tokenizer tok-b"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn a_proxy_of_a_mixture_absent_from_the_targets_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = targets(dir.path());
    let r = dir.path().join("r.parquet");
    // Mixture k = 8 (web 1.0) is not a target.
    dataset(&r, &[("r", 8, 5.0)], &["web", "code"], settings(3e-3, "t"));
    refused(dir.path(), &[&t], &r, "not among the targets' 8 mixtures");
}

#[test]
fn fewer_than_four_target_mixtures_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("few.parquet");
    dataset(
        &t,
        &[("a", 0, 4.0), ("b", 1, 4.1), ("c", 2, 4.2), ("a-again", 0, 4.05)],
        &["web", "code"],
        serde_json::Value::Null,
    );
    let r = dir.path().join("r.parquet");
    dataset(&r, &[("r", 0, 5.0)], &["web", "code"], settings(3e-3, "t"));
    refused(dir.path(), &[&t], &r, "3 distinct target mixtures");
}

#[test]
fn an_imported_recipe_needs_its_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let t = targets(dir.path());
    let r = dir.path().join("r.parquet");
    dataset(&r, &[("r", 0, 5.0)], &["web", "code"], serde_json::Value::Null);
    refused(dir.path(), &[&t], &r, "--settings r=TABLE.settings.json");
}
