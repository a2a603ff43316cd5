//! Each kernel against the CPU backend's function for the same operation
//! (`regmix_model::cpu::ops`), on random inputs, with every output poisoned (all-ones bytes:
//! NaN in fp32 and bf16) before the launch, so an element the kernel does not write fails.
//! Needs a GPU; skipped with the reason otherwise (a failure under REGMIX_REQUIRE_GPU=1).
//!
//! Tolerances (relative error of the whole output, ‖gpu − cpu‖ / ‖cpu‖). bf16 inputs are
//! rounded on the host first and the CPU reference gets the rounded values, so the only
//! differences are the kernel's fp32 arithmetic (order of sums, `__expf`: ~1e-6) and, for bf16
//! outputs, their final rounding (up to 2⁻⁹ relative per element, ~2e-3 for a whole tensor):
//! - fp32 outputs: 1e-5;
//! - bf16 outputs: 5e-3;
//! - attention backward: 1e-2 (its bf16 inputs dO are themselves rounded outputs of a
//!   product in the model, and D = Σ dO⊙O is taken from the bf16 forward output).

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr};
use half::bf16;
use rand::{Rng, SeedableRng};
use regmix_cuda::launch::{Kernels, Ptr, TokenBuckets, RMSNORM_DW_ROWS};
use regmix_model::cpu::ops;

struct Gpu {
    stream: Arc<CudaStream>,
    k: Kernels,
    _ctx: Arc<CudaContext>,
}

fn gpu(head_dim: usize) -> Option<Gpu> {
    if let Err(e) = regmix_cuda::probe() {
        if std::env::var("REGMIX_REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("REGMIX_REQUIRE_GPU=1 but {e}");
        }
        eprintln!("SKIPPED: {e}");
        return None;
    }
    let ctx = CudaContext::new(0).unwrap();
    // SAFETY: one stream; kernels get raw addresses (as the backend does).
    unsafe { ctx.disable_event_tracking() };
    let (major, minor) = ctx.compute_capability().unwrap();
    let k = Kernels::load(&ctx, regmix_cuda::compile::arch_name(major, minor), head_dim).unwrap();
    Some(Gpu { stream: ctx.default_stream(), k, _ctx: ctx })
}

/// A device buffer with its typed address.
struct D<T> {
    s: CudaSlice<T>,
    p: Ptr<T>,
}

impl Gpu {
    fn f32(&self, x: &[f32]) -> D<f32> {
        let s = self.stream.clone_htod(x).unwrap();
        let addr = s.device_ptr(&self.stream).0;
        D { p: Ptr::new(addr, x.len()), s }
    }
    /// Uploads `x` rounded to bf16 and returns the rounded values as the CPU sees them.
    fn bf16(&self, x: &[f32]) -> (D<bf16>, Vec<f32>) {
        let h: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        let s = self.stream.clone_htod(&h).unwrap();
        let addr = s.device_ptr(&self.stream).0;
        (D { p: Ptr::new(addr, x.len()), s }, h.iter().map(|v| v.to_f32()).collect())
    }
    fn u32(&self, x: &[u32]) -> D<u32> {
        let s = self.stream.clone_htod(x).unwrap();
        let addr = s.device_ptr(&self.stream).0;
        D { p: Ptr::new(addr, x.len()), s }
    }
    fn poison<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(&self, len: usize) -> D<T> {
        let s = self.stream.alloc_zeros::<T>(len).unwrap();
        let addr = s.device_ptr(&self.stream).0;
        // SAFETY: a live allocation of len elements on this stream.
        unsafe {
            cudarc::driver::result::memset_d8_async(addr, 0xff, len * std::mem::size_of::<T>(), self.stream.cu_stream())
        }
        .unwrap();
        D { p: Ptr::new(addr, len), s }
    }
    fn get32(&self, d: &D<f32>) -> Vec<f32> {
        self.stream.clone_dtoh(&d.s).unwrap()
    }
    fn get16(&self, d: &D<bf16>) -> Vec<f32> {
        self.stream.clone_dtoh(&d.s).unwrap().iter().map(|v| v.to_f32()).collect()
    }
}

fn rand_vec(rng: &mut impl Rng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

fn check(name: &str, gpu: &[f32], cpu: &[f32], tol: f64) {
    assert_eq!(gpu.len(), cpu.len(), "{name}: length");
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        assert!(g.is_finite(), "{name}: element {i} is {g} (not written?)");
        num += (g as f64 - c as f64).powi(2);
        den += (c as f64).powi(2);
    }
    let e = num.sqrt() / den.sqrt().max(1e-30);
    eprintln!("{name:<28} rel {e:.2e} (tolerance {tol:.0e})");
    assert!(e <= tol, "{name}: relative error {e:.3e} > {tol:.0e}");
}

