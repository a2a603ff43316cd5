//! Proxy results from other tools into the `dataset` contract: olmix's swarm files
//! (`--import-olmix RATIOS.csv METRICS.csv`) and a generic wide table (`--import-table FILE`,
//! CSV or Parquet: a W&B export, say), with its runs' histories (`--import-history FILE`). Every cell is checked before anything is written: weights
//! that do not sum to 1, a missing or unparsable weight, a run given twice, a metric that is
//! not a finite number each stop the import with the file, row and column.
//!
//! Labels become domain names by [`regmix_core::domain::normalize`] (`dclm:math` → `dclm_math`);
//! a metric column `m` becomes `valid_loss.<m normalised>`, so `fit --target` names it as it
//! names our own losses (fit minimises: give an accuracy with a negative coefficient,
//! `-1*valid_loss.arc_easy_acc`).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use regmix_core::columns::VALID_LOSS;
use regmix_core::domain;
use regmix_core::trajectories::{Point, Trajectories};

use crate::{Dataset, IMPORTED};

/// How far a row's weights may sum from 1 (olmix's own check allows 0.01; published mixtures
/// are rounded to a few decimals). Rows within it are renormalised.
pub const SUM_TOLERANCE: f64 = 0.01;

/// A row whose weights sum to 1 within this (the rounding of summing weights that are exactly a
/// mixture, as our own datasets' are) is kept as written, not renormalised: dividing by a sum
/// one ulp off 1 would change weights in their last bit, and a table exported from a dataset
/// would no longer read back as that dataset (nor fit to the same model).
pub const EXACT_SUM: f64 = 1e-12;

/// A table read as text cells: header and rows (1-based row numbers in errors, as a
/// spreadsheet shows them, the header being row 1).
struct Cells {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn read_csv(path: &Path) -> Result<Cells> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let header: Vec<String> = r
        .headers()
        .with_context(|| format!("{}: no header row", path.display()))?
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        rows.push(rec.iter().map(|s| s.trim().to_string()).collect());
    }
    Ok(Cells { header, rows })
}

fn read_parquet_cells(path: &Path) -> Result<Cells> {
    use polars::prelude::*;
    let file = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let df = ParquetReader::new(file).finish().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let header: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    let mut cols: Vec<Vec<String>> = Vec::new();
    for c in df.columns() {
        let s =
            c.cast(&DataType::String).map_err(|e| anyhow::anyhow!("{}: column `{}`: {e}", path.display(), c.name()))?;
        let s = s.str().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?.clone();
        cols.push((0..s.len()).map(|i| s.get(i).unwrap_or("").to_string()).collect());
    }
    let rows = (0..df.height()).map(|r| cols.iter().map(|c| c[r].clone()).collect()).collect();
    Ok(Cells { header, rows })
}

fn read_any(path: &Path) -> Result<Cells> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => read_parquet_cells(path),
        _ => read_csv(path),
    }
}

fn number(path: &Path, row: usize, col: &str, s: &str) -> Result<f64> {
    if s.is_empty() {
        bail!("{}: row {row}, column `{col}`: empty", path.display());
    }
    let v: f64 = s
        .parse()
        .map_err(|_| anyhow::anyhow!("{}: row {row}, column `{col}`: {s:?} is not a number", path.display()))?;
    if !v.is_finite() {
        bail!("{}: row {row}, column `{col}`: {s} is not finite", path.display());
    }
    Ok(v)
}

/// A cell that must be a whole number ≥ 0 (tokens, steps), or an error naming file, row and column.
fn whole(path: &Path, row: usize, col: &str, s: &str) -> Result<u64> {
    s.parse::<u64>()
        .map_err(|_| anyhow::anyhow!("{}: row {row}, column `{col}`: {s:?} is not a whole number ≥ 0", path.display()))
}

/// The run-id column: `run_id` or `run` (olmix writes the first, its loaders accept both).
fn run_column(path: &Path, c: &Cells) -> Result<Option<usize>> {
    let found: Vec<usize> =
        c.header.iter().enumerate().filter(|(_, h)| *h == "run_id" || *h == "run").map(|(i, _)| i).collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(Some(found[0])),
        _ => bail!("{}: both `run` and `run_id` columns; keep one", path.display()),
    }
}

/// Normalised names for `labels`, refusing two labels that become one name.
fn names(path: &Path, labels: &[&str], what: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for l in labels {
        let n = domain::normalize(l);
        domain::validate(&n).with_context(|| format!("{}: {what} column `{l}`", path.display()))?;
        if let Some(j) = out.iter().position(|o| *o == n) {
            bail!("{}: {what} columns `{}` and `{l}` are both `{n}`", path.display(), labels[j]);
        }
        out.push(n);
    }
    Ok(out)
}

