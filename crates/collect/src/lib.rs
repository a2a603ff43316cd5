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
pub mod import;

use regmix_core::trajectories::{self, Point, Trajectories};
use regmix_core::{digest, progress, Provenance};
use regmix_mixture::io::{domain_from_key, read_paper_csv};
use regmix_mixture::Mixtures;
use regmix_spec::{RunSettings, RunSpec};

/// Gather proxy runs into the regression dataset.
///
/// Reads every runs/<mixture_id>/metrics.parquet, takes the run's final evaluation (or the one
/// at --step), joins the mixture's weights, and writes one row per run, and every evaluation
/// of those runs to the trajectories file beside it (what fit --at-tokens fits). Runs that are
/// missing, unfinished or diverged are left out with a warning naming them; it fails only if
/// none is usable. --targets reads a target-train folder the same way (each model's mixture
/// from its own run record), so targets can be scored with fit --evaluate.
/// --import-regmix-csv turns the paper's published CSV pair into the same schema.
#[derive(Parser, Debug, Clone)]
#[command(name = "collect", version, term_width = regmix_core::cli::HELP_WIDTH)]
pub struct Args {
    /// The runs folder written by proxy-train (runs/<mixture_id>/metrics.parquet).
    #[arg(long, value_name = "DIR", requires = "mixtures", conflicts_with_all = ["import_regmix_csv", "targets"])]
    pub runs: Option<PathBuf>,
    /// A target-train output folder instead (<name>/metrics.parquet per model; each model's
    /// mixture is read from its run record).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["import_regmix_csv", "mixtures"])]
    pub targets: Option<PathBuf>,
    /// The mixtures the runs trained on.
    #[arg(long, value_name = "FILE")]
    pub mixtures: Option<PathBuf>,
    /// Use the evaluation at this step instead of each run's last one.
    #[arg(long, value_name = "S")]
    pub step: Option<u64>,
    /// Import olmix's swarm files instead: ratios.csv (run_id or run, a column per domain) and
    /// metrics.csv (run_id or run, a column per metric), joined on the run id.
    #[arg(long, num_args = 2, value_names = ["RATIOS_CSV", "METRICS_CSV"], conflicts_with_all = ["runs", "targets", "import_regmix_csv", "import_table"])]
    pub import_olmix: Vec<PathBuf>,
    /// Import a wide table instead (CSV, or Parquet by extension; a W&B export): one row per run,
    /// weight columns <prefix><domain> (--weight-prefix), optional `tokens` and `steps` columns
    /// (where each row was measured), metric columns.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["runs", "targets", "import_regmix_csv"])]
    pub import_table: Option<PathBuf>,
    /// With --import-table: the runs' histories (CSV or Parquet: one row per evaluation, with
    /// run, step, tokens, optional lr and warmup, and the table's metric columns), written as
    /// the trajectories beside the dataset, so fit --at-tokens can fit them.
    #[arg(long, value_name = "FILE", requires = "import_table")]
    pub import_history: Option<PathBuf>,
    /// With --import-table: the prefix of the weight columns.
    #[arg(long, value_name = "PREFIX", default_value = "weight.", requires = "import_table")]
    pub weight_prefix: String,
    /// With --import-table: a metric column to import (repeatable) [default: every other column
    /// that is numeric in every row].
    #[arg(long, value_name = "COLUMN", requires = "import_table")]
    pub metric: Vec<String>,
    /// Import the paper's results instead: its mixture CSV (train_the_pile_<d> columns) and loss CSV (metric/the_pile_<d>_val_loss columns), joined on `index`.
    #[arg(long, num_args = 2, value_names = ["MIXTURES_CSV", "LOSSES_CSV"], required_unless_present_any = ["runs", "targets", "import_olmix", "import_table"])]
    pub import_regmix_csv: Vec<PathBuf>,
    /// Where to write dataset.parquet.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Where to write the trajectories of the runs [default: <output stem>.trajectories.parquet
    /// beside --output].
    #[arg(long, value_name = "FILE")]
    pub trajectories: Option<PathBuf>,
}

/// The `status` of a dataset row imported from published results (not a run of ours).
pub const IMPORTED: &str = "imported";

