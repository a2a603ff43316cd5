//! `train-bench`: training throughput of a backend on random tokens, for `make bench`
//! (scripts/bench/train.sh runs it beside the PyTorch reference, scripts/bench/train_torch.py,
//! with the same model, optimizer, batch and thread count). Prints one JSON line.

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use rand::{Rng, SeedableRng};
use regmix_model::{AdamW, Config};
use regmix_train::backends::{self, BackendKind};

#[derive(Parser, Debug)]
#[command(name = "train-bench", about = "Training throughput on random tokens (one JSON line).")]
struct Args {
    #[arg(long, default_value = "micro")]
    preset: String,
    #[arg(long, default_value_t = 8192)]
    vocab: usize,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 16)]
    micro_batch: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    accumulation: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    backend: BackendKind,
    /// Models trained at the same time, each on a thread (and GPU stream) of its own;
    /// tokens/s is their total.
    #[arg(long, default_value_t = 1)]
    concurrent: usize,
}

/// Warm-up and timed steps of one model; returns the last loss and the timed seconds.
fn bench(
    b: &mut dyn regmix_model::Backend,
    a: &Args,
    windows: &[u32],
    tokens_per_step: usize,
    start: &std::sync::Barrier,
) -> Result<(f64, f64)> {
    let hp = AdamW::default();
    let mut step = |s: u64| -> Result<f64> {
        b.zero_grad()?;
        let mut loss = 0.0;
        for _ in 0..a.accumulation {
            loss += b.forward_backward(windows, a.micro_batch, 1.0 / tokens_per_step as f64)?;
        }
        let gn = b.grad_norm()?;
        b.adamw_step(s, 4e-4, &hp, (1.0 / (gn + 1e-6)).min(1.0))?;
        Ok(loss / tokens_per_step as f64)
    };
    for s in 0..a.warmup {
        step(s as u64 + 1)?;
    }
    start.wait();
    let t0 = Instant::now();
    let mut loss = 0.0;
    for s in 0..a.steps {
        loss = step((a.warmup + s) as u64 + 1)?;
    }
    Ok((loss, t0.elapsed().as_secs_f64()))
}

fn main() -> Result<()> {
    let a = Args::parse();
    backends::set_threads(a.threads)?;
    let cfg = Config::preset(&a.preset, a.vocab)?;
    let mut models = (0..a.concurrent).map(|_| backends::build(a.backend, &cfg, 1)).collect::<Result<Vec<_>>>()?;
    let name = if models[0].describe().starts_with("cuda") { "regmix cuda" } else { "regmix" };
    eprintln!("train-bench: {} × {}", a.concurrent, models[0].describe());
    let t = cfg.context;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let windows: Vec<u32> = (0..a.micro_batch * (t + 1)).map(|_| rng.random_range(0..a.vocab as u32)).collect();
    let tokens_per_step = a.micro_batch * a.accumulation * t;
    // Every model trains on a thread of its own; the clock starts when all have warmed up.
    let start = std::sync::Barrier::new(models.len());
    let results: Vec<Result<(f64, f64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = models
            .iter_mut()
            .map(|b| scope.spawn(|| bench(b.as_mut(), &a, &windows, tokens_per_step, &start)))
            .collect();
        handles.into_iter().map(|h| h.join().expect("a benchmark thread panicked")).collect()
    });
    let results = results.into_iter().collect::<Result<Vec<_>>>()?;
    let loss = results[0].0;
    let secs = results.iter().map(|r| r.1).fold(0.0, f64::max);
    let tokens_per_step = tokens_per_step * a.concurrent;
    let tok_s = (a.steps * tokens_per_step) as f64 / secs;
    let gflops = tok_s * cfg.train_flops_per_token() / 1e9;
    println!(
        "{}",
        serde_json::json!({
            "impl": if a.concurrent > 1 { format!("{name} ×{}", a.concurrent) } else { name.to_string() }, "preset": a.preset, "params": cfg.n_params(), "threads": rayon::current_num_threads(),
            "tokens_per_step": tokens_per_step, "steps": a.steps, "seconds": secs,
            "tokens_per_s": tok_s, "gflops": gflops, "final_loss": loss,
            "flops_per_token": cfg.train_flops_per_token(),
        })
    );
    Ok(())
}
