//! `optimize`: search the fitted regression for the best mixture.
//!
//! - [`search`]: simulate mixtures from Dirichlet(prior × strength), score them, keep the
//!   top-k, average them (the paper's rule).
//! - [`constraints`]: the caps and the minimum weight, and [`constraints::enforce`], which
//!   makes the optimum satisfy them.
//! - [`bootstrap`]: refits on resampled runs: the spread of the weights and of the gain.
//! - [`kl`]: the pull toward the prior (`--kl-to-prior`) and its choice on held-out runs.
//! - [`output`]: the files written.
//!
//! The recommendation (`--recommend`): the optimum, or the prior when the optimum's gain is not
//! clear of its bootstrap spread or a calibration (`--calibration`) says the fit's proxies rank
//! mixtures wrongly; it is written into every output.

pub mod bootstrap;
pub mod constraints;
pub mod kl;
pub mod output;
pub mod search;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use regmix_calibrate::Regime;
use regmix_core::Provenance;
use regmix_mixture::{Choice, Gain, Optimum, Prior, Recommendation};
use regmix_regress::{predict_many, Model, SavedFit, Scorer};
use regmix_spec::RunSettings;

use crate::search::{optimum_of, search, Found, Kl, Space};

/// Search the fitted regression for the best mixture.
///
/// Simulates SAMPLES mixtures from Dirichlet(prior × strength) in chunks over all cores,
/// scores them with the fitted model, keeps the TOP_K with the lowest predicted target, and
/// returns their mean. Constraints (availability caps max_epochs · tokens / target_tokens,
/// --max-weight, --min-weight) hold in the optimum itself. --bootstrap refits the model on
/// resampled runs and reports each weight's spread.
#[derive(Parser, Debug, Clone)]
#[command(name = "optimize", version, term_width = regmix_core::cli::HELP_WIDTH)]
pub struct Args {
    /// The folder written by fit.
    #[arg(long, value_name = "DIR")]
    pub fit: PathBuf,
    /// Shard manifest: the prior is each domain's share of training tokens.
    #[arg(long, value_name = "FILE", conflicts_with = "prior")]
    pub manifest: Option<PathBuf>,
    /// prior.json instead of a manifest (see sample-mixtures --help).
    #[arg(long, value_name = "FILE")]
    pub prior: Option<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Mixtures to simulate.
    #[arg(long, default_value_t = 1_000_000)]
    pub samples: u64,
    /// How many of the best to average.
    #[arg(long, default_value_t = 100)]
    pub top_k: usize,
    /// Dirichlet concentration multiplying the prior.
    #[arg(long, default_value_t = 1.0)]
    pub strength: f64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Tokens the target model will train on (with --max-epochs: caps each domain at max_epochs · tokens / target_tokens).
    #[arg(long, value_name = "T", requires = "max_epochs")]
    pub target_tokens: Option<u64>,
    /// Epochs of a domain the target run may use.
    #[arg(long, value_name = "K")]
    pub max_epochs: Option<f64>,
    /// Weights below this become 0 in the optimum.
    #[arg(long, default_value_t = 0.0)]
    pub min_weight: f64,
    /// A per-domain maximum, DOMAIN=X; repeatable.
    #[arg(long, value_name = "DOMAIN=X")]
    pub max_weight: Vec<String>,
    /// Refit on this many bootstrap resamples of the runs and report each weight's spread.
    #[arg(long, default_value_t = 0)]
    pub bootstrap: usize,
    /// Mixtures drawn and scored at once by one thread (memory is about threads × chunk ×
    /// domains × 8 bytes, whatever SAMPLES is).
    #[arg(long, default_value_t = 1024)]
    pub chunk: usize,
    /// Prefix of the paths in the Megatron-LM --data-path list (path = prefix + domain). When
    /// the export it names is here, its export-megatron markers must match the fit's domains
    /// and shards; a prefix of which nothing is here (a cluster path) is not checked.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub megatron_prefix: String,
    /// Add λ·KL(w ‖ prior) to every prediction: a pull toward the prior. A number λ ≥ 0, or
    /// `auto`: the λ of a grid whose objective best ranks the runs of --holdout.
    #[arg(long, value_name = "LAMBDA|auto")]
    pub kl_to_prior: Option<String>,
    /// Held-out runs (a dataset file, e.g. `collect --targets` of target runs no fit read)
    /// that --kl-to-prior auto chooses λ on.
    #[arg(long, value_name = "FILE")]
    pub holdout: Option<PathBuf>,
    /// What to recommend training the target on: `auto` (the optimum only when its gain over
    /// the prior is clear of its bootstrap spread and no calibration says the proxies rank
    /// wrongly; else the prior), or `optimum` or `prior` whatever the evidence.
    #[arg(long, value_enum, default_value_t = Recommend::Auto)]
    pub recommend: Recommend,
    /// A calibration table (calibrate score): whether proxies of the fit's settings ranked its
    /// target-scale mixtures as the targets did [without one: the published floor of about 15
    /// tokens per parameter is checked, and only warned about].
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
}

