//! The CPU backend: the readable reference, in the manner of llm.c's `train_gpt2.c`.
//! Parameters, gradients and AdamW moments are flat buffers laid out by [`Layout`];
//! activations live in buffers allocated once for the largest micro-batch, so a training
//! step allocates nothing of its own. The model is the sequence of [`ops`] calls in
//! [`CpuBackend::forward`] and [`CpuBackend::backward`].

pub mod ops;

use rayon::prelude::*;

use crate::backend::{AdamW, Backend, Buffer, NORM_CHUNK};
use crate::float::Float;
use crate::layout::Layout;
use crate::{Config, Error, Result};
use ops::AttnShape;

/// Saved activations of one transformer block, sized for `capacity` sequences.
struct BlockActs<T> {
    x: Vec<T>,     // block input (residual stream)      [n, d]
    rstd1: Vec<T>, // attention RMSNorm 1/rms             [n]
    xn1: Vec<T>,   // attention RMSNorm output            [n, d]
    q: Vec<T>,     // queries after RoPE                  [n, q_dim]
    k: Vec<T>,     // keys after RoPE                     [n, kv_dim]
    v: Vec<T>,     // values                              [n, kv_dim]
    probs: Vec<T>, // attention probabilities             [batch, heads, T, T]
    att: Vec<T>,   // attention output before o_proj      [n, q_dim]
    xm: Vec<T>,    // residual after attention            [n, d]
    rstd2: Vec<T>, // MLP RMSNorm 1/rms                   [n]
    xn2: Vec<T>,   // MLP RMSNorm output                  [n, d]
    h1: Vec<T>,    // gate projection                     [n, ff]
    h3: Vec<T>,    // up projection                       [n, ff]
    g: Vec<T>,     // silu(h1) ⊙ h3                       [n, ff]
}

/// Activations and backward scratch for one micro-batch.
struct Acts<T> {
    capacity: usize,
    inputs: Vec<u32>,
    targets: Vec<u32>,
    blocks: Vec<BlockActs<T>>,
    x_out: Vec<T>,  // residual after the last block  [n, d]
    rstdf: Vec<T>,  // final RMSNorm 1/rms             [n]
    xnf: Vec<T>,    // final RMSNorm output            [n, d]
    logits: Vec<T>, // logits, then their gradient     [n, V]
    losses: Vec<f64>,
    // backward scratch
    dres: Vec<T>,    // gradient of the residual stream [n, d]
    dxn: Vec<T>,     // gradient of a norm's output     [n, d]
    dq: Vec<T>,      // [n, q_dim]
    dk: Vec<T>,      // [n, kv_dim]
    dv: Vec<T>,      // [n, kv_dim]
    datt: Vec<T>,    // [n, q_dim]
    dg: Vec<T>,      // [n, ff]
    dh1: Vec<T>,     // [n, ff]
    dh3: Vec<T>,     // [n, ff]
    dscores: Vec<T>, // [batch, groups, T, T]
}

/// The bytes of f32 the CPU backend holds for `c` at micro-batches of `capacity` sequences:
/// parameters, gradients and AdamW moments, and the activations [`Acts`] allocates (the same
/// sums, so a model too big for the machine is refused before anything is allocated).
pub fn memory_bytes(c: &Config, capacity: usize) -> u128 {
    let (n, d, ff, t) = ((capacity * c.context) as u128, c.d_model as u128, c.mlp_hidden as u128, c.context as u128);
    let (q, kv, b) = (c.q_dim() as u128, c.kv_dim() as u128, capacity as u128);
    let block = n * (4 * d + 2 + 2 * q + 2 * kv + 3 * ff) + b * c.n_head as u128 * t * t;
    let acts = c.n_layer as u128 * block
        + n * (2 * d + 1 + c.padded_vocab_size as u128) // x_out, xnf, rstdf, logits
        + n * 4 // inputs and targets (u32), losses (f64), in 4-byte units
        + n * (2 * d + 2 * q + 2 * kv + 3 * ff) // the gradients' buffers
        + b * c.n_query_groups as u128 * t * t;
    4 * (acts + 4 * Layout::new(c).len() as u128)
}

