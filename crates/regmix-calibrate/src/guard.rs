//! The guardrail: are proxies of these settings in a regime that ranks mixtures as the target
//! does? A calibration table (`calibrate score`) answers for the settings it measured; without
//! one, the published floor does: every published case of small-model mixture rankings holding
//! at scale trained its proxies on about 15–100 tokens per parameter (RegMix's own proxies
//! about 70, olmix and DataDecide 100; `docs/calibration.md` has the sources).

use std::path::{Path, PathBuf};

use regmix_core::Result;
use regmix_spec::RunSettings;
use serde_json::Value;

use crate::table::{Calibration, RecipeRow};

/// Tokens per parameter below which no published proxy ranking is known to have transferred.
pub const PUBLISHED_TOKENS_PER_PARAM: f64 = 15.0;

/// The settings that do not change what a proxy learns: where and how often it is evaluated
/// and checkpointed, its micro-batch (the step's sum is the same) and its seed (a recipe is
/// calibrated whatever the seed). Two runs whose other settings are equal follow one recipe.
const NOT_RECIPE: [&str; 6] = ["eval_every", "eval_at", "eval_windows", "checkpoint_every", "micro_batch", "seed"];

/// The recipe of a run's training settings (run_settings.train, a `TrainSpec` as JSON) with
/// `tokens` set to the evaluation used: what [`Regime::assess`] matches calibration rows on.
pub fn recipe_key(train: &Value, tokens: u64) -> Value {
    let mut k = train.clone();
    if let Value::Object(m) = &mut k {
        for key in NOT_RECIPE {
            m.remove(key);
        }
        m.insert("tokens".into(), Value::from(tokens));
    }
    k
}

/// What is known of proxies of given settings.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per run, never in a collection: boxing buys nothing
pub enum Regime {
    /// A calibration measured this recipe.
    Calibrated { file: PathBuf, row: RecipeRow, recommended: Option<RecipeRow>, targets: usize },
    /// No calibration of this recipe (`calibration` names the table that lacks it, if any).
    Uncalibrated { tokens_per_param: f64, tokens: u64, params: u64, calibration: Option<PathBuf> },
}

impl Regime {
    /// The regime of proxies trained with `train` (run_settings.train) to `tokens` on a model
    /// of `params` parameters, from the calibration table `calibration` if one is given.
    pub fn assess(train: &Value, tokens: u64, params: u64, calibration: Option<&Path>) -> Result<Regime> {
        let key = recipe_key(train, tokens);
        if let Some(path) = calibration {
            let c = Calibration::read(path)?;
            if let Some(row) = c.rows.iter().find(|r| recipe_key(&r.settings, r.tokens) == key) {
                return Ok(Regime::Calibrated {
                    file: path.to_path_buf(),
                    row: row.clone(),
                    recommended: c.recommended().cloned(),
                    targets: c.inputs.mixtures.len(),
                });
            }
        }
        Ok(Regime::Uncalibrated {
            tokens_per_param: tokens as f64 / params.max(1) as f64,
            tokens,
            params,
            calibration: calibration.map(Path::to_path_buf),
        })
    }

    /// The regime of the runs of a dataset, from its `regmix.run_settings` and the tokens of
    /// its evaluation; None for imported results, which record no settings.
    pub fn of_run_settings(
        settings: Option<&RunSettings>,
        tokens: u64,
        calibration: Option<&Path>,
    ) -> Result<Option<Regime>> {
        let Some(s) = settings else { return Ok(None) };
        let train = serde_json::to_value(&s.train).expect("settings serialise");
        Regime::assess(&train, tokens, s.train.model.n_params() as u64, calibration).map(Some)
    }

    /// Whether the evidence says these proxies rank mixtures as the target does.
    pub fn ranks_well(&self) -> bool {
        match self {
            Regime::Calibrated { row, .. } => {
                matches!(row.verdict.as_str(), "recommended" | "within noise of the best")
            }
            Regime::Uncalibrated { tokens_per_param, .. } => *tokens_per_param >= PUBLISHED_TOKENS_PER_PARAM,
        }
    }

    /// One paragraph: what is known, with the numbers, and (when the regime ranks wrongly)
    /// the action to take.
    pub fn message(&self) -> String {
        match self {
            Regime::Calibrated { file, row, recommended, targets } => {
                let measured = format!(
                    "{}: proxies of these settings (recipe `{}`, {} tokens, {:.2} tokens per parameter) ranked {} of its {} \
                     target-scale mixtures with Spearman {} (90% interval {} to {}) and called {} of {} mixtures better or \
                     worse than the prior as the targets did ({} of the {} nearest the top): {}",
                    file.display(),
                    row.recipe,
                    row.tokens,
                    row.tokens_per_param,
                    row.mixtures,
                    targets,
                    fmt(row.spearman),
                    fmt(row.spearman_lo),
                    fmt(row.spearman_hi),
                    row.prior_agree,
                    row.prior_decisions,
                    row.top_prior_agree,
                    row.top_prior_decisions,
                    row.verdict
                );
                if self.ranks_well() {
                    return measured + ".";
                }
                let action = match recommended {
                    Some(r) => format!(
                        "train the proxies as recipe `{}` instead ({} tokens, Spearman {}: its settings are in the table's \
                         `settings` column)",
                        r.recipe,
                        r.tokens,
                        fmt(r.spearman)
                    ),
                    None => "no recipe in the table ranks the targets: trust the prior (optimize recommends it when its \
                             gain is unclear) or calibrate longer proxies"
                        .to_string(),
                };
                format!("{measured}. Their optimum may lose to the prior at the target's scale; {action}.")
            }
            Regime::Uncalibrated { tokens_per_param, tokens, params, calibration } => {
                let lacks = calibration
                    .as_ref()
                    .map(|c| format!(" ({} has no row with these settings)", c.display()))
                    .unwrap_or_default();
                let measured = format!(
                    "proxies of {tokens} tokens on {params} parameters see {tokens_per_param:.2} tokens per parameter{lacks}"
                );
                if self.ranks_well() {
                    return format!("{measured}, above the ~{PUBLISHED_TOKENS_PER_PARAM} at which published mixture rankings transferred.");
                }
                format!(
                    "{measured}, below the ~{PUBLISHED_TOKENS_PER_PARAM} at which published mixture rankings transferred to larger \
                     models (RegMix, olmix, DataDecide); on our own corpus, proxies of 0.2 tokens per parameter chose a mixture \
                     that lost to the prior at 16x their length. Calibrate them against target-scale runs you have \
                     (`calibrate`, docs/calibration.md) and pass the table with --calibration, or train longer proxies."
                )
            }
        }
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Inputs, TargetMixture};
    use regmix_core::Provenance;
    use serde_json::json;

