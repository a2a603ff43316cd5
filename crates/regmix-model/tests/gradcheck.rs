//! Gradient checks in f64 against central finite differences: every operation alone, then
//! the whole model. Each operation is checked through the scalar L = Σ r ⊙ op(x) with a
//! fixed random r, so every output element contributes.
//!
//! Tolerance: with step h = 1e-5 in f64 the central difference has truncation error
//! O(h²·f''') ≈ 1e-10 and rounding error O(ε/h) ≈ 1e-11 on these O(1) values, so a
//! relative error (|a − n| / max(1, |a|, |n|)) above 1e-6 is a wrong derivative, not noise.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use regmix_model::cpu::ops::{self, AttnShape};
use regmix_model::cpu::CpuBackend;
use regmix_model::{Backend, Buffer, Config};

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

fn rand_vec(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Compares `analytic` with central differences of `f` at `x`, element by element.
fn check(what: &str, x: &[f64], analytic: &[f64], f: impl Fn(&[f64]) -> f64) {
    assert_eq!(x.len(), analytic.len(), "{what}");
    let mut worst = 0.0f64;
    for i in 0..x.len() {
        let mut xp = x.to_vec();
        xp[i] += H;
        let mut xm = x.to_vec();
        xm[i] -= H;
        let numeric = (f(&xp) - f(&xm)) / (2.0 * H);
        let err = (analytic[i] - numeric).abs() / 1f64.max(analytic[i].abs()).max(numeric.abs());
        worst = worst.max(err);
        assert!(err < TOL, "{what}[{i}]: analytic {} vs numeric {numeric} (rel err {err:e})", analytic[i]);
    }
    eprintln!("{what}: {} elements, worst relative error {worst:.2e}", x.len());
}

#[test]
fn embedding_backward_is_the_gradient_of_embedding_forward() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (v, d) = (5, 3);
    let tokens = [0u32, 3, 3, 4, 1, 0];
    let table = rand_vec(&mut rng, v * d, 1.0);
    let r = rand_vec(&mut rng, tokens.len() * d, 1.0);
    let f = |tab: &[f64]| {
        let mut out = vec![0.0; tokens.len() * d];
        ops::embedding_forward(&mut out, &tokens, tab, d);
        dot(&out, &r)
    };
    let mut g = vec![0.0; v * d];
    ops::embedding_backward(&mut g, &tokens, &r, d);
    check("embedding/table", &table, &g, f);
}

#[test]
fn rmsnorm_backward_is_the_gradient_of_rmsnorm_forward() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (n, d, eps) = (4, 6, 1e-5);
    let x = rand_vec(&mut rng, n * d, 1.0);
    let w = rand_vec(&mut rng, d, 1.5);
    let r = rand_vec(&mut rng, n * d, 1.0);
    let fwd = |x: &[f64], w: &[f64]| {
        let (mut out, mut rstd) = (vec![0.0; n * d], vec![0.0; n]);
        ops::rmsnorm_forward(&mut out, &mut rstd, x, w, d, eps);
        (dot(&out, &r), rstd)
    };
    let (_, rstd) = fwd(&x, &w);
    let (mut dx, mut dw) = (vec![0.0; n * d], vec![0.0; d]);
    ops::rmsnorm_backward(&mut dx, &mut dw, &r, &x, &w, &rstd, d);
    check("rmsnorm/x", &x, &dx, |x| fwd(x, &w).0);
    check("rmsnorm/w", &w, &dw, |w| fwd(&x, w).0);
}

#[test]
fn linear_backward_is_the_gradient_of_linear_forward() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (n, di, dout) = (5, 4, 3);
    let x = rand_vec(&mut rng, n * di, 1.0);
    let w = rand_vec(&mut rng, dout * di, 1.0);
    let r = rand_vec(&mut rng, n * dout, 1.0);
    let fwd = |x: &[f64], w: &[f64]| {
        let mut y = vec![0.0; n * dout];
        ops::linear_forward(&mut y, x, w, n, di, dout);
        dot(&y, &r)
    };
    let (mut dx, mut dw) = (vec![0.0; n * di], vec![0.0; dout * di]);
    ops::linear_backward(&mut dx, &mut dw, &r, &x, &w, n, di, dout, false);
    check("linear/x", &x, &dx, |x| fwd(x, &w));
    check("linear/w", &w, &dw, |w| fwd(&x, w));
}

