//! Bootstrap: refit the regression on resampled runs, search again, and measure the spread of
//! the optimum's weights and prediction. Each refit also scores the optimum found by the
//! fitted model against the prior, so the predicted gain gets a spread too.

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use regmix_core::schema::Schema;
use regmix_core::table::read_parquet;
use regmix_core::{digest, seed};
use regmix_regress::saved::load_xy;
use regmix_regress::{predict_many, Model, SavedFit, Scorer};

use crate::search::{optimum_of, search, Space};

/// The spread over the refits.
pub struct Spread {
    /// Per domain: the standard deviation of the refits' optima.
    pub weight_std: Vec<f64>,
    /// Of each refit's prediction at its own optimum.
    pub predicted_std: f64,
    /// Of the gain of the fitted model's optimum over the prior, as each refit predicts it.
    pub gain_std: f64,
    /// The share of refits that predict that optimum below the prior.
    pub win_share: f64,
}

/// `n` refits on resamples of the dataset the fit read (checked to be the same file by its
/// content hash; a target law resamples the target-scale runs it holds), each searching `space` for its own optimum; `optimum` and `prior` are the
/// fitted model's optimum and the prior, in the fit's domain order.
pub fn bootstrap(
    saved: &SavedFit,
    space: &Space,
    min_weight: f64,
    optimum: &[f64],
    prior: &[f64],
    n: usize,
) -> Result<Spread> {
    // A target law refits on the target-scale runs it holds and reads no dataset.
    let now = match &saved.model {
        Model::TargetLaw(_) => None,
        _ => Some(digest::sha256_file(&saved.dataset)?),
    };
    if let Some(now) = now.filter(|n| *n != saved.dataset_sha256) {
        bail!(
            "{}: the dataset changed since fit read it (sha256 {} then, {} now): rerun fit before a bootstrap",
            saved.dataset.display(),
            &saved.dataset_sha256[..12.min(saved.dataset_sha256.len())],
            &now[..12]
        );
    }
    // The rows the model was fitted on: the dataset's, a horizon model's own curves, or a
    // target law's target-scale runs (the proxies' transfer is kept).
    let (x, y) = match &saved.model {
        Model::Horizon(h) => (h.x.clone(), Vec::new()),
        Model::TargetLaw(t) => (t.x.clone(), Vec::new()),
        _ => {
            let t = read_parquet(&saved.dataset, Schema::get("dataset"))?;
            let xy = load_xy(&t, Some(&saved.domains), &saved.target)?;
            (xy.x, xy.y)
        }
    };
    let (mut ws, mut ps, mut gains) = (Vec::new(), Vec::new(), Vec::new());
    for b in 0..n as u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed::derive(&[space.seed, seed::stream::RESAMPLE, b]));
        let idx: Vec<usize> = (0..x.len()).map(|_| rng.random_range(0..x.len())).collect();
        let m = saved.model.refit_rows(&idx, &x, &y, seed::derive(&[space.seed, seed::stream::REFIT, b]))?;
        let found = search(&Scorer::new(&m)?, space, 1 + b);
        let wb = optimum_of(&found.top, space.caps, min_weight)?;
        // This refit's own optimum, then the prior and the fitted model's optimum.
        let pred = predict_many(&m, &[wb.clone(), prior.to_vec(), optimum.to_vec()])?;
        ps.push(pred[0]);
        gains.push(pred[1] - pred[2]);
        ws.push(wb);
        log::info!("bootstrap {}/{n} done", b + 1);
    }
    Ok(Spread {
        weight_std: (0..optimum.len()).map(|j| sd(&ws.iter().map(|w| w[j]).collect::<Vec<_>>())).collect(),
        predicted_std: sd(&ps),
        gain_std: sd(&gains),
        win_share: gains.iter().filter(|g| **g > 0.0).count() as f64 / gains.len() as f64,
    })
}

/// The sample standard deviation (of one value: 0).
fn sd(v: &[f64]) -> f64 {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64).sqrt()
}
