//! collect on runs written in the run_metrics contract, and on the paper's CSVs.

#[path = "../../../tests/support/skip.rs"]
mod skip;

use std::path::Path;
use std::process::Command;

use regmix_core::run::RunDir;
use regmix_core::schema::{domains, Schema};
use regmix_core::table::{batch, col, read_parquet, write_parquet};
use regmix_core::Provenance;
use regmix_mixture::Mixtures;
use regmix_spec::{Config, RunSpec, TrainSpec};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_collect"))
}

/// A run of mixture `id` with `weights` over web and code, as proxy-train writes it.
fn write_run(dir: &Path, id: u32, weights: &[f64], status: &str, final_loss: f64) {
    write_run_at(&RunDir::of(dir, id as u64).metrics(), id as u64, weights, status, final_loss);
}

/// The same run in `path`, recording `stream` as its mixture id (a target's is its name's).
fn write_run_at(path: &Path, stream: u64, weights: &[f64], status: &str, final_loss: f64) {
    write_run_of_version(path, stream, weights, status, final_loss, Schema::get("run_metrics").version);
}

/// A run's metrics as a producer of contract `version` wrote them: before version 3,
/// `regmix.train` held the whole run specification, not only the training settings.
fn write_run_of_version(path: &Path, stream: u64, weights: &[f64], status: &str, final_loss: f64, version: u32) {
    let s = Schema::get("run_metrics");
    let d: Vec<String> = vec!["web".into(), "code".into()];
    let lists = domains(&d);
    let b = batch(
        s,
        &lists,
        vec![
            col::u64(vec![10, 20]),
            col::u64(vec![1000, 2000]),
            col::f64(vec![1e-3, 1e-3]),
            col::f64(vec![5.0, 4.0]),
            col::f64(vec![1.0, 0.5]),
            col::f64(vec![1.0, 2.0]),
            col::str(&["running", status]),
            col::f64_opt(vec![Some(6.0), Some(final_loss)]),
            col::f64_opt(vec![None, Some(final_loss + 1.0)]),
        ],
    )
    .unwrap();
    let mut train = TrainSpec::example(Config::preset("micro", 256).unwrap(), 2000);
    train.warmup_steps = 10;
    let spec = RunSpec {
        mixture_id: stream,
        domains: d.clone(),
        weights: weights.to_vec(),
        train,
        tokenizer_sha256: "t".into(),
        shards_sha256: "s".into(),
    };
    let md = vec![
        ("regmix.run_spec".into(), serde_json::to_string(&spec).unwrap()),
        ("regmix.mixture_id".into(), stream.to_string()),
        ("regmix.model".into(), "{}".into()),
        (
            "regmix.train".into(),
            if version < 3 { serde_json::to_string(&spec) } else { serde_json::to_string(&spec.train) }.unwrap(),
        ),
        ("regmix.backend".into(), "cpu f32, 1 threads".into()),
        ("regmix.schema_version".into(), version.to_string()),
    ];
    write_parquet(path, s, &lists, &b, &md, &Provenance::new("t", "0", &[])).unwrap();
}

#[test]
fn help_matches_golden() {
    let out = bin().arg("--help").output().unwrap();
    regmix_core::cli::check_golden(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/help.txt"),
        &String::from_utf8(out.stdout).unwrap(),
    );
}

#[test]
fn collects_version_2_runs_whose_train_key_holds_the_whole_spec_as_version_3_runs() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mixtures {
        domains: vec!["web".into(), "code".into()],
        ids: vec![0, 1],
        weights: vec![vec![0.5, 0.5], vec![0.2, 0.8]],
    };
    let mp = dir.path().join("m.parquet");
    m.write_parquet(&mp, &serde_json::Value::Null, &Provenance::new("t", "0", &[])).unwrap();
    let runs = dir.path().join("runs");
    write_run_of_version(&RunDir::of(&runs, 0).metrics(), 0, &m.weights[0], "finished", 3.5, 2);
    write_run(&runs, 1, &m.weights[1], "finished", 3.9);
    let out = dir.path().join("d.parquet");
    let o = bin().arg("--runs").arg(&runs).arg("--mixtures").arg(&mp).arg("--output").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_parquet(&out, Schema::get("dataset")).unwrap().rows(), 2);
}

