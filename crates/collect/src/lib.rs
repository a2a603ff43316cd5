//! `collect`: one row per usable proxy run — its mixture weights and validation losses — in
//! `dataset.parquet`, the regression data for `fit`. Also imports the paper's published
//! results (mixture CSV + loss CSV) into the same schema.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use regmix_core::schema::{domains_and_eval, Schema};
use regmix_core::table::{batch, col, read_parquet, write_parquet};
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

/// Reads every run's metrics through the run_metrics contract.
pub fn collect_runs(runs: &Path, mixtures: &Mixtures, step: Option<u64>) -> Result<Dataset> {
    let mut ds = Dataset::empty(mixtures.domains.clone(), vec![]);
    let mut left_out: Vec<String> = Vec::new();
    let pb = progress::bar(mixtures.len() as u64, "collect");
    for (id, w) in mixtures.ids.iter().zip(&mixtures.weights) {
        pb.inc(1);
        let path = runs.join(id.to_string()).join("metrics.parquet");
        if !path.exists() {
            left_out.push(format!("{id} (missing)"));
            continue;
        }
        let t = read_parquet(&path, Schema::get("run_metrics"))?;
        let evals = t.list("domain")?.to_vec();
        if ds.eval_domains.is_empty() {
            ds.eval_domains = evals.clone();
        } else if ds.eval_domains != evals {
            bail!("{}: evaluation domains {evals:?} differ from other runs' {:?}", path.display(), ds.eval_domains);
        }
        let status = t.str("status")?;
        let steps = t.u64("step")?;
        let last = t.rows().checked_sub(1).with_context(|| format!("{}: no rows", path.display()))?;
        let run_status = status.value(last).to_string();
        if run_status == "diverged" {
            left_out.push(format!("{id} (diverged)"));
            continue;
        }
        let cols: Vec<Vec<f64>> = evals.iter().map(|d| t.f64_values(&format!("valid_loss.{d}"))).collect::<regmix_core::Result<_>>()?;
        let has_eval = |r: usize| cols.iter().all(|c| c[r].is_finite());
        let row = match step {
            Some(s) => (0..t.rows()).find(|&r| steps.value(r) == s && has_eval(r)),
            None => {
                if run_status != "finished" {
                    left_out.push(format!("{id} (unfinished)"));
                    continue;
                }
                (0..t.rows()).rev().find(|&r| has_eval(r))
            }
        };
        let Some(r) = row else {
            left_out.push(format!("{id} (no finite evaluation{})", step.map(|s| format!(" at step {s}")).unwrap_or_default()));
            continue;
        };
        ds.ids.push(*id);
        ds.tokens.push(t.u64("tokens")?.value(r));
        ds.steps.push(steps.value(r));
        ds.status.push(run_status);
        ds.weights.push(w.clone());
        ds.losses.push(cols.iter().map(|c| Some(c[r])).collect());
    }
    pb.finish_and_clear();
    if !left_out.is_empty() {
        log::warn!("left out {} runs: {}", left_out.len(), left_out.join(", "));
    }
    if ds.ids.is_empty() {
        bail!("no usable run in {} ({} mixtures)", runs.display(), mixtures.len());
    }
    Ok(ds)
}
