//! Model configuration and the named presets (part of the command-line interface).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The decoder's shape. Everything else (no biases, SwiGLU, RoPE on the full head, untied
/// output layer) is fixed by the architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Preset the configuration started from (informational).
    #[serde(default)]
    pub name: String,
    /// The tokenizer's vocabulary size.
    pub vocab_size: usize,
    /// Embedding/output rows: `vocab_size` rounded up to `padding_multiple`.
    #[serde(default)]
    pub padded_vocab_size: usize,
    #[serde(default = "default_padding")]
    pub padding_multiple: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_query_groups: usize,
    pub d_model: usize,
    pub mlp_hidden: usize,
    /// Training context (tokens per sequence).
    pub context: usize,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_eps")]
    pub norm_eps: f64,
    /// Standard deviation of the normal initialisation.
    #[serde(default = "default_init_std")]
    pub init_std: f64,
}

fn default_padding() -> usize {
    64
}
fn default_theta() -> f64 {
    10000.0
}
fn default_eps() -> f64 {
    1e-5
}
fn default_init_std() -> f64 {
    0.02
}

/// A named model shape (the vocabulary comes from the tokenizer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub n_layer: usize,
    pub n_head: usize,
    /// Key/value groups (grouped-query attention; = n_head for multi-head).
    pub n_query_groups: usize,
    pub d_model: usize,
    pub mlp_hidden: usize,
    pub context: usize,
}

const fn preset(
    name: &'static str,
    n_layer: usize,
    n_head: usize,
    n_query_groups: usize,
    d_model: usize,
    mlp_hidden: usize,
    context: usize,
) -> Preset {
    Preset { name, n_layer, n_head, n_query_groups, d_model, mlp_hidden, context }
}

pub const PRESETS: &[Preset] = &[
    // The CPU-sized presets: `micro` trains in seconds (tests, demo proxies), `small` in
    // minutes (demo target).
    preset("micro", 2, 4, 4, 64, 192, 128),
    preset("small", 4, 4, 2, 128, 384, 256),
    // The paper's proxy and its 60M model (TinyLlama/lit-gpt shapes).
    preset("regmix-1m", 2, 8, 8, 256, 512, 2048),
    preset("regmix-60m", 10, 8, 8, 768, 1536, 2048),
    // The paper's target.
    preset("tinyllama-1b", 22, 32, 4, 2048, 5632, 2048),
];

pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

impl Config {
    pub fn preset(name: &str, vocab_size: usize) -> Result<Config> {
        let &Preset { name, n_layer, n_head, n_query_groups, d_model, mlp_hidden, context } = PRESETS
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::Config(format!("unknown preset {name:?}; known: {}", preset_names().join(", "))))?;
        let mut c = Config {
            name: name.to_string(),
            vocab_size,
            padded_vocab_size: 0,
            padding_multiple: default_padding(),
            n_layer,
            n_head,
            n_query_groups,
            d_model,
            mlp_hidden,
            context,
            rope_theta: default_theta(),
            norm_eps: default_eps(),
            init_std: default_init_std(),
        };
        c.finish()?;
        Ok(c)
    }

    /// Applies the fields of a JSON object over this configuration (a config file can
    /// override anything), then re-derives and re-checks.
    pub fn override_with(&self, overrides: &serde_json::Value) -> Result<Config> {
        let mut v = serde_json::to_value(self).expect("config serialises");
        let obj = overrides
            .as_object()
            .ok_or_else(|| Error::Config("the model config override must be a JSON object".into()))?;
        for (k, val) in obj {
            if v.get(k).is_none() {
                return Err(Error::Config(format!("unknown model config field {k:?}")));
            }
            v[k] = val.clone();
        }
        if obj.contains_key("vocab_size") || obj.contains_key("padding_multiple") {
            v["padded_vocab_size"] = 0.into();
        }
        let mut c: Config = serde_json::from_value(v).map_err(|e| Error::Config(e.to_string()))?;
        c.finish()?;
        Ok(c)
    }

    /// Derives the padded vocabulary and checks the shape is buildable.
    pub fn finish(&mut self) -> Result<()> {
        let m = self.padding_multiple.max(1);
        let padded = self.vocab_size.div_ceil(m) * m;
        if self.padded_vocab_size == 0 {
            self.padded_vocab_size = padded;
        }
        let bad = |msg: String| Err(Error::Config(msg));
        if self.vocab_size == 0 || self.padded_vocab_size < self.vocab_size {
            return bad(format!(
                "vocab_size {} / padded_vocab_size {} are inconsistent",
                self.vocab_size, self.padded_vocab_size
            ));
        }
        if self.n_layer == 0 || self.n_head == 0 || self.d_model == 0 || self.mlp_hidden == 0 || self.context == 0 {
            return bad("n_layer, n_head, d_model, mlp_hidden and context must be positive".into());
        }
        if self.d_model % self.n_head != 0 {
            return bad(format!("d_model {} is not a multiple of n_head {}", self.d_model, self.n_head));
        }
        if self.n_query_groups == 0 || self.n_head % self.n_query_groups != 0 {
            return bad(format!("n_head {} is not a multiple of n_query_groups {}", self.n_head, self.n_query_groups));
        }
        if self.head_dim() % 2 != 0 {
            return bad(format!("head dimension {} must be even for RoPE", self.head_dim()));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_head
    }
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim()
    }
    pub fn kv_dim(&self) -> usize {
        self.n_query_groups * self.head_dim()
    }

    /// Training FLOPs per token (forward + backward = 3 × forward), counting every matrix
    /// multiply, the output layer and the causal attention's score and value products
    /// (half of a full T×T, since masked entries are never needed).
    pub fn train_flops_per_token(&self) -> f64 {
        let d = self.d_model as f64;
        let per_layer_matmul = 2.0 * d * (self.q_dim() + 2 * self.kv_dim()) as f64
            + 2.0 * self.q_dim() as f64 * d
            + 2.0 * 3.0 * d * self.mlp_hidden as f64;
        let attention = 2.0 * 2.0 * self.q_dim() as f64 * self.context as f64 / 2.0;
        let head = 2.0 * d * self.padded_vocab_size as f64;
        3.0 * (self.n_layer as f64 * (per_layer_matmul + attention) + head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_pad_the_vocabulary_to_a_multiple_of_64() {
        let c = Config::preset("regmix-1m", 50277).unwrap();
        assert_eq!(c.padded_vocab_size, 50304);
        assert_eq!(c.head_dim(), 32);
        let t = Config::preset("tinyllama-1b", 32000).unwrap();
        assert_eq!(t.kv_dim(), 256);
    }

    #[test]
    fn overrides_replace_fields_and_are_checked() {
        let c = Config::preset("micro", 1000).unwrap();
        let o = c.override_with(&serde_json::json!({"n_layer": 3, "vocab_size": 1001})).unwrap();
        assert_eq!(o.n_layer, 3);
        assert_eq!(o.padded_vocab_size, 1024);
        let e = c.override_with(&serde_json::json!({"n_layers": 3})).unwrap_err();
        assert!(e.to_string().contains("n_layers"), "{e}");
        assert!(c.override_with(&serde_json::json!({"n_head": 5})).is_err());
    }
}
