//! target-train: the training engine with the target's defaults (cosine schedule), one
//! model per named mixture. Writes `<output>/<name>/metrics.parquet`, the model as a Hugging
//! Face checkpoint in `<output>/<name>/hf/`, and `<output>/comparison.parquet` with every
//! model's final validation losses.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use regmix_core::schema::{domains_and_eval, Schema};
use regmix_core::table::{batch, col, write_parquet};
use regmix_core::Provenance;
use regmix_mixture::io::Mixtures;
use regmix_mixture::prior::Prior;
use regmix_mixture::Optimum;
use regmix_train::backends;
use regmix_train::cli::TrainArgs;
use regmix_train::data::{Corpus, EvalSet};
use regmix_train::train::{self, Outcome, Run, RunDir, Schedule};

#[derive(Parser, Debug)]
#[command(
    name = "target-train",
    version,
    about = "Train the target model on the optimum mixture and on baselines, and compare them.",
    long_about = "Train the target model on each named mixture (the optimum from `optimize` and \
baselines) with the target's schedule (warmup, then cosine decay to --min-lr), export each as \
a Hugging Face LlamaForCausalLM checkpoint, and write comparison.parquet with their final \
per-domain validation losses.\n\n\
A mixture is NAME=FILE, where FILE is optimum.parquet or optimum.yaml from `optimize`, a \
mixtures.parquet with one row (or FILE#ID to pick one), the paper's CSV#ID, a regmix YAML, \
or one of the words `prior` (token shares of the shards) and `uniform`. Finished models are \
skipped and unfinished ones resume, as in proxy-train.",
    max_term_width = regmix_core::cli::HELP_WIDTH
)]
pub struct Args {
    /// Shards folder written by tokenize-shard (with manifest.parquet).
    #[arg(long, value_name = "DIR")]
    pub shards: PathBuf,
    /// A mixture to train on, as NAME=FILE (repeatable).
    #[arg(long = "mixture", value_name = "NAME=FILE", required = true)]
    pub mixtures: Vec<String>,
    /// Output folder: <NAME>/ per model and comparison.parquet.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Final learning rate of the cosine decay.
    #[arg(long, default_value_t = 1e-5, value_name = "LR")]
    pub min_lr: f64,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// A named mixture, its weights aligned to the corpus's domains.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: String,
    pub weights: Vec<f64>,
}

/// Resolves `NAME=FILE`.
pub fn resolve(spec: &str, corpus: &Corpus) -> Result<Named> {
    let (name, file) = spec.split_once('=').with_context(|| format!("--mixture {spec:?}: expected NAME=FILE"))?;
    // NAME becomes a folder under --output: nothing that could leave it ("..", "/", a
    // leading dot) and nothing the shell or a Parquet reader would trip on.
    if name.is_empty()
        || name.starts_with('.')
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        bail!("--mixture {spec:?}: NAME must be letters, digits, '_', '-' or '.', and not start with '.'");
    }
    let domains = &corpus.domains;
    let weights = match file {
        "uniform" => vec![1.0 / domains.len() as f64; domains.len()],
        "prior" => {
            let p = Prior::from_manifest(&corpus.dir.join("manifest.parquet"))?;
            let m = Mixtures { domains: p.domains.clone(), ids: vec![0], weights: vec![p.weights.clone()] };
            m.align_to(domains, &corpus.dir.join("manifest.parquet"))?.weights.remove(0)
        }
        _ => {
            let (path, id) = match file.rsplit_once('#') {
                Some((p, id)) => (
                    PathBuf::from(p),
                    Some(id.parse::<u32>().with_context(|| format!("--mixture {spec:?}: {id:?} is not a mixture id"))?),
                ),
                None => (PathBuf::from(file), None),
            };
            read_one(&path, id, domains).with_context(|| format!("--mixture {spec:?}"))?
        }
    };
    let total: f64 = weights.iter().sum();
    if !(total > 0.0) {
        bail!("--mixture {spec:?}: the weights sum to {total}");
    }
    Ok(Named { name: name.to_string(), weights: weights.iter().map(|w| w / total).collect() })
}

fn read_one(path: &Path, id: Option<u32>, domains: &[String]) -> Result<Vec<f64>> {
    let optimum = if path.extension().is_some_and(|e| e == "parquet") { Optimum::read(path).ok() } else { None };
    let m = match optimum {
        Some(o) => Mixtures { domains: o.domains, ids: vec![0], weights: vec![o.weights] },
        None => Mixtures::read_any(path)?,
    };
    let m = m.align_to(domains, path)?;
    match id {
        Some(id) => Ok(m.get(id).with_context(|| format!("{}: no mixture with id {id}", path.display()))?.to_vec()),
        None if m.len() == 1 => Ok(m.weights[0].clone()),
        None => bail!("{} holds {} mixtures; pick one with FILE#ID", path.display(), m.len()),
    }
}