#[test]
fn embedding_forward_and_backward() {
    let Some(g) = gpu(32) else { return };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (n, d, v) = (300, 64, 50);
    let table = rand_vec(&mut rng, v * d, 1.0);
    let tokens: Vec<u32> = (0..n).map(|_| rng.random_range(0..v as u32)).collect();
    let (tt, td) = (g.u32(&tokens), g.f32(&table));
    let out = g.poison::<f32>(n * d);
    g.k.embedding_forward(&g.stream, out.p, tt.p, td.p, n, d).unwrap();
    let mut want = vec![0.0; n * d];
    ops::embedding_forward(&mut want, &tokens, &table, d);
    check("embedding_forward", &g.get32(&out), &want, 0.0);
    // 300 rows over 50 tokens: every token repeats (6 times on average); dtable starts
    // non-zero, since the kernel adds to it.
    let dout = rand_vec(&mut rng, n * d, 1.0);
    let dd = g.f32(&dout);
    let dtable0 = rand_vec(&mut rng, v * d, 1.0);
    let dtable = g.f32(&dtable0);
    let b = embedding_backward(&g, dtable.p, &tokens, v, dd.p, d);
    assert!(b.tokens.len() < n, "the test must repeat tokens");
    let mut want = dtable0;
    ops::embedding_backward(&mut want, &tokens, &dout, d);
    check("embedding_backward", &g.get32(&dtable), &want, 1e-5);
}

/// Groups `tokens` by token on the host, uploads the buckets and runs the kernel, as the
/// backend does; returns the buckets.
fn embedding_backward(
    g: &Gpu,
    dtable: Ptr<f32>,
    tokens: &[u32],
    vocab: usize,
    dout: Ptr<f32>,
    d: usize,
) -> TokenBuckets {
    let b = TokenBuckets::new(tokens, vocab);
    let (bt, bo, br) = (g.u32(&b.tokens), g.u32(&b.offsets), g.u32(&b.rows));
    g.k.embedding_backward(&g.stream, dtable, bt.p, bo.p, br.p, dout, b.tokens.len(), tokens.len(), d).unwrap();
    g.stream.synchronize().unwrap(); // before the bucket buffers are freed
    b
}

#[test]
fn token_buckets_group_the_rows_by_token_in_order() {
    // Host only: no GPU needed.
    let b = TokenBuckets::new(&[3, 1, 3, 0, 3, 1], 5);
    assert_eq!(b.tokens, [0, 1, 3]);
    assert_eq!(b.offsets, [0, 1, 3, 6]);
    assert_eq!(b.rows, [3, 1, 5, 0, 2, 4]);
    assert_eq!(TokenBuckets::new(&[], 5), TokenBuckets { tokens: vec![], offsets: vec![0], rows: vec![] });
}