/// The collected rows before writing.
pub struct Dataset {
    pub domains: Vec<String>,
    pub eval_domains: Vec<String>,
    pub ids: Vec<u32>,
    /// The run's folder name (for imports, the row's id).
    pub runs: Vec<String>,
    pub tokens: Vec<u64>,
    pub steps: Vec<u64>,
    /// The run's final status ([`RunStatus::as_str`]), or [`IMPORTED`].
    pub status: Vec<String>,
    pub weights: Vec<Vec<f64>>,
    pub losses: Vec<Vec<Option<f64>>>,
    /// What every run was trained with, less its mixture (checked alike): `None` for imports.
    pub settings: Option<RunSettings>,
}

impl Dataset {
    pub fn empty(domains: Vec<String>, eval_domains: Vec<String>) -> Self {
        Dataset {
            domains,
            eval_domains,
            ids: vec![],
            runs: vec![],
            tokens: vec![],
            steps: vec![],
            status: vec![],
            weights: vec![],
            losses: vec![],
            settings: None,
        }
    }

    /// Writes the dataset; `trajectories` names the trajectories file written beside it, whose
    /// sha256 goes into the metadata so that fit can tell it belongs to these rows.
    pub fn write(&self, path: &Path, trajectories: Option<&Path>, prov: &Provenance) -> Result<()> {
        let s = Schema::get("dataset");
        let lists = domains_and_eval(&self.domains, &self.eval_domains);
        let (name, sha) = match trajectories {
            Some(p) => {
                (p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string(), digest::sha256_file(p)?)
            }
            None => (String::new(), String::new()),
        };
        let md = vec![
            (regmix_core::keys::TRAJECTORIES.to_string(), name),
            ("regmix.trajectories_sha256".to_string(), sha),
            (
                regmix_core::keys::RUN_SETTINGS.to_string(),
                self.settings.as_ref().map_or(serde_json::Value::Null, RunSettings::to_value).to_string(),
            ),
        ];
        let mut cols = vec![
            col::u32(self.ids.clone()),
            col::str(&self.runs),
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
        write_parquet(path, s, &lists, &batch(s, &lists, cols)?, &md, prov)?;
        Ok(())
    }

    fn push(&mut self, id: u32, run: String, tokens: u64, steps: u64, status: &str, w: Vec<f64>, l: Vec<Option<f64>>) {
        self.ids.push(id);
        self.runs.push(run);
        self.tokens.push(tokens);
        self.steps.push(steps);
        self.status.push(status.to_string());
        self.weights.push(w);
        self.losses.push(l);
    }
}

pub fn run(args: &Args) -> Result<()> {
    let prov = Provenance::from_env("collect", env!("CARGO_PKG_VERSION"));
    // The dataset and its trajectories never replace (or sit inside) what collect reads.
    let mut inputs: Vec<(&str, &Path)> = Vec::new();
    inputs.extend(args.runs.as_deref().map(|p| ("--runs", p)));
    inputs.extend(args.targets.as_deref().map(|p| ("--targets", p)));
    inputs.extend(args.mixtures.as_deref().map(|p| ("--mixtures", p)));
    inputs.extend(args.import_table.as_deref().map(|p| ("--import-table", p)));
    inputs.extend(args.import_history.as_deref().map(|p| ("--import-history", p)));
    inputs.extend(args.import_olmix.iter().map(|p| ("--import-olmix", p.as_path())));
    inputs.extend(args.import_regmix_csv.iter().map(|p| ("--import-regmix-csv", p.as_path())));
    regmix_core::atomic::refuse_overlap(&args.output, "--output", &inputs)?;
    if let Some(t) = &args.trajectories {
        regmix_core::atomic::refuse_overlap(t, "--trajectories", &inputs)?;
    }
    let _lock = regmix_core::lock::Lock::output(&args.output, &args.output.display().to_string())?;
    let (ds, traj) = if !args.import_regmix_csv.is_empty() {
        (import_paper(&args.import_regmix_csv[0], &args.import_regmix_csv[1])?, None)
    } else if !args.import_olmix.is_empty() {
        (import::import_olmix(&args.import_olmix[0], &args.import_olmix[1])?, None)
    } else if let Some(t) = &args.import_table {
        let ds = import::import_table(t, &args.weight_prefix, &args.metric)?;
        let traj = args.import_history.as_ref().map(|h| import::import_history(h, &ds)).transpose()?;
        (ds, traj)
    } else if let Some(dir) = &args.targets {
        let (ds, t) = collect_targets(dir, args.step)?;
        (ds, Some(t))
    } else {
        let mixtures = Mixtures::read_parquet(args.mixtures.as_ref().unwrap())?;
        let (ds, t) = collect_runs(args.runs.as_ref().unwrap(), &mixtures, args.step)?;
        (ds, Some(t))
    };
    // The trajectories first: the dataset records their hash, so a crash between the two
    // leaves a pair that fit refuses, never one it mixes.
    let traj_path =
        traj.as_ref().map(|_| args.trajectories.clone().unwrap_or_else(|| trajectories::path_for(&args.output)));
    if let (Some(t), Some(p)) = (&traj, &traj_path) {
        t.write(p, &prov)?;
        log::info!("wrote {} evaluations of {} runs to {}", t.points.len(), ds.ids.len(), p.display());
    }
    ds.write(&args.output, traj_path.as_deref(), &prov)?;
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
    let idx =
        h.iter().position(|c| c == "index").with_context(|| format!("{}: no `index` column", loss_csv.display()))?;
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
        let id: u32 =
            rec[idx].trim().parse().with_context(|| format!("{}: row {}, field `index`", loss_csv.display(), r + 1))?;
        let mut v = Vec::new();
        for (i, name) in &loss_cols {
            let s = rec[*i].trim();
            v.push(if s.is_empty() {
                None
            } else {
                let x: f64 = s
                    .parse()
                    .with_context(|| format!("{}: row {}, field `{}` ({name})", loss_csv.display(), r + 1, &h[*i]))?;
                if !(x.is_finite() && x >= 0.0) {
                    bail!(
                        "{}: row {}, field `{}`: {x} is not a loss (finite and not negative)",
                        loss_csv.display(),
                        r + 1,
                        &h[*i]
                    );
                }
                Some(x)
            });
        }
        by_id.insert(id, v);
    }
    let mut ds = Dataset::empty(m.domains.clone(), loss_cols.iter().map(|(_, d)| d.clone()).collect());
    for (id, w) in m.ids.iter().zip(&m.weights) {
        match by_id.get(id) {
            Some(l) => ds.push(*id, id.to_string(), 0, 0, IMPORTED, w.clone(), l.clone()),
            None => log::warn!("{}: mixture {id} has no losses in {}; left out", mix_csv.display(), loss_csv.display()),
        }
    }
    if ds.ids.is_empty() {
        bail!("no mixture of {} has losses in {}", mix_csv.display(), loss_csv.display());
    }
    log::info!("imported {} runs from {} and {}", ds.ids.len(), mix_csv.display(), loss_csv.display());
    Ok(ds)
}

