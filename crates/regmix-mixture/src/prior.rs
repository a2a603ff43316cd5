//! The token-share prior: p_d = training tokens of domain d / all training tokens.

use std::collections::BTreeMap;
use std::path::Path;

use regmix_core::schema::Schema;
use regmix_core::table::read_parquet;
use regmix_core::{domain, Error, Result};
use serde::Deserialize;

/// Domains with their prior weight (summing to 1) and, when known, their training tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct Prior {
    pub domains: Vec<String>,
    pub weights: Vec<f64>,
    pub tokens: Option<Vec<u64>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PriorJson {
    Tokens { tokens: BTreeMap<String, u64> },
    Weights { weights: BTreeMap<String, f64> },
    Bare(BTreeMap<String, f64>),
}

impl Prior {
    /// A prior from weights in the given order; normalised to sum 1.
    pub fn from_weights(domains: Vec<String>, weights: Vec<f64>) -> Result<Self> {
        if domains.len() != weights.len() || domains.is_empty() {
            return Err(Error::Invalid("a prior needs one weight per domain, and a domain".into()));
        }
        for (d, w) in domains.iter().zip(&weights) {
            domain::validate(d)?;
            if !(w.is_finite() && *w >= 0.0) {
                return Err(Error::Invalid(format!("prior weight of `{d}` is {w}; weights are finite and >= 0")));
            }
        }
        let s: f64 = weights.iter().sum();
        if s <= 0.0 {
            return Err(Error::Invalid("prior weights sum to 0".into()));
        }
        Ok(Prior { domains, weights: weights.iter().map(|w| w / s).collect(), tokens: None })
    }

    pub fn from_tokens(domains: Vec<String>, tokens: Vec<u64>) -> Result<Self> {
        let mut p = Prior::from_weights(domains, tokens.iter().map(|&t| t as f64).collect())?;
        p.tokens = Some(tokens);
        Ok(p)
    }

    /// Reads `prior.json`: `{"tokens": {domain: count}}`, `{"weights": {domain: w}}`, or a bare
    /// `{domain: w}`. Domains are taken in the file's key order, sorted by name.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let j: PriorJson = serde_json::from_str(&text).map_err(|e| Error::format(path, "prior.json", e))?;
        let wrap = |e: Error| Error::format(path, "prior.json", e);
        match j {
            PriorJson::Tokens { tokens } => {
                let (d, t): (Vec<_>, Vec<_>) = tokens.into_iter().unzip();
                Prior::from_tokens(d, t).map_err(wrap)
            }
            PriorJson::Weights { weights } | PriorJson::Bare(weights) => {
                let (d, w): (Vec<_>, Vec<_>) = weights.into_iter().unzip();
                Prior::from_weights(d, w).map_err(wrap)
            }
        }
    }

    /// The prior of a shard manifest: training tokens per domain, in the manifest's order.
    pub fn from_manifest(path: &Path) -> Result<Self> {
        let t = read_parquet(path, Schema::get("shard_manifest"))?;
        let dom = t.str("domain")?;
        let split = t.str("split")?;
        let tok = t.u64("tokens")?;
        if t.rows() == 0 {
            return Err(Error::Invalid(format!(
                "{}: the manifest is empty: it lists no shards (tokenize-shard wrote none?)",
                path.display()
            )));
        }
        let mut order: Vec<String> = Vec::new();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for i in 0..t.rows() {
            let d = dom.value(i).to_string();
            if !order.contains(&d) {
                order.push(d.clone());
            }
            if split.value(i) == "train" {
                *counts.entry(d).or_default() += tok.value(i);
            }
        }
        for d in &order {
            if counts.get(d).copied().unwrap_or(0) == 0 {
                return Err(Error::Invalid(format!("{}: domain `{d}` has no training tokens", path.display())));
            }
        }
        let tokens = order.iter().map(|d| counts[d]).collect();
        Prior::from_tokens(order, tokens)
    }

    /// Either source, as the stages' `--manifest`/`--prior` flags give it.
    pub fn load(manifest: Option<&Path>, prior: Option<&Path>) -> Result<Self> {
        match (manifest, prior) {
            (Some(m), None) => Prior::from_manifest(m),
            (None, Some(p)) => Prior::from_json_file(p),
            _ => Err(Error::Invalid("give exactly one of --manifest and --prior".into())),
        }
    }

    /// The tempered prior q ∝ p^temperature.
    pub fn tempered(&self, temperature: f64) -> Vec<f64> {
        let q: Vec<f64> = self.weights.iter().map(|p| p.powf(temperature)).collect();
        let s: f64 = q.iter().sum();
        q.iter().map(|x| x / s).collect()
    }

    /// Availability bounds b_d = min(1, max_epochs · tokens_d / target_tokens). With no
    /// target, the target is all training tokens, which gives the paper's min(1, 15 · p_d).
    pub fn bounds(&self, max_epochs: f64, target_tokens: Option<u64>) -> Result<Vec<f64>> {
        match target_tokens {
            None => Ok(self.weights.iter().map(|p| (max_epochs * p).min(1.0)).collect()),
            Some(t) => {
                let tokens = self.tokens.as_ref().ok_or_else(|| {
                    Error::Invalid(
                        "--target-tokens needs token counts: use --manifest, or a prior.json of the form {\"tokens\": {...}}"
                            .into(),
                    )
                })?;
                Ok(tokens.iter().map(|&n| (max_epochs * n as f64 / t as f64).min(1.0)).collect())
            }
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let w: serde_json::Map<String, serde_json::Value> =
            self.domains.iter().zip(&self.weights).map(|(d, w)| (d.clone(), (*w).into())).collect();
        match &self.tokens {
            Some(t) => {
                serde_json::json!({"weights": w, "tokens": self.domains.iter().zip(t).map(|(d, n)| (d.clone(), *n)).collect::<BTreeMap<_,_>>()})
            }
            None => serde_json::json!({ "weights": w }),
        }
    }
}

