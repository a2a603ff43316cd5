//! `collect`: one row per usable proxy run — its mixture weights and validation losses — in
//! `dataset.parquet`, the regression data for `fit`. Also imports the paper's published
//! results (mixture CSV + loss CSV) into the same schema.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use regmix_core::schema::{domains_and_eval, Schema};
use regmix_core::table::{batch, check_parquet, col, write_parquet};
use regmix_core::{progress, Provenance};
use regmix_mixture::io::{domain_from_key, read_paper_csv};
use regmix_mixture::Mixtures;

/// Gather proxy runs into the regression dataset.
///
/// Reads every runs/<mixture_id>/metrics.parquet, takes the run's final evaluation (or the one
/// at --step), joins the mixture's weights, and writes one row per run. Runs that are missing,
/// unfinished or diverged are left out with a warning naming them; it fails only if none is
/// usable. --import-regmix-csv turns the paper's published CSV pair into the same schema.
#[derive(Parser, Debug, Clone)]
#[command(name = "collect", version, term_width = regmix_core::cli::HELP_WIDTH)]
pub struct Args {
    /// The runs folder written by proxy-train (runs/<mixture_id>/metrics.parquet).
    #[arg(long, value_name = "DIR", requires = "mixtures", conflicts_with = "import_regmix_csv")]
    pub runs: Option<PathBuf>,
    /// The mixtures the runs trained on.
    #[arg(long, value_name = "FILE")]
    pub mixtures: Option<PathBuf>,
    /// Use the evaluation at this step instead of each run's last one.
    #[arg(long, value_name = "S")]
    pub step: Option<u64>,
    /// Import the paper's results instead: its mixture CSV (train_the_pile_<d> columns) and loss CSV (metric/the_pile_<d>_val_loss columns), joined on `index`.
    #[arg(long, num_args = 2, value_names = ["MIXTURES_CSV", "LOSSES_CSV"], required_unless_present = "runs")]
    pub import_regmix_csv: Vec<PathBuf>,
    /// Where to write dataset.parquet.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
}

/// The collected rows before writing.
pub struct Dataset {
    pub domains: Vec<String>,
    pub eval_domains: Vec<String>,
    pub ids: Vec<u32>,
    pub tokens: Vec<u64>,
    pub steps: Vec<u64>,
    pub status: Vec<String>,
    pub weights: Vec<Vec<f64>>,
    pub losses: Vec<Vec<Option<f64>>>,
}

impl Dataset {
    pub fn empty(domains: Vec<String>, eval_domains: Vec<String>) -> Self {
        Dataset { domains, eval_domains, ids: vec![], tokens: vec![], steps: vec![], status: vec![], weights: vec![], losses: vec![] }
    }

    pub fn write(&self, path: &Path, prov: &Provenance) -> Result<()> {
        let s = Schema::get("dataset");
        let lists = domains_and_eval(&self.domains, &self.eval_domains);
        let mut cols = vec![
            col::u32(self.ids.clone()),
            col::u64(self.tokens.clone()),
            col::u64(self.steps.clone()),
            col::str(&self.status),
        ];
        for j in 0..self.domains.len() {
            cols.push(col::f64(self.weights.iter().map(|w| w[j]).collect()));
        }
        for j in 0..self.eval_domains.len() {
            cols.push(col::f64_opt(self.losses.iter().map(|l| l[j]).collect()));
        }
        write_parquet(path, s, &lists, &batch(s, &lists, cols)?, &[], prov)?;
        Ok(())
    }
}

pub fn run(args: &Args) -> Result<()> {
    let prov = Provenance::from_env("collect", env!("CARGO_PKG_VERSION"));
    let ds = if !args.import_regmix_csv.is_empty() {
        import_paper(&args.import_regmix_csv[0], &args.import_regmix_csv[1])?
    } else {
        let mixtures = Mixtures::read_parquet(args.mixtures.as_ref().unwrap())?;
        collect_runs(args.runs.as_ref().unwrap(), &mixtures, args.step)?
    };
    ds.write(&args.output, &prov)?;
    log::info!(
        "wrote {} runs × {} domains, {} evaluation domains to {}",
        ds.ids.len(),
        ds.domains.len(),
        ds.eval_domains.len(),
        args.output.display()
    );
    Ok(())
}