/// `--recommend`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recommend {
    Auto,
    Optimum,
    Prior,
}

/// The most bootstrap refits --bootstrap asks for (each is a fit and a search).
pub const MAX_BOOTSTRAP: usize = 10_000;

/// Checks the flags no type can: finite, positive, in range.
fn check(args: &Args) -> Result<()> {
    if !(args.strength.is_finite() && args.strength > 0.0) {
        bail!("--strength {} must be a positive number", args.strength);
    }
    if !(0.0..1.0).contains(&args.min_weight) {
        bail!("--min-weight {} must be in [0, 1)", args.min_weight);
    }
    if args.samples == 0 || args.top_k == 0 {
        bail!("--samples and --top-k must be positive");
    }
    if args.bootstrap > MAX_BOOTSTRAP {
        bail!("--bootstrap {}: at most {MAX_BOOTSTRAP} refits", args.bootstrap);
    }
    if args.top_k as u64 > args.samples {
        bail!("--top-k {} is more than the {} mixtures simulated (--samples)", args.top_k, args.samples);
    }
    if let Some(k) = args.max_epochs {
        if !(k.is_finite() && k > 0.0) {
            bail!("--max-epochs {k} must be a positive number");
        }
    }
    match args.kl_to_prior.as_deref() {
        None if args.holdout.is_some() => bail!("--holdout is read only by --kl-to-prior auto"),
        Some("auto") if args.holdout.is_none() => {
            bail!("--kl-to-prior auto needs --holdout FILE: held-out runs to choose λ on")
        }
        Some("auto") | None => {}
        Some(l) => {
            let v: f64 =
                l.parse().map_err(|_| anyhow::anyhow!("--kl-to-prior {l:?}: expected a number λ ≥ 0 or `auto`"))?;
            if !(v.is_finite() && v >= 0.0) {
                bail!("--kl-to-prior {l}: λ must be a finite number ≥ 0");
            }
            if args.holdout.is_some() {
                bail!("--holdout is read only by --kl-to-prior auto, not with a given λ");
            }
        }
    }
    Ok(())
}

/// The KL term of the objective, if asked for, and how λ was chosen.
fn kl_term(args: &Args, saved: &SavedFit, prior: &[f64]) -> Result<Option<(Kl, Option<kl::Choice>)>> {
    let Some(l) = args.kl_to_prior.as_deref() else { return Ok(None) };
    if l == "auto" {
        let c = kl::choose(saved, prior, args.holdout.as_ref().expect("checked"))?;
        for (lam, s) in &c.table {
            log::info!(
                "--kl-to-prior auto: λ = {lam:<6} ranks the {} held-out runs of {} with Spearman {:.2}",
                c.rows,
                c.holdout.display(),
                s * 100.0
            );
        }
        log::info!("--kl-to-prior auto: chose λ = {}", c.lambda);
        return Ok(Some((Kl { lambda: c.lambda, prior: prior.to_vec() }, Some(c))));
    }
    Ok(Some((Kl { lambda: l.parse()?, prior: prior.to_vec() }, None)))
}

/// Whether `dir` holds an optimum of ours: an optimum.parquet of the optimum contract (any
/// version optimize reads). Only such a folder (or an empty one) is replaced by `--output`.
pub fn is_optimum_folder(dir: &Path) -> bool {
    regmix_mixture::Optimum::read(&dir.join(output::FILES[0])).is_ok()
}

