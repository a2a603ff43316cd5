//! target-train end to end on real text (the repository's files): named mixtures, the
//! comparison table, and the Hugging Face export loaded back.

#[path = "../../regmix-train/tests/common/mod.rs"]
mod common;
#[path = "../../../tests/support/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};
use regmix_core::run::RunStatus;
use regmix_core::schema::Schema;
use regmix_core::table::read_parquet;
use regmix_model::cpu::CpuBackend;
use regmix_model::{Backend, Config, Layout};
use safetensors::SafeTensors;

fn train(dir: &Path, mixtures: &[&str]) -> std::process::Output {
    let model = common::write_model_config(dir);
    let mut c = Command::new(env!("CARGO_BIN_EXE_target-train"));
    c.args(["--shards", common::shards().to_str().unwrap(), "--output", dir.join("target").to_str().unwrap()])
        .args(["--preset", "micro", "--model-config", model.to_str().unwrap(), "--tokens", "15360"])
        .args(["--batch-tokens", "256", "--micro-batch", "4", "--eval-windows", "8", "--lr", "3e-3"]);
    for m in mixtures {
        c.args(["--mixture", m]);
    }
    c.output().unwrap()
}

#[test]
fn trains_each_named_mixture_and_writes_the_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("code.yaml");
    std::fs::write(&yaml, "train:\n  train_code: 1.0\n").unwrap();
    let prose = dir.path().join("prose.yaml");
    std::fs::write(&prose, "train:\n  train_prose: 1.0\n").unwrap();
    let named = [
        "prior=prior".to_string(),
        "uniform=uniform".into(),
        format!("code={}", yaml.display()),
        format!("prose={}", prose.display()),
    ];
    let named: Vec<&str> = named.iter().map(String::as_str).collect();
    let o = train(dir.path(), &named);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_parquet(&dir.path().join("target/comparison.parquet"), Schema::get("comparison")).unwrap();
    let names: Vec<&str> = (0..t.rows()).map(|i| t.str("mixture").unwrap().value(i)).collect();
    assert_eq!(names, ["prior", "uniform", "code", "prose"]);
    assert!((0..4).all(|i| t.str("status").unwrap().value(i) == RunStatus::Finished.as_str()));
    assert_eq!(t.f64_values("weight.code").unwrap()[2], 1.0);
    assert!((t.f64_values("weight.prose").unwrap()[1] - 1.0 / 3.0).abs() < 1e-12);
    // Each single-domain model beats the other on its own domain and loses on the other's,
    // and the code-only model beats the uniform one on code. (Not "beats the prior": the
    // repository is mostly Rust, so the token-share prior is itself mostly code and the
    // difference is within noise at this size.)
    let code = t.f64_values("valid_loss.code").unwrap();
    let prose = t.f64_values("valid_loss.prose").unwrap();
    assert!(code[2] < code[3] && code[2] < code[1], "{code:?}");
    assert!(prose[3] < prose[2] && prose[2] > prose[1], "{prose:?}");
    // The cosine schedule ends at --min-lr.
    let m = read_parquet(&dir.path().join("target/code/metrics.parquet"), Schema::get("run_metrics")).unwrap();
    let lr = m.f64_values("lr").unwrap();
    assert!((lr[lr.len() - 1] - 1e-5).abs() < 1e-12, "{lr:?}");
    for f in ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"] {
        assert!(dir.path().join("target/code/hf").join(f).exists(), "{f}");
    }
    // A rerun skips every finished model and rewrites the same comparison.
    let o = train(dir.path(), &named);
    assert!(String::from_utf8_lossy(&o.stderr).matches("already finished").count() == 4);
}

#[test]
fn bad_mixture_arguments_are_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(dir.path(), &["nonsense"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"nonsense\": expected NAME=FILE"));
    let o = train(dir.path(), &["a=uniform", "a=prior"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("the name a is given twice"));
    let o = train(dir.path(), &["x=missing.yaml"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.yaml"));
}

/// A Python with torch and transformers: $REGMIX_TORCH_PYTHON, or the benchmark venv that
/// `make bench` creates.
fn torch_python() -> Option<PathBuf> {
    let p = std::env::var_os("REGMIX_TORCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join(".venv-bench/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import torch, transformers"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(p)
}

fn load_hf(dir: &Path, cfg: &Config) -> CpuBackend<f32> {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let layout = Layout::new(cfg);
    let mut params = vec![0f32; layout.len()];
    for t in &layout.tensors {
        let v = st.tensor(&t.name).unwrap();
        assert_eq!(v.shape(), t.shape.as_slice(), "{}", t.name);
        for (d, s) in params[t.range()].iter_mut().zip(v.data().chunks_exact(4)) {
            *d = f32::from_le_bytes(s.try_into().unwrap());
        }
    }
    assert_eq!(st.len(), layout.tensors.len(), "no extra tensors");
    CpuBackend::with_params(cfg, params)
}

#[test]
fn the_hugging_face_export_gives_transformers_the_same_loss() {
    let dir = tempfile::tempdir().unwrap();
    let o = train(dir.path(), &["uniform=uniform"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hf = dir.path().join("target/uniform/hf");
    let hf_cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(hf.join("config.json")).unwrap()).unwrap();
    let vocab = hf_cfg["vocab_size"].as_u64().unwrap() as usize;
    let cfg = Config::preset("micro", 512).unwrap().override_with(&common::tiny_model_json()).unwrap();
    assert_eq!(vocab, cfg.padded_vocab_size);
    assert_eq!(hf_cfg["num_key_value_heads"], 1);
    let mut model = load_hf(&hf, &cfg);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let window: Vec<u32> = (0..cfg.context + 1).map(|_| rng.random_range(0..512)).collect();
    let ours = model.loss(&window, 1).unwrap() / cfg.context as f64;

    let Some(py) = torch_python() else {
        skip::skip_optional("the transformers half: no Python with torch and transformers (set REGMIX_TORCH_PYTHON or run `make bench` to create .venv-bench)");
        return;
    };
    let script = r#"
import json, sys, torch
from transformers import AutoTokenizer, LlamaForCausalLM
d, ids = sys.argv[1], json.loads(sys.argv[2])
m = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
x = torch.tensor([ids])
with torch.no_grad():
    out = m(input_ids=x[:, :-1], labels=x[:, :-1].clone())
    logits = m(input_ids=x[:, :-1]).logits
loss = torch.nn.functional.cross_entropy(logits[0], x[0, 1:]).item()
tok = AutoTokenizer.from_pretrained(d)
print(json.dumps({"loss": loss, "encoded": len(tok("fn main() {}")["input_ids"])}))
"#;
    let o = Command::new(py)
        .args(["-c", script, hf.to_str().unwrap(), &serde_json::to_string(&window).unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii()).unwrap();
    let theirs = v["loss"].as_f64().unwrap();
    // Same weights, same f32 arithmetic up to summation order: agreement to 1e-4 relative.
    assert!(((ours - theirs) / theirs).abs() < 1e-4, "regmix {ours} vs transformers {theirs}");
    assert!(v["encoded"].as_u64().unwrap() > 0);
}
