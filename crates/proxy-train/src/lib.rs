//! proxy-train: trains one small model per selected mixture on the shards and writes
//! `<output>/<mixture_id>/metrics.parquet` (schemas/run_metrics.json). Finished runs are
//! skipped, unfinished ones resume from their checkpoint, a diverged run is recorded as such
//! and the others go on.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use regmix_calibrate::Regime;
use regmix_core::Provenance;
use regmix_mixture::io::Mixtures;
use regmix_train::backends;
use regmix_train::cli::TrainArgs;
use regmix_train::data::{Corpus, EvalSet};
use regmix_train::train::{self, Run, RunDir, RunStatus, Schedule};

#[derive(Parser, Debug)]
#[command(
    name = "proxy-train",
    version,
    about = "Train one small proxy model per mixture and record its per-domain validation losses.",
    long_about = "Train one small proxy model per mixture and record its per-domain validation \
losses (the paper's setup: warmup then constant learning rate, AdamW, gradient clipping).\n\n\
Writes <output>/<mixture_id>/metrics.parquet for every run. Runs already finished are \
skipped; unfinished runs resume from their last checkpoint; a run whose loss becomes NaN or \
infinite is recorded as diverged and the others continue.",
    max_term_width = regmix_core::cli::HELP_WIDTH
)]
pub struct Args {
    /// Shards folder written by tokenize-shard (with manifest.parquet).
    #[arg(long, value_name = "DIR")]
    pub shards: PathBuf,
    /// Mixtures to train (mixtures.parquet from sample-mixtures, the paper's CSV, or a
    /// regmix YAML).
    #[arg(long, value_name = "FILE")]
    pub mixtures: PathBuf,
    /// Runs folder: one subfolder per mixture id.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Mixture ids to train, e.g. 0-63 or 0,5,9-12 [default: all].
    #[arg(long, value_name = "LIST", conflicts_with_all = ["array_index", "array_count"])]
    pub ids: Option<String>,
    /// This Slurm array task's index (with --array-count): trains every K-th selected
    /// mixture starting at I.
    #[arg(long, value_name = "I", requires = "array_count")]
    pub array_index: Option<usize>,
    /// Number of array tasks sharing the mixtures.
    #[arg(long, value_name = "K", requires = "array_index")]
    pub array_count: Option<usize>,
    /// Runs trained at the same time, each with its own model (on one GPU: each on its own
    /// stream). For small proxies that leave a GPU idle; on the CPU, divide --threads among
    /// them. Every run's result is the same as when trained alone.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrent_runs: u32,
    /// Repetition matching for a target of T tokens: each domain that target would repeat
    /// (weight · T above its tokens) is drawn from an evenly spread subset of tokens · --tokens
    /// / T, so the proxy repeats it as often as the target would; logged per run.
    #[arg(long, value_name = "T")]
    pub match_epochs_of: Option<u64>,
    /// Decay the learning rate to this by the last step, on a cosine after the warmup (the
    /// target's schedule) [default: no decay, the paper's constant rate].
    #[arg(long, value_name = "LR")]
    pub min_lr: Option<f64>,
    /// A calibration table (calibrate score): whether proxies of these settings ranked its
    /// target-scale mixtures as the targets did is said once at the start [without one: the
    /// published floor of about 15 tokens per parameter is the check].
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// Parses `0-63`, `0,5,9-12`.
pub fn parse_ids(s: &str) -> Result<Vec<u32>> {
    parse_ids_at_most(s, 1 << 24, "a list of ids may name")
}

/// [`parse_ids`], refusing (before allocating) a list of more than `max` ids: `what` says
/// where the bound comes from.
fn parse_ids_at_most(s: &str, max: u64, what: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let mut count: u64 = 0;
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num =
            |x: &str| x.trim().parse::<u32>().with_context(|| format!("--ids: {x:?} in {s:?} is not a mixture id"));
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if a > b {
            bail!("--ids: range {part:?} is backwards");
        }
        count += (b - a) as u64 + 1;
        if count > max {
            bail!("--ids {s:?} names {} mixtures or more, more than the {max} {what}", count);
        }
        out.extend(a..=b);
    }
    if out.is_empty() {
        bail!("--ids {s:?} selects nothing");
    }
    Ok(out)
}

/// The mixture ids this invocation trains, in file order.
pub fn select(all: &[u32], ids: Option<&str>, array: Option<(usize, usize)>) -> Result<Vec<u32>> {
    let mut chosen: Vec<u32> = match ids {
        Some(s) => {
            let want = parse_ids_at_most(s, all.len() as u64, "mixtures in the mixtures file")?;
            for w in &want {
                if !all.contains(w) {
                    bail!("--ids: mixture {w} is not in the mixtures file");
                }
            }
            all.iter().copied().filter(|i| want.contains(i)).collect()
        }
        None => all.to_vec(),
    };
    if let Some((i, k)) = array {
        if k == 0 || i >= k {
            bail!("--array-index {i} must be below --array-count {k}");
        }
        chosen = chosen.into_iter().enumerate().filter(|(n, _)| n % k == i).map(|(_, id)| id).collect();
    }
    Ok(chosen)
}

