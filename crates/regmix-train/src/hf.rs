//! Export of a trained model as a Hugging Face `LlamaForCausalLM` checkpoint: the layout's
//! tensor names are already Hugging Face's and linear weights are stored `[out, in]`, so the
//! export copies buffers; RoPE uses the same rotate-half convention.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use regmix_core::atomic::{self, AtomicFile};
use regmix_model::{Backend, Buffer, Config};
use safetensors::tensor::{Dtype, TensorView};

/// `config.json` for `transformers`.
pub fn hf_config(c: &Config, eos_id: u32) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.padded_vocab_size,
        "hidden_size": c.d_model,
        "intermediate_size": c.mlp_hidden,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_query_groups,
        "head_dim": c.head_dim(),
        "max_position_embeddings": c.context,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_theta,
        "hidden_act": "silu",
        "attention_bias": false,
        "mlp_bias": false,
        "tie_word_embeddings": false,
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "torch_dtype": "float32",
        "initializer_range": c.init_std,
    })
}

/// Writes `model.safetensors`, `config.json`, `tokenizer.json` and `tokenizer_config.json`
/// into `dir`, each atomically.
pub fn export(backend: &dyn Backend, dir: &Path, tokenizer: &Path, eos_id: u32) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let params = backend.read(Buffer::Params)?;
    let views: Vec<(String, TensorView)> = backend
        .layout()
        .tensors
        .iter()
        .map(|t| {
            Ok((
                t.name.clone(),
                TensorView::new(Dtype::F32, t.shape.clone(), bytemuck::cast_slice(&params[t.range()]))?,
            ))
        })
        .collect::<Result<_>>()?;
    let md: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let path = dir.join("model.safetensors");
    let file = AtomicFile::create(&path)?;
    safetensors::tensor::serialize_to_file(views, Some(md), file.tmp_path())
        .with_context(|| format!("writing {}", file.tmp_path().display()))?;
    file.commit()?;
    let cfg = hf_config(backend.config(), eos_id);
    atomic::write_bytes(dir.join("config.json"), serde_json::to_string_pretty(&cfg)?.as_bytes())?;
    let tok_bytes = std::fs::read(tokenizer).with_context(|| format!("reading {}", tokenizer.display()))?;
    let tok: serde_json::Value =
        serde_json::from_slice(&tok_bytes).with_context(|| format!("{}: not a tokenizer.json", tokenizer.display()))?;
    let eos = tok["added_tokens"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["id"].as_u64() == Some(eos_id as u64)))
        .and_then(|t| t["content"].as_str().map(str::to_string));
    atomic::write_bytes(dir.join("tokenizer.json"), &tok_bytes)?;
    let mut tc =
        serde_json::json!({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": backend.config().context});
    if let Some(e) = eos {
        tc["eos_token"] = e.clone().into();
        tc["bos_token"] = e.into();
    }
    atomic::write_bytes(dir.join("tokenizer_config.json"), serde_json::to_string_pretty(&tc)?.as_bytes())?;
    Ok(())
}
