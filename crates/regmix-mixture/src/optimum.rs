//! The recommended mixture, `optimum/optimum.parquet` (schema `optimum`): written by
//! `optimize`, read by `target-train` (to train on it) and `report` (to show it). Its reader
//! and writer live here, beside the other mixture files, so no stage is a library of another.

use std::path::Path;

use regmix_core::columns::{WEIGHT, WEIGHT_STD};
use regmix_core::schema::{domains as dom_lists, Schema};
use regmix_core::table::{batch, col, read_parquet, write_parquet, Table};
use regmix_core::{Error, Provenance, Result};

/// Metadata keys of the optimum's own (besides the schema's common keys).
pub const KEY_TARGET: &str = regmix_core::keys::TARGET;
pub const KEY_PRIOR: &str = regmix_core::keys::PRIOR;
pub const KEY_CONSTRAINTS: &str = regmix_core::keys::CONSTRAINTS;

/// What the search claims over the prior: the fitted model's prediction at the prior, the
/// predicted gain of the optimum (prior − optimum; positive when the optimum is predicted
/// lower), and, with a bootstrap, the gain's spread over refits (each refit scoring the same
/// two mixtures) and the share of refits that predict the optimum below the prior.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gain {
    pub prior: f64,
    pub gain: f64,
    pub std: Option<f64>,
    pub win_share: Option<f64>,
}

impl Gain {
    /// A gain the proxies support: positive, at least two bootstrap standard deviations, and
    /// predicted by every refit. Without a bootstrap there is nothing to judge it by: false.
    pub fn is_clear(&self) -> bool {
        match (self.std, self.win_share) {
            (Some(sd), Some(share)) => self.gain > 0.0 && self.gain >= 2.0 * sd && share >= 1.0,
            _ => false,
        }
    }

    pub fn describe(&self) -> String {
        let mut s =
            format!("predicted at the prior: {:.4}; gain of the optimum over the prior: {:.4}", self.prior, self.gain);
        if let (Some(sd), Some(share)) = (self.std, self.win_share) {
            s += &format!(
                " ± {sd:.4} (bootstrap sd); the optimum is predicted below the prior in {:.0}% of refits",
                100.0 * share
            );
        } else {
            s += " (no bootstrap: run optimize --bootstrap B to see how sure this is)";
        }
        s
    }
}

/// What to train the target on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The optimum's weights.
    Optimum,
    /// The proportional prior (`regmix.prior`).
    Prior,
}

impl Choice {
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Optimum => "optimum",
            Choice::Prior => "prior",
        }
    }

    pub fn parse(s: &str) -> Option<Choice> {
        [Choice::Optimum, Choice::Prior].into_iter().find(|c| c.as_str() == s)
    }
}

/// The recommendation: the optimum, or the prior, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub choice: Choice,
    pub reason: String,
}

impl Recommendation {
    /// From the gain alone: the optimum only when its gain is clear of its bootstrap spread
    /// ([`Gain::is_clear`]). What a version-2 `optimum.parquet` (written before optimize made
    /// recommendations) implies.
    pub fn from_gain(g: &Gain) -> Recommendation {
        if g.is_clear() {
            Recommendation {
                choice: Choice::Optimum,
                reason: format!("the predicted gain over the prior is clear: {}", g.describe()),
            }
        } else {
            Recommendation {
                choice: Choice::Prior,
                reason: format!(
                    "the predicted gain over the prior is not clear of its bootstrap spread: {}",
                    g.describe()
                ),
            }
        }
    }
}

/// One optimum: its weights (with their bootstrap spread), the prediction there, the gain over
/// the prior, and the prior it was searched from.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimum {
    pub domains: Vec<String>,
    pub weights: Vec<f64>,
    /// Per domain, over bootstrap refits (None without a bootstrap).
    pub weight_std: Option<Vec<f64>>,
    pub predicted: f64,
    pub predicted_std: Option<f64>,
    pub gain: Gain,
    /// The target expression the optimum minimises.
    pub target: String,
    /// The prior searched, in `domains` order.
    pub prior: Vec<f64>,
    /// What to train the target on.
    pub recommendation: Recommendation,
}

