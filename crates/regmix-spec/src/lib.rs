//! What a training run is, in one typed form that every writer and reader uses:
//!
//! - [`TrainSpec`]: the training settings (model, tokens, batch, schedule, optimizer,
//!   evaluation, seed): a run's `regmix.train`;
//! - [`RunSpec`]: what a run is, the settings with its mixture and the corpus it read: the
//!   run's `regmix.run_spec`, its `done.json` and its checkpoint record it, and a rerun
//!   compares its own with it;
//! - [`RunSettings`]: a [`RunSpec`] less its mixture, what every run of a dataset shares: the
//!   dataset's `regmix.run_settings` (collect writes it; optimize, calibrate and the guardrail
//!   read it), null for imported results.
//!
//! The files' contracts (`schemas/run_metrics.json`, `run_done.json`, `dataset.json`,
//! `results_settings.json`) document these fields; this crate is their only definition. A
//! setting this build does not know is an error, not dropped: runs compared as "trained
//! alike" are compared on every setting they recorded.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use regmix_core::keys;
pub use regmix_model::{AdamW, Config};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Linear warmup, then constant (the paper's proxies).
    Constant,
    /// Linear warmup, then cosine decay to `min_lr` at the last step (the paper's target).
    Cosine { min_lr: f64 },
}

/// Everything that determines a run besides its data and mixture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    pub model: Config,
    /// Training tokens (rounded up to whole optimizer steps).
    pub tokens: u64,
    /// Tokens per optimizer step (global batch).
    pub batch_tokens: u64,
    /// Sequences per forward/backward pass (gradient accumulation covers the rest).
    pub micro_batch: usize,
    pub lr: f64,
    pub warmup_steps: u64,
    pub schedule: Schedule,
    pub adamw: AdamW,
    pub grad_clip: f64,
    /// Evaluate every this many steps (and at the last step).
    pub eval_every: u64,
    /// Also evaluate at these steps (ascending): log-spaced points for fitting a loss curve.
    /// Absent from the specification when empty, so runs recorded before it stay the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eval_at: Vec<u64>,
    /// Validation windows per domain.
    pub eval_windows: usize,
    /// Repetition matching: draw each domain the target of this many tokens would repeat from
    /// a subset, so this run repeats it as often (regmix-train's `data::MixtureSampler::match_epochs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_epochs_of: Option<u64>,
    pub checkpoint_every: u64,
    /// Initialisation seed (the same for every mixture, so runs differ only in their data)
    /// and, with the mixture id, the data seed.
    pub seed: u64,
}

impl TrainSpec {
    /// A small valid specification of `model` for `tokens` tokens, for tests and examples:
    /// batches of 4 sequences in one micro-batch, constant 1e-3 after 10% warm-up, evaluated
    /// and checkpointed at every tenth of the run on 4 windows, seed 42. Not the CLI's defaults
    /// (regmix-train's `cli` chooses those).
    pub fn example(model: Config, tokens: u64) -> TrainSpec {
        let context = model.context as u64;
        let mut spec = TrainSpec {
            model,
            tokens,
            batch_tokens: 4 * context,
            micro_batch: 4,
            lr: 1e-3,
            warmup_steps: 0,
            schedule: Schedule::Constant,
            adamw: AdamW::default(),
            grad_clip: 1.0,
            eval_every: 1,
            eval_at: vec![],
            eval_windows: 4,
            match_epochs_of: None,
            checkpoint_every: 1,
            seed: 42,
        };
        let tenth = (spec.steps() / 10).max(1);
        (spec.warmup_steps, spec.eval_every, spec.checkpoint_every) = (tenth, tenth, tenth);
        spec
    }

    pub fn context(&self) -> usize {
        self.model.context
    }

    /// Sequences per optimizer step.
    pub fn sequences_per_step(&self) -> usize {
        (self.batch_tokens / self.context() as u64) as usize
    }

    pub fn steps(&self) -> u64 {
        self.tokens.div_ceil(self.sequences_per_step() as u64 * self.context() as u64)
    }

