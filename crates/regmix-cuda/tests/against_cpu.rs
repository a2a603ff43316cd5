//! The CUDA backend against the CPU reference on small configurations with random inputs:
//! the loss, every parameter's gradient (tensor by tensor), the evaluation loss and a loss
//! curve of 20 AdamW steps. Needs a GPU; skipped with the reason otherwise.
//!
//! Tolerances. The CPU backend runs in f32 here. The CUDA backend keeps fp32 master weights,
//! the fp32 residual stream and fp32 reductions, but its matrix products read bf16 operands
//! (8 bits of mantissa: a relative rounding error of up to 2⁻⁸ ≈ 3.9e-3 per element, about
//! 1e-3 on average). Errors of that size enter every product and pass through ~10 of them
//! between the loss and the first layer's weights, partly cancelling, so we compare whole
//! tensors by the relative error of their norms, ‖gpu − cpu‖ / ‖cpu‖, and allow:
//! - the summed loss: 1e-2 (it is an average over every token; in practice ~1e-3);
//! - each gradient tensor: 3e-2 (the deepest tensors, the embedding and the first block,
//!   carry the most accumulated rounding);
//! - the loss after each of 20 AdamW steps: 2e-2 (rounding differences feed back through
//!   the updates, but the curves must stay together);
//! - fp32-only paths (AdamW on given gradients, the gradient norm): 1e-5.
//!
//! With REGMIX_REQUIRE_GPU=1 (scripts/gpu/check-and-bench.sh sets it) a missing GPU is a
//! failure instead of a skip.
//!
//! Every activation buffer is poisoned (NaN) before each pass, so an element a kernel fails
//! to write shows up as a NaN loss or gradient.

use rand::{Rng, SeedableRng};
use regmix_cuda::CudaBackend;
use regmix_model::cpu::CpuBackend;
use regmix_model::{AdamW, Backend, Buffer, Config};

fn gpu_or_skip() -> bool {
    match regmix_cuda::probe() {
        Ok(_) => true,
        Err(e) if std::env::var("REGMIX_REQUIRE_GPU").is_ok_and(|v| v == "1") => panic!("REGMIX_REQUIRE_GPU=1 but {e}"),
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            false
        }
    }
}

/// Two layers, grouped queries, a padded vocabulary and a context that is not a multiple of
/// the attention tile (64), so partial tiles are exercised.
fn config(head_dim: usize) -> Config {
    let mut c = Config::preset("small", 1000).unwrap();
    c.n_layer = 2;
    c.n_head = 4;
    c.n_query_groups = 2;
    c.d_model = 4 * head_dim;
    c.mlp_hidden = 8 * head_dim;
    c.context = 96;
    c.padded_vocab_size = c.vocab_size.div_ceil(c.padding_multiple) * c.padding_multiple;
    c
}

fn windows(c: &Config, batch: usize, seed: u64) -> Vec<u32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..batch * (c.context + 1)).map(|_| rng.random_range(0..c.vocab_size as u32)).collect()
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        assert!(x.is_finite(), "non-finite value from the GPU (an unwritten, poisoned element?)");
        num += (x as f64 - y as f64).powi(2);
        den += (y as f64).powi(2);
    }
    num.sqrt() / den.sqrt().max(1e-30)
}

fn compare_one_pass(head_dim: usize) {
    let c = config(head_dim);
    let batch = 3;
    let w = windows(&c, batch, 5);
    let scale = 1.0 / (batch * c.context) as f64;
    let mut cpu = CpuBackend::<f32>::new(&c, 11);
    let mut gpu = CudaBackend::new(&c, 11, 0).expect("CUDA backend");
    assert_eq!(gpu.read(Buffer::Params).unwrap(), cpu.read(Buffer::Params).unwrap(), "same initialisation");
    cpu.zero_grad().unwrap();
    gpu.zero_grad().unwrap();
    gpu.poison_activations(batch).unwrap();
    let lc = cpu.forward_backward(&w, batch, scale).unwrap();
    let lg = gpu.forward_backward(&w, batch, scale).unwrap();
    let loss_err = (lg - lc).abs() / lc.abs();
    eprintln!("hd {head_dim}: loss cpu {lc:.6} gpu {lg:.6} rel {loss_err:.2e}");
    assert!(loss_err < 1e-2, "loss: relative error {loss_err:.3e}");
    let (gc, gg) = (cpu.read(Buffer::Grads).unwrap(), gpu.read(Buffer::Grads).unwrap());
    for t in &cpu.layout().tensors {
        let e = rel(&gg[t.range()], &gc[t.range()]);
        eprintln!("  {:<45} {e:.2e}", t.name);
        assert!(e < 3e-2, "{}: relative error {e:.3e}", t.name);
    }
    // The loss alone equals the loss of the gradient pass (same kernels, no backward).
    gpu.poison_activations(batch).unwrap();
    let le = gpu.loss(&w, batch).unwrap();
    assert!((le - lg).abs() <= 1e-6 * lg.abs(), "eval loss {le} vs {lg}");
}

#[test]
fn loss_and_every_gradient_match_the_cpu_backend_head_size_32() {
    if gpu_or_skip() {
        compare_one_pass(32);
    }
}

#[test]
fn loss_and_every_gradient_match_the_cpu_backend_head_size_16_and_64() {
    if gpu_or_skip() {
        compare_one_pass(16);
        compare_one_pass(64);
    }
}