/// A run to read: the dataset's id and name for it, its metrics file, the weights it must
/// have been trained on (over the dataset's domains) and the stream id it must record.
struct RunRef {
    id: u32,
    name: String,
    path: PathBuf,
    weights: Vec<f64>,
    recorded_id: u64,
}

/// Reads every proxy run of `mixtures` under `runs` (see [`collect`]).
pub fn collect_runs(runs: &Path, mixtures: &Mixtures, step: Option<u64>) -> Result<(Dataset, Trajectories)> {
    let refs: Vec<RunRef> = mixtures
        .ids
        .iter()
        .zip(&mixtures.weights)
        .map(|(id, w)| RunRef {
            id: *id,
            name: id.to_string(),
            path: RunDir::of(runs, *id as u64).metrics(),
            weights: w.clone(),
            recorded_id: *id as u64,
        })
        .collect();
    collect(runs, mixtures.domains.clone(), refs, step)
}

/// Reads a target-train output folder: every `<name>/metrics.parquet` in it, in name order
/// (the dataset's mixture ids are that order), each model's mixture from its own run record.
pub fn collect_targets(dir: &Path, step: Option<u64>) -> Result<(Dataset, Trajectories)> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot read the targets folder", dir.display()))?;
    let mut names: Vec<String> = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("{}: cannot read the targets folder", dir.display()))?;
        if e.path().join("metrics.parquet").is_file() {
            if let Some(n) = e.file_name().to_str() {
                names.push(n.to_string());
            }
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("{}: no <name>/metrics.parquet in it: not a target-train output folder", dir.display());
    }
    let mut domains: Option<Vec<String>> = None;
    let mut refs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let dir = RunDir::new(dir.join(name));
        let path = dir.metrics();
        let (_, md) = check_parquet(&path, Schema::get("run_metrics"))?;
        let RunSpec { domains: doms, weights: ws, .. } = RunSpec::from_metadata(&md, &path)?;
        match &domains {
            None => domains = Some(doms),
            Some(d) if *d != doms => {
                bail!("{}: trained on domains {doms:?}, the other targets on {d:?}", path.display())
            }
            Some(_) => {}
        }
        refs.push(RunRef {
            id: i as u32,
            name: name.clone(),
            path,
            weights: ws,
            recorded_id: regmix_core::run::named_stream_id(name),
        });
    }
    collect(dir, domains.expect("at least one target"), refs, step)
}

