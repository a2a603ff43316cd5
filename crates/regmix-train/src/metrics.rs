//! The per-run metrics table (`schemas/run_metrics.json`).

use std::path::Path;

use anyhow::Result;
use regmix_core::run::RunStatus;
use regmix_core::schema::{domains, Schema};
use regmix_core::table::{batch, col, write_parquet};
use regmix_core::Provenance;

/// One logged optimizer step.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub step: u64,
    pub tokens: u64,
    pub lr: f64,
    pub train_loss: f64,
    pub grad_norm: f64,
    pub elapsed_s: f64,
    /// Per domain, in corpus order; `None` on steps without an evaluation.
    pub valid: Vec<Option<f64>>,
}

/// Fixed columns before the per-domain losses in the flat f64 form kept in checkpoints.
const FIXED: usize = 6;

impl Row {
    /// Flat f64 form for checkpoints; a missing evaluation is NaN (a NaN evaluation ends
    /// the run as diverged before it can be checkpointed, so the mapping is unambiguous).
    pub fn to_f64(&self, out: &mut Vec<f64>) {
        out.extend([self.step as f64, self.tokens as f64, self.lr, self.train_loss, self.grad_norm, self.elapsed_s]);
        out.extend(self.valid.iter().map(|v| v.unwrap_or(f64::NAN)));
    }

    pub fn from_f64(v: &[f64]) -> Row {
        Row {
            step: v[0] as u64,
            tokens: v[1] as u64,
            lr: v[2],
            train_loss: v[3],
            grad_norm: v[4],
            elapsed_s: v[5],
            valid: v[FIXED..].iter().map(|&x| if x.is_nan() { None } else { Some(x) }).collect(),
        }
    }

    pub fn width(domains: usize) -> usize {
        FIXED + domains
    }
}

/// Writes `rows` as `path`; every row's status is running except the last, which is
/// `last_status`. Every domain is a validation column.
pub fn write(
    path: &Path,
    domain_names: &[String],
    rows: &[Row],
    last_status: RunStatus,
    extra: &[(String, String)],
    prov: &Provenance,
) -> Result<()> {
    write_evaluated(path, domain_names, &vec![true; domain_names.len()], rows, last_status, extra, prov)
}

/// [`write`] with a `valid_loss.<domain>` column only for the domains `evaluated` marks (corpus
/// order): a domain without validation windows is not a column, rather than a column of
/// nulls that reads as a run that failed to evaluate.
pub fn write_evaluated(
    path: &Path,
    domain_names: &[String],
    evaluated: &[bool],
    rows: &[Row],
    last_status: RunStatus,
    extra: &[(String, String)],
    prov: &Provenance,
) -> Result<()> {
    anyhow::ensure!(
        evaluated.len() == domain_names.len(),
        "{}: {} domains, {} evaluation flags",
        path.display(),
        domain_names.len(),
        evaluated.len()
    );
    let keep: Vec<usize> = (0..domain_names.len()).filter(|&d| evaluated[d]).collect();
    anyhow::ensure!(
        !keep.is_empty(),
        "{}: no domain has validation text (at least one window of context + 1 tokens): nothing to evaluate; tokenize with a larger --valid-fraction",
        path.display()
    );
    let schema = Schema::get("run_metrics");
    let names: Vec<String> = keep.iter().map(|&d| domain_names[d].clone()).collect();
    let lists = domains(&names);
    let n = rows.len();
    let status: Vec<&str> =
        (0..n).map(|i| if i + 1 == n { last_status } else { RunStatus::Running }.as_str()).collect();
    let mut cols = vec![
        col::u64(rows.iter().map(|r| r.step).collect()),
        col::u64(rows.iter().map(|r| r.tokens).collect()),
        col::f64(rows.iter().map(|r| r.lr).collect()),
        col::f64(rows.iter().map(|r| r.train_loss).collect()),
        col::f64(rows.iter().map(|r| r.grad_norm).collect()),
        col::f64(rows.iter().map(|r| r.elapsed_s).collect()),
        col::str(&status),
    ];
    for &d in &keep {
        cols.push(col::f64_opt(rows.iter().map(|r| r.valid[d]).collect()));
    }
    let b = batch(schema, &lists, cols)?;
    write_parquet(path, schema, &lists, &b, extra, prov)?;
    Ok(())
}
