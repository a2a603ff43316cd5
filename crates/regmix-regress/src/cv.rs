//! K-fold cross-validation: out-of-fold predictions and the final model ([`fit_cv`]).

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::model::{fit_plain, Kind, Model, ENSEMBLE};
use crate::score::predict_many;
use crate::xgb::{self, Xgb};

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

/// One fold's rows: the training part (x, y) and the held-out part (x, row indices).
struct Split {
    train_x: Vec<Vec<f64>>,
    train_y: Vec<f64>,
    held_x: Vec<Vec<f64>>,
    held_rows: Vec<usize>,
}

fn split(x: &[Vec<f64>], y: &[f64], fold_of: &[usize], k: usize) -> Split {
    let mut s = Split { train_x: Vec::new(), train_y: Vec::new(), held_x: Vec::new(), held_rows: Vec::new() };
    for i in 0..x.len() {
        if fold_of[i] == k {
            s.held_x.push(x[i].clone());
            s.held_rows.push(i);
        } else {
            s.train_x.push(x[i].clone());
            s.train_y.push(y[i]);
        }
    }
    s
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
    if k < 2 {
        bail!("cross-validation needs at least 2 folds (got {k})");
    }
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
                    let s = split(x, y, &fold_of, f);
                    let (_, curve) = xgb::train(&s.train_x, &s.train_y, xgb::MAX_ROUNDS, seed, Some(&s.held_x), 1)?;
                    Ok((s.held_rows, curve))
                })
                .collect::<Result<_>>()?;
            let checks = xgb::MAX_ROUNDS / xgb::CHECK_EVERY;
            let mse_at = |c: usize| -> f64 {
                curves
                    .iter()
                    .flat_map(|(iv, cur)| iv.iter().zip(&cur[c]).map(|(&i, p)| (p - y[i]).powi(2)))
                    .sum::<f64>()
            };
            let best = (0..checks).min_by(|&a, &b| mse_at(a).total_cmp(&mse_at(b))).expect("at least one check");
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
                    let s = split(x, y, &fold_of, f);
                    fit_plain(kind, &s.train_x, &s.train_y)
                })
                .collect();
            let model = models.pop().expect("the final model");
            let mut oof = vec![0.0; x.len()];
            for (f, m) in models.iter().enumerate() {
                let s = split(x, y, &fold_of, f);
                for (i, p) in s.held_rows.iter().zip(predict_many(m, &s.held_x)?) {
                    oof[*i] = p;
                }
            }
            Ok(Fitted { oof, fold_of, model })
        }
    }
}

/// Fits each of `kinds` with the same folds; an ensemble among them is the mean of its members
/// when they are fitted too (not refitted), as `fit --regressor auto` does.
pub fn fit_kinds(kinds: &[Kind], x: &[Vec<f64>], y: &[f64], k: usize, seed: u64) -> Result<Vec<(Kind, Fitted)>> {
    let mut out: Vec<(Kind, Fitted)> = Vec::new();
    for &kind in kinds {
        let members: Option<Vec<Fitted>> =
            ENSEMBLE.iter().map(|m| out.iter().find(|(k, _)| k == m).map(|(_, f)| f.clone())).collect();
        let f = match (kind, members) {
            (Kind::Ensemble, Some(members)) => ensemble_of(members),
            _ => fit_cv(kind, x, y, k, seed)?,
        };
        out.push((kind, f));
    }
    Ok(out)
}