#[test]
fn keeps_finished_runs_and_names_the_ones_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mixtures {
        domains: vec!["web".into(), "code".into()],
        ids: vec![0, 1, 2, 3],
        weights: vec![vec![0.5, 0.5], vec![1.0, 0.0], vec![0.2, 0.8], vec![0.9, 0.1]],
    };
    let mp = dir.path().join("m.parquet");
    m.write_parquet(&mp, &serde_json::Value::Null, &Provenance::new("t", "0", &[])).unwrap();
    let runs = dir.path().join("runs");
    write_run(&runs, 0, &m.weights[0], "finished", 3.5);
    write_run(&runs, 1, &m.weights[1], "diverged", f64::NAN);
    write_run(&runs, 2, &m.weights[2], "running", 3.9);
    let out = dir.path().join("d.parquet");
    let o = bin().arg("--runs").arg(&runs).arg("--mixtures").arg(&mp).arg("--output").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("1 (diverged)") && err.contains("2 (unfinished)") && err.contains("3 (missing)"), "{err}");
    let t = read_parquet(&out, Schema::get("dataset")).unwrap();
    assert_eq!(t.rows(), 1);
    assert_eq!(t.f64_values("valid_loss.code").unwrap(), vec![4.5]);
    // --step takes an earlier evaluation, also from an unfinished run.
    let o = bin()
        .arg("--runs")
        .arg(&runs)
        .arg("--mixtures")
        .arg(&mp)
        .arg("--output")
        .arg(&out)
        .args(["--step", "20"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(read_parquet(&out, Schema::get("dataset")).unwrap().rows(), 2);
}

#[test]
fn the_trajectories_hold_every_evaluation_of_the_collected_runs_and_the_dataset_their_hash() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mixtures {
        domains: vec!["web".into(), "code".into()],
        ids: vec![0, 1, 2],
        weights: vec![vec![0.5, 0.5], vec![1.0, 0.0], vec![0.2, 0.8]],
    };
    let mp = dir.path().join("m.parquet");
    m.write_parquet(&mp, &serde_json::Value::Null, &Provenance::new("t", "0", &[])).unwrap();
    let runs = dir.path().join("runs");
    write_run(&runs, 0, &m.weights[0], "finished", 3.5);
    write_run(&runs, 1, &m.weights[1], "diverged", f64::NAN);
    write_run(&runs, 2, &m.weights[2], "finished", 3.9);
    let out = dir.path().join("d.parquet");
    let o = bin().arg("--runs").arg(&runs).arg("--mixtures").arg(&mp).arg("--output").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tp = dir.path().join("d.trajectories.parquet");
    let t = regmix_core::trajectories::Trajectories::read(&tp).unwrap();
    // Runs 0 and 2 (the diverged run is left out of both files), two evaluations each; the
    // first, at step 10, is within the warm-up of 10 steps.
    let rows: Vec<(u32, u64, bool, Option<f64>)> =
        t.points.iter().map(|p| (p.mixture_id, p.step, p.warmup, p.losses[1])).collect();
    assert_eq!(
        rows,
        vec![(0, 10, true, None), (0, 20, false, Some(4.5)), (2, 10, true, None), (2, 20, false, Some(4.9))]
    );
    let d = read_parquet(&out, Schema::get("dataset")).unwrap();
    assert_eq!(d.metadata["regmix.trajectories"], "d.trajectories.parquet");
    assert_eq!(d.metadata["regmix.trajectories_sha256"], regmix_core::digest::sha256_file(&tp).unwrap());
    assert_eq!(d.str("run").unwrap().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>(), vec!["0", "2"]);
}

#[test]
fn a_targets_folder_is_collected_by_model_name_with_each_models_own_mixture() {
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("target");
    let name_id = regmix_core::run::named_stream_id;
    write_run_at(&targets.join("prior/metrics.parquet"), name_id("prior"), &[0.6, 0.4], "finished", 3.0);
    write_run_at(&targets.join("m7/metrics.parquet"), name_id("m7"), &[0.1, 0.9], "finished", 3.2);
    let out = dir.path().join("held-out.parquet");
    let o = bin().arg("--targets").arg(&targets).arg("--output").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = read_parquet(&out, Schema::get("dataset")).unwrap();
    assert_eq!(d.str("run").unwrap().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>(), vec!["m7", "prior"]);
    assert_eq!(d.f64_values("weight.web").unwrap(), vec![0.1, 0.6]);
    assert_eq!(d.f64_values("valid_loss.code").unwrap(), vec![4.2, 4.0]);
    // A metrics file copied into another model's folder is refused, naming it.
    std::fs::copy(targets.join("prior/metrics.parquet"), targets.join("m7/metrics.parquet")).unwrap();
    let o = bin().arg("--targets").arg(&targets).arg("--output").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("m7/metrics.parquet: the run is of mixture"), "{err}");
}