#[test]
fn rmsnorm_forward_with_residual_and_backward() {
    let Some(g) = gpu(32) else { return };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let (n, d, eps) = (77, 96, 1e-5);
    let x = rand_vec(&mut rng, n * d, 1.0);
    let proj = rand_vec(&mut rng, n * d, 0.5);
    let w: Vec<f32> = (0..d).map(|_| rng.random_range(0.5..1.5)).collect();
    let (xd, pd, wd) = (g.f32(&x), g.f32(&proj), g.f32(&w));
    let (x_out, out, rstd) = (g.poison::<f32>(n * d), g.poison::<bf16>(n * d), g.poison::<f32>(n));
    g.k.rmsnorm_forward(&g.stream, x_out.p, out.p, rstd.p, xd.p, Some(pd.p), wd.p, n, d, eps).unwrap();
    let xs: Vec<f32> = x.iter().zip(&proj).map(|(a, b)| a + b).collect();
    let (mut want, mut want_r) = (vec![0.0; n * d], vec![0.0; n]);
    ops::rmsnorm_forward(&mut want, &mut want_r, &xs, &w, d, eps);
    check("rmsnorm_forward x_out", &g.get32(&x_out), &xs, 1e-6);
    check("rmsnorm_forward out", &g.get16(&out), &want, 5e-3);
    check("rmsnorm_forward rstd", &g.get32(&rstd), &want_r, 1e-5);
    // Backward: dres accumulates onto what is there.
    let dy = rand_vec(&mut rng, n * d, 1.0);
    let dres0 = rand_vec(&mut rng, n * d, 1.0);
    // dw accumulates too; 77 rows are one full block of RMSNORM_DW_ROWS (64) and a partial one.
    let dw0 = rand_vec(&mut rng, d, 1.0);
    let (dyd, dres, dw) = (g.f32(&dy), g.f32(&dres0), g.f32(&dw0));
    let (dres_bf16, parts) = (g.poison::<bf16>(n * d), g.poison::<f32>(n.div_ceil(RMSNORM_DW_ROWS) * d));
    g.k.rmsnorm_backward(&g.stream, dres.p, dres_bf16.p, parts.p, dyd.p, x_out.p, wd.p, rstd.p, n, d).unwrap();
    g.k.rmsnorm_backward_dw(&g.stream, dw.p, parts.p, n, d).unwrap();
    let (mut want_dx, mut want_dw) = (dres0.clone(), dw0);
    ops::rmsnorm_backward(&mut want_dx, &mut want_dw, &dy, &xs, &w, &want_r, d);
    check("rmsnorm_backward dres", &g.get32(&dres), &want_dx, 1e-5);
    check("rmsnorm_backward dres bf16", &g.get16(&dres_bf16), &want_dx, 5e-3);
    check("rmsnorm_backward dw", &g.get32(&dw), &want_dw, 1e-5);
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// The two backward kernels that reduce over rows (the embedding's over a token's rows,
/// RMSNorm's dw over all rows) give the same bits when run twice on the same inputs, at a
/// regmix-1m-like width with many repeats and many blocks. They once used atomics, whose
/// order of additions changed from run to run.
#[test]
fn embedding_and_rmsnorm_backward_are_bitwise_reproducible() {
    let Some(g) = gpu(32) else { return };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    let (n, d, v) = (8192, 512, 100);
    // A skewed token distribution: a third of the rows are token 0, as a frequent word is.
    let tokens: Vec<u32> = (0..n).map(|i| if i % 3 == 0 { 0 } else { rng.random_range(0..v as u32) }).collect();
    let dout = g.f32(&rand_vec(&mut rng, n * d, 1.0));
    let dtable0 = rand_vec(&mut rng, v * d, 1e-3);
    let runs: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            let dtable = g.f32(&dtable0);
            embedding_backward(&g, dtable.p, &tokens, v, dout.p, d);
            g.get32(&dtable)
        })
        .collect();
    assert!(runs[0].iter().all(|x| x.is_finite()));
    assert_eq!(bits(&runs[0]), bits(&runs[1]), "embedding_backward: two runs differ");

    let x = g.f32(&rand_vec(&mut rng, n * d, 1.0));
    let dy = g.f32(&rand_vec(&mut rng, n * d, 1.0));
    let w = g.f32(&(0..d).map(|_| rng.random_range(0.5..1.5)).collect::<Vec<f32>>());
    let rstd = g.f32(&(0..n).map(|_| rng.random_range(0.5..2.0)).collect::<Vec<f32>>());
    let dres0 = rand_vec(&mut rng, n * d, 1.0);
    let dw0 = rand_vec(&mut rng, d, 1.0);
    let runs: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..2)
        .map(|_| {
            let (dres, dw) = (g.f32(&dres0), g.f32(&dw0));
            let (dres_bf16, parts) = (g.poison::<bf16>(n * d), g.poison::<f32>(n.div_ceil(RMSNORM_DW_ROWS) * d));
            g.k.rmsnorm_backward(&g.stream, dres.p, dres_bf16.p, parts.p, dy.p, x.p, w.p, rstd.p, n, d).unwrap();
            g.k.rmsnorm_backward_dw(&g.stream, dw.p, parts.p, n, d).unwrap();
            (g.get32(&dres), g.get16(&dres_bf16), g.get32(&dw))
        })
        .collect();
    assert!(runs[0].2.iter().all(|x| x.is_finite()));
    assert_eq!(bits(&runs[0].0), bits(&runs[1].0), "rmsnorm_backward dres: two runs differ");
    assert_eq!(bits(&runs[0].1), bits(&runs[1].1), "rmsnorm_backward dres bf16: two runs differ");
    assert_eq!(bits(&runs[0].2), bits(&runs[1].2), "rmsnorm_backward dw: two runs differ");
    eprintln!("embedding_backward and rmsnorm_backward: two runs equal bit for bit");
}