impl<T: Float> Acts<T> {
    fn new(c: &Config, capacity: usize) -> Self {
        let n = capacity * c.context;
        let (d, ff, t) = (c.d_model, c.mlp_hidden, c.context);
        let z = |len: usize| vec![T::ZERO; len];
        let blocks = (0..c.n_layer)
            .map(|_| BlockActs {
                x: z(n * d),
                rstd1: z(n),
                xn1: z(n * d),
                q: z(n * c.q_dim()),
                k: z(n * c.kv_dim()),
                v: z(n * c.kv_dim()),
                probs: z(capacity * c.n_head * t * t),
                att: z(n * c.q_dim()),
                xm: z(n * d),
                rstd2: z(n),
                xn2: z(n * d),
                h1: z(n * ff),
                h3: z(n * ff),
                g: z(n * ff),
            })
            .collect();
        Acts {
            capacity,
            inputs: vec![0; n],
            targets: vec![0; n],
            blocks,
            x_out: z(n * d),
            rstdf: z(n),
            xnf: z(n * d),
            logits: z(n * c.padded_vocab_size),
            losses: vec![0.0; n],
            dres: z(n * d),
            dxn: z(n * d),
            dq: z(n * c.q_dim()),
            dk: z(n * c.kv_dim()),
            dv: z(n * c.kv_dim()),
            datt: z(n * c.q_dim()),
            dg: z(n * ff),
            dh1: z(n * ff),
            dh3: z(n * ff),
            dscores: z(capacity * c.n_query_groups * t * t),
        }
    }
}

pub struct CpuBackend<T: Float> {
    cfg: Config,
    layout: Layout,
    pub params: Vec<T>,
    pub grads: Vec<T>,
    adam_m: Vec<T>,
    adam_v: Vec<T>,
    rope_cos: Vec<T>,
    rope_sin: Vec<T>,
    acts: Option<Acts<T>>,
    /// Partial sums of the gradient norm, one per fixed-size chunk.
    norm_partials: Vec<f64>,
}

impl<T: Float> CpuBackend<T> {
    /// A model initialised by [`crate::init::init_params`] from `seed`.
    pub fn new(cfg: &Config, seed: u64) -> Self {
        let layout = Layout::new(cfg);
        let params = crate::init::init_params(cfg, &layout, seed);
        Self::with_params(cfg, params)
    }

    pub fn with_params(cfg: &Config, params: Vec<T>) -> Self {
        let layout = Layout::new(cfg);
        assert_eq!(params.len(), layout.len(), "parameter buffer does not match the layout");
        let (rope_cos, rope_sin) = ops::rope_tables(cfg.context, cfg.head_dim(), cfg.rope_theta);
        let len = layout.len();
        CpuBackend {
            cfg: cfg.clone(),
            layout,
            params,
            grads: vec![T::ZERO; len],
            adam_m: vec![T::ZERO; len],
            adam_v: vec![T::ZERO; len],
            rope_cos,
            rope_sin,
            acts: None,
            norm_partials: vec![0.0; len.div_ceil(NORM_CHUNK)],
        }
    }

    /// Splits `batch` windows of context + 1 tokens into inputs and targets, checking ids,
    /// and makes sure the activation buffers hold `batch` sequences.
    fn load_batch(&mut self, windows: &[u32], batch: usize) -> Result<()> {
        crate::backend::check_batch(&self.cfg, windows, batch)?;
        let t = self.cfg.context;
        if self.acts.as_ref().is_none_or(|a| a.capacity < batch) {
            self.acts = Some(Acts::new(&self.cfg, batch));
        }
        let acts = self.acts.as_mut().expect("allocated above");
        for (s, w) in windows.chunks(t + 1).enumerate() {
            acts.inputs[s * t..(s + 1) * t].copy_from_slice(&w[..t]);
            acts.targets[s * t..(s + 1) * t].copy_from_slice(&w[1..]);
        }
        Ok(())
    }