    fn train() -> Value {
        json!({"lr": 0.003, "tokens": 2097152, "warmup_steps": 25, "eval_every": 256, "eval_at": [256], "seed": 42, "micro_batch": 8})
    }

    #[test]
    fn every_setting_left_out_of_the_recipe_is_a_training_setting() {
        // recipe_key removes these by name: a renamed TrainSpec field would silently stay in.
        let mut spec = regmix_spec::TrainSpec::example(regmix_model::Config::preset("micro", 256).unwrap(), 8192);
        spec.eval_at = vec![1];
        let v = serde_json::to_value(spec).unwrap();
        for key in NOT_RECIPE {
            assert!(v.get(key).is_some(), "{key} is not a TrainSpec field");
        }
    }

    #[test]
    fn recipe_key_ignores_evaluation_and_seed_but_not_the_learning_rate() {
        let a = recipe_key(&train(), 262_144);
        let mut other = train();
        other["eval_every"] = json!(32);
        other["seed"] = json!(7);
        assert_eq!(recipe_key(&other, 262_144), a);
        other["lr"] = json!(0.0003);
        assert_ne!(recipe_key(&other, 262_144), a);
    }

    #[test]
    fn without_a_calibration_proxies_below_the_published_floor_rank_wrongly() {
        let r = Regime::assess(&train(), 262_144, 1_300_000, None).unwrap();
        assert!(!r.ranks_well());
        assert!(r.message().contains("0.20 tokens per parameter"), "{}", r.message());
    }

    #[test]
    fn without_a_calibration_proxies_above_the_published_floor_pass() {
        assert!(Regime::assess(&train(), 20_000_000, 1_000_000, None).unwrap().ranks_well());
    }

    fn table(dir: &Path, verdict: &str) -> PathBuf {
        let row = |name: &str, tokens: u64, verdict: &str| crate::table::RecipeRow {
            recipe: name.into(),
            mixtures: 16,
            planned: 16,
            tokens,
            params: 1_300_000,
            tokens_per_param: tokens as f64 / 1.3e6,
            flops_per_proxy: 1e12,
            spearman: Some(0.4),
            spearman_lo: Some(-0.1),
            spearman_hi: Some(0.7),
            pairwise: Some(0.6),
            pairwise_lo: Some(0.5),
            pairwise_hi: Some(0.7),
            prior_decisions: 15,
            prior_agree: 9,
            top_mixtures: 5,
            top_spearman: Some(0.2),
            top_prior_decisions: 4,
            top_prior_agree: 3,
            verdict: verdict.into(),
            proxy_losses: vec![],
            settings: train(),
        };
        let c = Calibration {
            inputs: Inputs {
                target: "mean(valid_loss.*)".into(),
                targets: vec![],
                domains: vec![],
                mixtures: vec![TargetMixture {
                    id: 0,
                    name: "prior".into(),
                    weights: vec![1.0],
                    loss: 1.0,
                    runs: vec![1.0],
                }],
                prior: None,
                bootstrap: 10,
                seed: 1,
                interval: [0.05, 0.95],
            },
            rows: vec![row("default", 262_144, verdict), row("long", 2_097_152, "recommended")],
        };
        let p = dir.join("calibration.parquet");
        c.write(&p, &Provenance::new("calibrate", "0", &[])).unwrap();
        p
    }

    #[test]
    fn a_calibrated_recipe_that_ranks_wrongly_names_the_recommended_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = table(dir.path(), "no signal");
        let r = Regime::assess(&train(), 262_144, 1_300_000, Some(&p)).unwrap();
        assert!(!r.ranks_well());
        assert!(r.message().contains("recipe `long`"), "{}", r.message());
    }

    #[test]
    fn a_calibrated_recipe_that_ranks_well_passes_whatever_its_tokens_per_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let p = table(dir.path(), "within noise of the best");
        assert!(Regime::assess(&train(), 262_144, 1_300_000, Some(&p)).unwrap().ranks_well());
    }

    #[test]
    fn settings_the_calibration_lacks_fall_back_to_the_published_floor() {
        let dir = tempfile::tempdir().unwrap();
        let p = table(dir.path(), "recommended");
        let r = Regime::assess(&train(), 524_288, 1_300_000, Some(&p)).unwrap();
        assert!(matches!(r, Regime::Uncalibrated { .. }));
        assert!(r.message().contains("has no row with these settings"), "{}", r.message());
    }
}
