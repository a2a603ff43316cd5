//! `calibration.parquet`: one row per proxy recipe (schemas/calibration.json).

use std::path::Path;

use regmix_core::schema::Lists;
use regmix_core::schema::Schema;
use regmix_core::table::{batch, col, read_parquet, write_parquet};
use regmix_core::{Error, Provenance, Result};
use serde::{Deserialize, Serialize};

/// The metadata key of the calibration's inputs and target mixtures.
pub const KEY: &str = regmix_core::keys::CALIBRATION;

/// One recipe's row.
#[derive(Clone, Debug, PartialEq)]
pub struct RecipeRow {
    pub recipe: String,
    pub mixtures: u32,
    pub planned: u32,
    pub tokens: u64,
    pub params: u64,
    pub tokens_per_param: f64,
    pub flops_per_proxy: f64,
    pub spearman: Option<f64>,
    pub spearman_lo: Option<f64>,
    pub spearman_hi: Option<f64>,
    pub pairwise: Option<f64>,
    pub pairwise_lo: Option<f64>,
    pub pairwise_hi: Option<f64>,
    pub prior_decisions: u32,
    pub prior_agree: u32,
    pub top_mixtures: u32,
    pub top_spearman: Option<f64>,
    pub top_prior_decisions: u32,
    pub top_prior_agree: u32,
    /// `regmix_regress::agreement::Verdict::as_str`.
    pub verdict: String,
    /// The proxies' target loss per target mixture (None where the recipe has no proxy).
    pub proxy_losses: Vec<Option<f64>>,
    /// The recipe's training settings (run_settings.train, tokens at the evaluation used).
    pub settings: serde_json::Value,
}

/// One target mixture as the calibration read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetMixture {
    pub id: u32,
    pub name: String,
    pub weights: Vec<f64>,
    /// The mean of its target runs' losses.
    pub loss: f64,
    /// Its target runs' losses (one per seed or run).
    pub runs: Vec<f64>,
}

/// A file the calibration read, with its sha256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub file: String,
    pub sha256: String,
}

/// The calibration's inputs: what `regmix.calibration` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub target: String,
    pub targets: Vec<Input>,
    pub domains: Vec<String>,
    pub mixtures: Vec<TargetMixture>,
    pub prior: Option<String>,
    pub bootstrap: usize,
    pub seed: u64,
    pub interval: [f64; 2],
}

/// A whole calibration table.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    pub inputs: Inputs,
    pub rows: Vec<RecipeRow>,
}

