//! What every regmix stage shares.
//!
//! - [`schema`]: the file contracts in `schemas/`, embedded, turned into Arrow schemas and
//!   checked against every file read.
//! - [`table`]: Parquet read/write through those contracts, with provenance metadata.
//! - [`shard`]: token shards (Arrow IPC), written in batches and read memory-mapped.
//! - [`atomic`]: write under a temporary name, rename when complete.
//! - [`provenance`]: who wrote a file and with which arguments.
//! - [`domain`]: domain names.
//! - [`progress`]: logging set-up and progress bars.
//!
//! **Invariant:** no stage writes a file between stages except through this crate, so every
//! such file matches its schema and carries provenance.

pub mod atomic;
pub mod cli;
pub mod domain;
pub mod error;
pub mod progress;
pub mod provenance;
pub mod schema;
pub mod shard;
pub mod table;

pub use error::{Error, Result};
pub use provenance::Provenance;
pub use schema::Schema;
