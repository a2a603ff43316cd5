//! `collect`: one row per usable proxy run — its mixture weights and validation losses — in
//! `dataset.parquet`, the regression data for `fit`. Also imports the paper's published
//! results (mixture CSV + loss CSV) into the same schema.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use regmix_core::columns::{self, VALID_LOSS};
use regmix_core::run::{RunDir, RunStatus};
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

/// The `status` of a dataset row imported from published results (not a run of ours).
pub const IMPORTED: &str = "imported";

/// The collected rows before writing.
pub struct Dataset {
    pub domains: Vec<String>,
    pub eval_domains: Vec<String>,
    pub ids: Vec<u32>,
    pub tokens: Vec<u64>,
    pub steps: Vec<u64>,
    /// The run's final status ([`RunStatus::as_str`]), or [`IMPORTED`].
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
    let _lock = regmix_core::lock::Lock::output(&args.output, &args.output.display().to_string())?;
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
                let x: f64 = s.parse().with_context(|| format!("{}: row {}, field `{}` ({name})", loss_csv.display(), r + 1, &h[*i]))?;
                if !(x.is_finite() && x >= 0.0) {
                    bail!("{}: row {}, field `{}`: {x} is not a loss (finite and not negative)", loss_csv.display(), r + 1, &h[*i]);
                }
                Some(x)
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
                ds.status.push(IMPORTED.to_string());
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
/// (columns, types, evaluation domains), then polars reads only the columns needed and each run
/// is reduced to its final status and its last complete evaluation (or the one at `step`).
pub fn collect_runs(runs: &Path, mixtures: &Mixtures, step: Option<u64>) -> Result<Dataset> {
    let mut ds = Dataset::empty(mixtures.domains.clone(), vec![]);
    let mut left_out: Vec<(u32, String)> = Vec::new();
    let pb = progress::bar(mixtures.len() as u64, "collect");
    let mut files: Vec<(u32, PathBuf)> = Vec::new();
    // Each run's settings less its mixture, to check that all the runs were trained alike.
    let mut settings: Vec<(u32, serde_json::Value)> = Vec::new();
    for (id, w) in mixtures.ids.iter().zip(&mixtures.weights) {
        pb.inc(1);
        let path = RunDir::of(runs, *id as u64).metrics();
        if !path.exists() {
            left_out.push((*id, "missing".to_string()));
            continue;
        }
        let (lists, md) = check_parquet(&path, Schema::get("run_metrics"))?;
        let evals = lists.get("domain").cloned().unwrap_or_default();
        if ds.eval_domains.is_empty() {
            ds.eval_domains = evals;
        } else if ds.eval_domains != evals {
            bail!("{}: evaluation domains {evals:?} differ from other runs' {:?}", path.display(), ds.eval_domains);
        }
        settings.push((*id, check_run_is_mixture(&path, &md, *id, &mixtures.domains, w)?));
        files.push((*id, path));
    }
    let finals = if files.is_empty() { HashMap::new() } else { scan_finals(&files, &ds.eval_domains, step)? };
    let weights: HashMap<u32, &Vec<f64>> = mixtures.ids.iter().copied().zip(&mixtures.weights).collect();
    // `files` is in the mixtures' order, less the missing runs.
    for (id, path) in &files {
        let w = weights[id];
        let f = finals.get(path).with_context(|| format!("{}: no rows", path.display()))?;
        if f.status == RunStatus::Diverged {
            left_out.push((*id, RunStatus::Diverged.as_str().to_string()));
            continue;
        }
        if step.is_none() && f.status != RunStatus::Finished {
            left_out.push((*id, "unfinished".to_string()));
            continue;
        }
        let Some(e) = &f.eval else {
            let at = step.map(|s| format!(" at step {s}")).unwrap_or_default();
            left_out.push((*id, if f.evaluated { format!("non-finite final evaluation{at}") } else { format!("no evaluation{at}") }));
            continue;
        };
        ds.ids.push(*id);
        ds.tokens.push(e.tokens);
        ds.steps.push(e.step);
        ds.status.push(f.status.as_str().to_string());
        ds.weights.push(w.clone());
        ds.losses.push(e.losses.iter().map(|l| Some(*l)).collect());
    }
    pb.finish_and_clear();
    // The runs that go into the dataset must have been trained alike (a diverged run, left out,
    // may have had another learning rate).
    settings.retain(|(id, _)| ds.ids.contains(id));
    check_runs_alike(runs, &settings)?;
    if !left_out.is_empty() {
        log::warn!("left out {} runs: {}", left_out.len(), runs_by_reason(left_out));
    }
    if ds.ids.is_empty() {
        bail!("no usable run in {} ({} mixtures)", runs.display(), mixtures.len());
    }
    Ok(ds)
}

/// Checks that the run in `path` is of mixture `id` with the mixtures file's weights `w` (over
/// `domains`), from what the run recorded: the folder name, the mixtures file and the run
/// must agree. Returns the run's settings less the mixture.
fn check_run_is_mixture(path: &Path, md: &HashMap<String, String>, id: u32, domains: &[String], w: &[f64]) -> Result<serde_json::Value> {
    let recorded = md.get("regmix.mixture_id").map(String::as_str).unwrap_or("");
    if recorded != id.to_string() {
        bail!("{}: the run is of mixture {recorded} (regmix.mixture_id), not {id}: a metrics file in another run's folder", path.display());
    }
    let spec: serde_json::Value = serde_json::from_str(md.get("regmix.run_spec").map(String::as_str).unwrap_or("null"))
        .with_context(|| format!("{}: regmix.run_spec is not JSON", path.display()))?;
    let (Some(doms), Some(ws)) = (spec["domains"].as_array(), spec["weights"].as_array()) else {
        bail!("{}: regmix.run_spec has no domains and weights", path.display());
    };
    for (d, x) in domains.iter().zip(w) {
        let trained = doms.iter().position(|v| v.as_str() == Some(d)).and_then(|i| ws.get(i)).and_then(|v| v.as_f64()).unwrap_or(0.0);
        if (trained - x).abs() > 1e-9 {
            bail!(
                "{}: mixture {id} was trained with {} = {trained}, but the mixtures file gives {x}: the runs were trained on another mixtures file",
                path.display(),
                columns::wide(columns::WEIGHT, d)
            );
        }
    }
    let mut rest = spec;
    if let Some(o) = rest.as_object_mut() {
        o.remove("mixture_id");
        o.remove("weights");
    }
    Ok(rest)
}

/// Every run must have been trained with the same settings (tokens, model, schedule, seed,
/// shards): a regression over runs of different lengths or corpora fits the difference, not
/// the mixtures. The error names the groups and what differs.
fn check_runs_alike(runs: &Path, settings: &[(u32, serde_json::Value)]) -> Result<()> {
    let Some((first_id, first)) = settings.first() else { return Ok(()) };
    let odd: Vec<(u32, Vec<String>)> = settings
        .iter()
        .filter(|(_, s)| s != first)
        .map(|(id, s)| (*id, regmix_core::json::differences(first, s)))
        .collect();
    if odd.is_empty() {
        return Ok(());
    }
    let ids: Vec<(u32, String)> = odd.iter().map(|(id, d)| (*id, d.join("; "))).collect();
    bail!(
        "{}: {} runs were trained with other settings than run {first_id}: {}\ncollect only runs of one configuration (another --output for proxy-train, or --retrain)",
        runs.display(),
        odd.len(),
        runs_by_reason(ids)
    )
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
    status: RunStatus,
    /// Whether the run has an evaluation to use (at `step`, or any), finite or not.
    evaluated: bool,
    eval: Option<Eval>,
}

struct Eval {
    step: u64,
    tokens: u64,
    losses: Vec<f64>,
}

/// Each run's file read with polars' Parquet reader, only the columns used (step, tokens,
/// status and the validation losses), in parallel over the files: per file, the status at
/// its last step, and the last row (or the row at `step`) whose every validation loss is
/// finite.
fn scan_finals(files: &[(u32, PathBuf)], evals: &[String], step: Option<u64>) -> Result<HashMap<PathBuf, Final>> {
    use rayon::prelude::*;
    let loss: Vec<String> = columns::wide_all(VALID_LOSS, evals);
    let finals: Vec<(PathBuf, Final)> = files
        .par_iter()
        .map(|(_, path)| Ok((path.clone(), final_of(path, &loss, step)?)))
        .collect::<Result<_>>()?;
    Ok(finals.into_iter().collect())
}

fn final_of(path: &Path, loss: &[String], step: Option<u64>) -> Result<Final> {
    use polars::prelude::*;
    let polars_err = |e: PolarsError| anyhow::anyhow!("{}: {e}", path.display());
    let file = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut wanted = vec!["step".to_string(), "tokens".to_string(), "status".to_string()];
    wanted.extend(loss.iter().cloned());
    let df = ParquetReader::new(file).with_columns(Some(wanted)).finish().map_err(polars_err)?;
    let steps: Vec<Option<u64>> = df.column("step").and_then(|c| c.u64().map(|a| (0..a.len()).map(|i| a.get(i)).collect())).map_err(polars_err)?;
    let tokens = df.column("tokens").and_then(|c| c.u64().cloned()).map_err(polars_err)?;
    let status = df.column("status").and_then(|c| c.str().cloned()).map_err(polars_err)?;
    let losses: Vec<Float64Chunked> = loss.iter().map(|l| df.column(l).and_then(|c| c.f64().cloned())).collect::<PolarsResult<_>>().map_err(polars_err)?;
    // Rows in step order (the writer writes them so; a file edited by hand may not be).
    let mut order: Vec<usize> = (0..df.height()).collect();
    order.sort_by_key(|&r| steps[r]);
    let Some(&last) = order.last() else { bail!("{}: no rows", path.display()) };
    let st = RunStatus::parse(status.get(last).unwrap_or_default(), path, last)?;
    for (c, name) in losses.iter().zip(loss) {
        if let Some(r) = (0..c.len()).find(|&r| c.get(r).is_some_and(|v| v < 0.0)) {
            bail!("{}: row {r}, field `{name}`: {} is negative; a cross-entropy is not", path.display(), c.get(r).unwrap_or_default());
        }
    }
    // The evaluation used: the one at `step`, else the last (a row with any loss). It is used
    // only if every domain's loss there is finite: an earlier evaluation never stands in for a
    // final one that failed.
    let evaluated = |r: usize| losses.iter().any(|c| c.get(r).is_some());
    let chosen = match step {
        Some(s) => order.iter().copied().find(|&r| steps[r] == Some(s) && evaluated(r)),
        None => order.iter().rev().copied().find(|&r| evaluated(r)),
    };
    let eval = chosen.filter(|&r| losses.iter().all(|c| c.get(r).is_some_and(f64::is_finite))).map(|r| Eval {
        step: steps[r].unwrap_or(0),
        tokens: tokens.get(r).unwrap_or(0),
        losses: losses.iter().map(|c| c.get(r).unwrap_or(f64::NAN)).collect(),
    });
    Ok(Final { status: st, eval, evaluated: chosen.is_some() })
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