/// Reads every run's metrics: each file's footer is checked against the run_metrics contract
/// (columns, types, evaluation domains) and the run against the mixture it should be, then
/// polars reads only the columns needed and each run is reduced to its final status, its last
/// complete evaluation (or the one at `step`) and its trajectory.
fn collect(root: &Path, domains: Vec<String>, refs: Vec<RunRef>, step: Option<u64>) -> Result<(Dataset, Trajectories)> {
    let mut ds = Dataset::empty(domains.clone(), vec![]);
    let mut left_out: Vec<(u32, String)> = Vec::new();
    let pb = progress::bar(refs.len() as u64, "collect");
    let mut files: Vec<(usize, u64)> = Vec::new();
    // Each run's settings less its mixture, to check that all the runs were trained alike.
    let mut settings: Vec<(u32, RunSettings)> = Vec::new();
    for (k, r) in refs.iter().enumerate() {
        pb.inc(1);
        if !r.path.exists() {
            left_out.push((r.id, "missing".to_string()));
            continue;
        }
        let (lists, md) = check_parquet(&r.path, Schema::get("run_metrics"))?;
        let evals = lists.get("domain").cloned().unwrap_or_default();
        if ds.eval_domains.is_empty() {
            ds.eval_domains = evals;
        } else if ds.eval_domains != evals {
            bail!("{}: evaluation domains {evals:?} differ from other runs' {:?}", r.path.display(), ds.eval_domains);
        }
        let rest = check_run_is_mixture(&r.path, &md, r.recorded_id, &domains, &r.weights)?;
        let warmup = rest.train.warmup_steps;
        settings.push((r.id, rest));
        files.push((k, warmup));
    }
    let finals = scan_finals(&refs, &files, &ds.eval_domains, step)?;
    let mut points = Vec::new();
    // `files` is in the runs' order, less the missing runs.
    for ((k, _), f) in files.iter().zip(finals) {
        let r = &refs[*k];
        if f.status == RunStatus::Diverged {
            left_out.push((r.id, RunStatus::Diverged.as_str().to_string()));
            continue;
        }
        if step.is_none() && f.status != RunStatus::Finished {
            left_out.push((r.id, "unfinished".to_string()));
            continue;
        }
        let Some(e) = &f.eval else {
            let at = step.map(|s| format!(" at step {s}")).unwrap_or_default();
            left_out.push((
                r.id,
                if f.evaluated { format!("non-finite final evaluation{at}") } else { format!("no evaluation{at}") },
            ));
            continue;
        };
        ds.push(r.id, r.name.clone(), e.tokens, e.step, f.status.as_str(), r.weights.clone(), e.losses.clone());
        points.extend(f.points.into_iter().map(|p| Point { mixture_id: r.id, ..p }));
    }
    pb.finish_and_clear();
    drop_unevaluated(&mut ds, &mut points);
    // The runs that go into the dataset must have been trained alike (a diverged run, left out,
    // may have had another learning rate).
    settings.retain(|(id, _)| ds.ids.contains(id));
    check_runs_alike(root, &settings)?;
    if !left_out.is_empty() {
        log::warn!("left out {} runs: {}", left_out.len(), runs_by_reason(left_out));
    }
    if ds.ids.is_empty() {
        bail!("no usable run in {} ({} runs)", root.display(), refs.len());
    }
    ds.settings = settings.into_iter().next().map(|(_, s)| s);
    let train = ds
        .settings
        .as_ref()
        .map_or(serde_json::Value::Null, |s| serde_json::to_value(&s.train).expect("settings serialise"));
    let traj = Trajectories { domains, eval_domains: ds.eval_domains.clone(), train, points };
    Ok((ds, traj))
}