#[test]
fn twenty_adamw_steps_follow_the_cpu_loss_curve() {
    if !gpu_or_skip() {
        return;
    }
    let c = config(32);
    let batch = 2;
    let scale = 1.0 / (batch * c.context) as f64;
    let hp = AdamW::default();
    let mut cpu = CpuBackend::<f32>::new(&c, 3);
    let mut gpu = CudaBackend::new(&c, 3, 0).expect("CUDA backend");
    for step in 1..=20u64 {
        let w = windows(&c, batch, 100 + step);
        let mut losses = [0.0; 2];
        for (i, b) in [&mut cpu as &mut dyn Backend, &mut gpu].into_iter().enumerate() {
            b.zero_grad().unwrap();
            losses[i] = b.forward_backward(&w, batch, scale).unwrap() * scale;
            let norm = b.grad_norm().unwrap();
            b.adamw_step(step, 3e-3, &hp, (1.0 / (norm + 1e-6)).min(1.0)).unwrap();
        }
        let e = (losses[1] - losses[0]).abs() / losses[0];
        eprintln!("step {step:2}: cpu {:.5} gpu {:.5} rel {e:.2e}", losses[0], losses[1]);
        assert!(e < 2e-2, "step {step}: relative error {e:.3e}");
    }
}

/// Two backends from the same seed, fed the same batches, stay equal bit for bit: losses,
/// gradient norms, parameters and AdamW moments after a few steps with gradient accumulation
/// over two micro-batches. The embedding's and the norms' weight gradients once summed with
/// atomics in scheduling order, and two identical training runs drifted apart.
#[test]
fn training_steps_are_bitwise_reproducible_from_the_same_seed() {
    if !gpu_or_skip() {
        return;
    }
    let c = config(32);
    let batch = 2;
    let scale = 1.0 / (2 * batch * c.context) as f64;
    let hp = AdamW::default();
    let run = || {
        let mut gpu = CudaBackend::new(&c, 21, 0).expect("CUDA backend");
        let mut trace = Vec::new();
        for step in 1..=4u64 {
            gpu.zero_grad().unwrap();
            for micro in 0..2 {
                let loss = gpu.forward_backward(&windows(&c, batch, 200 + 2 * step + micro), batch, scale).unwrap();
                trace.push(loss.to_bits());
            }
            let norm = gpu.grad_norm().unwrap();
            trace.push(norm.to_bits());
            gpu.adamw_step(step, 3e-3, &hp, (1.0 / (norm + 1e-6)).min(1.0)).unwrap();
        }
        let eval = gpu.loss(&windows(&c, batch, 999), batch).unwrap();
        trace.push(eval.to_bits());
        let buffers: Vec<Vec<u32>> = [Buffer::Params, Buffer::Grads, Buffer::AdamM, Buffer::AdamV]
            .into_iter()
            .map(|b| gpu.read(b).unwrap().iter().map(|x| x.to_bits()).collect())
            .collect();
        (trace, buffers)
    };
    let (a, b) = (run(), run());
    assert_eq!(a.0, b.0, "losses or gradient norms differ between two identical runs");
    for (name, (x, y)) in ["params", "grads", "adam_m", "adam_v"].iter().zip(a.1.iter().zip(&b.1)) {
        let differ = x.iter().zip(y).filter(|(p, q)| p != q).count();
        assert_eq!(differ, 0, "{name}: {differ} of {} values differ between two identical runs", x.len());
    }
    eprintln!("4 steps twice: losses, norms and every buffer equal bit for bit");
}

#[test]
fn adamw_and_the_gradient_norm_match_the_cpu_in_fp32() {
    if !gpu_or_skip() {
        return;
    }
    let c = config(32);
    let mut cpu = CpuBackend::<f32>::new(&c, 4);
    let mut gpu = CudaBackend::new(&c, 4, 0).expect("CUDA backend");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let g: Vec<f32> = (0..cpu.layout().len()).map(|_| rng.random_range(-1e-2..1e-2)).collect();
    for b in [&mut cpu as &mut dyn Backend, &mut gpu] {
        b.write(Buffer::Grads, &g).unwrap();
    }
    let (nc, ng) = (cpu.grad_norm().unwrap(), gpu.grad_norm().unwrap());
    assert!((nc - ng).abs() / nc < 1e-5, "gradient norm {ng} vs {nc}");
    for step in 1..=3 {
        cpu.adamw_step(step, 1e-3, &AdamW::default(), 0.5).unwrap();
        gpu.adamw_step(step, 1e-3, &AdamW::default(), 0.5).unwrap();
    }
    for which in [Buffer::Params, Buffer::AdamM, Buffer::AdamV] {
        let e = rel(&gpu.read(which).unwrap(), &cpu.read(which).unwrap());
        assert!(e < 1e-5, "{which:?}: relative error {e:.3e}");
    }
}

#[test]
fn out_of_vocabulary_tokens_are_refused_before_any_kernel_runs() {
    if !gpu_or_skip() {
        return;
    }
    let c = config(32);
    let mut gpu = CudaBackend::new(&c, 1, 0).expect("CUDA backend");
    let mut w = windows(&c, 1, 1);
    w[7] = c.vocab_size as u32;
    let err = gpu.loss(&w, 1).unwrap_err().to_string();
    assert!(err.contains("position 7") && err.contains("outside the vocabulary"), "{err}");
}