#[test]
fn rope_forward_and_backward() {
    let Some(g) = gpu(32) else { return };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let (t, heads, hd, batch) = (40, 3, 32, 2);
    let n = batch * t;
    let (cos, sin) = ops::rope_tables::<f32>(t, hd, 10000.0);
    let (cd, sd) = (g.f32(&cos), g.f32(&sin));
    for inverse in [false, true] {
        let (xd, x) = g.bf16(&rand_vec(&mut rng, n * heads * hd, 1.0));
        g.k.rope(&g.stream, xd.p, cd.p, sd.p, n, heads, hd, t, inverse).unwrap();
        let mut want = x.clone();
        ops::rope(&mut want, heads, hd, t, &cos, &sin, inverse);
        check(if inverse { "rope_backward" } else { "rope_forward" }, &g.get16(&xd), &want, 5e-3);
    }
}

fn attention(head_dim: usize) {
    let Some(g) = gpu(head_dim) else { return };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    // T = 100: one full tile of 64 and a partial one.
    let s = ops::AttnShape { batch: 2, context: 100, heads: 4, groups: 2, head_dim };
    let n = s.batch * s.context;
    let (qd, kvd) = (s.heads * head_dim, s.groups * head_dim);
    let (q_d, q) = g.bf16(&rand_vec(&mut rng, n * qd, 1.0));
    let (k_d, k) = g.bf16(&rand_vec(&mut rng, n * kvd, 1.0));
    let (v_d, v) = g.bf16(&rand_vec(&mut rng, n * kvd, 1.0));
    let (out, lse) = (g.poison::<bf16>(n * qd), g.poison::<f32>(s.batch * s.heads * s.context));
    g.k.attention_forward(&g.stream, out.p, lse.p, q_d.p, k_d.p, v_d.p, s.batch, s.context, s.heads, s.groups).unwrap();
    let mut want = vec![0.0; n * qd];
    let mut probs = vec![0.0; s.batch * s.heads * s.context * s.context];
    ops::attention_forward(&mut want, &mut probs, &q, &k, &v, s);
    let got_out = g.get16(&out);
    check(&format!("attention_forward hd{head_dim}"), &got_out, &want, 5e-3);
    for x in g.get32(&lse) {
        assert!(x.is_finite(), "lse not written");
    }
    // Backward from the GPU's own (bf16) forward output, as in the model.
    let (dout_d, dout) = g.bf16(&rand_vec(&mut rng, n * qd, 1.0));
    let dsum = g.poison::<f32>(s.batch * s.heads * s.context);
    let (dq, dk, dv) = (g.poison::<bf16>(n * qd), g.poison::<bf16>(n * kvd), g.poison::<bf16>(n * kvd));
    g.k.attention_backward_preprocess(&g.stream, dsum.p, dout_d.p, out.p, s.batch, s.context, s.heads).unwrap();
    g.k.attention_backward_dkv(
        &g.stream, dk.p, dv.p, dout_d.p, lse.p, dsum.p, q_d.p, k_d.p, v_d.p, s.batch, s.context, s.heads, s.groups,
    )
    .unwrap();
    g.k.attention_backward_dq(
        &g.stream, dq.p, dout_d.p, lse.p, dsum.p, q_d.p, k_d.p, v_d.p, s.batch, s.context, s.heads, s.groups,
    )
    .unwrap();
    let (mut wq, mut wk, mut wv) = (vec![0.0; n * qd], vec![0.0; n * kvd], vec![0.0; n * kvd]);
    let mut scratch = vec![0.0; s.batch * s.groups * s.context * s.context];
    ops::attention_backward(&mut wq, &mut wk, &mut wv, &mut scratch, &dout, &q, &k, &v, &probs, s);
    check(&format!("attention_backward dq hd{head_dim}"), &g.get16(&dq), &wq, 1e-2);
    check(&format!("attention_backward dk hd{head_dim}"), &g.get16(&dk), &wk, 1e-2);
    check(&format!("attention_backward dv hd{head_dim}"), &g.get16(&dv), &wv, 1e-2);
}

#[test]
fn attention_forward_and_backward_every_head_size() {
    for hd in regmix_cuda::launch::HEAD_DIMS {
        attention(*hd);
    }
}

