//! Proxy results from other tools through collect → fit → optimize: olmix's swarm files and a
//! W&B-style wide table (as CSV and as Parquet) whose metric falls with the weight of `code`
//! give an optimum that leans on `code`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use rand::{Rng, SeedableRng};

const DOMS: [&str; 3] = ["web", "code", "books"];

/// 40 runs: weights from a flat Dirichlet, the metric 3 − 0.8·w_code + 0.2·w_books + noise.
fn runs() -> Vec<(String, [f64; 3], f64)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    (0..40)
        .map(|i| {
            let g: Vec<f64> = (0..3).map(|_| -(rng.random::<f64>().max(1e-12)).ln()).collect();
            let s: f64 = g.iter().sum();
            let w = [g[0] / s, g[1] / s, g[2] / s];
            (format!("run-{i:02}"), w, 3.0 - 0.8 * w[1] + 0.2 * w[2] + 0.01 * (rng.random::<f64>() - 0.5))
        })
        .collect()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// fit and optimize on `dataset`; the optimum's weight of code.
fn code_weight(dir: &Path, dataset: &Path, target: &str) -> f64 {
    let fit_dir = dir.join(format!("fit-{}", dataset.file_stem().unwrap().to_str().unwrap()));
    fit::run(&fit::Args::parse_from([
        "fit",
        "--dataset",
        &s(dataset),
        "--target",
        target,
        "--regressor",
        "gp",
        "--output",
        &s(&fit_dir),
    ]))
    .unwrap();
    let prior = dir.join("prior.json");
    std::fs::write(&prior, r#"{"weights": {"web": 0.34, "code": 0.33, "books": 0.33}}"#).unwrap();
    let out = dir.join(format!("opt-{}", dataset.file_stem().unwrap().to_str().unwrap()));
    optimize::run(&optimize::Args::parse_from([
        "optimize",
        "--fit",
        &s(&fit_dir),
        "--prior",
        &s(&prior),
        "--output",
        &s(&out),
        "--samples",
        "20000",
        "--top-k",
        "20",
    ]))
    .unwrap();
    let o = regmix_mixture::Optimum::read(&out.join("optimum.parquet")).unwrap();
    o.weights[o.domains.iter().position(|d| d == "code").unwrap()]
}

#[test]
fn olmix_swarm_files_go_through_fit_and_optimize() {
    let dir = tempfile::tempdir().unwrap();
    let mut ratios = String::from("run_id,name,web,code,books\n");
    let mut metrics = String::from("run_id,name,eval/loss\n");
    for (id, w, m) in runs() {
        ratios += &format!("{id},{id},{},{},{}\n", w[0], w[1], w[2]);
        metrics += &format!("{id},{id},{m}\n");
    }
    let (r, m) = (dir.path().join("ratios.csv"), dir.path().join("metrics.csv"));
    std::fs::write(&r, ratios).unwrap();
    std::fs::write(&m, metrics).unwrap();
    let ds = dir.path().join("olmix.parquet");
    collect::run(&collect::Args::parse_from(["collect", "--import-olmix", &s(&r), &s(&m), "--output", &s(&ds)]))
        .unwrap();
    let w = code_weight(dir.path(), &ds, "valid_loss.eval_loss");
    assert!(w > 0.6, "code's weight in the optimum: {w}");
}

#[test]
fn a_wandb_style_table_as_csv_and_as_parquet_goes_through_fit_and_optimize() {
    use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
    let dir = tempfile::tempdir().unwrap();
    let rs = runs();
    let mut csv = String::from("Name,config.mix.web,config.mix.code,config.mix.books,eval/loss,State\n");
    for (id, w, m) in &rs {
        csv += &format!("{id},{},{},{},{m},finished\n", w[0], w[1], w[2]);
    }
    let c = dir.path().join("wandb.csv");
    std::fs::write(&c, csv).unwrap();
    let mut cols: Vec<(String, ArrayRef)> =
        vec![("run".into(), Arc::new(StringArray::from(rs.iter().map(|r| r.0.clone()).collect::<Vec<_>>())))];
    for (j, d) in DOMS.iter().enumerate() {
        cols.push((
            format!("config.mix.{d}"),
            Arc::new(Float64Array::from(rs.iter().map(|r| r.1[j]).collect::<Vec<_>>())),
        ));
    }
    cols.push(("eval/loss".into(), Arc::new(Float64Array::from(rs.iter().map(|r| r.2).collect::<Vec<_>>()))));
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let pq_path = dir.path().join("wandb-export.parquet");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&pq_path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    for (table, name) in [(c, "csv.parquet"), (pq_path, "parquet.parquet")] {
        let ds: PathBuf = dir.path().join(name);
        collect::run(&collect::Args::parse_from([
            "collect",
            "--import-table",
            &s(&table),
            "--weight-prefix",
            "config.mix.",
            "--metric",
            "eval/loss",
            "--output",
            &s(&ds),
        ]))
        .unwrap();
        let w = code_weight(dir.path(), &ds, "valid_loss.eval_loss");
        assert!(w > 0.6, "{name}: code's weight in the optimum: {w}");
    }
}

/// A wide table at the runs' end and its history (every evaluation), as a W&B export has them,
/// through collect --import-table --import-history → fit --at-tokens: the law is fitted on the
/// imported curves as on collected ones. Domain `web`'s loss after t tokens at weight w of web
/// is 3 − w + (0.4 + 1.2w)·(t/8000)^−0.5: least web is best at the end, most web at 16×.
#[test]
fn an_imported_history_fits_at_a_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let loss = |w: f64, t: f64| 3.0 - w + (0.4 + 1.2 * w) * (t / 8000.0).powf(-0.5);
    let mut table = String::from("run,tokens,steps,weight.web,weight.code,valid_loss.web\n");
    let mut history = String::from("run,step,tokens,lr,valid_loss.web\n");
    for i in 0..30 {
        let w = 0.05 + 0.9 * i as f64 / 29.0;
        for (s, t) in [2000u64, 3000, 4000, 5000, 6000, 8000].iter().enumerate() {
            history += &format!("r{i},{},{t},0.001,{}\n", s + 1, loss(w, *t as f64));
        }
        table += &format!("r{i},8000,6,{w},{},{}\n", 1.0 - w, loss(w, 8000.0));
    }
    let (tp, hp) = (dir.path().join("table.csv"), dir.path().join("history.csv"));
    std::fs::write(&tp, table).unwrap();
    std::fs::write(&hp, history).unwrap();
    let ds = dir.path().join("dataset.parquet");
    collect::run(&collect::Args::parse_from([
        "collect",
        "--import-table",
        &s(&tp),
        "--import-history",
        &s(&hp),
        "--output",
        &s(&ds),
    ]))
    .unwrap();
    let out = dir.path().join("far");
    fit::run(&fit::Args::parse_from([
        "fit",
        "--dataset",
        &s(&ds),
        "--target",
        "valid_loss.web",
        "--regressor",
        "gp",
        "--output",
        &s(&out),
        "--at-tokens",
        "128000",
    ]))
    .unwrap();
    let saved = regmix_regress::SavedFit::load(&out).unwrap();
    let regmix_regress::Model::Horizon(law) = &saved.model else { panic!("not a horizon model") };
    assert!((law.laws[0].beta - 0.5).abs() < 0.02, "β = {}", law.laws[0].beta);
    let h = regmix_regress::predict_many(&saved.model, &[vec![0.1, 0.9], vec![0.9, 0.1]]).unwrap();
    assert!((h[1] - loss(0.9, 128000.0)).abs() < 0.02, "at 16× most web: {} vs {}", h[1], loss(0.9, 128000.0));
}
