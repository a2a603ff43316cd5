//! The training flags proxy-train and target-train share, and their resolution into a
//! [`TrainSpec`]. Stage-specific defaults (schedule, preset) are the caller's.

use std::path::PathBuf;

use anyhow::{Context, Result};
use regmix_model::{AdamW, Config};

use crate::backends::BackendKind;
use crate::train::{Schedule, TrainSpec};

#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// Model preset: micro, small (CPU-sized), regmix-1m (the paper's proxy), regmix-60m,
    /// tinyllama-1b (the paper's target).
    #[arg(long, value_name = "NAME")]
    pub preset: String,
    /// JSON file of model fields that override the preset (any of: n_layer, n_head,
    /// n_query_groups, d_model, mlp_hidden, context, rope_theta, norm_eps, init_std,
    /// padding_multiple).
    #[arg(long, value_name = "FILE")]
    pub model_config: Option<PathBuf>,
    /// Training tokens per model (rounded up to whole steps).
    #[arg(long, value_name = "N")]
    pub tokens: u64,
    /// Tokens per optimizer step [default: 512 sequences for the paper's presets, 16 for
    /// micro and small].
    #[arg(long, value_name = "B")]
    pub batch_tokens: Option<u64>,
    /// Sequences per forward/backward pass; gradients accumulate over the step [default:
    /// the largest divisor of the step's sequences holding at most 8192 tokens].
    #[arg(long, value_name = "M")]
    pub micro_batch: Option<usize>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 4e-4, value_name = "LR")]
    pub lr: f64,
    /// Linear warmup steps [default: 10% of the steps, the paper's 100 of 1000].
    #[arg(long, value_name = "W")]
    pub warmup_steps: Option<u64>,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.1, value_name = "WD")]
    pub weight_decay: f64,
    /// Gradient clipping: maximum global L2 norm.
    #[arg(long, default_value_t = 1.0, value_name = "NORM")]
    pub grad_clip: f64,
    /// Evaluate on the validation windows every S steps and at the end [default: 10% of the
    /// steps].
    #[arg(long, value_name = "S")]
    pub eval_every: Option<u64>,
    /// Also evaluate at these steps, e.g. 24,32,48,64,96,128 (log-spaced points give a loss
    /// curve for `fit --at-tokens`); comma-separated, ascending.
    #[arg(long, value_name = "STEPS", value_delimiter = ',')]
    pub eval_at: Vec<u64>,
    /// Validation windows per domain (the same windows for every run).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub eval_windows: usize,
    /// Save a checkpoint every S steps [default: 10% of the steps].
    #[arg(long, value_name = "S")]
    pub checkpoint_every: Option<u64>,
    /// Seed of the initialisation (shared by all runs) and, with each mixture's id, of its
    /// data order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where to train.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
    /// Keep each run's last checkpoint (parameters and optimizer state) after it finishes.
    #[arg(long)]
    pub keep_checkpoints: bool,
    /// Train again, from scratch, a run whose folder holds a run with other settings or
    /// another mixture (without it, such a run is an error that names the differences).
    #[arg(long)]
    pub retrain: bool,
    /// Stop with an error after N steps of this invocation, as if killed: the last checkpoint
    /// and the metrics so far stay and a rerun resumes. With N a multiple of --checkpoint-every,
    /// a probe of a run's first steps (`collect --step N` reads it), as `make horizon-verify`
    /// uses it.
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
}

fn largest_divisor_at_most(n: usize, cap: usize) -> usize {
    (1..=cap.max(1).min(n)).rev().find(|d| n % d == 0).unwrap_or(1)
}

impl TrainArgs {
    /// The model: preset, vocabulary from the shards, then the override file.
    pub fn model(&self, vocab_size: usize) -> Result<Config> {
        let mut cfg = Config::preset(&self.preset, vocab_size)?;
        if let Some(p) = &self.model_config {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{}: not JSON", p.display()))?;
            cfg = cfg.override_with(&v).with_context(|| format!("{}", p.display()))?;
        }
        Ok(cfg)
    }

    pub fn spec(&self, vocab_size: usize, schedule: Schedule) -> Result<TrainSpec> {
        let model = self.model(vocab_size)?;
        let t = model.context as u64;
        let default_seqs = if matches!(self.preset.as_str(), "micro" | "small") { 16 } else { 512 };
        let batch_tokens = self.batch_tokens.unwrap_or(default_seqs * t);
        let seqs = (batch_tokens / t).max(1) as usize;
        let micro_batch = self.micro_batch.unwrap_or_else(|| largest_divisor_at_most(seqs, (8192 / t as usize).max(1)));
        let mut spec = TrainSpec {
            model,
            tokens: self.tokens,
            batch_tokens,
            micro_batch,
            lr: self.lr,
            warmup_steps: 0,
            schedule,
            adamw: AdamW { weight_decay: self.weight_decay, ..AdamW::default() },
            grad_clip: self.grad_clip,
            eval_every: 1,
            eval_at: self.eval_at.clone(),
            eval_windows: self.eval_windows,
            match_epochs_of: None,
            checkpoint_every: 1,
            seed: self.seed,
        };
        spec.check()?;
        let steps = spec.steps();
        let tenth = (steps / 10).max(1);
        spec.warmup_steps = self.warmup_steps.unwrap_or(steps / 10);
        spec.eval_every = self.eval_every.unwrap_or(tenth);
        spec.checkpoint_every = self.checkpoint_every.unwrap_or(tenth);
        spec.check()?;
        crate::backends::check_fits(self.backend, &spec.model, spec.micro_batch)?;
        Ok(spec)
    }
}
