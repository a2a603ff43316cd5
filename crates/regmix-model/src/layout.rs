//! The one table that says where every parameter lives in the flat buffers. Parameters,
//! gradients and both AdamW moments are `Vec`s of the same length laid out by this table;
//! checkpoints and the Hugging Face export name tensors by it.

use crate::Config;

/// One tensor: its Hugging Face `LlamaForCausalLM` name, row-major shape and offset.
/// Linear weights are stored `[out, in]`, as PyTorch does, so the export is a plain copy.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
}

impl Tensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.numel()
    }
}

/// Offsets of one transformer block's tensors.
#[derive(Clone, Copy, Debug)]
pub struct BlockOffsets {
    pub attn_norm: usize,
    pub wq: usize,
    pub wk: usize,
    pub wv: usize,
    pub wo: usize,
    pub mlp_norm: usize,
    pub w1: usize,
    pub w3: usize,
    pub w2: usize,
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub tensors: Vec<Tensor>,
    pub embedding: usize,
    pub blocks: Vec<BlockOffsets>,
    pub final_norm: usize,
    pub lm_head: usize,
    len: usize,
}

impl Layout {
    pub fn new(c: &Config) -> Layout {
        let (d, ff, v) = (c.d_model, c.mlp_hidden, c.padded_vocab_size);
        let mut tensors = Vec::new();
        let mut at = 0usize;
        let mut push = |name: String, shape: Vec<usize>| -> usize {
            let offset = at;
            at += shape.iter().product::<usize>();
            tensors.push(Tensor { name, shape, offset });
            offset
        };
        let embedding = push("model.embed_tokens.weight".into(), vec![v, d]);
        let mut blocks = Vec::new();
        for l in 0..c.n_layer {
            let p = |s: &str| format!("model.layers.{l}.{s}.weight");
            blocks.push(BlockOffsets {
                attn_norm: push(p("input_layernorm"), vec![d]),
                wq: push(p("self_attn.q_proj"), vec![c.q_dim(), d]),
                wk: push(p("self_attn.k_proj"), vec![c.kv_dim(), d]),
                wv: push(p("self_attn.v_proj"), vec![c.kv_dim(), d]),
                wo: push(p("self_attn.o_proj"), vec![d, c.q_dim()]),
                mlp_norm: push(p("post_attention_layernorm"), vec![d]),
                w1: push(p("mlp.gate_proj"), vec![ff, d]),
                w3: push(p("mlp.up_proj"), vec![ff, d]),
                w2: push(p("mlp.down_proj"), vec![d, ff]),
            });
        }
        let final_norm = push("model.norm.weight".into(), vec![d]);
        let lm_head = push("lm_head.weight".into(), vec![v, d]);
        Layout { tensors, embedding, blocks, final_norm, lm_head, len: at }
    }

    /// Total number of elements (parameters).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// The parameter counts of a configuration are its layout's (here, so that `config` does not
/// depend on `layout`, which reads the configuration).
impl Config {
    /// Parameters in the model.
    pub fn n_params(&self) -> usize {
        Layout::new(self).len()
    }

    /// Parameters outside the embedding table (the paper counts model size this way).
    pub fn n_params_non_embedding(&self) -> usize {
        self.n_params() - self.padded_vocab_size * self.d_model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_tile_the_buffer_without_gaps_or_overlaps() {
        let c = Config::preset("small", 500).unwrap();
        let l = Layout::new(&c);
        let mut at = 0;
        for t in &l.tensors {
            assert_eq!(t.offset, at, "{}", t.name);
            at += t.numel();
        }
        assert_eq!(at, l.len());
        assert_eq!(l.tensors.len(), 3 + 9 * c.n_layer);
        assert_eq!(l.get("lm_head.weight").unwrap().shape, vec![512, 128]);
    }

    #[test]
    fn tinyllama_has_its_published_parameter_count() {
        // TinyLlama 1.1B has 1,100,048,384 parameters with its 32000-token vocabulary.
        let t = Config::preset("tinyllama-1b", 32000).unwrap();
        assert_eq!(t.n_params(), 1_100_048_384);
    }
}