impl Optimum {
    /// Reads `optimum.parquet` against its contract.
    pub fn read(path: &Path) -> Result<Optimum> {
        Optimum::from_table(&read_parquet(path, Schema::get("optimum"))?)
    }

    /// The optimum in a table already read (`report` reads it through its page, which
    /// records the file's provenance).
    pub fn from_table(t: &Table) -> Result<Optimum> {
        let domains = t.list("domain")?.to_vec();
        let first = |c: Vec<f64>| c[0];
        let weights: Vec<f64> = t.wide_f64(WEIGHT, &domains)?.into_iter().map(first).collect();
        let sd: Vec<Option<f64>> = domains
            .iter()
            .map(|d| Ok(t.f64_opt_values(&regmix_core::columns::wide(WEIGHT_STD, d))?[0]))
            .collect::<Result<_>>()?;
        let weight_std = sd.iter().copied().collect::<Option<Vec<f64>>>();
        let prior_map: serde_json::Map<String, serde_json::Value> = t.json_metadata(KEY_PRIOR)?;
        let prior = domains
            .iter()
            .map(|d| {
                prior_map
                    .get(d)
                    .and_then(|v| v.as_f64())
                    .ok_or_else(|| Error::metadata(&t.path, KEY_PRIOR, format!("no weight for domain `{d}`")))
            })
            .collect::<Result<Vec<f64>>>()?;
        let opt = |c: &str| -> Result<Option<f64>> { Ok(t.f64_opt_values(c)?[0]) };
        let gain = Gain {
            prior: t.f64_values("predicted_prior")?[0],
            gain: t.f64_values("predicted_gain")?[0],
            std: opt("predicted_gain_std")?,
            win_share: opt("bootstrap_win_share")?,
        };
        // A version-2 file has no recommendation: the one its gain implies.
        let recommendation = if t.batch.schema().index_of("recommendation").is_ok() {
            let text = t.str("recommendation")?.value(0).to_string();
            let choice = Choice::parse(&text).ok_or_else(|| {
                Error::value(&t.path, 0, "recommendation", format!("`{text}` is neither `optimum` nor `prior`"))
            })?;
            Recommendation { choice, reason: t.str("recommendation_reason")?.value(0).to_string() }
        } else {
            Recommendation::from_gain(&gain)
        };
        Ok(Optimum {
            weights,
            weight_std,
            predicted: t.f64_values("predicted")?[0],
            predicted_std: opt("predicted_std")?,
            gain,
            target: t.metadata.get(KEY_TARGET).cloned().unwrap_or_default(),
            prior,
            domains,
            recommendation,
        })
    }