    /// Forward pass over the loaded batch; leaves the logits in `acts.logits`.
    fn forward(&mut self, batch: usize) {
        let c = &self.cfg;
        let (t, d, ff, v) = (c.context, c.d_model, c.mlp_hidden, c.padded_vocab_size);
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        let n = batch * t;
        let shape = AttnShape { batch, context: t, heads: c.n_head, groups: c.n_query_groups, head_dim: c.head_dim() };
        let lay = &self.layout;
        let p = &self.params;
        let w = |off: usize, len: usize| &p[off..off + len];
        let a = self.acts.as_mut().expect("load_batch allocates");

        ops::embedding_forward(&mut a.blocks[0].x[..n * d], &a.inputs[..n], w(lay.embedding, v * d), d);
        for l in 0..c.n_layer {
            let o = &lay.blocks[l];
            let (cur, rest) = a.blocks.split_at_mut(l + 1);
            let b = &mut cur[l];
            ops::rmsnorm_forward(
                &mut b.xn1[..n * d],
                &mut b.rstd1[..n],
                &b.x[..n * d],
                w(o.attn_norm, d),
                d,
                c.norm_eps,
            );
            ops::linear_forward(&mut b.q[..n * qd], &b.xn1[..n * d], w(o.wq, qd * d), n, d, qd);
            ops::linear_forward(&mut b.k[..n * kvd], &b.xn1[..n * d], w(o.wk, kvd * d), n, d, kvd);
            ops::linear_forward(&mut b.v[..n * kvd], &b.xn1[..n * d], w(o.wv, kvd * d), n, d, kvd);
            ops::rope(&mut b.q[..n * qd], c.n_head, c.head_dim(), t, &self.rope_cos, &self.rope_sin, false);
            ops::rope(&mut b.k[..n * kvd], c.n_query_groups, c.head_dim(), t, &self.rope_cos, &self.rope_sin, false);
            let probs_len = batch * c.n_head * t * t;
            ops::attention_forward(
                &mut b.att[..n * qd],
                &mut b.probs[..probs_len],
                &b.q[..n * qd],
                &b.k[..n * kvd],
                &b.v[..n * kvd],
                shape,
            );
            // xm = x + att · Woᵀ
            b.xm[..n * d].copy_from_slice(&b.x[..n * d]);
            T::gemm(n, d, qd, &b.att[..n * qd], qd, 1, w(o.wo, d * qd), 1, qd, &mut b.xm[..n * d], d, true, true);
            ops::rmsnorm_forward(
                &mut b.xn2[..n * d],
                &mut b.rstd2[..n],
                &b.xm[..n * d],
                w(o.mlp_norm, d),
                d,
                c.norm_eps,
            );
            ops::linear_forward(&mut b.h1[..n * ff], &b.xn2[..n * d], w(o.w1, ff * d), n, d, ff);
            ops::linear_forward(&mut b.h3[..n * ff], &b.xn2[..n * d], w(o.w3, ff * d), n, d, ff);
            ops::swiglu_forward(&mut b.g[..n * ff], &b.h1[..n * ff], &b.h3[..n * ff]);
            // x_next = xm + g · W2ᵀ
            let next = if l + 1 < c.n_layer { &mut rest[0].x } else { &mut a.x_out };
            next[..n * d].copy_from_slice(&b.xm[..n * d]);
            T::gemm(n, d, ff, &b.g[..n * ff], ff, 1, w(o.w2, d * ff), 1, ff, &mut next[..n * d], d, true, true);
        }
        ops::rmsnorm_forward(
            &mut a.xnf[..n * d],
            &mut a.rstdf[..n],
            &a.x_out[..n * d],
            w(lay.final_norm, d),
            d,
            c.norm_eps,
        );
        ops::linear_forward(&mut a.logits[..n * v], &a.xnf[..n * d], w(lay.lm_head, v * d), n, d, v);
    }