#[test]
fn swiglu_forward_and_backward() {
    let Some(g) = gpu(32) else { return };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let len = 5000;
    let (h1d, h1) = g.bf16(&rand_vec(&mut rng, len, 3.0));
    let (h3d, h3) = g.bf16(&rand_vec(&mut rng, len, 3.0));
    let gd = g.poison::<bf16>(len);
    g.k.swiglu_forward(&g.stream, gd.p, h1d.p, h3d.p, len).unwrap();
    let mut want = vec![0.0; len];
    ops::swiglu_forward(&mut want, &h1, &h3);
    check("swiglu_forward", &g.get16(&gd), &want, 5e-3);
    let dg = rand_vec(&mut rng, len, 1.0);
    let dgd = g.f32(&dg);
    let (dh1, dh3) = (g.poison::<bf16>(len), g.poison::<bf16>(len));
    g.k.swiglu_backward(&g.stream, dh1.p, dh3.p, dgd.p, h1d.p, h3d.p, len).unwrap();
    let (mut w1, mut w3) = (vec![0.0; len], vec![0.0; len]);
    ops::swiglu_backward(&mut w1, &mut w3, &dg, &h1, &h3);
    check("swiglu_backward dh1", &g.get16(&dh1), &w1, 5e-3);
    check("swiglu_backward dh3", &g.get16(&dh3), &w3, 5e-3);
}

#[test]
fn classifier_losses_and_logit_gradients() {
    let Some(g) = gpu(32) else { return };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    // Vocabularies wider than the block and not a multiple of it: 1000 takes the 16-byte
    // path (a multiple of 8), 1001 the scalar one.
    for v in [1000usize, 1001] {
        let rows = 37;
        let targets: Vec<u32> = (0..rows).map(|_| rng.random_range(0..v as u32)).collect();
        let td = g.u32(&targets);
        for grad in [None, Some(0.25)] {
            let (ld, logits) = g.bf16(&rand_vec(&mut rng, rows * v, 4.0));
            let losses = g.poison::<f32>(rows);
            g.k.classifier(&g.stream, ld.p, losses.p, td.p, rows, v, grad).unwrap();
            let (mut want, mut want_l) = (logits.clone(), vec![0.0f64; rows]);
            ops::cross_entropy(&mut want, &mut want_l, &targets, v, grad.map(|s| s as f32));
            let want_l: Vec<f32> = want_l.iter().map(|&x| x as f32).collect();
            check(&format!("classifier losses v{v}"), &g.get32(&losses), &want_l, 1e-5);
            let got = g.get16(&ld);
            // Without a gradient the kernel leaves the logits as they were; the CPU op keeps
            // exp(x − max) in its row either way (its backward reuses them), so the reference
            // for that case is the logits themselves.
            let (what, want, tol) = match grad {
                Some(_) => ("logit gradient", want, 5e-3),
                None => ("logits untouched", logits.clone(), 0.0),
            };
            check(&format!("classifier {what} v{v}"), &got, &want, tol);
        }
    }
}

#[test]
fn adamw_grad_norm_and_cast() {
    let Some(g) = gpu(32) else { return };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let len = 200_003; // more than three gradient-norm chunks, not a multiple of anything
    let grads = rand_vec(&mut rng, len, 1e-2);
    let gd = g.f32(&grads);
    let parts = g.poison::<f32>(len.div_ceil(regmix_cuda::launch::NORM_CHUNK));
    g.k.grad_norm(&g.stream, parts.p, gd.p).unwrap();
    let norm: f64 = g.get32(&parts).iter().map(|&x| x as f64).sum::<f64>().sqrt();
    let want: f64 = grads.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    check("grad_norm", &[norm as f32], &[want as f32], 1e-5);
    let params = rand_vec(&mut rng, len, 1.0);
    let (pd, md, vd) = (g.f32(&params), g.f32(&vec![0.0; len]), g.f32(&vec![0.0; len]));
    let pb = g.poison::<bf16>(len);
    // Step 1 of the default AdamW at lr 1e-3: bias corrections 1 − 0.9 and 1 − 0.95.
    let c = regmix_cuda::launch::AdamConsts::from(regmix_model::AdamW::default().step(1, 1e-3, 0.5));
    g.k.adamw(&g.stream, pd.p, pb.p, gd.p, md.p, vd.p, &c).unwrap();
    let want: Vec<f32> = params
        .iter()
        .zip(&grads)
        .map(|(&p, &gr)| {
            let gr = gr * 0.5;
            let (m, v) = (0.1 * gr, 0.05 * gr * gr);
            p * c.decay - c.step_size * m / (v.sqrt() / c.sqrt_bc2 + c.eps)
        })
        .collect();
    check("adamw params", &g.get32(&pd), &want, 1e-5);
    check("adamw bf16 copy", &g.get16(&pb), &want, 5e-3);
    let cast = g.poison::<bf16>(len);
    g.k.cast(&g.stream, cast.p, pd.p).unwrap();
    let exact: Vec<f32> = g.get32(&pd).iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
    check("cast f32→bf16", &g.get16(&cast), &exact, 0.0);
}