pub fn run(args: &Args) -> Result<()> {
    backends::set_threads(args.train.threads)?;
    let corpus = Corpus::open(&args.shards)?;
    log::info!(
        "read {}: {} domains, vocabulary {}",
        args.shards.join("manifest.parquet").display(),
        corpus.domains.len(),
        corpus.vocab_size
    );
    let mixtures = Mixtures::read_any(&args.mixtures)?.align_to(&corpus.domains, &args.mixtures)?;
    let schedule = match args.min_lr {
        Some(min_lr) => Schedule::Cosine { min_lr },
        None => Schedule::Constant,
    };
    let mut spec = args.train.spec(corpus.vocab_size, schedule)?;
    if let Some(t) = args.match_epochs_of {
        if t <= spec.tokens {
            bail!("--match-epochs-of {t} must be more than the proxies' --tokens {}: a target that trains no longer repeats nothing more", spec.tokens);
        }
        spec.match_epochs_of = Some(t);
    }
    say_regime(&spec, args.calibration.as_deref())?;
    let ids = select(&mixtures.ids, args.ids.as_deref(), args.array_index.zip(args.array_count))?;
    log::info!(
        "read {}: {} mixtures, training {} ({} params, {} steps of {} tokens, micro-batch {})",
        args.mixtures.display(),
        mixtures.len(),
        ids.len(),
        spec.model.n_params(),
        spec.steps(),
        spec.batch_tokens,
        spec.micro_batch
    );
    let eval = EvalSet::new(&corpus, spec.context(), spec.eval_windows);
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let prov = Provenance::from_env("proxy-train", env!("CARGO_PKG_VERSION"));
    // Workers take the next mixture in order; each trains on a model of its own.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let diverged = std::sync::Mutex::new(Vec::new());
    let worker = || -> Result<()> {
        loop {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(id) = ids.get(n) else { return Ok(()) };
            let weights = mixtures.get(*id).expect("selected from the file");
            let run = Run {
                corpus: &corpus,
                eval: &eval,
                spec: &spec,
                mixture_id: *id as u64,
                weights,
                dir: RunDir::of(&args.output, *id as u64),
                prov: &prov,
                keep_checkpoint: args.train.keep_checkpoints,
                stop_after: args.train.stop_after,
                hf_dir: None,
                retrain: args.train.retrain,
            };
            // A finished run is skipped before a backend opens: a rerun needs no GPU.
            let outcome = match train::already_ended(&run)? {
                Some(done) => Ok(done),
                None => {
                    let mut backend = backends::build(args.train.backend, &spec.model, spec.seed)?;
                    log::info!("mixture {id} ({}/{}) on {}", n + 1, ids.len(), backend.describe());
                    train::train(backend.as_mut(), &run)
                }
            }
            .with_context(|| format!("mixture {id}"))?;
            if outcome.status == RunStatus::Diverged {
                diverged.lock().expect("no worker panics holding it").push(*id);
            }
        }
    };
    let workers = (args.concurrent_runs as usize).min(ids.len()).max(1);
    if workers == 1 {
        worker()?;
    } else {
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers).map(|_| scope.spawn(worker)).collect();
            handles.into_iter().map(|h| h.join().expect("a training worker panicked")).collect()
        });
        results.into_iter().collect::<Result<Vec<()>>>()?;
    }
    let mut diverged = diverged.into_inner().expect("workers finished");
    diverged.sort();
    if !diverged.is_empty() {
        log::warn!("{} runs diverged: {diverged:?}", diverged.len());
    }
    log::info!("wrote {} runs under {}", ids.len(), args.output.display());
    Ok(())
}

/// The guardrail, said once: do proxies of `spec` rank mixtures as the target does, by the
/// calibration table given or by the published tokens-per-parameter floor?
fn say_regime(spec: &train::TrainSpec, calibration: Option<&std::path::Path>) -> Result<()> {
    let train = serde_json::to_value(spec).context("the training settings serialise")?;
    let tokens = spec.steps() * (spec.sequences_per_step() * spec.context()) as u64;
    let regime = Regime::assess(&train, tokens, spec.model.n_params() as u64, calibration)?;
    if regime.ranks_well() {
        log::info!("{}", regime.message());
    } else {
        log::warn!("{}", regime.message());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_and_array_shares_partition_the_mixtures() {
        assert_eq!(parse_ids("0-3,7").unwrap(), vec![0, 1, 2, 3, 7]);
        assert!(parse_ids("3-1").is_err());
        assert!(parse_ids("x").unwrap_err().to_string().contains("\"x\""));
        let all: Vec<u32> = (0..10).collect();
        let mut seen = Vec::new();
        for i in 0..3 {
            seen.extend(select(&all, None, Some((i, 3))).unwrap());
        }
        seen.sort();
        assert_eq!(seen, all);
        assert!(select(&all, Some("11"), None).is_err());
        let e = select(&all, Some("0-4294967295"), None).unwrap_err().to_string();
        assert!(e.contains("names 4294967296 mixtures or more, more than the 10 mixtures in the mixtures file"), "{e}");
        assert!(select(&all, None, Some((3, 3))).is_err());
    }
}