    /// Backward pass; expects `acts.logits` to hold the gradient of the loss w.r.t. logits.
    fn backward(&mut self, batch: usize) {
        let c = &self.cfg;
        let (t, d, ff, v) = (c.context, c.d_model, c.mlp_hidden, c.padded_vocab_size);
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        let n = batch * t;
        let shape = AttnShape { batch, context: t, heads: c.n_head, groups: c.n_query_groups, head_dim: c.head_dim() };
        let lay = &self.layout;
        let p = &self.params;
        let gr = &mut self.grads;
        let w = |off: usize, len: usize| &p[off..off + len];
        let a = self.acts.as_mut().expect("forward ran");

        // Output layer and final norm.
        ops::linear_backward(
            &mut a.dxn[..n * d],
            &mut gr[lay.lm_head..lay.lm_head + v * d],
            &a.logits[..n * v],
            &a.xnf[..n * d],
            w(lay.lm_head, v * d),
            n,
            d,
            v,
            false,
        );
        a.dres[..n * d].fill(T::ZERO);
        ops::rmsnorm_backward(
            &mut a.dres[..n * d],
            &mut gr[lay.final_norm..lay.final_norm + d],
            &a.dxn[..n * d],
            &a.x_out[..n * d],
            w(lay.final_norm, d),
            &a.rstdf[..n],
            d,
        );

        for l in (0..c.n_layer).rev() {
            let o = &lay.blocks[l];
            let b = &a.blocks[l];
            // MLP: x_next = xm + g · W2ᵀ; dres is ∂L/∂x_next and passes through to xm.
            ops::linear_backward(
                &mut a.dg[..n * ff],
                &mut gr[o.w2..o.w2 + d * ff],
                &a.dres[..n * d],
                &b.g[..n * ff],
                w(o.w2, d * ff),
                n,
                ff,
                d,
                false,
            );
            ops::swiglu_backward(
                &mut a.dh1[..n * ff],
                &mut a.dh3[..n * ff],
                &a.dg[..n * ff],
                &b.h1[..n * ff],
                &b.h3[..n * ff],
            );
            ops::linear_backward(
                &mut a.dxn[..n * d],
                &mut gr[o.w1..o.w1 + ff * d],
                &a.dh1[..n * ff],
                &b.xn2[..n * d],
                w(o.w1, ff * d),
                n,
                d,
                ff,
                false,
            );
            ops::linear_backward(
                &mut a.dxn[..n * d],
                &mut gr[o.w3..o.w3 + ff * d],
                &a.dh3[..n * ff],
                &b.xn2[..n * d],
                w(o.w3, ff * d),
                n,
                d,
                ff,
                true,
            );
            ops::rmsnorm_backward(
                &mut a.dres[..n * d],
                &mut gr[o.mlp_norm..o.mlp_norm + d],
                &a.dxn[..n * d],
                &b.xm[..n * d],
                w(o.mlp_norm, d),
                &b.rstd2[..n],
                d,
            );
            // Attention: xm = x + att · Woᵀ; dres is now ∂L/∂xm and passes through to x.
            ops::linear_backward(
                &mut a.datt[..n * qd],
                &mut gr[o.wo..o.wo + d * qd],
                &a.dres[..n * d],
                &b.att[..n * qd],
                w(o.wo, d * qd),
                n,
                qd,
                d,
                false,
            );
            let probs_len = batch * c.n_head * t * t;
            ops::attention_backward(
                &mut a.dq[..n * qd],
                &mut a.dk[..n * kvd],
                &mut a.dv[..n * kvd],
                &mut a.dscores,
                &a.datt[..n * qd],
                &b.q[..n * qd],
                &b.k[..n * kvd],
                &b.v[..n * kvd],
                &b.probs[..probs_len],
                shape,
            );
            ops::rope(&mut a.dq[..n * qd], c.n_head, c.head_dim(), t, &self.rope_cos, &self.rope_sin, true);
            ops::rope(&mut a.dk[..n * kvd], c.n_query_groups, c.head_dim(), t, &self.rope_cos, &self.rope_sin, true);
            ops::linear_backward(
                &mut a.dxn[..n * d],
                &mut gr[o.wq..o.wq + qd * d],
                &a.dq[..n * qd],
                &b.xn1[..n * d],
                w(o.wq, qd * d),
                n,
                d,
                qd,
                false,
            );
            ops::linear_backward(
                &mut a.dxn[..n * d],
                &mut gr[o.wk..o.wk + kvd * d],
                &a.dk[..n * kvd],
                &b.xn1[..n * d],
                w(o.wk, kvd * d),
                n,
                d,
                kvd,
                true,
            );
            ops::linear_backward(
                &mut a.dxn[..n * d],
                &mut gr[o.wv..o.wv + kvd * d],
                &a.dv[..n * kvd],
                &b.xn1[..n * d],
                w(o.wv, kvd * d),
                n,
                d,
                kvd,
                true,
            );
            ops::rmsnorm_backward(
                &mut a.dres[..n * d],
                &mut gr[o.attn_norm..o.attn_norm + d],
                &a.dxn[..n * d],
                &b.x[..n * d],
                w(o.attn_norm, d),
                &b.rstd1[..n],
                d,
            );
        }
        ops::embedding_backward(&mut gr[lay.embedding..lay.embedding + v * d], &a.inputs[..n], &a.dres[..n * d], d);
    }

