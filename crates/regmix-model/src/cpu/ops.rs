//! The operations of the decoder, one forward and one backward function each, on flat
//! row-major buffers. `n` is the number of token positions (batch × context), `d` the model
//! width. Backward functions *accumulate* parameter gradients (`+=`), so micro-batches add
//! up; input gradients are overwritten unless the name says otherwise.
//!
//! Everything is generic over [`Float`] so the gradient checks run this exact code in f64.

use rayon::prelude::*;

use crate::float::{Float, SendPtr};

/// Rows per rayon task for row-wise operations: small rows are too cheap to split finer.
const ROWS_PER_TASK: usize = 16;

// ---------------------------------------------------------------------------------------
// Embedding

/// `out[i, :] = table[tokens[i], :]`.
pub fn embedding_forward<T: Float>(out: &mut [T], tokens: &[u32], table: &[T], d: usize) {
    out.par_chunks_mut(d).zip(tokens.par_iter()).with_min_len(ROWS_PER_TASK).for_each(|(row, &t)| {
        let t = t as usize;
        row.copy_from_slice(&table[t * d..(t + 1) * d]);
    });
}

/// `dtable[tokens[i], :] += dout[i, :]`. Sequential: rows may repeat a token, and the sum
/// must not depend on thread timing.
pub fn embedding_backward<T: Float>(dtable: &mut [T], tokens: &[u32], dout: &[T], d: usize) {
    for (row, &t) in dout.chunks(d).zip(tokens) {
        let t = t as usize;
        for (g, &x) in dtable[t * d..(t + 1) * d].iter_mut().zip(row) {
            *g += x;
        }
    }
}

// ---------------------------------------------------------------------------------------
// RMSNorm: y = x / sqrt(mean(x²) + eps) ⊙ w

pub fn rmsnorm_forward<T: Float>(out: &mut [T], rstd: &mut [T], x: &[T], w: &[T], d: usize, eps: f64) {
    let eps = T::from_f64(eps);
    let inv_d = T::from_f64(1.0 / d as f64);
    out.par_chunks_mut(d).zip(rstd.par_iter_mut()).zip(x.par_chunks(d)).with_min_len(ROWS_PER_TASK).for_each(
        |((o, r), x)| {
            let ms = x.iter().map(|&v| v * v).sum::<T>() * inv_d;
            let s = T::ONE / (ms + eps).sqrt();
            *r = s;
            for ((o, &x), &w) in o.iter_mut().zip(x).zip(w) {
                *o = x * s * w;
            }
        },
    );
}

