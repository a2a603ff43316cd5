//! `sample-mixtures`: draw the proxy mixtures (or import published ones) and write
//! `mixtures.parquet`, optionally one regmix YAML per mixture.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use regmix_core::{progress, Provenance};
use regmix_mixture::io::write_yaml_dir;
use regmix_mixture::{Mixtures, Prior, Sampler, SamplerParams};

/// Draw proxy mixtures with the RegMix Dirichlet sampler.
///
/// The prior is each domain's share of training tokens (from the shard manifest, or a
/// prior.json); draws come from Dirichlet(prior^temperature · strength) with one of 15
/// log-spaced strengths, are rejected above each domain's availability bound
/// min(1, max_epochs · tokens / target_tokens), snapped to the min-weight grid, deduplicated,
/// and COUNT are kept at random. Same seed, same output.
#[derive(Parser, Debug, Clone)]
#[command(name = "sample-mixtures", version, term_width = regmix_core::cli::HELP_WIDTH)]
pub struct Args {
    /// Shard manifest (manifest.parquet from tokenize-shard): the prior is each domain's share of training tokens.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prior", "import"])]
    pub manifest: Option<PathBuf>,
    /// prior.json instead of a manifest: {"tokens": {domain: n}}, {"weights": {domain: w}} or {domain: w}.
    #[arg(long, value_name = "FILE", conflicts_with = "import")]
    pub prior: Option<PathBuf>,
    /// Import published mixtures instead of sampling: the paper's mixture CSV, regmix YAML configs (one mixture each, ids in order), or a mixtures.parquet.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub import: Vec<PathBuf>,
    /// How many mixtures to draw.
    #[arg(long, value_name = "N", required_unless_present = "import")]
    pub count: Option<usize>,
    /// Where to write mixtures.parquet.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Prior temperature: q = p^temperature, renormalised (below 1 flattens the prior).
    #[arg(long, default_value_t = 0.5)]
    pub temperature: f64,
    /// Smallest Dirichlet concentration (strength) multiplying the tempered prior.
    #[arg(long, default_value_t = 0.1)]
    pub min_strength: f64,
    /// Largest Dirichlet concentration.
    #[arg(long, default_value_t = 5.0)]
    pub max_strength: f64,
    /// Weights below this become 0; the rest are rounded to multiples of it.
    #[arg(long, default_value_t = 2e-4)]
    pub min_weight: f64,
    /// Epochs of a domain the target run may use: bounds each weight by max_epochs · tokens / target_tokens.
    #[arg(long, default_value_t = 15.0)]
    pub max_epochs: f64,
    /// Tokens the target model will train on (default: all training tokens, the paper's bound min(1, 15 p)).
    #[arg(long, value_name = "T")]
    pub target_tokens: Option<u64>,
    /// Draw COUNT × this many candidates before deduplicating and choosing.
    #[arg(long, default_value_t = 100)]
    pub oversample: usize,
    /// Also write one regmix YAML config per mixture into this folder (n<id>.yaml, the paper's
    /// format). The folder is replaced whole: it must be new, empty, or one this flag wrote.
    #[arg(long, value_name = "DIR")]
    pub write_yaml: Option<PathBuf>,
    /// Key prefix of the YAML weights (the paper's Pile configs use train_the_pile_).
    #[arg(long, default_value = "train_", value_name = "PREFIX")]
    pub yaml_prefix: String,
}

