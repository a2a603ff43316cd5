//! Choosing and building a backend from the command line.

use anyhow::{bail, Result};
use regmix_model::cpu::CpuBackend;
use regmix_model::{Backend, Config};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// CUDA when a GPU, its driver, NVRTC and cuBLAS are found; the CPU otherwise.
    Auto,
    /// The reference backend on the CPU's cores.
    Cpu,
    /// GPU 0 through kernels/*.cu and cuBLAS; an error when CUDA is not usable.
    Cuda,
}

/// Sets the number of threads the CPU backend uses (rayon and the GEMM's pool). Call once,
/// before any training; 0 means all cores.
pub fn set_threads(n: usize) -> Result<()> {
    regmix_core::cli::check_threads(n)?;
    let n = if n == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { n };
    // matrixmultiply reads this once, at its first threaded call.
    std::env::set_var("MATMUL_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global().ok();
    Ok(())
}

/// A freshly initialised model on the chosen backend (GPU 0 for CUDA; under Slurm the
/// job's `CUDA_VISIBLE_DEVICES` picks the card).
pub fn build(kind: BackendKind, cfg: &Config, seed: u64) -> Result<Box<dyn Backend>> {
    let kind = resolve(kind);
    match kind {
        BackendKind::Cpu | BackendKind::Auto => Ok(Box::new(CpuBackend::<f32>::new(cfg, seed))),
        BackendKind::Cuda => match regmix_cuda::CudaBackend::new(cfg, seed, 0) {
            Ok(b) => Ok(Box::new(b)),
            Err(e) => bail!("--backend cuda: {e}"),
        },
    }
}

/// The machine's memory (MemTotal of /proc/meminfo), if it can be read.
fn memory_total() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u128 = text.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses a model the CPU backend cannot hold at micro-batches of `micro` sequences (a
/// context of 100000 would otherwise abort in a failed allocation of hundreds of GB).
pub fn check_fits(kind: BackendKind, cfg: &Config, micro: usize) -> Result<()> {
    if resolve(kind) == BackendKind::Cuda {
        return Ok(()); // the GPU's allocations fail with an error of their own
    }
    let need = regmix_model::cpu::memory_bytes(cfg, micro);
    if let Some(have) = memory_total() {
        if need > have {
            bail!(
                "the model (context {}, {} layers, d_model {}) at --micro-batch {micro} needs about {:.1} GB on the CPU, and this machine has {:.1} GB",
                cfg.context,
                cfg.n_layer,
                cfg.d_model,
                need as f64 / 1e9,
                have as f64 / 1e9
            );
        }
    }
    Ok(())
}

/// `auto` becomes `cuda` when [`regmix_cuda::probe`] finds a usable GPU, else `cpu` (saying
/// why once); the others are kept.
pub fn resolve(kind: BackendKind) -> BackendKind {
    if kind != BackendKind::Auto {
        return kind;
    }
    static LOGGED: std::sync::Once = std::sync::Once::new();
    match regmix_cuda::probe() {
        Ok(info) => {
            LOGGED.call_once(|| {
                log::info!(
                    "--backend auto: using CUDA ({} GPU(s), first: {})",
                    info.devices.len(),
                    info.devices[0].name
                )
            });
            BackendKind::Cuda
        }
        Err(e) => {
            LOGGED.call_once(|| log::info!("--backend auto: training on the CPU ({e})"));
            BackendKind::Cpu
        }
    }
}