/// Imports the paper's CSV pair into the dataset schema.
pub fn import_paper(mix_csv: &Path, loss_csv: &Path) -> Result<Dataset> {
    let m = read_paper_csv(mix_csv)?;
    let mut rdr = csv::Reader::from_path(loss_csv).with_context(|| format!("{}: cannot read", loss_csv.display()))?;
    let h = rdr.headers()?.clone();
    let idx = h.iter().position(|c| c == "index").with_context(|| format!("{}: no `index` column", loss_csv.display()))?;
    let loss_cols: Vec<(usize, String)> = h
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let d = c.strip_prefix("metric/")?.strip_suffix("_val_loss")?;
            Some((i, domain_from_key(d)))
        })
        .collect();
    if loss_cols.is_empty() {
        bail!("{}: no metric/<domain>_val_loss columns", loss_csv.display());
    }
    let mut by_id: HashMap<u32, Vec<Option<f64>>> = HashMap::new();
    for (r, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", loss_csv.display(), r + 1))?;
        let id: u32 = rec[idx].trim().parse().with_context(|| format!("{}: row {}, field `index`", loss_csv.display(), r + 1))?;
        let mut v = Vec::new();
        for (i, name) in &loss_cols {
            let s = rec[*i].trim();
            v.push(if s.is_empty() {
                None
            } else {
                Some(s.parse().with_context(|| format!("{}: row {}, field `{}` ({name})", loss_csv.display(), r + 1, &h[*i]))?)
            });
        }
        by_id.insert(id, v);
    }
    let mut ds = Dataset::empty(m.domains.clone(), loss_cols.iter().map(|(_, d)| d.clone()).collect());
    for (id, w) in m.ids.iter().zip(&m.weights) {
        match by_id.get(id) {
            Some(l) => {
                ds.ids.push(*id);
                ds.tokens.push(0);
                ds.steps.push(0);
                ds.status.push("imported".into());
                ds.weights.push(w.clone());
                ds.losses.push(l.clone());
            }
            None => log::warn!("{}: mixture {id} has no losses in {}; left out", mix_csv.display(), loss_csv.display()),
        }
    }
    if ds.ids.is_empty() {
        bail!("no mixture of {} has losses in {}", mix_csv.display(), loss_csv.display());
    }
    log::info!("imported {} runs from {} and {}", ds.ids.len(), mix_csv.display(), loss_csv.display());
    Ok(ds)
}

/// Reads every run's metrics: each file's footer is checked against the run_metrics contract
/// (columns, types, evaluation domains), then one lazy polars scan over all of them reads
/// only the columns needed and reduces each run to its final status and its last complete
/// evaluation (or the one at `step`).
pub fn collect_runs(runs: &Path, mixtures: &Mixtures, step: Option<u64>) -> Result<Dataset> {
    let mut ds = Dataset::empty(mixtures.domains.clone(), vec![]);
    let mut left_out: Vec<(u32, String)> = Vec::new();
    let pb = progress::bar(mixtures.len() as u64, "collect");
    let mut files: Vec<(u32, PathBuf)> = Vec::new();
    for id in &mixtures.ids {
        pb.inc(1);
        let path = runs.join(id.to_string()).join("metrics.parquet");
        if !path.exists() {
            left_out.push((*id, "missing".to_string()));
            continue;
        }
        let (lists, _) = check_parquet(&path, Schema::get("run_metrics"))?;
        let evals = lists.get("domain").cloned().unwrap_or_default();
        if ds.eval_domains.is_empty() {
            ds.eval_domains = evals;
        } else if ds.eval_domains != evals {
            bail!("{}: evaluation domains {evals:?} differ from other runs' {:?}", path.display(), ds.eval_domains);
        }
        files.push((*id, path));
    }
    let finals = if files.is_empty() { HashMap::new() } else { scan_finals(&files, &ds.eval_domains, step)? };
    let weights: HashMap<u32, &Vec<f64>> = mixtures.ids.iter().copied().zip(&mixtures.weights).collect();
    // `files` is in the mixtures' order, less the missing runs.
    for (id, path) in &files {
        let w = weights[id];
        let f = finals.get(path).with_context(|| format!("{}: no rows", path.display()))?;
        if f.status == "diverged" {
            left_out.push((*id, "diverged".to_string()));
            continue;
        }
        if step.is_none() && f.status != "finished" {
            left_out.push((*id, "unfinished".to_string()));
            continue;
        }
        let Some(e) = &f.eval else {
            left_out.push((*id, format!("no finite evaluation{}", step.map(|s| format!(" at step {s}")).unwrap_or_default())));
            continue;
        };
        ds.ids.push(*id);
        ds.tokens.push(e.tokens);
        ds.steps.push(e.step);
        ds.status.push(f.status.clone());
        ds.weights.push(w.clone());
        ds.losses.push(e.losses.iter().map(|l| Some(*l)).collect());
    }
    pb.finish_and_clear();
    if !left_out.is_empty() {
        log::warn!("left out {} runs: {}", left_out.len(), runs_by_reason(left_out));
    }
    if ds.ids.is_empty() {
        bail!("no usable run in {} ({} mixtures)", runs.display(), mixtures.len());
    }
    Ok(ds)
}

