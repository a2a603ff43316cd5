//! The `regmix.*` metadata keys of the files regmix writes (Parquet and Arrow schema metadata,
//! safetensors headers, JSON markers), in one place: writers and readers name them from here, and
//! `schemas/*.json` documents what each file holds under them.

/// `regmix.arguments`
pub const ARGUMENTS: &str = "regmix.arguments";
/// `regmix.backend`
pub const BACKEND: &str = "regmix.backend";
/// `regmix.calibration`
pub const CALIBRATION: &str = "regmix.calibration";
/// `regmix.constraints`
pub const CONSTRAINTS: &str = "regmix.constraints";
/// `regmix.domain`
pub const DOMAIN: &str = "regmix.domain";
/// `regmix.domains`
pub const DOMAINS: &str = "regmix.domains";
/// `regmix.elapsed_s_bits`
pub const ELAPSED_S_BITS: &str = "regmix.elapsed_s_bits";
/// `regmix.eos_id`
pub const EOS_ID: &str = "regmix.eos_id";
/// `regmix.eval_domains`
pub const EVAL_DOMAINS: &str = "regmix.eval_domains";
/// `regmix.horizon`
pub const HORIZON: &str = "regmix.horizon";
/// `regmix.metrics`
pub const METRICS: &str = "regmix.metrics";
/// `regmix.mixture_id`
pub const MIXTURE_ID: &str = "regmix.mixture_id";
/// `regmix.model`
pub const MODEL: &str = "regmix.model";
/// `regmix.prior`
pub const PRIOR: &str = "regmix.prior";
/// `regmix.producer`
pub const PRODUCER: &str = "regmix.producer";
/// `regmix.producer_version`
pub const PRODUCER_VERSION: &str = "regmix.producer_version";
/// `regmix.run_settings`
pub const RUN_SETTINGS: &str = "regmix.run_settings";
/// `regmix.run_spec`
pub const RUN_SPEC: &str = "regmix.run_spec";
/// `regmix.sampler`
pub const SAMPLER: &str = "regmix.sampler";
/// `regmix.schema`
pub const SCHEMA: &str = "regmix.schema";
/// `regmix.schema_version`
pub const SCHEMA_VERSION: &str = "regmix.schema_version";
/// `regmix.selected`
pub const SELECTED: &str = "regmix.selected";
/// `regmix.spec`
pub const SPEC: &str = "regmix.spec";
/// `regmix.split`
pub const SPLIT: &str = "regmix.split";
/// `regmix.step`
pub const STEP: &str = "regmix.step";
/// `regmix.target`
pub const TARGET: &str = "regmix.target";
/// `regmix.token_type`
pub const TOKEN_TYPE: &str = "regmix.token_type";
/// `regmix.train`
pub const TRAIN: &str = "regmix.train";
/// `regmix.trajectories`
pub const TRAJECTORIES: &str = "regmix.trajectories";
/// `regmix.valid_fraction`
pub const VALID_FRACTION: &str = "regmix.valid_fraction";
/// `regmix.vocab_size`
pub const VOCAB_SIZE: &str = "regmix.vocab_size";