    /// Writes `optimum.parquet` atomically; `constraints` is the JSON of the caps and minima the
    /// optimum satisfies.
    pub fn write(&self, path: &Path, constraints: &serde_json::Value, prov: &Provenance) -> Result<()> {
        let d = &self.domains;
        let lists = dom_lists(d);
        let mut cols = vec![
            col::f64(vec![self.predicted]),
            col::f64_opt(vec![self.predicted_std]),
            col::f64(vec![self.gain.prior]),
            col::f64(vec![self.gain.gain]),
            col::f64_opt(vec![self.gain.std]),
            col::f64_opt(vec![self.gain.win_share]),
            col::str(&[self.recommendation.choice.as_str()]),
            col::str(&[self.recommendation.reason.as_str()]),
        ];
        cols.extend(self.weights.iter().map(|x| col::f64(vec![*x])));
        cols.extend((0..d.len()).map(|j| col::f64_opt(vec![self.weight_std.as_ref().map(|s| s[j])])));
        let prior: serde_json::Map<_, _> =
            d.iter().zip(&self.prior).map(|(k, x)| (k.clone(), serde_json::json!(x))).collect();
        let md = vec![
            (KEY_CONSTRAINTS.to_string(), constraints.to_string()),
            (KEY_TARGET.to_string(), self.target.clone()),
            (KEY_PRIOR.to_string(), serde_json::Value::Object(prior).to_string()),
        ];
        let s = Schema::get("optimum");
        write_parquet(path, s, &lists, &batch(s, &lists, cols)?, &md, prov)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gain_is_clear_only_when_positive_over_two_sd_and_in_every_refit() {
        let g = |gain, std, win_share| Gain { prior: 5.0, gain, std, win_share };
        assert!(g(0.10, Some(0.04), Some(1.0)).is_clear());
        assert!(!g(0.10, Some(0.06), Some(1.0)).is_clear(), "under two sd");
        assert!(!g(0.10, Some(0.01), Some(0.9)).is_clear(), "one refit disagrees");
        assert!(!g(-0.10, Some(0.01), Some(1.0)).is_clear(), "the prior is predicted lower");
        assert!(!g(0.10, None, None).is_clear(), "no bootstrap, nothing to judge by");
        assert!(g(0.10, None, None).describe().contains("--bootstrap"));
    }

    #[test]
    fn an_optimum_round_trips_through_its_contract() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("optimum.parquet");
        let o = Optimum {
            domains: vec!["a".into(), "b".into()],
            weights: vec![0.25, 0.75],
            weight_std: Some(vec![0.01, 0.02]),
            predicted: 4.5,
            predicted_std: Some(0.1),
            gain: Gain { prior: 4.6, gain: 0.1, std: Some(0.03), win_share: Some(1.0) },
            target: "valid_loss.a".into(),
            prior: vec![0.5, 0.5],
            recommendation: Recommendation { choice: Choice::Prior, reason: "because".into() },
        };
        o.write(&p, &serde_json::json!({}), &Provenance::new("optimize", "0", &[])).unwrap();
        assert_eq!(Optimum::read(&p).unwrap(), o);
        let plain =
            Optimum { weight_std: None, predicted_std: None, gain: Gain { std: None, win_share: None, ..o.gain }, ..o };
        plain.write(&p, &serde_json::json!({}), &Provenance::new("optimize", "0", &[])).unwrap();
        assert_eq!(Optimum::read(&p).unwrap(), plain);
    }

    #[test]
    fn a_version_2_optimum_reads_with_the_recommendation_its_gain_implies() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("optimum.parquet");
        // Written as optimize wrote version 2: no recommendation columns.
        let mut v2 = Schema::get("optimum").clone();
        v2.version = 2;
        v2.columns.retain(|c| c.since <= 2);
        let lists = dom_lists(&["a".to_string(), "b".to_string()]);
        let cols = vec![
            col::f64(vec![4.5]),
            col::f64_opt(vec![None]),
            col::f64(vec![4.6]),
            col::f64(vec![0.1]),
            col::f64_opt(vec![Some(0.01)]),
            col::f64_opt(vec![Some(1.0)]),
            col::f64(vec![0.25]),
            col::f64(vec![0.75]),
            col::f64_opt(vec![None]),
            col::f64_opt(vec![None]),
        ];
        let md = vec![
            (KEY_CONSTRAINTS.to_string(), "{}".to_string()),
            (KEY_TARGET.to_string(), "valid_loss.a".to_string()),
            (KEY_PRIOR.to_string(), r#"{"a": 0.5, "b": 0.5}"#.to_string()),
        ];
        write_parquet(&p, &v2, &lists, &batch(&v2, &lists, cols).unwrap(), &md, &Provenance::new("optimize", "0", &[]))
            .unwrap();
        let o = Optimum::read(&p).unwrap();
        assert_eq!(o.recommendation.choice, Choice::Optimum, "a gain of 0.1 ± 0.01 in every refit is clear");
    }
}
