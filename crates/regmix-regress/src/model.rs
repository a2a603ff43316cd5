//! The regressors behind one type, cross-validation, and saving.

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::gp::Gp;
use crate::linear::{Linear, LogLinear};
use crate::score::Scorer;
use crate::xgb::{self, Xgb};

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
}

impl Model {
    pub fn kind(&self) -> Kind {
        match self {
            Model::Linear(_) => Kind::Linear,
            Model::LogLinear(_) => Kind::LogLinear,
            Model::Xgboost(_) => Kind::Xgboost,
            Model::Gp(_) => Kind::Gp,
            Model::Ensemble { .. } => Kind::Ensemble,
        }
    }

    /// Predictions for many rows, in parallel blocks through a [`Scorer`].
    pub fn predict_many(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        use rayon::prelude::*;
        let Some(d) = rows.first().map(Vec::len) else { return Vec::new() };
        let scorer = match Scorer::new(self) {
            Ok(s) => s,
            // Only an XGBoost model this crate did not fit can land here; XGBoost scores it.
            Err(_) => return self.predict_slow(rows),
        };
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        let mut out = vec![0.0; rows.len()];
        out.par_chunks_mut(256).zip(flat.par_chunks(256 * d)).for_each(|(o, x)| scorer.score(x, d, o));
        out
    }

    fn predict_slow(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        match self {
            Model::Linear(m) => rows.iter().map(|r| m.predict(r)).collect(),
            Model::LogLinear(m) => rows.iter().map(|r| m.predict(r)).collect(),
            Model::Gp(m) => rows.iter().map(|r| m.predict(r)).collect(),
            Model::Xgboost(m) => m.predict_many(rows),
            Model::Ensemble { members } => {
                let preds: Vec<Vec<f64>> = members.iter().map(|m| m.predict_slow(rows)).collect();
                (0..rows.len()).map(|i| preds.iter().map(|p| p[i]).sum::<f64>() / preds.len() as f64).collect()
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
            other => fit_plain(other.kind(), x, y),
        })
    }
}

/// K folds of `n` rows, shuffled by `seed`: fold index per row.
pub fn folds(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut f = vec![0; n];
    for (pos, &i) in idx.iter().enumerate() {
        f[i] = pos % k;
    }
    f
}

/// A regressor fitted with cross-validation: out-of-fold predictions for every training row
/// and the final model fitted on all of them.
#[derive(Clone)]
pub struct Fitted {
    pub oof: Vec<f64>,
    pub fold_of: Vec<usize>,
    pub model: Model,
}

fn split<'a>(x: &'a [Vec<f64>], y: &[f64], fold_of: &[usize], k: usize) -> (Vec<Vec<f64>>, Vec<f64>, Vec<Vec<f64>>, Vec<usize>) {
    let (mut xt, mut yt, mut xv, mut iv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..x.len() {
        if fold_of[i] == k {
            xv.push(x[i].clone());
            iv.push(i);
        } else {
            xt.push(x[i].clone());
            yt.push(y[i]);
        }
    }
    (xt, yt, xv, iv)
}

fn fit_plain(kind: Kind, x: &[Vec<f64>], y: &[f64]) -> Model {
    match kind {
        Kind::Linear => Model::Linear(Linear::fit(x, y)),
        Kind::LogLinear => Model::LogLinear(LogLinear::fit(x, y)),
        Kind::Gp => Model::Gp(Gp::fit(x, y, GP_ITERS)),
        _ => unreachable!(),
    }
}

/// The ensemble of members fitted with the same folds: the mean of their out-of-fold
/// predictions and of their models. (`fit --regressor auto` has fitted the members already.)
pub fn ensemble_of(parts: Vec<Fitted>) -> Fitted {
    let n = parts[0].oof.len();
    assert!(parts.iter().all(|p| p.fold_of == parts[0].fold_of), "ensemble members fitted on different folds");
    let oof = (0..n).map(|i| parts.iter().map(|p| p.oof[i]).sum::<f64>() / parts.len() as f64).collect();
    let fold_of = parts[0].fold_of.clone();
    Fitted { oof, fold_of, model: Model::Ensemble { members: parts.into_iter().map(|p| p.model).collect() } }
}

/// Fits `kind` with `k`-fold cross-validation on (x, y).
///
/// Linear, log-linear and GP have no hyper-parameters tuned on held-out data (the GP's come
/// from the marginal likelihood of each fold's training part). XGBoost's number of rounds is
/// chosen as the one with the lowest mean held-out error across the folds; the out-of-fold
/// predictions are those at that number of rounds, and the final model is trained on all rows
/// for it. Nothing outside (x, y) is ever looked at.
pub fn fit_cv(kind: Kind, x: &[Vec<f64>], y: &[f64], k: usize, seed: u64) -> Result<Fitted> {
    if x.len() < k * 2 {
        bail!("{} rows are too few for {k}-fold cross-validation", x.len());
    }
    let fold_of = folds(x.len(), k, seed);
    match kind {
        Kind::Ensemble => {
            let parts: Vec<Fitted> = ENSEMBLE.par_iter().map(|&m| fit_cv(m, x, y, k, seed)).collect::<Result<_>>()?;
            Ok(ensemble_of(parts))
        }
        Kind::Xgboost => {
            // The folds train in parallel, one XGBoost thread each (on a few hundred rows its
            // own threads gain little); the trees do not depend on the thread count.
            let curves: Vec<(Vec<usize>, Vec<Vec<f64>>)> = (0..k)
                .into_par_iter()
                .map(|f| {
                    let (xt, yt, xv, iv) = split(x, y, &fold_of, f);
                    let (_, curve) = xgb::train(&xt, &yt, xgb::MAX_ROUNDS, seed, Some(&xv), 1)?;
                    Ok((iv, curve))
                })
                .collect::<Result<_>>()?;
            let checks = xgb::MAX_ROUNDS / xgb::CHECK_EVERY;
            let mse_at = |c: usize| -> f64 {
                curves.iter().flat_map(|(iv, cur)| iv.iter().zip(&cur[c]).map(|(&i, p)| (p - y[i]).powi(2))).sum::<f64>()
            };
            let best = (0..checks).min_by(|&a, &b| mse_at(a).partial_cmp(&mse_at(b)).unwrap()).unwrap();
            let rounds = (best + 1) * xgb::CHECK_EVERY;
            log::info!("xgboost: {rounds} rounds chosen by {k}-fold cross-validation");
            let mut oof = vec![0.0; x.len()];
            for (iv, cur) in &curves {
                for (&i, p) in iv.iter().zip(&cur[best]) {
                    oof[i] = *p;
                }
            }
            Ok(Fitted { oof, fold_of, model: Model::Xgboost(Xgb::fit(x, y, rounds, seed)?) })
        }
        _ => {
            // The k fold models and the final one are independent: fit them all in parallel
            // (job k is the final model on all rows).
            let mut models: Vec<Model> = (0..=k)
                .into_par_iter()
                .map(|f| {
                    if f == k {
                        return fit_plain(kind, x, y);
                    }
                    let (xt, yt, _, _) = split(x, y, &fold_of, f);
                    fit_plain(kind, &xt, &yt)
                })
                .collect();
            let model = models.pop().expect("the final model");
            let mut oof = vec![0.0; x.len()];
            for (f, m) in models.iter().enumerate() {
                let (_, _, xv, iv) = split(x, y, &fold_of, f);
                for (i, p) in iv.iter().zip(m.predict_many(&xv)) {
                    oof[*i] = p;
                }
            }
            Ok(Fitted { oof, fold_of, model })
        }
    }
}