#[test]
fn no_usable_run_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mixtures { domains: vec!["web".into()], ids: vec![0], weights: vec![vec![1.0]] };
    let mp = dir.path().join("m.parquet");
    m.write_parquet(&mp, &serde_json::Value::Null, &Provenance::new("t", "0", &[])).unwrap();
    let out = dir.path().join("d.parquet");
    let o = bin()
        .arg("--runs")
        .arg(dir.path().join("runs"))
        .arg("--mixtures")
        .arg(&mp)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no usable run"));
    assert!(!out.exists());
}

#[test]
fn imports_the_papers_csv_pair() {
    let Some(d) = skip::paper_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.parquet");
    let o = bin()
        .arg("--import-regmix-csv")
        .arg(d.join("train_mixture_1m.csv"))
        .arg(d.join("train_pile_loss_1m.csv"))
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_parquet(&out, Schema::get("dataset")).unwrap();
    assert_eq!(t.rows(), 512);
    assert_eq!(t.list("domain").unwrap().len(), 17);
    assert_eq!(t.list("eval_domain").unwrap().len(), 13);
    assert!(t.list("eval_domain").unwrap().contains(&"pile_cc".to_string()));
}

/// Writes `text` as `dir/name` and returns the path.
fn file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn olmix_swarm_files_import_joined_on_the_run_id() {
    let dir = tempfile::tempdir().unwrap();
    let r =
        file(dir.path(), "ratios.csv", "run_id,name,dclm:web,code/python\nb7,swarm-1,0.25,0.75\na1,swarm-0,0.6,0.4\n");
    let m = file(
        dir.path(),
        "metrics.csv",
        "run_id,name,mmlu_bpb,arc_easy/bpb\na1,swarm-0,1.9,2.1\nb7,swarm-1,1.7,2.3\nzz,other,1.0,1.0\n",
    );
    let out = dir.path().join("d.parquet");
    let o = bin().arg("--import-olmix").arg(&r).arg(&m).arg("--output").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_parquet(&out, Schema::get("dataset")).unwrap();
    assert_eq!(t.list("domain").unwrap(), ["dclm_web", "code_python"]);
    assert_eq!(t.str("run").unwrap().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>(), vec!["b7", "a1"]);
    assert_eq!(t.f64_values("weight.code_python").unwrap(), vec![0.75, 0.4]);
    assert_eq!(t.f64_values("valid_loss.arc_easy_bpb").unwrap(), vec![2.3, 2.1]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 runs have no ratios"));
}

#[test]
fn a_wide_table_imports_with_its_weight_prefix_and_named_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(
        dir.path(),
        "wandb.csv",
        "run,config.mix.web,config.mix.code,eval/loss,notes\nr0,0.5,0.5,3.2,x\nr1,0.9,0.1,3.0,y\n",
    );
    let out = dir.path().join("d.parquet");
    let o = bin()
        .arg("--import-table")
        .arg(&p)
        .args(["--weight-prefix", "config.mix.", "--output"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_parquet(&out, Schema::get("dataset")).unwrap();
    assert_eq!(t.list("domain").unwrap(), ["web", "code"]);
    assert_eq!(t.list("eval_domain").unwrap(), ["eval_loss"], "the text column `notes` is not a metric");
    assert_eq!(t.f64_values("valid_loss.eval_loss").unwrap(), vec![3.2, 3.0]);
}

#[test]
fn weights_summing_to_1_up_to_float_rounding_import_as_written() {
    // 0.7 + 0.2 + 0.1 is 0.9999999999999999 in f64: dividing by it would move 0.7 by one ulp, and
    // an exported dataset would not read back as itself.
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "t.csv", "run,weight.web,weight.code,weight.math,valid_loss.web\nm0,0.7,0.2,0.1,4.25\n");
    let out = dir.path().join("d.parquet");
    let o = bin().arg("--import-table").arg(&p).arg("--output").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_parquet(&out, Schema::get("dataset")).unwrap();
    let w: Vec<u64> =
        ["web", "code", "math"].iter().map(|d| t.f64_values(&format!("weight.{d}")).unwrap()[0].to_bits()).collect();
    assert_eq!(w, [0.7f64.to_bits(), 0.2f64.to_bits(), 0.1f64.to_bits()]);
}

#[test]
fn a_wide_tables_tokens_and_steps_columns_say_where_each_row_was_measured() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "targets.csv", "run,tokens,steps,weight.web,weight.code,valid_loss.web\nm0,4194304,1024,0.5,0.5,4.25\nm1,2097152,512,0.9,0.1,4.5\n");
    let out = dir.path().join("d.parquet");
    let o = bin().arg("--import-table").arg(&p).arg("--output").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_parquet(&out, Schema::get("dataset")).unwrap();
    let values = |c: &str| t.u64(c).unwrap().values().to_vec();
    assert_eq!((values("tokens"), values("steps")), (vec![4194304, 2097152], vec![1024, 512]));
    assert_eq!(t.list("eval_domain").unwrap(), ["web"], "tokens and steps are not metrics");
}