pub fn run(args: &Args) -> Result<()> {
    let prov = Provenance::from_env("sample-mixtures", env!("CARGO_PKG_VERSION"));
    let mut inputs: Vec<(&str, &std::path::Path)> = Vec::new();
    inputs.extend(args.manifest.as_deref().map(|p| ("--manifest", p)));
    inputs.extend(args.prior.as_deref().map(|p| ("--prior", p)));
    inputs.extend(args.import.iter().map(|p| ("--import", p.as_path())));
    regmix_core::atomic::refuse_overlap(&args.output, "--output", &inputs)?;
    // The YAML folder is an output too: it may not be, hold or lie in an input or --output,
    // and it replaces only an empty folder or one of ours; known before any work is done.
    if let Some(dir) = &args.write_yaml {
        inputs.push(("--output", args.output.as_path()));
        regmix_core::atomic::refuse_overlap(dir, "--write-yaml", &inputs)?;
    }
    let _lock = regmix_core::lock::Lock::output(&args.output, &args.output.display().to_string())?;
    let yaml = match &args.write_yaml {
        Some(dir) => {
            let lock =
                regmix_core::lock::Lock::output(dir, &format!("{} (sample-mixtures' YAML folder)", dir.display()))?;
            let staged = regmix_core::atomic::OutputDir::create_owned(
                dir,
                "a folder of sample-mixtures' YAML configs",
                is_yaml_folder,
            )?;
            Some((dir, lock, staged))
        }
        None => None,
    };
    let (mixtures, description) = if !args.import.is_empty() {
        import(&args.import)?
    } else {
        let prior = Prior::load(args.manifest.as_deref(), args.prior.as_deref())
            .context("loading the prior (give --manifest or --prior)")?;
        log::info!(
            "prior over {} domains from {}",
            prior.domains.len(),
            args.manifest.as_ref().or(args.prior.as_ref()).unwrap().display()
        );
        let params = SamplerParams {
            count: args.count.unwrap(),
            seed: args.seed,
            temperature: args.temperature,
            min_strength: args.min_strength,
            max_strength: args.max_strength,
            min_weight: args.min_weight,
            max_epochs: args.max_epochs,
            target_tokens: args.target_tokens,
            oversample: args.oversample,
            ..Default::default()
        };
        let sampler = Sampler::new(prior, params)?;
        for ((d, q), b) in sampler.prior.domains.iter().zip(&sampler.tempered).zip(&sampler.bounds) {
            log::info!("  {d:<24} tempered prior {q:.4}  bound {b:.4}");
        }
        let pb = progress::bar(1, "sampling");
        let (weights, stats) = sampler.sample()?;
        pb.finish_and_clear();
        log::info!(
            "{} draws, {} rejected by the bounds, {} near-duplicates, {} kept",
            stats.draws,
            stats.rejected,
            stats.duplicates,
            stats.kept
        );
        let ids = (0..weights.len() as u32).collect();
        (Mixtures { domains: sampler.prior.domains.clone(), ids, weights }, sampler.describe(&stats))
    };
    mixtures.write_parquet(&args.output, &description, &prov)?;
    log::info!(
        "wrote {} mixtures over {} domains to {}",
        mixtures.len(),
        mixtures.domains.len(),
        args.output.display()
    );
    if let Some((dir, _lock, staged)) = yaml {
        let extra = [("seed".to_string(), args.seed.to_string())];
        write_yaml_dir(&mixtures, staged.path(), &args.yaml_prefix, &extra)?;
        let marker = serde_json::json!({"producer": "sample-mixtures", "mixtures": args.output.display().to_string(), "count": mixtures.len()});
        regmix_core::atomic::write_bytes(staged.path().join(YAML_MARKER), marker.to_string().as_bytes())?;
        staged.commit()?;
        log::info!("wrote {} regmix YAML configs to {}", mixtures.len(), dir.display());
    }
    Ok(())
}

/// The marker `--write-yaml` leaves in its folder: only a folder with it (or an empty one) is
/// replaced by a later `--write-yaml`.
pub const YAML_MARKER: &str = ".sample-mixtures.json";

/// Whether `dir` holds sample-mixtures' YAML configs: it has [`YAML_MARKER`] of this producer,
/// or (written before the marker existed) it holds nothing but `n<id>.yaml` files that end
/// with the `seed:` line sample-mixtures appends. A folder of anything else, the paper's
/// configs included, is not ours to replace.
pub fn is_yaml_folder(dir: &Path) -> bool {
    if let Ok(text) = std::fs::read_to_string(dir.join(YAML_MARKER)) {
        return serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v["producer"] == "sample-mixtures");
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return false };
    rd.into_iter().all(|e| {
        let Ok(e) = e else { return false };
        let name = e.file_name().to_string_lossy().into_owned();
        let numbered = name
            .strip_prefix('n')
            .and_then(|n| n.strip_suffix(".yaml"))
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
        let ours = |t: &str| {
            t.starts_with("train:\n")
                && t.trim_end()
                    .rsplit('\n')
                    .next()
                    .is_some_and(|l| l.strip_prefix("seed: ").is_some_and(|v| v.parse::<u64>().is_ok()))
        };
        numbered
            && e.file_type().is_ok_and(|t| t.is_file())
            && std::fs::read_to_string(e.path()).is_ok_and(|t| ours(&t))
    })
}

fn import(files: &[PathBuf]) -> Result<(Mixtures, serde_json::Value)> {
    let mut all: Option<Mixtures> = None;
    for f in files {
        let m = Mixtures::read_any(f).with_context(|| format!("importing {}", f.display()))?;
        log::info!("read {} mixtures from {}", m.len(), f.display());
        all = Some(match all {
            None => m,
            Some(mut acc) => {
                if acc.domains != m.domains {
                    bail!("{}: domains {:?} differ from the first file's {:?}", f.display(), m.domains, acc.domains);
                }
                // YAML configs carry no id: number them in order after what came before.
                let next = acc.ids.iter().max().map(|x| x + 1).unwrap_or(0);
                let is_yaml = matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
                for (k, (id, w)) in m.ids.iter().zip(m.weights).enumerate() {
                    acc.ids.push(if is_yaml { next + k as u32 } else { *id });
                    acc.weights.push(w);
                }
                acc
            }
        });
    }
    let m = all.expect("clap requires at least one file");
    let desc = serde_json::json!({"imported_from": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>()});
    Ok((m, desc))
}
