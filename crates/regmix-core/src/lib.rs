//! What every regmix stage shares.
//!
//! - [`schema`]: the file contracts in `schemas/`, embedded, turned into Arrow schemas and
//!   checked against every file read.
//! - [`table`]: Parquet read/write through those contracts, with provenance metadata.
//! - [`shard`]: token shards (Arrow IPC), written in batches and read memory-mapped.
//! - [`atomic`]: write under a temporary name, rename when complete.
//! - [`provenance`]: who wrote a file and with which arguments.
//! - [`json`]: the JSON files between stages (model.json, done.json) through their contracts.
//! - [`columns`]: the wide-table column prefixes (`weight.`, `valid_loss.`), in one place.
//! - [`run`]: a run folder's paths ([`run::RunDir`]), its status and completion marker.
//! - [`megatron`]: an export-megatron folder's layout and completion markers.
//! - [`seed`]: the one seed derivation for sub-streams.
//! - [`lock`]: one writer per output (an advisory lock naming its holder).
//! - [`digest`]: sha256 of files and bytes.
//! - [`domain`]: domain names.
//! - [`progress`]: logging set-up and progress bars.
//!
//! **Invariant:** no stage writes a file between stages except through this crate, so every
//! such file matches its schema and carries provenance.

pub mod atomic;
pub mod cli;
pub mod columns;
pub mod digest;
pub mod domain;
pub mod error;
pub mod json;
pub mod keys;
pub mod lock;
pub mod megatron;
pub mod progress;
pub mod provenance;
pub mod run;
pub mod schema;
pub mod seed;
pub mod shard;
pub mod table;
pub mod trajectories;

pub use error::{Error, Result};
pub use provenance::Provenance;
pub use schema::Schema;
