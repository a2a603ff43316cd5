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
    fit::run(&fit::Args::parse_from(["fit", "--dataset", &s(dataset), "--target", target, "--regressor", "gp", "--output", &s(&fit_dir)])).unwrap();
    let prior = dir.join("prior.json");
    std::fs::write(&prior, r#"{"weights": {"web": 0.34, "code": 0.33, "books": 0.33}}"#).unwrap();
    let out = dir.join(format!("opt-{}", dataset.file_stem().unwrap().to_str().unwrap()));
    optimize::run(&optimize::Args::parse_from(["optimize", "--fit", &s(&fit_dir), "--prior", &s(&prior), "--output", &s(&out), "--samples", "20000", "--top-k", "20"])).unwrap();
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
    collect::run(&collect::Args::parse_from(["collect", "--import-olmix", &s(&r), &s(&m), "--output", &s(&ds)])).unwrap();
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
    let mut cols: Vec<(String, ArrayRef)> = vec![("run".into(), Arc::new(StringArray::from(rs.iter().map(|r| r.0.clone()).collect::<Vec<_>>())))];
    for (j, d) in DOMS.iter().enumerate() {
        cols.push((format!("config.mix.{d}"), Arc::new(Float64Array::from(rs.iter().map(|r| r.1[j]).collect::<Vec<_>>()))));
    }
    cols.push(("eval/loss".into(), Arc::new(Float64Array::from(rs.iter().map(|r| r.2).collect::<Vec<_>>()))));
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let pq_path = dir.path().join("wandb-export.parquet");
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&pq_path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    for (table, name) in [(c, "csv.parquet"), (pq_path, "parquet.parquet")] {
        let ds: PathBuf = dir.path().join(name);
        collect::run(&collect::Args::parse_from([
            "collect", "--import-table", &s(&table), "--weight-prefix", "config.mix.", "--metric", "eval/loss", "--output", &s(&ds),
        ]))
        .unwrap();
        let w = code_weight(dir.path(), &ds, "valid_loss.eval_loss");
        assert!(w > 0.6, "{name}: code's weight in the optimum: {w}");
    }
}
