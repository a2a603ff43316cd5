//! The CUDA backend: the CPU backend's forward and backward, op for op, on the GPU.
//!
//! Precision (what the tolerances of the tests against the CPU backend follow from):
//! - fp32: master weights, gradients, AdamW moments, the residual stream, norms' statistics,
//!   the loss, every reduction and every kernel's arithmetic;
//! - bf16: a copy of the weights refreshed by every AdamW step, and the activations that feed
//!   matrix products (normalised inputs, q/k/v, attention output, MLP hidden states, logits)
//!   and the activation gradients that do (dres, dq/dk/dv, dh1/dh3, the logit gradient);
//! - matrix products: bf16 operands with fp32 accumulation (cuBLAS tensor cores).

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DeviceRepr, ValidAsZeroBits};
use half::bf16;
use regmix_model::backend::{AdamW, Backend, Buffer};
use regmix_model::{Config, Layout};

use crate::gemm::{Gemm, Mat, Ty};
use crate::launch::{AdamConsts, Kernels, Ptr, TokenBuckets, RMSNORM_DW_ROWS};
use crate::{Error, Result};
use regmix_model::backend::NORM_CHUNK;

/// Bytes of bf16 logits materialised at a time: the output layer and the loss run over row
/// chunks this size. Smaller chunks stay in L2 (50 MB on an H200) between the product that
/// writes them, the classifier kernel and the two products that read the gradient; larger
/// ones give the products more rows (≈1300 at a 50k vocabulary here). To be tuned on the
/// GPU with scripts/gpu/check-and-bench.sh, which sweeps `REGMIX_LOGIT_CHUNK_MB`.
const LOGIT_CHUNK_BYTES: usize = 128 << 20;