    pub fn check(&self) -> Result<()> {
        let t = self.context() as u64;
        let seqs = self.sequences_per_step();
        if self.batch_tokens % t != 0 || seqs == 0 {
            bail!("--batch-tokens {} must be a positive multiple of the context ({t})", self.batch_tokens);
        }
        if self.micro_batch == 0 || seqs % self.micro_batch != 0 {
            bail!(
                "--micro-batch {} must divide the {seqs} sequences of a step (--batch-tokens {} / context {t})",
                self.micro_batch,
                self.batch_tokens
            );
        }
        if self.tokens == 0 {
            bail!("--tokens must be positive");
        }
        if self.eval_every == 0 || self.checkpoint_every == 0 {
            bail!("--eval-every and --checkpoint-every must be positive");
        }
        if !(self.lr > 0.0) {
            bail!("--lr must be positive");
        }
        if let Some(w) = self.eval_at.windows(2).find(|w| w[0] >= w[1]) {
            bail!("--eval-at must list steps in ascending order without repeats ({} then {})", w[0], w[1]);
        }
        if self.eval_at.first() == Some(&0) {
            bail!("--eval-at: steps count from 1");
        }
        Ok(())
    }

    /// Whether 1-based step `s` ends with an evaluation.
    pub fn evaluates_at(&self, s: u64) -> bool {
        s % self.eval_every == 0 || s == self.steps() || self.eval_at.binary_search(&s).is_ok()
    }

    /// Learning rate of 1-based step `s`.
    pub fn lr_at(&self, s: u64) -> f64 {
        if s <= self.warmup_steps {
            return self.lr * s as f64 / self.warmup_steps as f64;
        }
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine { min_lr } => {
                let total = self.steps();
                let span = total.saturating_sub(self.warmup_steps).max(1) as f64;
                let ratio = ((s - self.warmup_steps) as f64 / span).min(1.0);
                min_lr + 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos()) * (self.lr - min_lr)
            }
        }
    }
}

/// What a run is: everything that determines its metrics. Recorded in `done.json`, in the
/// metrics' metadata (`regmix.run_spec`) and in the checkpoint; a rerun whose own differs
/// refuses, naming the differences, unless it is asked to retrain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    pub mixture_id: u64,
    /// The corpus's domains and the mixture's weight of each, in that order.
    pub domains: Vec<String>,
    pub weights: Vec<f64>,
    pub train: TrainSpec,
    /// The tokenizer (its sha256, checked against tokenizer.json when the corpus is opened).
    pub tokenizer_sha256: String,
    /// The shards: sha256 over the manifest's rows and tokenizer.
    pub shards_sha256: String,
}

impl RunSpec {
    /// The lines where `then` (a recorded spec, as JSON: a record of an older or newer build
    /// is compared field by field, not refused for its shape) differs from this one.
    pub fn differences(&self, then: &serde_json::Value) -> Vec<String> {
        regmix_core::json::differences(then, &serde_json::to_value(self).expect("a spec serialises"))
    }

    /// The run's settings less its mixture.
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            domains: self.domains.clone(),
            train: self.train.clone(),
            tokenizer_sha256: self.tokenizer_sha256.clone(),
            shards_sha256: self.shards_sha256.clone(),
        }
    }

    /// The `regmix.run_spec` of a run's metrics (`md`, the metadata of `file`), checked: one
    /// finite weight per domain. The error names the file and the key.
    pub fn from_metadata(md: &HashMap<String, String>, file: &Path) -> Result<RunSpec> {
        let bad = |message: String| regmix_core::Error::metadata(file, keys::RUN_SPEC, message);
        let Some(text) = md.get(keys::RUN_SPEC) else {
            return Err(bad("missing: not a metrics file of a regmix run".into()).into());
        };
        let spec: RunSpec = serde_json::from_str(text).map_err(|e| bad(format!("not a run specification: {e}")))?;
        if spec.domains.len() != spec.weights.len() {
            return Err(bad(format!("{} domains but {} weights", spec.domains.len(), spec.weights.len())).into());
        }
        if let Some(j) = spec.weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
            return Err(bad(format!("the weight of {} is {}, not a weight", spec.domains[j], spec.weights[j])).into());
        }
        Ok(spec)
    }

    /// This run's weight of `domain` (0 for a domain it does not name).
    pub fn weight_of(&self, domain: &str) -> f64 {
        self.domains.iter().position(|d| d == domain).map_or(0.0, |i| self.weights[i])
    }
}

/// What every run of a dataset was trained with, less its mixture: the dataset's
/// `regmix.run_settings` and a results settings file's `run_settings`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    pub domains: Vec<String>,
    pub train: TrainSpec,
    pub tokenizer_sha256: String,
    pub shards_sha256: String,
}

