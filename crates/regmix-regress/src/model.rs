//! The regressors behind one type ([`Model`]), serialisable, and refitting. A [`Horizon`]
//! model holds a [`Model`] per law and is one of its variants, so the two types live here
//! together; the law itself is [`crate::law`], its fit with cross-validation
//! [`crate::horizon`].

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::gp::Gp;
use crate::law::value;
use crate::linear::{Linear, LogLinear};
use crate::transfer::TargetLaw;
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
    /// Fitted on target-scale runs (`fit --target-runs`), not one of `auto`'s choices.
    TargetLaw,
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
            Kind::TargetLaw => "target-law",
        }
    }

    pub fn parse(s: &str) -> Result<Kind> {
        Kind::ALL.into_iter().chain([Kind::TargetLaw]).find(|k| k.name() == s).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown regressor `{s}`; expected linear, log-linear, xgboost, gp, ensemble, target-law or auto"
            )
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
    Ensemble {
        members: Vec<Model>,
    },
    /// The target at a training horizon from every domain's power law, its asymptote and
    /// scale regressed by one kind of regressor (`fit --at-tokens`; see [`crate::law`]).
    Horizon(Box<Horizon>),
    /// Each domain's loss as a law of the data that helps it, fitted on target-scale runs,
    /// the transfer between domains from the proxies (`fit --target-runs`; see
    /// [`crate::transfer`]).
    TargetLaw(Box<TargetLaw>),
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
            Model::TargetLaw(_) => Kind::TargetLaw,
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
                    out.iter_mut().enumerate().for_each(|(i, o)| *o += l.coef * value(e[i], lb[i], decay));
                }
                out
            }
            Model::TargetLaw(t) => rows.iter().map(|r| t.predict(r)).collect(),
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
            Model::Horizon(_) => {
                anyhow::bail!("a horizon model is refitted on its own curves (Model::refit_rows), not on one target")
            }
            Model::TargetLaw(_) => {
                anyhow::bail!(
                    "a target law is refitted on its own target-scale runs (Model::refit_rows), not on the proxies"
                )
            }
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
        if let Model::TargetLaw(t) = self {
            return Ok(Model::TargetLaw(Box::new(t.refit_rows(idx)?)));
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
        Kind::TargetLaw => unreachable!("a target law is fitted by transfer::TargetLaw::fit"),
    }
}

/// One validation domain's law, as a term of the target expression.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Law {
    /// The loss column (`valid_loss.<domain>`) and its coefficient in the target.
    pub column: String,
    pub coef: f64,
    pub beta: f64,
    /// In-sample root mean square error of the fitted curves, and the curves held at
    /// [`B_FLOOR`](crate::law::B_FLOOR).
    pub curve_rmse: f64,
    pub clamped: usize,
    /// The loss at `t_ref` (E + B) and ln B, regressed on the weights: the pair a curve
    /// determines well (E and B alone trade off against each other when β is small).
    pub at_ref: Model,
    pub log_b: Model,
    /// Each training run's fitted E + B and ln B (the regressions' targets, for bootstrap
    /// refits).
    pub at_ref_of_run: Vec<f64>,
    pub log_b_of_run: Vec<f64>,
}

/// The horizon-aware model: the target at `at_tokens` from every domain's law.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Horizon {
    /// The horizon predicted.
    pub at_tokens: u64,
    /// Tokens at which B is the loss above the asymptote (the largest fitted evaluation).
    pub t_ref: f64,
    /// The evaluations fitted: from the first after warm-up to the last read.
    pub fit_tokens: [u64; 2],
    pub assumption: String,
    pub laws: Vec<Law>,
    /// The training runs' weights (rows of the regressions), for bootstrap refits.
    pub x: Vec<Vec<f64>>,
}

impl Horizon {
    /// The factor of B at `tokens` for a law.
    pub fn decay(&self, law: &Law, tokens: u64) -> f64 {
        (tokens as f64 / self.t_ref).powf(-law.beta)
    }

    /// The same model predicting another horizon (e.g. the proxies' own length).
    pub fn at(&self, tokens: u64) -> Horizon {
        Horizon { at_tokens: tokens, ..self.clone() }
    }

    /// The same laws with E and ln B refitted on the training runs `idx` (a bootstrap
    /// resample), each regressor with its hyper-parameters.
    pub fn refit_rows(&self, idx: &[usize], seed: u64) -> Result<Horizon> {
        let xb: Vec<Vec<f64>> = idx.iter().map(|&i| self.x[i].clone()).collect();
        let laws = self
            .laws
            .iter()
            .map(|l| {
                let eb: Vec<f64> = idx.iter().map(|&i| l.at_ref_of_run[i]).collect();
                let bb: Vec<f64> = idx.iter().map(|&i| l.log_b_of_run[i]).collect();
                Ok(Law { at_ref: l.at_ref.refit(&xb, &eb, seed)?, log_b: l.log_b.refit(&xb, &bb, seed)?, ..l.clone() })
            })
            .collect::<Result<_>>()?;
        Ok(Horizon { laws, x: xb, ..self.clone() })
    }
}

impl Horizon {
    /// Each training run's target at `tokens` from its own fitted curves (no regression): what
    /// the regression of E and ln B is scored against.
    pub fn curves_at(&self, tokens: u64) -> Vec<f64> {
        let mut out = vec![0.0; self.x.len()];
        for l in &self.laws {
            let decay = self.decay(l, tokens);
            for i in 0..out.len() {
                out[i] += l.coef * value(l.at_ref_of_run[i], l.log_b_of_run[i], decay);
            }
        }
        out
    }
}
