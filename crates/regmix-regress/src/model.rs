//! The regressors behind one type ([`Model`]), serialisable, and refitting.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::gp::Gp;
use crate::horizon::Horizon;
use crate::linear::{Linear, LogLinear};
use crate::xgb::Xgb;

/// Marginal-likelihood steps of a GP fit.
pub const GP_ITERS: usize = 80;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Linear,
    LogLinear,
    Xgboost,
    Gp,
    Ensemble,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Linear, Kind::LogLinear, Kind::Xgboost, Kind::Gp, Kind::Ensemble];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Linear => "linear",
            Kind::LogLinear => "log-linear",
            Kind::Xgboost => "xgboost",
            Kind::Gp => "gp",
            Kind::Ensemble => "ensemble",
        }
    }

    pub fn parse(s: &str) -> Result<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            anyhow::anyhow!("unknown regressor `{s}`; expected linear, log-linear, xgboost, gp, ensemble or auto")
        })
    }
}

/// The members of an ensemble: the Gaussian process and the boosted trees.
pub const ENSEMBLE: [Kind; 2] = [Kind::Gp, Kind::Xgboost];

/// A fitted model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "regressor", rename_all = "kebab-case")]
pub enum Model {
    Linear(Linear),
    LogLinear(LogLinear),
    Xgboost(Xgb),
    Gp(Gp),
    Ensemble { members: Vec<Model> },
    /// The target at a training horizon from every domain's power law, its asymptote and
    /// scale regressed by one kind of regressor (`fit --at-tokens`; see [`crate::horizon`]).
    Horizon(Box<Horizon>),
}

impl Model {
    pub fn kind(&self) -> Kind {
        match self {
            Model::Linear(_) => Kind::Linear,
            Model::LogLinear(_) => Kind::LogLinear,
            Model::Xgboost(_) => Kind::Xgboost,
            Model::Gp(_) => Kind::Gp,
            Model::Ensemble { .. } => Kind::Ensemble,
            Model::Horizon(h) => h.laws.first().map_or(Kind::Linear, |l| l.at_ref.kind()),
        }
    }

    /// Predictions row by row, each regressor's own reference code (XGBoost through
    /// XGBoost). `score::predict_many` is the fast path and is tested against this.
    pub fn predict(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        match self {
            Model::Linear(m) => rows.iter().map(|r| m.predict(r)).collect(),
            Model::LogLinear(m) => rows.iter().map(|r| m.predict(r)).collect(),
            Model::Gp(m) => rows.iter().map(|r| m.predict(r)).collect(),
            Model::Xgboost(m) => m.predict_many(rows),
            Model::Ensemble { members } => {
                let preds: Vec<Vec<f64>> = members.iter().map(|m| m.predict(rows)).collect();
                (0..rows.len()).map(|i| preds.iter().map(|p| p[i]).sum::<f64>() / preds.len() as f64).collect()
            }
            Model::Horizon(h) => {
                let mut out = vec![0.0; rows.len()];
                for l in &h.laws {
                    let (e, lb) = (l.at_ref.predict(rows), l.log_b.predict(rows));
                    let decay = h.decay(l, h.at_tokens);
                    out.iter_mut().enumerate().for_each(|(i, o)| *o += l.coef * crate::horizon::value(e[i], lb[i], decay));
                }
                out
            }
        }
    }
}

impl Model {
    /// The same regressor with the same hyper-parameters (XGBoost's rounds) fitted to other
    /// data: for bootstrap refits. The GP re-estimates its kernel by marginal likelihood.
    pub fn refit(&self, x: &[Vec<f64>], y: &[f64], seed: u64) -> Result<Model> {
        Ok(match self {
            Model::Xgboost(m) => Model::Xgboost(Xgb::fit(x, y, m.rounds, seed)?),
            Model::Ensemble { members } => {
                Model::Ensemble { members: members.iter().map(|m| m.refit(x, y, seed)).collect::<Result<_>>()? }
            }
            Model::Horizon(_) => anyhow::bail!("a horizon model is refitted on its own curves (Model::refit_rows), not on one target"),
            other => fit_plain(other.kind(), x, y),
        })
    }
}

impl Model {
    /// The model refitted on the training rows `idx` (a bootstrap resample) of `x` and `y`,
    /// the rows it was fitted on; a horizon model refits its laws on its own curves' rows.
    pub fn refit_rows(&self, idx: &[usize], x: &[Vec<f64>], y: &[f64], seed: u64) -> Result<Model> {
        if let Model::Horizon(h) = self {
            return Ok(Model::Horizon(Box::new(h.refit_rows(idx, seed)?)));
        }
        let xb: Vec<Vec<f64>> = idx.iter().map(|&i| x[i].clone()).collect();
        let yb: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
        self.refit(&xb, &yb, seed)
    }
}

/// Fits a regressor without hyper-parameters chosen on held-out data (linear, log-linear, GP).
pub(crate) fn fit_plain(kind: Kind, x: &[Vec<f64>], y: &[f64]) -> Model {
    match kind {
        Kind::Linear => Model::Linear(Linear::fit(x, y)),
        Kind::LogLinear => Model::LogLinear(LogLinear::fit(x, y)),
        Kind::Gp => Model::Gp(Gp::fit(x, y, GP_ITERS)),
        Kind::Xgboost | Kind::Ensemble => unreachable!("{} is fitted by cv::fit_cv", kind.name()),
    }
}
