//! The fitted-model contract, `fit/model.json` (schema `fit_model` in `schemas/`): what `fit`
//! writes and `optimize` and `report` read. The only file this crate reads or writes.
//!
//! Also [`load_xy`]: a `dataset` table as the regression sees it (the rows of weights in the
//! fit's domain order and the target values), for `fit` and for `optimize`'s bootstrap refits.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use regmix_core::columns::{self, WEIGHT};
use regmix_core::table::Table;
use regmix_core::{json, Provenance, Schema};
use serde::{Deserialize, Serialize};

use crate::model::{Kind, Model};
use crate::target::Target;
use crate::trees::TreeScorer;

/// The file name of the contract in a fit folder.
pub const FILE: &str = "model.json";

/// A fitted model and how it was fitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedFit {
    pub target: Target,
    pub domains: Vec<String>,
    pub regressor: Kind,
    /// The dataset the model was fitted on (absolute), and its content hash: a bootstrap
    /// refit reads the file only if it is still the same.
    pub dataset: PathBuf,
    pub dataset_sha256: String,
    pub folds: usize,
    pub seed: u64,
    pub cv_spearman: f64,
    pub model: Model,
}

impl SavedFit {
    /// Reads `dir/model.json` against its contract and checks that the model's shapes match
    /// its domains.
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join(FILE);
        if !p.exists() {
            bail!("{}: no such file (run fit first)", p.display());
        }
        let (saved, _): (SavedFit, _) = json::read(&p, Schema::get("fit_model"))?;
        saved.check().with_context(|| format!("{}: the model does not fit its own domains", p.display()))?;
        Ok(saved)
    }

    /// Writes `dir/model.json` atomically.
    pub fn save(&self, dir: &Path, prov: &Provenance) -> Result<()> {
        self.check()?;
        Ok(json::write(&dir.join(FILE), Schema::get("fit_model"), self, prov)?)
    }

    /// Every part of the model has one value per domain, and the values are finite.
    pub fn check(&self) -> Result<()> {
        if self.domains.is_empty() {
            bail!("no domains");
        }
        if self.regressor != self.model.kind() {
            bail!("regressor `{}` but the model is a {}", self.regressor.name(), self.model.kind().name());
        }
        check_model(&self.model, self.domains.len())
    }
}

fn check_model(m: &Model, d: usize) -> Result<()> {
    let count = |what: &str, n: usize| -> Result<()> {
        if n != d {
            bail!("{} has {n} {what} for {d} domains", m.kind().name());
        }
        Ok(())
    };
    let finite = |what: &str, mut v: Box<dyn Iterator<Item = f64> + '_>| -> Result<()> {
        if v.any(|x| !x.is_finite()) {
            bail!("{}: a {what} is not finite", m.kind().name());
        }
        Ok(())
    };
    match m {
        Model::Linear(l) => {
            count("coefficients", l.coef.len())?;
            finite("coefficient", Box::new(l.coef.iter().copied().chain([l.intercept])))
        }
        Model::LogLinear(l) => {
            count("coefficients", l.t.len())?;
            finite("coefficient", Box::new(l.t.iter().copied().chain([l.c, l.log_k])))
        }
        Model::Gp(g) => {
            count("length-scales", g.log_ls.len())?;
            if let Some(r) = g.z.iter().position(|z| z.len() != d) {
                bail!("gp: training input {r} has {} values for {d} domains", g.z[r].len());
            }
            if g.alpha.len() != g.z.len() {
                bail!("gp: {} weights for {} training inputs", g.alpha.len(), g.z.len());
            }
            finite(
                "parameter",
                Box::new(
                    g.log_ls
                        .iter()
                        .chain(&g.alpha)
                        .chain(g.z.iter().flatten())
                        .copied()
                        .chain([g.log_sf, g.log_sn, g.y_mean, g.y_std]),
                ),
            )
        }
        Model::Xgboost(x) => count("features", TreeScorer::new(x)?.features()),
        Model::Ensemble { members } => {
            if members.is_empty() {
                bail!("an ensemble without members");
            }
            members.iter().try_for_each(|m| check_model(m, d))
        }
        Model::Horizon(h) => {
            if h.laws.is_empty() {
                bail!("a horizon model without laws");
            }
            if let Some(r) = h.x.iter().position(|r| r.len() != d) {
                bail!("horizon: training run {r} has {} weights for {d} domains", h.x[r].len());
            }
            for l in &h.laws {
                if !(l.beta.is_finite() && l.beta > 0.0) || !l.coef.is_finite() {
                    bail!("horizon: the law of {} has exponent {} and coefficient {}", l.column, l.beta, l.coef);
                }
                if l.at_ref_of_run.len() != h.x.len() || l.log_b_of_run.len() != h.x.len() {
                    bail!(
                        "horizon: the law of {} has {} and {} curve values for {} runs",
                        l.column,
                        l.at_ref_of_run.len(),
                        l.log_b_of_run.len(),
                        h.x.len()
                    );
                }
                check_model(&l.at_ref, d)?;
                check_model(&l.log_b, d)?;
            }
            if !(h.t_ref.is_finite() && h.t_ref > 0.0) {
                bail!("horizon: reference tokens {} not positive", h.t_ref);
            }
            Ok(())
        }
        Model::TargetLaw(t) => {
            if t.laws.is_empty() || t.forms.is_empty() || t.x.is_empty() {
                bail!("a target law without laws, forms or target-scale runs");
            }
            if let Some(r) = t.x.iter().position(|r| r.len() != d) {
                bail!("target-law: target run {r} has {} weights for {d} domains", t.x[r].len());
            }
            if let Some(r) = t.losses.iter().position(|l| l.len() != t.laws.len()) {
                bail!("target-law: target run {r} has {} losses for {} laws", t.losses[r].len(), t.laws.len());
            }
            if t.losses.len() != t.x.len() {
                bail!("target-law: {} rows of losses for {} target runs", t.losses.len(), t.x.len());
            }
            for l in &t.laws {
                if l.domain >= d || l.transfer.tau.len() != d {
                    bail!(
                        "target-law: the law of {} has domain {} and {} transfers for {d} domains",
                        l.column,
                        l.domain,
                        l.transfer.tau.len()
                    );
                }
                if l.params.len() != t.forms.len() || l.rmse.len() != t.forms.len() {
                    bail!(
                        "target-law: the law of {} has {} fits for {} forms",
                        l.column,
                        l.params.len(),
                        t.forms.len()
                    );
                }
                for (f, p) in t.forms.iter().zip(&l.params) {
                    if p.len() != f.parameters() {
                        bail!("target-law: the law of {} has {} parameters for its {f:?} form", l.column, p.len());
                    }
                }
                let values = l.params.iter().flatten().chain(&l.transfer.tau).copied().chain([l.coef]);
                finite("parameter", Box::new(values))?;
            }
            finite("target-run value", Box::new(t.x.iter().flatten().chain(t.losses.iter().flatten()).copied()))
        }
    }
}