/// `3 (missing), 5–9 (unfinished), …`: runs in id order, consecutive ids left out for the
/// same reason shown as one range, so a sweep half done is one line, not hundreds of ids.
fn runs_by_reason(mut runs: Vec<(u32, String)>) -> String {
    runs.sort();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < runs.len() {
        let (first, reason) = (runs[i].0, &runs[i].1);
        let mut j = i;
        while j + 1 < runs.len() && runs[j + 1].0 == runs[j].0 + 1 && runs[j + 1].1 == *reason {
            j += 1;
        }
        let last = runs[j].0;
        parts.push(if last == first { format!("{first} ({reason})") } else { format!("{first}–{last} ({reason})") });
        i = j + 1;
    }
    parts.join(", ")
}

/// A run as the scan sees it: the status of its last row and its chosen evaluation.
struct Final {
    status: String,
    eval: Option<Eval>,
}

struct Eval {
    step: u64,
    tokens: u64,
    losses: Vec<f64>,
}

/// One lazy polars query over all the runs' files (projection pushed down to the columns
/// used): per file, the status at the last step, and the last row (or the row at `step`)
/// whose every validation loss is finite.
fn scan_finals(files: &[(u32, PathBuf)], evals: &[String], step: Option<u64>) -> Result<HashMap<PathBuf, Final>> {
    use polars::prelude::*;
    let paths: Vec<PlRefPath> = files.iter().map(|(_, p)| PlRefPath::new(p.to_string_lossy().as_ref())).collect();
    let args = ScanArgsParquet { include_file_paths: Some("path".into()), ..Default::default() };
    let loss: Vec<String> = evals.iter().map(|e| format!("valid_loss.{e}")).collect();
    let lf = anyhow::Context::with_context(LazyFrame::scan_parquet_files(paths.into(), args), || format!("scanning {} metrics files", files.len()))?
        .sort(["path", "step"], SortMultipleOptions::default());
    let status = lf
        .clone()
        .group_by_stable([col("path")])
        .agg([col("status").last()])
        .collect()
        .map_err(|e| anyhow::anyhow!("reading the runs' status: {e}"))?;
    let mut usable = lit(true);
    for l in &loss {
        usable = usable.and(col(l.as_str()).is_finite().fill_null(lit(false)));
    }
    if let Some(s) = step {
        usable = usable.and(col("step").eq(lit(s)));
    }
    let mut last = vec![col("step").last(), col("tokens").last()];
    last.extend(loss.iter().map(|l| col(l.as_str()).last()));
    let chosen = lf.filter(usable).group_by_stable([col("path")]).agg(last).collect().map_err(|e| anyhow::anyhow!("reading the runs' evaluations: {e}"))?;

    let strs = |df: &DataFrame, c: &str| -> Result<Vec<String>> {
        let ca = df.column(c)?.str()?;
        Ok((0..ca.len()).map(|i| ca.get(i).unwrap_or_default().to_string()).collect())
    };
    let mut out: HashMap<PathBuf, Final> = HashMap::new();
    for (p, s) in strs(&status, "path")?.into_iter().zip(strs(&status, "status")?) {
        out.insert(PathBuf::from(p), Final { status: s, eval: None });
    }
    let u64s = |c: &str| -> Result<Vec<u64>> {
        let ca = chosen.column(c)?.u64()?;
        Ok((0..ca.len()).map(|i| ca.get(i).unwrap_or(0)).collect())
    };
    let (steps, tokens) = (u64s("step")?, u64s("tokens")?);
    let losses: Vec<Vec<f64>> =
        loss.iter()
            .map(|l| {
                let ca = chosen.column(l)?.f64()?;
                Ok((0..ca.len()).map(|i| ca.get(i).unwrap_or(f64::NAN)).collect())
            })
            .collect::<Result<_>>()?;
    for (i, p) in strs(&chosen, "path")?.into_iter().enumerate() {
        if let Some(f) = out.get_mut(Path::new(&p)) {
            f.eval = Some(Eval { step: steps[i], tokens: tokens[i], losses: losses.iter().map(|c| c[i]).collect() });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod left_out_tests {
    use super::runs_by_reason;

    #[test]
    fn consecutive_runs_left_out_for_one_reason_are_one_range() {
        let runs = vec![(7, "missing".into()), (3, "diverged".into()), (5, "missing".into()), (6, "missing".into()), (8, "unfinished".into())];
        assert_eq!(runs_by_reason(runs), "3 (diverged), 5–7 (missing), 8 (unfinished)");
    }
}
