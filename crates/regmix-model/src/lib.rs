//! The LLaMA-style decoder RegMix trains (the paper's TinyLlama/lit-gpt configuration):
//! token embedding → n_layer × [RMSNorm → causal attention with RoPE → residual;
//! RMSNorm → SwiGLU MLP → residual] → RMSNorm → untied output layer, no biases.
//!
//! - [`Config`] and the named presets; [`Layout`], the one table of parameter offsets that
//!   parameters, gradients and AdamW moments share;
//! - [`Backend`], what a training engine needs from a device, and [`cpu::CpuBackend`], the
//!   readable reference implementation (plain forward/backward functions in [`cpu::ops`]).
//!
//! **Invariant:** this crate does no file I/O. Checkpoints, shards and metrics are the
//! training crate's business; here everything is buffers in memory.

pub mod backend;
pub mod config;
pub mod cpu;
pub mod float;
pub mod init;
pub mod layout;

pub use backend::{AdamStep, AdamW, Backend, Buffer, NORM_CHUNK};
pub use config::Config;
pub use float::Float;
pub use layout::{Layout, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("model configuration: {0}")]
    Config(String),
    #[error("input: {0}")]
    Input(String),
    #[error("backend {backend}: {message}")]
    Backend { backend: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