#[test]
fn rope_inverse_is_the_gradient_of_rope_and_preserves_norms() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (ctx, heads, hd) = (5, 2, 6);
    let n = 2 * ctx;
    let (cos, sin) = ops::rope_tables::<f64>(ctx, hd, 10000.0);
    let x = rand_vec(&mut rng, n * heads * hd, 1.0);
    let r = rand_vec(&mut rng, n * heads * hd, 1.0);
    let f = |x: &[f64]| {
        let mut y = x.to_vec();
        ops::rope(&mut y, heads, hd, ctx, &cos, &sin, false);
        dot(&y, &r)
    };
    let mut g = r.clone();
    ops::rope(&mut g, heads, hd, ctx, &cos, &sin, true);
    check("rope/x", &x, &g, f);
    let mut y = x.clone();
    ops::rope(&mut y, heads, hd, ctx, &cos, &sin, false);
    assert!((dot(&y, &y) - dot(&x, &x)).abs() < 1e-12, "a rotation keeps the norm");
    // Position 0 is not rotated.
    assert_eq!(&y[..heads * hd], &x[..heads * hd]);
}

#[test]
fn attention_backward_is_the_gradient_of_causal_grouped_attention() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let s = AttnShape { batch: 2, context: 4, heads: 4, groups: 2, head_dim: 3 };
    let n = s.batch * s.context;
    let (qd, kvd) = (s.heads * s.head_dim, s.groups * s.head_dim);
    let q = rand_vec(&mut rng, n * qd, 1.0);
    let k = rand_vec(&mut rng, n * kvd, 1.0);
    let v = rand_vec(&mut rng, n * kvd, 1.0);
    let r = rand_vec(&mut rng, n * qd, 1.0);
    let fwd = |q: &[f64], k: &[f64], v: &[f64]| {
        let mut out = vec![0.0; n * qd];
        let mut probs = vec![0.0; s.batch * s.heads * s.context * s.context];
        ops::attention_forward(&mut out, &mut probs, q, k, v, s);
        (dot(&out, &r), probs)
    };
    let (_, probs) = fwd(&q, &k, &v);
    let (mut dq, mut dk, mut dv) = (vec![0.0; n * qd], vec![0.0; n * kvd], vec![0.0; n * kvd]);
    let mut scratch = vec![0.0; s.batch * s.groups * s.context * s.context];
    ops::attention_backward(&mut dq, &mut dk, &mut dv, &mut scratch, &r, &q, &k, &v, &probs, s);
    check("attention/q", &q, &dq, |q| fwd(q, &k, &v).0);
    check("attention/k", &k, &dk, |k| fwd(&q, k, &v).0);
    check("attention/v", &v, &dv, |v| fwd(&q, &k, v).0);
    // Causality: the first position of each sequence attends only to itself.
    for bh in 0..s.batch * s.heads {
        let p = &probs[bh * 16..bh * 16 + 4];
        assert_eq!(p, &[1.0, 0.0, 0.0, 0.0]);
    }
}

#[test]
fn swiglu_backward_is_the_gradient_of_swiglu_forward() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let len = 17;
    let h1 = rand_vec(&mut rng, len, 3.0);
    let h3 = rand_vec(&mut rng, len, 3.0);
    let r = rand_vec(&mut rng, len, 1.0);
    let fwd = |a: &[f64], b: &[f64]| {
        let mut g = vec![0.0; len];
        ops::swiglu_forward(&mut g, a, b);
        dot(&g, &r)
    };
    let (mut d1, mut d3) = (vec![0.0; len], vec![0.0; len]);
    ops::swiglu_backward(&mut d1, &mut d3, &r, &h1, &h3);
    check("swiglu/h1", &h1, &d1, |a| fwd(a, &h3));
    check("swiglu/h3", &h3, &d3, |b| fwd(&h1, b));
}