/// `dx += ∂L/∂x` (the residual stream's gradient is accumulated in place) and `dw += ∂L/∂w`.
/// With x̂ = x·r: dx = r·(g − x̂·mean(g ⊙ x̂)) where g = dy ⊙ w.
pub fn rmsnorm_backward<T: Float>(dx: &mut [T], dw: &mut [T], dy: &[T], x: &[T], w: &[T], rstd: &[T], d: usize) {
    let inv_d = T::from_f64(1.0 / d as f64);
    dx.par_chunks_mut(d)
        .zip(dy.par_chunks(d))
        .zip(x.par_chunks(d))
        .zip(rstd.par_iter())
        .with_min_len(ROWS_PER_TASK)
        .for_each(|(((dx, dy), x), &r)| {
            let dot = dy.iter().zip(w).zip(x).map(|((&g, &w), &x)| g * w * x * r).sum::<T>() * inv_d;
            for (((dx, &g), &w), &x) in dx.iter_mut().zip(dy).zip(w).zip(x) {
                let xhat = x * r;
                *dx += r * (g * w - xhat * dot);
            }
        });
    // The weight gradient sums over rows: sequential, so it is deterministic.
    for ((dy, x), &r) in dy.chunks(d).zip(x.chunks(d)).zip(rstd) {
        for ((dw, &g), &x) in dw.iter_mut().zip(dy).zip(x) {
            *dw += g * x * r;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Linear layers, weights stored [out, in] as PyTorch does.

/// `y[n, out] = x[n, in] · Wᵀ`.
pub fn linear_forward<T: Float>(y: &mut [T], x: &[T], w: &[T], n: usize, d_in: usize, d_out: usize) {
    T::gemm(n, d_out, d_in, x, d_in, 1, w, 1, d_in, y, d_out, false, true);
}

/// `dx (+)= dy · W` and `dW += dyᵀ · x`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<T: Float>(
    dx: &mut [T],
    dw: &mut [T],
    dy: &[T],
    x: &[T],
    w: &[T],
    n: usize,
    d_in: usize,
    d_out: usize,
    accumulate_dx: bool,
) {
    T::gemm(n, d_in, d_out, dy, d_out, 1, w, d_in, 1, dx, d_in, accumulate_dx, true);
    T::gemm(d_out, d_in, n, dy, 1, d_out, x, d_in, 1, dw, d_in, true, true);
}

// ---------------------------------------------------------------------------------------
// RoPE, the "rotate half" convention of lit-gpt and Hugging Face Llama: the first and second
// halves of each head are the two coordinates of each rotated pair.

/// `cos` and `sin` tables, `[context, head_dim / 2]`, computed in f64.
pub fn rope_tables<T: Float>(context: usize, head_dim: usize, theta: f64) -> (Vec<T>, Vec<T>) {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(context * half);
    let mut sin = Vec::with_capacity(context * half);
    for t in 0..context {
        for i in 0..half {
            let freq = theta.powf(-((2 * i) as f64) / head_dim as f64);
            let angle = t as f64 * freq;
            cos.push(T::from_f64(angle.cos()));
            sin.push(T::from_f64(angle.sin()));
        }
    }
    (cos, sin)
}

/// Rotates every head of `x[n, heads·head_dim]` in place; position = row index mod context.
/// `inverse` applies the transposed rotation, which is the backward pass.
#[allow(clippy::too_many_arguments)]
pub fn rope<T: Float>(x: &mut [T], heads: usize, head_dim: usize, context: usize, cos: &[T], sin: &[T], inverse: bool) {
    let half = head_dim / 2;
    x.par_chunks_mut(heads * head_dim).enumerate().with_min_len(ROWS_PER_TASK).for_each(|(row, xr)| {
        let t = row % context;
        let (c, s) = (&cos[t * half..(t + 1) * half], &sin[t * half..(t + 1) * half]);
        for head in xr.chunks_mut(head_dim) {
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let (x1, x2) = (a[i], b[i]);
                if inverse {
                    a[i] = x1 * c[i] + x2 * s[i];
                    b[i] = x2 * c[i] - x1 * s[i];
                } else {
                    a[i] = x1 * c[i] - x2 * s[i];
                    b[i] = x2 * c[i] + x1 * s[i];
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// Causal multi-head attention with grouped queries. q: [n, heads·hd], k/v: [n, groups·hd],
// out: [n, heads·hd], probs: [batch, heads, T, T] (row i holds softmax over j ≤ i).

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub batch: usize,
    pub context: usize,
    pub heads: usize,
    pub groups: usize,
    pub head_dim: usize,
}

impl AttnShape {
    fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }
    fn kv_dim(&self) -> usize {
        self.groups * self.head_dim
    }
}

pub fn attention_forward<T: Float>(out: &mut [T], probs: &mut [T], q: &[T], k: &[T], v: &[T], s: AttnShape) {
    let (t, hd) = (s.context, s.head_dim);
    let (qd, kvd) = (s.q_dim(), s.kv_dim());
    let per_group = s.heads / s.groups;
    let scale = T::from_f64(1.0 / (hd as f64).sqrt());
    assert_eq!(out.len(), s.batch * t * qd);
    assert_eq!(probs.len(), s.batch * s.heads * t * t);
    let out_ptr = SendPtr(out.as_mut_ptr());
    probs.par_chunks_mut(t * t).enumerate().for_each(|(bh, p)| {
        let (b, h) = (bh / s.heads, bh % s.heads);
        let g = h / per_group;
        let q0 = b * t * qd + h * hd;
        let k0 = b * t * kvd + g * hd;
        // scores = Q_h · K_gᵀ (the masked upper triangle is computed and overwritten).
        T::gemm(t, t, hd, &q[q0..], qd, 1, &k[k0..], 1, kvd, p, t, false, false);
        for i in 0..t {
            let row = &mut p[i * t..(i + 1) * t];
            let mut max = T::NEG_INFINITY;
            for &x in &row[..=i] {
                max = max.max(x * scale);
            }
            let mut sum = T::ZERO;
            for x in &mut row[..=i] {
                *x = (*x * scale - max).fast_exp();
                sum += *x;
            }
            let inv = T::ONE / sum;
            for x in &mut row[..=i] {
                *x *= inv;
            }
            for x in &mut row[i + 1..] {
                *x = T::ZERO;
            }
        }
        // out_h = P · V_g, written into head h's columns of `out`.
        // SAFETY: task (b, h) writes rows b·T..(b+1)·T, columns h·hd..(h+1)·hd of `out` and
        // nothing else; no two tasks share (b, h), so the written elements are disjoint, and
        // `out` is not read during the loop. The view lies inside `out` (asserted length).
        unsafe {
            T::gemm_raw(t, hd, t, p.as_ptr(), t, 1, v[k0..].as_ptr(), kvd, 1, out_ptr.get().add(q0), qd, false, false);
        }
    });
}

/// Gradients of attention: `dq` overwritten, `dk`, `dv` overwritten. `scratch` holds one
/// T×T matrix per (batch, group) task.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward<T: Float>(
    dq: &mut [T],
    dk: &mut [T],
    dv: &mut [T],
    scratch: &mut [T],
    dout: &[T],
    q: &[T],
    k: &[T],
    v: &[T],
    probs: &[T],
    s: AttnShape,
) {
    let (t, hd) = (s.context, s.head_dim);
    let (qd, kvd) = (s.q_dim(), s.kv_dim());
    let per_group = s.heads / s.groups;
    let scale = T::from_f64(1.0 / (hd as f64).sqrt());
    assert_eq!(dq.len(), s.batch * t * qd);
    assert_eq!(dk.len(), s.batch * t * kvd);
    assert_eq!(dv.len(), s.batch * t * kvd);
    assert!(scratch.len() >= s.batch * s.groups * t * t);
    let (dq_ptr, dk_ptr, dv_ptr) = (SendPtr(dq.as_mut_ptr()), SendPtr(dk.as_mut_ptr()), SendPtr(dv.as_mut_ptr()));
    scratch[..s.batch * s.groups * t * t].par_chunks_mut(t * t).enumerate().for_each(|(bg, ds)| {
        let (b, g) = (bg / s.groups, bg % s.groups);
        let k0 = b * t * kvd + g * hd;
        for (i, h) in (g * per_group..(g + 1) * per_group).enumerate() {
            let first = i == 0;
            let q0 = b * t * qd + h * hd;
            let p = &probs[(b * s.heads + h) * t * t..(b * s.heads + h + 1) * t * t];
            // SAFETY (all four calls): task (b, g) alone writes rows b·T..(b+1)·T of
            // columns g·hd..(g+1)·hd of dk and dv, and columns h·hd..(h+1)·hd of dq for the
            // heads h of group g; tasks never share (b, g), so written elements are
            // disjoint, and the gradient buffers are not read by other tasks. Views lie
            // inside the buffers (asserted lengths).
            unsafe {
                // dP = dO_h · V_gᵀ
                T::gemm_raw(
                    t,
                    t,
                    hd,
                    dout[q0..].as_ptr(),
                    qd,
                    1,
                    v[k0..].as_ptr(),
                    1,
                    kvd,
                    ds.as_mut_ptr(),
                    t,
                    false,
                    false,
                );
                // dV_g (+)= Pᵀ · dO_h
                T::gemm_raw(
                    t,
                    hd,
                    t,
                    p.as_ptr(),
                    1,
                    t,
                    dout[q0..].as_ptr(),
                    qd,
                    1,
                    dv_ptr.get().add(k0),
                    kvd,
                    !first,
                    false,
                );
            }
            // dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale; zero where masked since P is.
            for r in 0..t {
                let (pr, dr) = (&p[r * t..(r + 1) * t], &mut ds[r * t..(r + 1) * t]);
                let dot: T = pr[..=r].iter().zip(&dr[..=r]).map(|(&a, &b)| a * b).sum();
                for (dsv, &pv) in dr[..=r].iter_mut().zip(&pr[..=r]) {
                    *dsv = pv * (*dsv - dot) * scale;
                }
                for x in &mut dr[r + 1..] {
                    *x = T::ZERO;
                }
            }
            // SAFETY: as above.
            unsafe {
                // dQ_h = dS · K_g
                T::gemm_raw(
                    t,
                    hd,
                    t,
                    ds.as_ptr(),
                    t,
                    1,
                    k[k0..].as_ptr(),
                    kvd,
                    1,
                    dq_ptr.get().add(q0),
                    qd,
                    false,
                    false,
                );
                // dK_g (+)= dSᵀ · Q_h
                T::gemm_raw(
                    t,
                    hd,
                    t,
                    ds.as_ptr(),
                    1,
                    t,
                    q[q0..].as_ptr(),
                    qd,
                    1,
                    dk_ptr.get().add(k0),
                    kvd,
                    !first,
                    false,
                );
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// SwiGLU: g = silu(h1) ⊙ h3

#[inline]
fn sigmoid<T: Float>(x: T) -> T {
    T::ONE / (T::ONE + (-x).fast_exp())
}

pub fn swiglu_forward<T: Float>(g: &mut [T], h1: &[T], h3: &[T]) {
    g.par_chunks_mut(4096).zip(h1.par_chunks(4096)).zip(h3.par_chunks(4096)).for_each(|((g, a), b)| {
        for ((g, &a), &b) in g.iter_mut().zip(a).zip(b) {
            *g = a * sigmoid(a) * b;
        }
    });
}

/// Writes ∂L/∂h1 into `dh1` and ∂L/∂h3 into `dh3` from `dg`.
pub fn swiglu_backward<T: Float>(dh1: &mut [T], dh3: &mut [T], dg: &[T], h1: &[T], h3: &[T]) {
    dh1.par_chunks_mut(4096)
        .zip(dh3.par_chunks_mut(4096))
        .zip(dg.par_chunks(4096))
        .zip(h1.par_chunks(4096).zip(h3.par_chunks(4096)))
        .for_each(|(((d1, d3), dg), (a, b))| {
            for ((((d1, d3), &dg), &a), &b) in d1.iter_mut().zip(d3.iter_mut()).zip(dg).zip(a).zip(b) {
                let sg = sigmoid(a);
                let silu = a * sg;
                *d3 = dg * silu;
                // d silu/da = σ(a)·(1 + a·(1 − σ(a)))
                *d1 = dg * b * sg * (T::ONE + a * (T::ONE - sg));
            }
        });
}

// ---------------------------------------------------------------------------------------
// Cross-entropy over the (padded) vocabulary.

/// Per-row losses of `logits[n, v]` against `targets` (nats), written to `losses`. With
/// `grad_scale = Some(s)` the logits are replaced by `s · (softmax − onehot)`, the gradient
/// of `s · Σ losses`.
pub fn cross_entropy<T: Float>(logits: &mut [T], losses: &mut [f64], targets: &[u32], v: usize, grad_scale: Option<T>) {
    logits.par_chunks_mut(v).zip(losses.par_iter_mut()).zip(targets.par_iter()).for_each(|((row, loss), &y)| {
        let y = y as usize;
        let target_logit = row[y];
        let mut max = T::NEG_INFINITY;
        for &x in row.iter() {
            max = max.max(x);
        }
        // One exp per logit: the row keeps exp(x − max) for the gradient.
        let mut sum = T::ZERO;
        for x in row.iter_mut() {
            *x = (*x - max).fast_exp();
            sum += *x;
        }
        *loss = max.to_f64() + sum.to_f64().ln() - target_logit.to_f64();
        if let Some(s) = grad_scale {
            let k = s / sum;
            for x in row.iter_mut() {
                *x *= k;
            }
            row[y] -= s;
        }
    });
}