#[test]
fn bad_import_files_are_errors_naming_file_row_and_column_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.parquet");
    let cases = [
        ("sum.csv", "run,weight.a,weight.b,loss\nx,0.5,0.4,1.0\n", "sum.csv: row 2: the weights sum to 0.9, not 1"),
        (
            "twice.csv",
            "run,weight.a,weight.b,loss\nx,0.5,0.5,1.0\nx,0.2,0.8,1.1\n",
            "twice.csv: row 3: run `x` is also row 2: a run given twice",
        ),
        (
            "text.csv",
            "run,weight.a,weight.b,loss\nx,0.5,0.5,1.0\ny,0.5,0.5,oops\n",
            "text.csv: row 3, column `loss`: \"oops\" is not a number",
        ),
        ("nan.csv", "run,weight.a,weight.b,loss\nx,0.5,0.5,NaN\n", "nan.csv: row 2, column `loss`: NaN is not finite"),
        ("hole.csv", "run,weight.a,weight.b,loss\nx,,1.0,1.0\n", "hole.csv: row 2, column `weight.a`: empty"),
        (
            "clash.csv",
            "run,weight.A,weight.a,loss\nx,0.5,0.5,1.0\n",
            "clash.csv: weight columns `A` and `a` are both `a`",
        ),
        (
            "tokens.csv",
            "run,tokens,weight.a,weight.b,loss\nx,4e6,0.5,0.5,1.0\n",
            "tokens.csv: row 2, column `tokens`: \"4e6\" is not a whole number ≥ 0",
        ),
    ];
    for (name, text, want) in cases {
        let p = file(dir.path(), name, text);
        let args =
            ["--import-table".to_string(), p.to_str().unwrap().to_string(), "--metric".to_string(), "loss".to_string()];
        let o = bin().args(&args).arg("--output").arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(!out.exists(), "{name}: a dataset was written");
    }
    // olmix metrics for a run missing from the metrics file.
    let r = file(dir.path(), "ratios.csv", "run_id,web,code\na,0.5,0.5\nb,0.1,0.9\n");
    let m = file(dir.path(), "metrics.csv", "run_id,loss\na,1.0\n");
    let o = bin().arg("--import-olmix").arg(&r).arg(&m).arg("--output").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("1 runs have no metrics in") && err.contains(": b"), "{err}");
    assert!(!out.exists());
    // A history row of a run the table does not have, and a loss that is not a number.
    let t = file(dir.path(), "table.csv", "run,weight.a,weight.b,loss\nx,0.5,0.5,1.0\n");
    for (name, text, want) in [
        (
            "h1.csv",
            "run,step,tokens,loss\nx,1,100,2.0\ny,1,100,2.0\n",
            "h1.csv: row 3, column `run`: run `y` is not in the table",
        ),
        ("h2.csv", "run,step,tokens,loss\nx,1,100,inf\n", "h2.csv: row 2, column `loss`: inf is not finite"),
        (
            "h3.csv",
            "run,step,tokens,loss\nx,1,100,2.0\nx,1,200,1.9\n",
            "h3.csv: row 3: run `x` at step 1 is also row 2",
        ),
    ] {
        let h = file(dir.path(), name, text);
        let o = bin()
            .arg("--import-table")
            .arg(&t)
            .arg("--import-history")
            .arg(&h)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{name}: {err}");
        assert!(!out.exists() && !dir.path().join("d.trajectories.parquet").exists(), "{name}: a file was written");
    }
}