/// What the search holds in memory at once, in bytes: (the blocks of `--chunk` mixtures each
/// thread draws and scores, the top-k heaps: one per thread and the merged one).
pub fn search_bytes(threads: usize, chunk: usize, top_k: usize, domains: usize) -> (u128, u128) {
    let (t, c, k, d) = (threads.max(1) as u128, chunk.max(1) as u128, top_k as u128, domains as u128);
    let block = t * c * (8 * d + 8 + 8);
    let heaps = (t + 1) * (k + 1) * (std::mem::size_of::<search::Cand>() as u128 + 8 * d);
    (block, heaps)
}

/// The machine's memory (MemTotal of /proc/meminfo), if it can be read.
fn memory_total() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u128 = text.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses a search whose `--chunk` or `--top-k` would not fit in `have` bytes, before anything
/// is allocated (`--top-k 1e9` and `--chunk 1e9` aborted in failed allocations of 16–40 GB).
pub fn check_memory(args: &Args, domains: usize, threads: usize, have: Option<u128>) -> Result<()> {
    let Some(have) = have else { return Ok(()) };
    // The search never draws a block larger than --samples.
    let chunk = (args.chunk as u64).min(args.samples) as usize;
    let (block, heaps) = search_bytes(threads, chunk, args.top_k, domains);
    if block + heaps > have {
        let gb = |b: u128| b as f64 / 1e9;
        let (flag, value, bytes) =
            if heaps >= block { ("--top-k", args.top_k, heaps) } else { ("--chunk", args.chunk, block) };
        bail!(
            "{flag} {value} would take about {:.1} GB ({} bytes; --top-k {} keeps {:.1} GB of candidates and --chunk {} {:.1} GB of \
             mixtures, on {threads} threads and {domains} domains), and this machine has {:.1} GB: give a smaller {flag}",
            gb(bytes),
            bytes,
            args.top_k,
            gb(heaps),
            args.chunk,
            gb(block),
            gb(have)
        );
    }
    Ok(())
}

/// `--manifest` must describe the data the fit's runs trained on: the same domains (a manifest
/// with one more domain gave a prior that did not sum to 1 over the fit's domains), and the
/// tokenizer the fit's dataset records (`regmix.run_settings.tokenizer_sha256`, when the dataset
/// is readable and records one; imported datasets do not).
fn check_manifest(manifest: &Path, prior: &Prior, saved: &SavedFit) -> Result<()> {
    let mut fit_doms = saved.domains.clone();
    fit_doms.sort();
    let mut man_doms = prior.domains.clone();
    man_doms.sort();
    if fit_doms != man_doms {
        let extra: Vec<&str> = man_doms.iter().filter(|d| !fit_doms.contains(d)).map(String::as_str).collect();
        let missing: Vec<&str> = fit_doms.iter().filter(|d| !man_doms.contains(d)).map(String::as_str).collect();
        let mut what = Vec::new();
        if !extra.is_empty() {
            what.push(format!("domains the fit does not have: {}", extra.join(", ")));
        }
        if !missing.is_empty() {
            what.push(format!("no domain {} of the fit", missing.join(", ")));
        }
        bail!(
            "--manifest {}: its domains are not the fit's ({}): it has {}; give the manifest of the shards the fit's runs trained on",
            manifest.display(),
            fit_doms.join(", "),
            what.join(", and ")
        );
    }
    let (_, md) = regmix_core::table::check_parquet(manifest, regmix_core::schema::Schema::get("shard_manifest"))?;
    let Some(tokenizer) = md.get("regmix.tokenizer_sha256") else {
        bail!("--manifest {}: metadata key regmix.tokenizer_sha256 missing", manifest.display());
    };
    let Ok(t) = regmix_core::table::read_parquet(&saved.dataset, regmix_core::schema::Schema::get("dataset")) else {
        log::info!(
            "{}: the fit's dataset is not readable here: the manifest's tokenizer is not checked against it",
            saved.dataset.display()
        );
        return Ok(());
    };
    let settings: Option<RunSettings> = t.json_metadata(regmix_core::keys::RUN_SETTINGS)?;
    match settings.as_ref().map(|s| s.tokenizer_sha256.as_str()) {
        Some(fit_tok) if fit_tok != tokenizer => bail!(
            "--manifest {}: its shards were tokenized with tokenizer sha256 {}, but the fit's runs ({}) trained on tokenizer sha256 {}: \
             give the manifest of the shards the fit's runs trained on",
            manifest.display(),
            &tokenizer[..12.min(tokenizer.len())],
            saved.dataset.display(),
            &fit_tok[..12.min(fit_tok.len())]
        ),
        Some(_) => {}
        None => log::info!("{}: records no tokenizer (imported results): the manifest's tokenizer is not checked", saved.dataset.display()),
    }
    Ok(())
}

