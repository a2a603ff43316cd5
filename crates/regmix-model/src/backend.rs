//! What the training engine needs from a device. The CPU backend is the reference; the CUDA
//! backend implements the same trait and is tested against it.

use crate::{Config, Layout, Result};

/// AdamW hyper-parameters (decoupled weight decay, applied to every parameter as PyTorch's
/// `AdamW(model.parameters())` in the paper's TinyLlama script does).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 }
    }
}

/// The constants of one AdamW update, computed once per step in f64 for every backend:
/// per element, `m = β1·m + (1−β1)·g`, `v = β2·v + (1−β2)·g²`, then (as torch.optim.AdamW,
/// decay first) `p = decay·p − step_size·m / (√v / sqrt_bc2 + eps)`, with `g` the gradient
/// times `grad_scale` (clipping).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// 1 − lr · weight_decay.
    pub decay: f64,
    /// lr / (1 − β1^step): the bias-corrected step.
    pub step_size: f64,
    /// √(1 − β2^step).
    pub sqrt_bc2: f64,
    pub grad_scale: f64,
}

impl AdamW {
    /// The constants of the update at 1-based `step` with learning rate `lr`.
    pub fn step(&self, step: u64, lr: f64, grad_scale: f64) -> AdamStep {
        let bc1 = 1.0 - self.beta1.powi(step as i32);
        let bc2 = 1.0 - self.beta2.powi(step as i32);
        AdamStep {
            lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            decay: 1.0 - lr * self.weight_decay,
            step_size: lr / bc1,
            sqrt_bc2: bc2.sqrt(),
            grad_scale,
        }
    }
}

/// Elements per chunk of the deterministic gradient-norm reduction (each chunk's sum of
/// squares is a partial, the partials are summed in order): the same chunks on every backend,
/// so the norms agree to rounding.
pub const NORM_CHUNK: usize = 1 << 16;

/// Checks a batch as every backend takes it: `batch` windows of `context + 1` tokens, every id
/// inside the vocabulary.
pub fn check_batch(cfg: &Config, windows: &[u32], batch: usize) -> Result<()> {
    let t = cfg.context;
    if batch == 0 || windows.len() != batch * (t + 1) {
        return Err(crate::Error::Input(format!(
            "expected {batch} windows of {} tokens ({} in all), got {} tokens",
            t + 1,
            batch * (t + 1),
            windows.len()
        )));
    }
    if let Some((i, &bad)) = windows.iter().enumerate().find(|(_, &x)| x as usize >= cfg.vocab_size) {
        return Err(crate::Error::Input(format!(
            "token id {bad} at position {i} of the batch is outside the vocabulary of {}",
            cfg.vocab_size
        )));
    }
    Ok(())
}

/// The flat buffers a backend holds, all laid out by the same [`Layout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffer {
    Params,
    Grads,
    AdamM,
    AdamV,
}

pub trait Backend: Send {
    /// Human-readable description, e.g. "cpu f32, 2 threads".
    fn describe(&self) -> String;
    fn config(&self) -> &Config;
    fn layout(&self) -> &Layout;

    /// Sets every gradient to zero (start of an optimizer step).
    fn zero_grad(&mut self) -> Result<()>;

    /// Forward and backward over `batch` windows of `context + 1` tokens each (inputs are
    /// the first `context`, targets the last `context`). Adds `loss_scale ×` the gradient of
    /// the summed token loss to the gradient buffer and returns the summed loss (nats).
    fn forward_backward(&mut self, windows: &[u32], batch: usize, loss_scale: f64) -> Result<f64>;

    /// Summed token loss of `batch` windows, without gradients.
    fn loss(&mut self, windows: &[u32], batch: usize) -> Result<f64>;

    /// L2 norm of the whole gradient, summed in a fixed order (deterministic).
    fn grad_norm(&mut self) -> Result<f64>;

    /// One AdamW update with bias correction for 1-based `step`; the gradient is multiplied
    /// by `grad_scale` first (gradient clipping).
    fn adamw_step(&mut self, step: u64, lr: f64, hp: &AdamW, grad_scale: f64) -> Result<()>;

    /// Copies a buffer out as f32 (checkpoints, export, cross-backend tests).
    fn read(&self, which: Buffer) -> Result<Vec<f32>>;

    /// Replaces a buffer (resume from a checkpoint).
    fn write(&mut self, which: Buffer, data: &[f32]) -> Result<()>;
}