impl RunSettings {
    /// The settings as the JSON a file records (keys in sorted order, as every regmix JSON
    /// metadata value).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("settings serialise")
    }

    /// The lines where `other` differs from these settings.
    pub fn differences(&self, other: &RunSettings) -> Vec<String> {
        regmix_core::json::differences(&self.to_value(), &other.to_value())
    }

    /// Settings recorded as JSON (`null`: none, as for imported results); `source` names where
    /// they came from in the error.
    pub fn from_value(v: &serde_json::Value, source: &str) -> Result<Option<RunSettings>> {
        if v.is_null() {
            return Ok(None);
        }
        match serde_json::from_value(v.clone()) {
            Ok(s) => Ok(Some(s)),
            Err(e) => bail!("{source}: not run settings (domains, train, tokenizer_sha256, shards_sha256): {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec {
            mixture_id: 3,
            domains: vec!["web".into(), "code".into()],
            weights: vec![0.25, 0.75],
            train: TrainSpec::example(Config::preset("micro", 4096).expect("the micro preset"), 262_144),
            tokenizer_sha256: "a".repeat(64),
            shards_sha256: "b".repeat(64),
        }
    }

    fn metadata(text: &str) -> HashMap<String, String> {
        HashMap::from([(keys::RUN_SPEC.to_string(), text.to_string())])
    }

    #[test]
    fn a_run_spec_reads_back_from_its_metadata_bit_for_bit() {
        let s = spec();
        let md = metadata(&serde_json::to_string(&s).unwrap());
        assert_eq!(RunSpec::from_metadata(&md, Path::new("m.parquet")).unwrap(), s);
    }

    #[test]
    fn a_run_spec_with_a_weight_per_domain_missing_is_refused_naming_file_and_key() {
        let mut v = serde_json::to_value(spec()).unwrap();
        v["weights"] = serde_json::json!([1.0]);
        let e = RunSpec::from_metadata(&metadata(&v.to_string()), Path::new("runs/3/metrics.parquet")).unwrap_err();
        assert_eq!(e.to_string(), "runs/3/metrics.parquet: metadata key `regmix.run_spec`: 2 domains but 1 weights");
    }

    #[test]
    fn a_run_spec_without_training_settings_is_refused() {
        let mut v = serde_json::to_value(spec()).unwrap();
        v.as_object_mut().unwrap().remove("train");
        let e = RunSpec::from_metadata(&metadata(&v.to_string()), Path::new("m.parquet")).unwrap_err();
        assert!(e.to_string().contains("missing field `train`"), "{e}");
    }

    #[test]
    fn a_setting_this_build_does_not_know_is_refused_naming_it() {
        let mut v = serde_json::to_value(spec()).unwrap();
        v["train"]["label_smoothing"] = serde_json::json!(0.1);
        let e = RunSpec::from_metadata(&metadata(&v.to_string()), Path::new("m.parquet")).unwrap_err();
        assert!(e.to_string().contains("unknown field `label_smoothing`"), "{e}");
    }

    #[test]
    fn settings_are_the_spec_less_its_mixture() {
        let v = spec().settings().to_value();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["domains", "shards_sha256", "tokenizer_sha256", "train"]);
    }

    #[test]
    fn null_settings_are_none() {
        assert_eq!(RunSettings::from_value(&serde_json::Value::Null, "x").unwrap(), None);
    }

    #[test]
    fn settings_read_back_from_their_json() {
        let s = spec().settings();
        assert_eq!(RunSettings::from_value(&s.to_value(), "x").unwrap(), Some(s));
    }

    #[test]
    fn a_spec_written_before_eval_at_and_repetition_matching_reads_with_their_defaults() {
        let mut v = serde_json::to_value(spec()).unwrap();
        let t = v["train"].as_object_mut().unwrap();
        t.remove("eval_at");
        t.remove("match_epochs_of");
        assert_eq!(serde_json::from_value::<RunSpec>(v).unwrap(), spec());
    }

    #[test]
    fn a_spec_lacking_a_setting_without_a_default_is_refused_naming_it() {
        let mut v = serde_json::to_value(spec()).unwrap();
        v["train"].as_object_mut().unwrap().remove("seed");
        let e = RunSpec::from_metadata(&metadata(&v.to_string()), Path::new("m.parquet")).unwrap_err();
        assert!(e.to_string().contains("missing field `seed`"), "{e}");
    }
}