/// A domain no run has a validation loss for (no validation text: runs written before such a
/// domain became no column at all recorded it as a column of nulls) is not a validation
/// column of the dataset: dropped, with its trajectories' entries, and said once.
fn drop_unevaluated(ds: &mut Dataset, points: &mut [Point]) {
    let keep: Vec<bool> = (0..ds.eval_domains.len()).map(|j| ds.losses.iter().any(|l| l[j].is_some())).collect();
    if ds.losses.is_empty() || keep.iter().all(|&k| k) {
        return;
    }
    let dropped: Vec<&str> = ds.eval_domains.iter().zip(&keep).filter(|(_, k)| !**k).map(|(d, _)| d.as_str()).collect();
    log::info!(
        "no run has a validation loss for {}: no validation text, so not a validation column",
        dropped.join(", ")
    );
    let pick =
        |v: &[Option<f64>]| -> Vec<Option<f64>> { v.iter().zip(&keep).filter(|(_, k)| **k).map(|(x, _)| *x).collect() };
    ds.eval_domains = ds.eval_domains.iter().zip(&keep).filter(|(_, k)| **k).map(|(d, _)| d.clone()).collect();
    for l in &mut ds.losses {
        *l = pick(l);
    }
    for p in points.iter_mut() {
        p.losses = pick(&p.losses);
    }
}

/// Checks that the run in `path` is of mixture `id` with the mixtures file's weights `w` (over
/// `domains`), from what the run recorded: the folder name, the mixtures file and the run
/// must agree. Returns the run's settings less the mixture.
fn check_run_is_mixture(
    path: &Path,
    md: &HashMap<String, String>,
    id: u64,
    domains: &[String],
    w: &[f64],
) -> Result<RunSettings> {
    let recorded = md.get(regmix_core::keys::MIXTURE_ID).map(String::as_str).unwrap_or("");
    if recorded != id.to_string() {
        bail!("{}: the run is of mixture {recorded} (regmix.mixture_id), not {id}: a metrics file in another run's folder", path.display());
    }
    let spec = RunSpec::from_metadata(md, path)?;
    for (d, x) in domains.iter().zip(w) {
        let trained = spec.weight_of(d);
        if (trained - x).abs() > 1e-9 {
            bail!(
                "{}: mixture {id} was trained with {} = {trained}, but the mixtures file gives {x}: the runs were trained on another mixtures file",
                path.display(),
                columns::wide(columns::WEIGHT, d)
            );
        }
    }
    Ok(spec.settings())
}