fn logit_chunk_bytes() -> usize {
    std::env::var("REGMIX_LOGIT_CHUNK_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&mb| mb > 0)
        .map_or(LOGIT_CHUNK_BYTES, |mb| mb << 20)
}

/// A device buffer and its address.
struct Buf<T> {
    slice: CudaSlice<T>,
    p: Ptr<T>,
}

fn alloc<T: DeviceRepr + ValidAsZeroBits>(s: &Arc<CudaStream>, len: usize) -> Result<Buf<T>> {
    let slice = s.alloc_zeros::<T>(len.max(1)).map_err(|e| Error::Cuda(format!("allocating {len} elements: {e:?}")))?;
    let addr = slice.device_ptr(s).0;
    Ok(Buf { p: Ptr::new(addr, len), slice })
}

struct BlockActs {
    x: Buf<f32>,
    rstd1: Buf<f32>,
    xn1: Buf<bf16>,
    q: Buf<bf16>,
    k: Buf<bf16>,
    v: Buf<bf16>,
    att: Buf<bf16>,
    lse: Buf<f32>,
    xm: Buf<f32>,
    rstd2: Buf<f32>,
    xn2: Buf<bf16>,
    h1: Buf<bf16>,
    h3: Buf<bf16>,
    g: Buf<bf16>,
}

struct Acts {
    capacity: usize,
    inputs: Buf<u32>,
    targets: Buf<u32>,
    // The inputs grouped by token for the embedding's backward (TokenBuckets, uploaded):
    // distinct tokens [buckets], offsets [buckets + 1], rows [n]; `buckets` of this batch.
    bucket_tokens: Buf<u32>,
    bucket_offsets: Buf<u32>,
    bucket_rows: Buf<u32>,
    buckets: usize,
    blocks: Vec<BlockActs>,
    proj: Buf<f32>, // a matrix product's output before the residual add  [n, d]
    x_out: Buf<f32>,
    rstdf: Buf<f32>,
    xnf: Buf<bf16>,
    logits: Buf<bf16>, // one chunk of rows [chunk, V]
    chunk_rows: usize,
    losses: Buf<f32>,
    dres: Buf<f32>,
    dres_bf16: Buf<bf16>,
    dxn: Buf<f32>,
    dg: Buf<f32>,
    dh1: Buf<bf16>,
    dh3: Buf<bf16>,
    datt: Buf<bf16>,
    dq: Buf<bf16>,
    dk: Buf<bf16>,
    dv: Buf<bf16>,
    dsum: Buf<f32>,
    dw_partials: Buf<f32>, // an RMSNorm's dw per block of RMSNORM_DW_ROWS rows  [ceil(n / rows), d]
}

impl Acts {
    /// Address and size in bytes of every buffer (for poisoning in tests).
    fn regions(&self) -> Vec<(u64, usize)> {
        fn r<T>(b: &Buf<T>) -> (u64, usize) {
            (b.p.addr, b.p.len * std::mem::size_of::<T>())
        }
        let mut v = vec![r(&self.proj), r(&self.x_out), r(&self.rstdf), r(&self.xnf), r(&self.logits), r(&self.losses)];
        v.extend([r(&self.dres), r(&self.dres_bf16), r(&self.dxn), r(&self.dg), r(&self.dh1), r(&self.dh3)]);
        v.extend([r(&self.datt), r(&self.dq), r(&self.dk), r(&self.dv), r(&self.dsum), r(&self.dw_partials)]);
        for b in &self.blocks {
            v.extend([r(&b.x), r(&b.rstd1), r(&b.xn1), r(&b.q), r(&b.k), r(&b.v), r(&b.att), r(&b.lse)]);
            v.extend([r(&b.xm), r(&b.rstd2), r(&b.xn2), r(&b.h1), r(&b.h3), r(&b.g)]);
        }
        v
    }

    fn new(s: &Arc<CudaStream>, c: &Config, capacity: usize) -> Result<Acts> {
        let n = capacity * c.context;
        let (d, ff, qd, kvd) = (c.d_model, c.mlp_hidden, c.q_dim(), c.kv_dim());
        let heads_rows = capacity * c.n_head * c.context;
        let mut blocks = Vec::with_capacity(c.n_layer);
        for _ in 0..c.n_layer {
            blocks.push(BlockActs {
                x: alloc(s, n * d)?,
                rstd1: alloc(s, n)?,
                xn1: alloc(s, n * d)?,
                q: alloc(s, n * qd)?,
                k: alloc(s, n * kvd)?,
                v: alloc(s, n * kvd)?,
                att: alloc(s, n * qd)?,
                lse: alloc(s, heads_rows)?,
                xm: alloc(s, n * d)?,
                rstd2: alloc(s, n)?,
                xn2: alloc(s, n * d)?,
                h1: alloc(s, n * ff)?,
                h3: alloc(s, n * ff)?,
                g: alloc(s, n * ff)?,
            });
        }
        let v = c.padded_vocab_size;
        let chunk_rows = (logit_chunk_bytes() / (2 * v)).clamp(1, n);
        Ok(Acts {
            capacity,
            inputs: alloc(s, n)?,
            targets: alloc(s, n)?,
            bucket_tokens: alloc(s, n)?,
            bucket_offsets: alloc(s, n + 1)?,
            bucket_rows: alloc(s, n)?,
            buckets: 0,
            blocks,
            proj: alloc(s, n * d)?,
            x_out: alloc(s, n * d)?,
            rstdf: alloc(s, n)?,
            xnf: alloc(s, n * d)?,
            logits: alloc(s, chunk_rows * v)?,
            chunk_rows,
            losses: alloc(s, n)?,
            dres: alloc(s, n * d)?,
            dres_bf16: alloc(s, n * d)?,
            dxn: alloc(s, n * d)?,
            dg: alloc(s, n * ff)?,
            dh1: alloc(s, n * ff)?,
            dh3: alloc(s, n * ff)?,
            datt: alloc(s, n * qd)?,
            dq: alloc(s, n * qd)?,
            dk: alloc(s, n * kvd)?,
            dv: alloc(s, n * kvd)?,
            dsum: alloc(s, heads_rows)?,
            dw_partials: alloc(s, n.div_ceil(RMSNORM_DW_ROWS) * d)?,
        })
    }
}

pub struct CudaBackend {
    cfg: Config,
    layout: Layout,
    name: String,
    // Field order is drop order: buffers before the stream and context they belong to.
    params: Buf<f32>,
    params_bf16: Buf<bf16>,
    grads: Buf<f32>,
    adam_m: Buf<f32>,
    adam_v: Buf<f32>,
    rope_cos: Buf<f32>,
    rope_sin: Buf<f32>,
    norm_partials: Buf<f32>,
    acts: Option<Acts>,
    k: Kernels,
    blas: Gemm,
    stream: Arc<CudaStream>,
    _ctx: Arc<CudaContext>,
}

fn bf(addr: u64, ld: usize, trans: bool) -> Mat {
    Mat { addr, ty: Ty::Bf16, ld, trans }
}
fn out(addr: u64, ty: Ty, ld: usize) -> Mat {
    Mat { addr, ty, ld, trans: false }
}

impl CudaBackend {
    /// A model initialised exactly as the CPU backend's (same seed, same values) on GPU
    /// `ordinal`.
    pub fn new(cfg: &Config, seed: u64, ordinal: usize) -> Result<CudaBackend> {
        let layout = Layout::new(cfg);
        let params = regmix_model::init::init_params::<f32>(cfg, &layout, seed);
        Self::with_params(cfg, &params, ordinal)
    }

    pub fn with_params(cfg: &Config, params: &[f32], ordinal: usize) -> Result<CudaBackend> {
        let info = crate::probe()?;
        let ctx = CudaContext::new(ordinal).map_err(|e| Error::Cuda(format!("opening GPU {ordinal}: {e:?}")))?;
        // SAFETY: this backend uses a single stream, so cudarc's cross-stream events are not
        // needed, and kernels receive raw addresses that cudarc could not track anyway.
        unsafe { ctx.disable_event_tracking() };
        // A stream of its own (not the legacy default stream), so several backends, one per
        // proxy, can share a GPU without serialising on stream 0.
        let stream = ctx.new_stream().map_err(cuda)?;
        let (major, minor) = ctx.compute_capability().map_err(|e| Error::Cuda(format!("{e:?}")))?;
        let arch = crate::compile::arch_name(major, minor);
        let k = Kernels::load(&ctx, arch, cfg.head_dim())?;
        let blas = Gemm::new(stream.clone())?;
        let layout = Layout::new(cfg);
        if params.len() != layout.len() {
            return Err(Error::Shape(format!("{} parameters for a layout of {}", params.len(), layout.len())));
        }
        let len = layout.len();
        let (cos, sin) = regmix_model::cpu::ops::rope_tables::<f32>(cfg.context, cfg.head_dim(), cfg.rope_theta);
        let mut b = CudaBackend {
            cfg: cfg.clone(),
            name: format!(
                "cuda {} ({arch}), bf16 matmuls, fp32 master weights",
                info.devices.get(ordinal).map_or("?", |d| d.name.as_str())
            ),
            params: alloc(&stream, len)?,
            params_bf16: alloc(&stream, len)?,
            grads: alloc(&stream, len)?,
            adam_m: alloc(&stream, len)?,
            adam_v: alloc(&stream, len)?,
            rope_cos: alloc(&stream, cos.len())?,
            rope_sin: alloc(&stream, sin.len())?,
            norm_partials: alloc(&stream, len.div_ceil(NORM_CHUNK))?,
            acts: None,
            layout,
            k,
            blas,
            stream,
            _ctx: ctx,
        };
        b.upload(Buffer::Params, params)?;
        let s = b.stream.clone();
        s.memcpy_htod(&cos, &mut b.rope_cos.slice).map_err(cuda)?;
        s.memcpy_htod(&sin, &mut b.rope_sin.slice).map_err(cuda)?;
        Ok(b)
    }

    fn buf(&self, which: Buffer) -> &Buf<f32> {
        match which {
            Buffer::Params => &self.params,
            Buffer::Grads => &self.grads,
            Buffer::AdamM => &self.adam_m,
            Buffer::AdamV => &self.adam_v,
        }
    }

    fn upload(&mut self, which: Buffer, data: &[f32]) -> Result<()> {
        if data.len() != self.layout.len() {
            return Err(Error::Shape(format!(
                "{which:?}: {} values for a buffer of {}",
                data.len(),
                self.layout.len()
            )));
        }
        let s = self.stream.clone();
        let dst = match which {
            Buffer::Params => &mut self.params,
            Buffer::Grads => &mut self.grads,
            Buffer::AdamM => &mut self.adam_m,
            Buffer::AdamV => &mut self.adam_v,
        };
        s.memcpy_htod(data, &mut dst.slice).map_err(cuda)?;
        if which == Buffer::Params {
            self.k.cast(&s, self.params_bf16.p, self.params.p)?;
        }
        Ok(())
    }

    /// The activation buffers, reallocated when `batch` sequences do not fit.
    fn ensure_capacity(&mut self, batch: usize) -> Result<&Acts> {
        if self.acts.as_ref().is_none_or(|a| a.capacity < batch) {
            self.acts = None; // free the smaller set first
            self.acts = Some(Acts::new(&self.stream, &self.cfg, batch)?);
        }
        Ok(self.acts.as_ref().expect("allocated above"))
    }

    /// Fills every activation and scratch buffer (allocating them for `batch` sequences) with
    /// all-ones bytes, which are NaN in fp32 and bf16: an element a kernel should have
    /// written but did not then poisons the loss or a gradient. For tests.
    pub fn poison_activations(&mut self, batch: usize) -> Result<()> {
        let a = self.ensure_capacity(batch)?;
        for (addr, bytes) in a.regions() {
            // SAFETY: each region is a live allocation of this backend on this stream.
            unsafe { cudarc::driver::result::memset_d8_async(addr, 0xff, bytes, self.stream.cu_stream()) }
                .map_err(cuda)?;
        }
        Ok(())
    }

    /// Checks the batch as the CPU backend does and copies inputs and targets to the device,
    /// and with `backward` the inputs grouped by token for the embedding's gradient.
    fn load_batch(&mut self, windows: &[u32], batch: usize, backward: bool) -> Result<()> {
        regmix_model::backend::check_batch(&self.cfg, windows, batch).map_err(|e| match e {
            regmix_model::Error::Input(m) => Error::Input(m),
            e => Error::Input(e.to_string()),
        })?;
        let t = self.cfg.context;
        self.ensure_capacity(batch)?;
        let n = batch * t;
        let (mut inputs, mut targets) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for w in windows.chunks(t + 1) {
            inputs.extend_from_slice(&w[..t]);
            targets.extend_from_slice(&w[1..]);
        }
        let s = self.stream.clone();
        let a = self.acts.as_mut().expect("allocated above");
        s.memcpy_htod(&inputs, &mut a.inputs.slice.slice_mut(0..n)).map_err(cuda)?;
        s.memcpy_htod(&targets, &mut a.targets.slice.slice_mut(0..n)).map_err(cuda)?;
        if backward {
            let b = TokenBuckets::new(&inputs, self.cfg.vocab_size);
            let m = b.tokens.len();
            s.memcpy_htod(&b.tokens, &mut a.bucket_tokens.slice.slice_mut(0..m)).map_err(cuda)?;
            s.memcpy_htod(&b.offsets, &mut a.bucket_offsets.slice.slice_mut(0..m + 1)).map_err(cuda)?;
            s.memcpy_htod(&b.rows, &mut a.bucket_rows.slice.slice_mut(0..n)).map_err(cuda)?;
            a.buckets = m;
        }
        Ok(())
    }

    /// Forward pass up to the final norm's output `xnf`.
    fn forward(&mut self, batch: usize) -> Result<()> {
        let c = &self.cfg;
        let (t, d, ff, v) = (c.context, c.d_model, c.mlp_hidden, c.padded_vocab_size);
        let (qd, kvd, hd) = (c.q_dim(), c.kv_dim(), c.head_dim());
        let n = batch * t;
        let (s, k, lay) = (&self.stream, &self.k, &self.layout);
        let p32 = self.params.p;
        let w16 = |off: usize| self.params_bf16.p.addr + (off * 2) as u64;
        let a = self.acts.as_ref().expect("load_batch allocates");

        k.embedding_forward(s, a.blocks[0].x.p, a.inputs.p, p32.at(lay.embedding, v * d), n, d)?;
        for l in 0..c.n_layer {
            let (o, b) = (&lay.blocks[l], &a.blocks[l]);
            // x_l = xm_{l-1} + proj (the previous block's MLP output), then the attention norm.
            let (x_in, proj) = if l == 0 { (b.x.p, None) } else { (a.blocks[l - 1].xm.p, Some(a.proj.p)) };
            k.rmsnorm_forward(s, b.x.p, b.xn1.p, b.rstd1.p, x_in, proj, p32.at(o.attn_norm, d), n, d, c.norm_eps)?;
            self.blas.gemm(
                n,
                qd,
                d,
                bf(b.xn1.p.addr, d, false),
                bf(w16(o.wq), d, true),
                out(b.q.p.addr, Ty::Bf16, qd),
                0.0,
            )?;
            self.blas.gemm(
                n,
                kvd,
                d,
                bf(b.xn1.p.addr, d, false),
                bf(w16(o.wk), d, true),
                out(b.k.p.addr, Ty::Bf16, kvd),
                0.0,
            )?;
            self.blas.gemm(
                n,
                kvd,
                d,
                bf(b.xn1.p.addr, d, false),
                bf(w16(o.wv), d, true),
                out(b.v.p.addr, Ty::Bf16, kvd),
                0.0,
            )?;
            k.rope(s, b.q.p, self.rope_cos.p, self.rope_sin.p, n, c.n_head, hd, t, false)?;
            k.rope(s, b.k.p, self.rope_cos.p, self.rope_sin.p, n, c.n_query_groups, hd, t, false)?;
            k.attention_forward(s, b.att.p, b.lse.p, b.q.p, b.k.p, b.v.p, batch, t, c.n_head, c.n_query_groups)?;
            // xm = x + att · Woᵀ, then the MLP norm.
            self.blas.gemm(
                n,
                d,
                qd,
                bf(b.att.p.addr, qd, false),
                bf(w16(o.wo), qd, true),
                out(a.proj.p.addr, Ty::F32, d),
                0.0,
            )?;
            k.rmsnorm_forward(
                s,
                b.xm.p,
                b.xn2.p,
                b.rstd2.p,
                b.x.p,
                Some(a.proj.p),
                p32.at(o.mlp_norm, d),
                n,
                d,
                c.norm_eps,
            )?;
            self.blas.gemm(
                n,
                ff,
                d,
                bf(b.xn2.p.addr, d, false),
                bf(w16(o.w1), d, true),
                out(b.h1.p.addr, Ty::Bf16, ff),
                0.0,
            )?;
            self.blas.gemm(
                n,
                ff,
                d,
                bf(b.xn2.p.addr, d, false),
                bf(w16(o.w3), d, true),
                out(b.h3.p.addr, Ty::Bf16, ff),
                0.0,
            )?;
            k.swiglu_forward(s, b.g.p, b.h1.p, b.h3.p, n * ff)?;
            self.blas.gemm(
                n,
                d,
                ff,
                bf(b.g.p.addr, ff, false),
                bf(w16(o.w2), ff, true),
                out(a.proj.p.addr, Ty::F32, d),
                0.0,
            )?;
        }
        let last = &a.blocks[c.n_layer - 1];
        k.rmsnorm_forward(
            s,
            a.x_out.p,
            a.xnf.p,
            a.rstdf.p,
            last.xm.p,
            Some(a.proj.p),
            p32.at(lay.final_norm, d),
            n,
            d,
            c.norm_eps,
        )?;
        Ok(())
    }

    /// The output layer and the loss, chunk by chunk of rows; with `grad_scale`, also the
    /// gradient of the output layer's weights and of `xnf` (into `dxn`).
    fn classifier(&mut self, batch: usize, grad_scale: Option<f64>) -> Result<()> {
        let c = &self.cfg;
        let (d, v) = (c.d_model, c.padded_vocab_size);
        let n = batch * c.context;
        let (s, k, lay) = (&self.stream, &self.k, &self.layout);
        let a = self.acts.as_ref().expect("forward ran");
        let w16 = self.params_bf16.p.addr + (lay.lm_head * 2) as u64;
        let dw = self.grads.p.at(lay.lm_head, v * d).addr;
        let mut r0 = 0;
        while r0 < n {
            let rows = a.chunk_rows.min(n - r0);
            let xnf = a.xnf.p.at(r0 * d, rows * d).addr;
            self.blas.gemm(rows, v, d, bf(xnf, d, false), bf(w16, d, true), out(a.logits.p.addr, Ty::Bf16, v), 0.0)?;
            k.classifier(s, a.logits.p, a.losses.p.at(r0, rows), a.targets.p.at(r0, rows), rows, v, grad_scale)?;
            if grad_scale.is_some() {
                // dxnf = dlogits · W;  dW += dlogitsᵀ · xnf.
                self.blas.gemm(
                    rows,
                    d,
                    v,
                    bf(a.logits.p.addr, v, false),
                    bf(w16, d, false),
                    out(a.dxn.p.at(r0 * d, rows * d).addr, Ty::F32, d),
                    0.0,
                )?;
                self.blas.gemm(
                    v,
                    d,
                    rows,
                    bf(a.logits.p.addr, v, true),
                    bf(xnf, d, false),
                    out(dw, Ty::F32, d),
                    1.0,
                )?;
            }
            r0 += rows;
        }
        Ok(())
    }

    /// Backward pass from `dxn` = ∂L/∂xnf (left there by [`Self::classifier`]).
    fn backward(&mut self, batch: usize) -> Result<()> {
        let c = &self.cfg;
        let (t, d, ff, v) = (c.context, c.d_model, c.mlp_hidden, c.padded_vocab_size);
        let (qd, kvd, hd) = (c.q_dim(), c.kv_dim(), c.head_dim());
        let n = batch * t;
        let (s, k, lay) = (&self.stream, &self.k, &self.layout);
        let (p32, g32) = (self.params.p, self.grads.p);
        let w16 = |off: usize| self.params_bf16.p.addr + (off * 2) as u64;
        let gw = |off: usize| g32.addr + (off * 4) as u64;
        let a = self.acts.as_ref().expect("forward ran");

        // SAFETY: dres holds at least n·d fp32 elements, allocated on this stream; zero bytes
        // are 0.0f.
        unsafe { cudarc::driver::result::memset_d8_async(a.dres.p.addr, 0, n * d * 4, s.cu_stream()) }.map_err(cuda)?;
        // Each norm's dx into dres, its dw in fixed-order partials, then added into dw.
        let norm_backward = |dw: Ptr<f32>, x: Ptr<f32>, w: Ptr<f32>, rstd: Ptr<f32>| -> Result<()> {
            k.rmsnorm_backward(s, a.dres.p, a.dres_bf16.p, a.dw_partials.p, a.dxn.p, x, w, rstd, n, d)?;
            k.rmsnorm_backward_dw(s, dw, a.dw_partials.p, n, d)
        };
        norm_backward(g32.at(lay.final_norm, d), a.x_out.p, p32.at(lay.final_norm, d), a.rstdf.p)?;
        for l in (0..c.n_layer).rev() {
            let (o, b) = (&lay.blocks[l], &a.blocks[l]);
            // MLP: x_next = xm + g · W2ᵀ.
            self.blas.gemm(
                n,
                ff,
                d,
                bf(a.dres_bf16.p.addr, d, false),
                bf(w16(o.w2), ff, false),
                out(a.dg.p.addr, Ty::F32, ff),
                0.0,
            )?;
            self.blas.gemm(
                d,
                ff,
                n,
                bf(a.dres_bf16.p.addr, d, true),
                bf(b.g.p.addr, ff, false),
                out(gw(o.w2), Ty::F32, ff),
                1.0,
            )?;
            k.swiglu_backward(s, a.dh1.p, a.dh3.p, a.dg.p, b.h1.p, b.h3.p, n * ff)?;
            self.blas.gemm(
                n,
                d,
                ff,
                bf(a.dh1.p.addr, ff, false),
                bf(w16(o.w1), d, false),
                out(a.dxn.p.addr, Ty::F32, d),
                0.0,
            )?;
            self.blas.gemm(
                n,
                d,
                ff,
                bf(a.dh3.p.addr, ff, false),
                bf(w16(o.w3), d, false),
                out(a.dxn.p.addr, Ty::F32, d),
                1.0,
            )?;
            self.blas.gemm(
                ff,
                d,
                n,
                bf(a.dh1.p.addr, ff, true),
                bf(b.xn2.p.addr, d, false),
                out(gw(o.w1), Ty::F32, d),
                1.0,
            )?;
            self.blas.gemm(
                ff,
                d,
                n,
                bf(a.dh3.p.addr, ff, true),
                bf(b.xn2.p.addr, d, false),
                out(gw(o.w3), Ty::F32, d),
                1.0,
            )?;
            norm_backward(g32.at(o.mlp_norm, d), b.xm.p, p32.at(o.mlp_norm, d), b.rstd2.p)?;
            // Attention: xm = x + att · Woᵀ.
            self.blas.gemm(
                n,
                qd,
                d,
                bf(a.dres_bf16.p.addr, d, false),
                bf(w16(o.wo), qd, false),
                out(a.datt.p.addr, Ty::Bf16, qd),
                0.0,
            )?;
            self.blas.gemm(
                d,
                qd,
                n,
                bf(a.dres_bf16.p.addr, d, true),
                bf(b.att.p.addr, qd, false),
                out(gw(o.wo), Ty::F32, qd),
                1.0,
            )?;
            k.attention_backward_preprocess(s, a.dsum.p, a.datt.p, b.att.p, batch, t, c.n_head)?;
            k.attention_backward_dkv(
                s,
                a.dk.p,
                a.dv.p,
                a.datt.p,
                b.lse.p,
                a.dsum.p,
                b.q.p,
                b.k.p,
                b.v.p,
                batch,
                t,
                c.n_head,
                c.n_query_groups,
            )?;
            k.attention_backward_dq(
                s,
                a.dq.p,
                a.datt.p,
                b.lse.p,
                a.dsum.p,
                b.q.p,
                b.k.p,
                b.v.p,
                batch,
                t,
                c.n_head,
                c.n_query_groups,
            )?;
            k.rope(s, a.dq.p, self.rope_cos.p, self.rope_sin.p, n, c.n_head, hd, t, true)?;
            k.rope(s, a.dk.p, self.rope_cos.p, self.rope_sin.p, n, c.n_query_groups, hd, t, true)?;
            self.blas.gemm(
                n,
                d,
                qd,
                bf(a.dq.p.addr, qd, false),
                bf(w16(o.wq), d, false),
                out(a.dxn.p.addr, Ty::F32, d),
                0.0,
            )?;
            self.blas.gemm(
                n,
                d,
                kvd,
                bf(a.dk.p.addr, kvd, false),
                bf(w16(o.wk), d, false),
                out(a.dxn.p.addr, Ty::F32, d),
                1.0,
            )?;
            self.blas.gemm(
                n,
                d,
                kvd,
                bf(a.dv.p.addr, kvd, false),
                bf(w16(o.wv), d, false),
                out(a.dxn.p.addr, Ty::F32, d),
                1.0,
            )?;
            self.blas.gemm(
                qd,
                d,
                n,
                bf(a.dq.p.addr, qd, true),
                bf(b.xn1.p.addr, d, false),
                out(gw(o.wq), Ty::F32, d),
                1.0,
            )?;
            self.blas.gemm(
                kvd,
                d,
                n,
                bf(a.dk.p.addr, kvd, true),
                bf(b.xn1.p.addr, d, false),
                out(gw(o.wk), Ty::F32, d),
                1.0,
            )?;
            self.blas.gemm(
                kvd,
                d,
                n,
                bf(a.dv.p.addr, kvd, true),
                bf(b.xn1.p.addr, d, false),
                out(gw(o.wv), Ty::F32, d),
                1.0,
            )?;
            norm_backward(g32.at(o.attn_norm, d), b.x.p, p32.at(o.attn_norm, d), b.rstd1.p)?;
        }
        k.embedding_backward(
            s,
            g32.at(lay.embedding, v * d),
            a.bucket_tokens.p,
            a.bucket_offsets.p,
            a.bucket_rows.p,
            a.dres.p,
            a.buckets,
            n,
            d,
        )?;
        Ok(())
    }

    fn run(&mut self, windows: &[u32], batch: usize, grad_scale: Option<f64>) -> Result<f64> {
        self.load_batch(windows, batch, grad_scale.is_some())?;
        self.forward(batch)?;
        self.classifier(batch, grad_scale)?;
        if grad_scale.is_some() {
            self.backward(batch)?;
        }
        let n = batch * self.cfg.context;
        let a = self.acts.as_ref().expect("loaded");
        let losses = self.stream.clone_dtoh(&a.losses.slice.slice(0..n)).map_err(cuda)?;
        // Summed in order on the host, in f64: deterministic.
        Ok(losses.iter().map(|&x| x as f64).sum())
    }
}

fn cuda(e: cudarc::driver::DriverError) -> Error {
    Error::Cuda(format!("{e:?}"))
}

fn model_err(e: Error) -> regmix_model::Error {
    regmix_model::Error::Backend { backend: "cuda".into(), message: e.to_string() }
}

impl Backend for CudaBackend {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn zero_grad(&mut self) -> regmix_model::Result<()> {
        let s = self.stream.clone();
        s.memset_zeros(&mut self.grads.slice).map_err(cuda).map_err(model_err)
    }

    fn forward_backward(&mut self, windows: &[u32], batch: usize, loss_scale: f64) -> regmix_model::Result<f64> {
        self.run(windows, batch, Some(loss_scale)).map_err(|e| match e {
            Error::Input(m) => regmix_model::Error::Input(m),
            e => model_err(e),
        })
    }

    fn loss(&mut self, windows: &[u32], batch: usize) -> regmix_model::Result<f64> {
        self.run(windows, batch, None).map_err(|e| match e {
            Error::Input(m) => regmix_model::Error::Input(m),
            e => model_err(e),
        })
    }

    fn grad_norm(&mut self) -> regmix_model::Result<f64> {
        let s = self.stream.clone();
        self.k.grad_norm(&s, self.norm_partials.p, self.grads.p).map_err(model_err)?;
        let partials = s.clone_dtoh(&self.norm_partials.slice).map_err(cuda).map_err(model_err)?;
        Ok(partials.iter().map(|&x| x as f64).sum::<f64>().sqrt())
    }

    fn adamw_step(&mut self, step: u64, lr: f64, hp: &AdamW, grad_scale: f64) -> regmix_model::Result<()> {
        let consts = AdamConsts::from(hp.step(step, lr, grad_scale));
        let s = self.stream.clone();
        self.k
            .adamw(&s, self.params.p, self.params_bf16.p, self.grads.p, self.adam_m.p, self.adam_v.p, &consts)
            .map_err(model_err)
    }

    fn read(&self, which: Buffer) -> regmix_model::Result<Vec<f32>> {
        self.stream.clone_dtoh(&self.buf(which).slice.slice(0..self.layout.len())).map_err(cuda).map_err(model_err)
    }

    fn write(&mut self, which: Buffer, data: &[f32]) -> regmix_model::Result<()> {
        self.upload(which, data).map_err(model_err)
    }
}