    /// Runs forward and the loss; with `grad_scale`, also backward. Returns the summed loss.
    fn run(&mut self, windows: &[u32], batch: usize, grad_scale: Option<f64>) -> Result<f64> {
        self.load_batch(windows, batch)?;
        self.forward(batch);
        let n = batch * self.cfg.context;
        let v = self.cfg.padded_vocab_size;
        let a = self.acts.as_mut().expect("loaded");
        ops::cross_entropy(&mut a.logits[..n * v], &mut a.losses[..n], &a.targets[..n], v, grad_scale.map(T::from_f64));
        // Summed in order: deterministic.
        let loss = a.losses[..n].iter().sum();
        if grad_scale.is_some() {
            self.backward(batch);
        }
        Ok(loss)
    }
}

impl<T: Float> Backend for CpuBackend<T> {
    fn describe(&self) -> String {
        format!("cpu {}, {} threads", std::any::type_name::<T>(), rayon::current_num_threads())
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn zero_grad(&mut self) -> Result<()> {
        self.grads.par_chunks_mut(NORM_CHUNK).for_each(|c| c.fill(T::ZERO));
        Ok(())
    }

    fn forward_backward(&mut self, windows: &[u32], batch: usize, loss_scale: f64) -> Result<f64> {
        self.run(windows, batch, Some(loss_scale))
    }

    fn loss(&mut self, windows: &[u32], batch: usize) -> Result<f64> {
        self.run(windows, batch, None)
    }

    fn grad_norm(&mut self) -> Result<f64> {
        self.grads
            .par_chunks(NORM_CHUNK)
            .zip(self.norm_partials.par_iter_mut())
            .for_each(|(g, s)| *s = g.iter().map(|&x| x.to_f64() * x.to_f64()).sum());
        Ok(self.norm_partials.iter().sum::<f64>().sqrt())
    }

    fn adamw_step(&mut self, step: u64, lr: f64, hp: &AdamW, grad_scale: f64) -> Result<()> {
        let c = hp.step(step, lr, grad_scale);
        let (b1, b2) = (T::from_f64(c.beta1), T::from_f64(c.beta2));
        let (one_b1, one_b2) = (T::from_f64(1.0 - c.beta1), T::from_f64(1.0 - c.beta2));
        let decay = T::from_f64(c.decay);
        let step_size = T::from_f64(c.step_size);
        let sqrt_bc2 = T::from_f64(c.sqrt_bc2);
        let eps = T::from_f64(c.eps);
        let gs = T::from_f64(c.grad_scale);
        self.params
            .par_chunks_mut(NORM_CHUNK)
            .zip(self.grads.par_chunks(NORM_CHUNK))
            .zip(self.adam_m.par_chunks_mut(NORM_CHUNK).zip(self.adam_v.par_chunks_mut(NORM_CHUNK)))
            .for_each(|((p, g), (m, v))| {
                for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = g * gs;
                    *m = b1 * *m + one_b1 * g;
                    *v = b2 * *v + one_b2 * g * g;
                    // As torch.optim.AdamW: decay first, then the Adam step.
                    *p *= decay;
                    *p -= step_size * *m / (v.sqrt() / sqrt_bc2 + eps);
                }
            });
        Ok(())
    }

    fn read(&self, which: Buffer) -> Result<Vec<f32>> {
        let buf = match which {
            Buffer::Params => &self.params,
            Buffer::Grads => &self.grads,
            Buffer::AdamM => &self.adam_m,
            Buffer::AdamV => &self.adam_v,
        };
        Ok(buf.iter().map(|&x| x.to_f64() as f32).collect())
    }

    fn write(&mut self, which: Buffer, data: &[f32]) -> Result<()> {
        let buf = match which {
            Buffer::Params => &mut self.params,
            Buffer::Grads => &mut self.grads,
            Buffer::AdamM => &mut self.adam_m,
            Buffer::AdamV => &mut self.adam_v,
        };
        if data.len() != buf.len() {
            return Err(Error::Input(format!("{which:?}: {} values for a buffer of {}", data.len(), buf.len())));
        }
        for (b, &x) in buf.iter_mut().zip(data) {
            *b = T::from_f64(x as f64);
        }
        Ok(())
    }
}