#[test]
fn cross_entropy_gradient_is_the_gradient_of_the_summed_loss() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (n, v) = (3, 7);
    let logits = rand_vec(&mut rng, n * v, 4.0);
    let targets = [2u32, 6, 0];
    let scale = 0.37;
    let f = |x: &[f64]| {
        let mut l = x.to_vec();
        let mut losses = vec![0.0; n];
        ops::cross_entropy(&mut l, &mut losses, &targets, v, None);
        scale * losses.iter().sum::<f64>()
    };
    let mut g = logits.clone();
    let mut losses = vec![0.0; n];
    ops::cross_entropy(&mut g, &mut losses, &targets, v, Some(scale));
    check("cross_entropy/logits", &logits, &g, f);
}

/// A model small enough to difference every parameter, with grouped queries (4 heads in 2
/// groups), a padded vocabulary (11 → 16) and two blocks.
fn tiny() -> Config {
    let c = Config::preset("micro", 11).unwrap();
    c.override_with(&serde_json::json!({
        "n_layer": 2, "n_head": 4, "n_query_groups": 2, "d_model": 8, "mlp_hidden": 12,
        "context": 5, "padding_multiple": 16, "init_std": 0.5
    }))
    .unwrap()
}

#[test]
fn whole_model_gradient_matches_finite_differences_for_every_parameter() {
    let cfg = tiny();
    assert_eq!(cfg.padded_vocab_size, 16);
    let batch = 2;
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let windows: Vec<u32> = (0..batch * (cfg.context + 1)).map(|_| rng.random_range(0..11)).collect();
    let mut model = CpuBackend::<f64>::new(&cfg, 9);
    // Norm weights start at one; perturb them so their gradients are generic.
    let params: Vec<f64> = model.params.iter().map(|&p| p + rng.random_range(-0.1..0.1)).collect();
    model.params.clone_from(&params);
    let scale = 1.0 / (batch * cfg.context) as f64;
    model.zero_grad().unwrap();
    let loss = model.forward_backward(&windows, batch, scale).unwrap();
    let analytic = model.grads.clone();
    // Loss must not depend on the gradient pass.
    assert_eq!(model.loss(&windows, batch).unwrap(), loss);
    let mut probe = CpuBackend::<f64>::with_params(&cfg, params.clone());
    let f = |p: &[f64]| {
        probe.params.copy_from_slice(p);
        scale * probe.loss(&windows, batch).unwrap()
    };
    let cell = std::cell::RefCell::new(f);
    check("model/params", &params, &analytic, |p| (cell.borrow_mut())(p));
    // Two micro-batches accumulate to the gradient of their sum.
    model.zero_grad().unwrap();
    model.forward_backward(&windows[..cfg.context + 1], 1, scale).unwrap();
    model.forward_backward(&windows[cfg.context + 1..], 1, scale).unwrap();
    for (a, b) in model.grads.iter().zip(&analytic) {
        assert!((a - b).abs() < 1e-12);
    }
    let g32 = model.read(Buffer::Grads).unwrap();
    assert_eq!(g32.len(), params.len());
}

#[test]
fn f32_model_matches_the_f64_model_on_the_same_initialisation() {
    // Same seed, same draws: the f32 model is the f64 one rounded, and its loss agrees to
    // f32 precision (relative 1e-5 covers rounding through ~10 ops of O(1) values).
    let cfg = tiny();
    let batch = 2;
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let windows: Vec<u32> = (0..batch * (cfg.context + 1)).map(|_| rng.random_range(0..11)).collect();
    let mut m64 = CpuBackend::<f64>::new(&cfg, 3);
    let mut m32 = CpuBackend::<f32>::new(&cfg, 3);
    let (l64, l32) = (m64.loss(&windows, batch).unwrap(), m32.loss(&windows, batch).unwrap());
    assert!(((l64 - l32) / l64).abs() < 1e-5, "{l64} vs {l32}");
}

#[test]
fn out_of_vocabulary_tokens_are_an_error_naming_the_id() {
    let cfg = tiny();
    let mut m = CpuBackend::<f32>::new(&cfg, 3);
    let mut w = vec![1u32; cfg.context + 1];
    w[2] = 11;
    let e = m.loss(&w, 1).unwrap_err().to_string();
    assert!(e.contains("token id 11") && e.contains("vocabulary of 11"), "{e}");
}