pub fn run(args: &Args) -> Result<()> {
    backends::set_threads(args.train.threads)?;
    let corpus = Corpus::open(&args.shards)?;
    log::info!("read {}: {} domains", args.shards.join("manifest.parquet").display(), corpus.domains.len());
    let named: Vec<Named> = args.mixtures.iter().map(|m| resolve(m, &corpus)).collect::<Result<_>>()?;
    for (i, a) in named.iter().enumerate() {
        if named[..i].iter().any(|b| b.name == a.name) {
            bail!("--mixture: the name {} is given twice", a.name);
        }
    }
    let spec = args.train.spec(corpus.vocab_size, Schedule::Cosine { min_lr: args.min_lr })?;
    log::info!(
        "training {} models of {} params: {} steps of {} tokens",
        named.len(),
        spec.model.n_params(),
        spec.steps(),
        spec.batch_tokens
    );
    let eval = EvalSet::new(&corpus, spec.context(), spec.eval_windows);
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let prov = Provenance::from_env("target-train", env!("CARGO_PKG_VERSION"));
    let mut outcomes: Vec<Outcome> = Vec::new();
    for m in &named {
        let dir = args.output.join(&m.name);
        let mut backend = backends::build(args.train.backend, &spec.model, spec.seed)?;
        log::info!("{}: {}", m.name, describe(&corpus.domains, &m.weights));
        let outcome = train::train(
            backend.as_mut(),
            &Run {
                corpus: &corpus,
                eval: &eval,
                spec: &spec,
                mixture_id: regmix_core::run::named_stream_id(&m.name),
                weights: &m.weights,
                dir: RunDir::new(&dir),
                prov: &prov,
                keep_checkpoint: args.train.keep_checkpoints,
                stop_after: args.train.stop_after,
                hf_dir: Some(dir.join("hf")),
                retrain: args.train.retrain,
            },
        )
        .with_context(|| format!("mixture {}", m.name))?;
        outcomes.push(outcome);
    }
    let path = args.output.join("comparison.parquet");
    write_comparison(&path, &corpus.domains, &eval.evaluated(), &named, &outcomes, &prov)?;
    log::info!("wrote {}", path.display());
    for (m, o) in named.iter().zip(&outcomes) {
        let mean = mean_loss(&o.valid);
        log::info!(
            "{:>16}: {} mean validation loss {}",
            m.name,
            o.status,
            mean.map(|x| format!("{x:.4}")).unwrap_or("-".into())
        );
    }
    Ok(())
}

fn describe(domains: &[String], w: &[f64]) -> String {
    let mut v: Vec<(&String, f64)> = domains.iter().zip(w.iter().copied()).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.iter().take(5).map(|(d, w)| format!("{d} {w:.3}")).collect::<Vec<_>>().join(", ")
}

fn mean_loss(v: &[Option<f64>]) -> Option<f64> {
    let xs: Vec<f64> = v.iter().flatten().copied().collect();
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// `evaluated` (corpus order) marks the domains with validation windows: only those are
/// validation columns.
pub fn write_comparison(
    path: &Path,
    domains: &[String],
    evaluated: &[bool],
    named: &[Named],
    outcomes: &[Outcome],
    prov: &Provenance,
) -> Result<()> {
    let schema = Schema::get("comparison");
    let evals: Vec<usize> = (0..domains.len()).filter(|&d| evaluated[d]).collect();
    let eval_names: Vec<String> = evals.iter().map(|&d| domains[d].clone()).collect();
    let lists = domains_and_eval(domains, &eval_names);
    let mut cols = vec![
        col::str(&named.iter().map(|m| m.name.as_str()).collect::<Vec<_>>()),
        col::u64(outcomes.iter().map(|o| o.tokens).collect()),
        col::str(&outcomes.iter().map(|o| o.status.as_str()).collect::<Vec<_>>()),
    ];
    for d in 0..domains.len() {
        cols.push(col::f64(named.iter().map(|m| m.weights[d]).collect()));
    }
    for &d in &evals {
        cols.push(col::f64_opt(outcomes.iter().map(|o| o.valid[d]).collect()));
    }
    let b = batch(schema, &lists, cols)?;
    write_parquet(path, schema, &lists, &b, &[], prov)?;
    Ok(())
}
