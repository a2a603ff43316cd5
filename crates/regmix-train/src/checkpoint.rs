//! Checkpoints: one safetensors file per run holding the parameters (under their Hugging
//! Face names), both AdamW moments (`adam_m.<name>`, `adam_v.<name>`), the metrics rows so
//! far (`regmix.metrics`, f64, so they round-trip bit for bit) and the loop state in the
//! header metadata. Written to a temporary name and renamed: a killed run keeps its
//! previous checkpoint.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use regmix_core::atomic::AtomicFile;
use regmix_model::{Backend, Buffer};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

/// What the loop needs besides the buffers to continue.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopState {
    /// Optimizer steps completed.
    pub step: u64,
    /// Training seconds so far, summed over restarts.
    pub elapsed_s: f64,
    /// The run's settings (JSON); a resume with different settings is refused.
    pub spec: String,
    /// Metrics rows so far, `[rows, cols]` row-major.
    pub metrics: Vec<f64>,
    pub metrics_cols: usize,
}

pub fn save(path: &Path, backend: &dyn Backend, state: &LoopState) -> Result<()> {
    let layout = backend.layout();
    let buffers: Vec<(&str, Vec<f32>)> = vec![
        ("", backend.read(Buffer::Params)?),
        ("adam_m.", backend.read(Buffer::AdamM)?),
        ("adam_v.", backend.read(Buffer::AdamV)?),
    ];
    let mut views: Vec<(String, TensorView)> = Vec::new();
    for (prefix, buf) in &buffers {
        for t in &layout.tensors {
            let bytes: &[u8] = bytemuck::cast_slice(&buf[t.range()]);
            views.push((format!("{prefix}{}", t.name), TensorView::new(Dtype::F32, t.shape.clone(), bytes)?));
        }
    }
    let rows = state.metrics.len().checked_div(state.metrics_cols).unwrap_or(0);
    views.push((
        regmix_core::keys::METRICS.into(),
        TensorView::new(Dtype::F64, vec![rows, state.metrics_cols], bytemuck::cast_slice(&state.metrics))?,
    ));
    let mut md = HashMap::new();
    md.insert(regmix_core::keys::STEP.to_string(), state.step.to_string());
    md.insert(regmix_core::keys::ELAPSED_S_BITS.to_string(), state.elapsed_s.to_bits().to_string());
    md.insert(regmix_core::keys::SPEC.to_string(), state.spec.clone());
    md.insert(regmix_core::keys::MODEL.to_string(), serde_json::to_string(backend.config())?);
    let file = AtomicFile::create(path)?;
    safetensors::tensor::serialize_to_file(views, Some(md), file.tmp_path())
        .with_context(|| format!("writing checkpoint {}", file.tmp_path().display()))?;
    file.commit()?;
    Ok(())
}

/// Loads a checkpoint into `backend` (whose configuration must match) and returns the loop
/// state.
/// The run specification a checkpoint was written for (`regmix.spec` of its header), read
/// without the tensors: a rerun checks it before it loads anything.
pub fn spec_of(path: &Path) -> Result<String> {
    use std::io::Read;
    let bad = |m: String| anyhow::anyhow!("checkpoint {}: {m}", path.display());
    let mut f = std::fs::File::open(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|e| bad(e.to_string()))?;
    let n = u64::from_le_bytes(n);
    if n > 64 << 20 {
        return Err(bad(format!("a header of {n} bytes")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(e.to_string()))?;
    v["__metadata__"][regmix_core::keys::SPEC]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| bad("metadata key regmix.spec missing".into()))
}

pub fn load(path: &Path, backend: &mut dyn Backend) -> Result<LoopState> {
    let bytes = std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    let bad = |m: String| anyhow::anyhow!("checkpoint {}: {m}", path.display());
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let md = header.metadata().clone().unwrap_or_default();
    let get = |k: &str| md.get(k).cloned().ok_or_else(|| bad(format!("metadata key {k} missing")));
    let model: regmix_model::Config =
        serde_json::from_str(&get(regmix_core::keys::MODEL)?).map_err(|e| bad(e.to_string()))?;
    if &model != backend.config() {
        bail!(bad(format!(
            "was written for model {} but this run uses {}",
            serde_json::to_string(&model)?,
            serde_json::to_string(backend.config())?
        )));
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let layout = backend.layout().clone();
    for (prefix, which) in [("", Buffer::Params), ("adam_m.", Buffer::AdamM), ("adam_v.", Buffer::AdamV)] {
        let mut buf = vec![0f32; layout.len()];
        for t in &layout.tensors {
            let name = format!("{prefix}{}", t.name);
            let view = st.tensor(&name).map_err(|e| bad(format!("tensor {name}: {e}")))?;
            if view.dtype() != Dtype::F32 || view.shape() != t.shape.as_slice() {
                bail!(bad(format!(
                    "tensor {name} is {:?} {:?}, expected F32 {:?}",
                    view.dtype(),
                    view.shape(),
                    t.shape
                )));
            }
            // The file's bytes need not be 4-aligned: copy through from_le_bytes.
            for (dst, src) in buf[t.range()].iter_mut().zip(view.data().chunks_exact(4)) {
                *dst = f32::from_le_bytes(src.try_into().unwrap());
            }
        }
        backend.write(which, &buf)?;
    }
    let m = st.tensor(regmix_core::keys::METRICS).map_err(|e| bad(format!("tensor regmix.metrics: {e}")))?;
    let metrics_cols = *m.shape().get(1).unwrap_or(&0);
    let metrics = m.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    let elapsed_bits: u64 =
        get(regmix_core::keys::ELAPSED_S_BITS)?.parse().map_err(|_| bad("bad regmix.elapsed_s_bits".into()))?;
    Ok(LoopState {
        step: get(regmix_core::keys::STEP)?.parse().map_err(|_| bad("bad regmix.step".into()))?,
        elapsed_s: f64::from_bits(elapsed_bits),
        spec: get(regmix_core::keys::SPEC)?,
        metrics,
        metrics_cols,
    })
}