/// `--megatron-prefix` must name an export of the data the fit's runs trained on: when the
/// export is here, its markers are checked against the fit's domains and the shards and
/// tokenizer its dataset records (`regmix_core::megatron::check_prefix`); a prefix of which
/// nothing is here (a path on the cluster) is said once not to be checked.
fn check_megatron_prefix(args: &Args, saved: &SavedFit) -> Result<()> {
    let prefix = args.megatron_prefix.as_str();
    if prefix.is_empty() {
        return Ok(());
    }
    // A dataset not on this machine checks nothing; one that is must have readable settings.
    let settings: Option<RunSettings> =
        match regmix_core::table::read_parquet(&saved.dataset, regmix_core::schema::Schema::get("dataset")) {
            Ok(t) => t.json_metadata(regmix_core::keys::RUN_SETTINGS)?,
            Err(_) => None,
        };
    let shards = settings.as_ref().map(|s| s.shards_sha256.clone());
    let tokenizer = settings.as_ref().map(|s| s.tokenizer_sha256.clone());
    let source = format!("the fit's dataset {}", saved.dataset.display());
    let want = regmix_core::megatron::Expected {
        domains: &saved.domains,
        shards_sha256: shards.as_deref(),
        tokenizer_sha256: tokenizer.as_deref(),
        source: &source,
    };
    match regmix_core::megatron::check_prefix(prefix, &want)? {
        regmix_core::megatron::Checked::Matched { folder } => {
            let what = if shards.is_some() { "its domains and the shards its runs trained on" } else { "its domains (the dataset records no shards)" };
            log::info!("--megatron-prefix {prefix}: the export in {} matches the fit ({what})", folder.display());
        }
        regmix_core::megatron::Checked::NotHere => log::warn!(
            "--megatron-prefix {prefix}: no {prefix}<domain>.bin here (a path on the cluster?): the export it names is not checked against the fit"
        ),
    }
    Ok(())
}

