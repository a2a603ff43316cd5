//! Choosing and building a backend from the command line.

use anyhow::{bail, Result};
use regmix_model::cpu::CpuBackend;
use regmix_model::{Backend, Config};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    Cpu,
    Cuda,
}

/// Sets the number of threads the CPU backend uses (rayon and the GEMM's pool). Call once,
/// before any training; 0 means all cores.
pub fn set_threads(n: usize) -> Result<()> {
    let n = if n == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { n };
    // matrixmultiply reads this once, at its first threaded call.
    std::env::set_var("MATMUL_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global().ok();
    Ok(())
}

/// A freshly initialised model on the chosen backend.
pub fn build(kind: BackendKind, cfg: &Config, seed: u64) -> Result<Box<dyn Backend>> {
    match kind {
        BackendKind::Cpu => Ok(Box::new(CpuBackend::<f32>::new(cfg, seed))),
        BackendKind::Cuda => bail!(
            "--backend cuda: this build has no CUDA backend yet (see the CUDA issue); use --backend cpu"
        ),
    }
}