/// Per run (in file order): its id and its weights over `domains`, checked and renormalised.
fn weights_of(
    path: &Path,
    c: &Cells,
    run: Option<usize>,
    cols: &[usize],
    domains: &[String],
) -> Result<Vec<(String, Vec<f64>)>> {
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (r, row) in c.rows.iter().enumerate() {
        let line = r + 2;
        let id = match run {
            Some(k) => row.get(k).cloned().unwrap_or_default(),
            None => r.to_string(),
        };
        if id.is_empty() {
            bail!("{}: row {line}, column `{}`: empty run id", path.display(), c.header[run.unwrap_or(0)]);
        }
        if let Some(first) = seen.insert(id.clone(), line) {
            bail!("{}: row {line}: run `{id}` is also row {first}: a run given twice", path.display());
        }
        let mut w = Vec::with_capacity(cols.len());
        for (&k, d) in cols.iter().zip(domains) {
            let v = number(path, line, &c.header[k], row.get(k).map(String::as_str).unwrap_or(""))?;
            if v < 0.0 {
                bail!("{}: row {line}, column `{}`: weight {v} of {d} is negative", path.display(), c.header[k]);
            }
            w.push(v);
        }
        let sum: f64 = w.iter().sum();
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            bail!("{}: row {line}: the weights sum to {sum}, not 1 (within {SUM_TOLERANCE})", path.display());
        }
        out.push((id, if (sum - 1.0).abs() <= EXACT_SUM { w } else { w.iter().map(|x| x / sum).collect() }));
    }
    if out.is_empty() {
        bail!("{}: no rows", path.display());
    }
    Ok(out)
}

/// Per run id: its metrics over the metric columns `cols`, every one a finite number.
fn metrics_of(
    path: &Path,
    c: &Cells,
    run: Option<usize>,
    cols: &[usize],
) -> Result<HashMap<String, (usize, Vec<f64>)>> {
    let mut out: HashMap<String, (usize, Vec<f64>)> = HashMap::new();
    for (r, row) in c.rows.iter().enumerate() {
        let line = r + 2;
        let id = match run {
            Some(k) => row.get(k).cloned().unwrap_or_default(),
            None => r.to_string(),
        };
        let v = cols
            .iter()
            .map(|&k| number(path, line, &c.header[k], row.get(k).map(String::as_str).unwrap_or("")))
            .collect::<Result<Vec<f64>>>()?;
        if let Some((first, _)) = out.insert(id.clone(), (line, v)) {
            bail!("{}: row {line}: run `{id}` is also row {first}: a run given twice", path.display());
        }
    }
    Ok(out)
}