pub fn run(args: &Args) -> Result<()> {
    check(args)?;
    let prov = Provenance::from_env("optimize", env!("CARGO_PKG_VERSION"));
    let mut inputs: Vec<(&str, &Path)> = vec![("--fit", args.fit.as_path())];
    inputs.extend(args.manifest.as_deref().map(|p| ("--manifest", p)));
    inputs.extend(args.prior.as_deref().map(|p| ("--prior", p)));
    inputs.extend(args.holdout.as_deref().map(|p| ("--holdout", p)));
    inputs.extend(args.calibration.as_deref().map(|p| ("--calibration", p)));
    regmix_core::atomic::refuse_overlap(&args.output, "--output", &inputs)?;
    let _lock =
        regmix_core::lock::Lock::output(&args.output, &format!("{} (optimize's output)", args.output.display()))?;
    // Only an empty folder or an earlier optimum is replaced, and that is known before any
    // work is done; the files are staged and swapped in whole.
    let staged = regmix_core::atomic::OutputDir::create_owned(&args.output, "an optimum", is_optimum_folder)?;
    let saved = SavedFit::load(&args.fit)?;
    check_memory(args, saved.domains.len(), rayon::current_num_threads(), memory_total())?;
    let prior = Prior::load(args.manifest.as_deref(), args.prior.as_deref())?;
    if let Some(m) = &args.manifest {
        check_manifest(m, &prior, &saved)?;
    }
    check_megatron_prefix(args, &saved)?;
    let doms = &saved.domains;
    // The prior in the fit's domain order.
    let pos = |d: &String| {
        prior
            .domains
            .iter()
            .position(|x| x == d)
            .with_context(|| format!("domain `{d}` of the fit is not in the prior"))
    };
    let idx: Vec<usize> = doms.iter().map(pos).collect::<Result<_>>()?;
    let aligned = Prior {
        domains: doms.clone(),
        weights: idx.iter().map(|&i| prior.weights[i]).collect(),
        tokens: prior.tokens.as_ref().map(|t| idx.iter().map(|&i| t[i]).collect()),
    };
    let p = aligned.weights.clone();
    let caps = constraints::caps(args, &aligned)?;
    let alpha: Vec<f64> = p.iter().map(|x| x * args.strength).collect();
    let kl = kl_term(args, &saved, &p)?;
    let space = Space {
        alpha: &alpha,
        caps: &caps,
        samples: args.samples,
        block: args.chunk,
        top_k: args.top_k,
        seed: args.seed,
        kl: kl.as_ref().map(|(k, _)| k),
    };
    let started = std::time::Instant::now();
    let Found { top, feasible, sample_s, score_s } = search(&Scorer::new(&saved.model)?, &space, 0);
    let secs = started.elapsed().as_secs_f64();
    log::info!(
        "scored {} of {} simulated mixtures (the rest broke a cap) in {:.1}s: {:.0} mixtures/s on {} threads \
         ({:.0}% of thread time drawing, {:.0}% scoring)",
        feasible,
        args.samples,
        secs,
        args.samples as f64 / secs,
        rayon::current_num_threads(),
        100.0 * sample_s / (sample_s + score_s).max(1e-12),
        100.0 * score_s / (sample_s + score_s).max(1e-12)
    );
    if top.is_empty() {
        bail!("no simulated mixture satisfied the caps; raise --samples or relax the constraints");
    }
    if top.len() < args.top_k {
        log::warn!(
            "only {} simulated mixtures satisfied the caps: the optimum averages {}, not --top-k {}",
            top.len(),
            top.len(),
            args.top_k
        );
    }
    let w = optimum_of(&top, &caps, args.min_weight)?;
    // The same model at the prior: how much the search claims to gain over doing nothing.
    let pred = predict_many(&saved.model, &[w.clone(), p.clone()])?;
    let (predicted, predicted_prior) = (pred[0], pred[1]);
    let spread = if args.bootstrap > 0 {
        Some(bootstrap::bootstrap(&saved, &space, args.min_weight, &w, &p, args.bootstrap)?)
    } else {
        None
    };
    let gain = Gain {
        prior: predicted_prior,
        gain: predicted_prior - predicted,
        std: spread.as_ref().map(|s| s.gain_std),
        win_share: spread.as_ref().map(|s| s.win_share),
    };
    for (j, d) in doms.iter().enumerate() {
        let sd = spread.as_ref().map(|s| format!(" ± {:.4}", s.weight_std[j])).unwrap_or_default();
        log::info!("  {d:<24} {:.4}{sd}   (prior {:.4}, cap {:.4})", w[j], p[j], caps[j]);
    }
    log::info!("predicted {} at the optimum: {predicted:.4}", saved.target.expr);
    log::info!("{}", gain.describe());
    if !gain.is_clear() {
        let more = match &saved.model {
            Model::TargetLaw(_) => "more runs at the target's scale would tell",
            _ => "more or longer proxy runs would tell",
        };
        log::warn!(
            "the regression does not clearly prefer the optimum to the prior (gain within two bootstrap \
             standard deviations, or not predicted in every refit): {more}"
        );
    }
    // A horizon model: the same search at the proxies' own horizon, beside it, so the shift the
    // horizon makes is visible.
    let at_proxies = match &saved.model {
        Model::Horizon(h) => {
            let near = Model::Horizon(Box::new(h.at(h.t_ref as u64)));
            let found = search(&Scorer::new(&near)?, &space, 0);
            let wp = optimum_of(&found.top, &caps, args.min_weight)?;
            let pred = predict_many(&near, &[wp.clone(), p.clone()])?;
            log::info!("at the proxies' horizon ({} tokens) the same model's optimum is:", h.t_ref as u64);
            for (j, d) in doms.iter().enumerate() {
                log::info!("  {d:<24} {:.4}   (at {} tokens: {:.4})", wp[j], h.at_tokens, w[j]);
            }
            Some(output::AtProxies {
                tokens: h.t_ref as u64,
                weights: wp,
                predicted: pred[0],
                predicted_prior: pred[1],
            })
        }
        _ => None,
    };
    let regime = proxies_regime(&saved, args.calibration.as_deref())?;
    let recommendation = recommend(args.recommend, &gain, regime.as_ref());
    match recommendation.choice {
        Choice::Optimum => log::info!("recommendation: train the target on the optimum ({})", recommendation.reason),
        Choice::Prior => log::warn!("recommendation: train the target on the prior ({})", recommendation.reason),
    }
    let optimum = Optimum {
        domains: doms.clone(),
        weights: w,
        weight_std: spread.as_ref().map(|s| s.weight_std.clone()),
        predicted,
        predicted_std: spread.as_ref().map(|s| s.predicted_std),
        gain,
        target: saved.target.expr.clone(),
        prior: p,
        recommendation,
    };
    let kl_json = kl.as_ref().map(|(k, c)| {
        serde_json::json!({
            "lambda": k.lambda,
            "kl_at_optimum": Kl::divergence(&optimum.prior, &optimum.weights),
            "chosen_on": c.as_ref().map(|c| c.holdout.display().to_string()),
            "grid": c.as_ref().map(|c| c.table.iter().map(|(l, s)| serde_json::json!({"lambda": l, "holdout_spearman": s})).collect::<Vec<_>>()),
        })
    });
    output::write(args, staged, &optimum, &top, &caps, at_proxies.as_ref(), kl_json, &prov)
}

