//! Gradient-boosted trees through XGBoost (the paper used LightGBM's). The number of rounds
//! comes from K-fold cross-validation inside the training data (see the `cv` module).

use std::collections::HashMap;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use xgboost_rs::{Booster, DMatrix};

/// Tree parameters; the rounds are chosen by cross-validation.
pub fn params(seed: u64, threads: usize) -> HashMap<String, String> {
    let mut p = HashMap::new();
    for (k, v) in [
        ("objective", "reg:squarederror"),
        ("eta", "0.05"),
        ("max_depth", "4"),
        ("min_child_weight", "2"),
        ("subsample", "0.8"),
        ("colsample_bytree", "0.8"),
        ("lambda", "1.0"),
        ("tree_method", "exact"),
        ("verbosity", "0"),
    ] {
        p.insert(k.to_string(), v.to_string());
    }
    // XGBoost's seed is a signed 64-bit integer: a derived seed (any u64) is folded into it.
    p.insert("seed".into(), (seed & i64::MAX as u64).to_string());
    p.insert("nthread".into(), threads.to_string());
    p
}

pub const MAX_ROUNDS: usize = 2000;
/// Held-out error is recorded every this many rounds.
pub const CHECK_EVERY: usize = 25;

/// A dense matrix whose missing value is NaN. (`DMatrix::from_dense` marks 0.0 as missing,
/// and a weight of 0 is a value, not a gap: the trees must compare it with their thresholds
/// like any other weight.)
fn dmatrix(x: &[Vec<f64>], y: Option<&[f64]>) -> Result<DMatrix> {
    let flat: Vec<f32> = x.iter().flat_map(|r| r.iter().map(|v| *v as f32)).collect();
    let cols = x.first().map_or(0, Vec::len);
    // Row-major through the strided constructor: a row is `cols` floats apart, a column one.
    let mut m = DMatrix::from_col_major_f32(&flat, 4 * cols, 4, x.len(), cols, 1, f32::NAN)
        .map_err(|e| anyhow!("xgboost: {e}"))?;
    if let Some(y) = y {
        let yl: Vec<f32> = y.iter().map(|v| *v as f32).collect();
        m.set_labels(&yl).map_err(|e| anyhow!("xgboost: {e}"))?;
    }
    Ok(m)
}

/// Trains on (x, y) for `rounds`; if `eval` is given, returns its predictions every
/// [`CHECK_EVERY`] rounds as well. `threads`: XGBoost's own threads.
pub fn train(
    x: &[Vec<f64>],
    y: &[f64],
    rounds: usize,
    seed: u64,
    eval: Option<&[Vec<f64>]>,
    threads: usize,
) -> Result<(Booster, Vec<Vec<f64>>)> {
    let dtrain = dmatrix(x, Some(y))?;
    let deval = eval.map(|e| dmatrix(e, None)).transpose()?;
    let mut b =
        Booster::new_with_json_config(&[&dtrain], params(seed, threads)).map_err(|e| anyhow!("xgboost: {e}"))?;
    let mut curve = Vec::new();
    for i in 0..rounds {
        b.update(&dtrain, i as i32).map_err(|e| anyhow!("xgboost: {e}"))?;
        if let Some(d) = &deval {
            if (i + 1) % CHECK_EVERY == 0 {
                let p = b.predict(d).map_err(|e| anyhow!("xgboost: {e}"))?;
                curve.push(p.iter().map(|v| *v as f64).collect());
            }
        }
    }
    Ok((b, curve))
}

/// A trained model, kept as XGBoost's JSON so it can be saved inside `model.json`.
#[derive(Serialize, Deserialize)]
pub struct Xgb {
    pub rounds: usize,
    pub model_json: String,
    #[serde(skip)]
    booster: OnceLock<Booster>,
}

impl std::fmt::Debug for Xgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Xgb {{ rounds: {} }}", self.rounds)
    }
}

impl Clone for Xgb {
    fn clone(&self) -> Self {
        Xgb { rounds: self.rounds, model_json: self.model_json.clone(), booster: OnceLock::new() }
    }
}

impl Xgb {
    pub fn fit(x: &[Vec<f64>], y: &[f64], rounds: usize, seed: u64) -> Result<Self> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let (b, _) = train(x, y, rounds, seed, None, threads)?;
        let model_json = b.save_to_buffer("json".into()).map_err(|e| anyhow!("xgboost: {e}"))?;
        let cell = OnceLock::new();
        let _ = cell.set(b);
        Ok(Xgb { rounds, model_json, booster: cell })
    }

    fn booster(&self) -> &Booster {
        self.booster
            .get_or_init(|| Booster::load_buffer(self.model_json.as_bytes()).expect("stored XGBoost model loads"))
    }

    pub fn predict_many(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        let d = dmatrix(rows, None).expect("dense matrix");
        self.booster().predict(&d).expect("xgboost predict").iter().map(|v| *v as f64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_u64_seed_is_accepted() {
        // Seeds come from regmix_core::seed::derive: the whole u64 range.
        let x: Vec<Vec<f64>> = (0..20).map(|i| vec![i as f64 / 20.0, 1.0 - i as f64 / 20.0]).collect();
        let y: Vec<f64> = x.iter().map(|r| r[0] * 2.0).collect();
        let a = Xgb::fit(&x, &y, 5, u64::MAX).unwrap();
        let b = Xgb::fit(&x, &y, 5, u64::MAX).unwrap();
        assert_eq!(a.model_json, b.model_json, "the same seed gives the same trees");
    }
}