fn opt(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

impl Calibration {
    pub fn write(&self, path: &Path, prov: &Provenance) -> Result<()> {
        let s = Schema::get("calibration");
        let lists = Lists::new();
        let r = &self.rows;
        let f = |g: fn(&RecipeRow) -> f64| col::f64(r.iter().map(g).collect());
        let fo = |g: fn(&RecipeRow) -> Option<f64>| col::f64_opt(r.iter().map(|x| opt(g(x))).collect());
        let strs = |g: fn(&RecipeRow) -> String| col::str(&r.iter().map(g).collect::<Vec<_>>());
        let cols = vec![
            strs(|x| x.recipe.clone()),
            col::u32(r.iter().map(|x| x.mixtures).collect()),
            col::u32(r.iter().map(|x| x.planned).collect()),
            col::u64(r.iter().map(|x| x.tokens).collect()),
            col::u64(r.iter().map(|x| x.params).collect()),
            f(|x| x.tokens_per_param),
            f(|x| x.flops_per_proxy),
            fo(|x| x.spearman),
            fo(|x| x.spearman_lo),
            fo(|x| x.spearman_hi),
            fo(|x| x.pairwise),
            fo(|x| x.pairwise_lo),
            fo(|x| x.pairwise_hi),
            col::u32(r.iter().map(|x| x.prior_decisions).collect()),
            col::u32(r.iter().map(|x| x.prior_agree).collect()),
            col::u32(r.iter().map(|x| x.top_mixtures).collect()),
            fo(|x| x.top_spearman),
            col::u32(r.iter().map(|x| x.top_prior_decisions).collect()),
            col::u32(r.iter().map(|x| x.top_prior_agree).collect()),
            strs(|x| x.verdict.clone()),
            strs(|x| serde_json::to_string(&x.proxy_losses).expect("floats and nulls")),
            strs(|x| x.settings.to_string()),
        ];
        let b = batch(s, &lists, cols)?;
        let md = serde_json::to_string(&self.inputs).expect("plain data");
        write_parquet(path, s, &lists, &b, &[(KEY.to_string(), md)], prov)
    }

    pub fn read(path: &Path) -> Result<Calibration> {
        let t = read_parquet(path, Schema::get("calibration"))?;
        let inputs: Inputs = t.json_metadata(KEY)?;
        let n = t.rows();
        let strs = |name: &str| -> Result<Vec<String>> {
            Ok(t.str(name)?.iter().map(|v| v.unwrap_or_default().to_string()).collect())
        };
        let (recipe, verdict, losses, settings) =
            (strs("recipe")?, strs("verdict")?, strs("proxy_losses")?, strs("settings")?);
        let u32s = |name: &str| -> Result<Vec<u32>> { Ok(t.u32(name)?.values().to_vec()) };
        let (mixtures, planned, decisions, agree) =
            (u32s("mixtures")?, u32s("planned")?, u32s("prior_decisions")?, u32s("prior_agree")?);
        let (top, top_decisions, top_agree) =
            (u32s("top_mixtures")?, u32s("top_prior_decisions")?, u32s("top_prior_agree")?);
        let top_sp = t.f64_opt_values("top_spearman")?;
        let tokens = t.u64("tokens")?.values().to_vec();
        let params = t.u64("params")?.values().to_vec();
        let tpp = t.f64_values("tokens_per_param")?;
        let flops = t.f64_values("flops_per_proxy")?;
        let o = |name: &str| t.f64_opt_values(name);
        let (sp, sl, sh, pw, pl, ph) = (
            o("spearman")?,
            o("spearman_lo")?,
            o("spearman_hi")?,
            o("pairwise")?,
            o("pairwise_lo")?,
            o("pairwise_hi")?,
        );
        let mut rows = Vec::with_capacity(n);
        for i in 0..n {
            let bad = |field: &str, e: serde_json::Error| {
                Error::value(path, i, field, format!("not the JSON the contract says: {e}"))
            };
            rows.push(RecipeRow {
                recipe: recipe[i].clone(),
                mixtures: mixtures[i],
                planned: planned[i],
                tokens: tokens[i],
                params: params[i],
                tokens_per_param: tpp[i],
                flops_per_proxy: flops[i],
                spearman: sp[i],
                spearman_lo: sl[i],
                spearman_hi: sh[i],
                pairwise: pw[i],
                pairwise_lo: pl[i],
                pairwise_hi: ph[i],
                prior_decisions: decisions[i],
                prior_agree: agree[i],
                top_mixtures: top[i],
                top_spearman: top_sp[i],
                top_prior_decisions: top_decisions[i],
                top_prior_agree: top_agree[i],
                verdict: verdict[i].clone(),
                proxy_losses: serde_json::from_str(&losses[i]).map_err(|e| bad("proxy_losses", e))?,
                settings: serde_json::from_str(&settings[i]).map_err(|e| bad("settings", e))?,
            });
        }
        Ok(Calibration { inputs, rows })
    }

    /// The recommended recipe, if any.
    pub fn recommended(&self) -> Option<&RecipeRow> {
        self.rows.iter().find(|r| r.verdict == "recommended")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, verdict: &str) -> RecipeRow {
        RecipeRow {
            recipe: name.into(),
            mixtures: 16,
            planned: 16,
            tokens: 262_144,
            params: 1_000_000,
            tokens_per_param: 0.262144,
            flops_per_proxy: 1.5e12,
            spearman: Some(0.5),
            spearman_lo: Some(0.1),
            spearman_hi: None,
            pairwise: Some(0.7),
            pairwise_lo: Some(0.6),
            pairwise_hi: Some(0.8),
            prior_decisions: 15,
            prior_agree: 11,
            top_mixtures: 5,
            top_spearman: Some(-0.4),
            top_prior_decisions: 4,
            top_prior_agree: 2,
            verdict: verdict.into(),
            proxy_losses: vec![Some(5.0), None],
            settings: serde_json::json!({"lr": 0.003, "tokens": 262144}),
        }
    }

    #[test]
    fn a_calibration_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("calibration.parquet");
        let c = Calibration {
            inputs: Inputs {
                target: "mean(valid_loss.*)".into(),
                targets: vec![Input { file: "t.parquet".into(), sha256: "ab".into() }],
                domains: vec!["a".into(), "b".into()],
                mixtures: vec![TargetMixture {
                    id: 0,
                    name: "prior".into(),
                    weights: vec![0.5, 0.5],
                    loss: 4.5,
                    runs: vec![4.4, 4.6],
                }],
                prior: Some("prior".into()),
                bootstrap: 100,
                seed: 42,
                interval: [0.05, 0.95],
            },
            rows: vec![row("default", "no signal"), row("slow", "recommended")],
        };
        c.write(&p, &Provenance::new("calibrate", "0", &["test"])).unwrap();
        let back = Calibration::read(&p).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.recommended().unwrap().recipe, "slow");
    }
}