/// What is known of the fit's proxies (the settings its dataset's runs recorded): the
/// guardrail, said once. None when the dataset is gone or was imported without settings.
fn proxies_regime(saved: &SavedFit, calibration: Option<&Path>) -> Result<Option<Regime>> {
    if let Model::TargetLaw(t) = &saved.model {
        log::info!(
            "the model is a target law fitted on {} runs at the target's scale (left-one-mixture-out Spearman {:.2}): \
             the proxies gave only which domain helps which, so their regime is not the ranking's",
            t.x.len(),
            saved.cv_spearman * 100.0
        );
        return Ok(None);
    }
    let Ok(t) = regmix_core::table::read_parquet(&saved.dataset, regmix_core::schema::Schema::get("dataset")) else {
        log::info!(
            "{}: the fit's dataset is not readable here: its proxies' settings are not checked",
            saved.dataset.display()
        );
        return Ok(None);
    };
    let settings: Option<RunSettings> = t.json_metadata(regmix_core::keys::RUN_SETTINGS)?;
    let tokens = t.u64("tokens")?.values().iter().copied().max().unwrap_or(0);
    let regime = Regime::of_run_settings(settings.as_ref(), tokens, calibration)
        .with_context(|| saved.dataset.display().to_string())?;
    match &regime {
        None => log::info!(
            "{}: imported results without training settings: the proxies' regime is not checked",
            saved.dataset.display()
        ),
        Some(r) if r.ranks_well() => log::info!("{}", r.message()),
        Some(r) => log::warn!("{}", r.message()),
    }
    Ok(regime)
}

/// The recommendation `--recommend` asks for, with its reason.
pub fn recommend(how: Recommend, gain: &Gain, regime: Option<&Regime>) -> Recommendation {
    let auto = match regime {
        Some(r @ Regime::Calibrated { .. }) if !r.ranks_well() => Recommendation {
            choice: Choice::Prior,
            reason: format!(
                "the calibration says these proxies do not rank mixtures as the target does: {}",
                r.message()
            ),
        },
        _ => Recommendation::from_gain(gain),
    };
    match how {
        Recommend::Auto => auto,
        Recommend::Optimum => Recommendation {
            choice: Choice::Optimum,
            reason: format!("--recommend optimum (auto would say {}: {})", auto.choice.as_str(), auto.reason),
        },
        Recommend::Prior => Recommendation {
            choice: Choice::Prior,
            reason: format!("--recommend prior (auto would say {}: {})", auto.choice.as_str(), auto.reason),
        },
    }
}
