//! One launch wrapper per kernel, in the order of `kernels/`, each in the same steps:
//! check shapes, build the launch configuration, push the arguments, launch, check the error.
//! Buffers travel as [`Ptr`]s: a device address with the number of elements behind it.

use std::marker::PhantomData;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use half::bf16;

use regmix_model::AdamStep;

use crate::compile::{compile_cached, compile_ptx_cached, Image, KERNEL_FILES};
use crate::{Error, Result};

/// A typed device address and the number of elements it may be used for.
pub struct Ptr<T> {
    pub addr: u64,
    pub len: usize,
    _t: PhantomData<T>,
}

impl<T> Clone for Ptr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Ptr<T> {}

impl<T> Ptr<T> {
    pub fn new(addr: u64, len: usize) -> Self {
        Ptr { addr, len, _t: PhantomData }
    }
    /// Elements `[offset, offset + len)`; panics outside the buffer (a programming error).
    pub fn at(self, offset: usize, len: usize) -> Self {
        assert!(offset + len <= self.len, "device view {offset}+{len} outside a buffer of {}", self.len);
        Ptr::new(self.addr + (offset * std::mem::size_of::<T>()) as u64, len)
    }
}

/// Null for the optional arguments of a kernel.
pub const NULL: u64 = 0;

fn need(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Shape(what()))
    }
}