/// `at`: each run's (tokens, steps), in the order of `runs`, or empty when the file has none (0).
fn dataset(
    domains: Vec<String>,
    metrics: Vec<String>,
    runs: Vec<(String, Vec<f64>)>,
    at: &[(u64, u64)],
    values: impl Fn(&str) -> Option<Vec<f64>>,
    missing: &str,
) -> Result<Dataset> {
    let mut ds = Dataset::empty(domains, metrics);
    let mut without = Vec::new();
    for (i, (id, w)) in runs.into_iter().enumerate() {
        let (tokens, steps) = at.get(i).copied().unwrap_or((0, 0));
        match values(&id) {
            Some(m) => ds.push(i as u32, id, tokens, steps, IMPORTED, w, m.into_iter().map(Some).collect()),
            None => without.push(id),
        }
    }
    if !without.is_empty() {
        bail!(
            "{} runs have no metrics in {missing}: {}",
            without.len(),
            without.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ds)
}

/// olmix's swarm files: `ratios.csv` (run_id or run, optional name, one column per domain) and
/// `metrics.csv` (run_id or run, optional name, one column per metric), joined on the run id.
/// Every run of the ratios must have metrics; runs of the metrics without ratios are left out
/// with a warning.
pub fn import_olmix(ratios: &Path, metrics: &Path) -> Result<Dataset> {
    let rc = read_csv(ratios)?;
    let mc = read_csv(metrics)?;
    let (Some(rr), Some(mr)) = (run_column(ratios, &rc)?, run_column(metrics, &mc)?) else {
        bail!("{} and {} must both have a `run_id` (or `run`) column to join on", ratios.display(), metrics.display());
    };
    let skip = |h: &str| h == "run_id" || h == "run" || h == "name" || h == "index";
    let dcols: Vec<usize> = (0..rc.header.len()).filter(|&i| !skip(&rc.header[i])).collect();
    let mcols: Vec<usize> = (0..mc.header.len()).filter(|&i| !skip(&mc.header[i])).collect();
    if dcols.is_empty() || mcols.is_empty() {
        bail!("{}: no domain columns, or {}: no metric columns", ratios.display(), metrics.display());
    }
    let domains = names(ratios, &dcols.iter().map(|&i| rc.header[i].as_str()).collect::<Vec<_>>(), "domain")?;
    let evals = names(metrics, &mcols.iter().map(|&i| mc.header[i].as_str()).collect::<Vec<_>>(), "metric")?;
    let runs = weights_of(ratios, &rc, Some(rr), &dcols, &domains)?;
    let m = metrics_of(metrics, &mc, Some(mr), &mcols)?;
    let extra = m.keys().filter(|k| !runs.iter().any(|(id, _)| id == *k)).count();
    if extra > 0 {
        log::warn!("{}: {extra} runs have no ratios in {}; left out", metrics.display(), ratios.display());
    }
    let ds =
        dataset(domains, evals, runs, &[], |id| m.get(id).map(|(_, v)| v.clone()), &metrics.display().to_string())?;
    log::info!("imported {} olmix runs from {} and {}", ds.ids.len(), ratios.display(), metrics.display());
    Ok(ds)
}

/// The columns of a wide table that say where in training each row was measured: training tokens
/// and optimizer steps (`fit --at-tokens` scores a row at its own tokens). Never metrics.
pub const POSITION_COLUMNS: [&str; 2] = ["tokens", "steps"];

/// Per row: its (tokens, steps) from the optional `tokens` and `steps` columns (0 where absent),
/// each a whole number ≥ 0; empty when the table has neither.
fn positions_of(path: &Path, c: &Cells) -> Result<Vec<(u64, u64)>> {
    let col = |name: &str| c.header.iter().position(|h| h == name);
    let (t, s) = (col(POSITION_COLUMNS[0]), col(POSITION_COLUMNS[1]));
    if t.is_none() && s.is_none() {
        return Ok(Vec::new());
    }
    let at = |line: usize, k: Option<usize>, row: &[String]| -> Result<u64> {
        let Some(k) = k else { return Ok(0) };
        whole(path, line, &c.header[k], row.get(k).map(String::as_str).unwrap_or(""))
    };
    c.rows.iter().enumerate().map(|(r, row)| Ok((at(r + 2, t, row)?, at(r + 2, s, row)?))).collect()
}

/// A wide table, one row per run (CSV, or Parquet by its extension): an optional `run_id` or
/// `run` column, the weights as `<weight_prefix><domain>` columns, optional `tokens` and `steps`
/// columns (where the row was measured), and the metrics: the columns named in `metrics` (every
/// other numeric column when none is named).
pub fn import_table(path: &Path, weight_prefix: &str, metrics: &[String]) -> Result<Dataset> {
    let c = read_any(path)?;
    let run = run_column(path, &c)?;
    let at = positions_of(path, &c)?;
    let wcols: Vec<usize> = (0..c.header.len())
        .filter(|&i| c.header[i].starts_with(weight_prefix) && c.header[i].len() > weight_prefix.len())
        .collect();
    if wcols.is_empty() {
        bail!(
            "{}: no weight columns (named {weight_prefix}<domain>; --weight-prefix names another prefix)",
            path.display()
        );
    }
    let mcols: Vec<usize> = if metrics.is_empty() {
        (0..c.header.len())
            .filter(|&i| {
                Some(i) != run
                    && !wcols.contains(&i)
                    && c.header[i] != "name"
                    && !POSITION_COLUMNS.contains(&c.header[i].as_str())
            })
            .filter(|&i| c.rows.iter().all(|r| r.get(i).is_some_and(|s| s.parse::<f64>().is_ok())))
            .collect()
    } else {
        metrics
            .iter()
            .map(|m| {
                c.header.iter().position(|h| h == m).with_context(|| {
                    format!("{}: no column `{m}` (--metric); have: {}", path.display(), c.header.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    if mcols.is_empty() {
        bail!("{}: no metric columns (numeric in every row; or name them with --metric)", path.display());
    }
    let labels: Vec<&str> = wcols.iter().map(|&i| &c.header[i][weight_prefix.len()..]).collect();
    let domains = names(path, &labels, "weight")?;
    let mlabels: Vec<&str> =
        mcols.iter().map(|&i| c.header[i].strip_prefix(VALID_LOSS).unwrap_or(&c.header[i])).collect();
    let evals = names(path, &mlabels, "metric")?;
    let runs = weights_of(path, &c, run, &wcols, &domains)?;
    let m = metrics_of(path, &c, run, &mcols)?;
    let ds = dataset(domains, evals, runs, &at, |id| m.get(id).map(|(_, v)| v.clone()), &path.display().to_string())?;
    log::info!(
        "imported {} runs from {}: {} domains (columns {weight_prefix}<domain>), {} metrics",
        ds.ids.len(),
        path.display(),
        ds.domains.len(),
        ds.eval_domains.len()
    );
    Ok(ds)
}

/// A run history beside a wide table (`--import-history`, CSV or Parquet): one row per
/// evaluation of a run, with `run` (or `run_id`: the table's run ids), `step` and `tokens`, an
/// optional `lr` (NaN where absent) and `warmup` (true/false or 1/0; false where absent), and
/// the table's metric columns by the same names (an empty cell is an evaluation that measured
/// nothing there). Becomes the trajectories written beside the dataset, so `fit --at-tokens`
/// fits imported curves as it fits our own.
pub fn import_history(path: &Path, ds: &Dataset) -> Result<Trajectories> {
    let c = read_any(path)?;
    let Some(run) = run_column(path, &c)? else {
        bail!("{}: no `run` (or `run_id`) column naming the table's runs", path.display());
    };
    let col = |name: &str| c.header.iter().position(|h| h == name);
    let need = |name: &str| {
        col(name).with_context(|| format!("{}: no `{name}` column; have: {}", path.display(), c.header.join(", ")))
    };
    let (step, tokens) = (need("step")?, need(POSITION_COLUMNS[0])?);
    let (lr, warmup) = (col("lr"), col("warmup"));
    // Each evaluation domain's column: the header that names it as the table did.
    let metric_cols: Vec<usize> = ds
        .eval_domains
        .iter()
        .map(|e| {
            c.header
                .iter()
                .position(|h| domain::normalize(h.strip_prefix(VALID_LOSS).unwrap_or(h)) == *e)
                .with_context(|| format!("{}: no column for the metric `{e}` of the table", path.display()))
        })
        .collect::<Result<_>>()?;
    let ids: HashMap<&str, u32> = ds.runs.iter().map(String::as_str).zip(ds.ids.iter().copied()).collect();
    let mut points = Vec::with_capacity(c.rows.len());
    let mut seen: HashMap<(u32, u64), usize> = HashMap::new();
    for (r, row) in c.rows.iter().enumerate() {
        let line = r + 2;
        let cell = |k: usize| row.get(k).map(String::as_str).unwrap_or("");
        let id = *ids.get(cell(run)).with_context(|| {
            format!(
                "{}: row {line}, column `{}`: run `{}` is not in the table",
                path.display(),
                c.header[run],
                cell(run)
            )
        })?;
        let (s, t) =
            (whole(path, line, &c.header[step], cell(step))?, whole(path, line, &c.header[tokens], cell(tokens))?);
        if let Some(first) = seen.insert((id, s), line) {
            bail!("{}: row {line}: run `{}` at step {s} is also row {first}", path.display(), cell(run));
        }
        let lr = match lr {
            Some(k) => number(path, line, &c.header[k], cell(k))?,
            None => f64::NAN,
        };
        let warmup = match warmup.map(|k| (k, cell(k))) {
            None => false,
            Some((_, "true" | "1")) => true,
            Some((_, "false" | "0")) => false,
            Some((k, v)) => bail!("{}: row {line}, column `{}`: {v:?} is not true/false", path.display(), c.header[k]),
        };
        let losses = metric_cols
            .iter()
            .map(|&k| if cell(k).is_empty() { Ok(None) } else { number(path, line, &c.header[k], cell(k)).map(Some) })
            .collect::<Result<Vec<_>>>()?;
        points.push(Point { mixture_id: id, step: s, tokens: t, lr, warmup, losses });
    }
    points.sort_by_key(|p| (p.mixture_id, p.step));
    let without = ds.ids.iter().filter(|id| !points.iter().any(|p| p.mixture_id == **id)).count();
    if without > 0 {
        log::warn!("{}: {without} runs of the table have no evaluations in the history", path.display());
    }
    log::info!("imported {} evaluations of {} runs from {}", points.len(), ds.ids.len() - without, path.display());
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    Ok(Trajectories {
        domains: ds.domains.clone(),
        eval_domains: ds.eval_domains.clone(),
        train: serde_json::json!({ "imported": file }),
        points,
    })
}