/// The Pile's token-share prior that the RegMix paper used, in its column order.
pub fn pile_prior() -> Prior {
    let pairs = [
        ("arxiv", 0.113285273),
        ("freelaw", 0.079608651),
        ("nih_exporter", 0.003913491),
        ("pubmed_central", 0.185375901),
        ("wikipedia_en", 0.051081359),
        ("dm_mathematics", 0.015962925),
        ("github", 0.101750772),
        ("philpapers", 0.003707518),
        ("stackexchange", 0.066529351),
        ("enron_emails", 0.001750772),
        ("gutenberg_pg_19", 0.027085479),
        ("pile_cc", 0.236869207),
        ("ubuntu_irc", 0.01184346),
        ("europarl", 0.007929969),
        ("hackernews", 0.008032956),
        ("pubmed_abstracts", 0.038825953),
        ("uspto_backgrounds", 0.046446962),
    ];
    Prior::from_weights(pairs.iter().map(|p| p.0.to_string()).collect(), pairs.iter().map(|p| p.1).collect()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bounds_are_the_papers_fifteen_times_share() {
        let p = pile_prior();
        let b = p.bounds(15.0, None).unwrap();
        let i = p.domains.iter().position(|d| d == "enron_emails").unwrap();
        assert!((b[i] - 15.0 * p.weights[i]).abs() < 1e-12);
        let cc = p.domains.iter().position(|d| d == "pile_cc").unwrap();
        assert_eq!(b[cc], 1.0);
    }

    #[test]
    fn target_tokens_bound_uses_token_counts() {
        let p = Prior::from_tokens(vec!["a".into(), "b".into()], vec![100, 900]).unwrap();
        let b = p.bounds(2.0, Some(1000)).unwrap();
        assert_eq!(b, vec![0.2, 1.0]);
        let w = Prior::from_weights(vec!["a".into()], vec![1.0]).unwrap();
        assert!(w.bounds(2.0, Some(10)).is_err());
    }

    #[test]
    fn tempered_prior_flattens_with_temperature_below_one() {
        let p = Prior::from_weights(vec!["a".into(), "b".into()], vec![0.9, 0.1]).unwrap();
        let q = p.tempered(0.5);
        assert!((q[0] - 0.75).abs() < 1e-12 && (q[1] - 0.25).abs() < 1e-12);
    }

    #[test]
    fn prior_json_accepts_tokens_weights_and_bare_forms() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.json");
        std::fs::write(&f, r#"{"tokens": {"web": 300, "code": 100}}"#).unwrap();
        let p = Prior::from_json_file(&f).unwrap();
        assert_eq!(p.domains, vec!["code", "web"]);
        assert_eq!(p.weights, vec![0.25, 0.75]);
        std::fs::write(&f, r#"{"web": 3, "code": 1}"#).unwrap();
        assert!(Prior::from_json_file(&f).unwrap().tokens.is_none());
        std::fs::write(&f, r#"{"Web": 3}"#).unwrap();
        let e = Prior::from_json_file(&f).unwrap_err().to_string();
        assert!(e.contains("p.json") && e.contains("Web"), "{e}");
    }
}