/// Every run must have been trained with the same settings (tokens, model, schedule, seed,
/// shards): a regression over runs of different lengths or corpora fits the difference, not
/// the mixtures. The error names the groups and what differs.
fn check_runs_alike(runs: &Path, settings: &[(u32, RunSettings)]) -> Result<()> {
    let Some((first_id, first)) = settings.first() else { return Ok(()) };
    let odd: Vec<(u32, Vec<String>)> =
        settings.iter().filter(|(_, s)| s != first).map(|(id, s)| (*id, first.differences(s))).collect();
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

/// A run as the scan sees it: the status of its last row, its chosen evaluation and every
/// evaluation (its trajectory; mixture ids left for the caller).
struct Final {
    status: RunStatus,
    /// Whether the run has an evaluation to use (at `step`, or any), finite or not.
    evaluated: bool,
    eval: Option<Eval>,
    points: Vec<Point>,
}

struct Eval {
    step: u64,
    tokens: u64,
    /// `None` for a domain this run never evaluated (no validation text).
    losses: Vec<Option<f64>>,
}

/// Each run's file (`files`: index into `refs`, warm-up steps) read with polars' Parquet
/// reader, only the columns used (step, tokens, lr, status and the validation losses), in
/// parallel over the files: per file, the status at its last step, the last row (or the row at
/// `step`) whose every validation loss is finite, and every evaluated row.
fn scan_finals(refs: &[RunRef], files: &[(usize, u64)], evals: &[String], step: Option<u64>) -> Result<Vec<Final>> {
    use rayon::prelude::*;
    let loss: Vec<String> = columns::wide_all(VALID_LOSS, evals);
    files.par_iter().map(|(k, warmup)| final_of(&refs[*k].path, &loss, step, *warmup)).collect()
}

fn final_of(path: &Path, loss: &[String], step: Option<u64>, warmup: u64) -> Result<Final> {
    use polars::prelude::*;
    let polars_err = |e: PolarsError| anyhow::anyhow!("{}: {e}", path.display());
    let file = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut wanted = vec!["step".to_string(), "tokens".to_string(), "lr".to_string(), "status".to_string()];
    wanted.extend(loss.iter().cloned());
    let df = ParquetReader::new(file).with_columns(Some(wanted)).finish().map_err(polars_err)?;
    let steps: Vec<Option<u64>> = df
        .column("step")
        .and_then(|c| c.u64().map(|a| (0..a.len()).map(|i| a.get(i)).collect()))
        .map_err(polars_err)?;
    let tokens = df.column("tokens").and_then(|c| c.u64().cloned()).map_err(polars_err)?;
    let lr = df.column("lr").and_then(|c| c.f64().cloned()).map_err(polars_err)?;
    let status = df.column("status").and_then(|c| c.str().cloned()).map_err(polars_err)?;
    let losses: Vec<Float64Chunked> = loss
        .iter()
        .map(|l| df.column(l).and_then(|c| c.f64().cloned()))
        .collect::<PolarsResult<_>>()
        .map_err(polars_err)?;
    // Rows in step order (the writer writes them so; a file edited by hand may not be).
    let mut order: Vec<usize> = (0..df.height()).collect();
    order.sort_by_key(|&r| steps[r]);
    let Some(&last) = order.last() else { bail!("{}: no rows", path.display()) };
    let st = RunStatus::parse(status.get(last).unwrap_or_default(), path, last)?;
    for (c, name) in losses.iter().zip(loss) {
        if let Some(r) = (0..c.len()).find(|&r| c.get(r).is_some_and(|v| v < 0.0)) {
            bail!(
                "{}: row {r}, field `{name}`: {} is negative; a cross-entropy is not",
                path.display(),
                c.get(r).unwrap_or_default()
            );
        }
    }
    // The evaluation used: the one at `step`, else the last (a row with any loss). It is used
    // only if every evaluated domain's loss there is finite: an earlier evaluation never stands
    // in for a final one that failed. A domain the run never evaluated (a column of nulls, as
    // runs wrote a domain without validation text before it became no column) is not one.
    let evaluated = |r: usize| losses.iter().any(|c| c.get(r).is_some());
    let has_values: Vec<bool> = losses.iter().map(|c| c.null_count() < c.len()).collect();
    let chosen = match step {
        Some(s) => order.iter().copied().find(|&r| steps[r] == Some(s) && evaluated(r)),
        None => order.iter().rev().copied().find(|&r| evaluated(r)),
    };
    let eval = chosen
        .filter(|&r| losses.iter().zip(&has_values).all(|(c, &h)| !h || c.get(r).is_some_and(f64::is_finite)))
        .map(|r| Eval {
            step: steps[r].unwrap_or(0),
            tokens: tokens.get(r).unwrap_or(0),
            losses: losses.iter().zip(&has_values).map(|(c, &h)| if h { c.get(r) } else { None }).collect(),
        });
    let points = order
        .iter()
        .copied()
        .filter(|&r| evaluated(r))
        .map(|r| {
            let s = steps[r].unwrap_or(0);
            Point {
                mixture_id: 0,
                step: s,
                tokens: tokens.get(r).unwrap_or(0),
                lr: lr.get(r).unwrap_or(f64::NAN),
                warmup: s <= warmup,
                losses: losses.iter().map(|c| c.get(r).filter(|v| v.is_finite())).collect(),
            }
        })
        .collect();
    Ok(Final { status: st, eval, evaluated: chosen.is_some(), points })
}

#[cfg(test)]
mod left_out_tests {
    use super::runs_by_reason;

    #[test]
    fn consecutive_runs_left_out_for_one_reason_are_one_range() {
        let runs = vec![
            (7, "missing".into()),
            (3, "diverged".into()),
            (5, "missing".into()),
            (6, "missing".into()),
            (8, "unfinished".into()),
        ];
        assert_eq!(runs_by_reason(runs), "3 (diverged), 5–7 (missing), 8 (unfinished)");
    }
}