fn grid_1d(elements: usize, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((elements as u64).div_ceil(block as u64) as u32, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// With `REGMIX_CUDA_SYNC=1`, every launch is followed by a synchronisation, so an error
/// inside a kernel (an illegal address, say) is reported with that kernel's name instead of at
/// the next copy. For debugging on a GPU; off by default.
pub fn sync_after_launch() -> bool {
    static SYNC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SYNC.get_or_init(|| std::env::var("REGMIX_CUDA_SYNC").is_ok_and(|v| v == "1"))
}

type LaunchResult =
    std::result::Result<Option<(cudarc::driver::CudaEvent, cudarc::driver::CudaEvent)>, cudarc::driver::DriverError>;

fn launched(s: &Arc<CudaStream>, name: &str, r: LaunchResult) -> Result<()> {
    r.map_err(|e| Error::Cuda(format!("launching {name}: {e:?}")))?;
    if sync_after_launch() {
        s.synchronize().map_err(|e| Error::Cuda(format!("{name} failed: {e:?}")))?;
    }
    Ok(())
}

/// Threads per row-wise block (8 warps, one row each).
const ROWS_PER_BLOCK: usize = 8;
/// Rows per block of `rmsnorm_backward_f32`, and so per partial sum of dw: 8 per warp.
/// 65,536 rows (a regmix-1m micro-batch) make 1024 blocks, about one wave of an H200's 132
/// SMs at 8 blocks each, and 1024 partials of d for `rmsnorm_backward_dw_f32` to add.
pub const RMSNORM_DW_ROWS: usize = 64;
/// Query/key rows per attention block: `TILE` in attention.cu, which gets it from here.
use crate::compile::ATTN_TILE;
/// Elements per block of the gradient-norm reduction: the CPU backend's chunks.
pub use regmix_model::backend::NORM_CHUNK;

/// Every function [`Kernels`] loads: `(field, file, extern "C" name)`, looked up by name, so
/// the table's order means nothing. The attention entries are those for `head_dim`
/// (`attention_forward_bf16_hd32` …).
pub fn function_names(head_dim: usize) -> Vec<(&'static str, &'static str, String)> {
    let plain = |field: &'static str, file: &'static str, name: &str| (field, file, name.to_string());
    vec![
        plain("embedding_forward", "embedding.cu", "embedding_forward_f32"),
        plain("embedding_backward", "embedding.cu", "embedding_backward_f32"),
        plain("rmsnorm_forward", "rmsnorm.cu", "rmsnorm_forward_bf16"),
        plain("rmsnorm_backward", "rmsnorm.cu", "rmsnorm_backward_f32"),
        plain("rmsnorm_backward_dw", "rmsnorm.cu", "rmsnorm_backward_dw_f32"),
        plain("rope_forward", "rope.cu", "rope_forward_bf16"),
        plain("rope_backward", "rope.cu", "rope_backward_bf16"),
        ("attention_forward", "attention.cu", format!("attention_forward_bf16_hd{head_dim}")),
        plain("attention_backward_preprocess", "attention.cu", "attention_backward_preprocess_bf16"),
        ("attention_backward_dkv", "attention.cu", format!("attention_backward_dkv_bf16_hd{head_dim}")),
        ("attention_backward_dq", "attention.cu", format!("attention_backward_dq_bf16_hd{head_dim}")),
        plain("swiglu_forward", "swiglu.cu", "swiglu_forward_bf16"),
        plain("swiglu_backward", "swiglu.cu", "swiglu_backward_bf16"),
        plain("classifier", "classifier.cu", "classifier_forward_backward_bf16"),
        plain("adamw", "adamw.cu", "adamw_step_f32"),
        plain("grad_norm", "grad_norm.cu", "grad_norm_forward_f32"),
        plain("cast", "cast.cu", "cast_forward_f32_bf16"),
    ]
}

/// Head sizes the attention kernels are instantiated for.
pub const HEAD_DIMS: &[usize] = &[16, 32, 64, 96, 128];

/// Every kernel, loaded from the modules NVRTC built for this device.
pub struct Kernels {
    pub head_dim: usize,
    embedding_forward: CudaFunction,
    embedding_backward: CudaFunction,
    rmsnorm_forward: CudaFunction,
    rmsnorm_backward: CudaFunction,
    rmsnorm_backward_dw: CudaFunction,
    rope_forward: CudaFunction,
    rope_backward: CudaFunction,
    attention_forward: CudaFunction,
    attention_backward_preprocess: CudaFunction,
    attention_backward_dkv: CudaFunction,
    attention_backward_dq: CudaFunction,
    swiglu_forward: CudaFunction,
    swiglu_backward: CudaFunction,
    classifier: CudaFunction,
    adamw: CudaFunction,
    grad_norm: CudaFunction,
    cast: CudaFunction,
}

impl Kernels {
    /// Compiles (or reads from the cache) every kernel file for `arch` and loads the
    /// functions the model needs; attention is instantiated per head size.
    pub fn load(ctx: &Arc<CudaContext>, arch: &'static str, head_dim: usize) -> Result<Kernels> {
        if !HEAD_DIMS.contains(&head_dim) {
            return Err(Error::Unsupported(format!(
                "head size {head_dim}: the attention kernels are built for 16, 32, 64, 96 and 128"
            )));
        }
        let include = crate::compile::include_dir()?;
        let mut modules = std::collections::HashMap::new();
        for (file, src) in KERNEL_FILES {
            let image = compile_cached(file, src, arch, &include)?;
            let module = match (ctx.load_module(image.to_module()), &image) {
                (Ok(m), _) => m,
                (Err(e), Image::Cubin(_)) => {
                    log::warn!("kernels/{file}: the driver refused the cubin for {arch} ({e:?}); loading PTX instead");
                    let ptx = compile_ptx_cached(file, src, arch, &include)?;
                    ctx.load_module(ptx.to_module())
                        .map_err(|e| Error::Cuda(format!("loading kernels/{file} as PTX: {e:?}")))?
                }
                (Err(e), Image::Ptx(_)) => return Err(Error::Cuda(format!("loading kernels/{file}: {e:?}"))),
            };
            modules.insert(*file, module);
        }
        let mut by_field: std::collections::HashMap<&str, CudaFunction> = std::collections::HashMap::new();
        for (field, file, name) in function_names(head_dim) {
            let f = modules[file]
                .load_function(&name)
                .map_err(|e| Error::Cuda(format!("kernels/{file}: no function {name}: {e:?}")))?;
            by_field.insert(field, f);
        }
        let mut f = |field: &str| {
            by_field.remove(field).unwrap_or_else(|| panic!("function_names has no entry for Kernels::{field}"))
        };
        Ok(Kernels {
            head_dim,
            embedding_forward: f("embedding_forward"),
            embedding_backward: f("embedding_backward"),
            rmsnorm_forward: f("rmsnorm_forward"),
            rmsnorm_backward: f("rmsnorm_backward"),
            rmsnorm_backward_dw: f("rmsnorm_backward_dw"),
            rope_forward: f("rope_forward"),
            rope_backward: f("rope_backward"),
            attention_forward: f("attention_forward"),
            attention_backward_preprocess: f("attention_backward_preprocess"),
            attention_backward_dkv: f("attention_backward_dkv"),
            attention_backward_dq: f("attention_backward_dq"),
            swiglu_forward: f("swiglu_forward"),
            swiglu_backward: f("swiglu_backward"),
            classifier: f("classifier"),
            adamw: f("adamw"),
            grad_norm: f("grad_norm"),
            cast: f("cast"),
        })
    }

    /// `out[i, :] = table[tokens[i], :]`.
    pub fn embedding_forward(
        &self,
        s: &Arc<CudaStream>,
        out: Ptr<f32>,
        tokens: Ptr<u32>,
        table: Ptr<f32>,
        n: usize,
        d: usize,
    ) -> Result<()> {
        need(out.len >= n * d && tokens.len >= n && table.len % d == 0, || {
            format!("embedding_forward: out {} tokens {} table {} for n {n} d {d}", out.len, tokens.len, table.len)
        })?;
        let cfg = grid_1d(n * d, 256);
        let (n, d) = (n as i32, d as i32);
        let mut b = s.launch_builder(&self.embedding_forward);
        b.arg(&out.addr).arg(&tokens.addr).arg(&table.addr).arg(&n).arg(&d);
        // SAFETY: the argument list matches embedding_forward_f32's signature; the shapes
        // were checked above, and token ids were checked against the vocabulary on the host.
        launched(s, "embedding_forward_f32", unsafe { b.launch(cfg) })
    }

    /// `dtable[tokens[i], :] += dout[i, :]`, the rows of each token added in ascending order
    /// (the same bits every run): `buckets` is [`TokenBuckets`] of the `n` tokens, uploaded.
    #[allow(clippy::too_many_arguments)]
    pub fn embedding_backward(
        &self,
        s: &Arc<CudaStream>,
        dtable: Ptr<f32>,
        bucket_tokens: Ptr<u32>,
        bucket_offsets: Ptr<u32>,
        bucket_rows: Ptr<u32>,
        dout: Ptr<f32>,
        buckets: usize,
        n: usize,
        d: usize,
    ) -> Result<()> {
        need(
            dout.len >= n * d
                && bucket_tokens.len >= buckets
                && bucket_offsets.len > buckets
                && bucket_rows.len >= n
                && dtable.len.is_multiple_of(d)
                && buckets <= n,
            || {
                format!("embedding_backward: dout {} buckets {buckets} ({} tokens, {} offsets, {} rows) dtable {} for n {n} d {d}", dout.len, bucket_tokens.len, bucket_offsets.len, bucket_rows.len, dtable.len)
            },
        )?;
        if buckets == 0 {
            return Ok(()); // no rows: nothing to add (a grid of 0 blocks is a launch error)
        }
        // Threads own columns; a block no wider than d (rounded up to a warp) when d is small.
        let block = d.next_multiple_of(32).min(256);
        let cfg = LaunchConfig {
            grid_dim: (buckets as u32, d.div_ceil(block) as u32, 1),
            block_dim: (block as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let d = d as i32;
        let mut b = s.launch_builder(&self.embedding_backward);
        b.arg(&dtable.addr)
            .arg(&bucket_tokens.addr)
            .arg(&bucket_offsets.addr)
            .arg(&bucket_rows.addr)
            .arg(&dout.addr)
            .arg(&d);
        // SAFETY: matches embedding_backward_f32's signature; shapes checked above. The kernel
        // reads offsets [0, buckets], rows below offsets[buckets] and writes rows of dtable
        // named by bucket_tokens: TokenBuckets::new makes offsets ascending up to n, rows < n
        // and tokens < the vocabulary (checked on the host when the batch was loaded), each
        // token once, so no two threads write the same element.
        launched(s, "embedding_backward_f32", unsafe { b.launch(cfg) })
    }

    /// `x_out = x_in (+ proj)`, `out = rmsnorm(x_out) · w`, `rstd` kept for backward.
    #[allow(clippy::too_many_arguments)]
    pub fn rmsnorm_forward(
        &self,
        s: &Arc<CudaStream>,
        x_out: Ptr<f32>,
        out: Ptr<bf16>,
        rstd: Ptr<f32>,
        x_in: Ptr<f32>,
        proj: Option<Ptr<f32>>,
        w: Ptr<f32>,
        n: usize,
        d: usize,
        eps: f64,
    ) -> Result<()> {
        need(
            x_out.len >= n * d
                && out.len >= n * d
                && rstd.len >= n
                && x_in.len >= n * d
                && proj.is_none_or(|p| p.len >= n * d)
                && w.len == d,
            || format!("rmsnorm_forward: buffers too small for n {n} d {d}"),
        )?;
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(ROWS_PER_BLOCK) as u32, 1, 1),
            block_dim: ((ROWS_PER_BLOCK * 32) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (n, d, eps, proj) = (n as i32, d as i32, eps as f32, proj.map_or(NULL, |p| p.addr));
        let mut b = s.launch_builder(&self.rmsnorm_forward);
        b.arg(&x_out.addr)
            .arg(&out.addr)
            .arg(&rstd.addr)
            .arg(&x_in.addr)
            .arg(&proj)
            .arg(&w.addr)
            .arg(&n)
            .arg(&d)
            .arg(&eps);
        // SAFETY: matches rmsnorm_forward_bf16's signature; shapes checked above; proj may be
        // null (the kernel tests it); x_out may alias x_in (each element is read, then written,
        // by the same thread).
        launched(s, "rmsnorm_forward_bf16", unsafe { b.launch(cfg) })
    }

    /// `dres += ∂L/∂x` (also written as bf16) and each block's share of ∂L/∂w into
    /// `dw_partials` (`[n / RMSNORM_DW_ROWS rounded up, d]`), which
    /// [`Self::rmsnorm_backward_dw`] then adds into dw.
    #[allow(clippy::too_many_arguments)]
    pub fn rmsnorm_backward(
        &self,
        s: &Arc<CudaStream>,
        dres: Ptr<f32>,
        dres_bf16: Ptr<bf16>,
        dw_partials: Ptr<f32>,
        dy: Ptr<f32>,
        x: Ptr<f32>,
        w: Ptr<f32>,
        rstd: Ptr<f32>,
        n: usize,
        d: usize,
    ) -> Result<()> {
        let blocks = n.div_ceil(RMSNORM_DW_ROWS);
        need(
            dres.len >= n * d
                && dres_bf16.len >= n * d
                && dw_partials.len >= blocks * d
                && dy.len >= n * d
                && x.len >= n * d
                && w.len == d
                && rstd.len >= n,
            || format!("rmsnorm_backward: buffers too small for n {n} d {d}"),
        )?;
        let cfg = LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: ((ROWS_PER_BLOCK * 32) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (n, d, rows) = (n as i32, d as i32, RMSNORM_DW_ROWS as i32);
        let mut b = s.launch_builder(&self.rmsnorm_backward);
        b.arg(&dres.addr)
            .arg(&dres_bf16.addr)
            .arg(&dw_partials.addr)
            .arg(&dy.addr)
            .arg(&x.addr)
            .arg(&w.addr)
            .arg(&rstd.addr)
            .arg(&n)
            .arg(&d)
            .arg(&rows);
        // SAFETY: matches rmsnorm_backward_f32's signature; shapes checked above; block b
        // writes partials row b < blocks.
        launched(s, "rmsnorm_backward_f32", unsafe { b.launch(cfg) })
    }

    /// `dw += Σ_b dw_partials[b, :]` over the `n.div_ceil(RMSNORM_DW_ROWS)` partials
    /// [`Self::rmsnorm_backward`] wrote for `n` rows, in order.
    pub fn rmsnorm_backward_dw(
        &self,
        s: &Arc<CudaStream>,
        dw: Ptr<f32>,
        dw_partials: Ptr<f32>,
        n: usize,
        d: usize,
    ) -> Result<()> {
        let blocks = n.div_ceil(RMSNORM_DW_ROWS);
        need(dw.len == d && dw_partials.len >= blocks * d, || {
            format!("rmsnorm_backward_dw: dw {} partials {} for n {n} d {d}", dw.len, dw_partials.len)
        })?;
        let cfg = grid_1d(d, 256);
        let (blocks, d) = (blocks as i32, d as i32);
        let mut b = s.launch_builder(&self.rmsnorm_backward_dw);
        b.arg(&dw.addr).arg(&dw_partials.addr).arg(&blocks).arg(&d);
        // SAFETY: matches rmsnorm_backward_dw_f32's signature; shapes checked above.
        launched(s, "rmsnorm_backward_dw_f32", unsafe { b.launch(cfg) })
    }

    /// Rotates every head of `x [n, heads·hd]` in place (`inverse`: the backward pass).
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &self,
        s: &Arc<CudaStream>,
        x: Ptr<bf16>,
        cos: Ptr<f32>,
        sin: Ptr<f32>,
        n: usize,
        heads: usize,
        hd: usize,
        context: usize,
        inverse: bool,
    ) -> Result<()> {
        need(x.len >= n * heads * hd && cos.len >= context * hd / 2 && sin.len == cos.len && hd % 2 == 0, || {
            format!("rope: x {} cos {} for n {n} heads {heads} hd {hd} context {context}", x.len, cos.len)
        })?;
        let cfg = grid_1d(n * heads * hd / 2, 256);
        let (n, heads, hd, context) = (n as i32, heads as i32, hd as i32, context as i32);
        let f = if inverse { &self.rope_backward } else { &self.rope_forward };
        let mut b = s.launch_builder(f);
        b.arg(&x.addr).arg(&cos.addr).arg(&sin.addr).arg(&n).arg(&heads).arg(&hd).arg(&context);
        // SAFETY: matches rope_{forward,backward}_bf16's signature; shapes checked above.
        launched(s, "rope_bf16", unsafe { b.launch(cfg) })
    }

    /// Causal attention: `out` and the per-row log-sum-exp `lse [batch, heads, T]`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_forward(
        &self,
        s: &Arc<CudaStream>,
        out: Ptr<bf16>,
        lse: Ptr<f32>,
        q: Ptr<bf16>,
        k: Ptr<bf16>,
        v: Ptr<bf16>,
        batch: usize,
        t: usize,
        heads: usize,
        groups: usize,
    ) -> Result<()> {
        let (n, hd) = (batch * t, self.head_dim);
        need(
            out.len >= n * heads * hd
                && q.len >= n * heads * hd
                && k.len >= n * groups * hd
                && v.len >= n * groups * hd
                && lse.len >= batch * heads * t
                && heads % groups == 0,
            || format!("attention_forward: buffers too small for batch {batch} T {t} heads {heads} groups {groups}"),
        )?;
        let cfg = LaunchConfig {
            grid_dim: (t.div_ceil(ATTN_TILE) as u32, heads as u32, batch as u32),
            block_dim: (ATTN_TILE as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (t, heads, groups) = (t as i32, heads as i32, groups as i32);
        let mut b = s.launch_builder(&self.attention_forward);
        b.arg(&out.addr).arg(&lse.addr).arg(&q.addr).arg(&k.addr).arg(&v.addr).arg(&t).arg(&heads).arg(&groups);
        // SAFETY: matches attention_forward_bf16_hd{HD}'s signature for this head size; shapes
        // checked above; the grid covers every (query tile, head, sequence).
        launched(s, "attention_forward_bf16", unsafe { b.launch(cfg) })
    }

    /// `dsum[b, h, i] = Σ dout ⊙ out` over the head's row.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_backward_preprocess(
        &self,
        s: &Arc<CudaStream>,
        dsum: Ptr<f32>,
        dout: Ptr<bf16>,
        out: Ptr<bf16>,
        batch: usize,
        t: usize,
        heads: usize,
    ) -> Result<()> {
        let (n, hd) = (batch * t, self.head_dim);
        need(dsum.len >= batch * heads * t && dout.len >= n * heads * hd && out.len >= n * heads * hd, || {
            format!("attention_backward_preprocess: buffers too small for batch {batch} T {t} heads {heads}")
        })?;
        let cfg = grid_1d(n * heads, 256);
        let (n, t, heads, hd) = (n as i32, t as i32, heads as i32, hd as i32);
        let mut b = s.launch_builder(&self.attention_backward_preprocess);
        b.arg(&dsum.addr).arg(&dout.addr).arg(&out.addr).arg(&n).arg(&t).arg(&heads).arg(&hd);
        // SAFETY: matches attention_backward_preprocess_bf16's signature; shapes checked above.
        launched(s, "attention_backward_preprocess_bf16", unsafe { b.launch(cfg) })
    }

    /// `dk`, `dv` (overwritten) from `dout`, recomputing the probabilities from `lse`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_backward_dkv(
        &self,
        s: &Arc<CudaStream>,
        dk: Ptr<bf16>,
        dv: Ptr<bf16>,
        dout: Ptr<bf16>,
        lse: Ptr<f32>,
        dsum: Ptr<f32>,
        q: Ptr<bf16>,
        k: Ptr<bf16>,
        v: Ptr<bf16>,
        batch: usize,
        t: usize,
        heads: usize,
        groups: usize,
    ) -> Result<()> {
        let (n, hd) = (batch * t, self.head_dim);
        need(
            dk.len >= n * groups * hd
                && dv.len >= n * groups * hd
                && dout.len >= n * heads * hd
                && lse.len >= batch * heads * t
                && dsum.len >= batch * heads * t
                && q.len >= n * heads * hd
                && k.len >= n * groups * hd
                && v.len >= n * groups * hd,
            || {
                format!(
                    "attention_backward_dkv: buffers too small for batch {batch} T {t} heads {heads} groups {groups}"
                )
            },
        )?;
        let cfg = LaunchConfig {
            grid_dim: (t.div_ceil(ATTN_TILE) as u32, groups as u32, batch as u32),
            block_dim: (ATTN_TILE as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (t, heads, groups) = (t as i32, heads as i32, groups as i32);
        let mut b = s.launch_builder(&self.attention_backward_dkv);
        b.arg(&dk.addr)
            .arg(&dv.addr)
            .arg(&dout.addr)
            .arg(&lse.addr)
            .arg(&dsum.addr)
            .arg(&q.addr)
            .arg(&k.addr)
            .arg(&v.addr)
            .arg(&t)
            .arg(&heads)
            .arg(&groups);
        // SAFETY: matches attention_backward_dkv_bf16_hd{HD}'s signature; shapes checked above.
        launched(s, "attention_backward_dkv_bf16", unsafe { b.launch(cfg) })
    }

    /// `dq` (overwritten) from `dout`, recomputing the probabilities from `lse`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_backward_dq(
        &self,
        s: &Arc<CudaStream>,
        dq: Ptr<bf16>,
        dout: Ptr<bf16>,
        lse: Ptr<f32>,
        dsum: Ptr<f32>,
        q: Ptr<bf16>,
        k: Ptr<bf16>,
        v: Ptr<bf16>,
        batch: usize,
        t: usize,
        heads: usize,
        groups: usize,
    ) -> Result<()> {
        let (n, hd) = (batch * t, self.head_dim);
        need(
            dq.len >= n * heads * hd
                && dout.len >= n * heads * hd
                && lse.len >= batch * heads * t
                && dsum.len >= batch * heads * t
                && q.len >= n * heads * hd
                && k.len >= n * groups * hd
                && v.len >= n * groups * hd,
            || {
                format!(
                    "attention_backward_dq: buffers too small for batch {batch} T {t} heads {heads} groups {groups}"
                )
            },
        )?;
        let cfg = LaunchConfig {
            grid_dim: (t.div_ceil(ATTN_TILE) as u32, heads as u32, batch as u32),
            block_dim: (ATTN_TILE as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (t, heads, groups) = (t as i32, heads as i32, groups as i32);
        let mut b = s.launch_builder(&self.attention_backward_dq);
        b.arg(&dq.addr)
            .arg(&dout.addr)
            .arg(&lse.addr)
            .arg(&dsum.addr)
            .arg(&q.addr)
            .arg(&k.addr)
            .arg(&v.addr)
            .arg(&t)
            .arg(&heads)
            .arg(&groups);
        // SAFETY: matches attention_backward_dq_bf16_hd{HD}'s signature; shapes checked above.
        launched(s, "attention_backward_dq_bf16", unsafe { b.launch(cfg) })
    }

    /// `g = silu(h1) ⊙ h3`.
    pub fn swiglu_forward(
        &self,
        s: &Arc<CudaStream>,
        g: Ptr<bf16>,
        h1: Ptr<bf16>,
        h3: Ptr<bf16>,
        len: usize,
    ) -> Result<()> {
        need(g.len >= len && h1.len >= len && h3.len >= len, || {
            format!("swiglu_forward: buffers too small for {len}")
        })?;
        let cfg = grid_1d(len, 256);
        let len = len as i64;
        let mut b = s.launch_builder(&self.swiglu_forward);
        b.arg(&g.addr).arg(&h1.addr).arg(&h3.addr).arg(&len);
        // SAFETY: matches swiglu_forward_bf16's signature; shapes checked above.
        launched(s, "swiglu_forward_bf16", unsafe { b.launch(cfg) })
    }

    /// `dh1`, `dh3` from `dg`.
    #[allow(clippy::too_many_arguments)]
    pub fn swiglu_backward(
        &self,
        s: &Arc<CudaStream>,
        dh1: Ptr<bf16>,
        dh3: Ptr<bf16>,
        dg: Ptr<f32>,
        h1: Ptr<bf16>,
        h3: Ptr<bf16>,
        len: usize,
    ) -> Result<()> {
        need(dh1.len >= len && dh3.len >= len && dg.len >= len && h1.len >= len && h3.len >= len, || {
            format!("swiglu_backward: buffers too small for {len}")
        })?;
        let cfg = grid_1d(len, 256);
        let len = len as i64;
        let mut b = s.launch_builder(&self.swiglu_backward);
        b.arg(&dh1.addr).arg(&dh3.addr).arg(&dg.addr).arg(&h1.addr).arg(&h3.addr).arg(&len);
        // SAFETY: matches swiglu_backward_bf16's signature; shapes checked above.
        launched(s, "swiglu_backward_bf16", unsafe { b.launch(cfg) })
    }

    /// Losses of `rows` rows of logits and, with `grad_scale`, the logit gradient in place.
    #[allow(clippy::too_many_arguments)]
    pub fn classifier(
        &self,
        s: &Arc<CudaStream>,
        logits: Ptr<bf16>,
        losses: Ptr<f32>,
        targets: Ptr<u32>,
        rows: usize,
        vp: usize,
        grad_scale: Option<f64>,
    ) -> Result<()> {
        need(logits.len >= rows * vp && losses.len >= rows && targets.len >= rows, || {
            format!("classifier: buffers too small for {rows} rows of {vp}")
        })?;
        let cfg = LaunchConfig { grid_dim: (rows as u32, 1, 1), block_dim: (512, 1, 1), shared_mem_bytes: 0 };
        let (rows, vp) = (rows as i32, vp as i32);
        let (scale, write) = (grad_scale.unwrap_or(0.0) as f32, grad_scale.is_some() as i32);
        let mut b = s.launch_builder(&self.classifier);
        b.arg(&logits.addr).arg(&losses.addr).arg(&targets.addr).arg(&rows).arg(&vp).arg(&scale).arg(&write);
        // SAFETY: matches classifier_forward_backward_bf16's signature; shapes checked above;
        // targets are < vocab ≤ vp (checked on the host when the batch was loaded).
        launched(s, "classifier_forward_backward_bf16", unsafe { b.launch(cfg) })
    }

    /// One AdamW step over the flat buffers (also refreshes the bf16 weights).
    #[allow(clippy::too_many_arguments)]
    pub fn adamw(
        &self,
        s: &Arc<CudaStream>,
        params: Ptr<f32>,
        params_bf16: Ptr<bf16>,
        grads: Ptr<f32>,
        m: Ptr<f32>,
        v: Ptr<f32>,
        c: &AdamConsts,
    ) -> Result<()> {
        let len = params.len;
        need(params_bf16.len == len && grads.len == len && m.len == len && v.len == len, || {
            format!("adamw: buffers of {len}, {}, {}, {}, {}", params_bf16.len, grads.len, m.len, v.len)
        })?;
        let cfg = grid_1d(len, 256);
        let len = len as i64;
        let mut b = s.launch_builder(&self.adamw);
        b.arg(&params.addr)
            .arg(&params_bf16.addr)
            .arg(&grads.addr)
            .arg(&m.addr)
            .arg(&v.addr)
            .arg(&len)
            .arg(&c.lr)
            .arg(&c.beta1)
            .arg(&c.beta2)
            .arg(&c.eps)
            .arg(&c.decay)
            .arg(&c.step_size)
            .arg(&c.sqrt_bc2)
            .arg(&c.grad_scale);
        // SAFETY: matches adamw_step_f32's signature; all five buffers have len elements.
        launched(s, "adamw_step_f32", unsafe { b.launch(cfg) })
    }

    /// Sum of squares of each NORM_CHUNK slice of `grads` into `partials`.
    pub fn grad_norm(&self, s: &Arc<CudaStream>, partials: Ptr<f32>, grads: Ptr<f32>) -> Result<()> {
        let blocks = grads.len.div_ceil(NORM_CHUNK);
        need(partials.len >= blocks, || format!("grad_norm: {} partials for {blocks} chunks", partials.len))?;
        let cfg = LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (1024, 1, 1), shared_mem_bytes: 0 };
        let (len, chunk) = (grads.len as i64, NORM_CHUNK as i64);
        let mut b = s.launch_builder(&self.grad_norm);
        b.arg(&partials.addr).arg(&grads.addr).arg(&len).arg(&chunk);
        // SAFETY: matches grad_norm_forward_f32's signature; one partial per chunk.
        launched(s, "grad_norm_forward_f32", unsafe { b.launch(cfg) })
    }

    /// `out = bf16(in)`.
    pub fn cast(&self, s: &Arc<CudaStream>, out: Ptr<bf16>, input: Ptr<f32>) -> Result<()> {
        need(out.len == input.len, || format!("cast: {} outputs for {} inputs", out.len, input.len))?;
        let cfg = grid_1d(input.len, 256);
        let len = input.len as i64;
        let mut b = s.launch_builder(&self.cast);
        b.arg(&out.addr).arg(&input.addr).arg(&len);
        // SAFETY: matches cast_forward_f32_bf16's signature; equal lengths checked above.
        launched(s, "cast_forward_f32_bf16", unsafe { b.launch(cfg) })
    }
}

/// The rows of a micro-batch grouped by token, as `embedding_backward_f32` reads them
/// (compressed sparse rows): bucket `b` is token `tokens[b]` at rows
/// `rows[offsets[b]..offsets[b + 1]]`. Tokens ascend, and rows ascend within a bucket, so the
/// kernel adds each token's rows in one fixed order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokenBuckets {
    /// The distinct tokens, ascending.
    pub tokens: Vec<u32>,
    /// `tokens.len() + 1` ascending offsets into `rows`, from 0 to the number of rows.
    pub offsets: Vec<u32>,
    /// Every row index once, grouped by token.
    pub rows: Vec<u32>,
}

impl TokenBuckets {
    /// A counting sort of `tokens`, each below `vocab` (a larger one panics: the batch is
    /// checked against the vocabulary before this), in O(rows + vocab).
    pub fn new(tokens: &[u32], vocab: usize) -> TokenBuckets {
        // start[t] = how many rows hold a token below t.
        let mut start = vec![0u32; vocab + 1];
        for &t in tokens {
            start[t as usize + 1] += 1;
        }
        for t in 0..vocab {
            start[t + 1] += start[t];
        }
        let mut b = TokenBuckets { tokens: Vec::new(), offsets: vec![0], rows: vec![0; tokens.len()] };
        for t in 0..vocab {
            if start[t + 1] > start[t] {
                b.tokens.push(t as u32);
                b.offsets.push(start[t + 1]);
            }
        }
        // Rows in ascending order, each to the next free place of its token's bucket.
        for (row, &t) in tokens.iter().enumerate() {
            let next = &mut start[t as usize];
            b.rows[*next as usize] = row as u32;
            *next += 1;
        }
        b
    }
}

/// The scalars of one AdamW step as the kernel takes them: [`AdamStep`] (computed on the host
/// in f64, as for the CPU backend) rounded to f32.
pub struct AdamConsts {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub decay: f32,
    pub step_size: f32,
    pub sqrt_bc2: f32,
    pub grad_scale: f32,
}

impl From<AdamStep> for AdamConsts {
    fn from(c: AdamStep) -> Self {
        AdamConsts {
            lr: c.lr as f32,
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            eps: c.eps as f32,
            decay: c.decay as f32,
            step_size: c.step_size as f32,
            sqrt_bc2: c.sqrt_bc2 as f32,
            grad_scale: c.grad_scale as f32,
        }
    }
}