/// The rows of a dataset as the regression sees them.
pub struct Xy {
    /// The domains of the columns of `x`.
    pub domains: Vec<String>,
    /// The mixture id of each row.
    pub ids: Vec<u32>,
    /// The training tokens of each row's evaluation.
    pub tokens: Vec<u64>,
    pub x: Vec<Vec<f64>>,
    pub y: Vec<f64>,
}

/// The rows (weights in `domains` order, or the table's own) and target values of a dataset
/// table. A domain of the table that the fit does not know is an error; a fitted domain the
/// table lacks is weight 0. Rows without a finite target are left out with a warning.
pub fn load_xy(t: &Table, domains: Option<&[String]>, target: &Target) -> Result<Xy> {
    let own = t.list("domain")?.to_vec();
    let doms = domains.map(|d| d.to_vec()).unwrap_or(own.clone());
    for d in &own {
        if !doms.contains(d) {
            bail!("{}: domain `{d}` is not among the fitted domains {doms:?}", t.path.display());
        }
    }
    let cols: Vec<Option<Vec<f64>>> = doms
        .iter()
        .map(|d| if own.contains(d) { t.f64_values(&columns::wide(WEIGHT, d)).map(Some) } else { Ok(None) })
        .collect::<regmix_core::Result<_>>()?;
    let x: Vec<Vec<f64>> =
        (0..t.rows()).map(|r| cols.iter().map(|c| c.as_ref().map_or(0.0, |c| c[r])).collect()).collect();
    let y = target
        .eval(t.rows(), |c| Ok(t.f64_values(c)?))
        .with_context(|| format!("{}: target `{}`", t.path.display(), target.expr))?;
    let ids = t.u32("mixture_id")?.values().to_vec();
    let tokens = t.u64("tokens")?.values().to_vec();
    let keep: Vec<usize> = (0..y.len()).filter(|&i| y[i].is_finite()).collect();
    if keep.len() < y.len() {
        log::warn!("{}: {} rows have no value for `{}`; left out", t.path.display(), y.len() - keep.len(), target.expr);
    }
    Ok(Xy {
        domains: doms,
        ids: keep.iter().map(|&i| ids[i]).collect(),
        tokens: keep.iter().map(|&i| tokens[i]).collect(),
        x: keep.iter().map(|&i| x[i].clone()).collect(),
        y: keep.iter().map(|&i| y[i]).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::Linear;

    fn saved(coef: Vec<f64>) -> SavedFit {
        SavedFit {
            target: Target { expr: "valid_loss.a".into(), terms: vec![(1.0, "valid_loss.a".into())] },
            domains: vec!["a".into(), "b".into(), "c".into()],
            regressor: Kind::Linear,
            dataset: PathBuf::from("/data/dataset.parquet"),
            dataset_sha256: "0".repeat(64),
            folds: 5,
            seed: 42,
            cv_spearman: 0.9,
            model: Model::Linear(Linear { intercept: 1.0, coef }),
        }
    }

    #[test]
    fn a_saved_fit_round_trips_through_its_contract() {
        let dir = tempfile::tempdir().unwrap();
        saved(vec![0.1, 0.2, 0.3]).save(dir.path(), &Provenance::new("fit", "0", &[])).unwrap();
        let back = SavedFit::load(dir.path()).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&saved(vec![0.1, 0.2, 0.3])).unwrap());
    }

    #[test]
    fn a_model_with_two_coefficients_for_three_domains_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE);
        saved(vec![0.1, 0.2, 0.3]).save(dir.path(), &Provenance::new("fit", "0", &[])).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut v = v;
        v["model"]["coef"] = serde_json::json!([0.1, 0.2]);
        std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        let e = format!("{:#}", SavedFit::load(dir.path()).unwrap_err());
        assert!(
            e.contains("model.json: the model does not fit its own domains: linear has 2 coefficients for 3 domains"),
            "{e}"
        );
    }
}
