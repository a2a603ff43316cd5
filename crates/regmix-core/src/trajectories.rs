//! Every evaluation of every run of a dataset (`schemas/trajectories.json`): written by
//! `collect` beside `dataset.parquet`, read by `fit --at-tokens`.

use std::path::{Path, PathBuf};

use crate::columns::{self, VALID_LOSS};
use crate::schema::{domains_and_eval, Schema};
use crate::table::{batch, col, read_parquet, write_parquet};
use crate::{Error, Provenance, Result};

/// One evaluation of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub mixture_id: u32,
    pub step: u64,
    pub tokens: u64,
    pub lr: f64,
    pub warmup: bool,
    /// Per evaluation domain; `None` where the loss was not finite.
    pub losses: Vec<Option<f64>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Trajectories {
    pub domains: Vec<String>,
    pub eval_domains: Vec<String>,
    /// The runs' common training settings.
    pub train: serde_json::Value,
    /// In run, then step order.
    pub points: Vec<Point>,
}

/// The trajectories file that belongs to a dataset file: `<stem>.trajectories.parquet`
/// beside it.
pub fn path_for(dataset: &Path) -> PathBuf {
    let stem = dataset.file_stem().and_then(|s| s.to_str()).unwrap_or("dataset");
    dataset.with_file_name(format!("{stem}.trajectories.parquet"))
}

impl Trajectories {
    pub fn write(&self, path: &Path, prov: &Provenance) -> Result<()> {
        let s = Schema::get("trajectories");
        let lists = domains_and_eval(&self.domains, &self.eval_domains);
        let p = &self.points;
        let mut cols = vec![
            col::u32(p.iter().map(|r| r.mixture_id).collect()),
            col::u64(p.iter().map(|r| r.step).collect()),
            col::u64(p.iter().map(|r| r.tokens).collect()),
            col::f64(p.iter().map(|r| r.lr).collect()),
            col::bool(p.iter().map(|r| r.warmup).collect()),
        ];
        for j in 0..self.eval_domains.len() {
            cols.push(col::f64_opt(p.iter().map(|r| r.losses[j]).collect()));
        }
        let extra = vec![(crate::keys::TRAIN.to_string(), self.train.to_string())];
        write_parquet(path, s, &lists, &batch(s, &lists, cols)?, &extra, prov)
    }

    pub fn read(path: &Path) -> Result<Trajectories> {
        let t = read_parquet(path, Schema::get("trajectories"))?;
        let eval_domains = t.list("eval_domain")?.to_vec();
        let train: serde_json::Value = t.json_metadata(crate::keys::TRAIN)?;
        let ids = t.u32("mixture_id")?.values().to_vec();
        let steps = t.u64("step")?.values().to_vec();
        let tokens = t.u64("tokens")?.values().to_vec();
        let lr = t.f64_values("lr")?;
        let warm = t.column("warmup")?;
        let warm = warm
            .as_any()
            .downcast_ref::<arrow_array::BooleanArray>()
            .ok_or_else(|| Error::Invalid(format!("{}: column `warmup` is not bool", path.display())))?;
        let losses: Vec<Vec<Option<f64>>> =
            columns::wide_all(VALID_LOSS, &eval_domains).iter().map(|c| t.f64_opt_values(c)).collect::<Result<_>>()?;
        let points = (0..t.rows())
            .map(|r| Point {
                mixture_id: ids[r],
                step: steps[r],
                tokens: tokens[r],
                lr: lr[r],
                warmup: warm.value(r),
                losses: losses.iter().map(|c| c[r]).collect(),
            })
            .collect();
        Ok(Trajectories { domains: t.json_metadata(crate::keys::DOMAINS)?, eval_domains, train, points })
    }

    /// The points of run `id`, in step order.
    pub fn of(&self, id: u32) -> impl Iterator<Item = &Point> {
        self.points.iter().filter(move |p| p.mixture_id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trajectories_round_trip_through_their_contract() {
        let dir = tempfile::tempdir().unwrap();
        let t = Trajectories {
            domains: vec!["web".into(), "code".into()],
            eval_domains: vec!["web".into(), "code".into()],
            train: serde_json::json!({"tokens": 2000, "schedule": "constant"}),
            points: vec![
                Point { mixture_id: 3, step: 1, tokens: 100, lr: 1e-4, warmup: true, losses: vec![Some(7.0), None] },
                Point {
                    mixture_id: 3,
                    step: 20,
                    tokens: 2000,
                    lr: 1e-3,
                    warmup: false,
                    losses: vec![Some(4.0), Some(5.0)],
                },
            ],
        };
        let p = path_for(&dir.path().join("dataset.parquet"));
        assert_eq!(p.file_name().unwrap(), "dataset.trajectories.parquet");
        t.write(&p, &Provenance::new("collect", "0", &[])).unwrap();
        assert_eq!(Trajectories::read(&p).unwrap(), t);
    }
}
