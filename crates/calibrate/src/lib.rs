//! calibrate: do proxies of a given recipe rank mixtures as the target-scale models do?
//!
//! Two steps around the normal `proxy-train` and `collect`:
//! 1. `calibrate mixtures`: the distinct mixtures of the target-scale runs (a `collect --targets`
//!    or `collect --import-table` dataset: a user's past production models will do), as a
//!    `mixtures.parquet` that `proxy-train` trains once per recipe.
//! 2. `calibrate score`: each recipe's proxies (collected into a dataset, at the evaluation the
//!    recipe names: `collect --step`) against the targets: Spearman and pairwise agreement with
//!    a paired bootstrap, the decisions against the prior, the cost, and a verdict per recipe,
//!    written to `calibration.parquet` (schemas/calibration.json).
//!
//! Only the order of the targets' losses is compared with the proxies' order, so targets from
//! another trainer or tokenizer calibrate as well as our own; the proxies of every recipe must
//! share one tokenizer and one set of shards.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use arrow_schema::DataType;
use clap::{Parser, Subcommand};
use regmix_calibrate::guard::recipe_key;
use regmix_calibrate::table::{Calibration, Input, Inputs, RecipeRow, TargetMixture};
use regmix_core::schema::Schema;
use regmix_core::table::{read_parquet, Table};
use regmix_core::{digest, Provenance};
use regmix_mixture::io::Mixtures;
use regmix_model::Config;
use regmix_regress::agreement::{
    contenders, decisions, pairwise_accuracy, quantile, recommend, Candidate, Resamples, INTERVAL,
};
use regmix_regress::metrics::spearman;
use regmix_regress::saved::load_xy;
use regmix_regress::target::Target;
use regmix_spec::RunSettings;

/// Two weight vectors are one mixture when no weight differs by more than this.
pub const SAME_MIXTURE: f64 = 1e-9;
/// The fewest distinct target mixtures a ranking is worth comparing on.
pub const MIN_TARGETS: usize = 4;

#[derive(Parser, Debug)]
#[command(
    name = "calibrate",
    version,
    about = "Calibrate proxy recipes on target-scale runs: which recipe's proxies rank the mixtures as the targets do?",
    long_about = "Calibrate proxy recipes on target-scale runs you already have.\n\n\
`calibrate mixtures` writes the targets' distinct mixtures for proxy-train; train one proxy per \
mixture per recipe, collect each recipe's runs into a dataset (collect --step N for a recipe \
that is an earlier evaluation of longer runs), then `calibrate score` compares each recipe's \
ranking of the mixtures with the targets' and recommends the cheapest recipe that ranks them \
within noise of the best. Only the order of the losses is compared.",
    max_term_width = regmix_core::cli::HELP_WIDTH
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write the distinct mixtures of the target runs as mixtures.parquet (ids 0, 1, … in order
    /// of first appearance), for proxy-train; prints their count.
    Mixtures(MixturesArgs),
    /// Score each recipe's proxies against the targets and write calibration.parquet.
    Score(ScoreArgs),
}

#[derive(clap::Args, Debug)]
pub struct TargetArgs {
    /// Target-scale runs: a dataset from `collect --targets DIR` or `collect --import-table
    /// TABLE`; repeatable (e.g. one per seed: a mixture in several files is one mixture, its
    /// loss their mean).
    #[arg(long = "targets", value_name = "FILE", required = true)]
    pub targets: Vec<PathBuf>,
    /// The loss compared, on targets and proxies alike.
    #[arg(long, default_value = "mean(valid_loss.*)", value_name = "EXPR")]
    pub target: String,
}

#[derive(clap::Args, Debug)]
pub struct MixturesArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// The mixtures file to write.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// A recipe: its name and the dataset of its proxies (collect --runs, at the recipe's
    /// evaluation); repeatable.
    #[arg(long = "recipe", value_name = "NAME=FILE", required = true)]
    pub recipes: Vec<String>,
    /// A recipe's training settings from a committed table's settings file (NAME=
    /// TABLE.settings.json, export-results.py's), for a recipe dataset imported from that table
    /// (collect --import-table), whose own run settings are null; repeatable.
    #[arg(long = "settings", value_name = "NAME=FILE")]
    pub settings: Vec<String>,
    /// The target run that is the proportional prior: each other mixture is judged better or
    /// worse than it.
    #[arg(long, default_value = "prior", value_name = "NAME")]
    pub prior: String,
    /// Bootstrap resamples of the mixtures.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub bootstrap: usize,
    /// Seed of the resamples.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The calibration table to write.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
}

pub fn run(args: &Args) -> Result<()> {
    match &args.command {
        Command::Mixtures(a) => write_mixtures(a),
        Command::Score(a) => score(a),
    }
}

/// The target mixtures and the inputs they came from.
pub struct Targets {
    pub expr: String,
    pub domains: Vec<String>,
    pub mixtures: Vec<TargetMixture>,
    pub inputs: Vec<Input>,
}

fn float_columns(t: &Table) -> Vec<(String, bool)> {
    t.batch
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), matches!(f.data_type(), DataType::Float64 | DataType::Float32)))
        .collect()
}

fn same_mixture(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= SAME_MIXTURE)
}

/// Checks that `t`'s training domains are exactly `domains` (as a set).
fn check_domains(t: &Table, domains: &[String], what: &str) -> Result<()> {
    let own: BTreeSet<&String> = t.list("domain")?.iter().collect();
    let want: BTreeSet<&String> = domains.iter().collect();
    if own != want {
        let extra: Vec<&&String> = own.difference(&want).collect();
        let missing: Vec<&&String> = want.difference(&own).collect();
        bail!(
            "{}: {what} trains on other domains than the targets (not in the targets: {extra:?}; missing: {missing:?}): \
             calibration compares mixtures of one set of domains",
            t.path.display()
        );
    }
    Ok(())
}

/// Reads the target runs and groups them into distinct mixtures.
pub fn read_targets(a: &TargetArgs) -> Result<Targets> {
    let mut domains: Option<Vec<String>> = None;
    let mut mixtures: Vec<TargetMixture> = Vec::new();
    let mut inputs = Vec::new();
    for path in &a.targets {
        let t = read_parquet(path, Schema::get("dataset"))?;
        let doms = match &domains {
            Some(d) => {
                check_domains(&t, d, "this target file")?;
                d.clone()
            }
            None => t.list("domain")?.to_vec(),
        };
        let target = Target::parse_floats(&a.target, &float_columns(&t)).with_context(|| path.display().to_string())?;
        let runs: Vec<String> = t.str("run")?.iter().map(|v| v.unwrap_or_default().to_string()).collect();
        let all_ids = t.u32("mixture_id")?.values().to_vec();
        let xy = load_xy(&t, Some(&doms), &target)?;
        for ((w, y), id) in xy.x.iter().zip(&xy.y).zip(&xy.ids) {
            let row = all_ids.iter().position(|i| i == id).expect("load_xy keeps the table's ids");
            let name = &runs[row];
            match mixtures.iter_mut().find(|m| same_mixture(&m.weights, w)) {
                Some(m) => {
                    m.runs.push(*y);
                    if !m.name.split('=').any(|n| n == name) {
                        m.name = format!("{}={name}", m.name);
                    }
                }
                None => mixtures.push(TargetMixture {
                    id: mixtures.len() as u32,
                    name: name.clone(),
                    weights: w.clone(),
                    loss: 0.0,
                    runs: vec![*y],
                }),
            }
        }
        inputs.push(Input { file: path.display().to_string(), sha256: digest::sha256_file(path)? });
        domains = Some(doms);
    }
    for m in &mut mixtures {
        m.loss = m.runs.iter().sum::<f64>() / m.runs.len() as f64;
    }
    if mixtures.len() < MIN_TARGETS {
        bail!(
            "{}: {} distinct target mixtures with a finite `{}`; a ranking needs at least {MIN_TARGETS}",
            a.targets.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            mixtures.len(),
            a.target
        );
    }
    Ok(Targets { expr: a.target.clone(), domains: domains.expect("targets is required"), mixtures, inputs })
}

fn refuse_input_as_output(output: &Path, inputs: &[&Path]) -> Result<()> {
    let out = std::fs::canonicalize(output).ok();
    for i in inputs {
        if out.is_some() && std::fs::canonicalize(i).ok() == out {
            bail!("--output {} is one of the inputs: calibrate never replaces what it reads", output.display());
        }
    }
    Ok(())
}

fn write_mixtures(a: &MixturesArgs) -> Result<()> {
    let inputs: Vec<&Path> = a.targets.targets.iter().map(PathBuf::as_path).collect();
    refuse_input_as_output(&a.output, &inputs)?;
    let t = read_targets(&a.targets)?;
    let m = Mixtures {
        domains: t.domains.clone(),
        ids: t.mixtures.iter().map(|m| m.id).collect(),
        weights: t.mixtures.iter().map(|m| m.weights.clone()).collect(),
    };
    let names: Vec<&str> = t.mixtures.iter().map(|m| m.name.as_str()).collect();
    let sampler = serde_json::json!({"calibration": {"targets": t.inputs, "names": names, "target": t.expr}});
    m.write_parquet(&a.output, &sampler, &Provenance::from_env("calibrate", env!("CARGO_PKG_VERSION")))?;
    for tm in &t.mixtures {
        log::info!("mixture {}: {} (target loss {:.4} over {} runs)", tm.id, tm.name, tm.loss, tm.runs.len());
    }
    log::info!("wrote {}: {} target mixtures for proxy-train", a.output.display(), t.mixtures.len());
    // The one line on stdout: the count, for scripts (their ids are 0 to count - 1).
    println!("{}", t.mixtures.len());
    Ok(())
}

/// One recipe's proxies, matched to the target mixtures.
struct Recipe {
    name: String,
    /// The proxies' mean loss per target mixture (None where it has none).
    losses: Vec<Option<f64>>,
    tokens: u64,
    params: u64,
    flops_per_token: f64,
    settings: serde_json::Value,
    data: (String, String),
}

/// The run settings a results settings file records (its `run_settings`), checked non-null.
fn settings_file(name: &str, file: &Path) -> Result<RunSettings> {
    let text = std::fs::read_to_string(file).with_context(|| format!("--settings {name}={}", file.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", file.display()))?;
    let source = format!("{}: run_settings", file.display());
    match RunSettings::from_value(v.get("run_settings").unwrap_or(&serde_json::Value::Null), &source)? {
        Some(s) => Ok(s),
        None => {
            bail!("{}: no run_settings (a results settings file of export-results.py records them)", file.display())
        }
    }
}

fn read_recipe(spec: &str, settings_of: &[(String, PathBuf)], targets: &Targets) -> Result<Recipe> {
    let Some((name, file)) = spec.split_once('=') else {
        bail!("--recipe {spec:?}: expected NAME=FILE (a dataset from collect --runs)");
    };
    let path = Path::new(file);
    let t = read_parquet(path, Schema::get("dataset"))?;
    check_domains(&t, &targets.domains, &format!("recipe `{name}`"))?;
    let target = Target::parse_floats(&targets.expr, &float_columns(&t)).with_context(|| path.display().to_string())?;
    let xy = load_xy(&t, Some(&targets.domains), &target)?;
    let own: Option<RunSettings> = t.json_metadata(regmix_core::keys::RUN_SETTINGS)?;
    let settings = match (settings_of.iter().find(|(n, _)| n == name), own) {
        (Some((_, f)), None) => settings_file(name, f)?,
        (Some((_, f)), Some(_)) => bail!("--settings {name}={}: the recipe's dataset {} records its own run settings; give --settings only for an imported table", f.display(), path.display()),
        (None, Some(own)) => own,
        (None, None) => bail!(
            "{}: recipe `{name}` has no training settings (regmix.run_settings is null: imported results): collect its \
             runs, or give the committed table's settings file with --settings {name}=TABLE.settings.json",
            path.display()
        ),
    };
    let model: &Config = &settings.train.model;
    let tokens: BTreeSet<u64> = xy.tokens.iter().copied().collect();
    if tokens.len() != 1 {
        bail!("{}: recipe `{name}`'s runs were evaluated at different tokens {tokens:?}: collect them at one step (collect --step)", path.display());
    }
    let tokens = *tokens.first().expect("one");
    let mut sums = vec![(0.0, 0u32); targets.mixtures.len()];
    for (w, y) in xy.x.iter().zip(&xy.y) {
        let Some(k) = targets.mixtures.iter().position(|m| same_mixture(&m.weights, w)) else {
            bail!(
                "{}: recipe `{name}` has a run whose mixture is not among the targets' {} mixtures: train the recipe on \
                 `calibrate mixtures`' file",
                path.display(),
                targets.mixtures.len()
            );
        };
        sums[k].0 += y;
        sums[k].1 += 1;
    }
    Ok(Recipe {
        name: name.to_string(),
        losses: sums.iter().map(|&(s, n)| (n > 0).then(|| s / n as f64)).collect(),
        tokens,
        params: model.n_params() as u64,
        flops_per_token: model.train_flops_per_token(),
        settings: recipe_key(&serde_json::to_value(&settings.train).expect("settings serialise"), tokens),
        data: (settings.tokenizer_sha256.clone(), settings.shards_sha256.clone()),
    })
}

fn score(a: &ScoreArgs) -> Result<()> {
    let mut inputs: Vec<&Path> = a.targets.targets.iter().map(PathBuf::as_path).collect();
    let files: Vec<&str> = a.recipes.iter().filter_map(|r| r.split_once('=').map(|(_, f)| f)).collect();
    inputs.extend(files.iter().map(Path::new));
    refuse_input_as_output(&a.output, &inputs)?;
    if a.bootstrap < 100 {
        bail!("--bootstrap {}: at least 100 resamples for a 90% interval", a.bootstrap);
    }
    let t = read_targets(&a.targets)?;
    let mut settings_of = Vec::new();
    for s in &a.settings {
        let Some((n, f)) = s.split_once('=') else { bail!("--settings {s:?}: expected NAME=FILE") };
        if !a.recipes.iter().any(|r| r.split_once('=').map(|(rn, _)| rn) == Some(n)) {
            bail!("--settings {s:?}: no --recipe is named `{n}`");
        }
        settings_of.push((n.to_string(), PathBuf::from(f)));
    }
    let recipes: Vec<Recipe> = a.recipes.iter().map(|r| read_recipe(r, &settings_of, &t)).collect::<Result<_>>()?;
    let mut names = BTreeSet::new();
    for r in &recipes {
        if !names.insert(&r.name) {
            bail!("--recipe {}: the name is given twice", r.name);
        }
        if r.data != recipes[0].data {
            bail!(
                "recipe `{}` was trained on other data (tokenizer {}, shards {}) than recipe `{}` (tokenizer {}, shards {}): \
                 recipes are compared on one tokenizer and one set of shards",
                r.name, r.data.0, r.data.1, recipes[0].name, recipes[0].data.0, recipes[0].data.1
            );
        }
    }
    let prior = t.mixtures.iter().position(|m| m.name.split('=').any(|n| n == a.prior));
    if prior.is_none() {
        log::warn!("no target run is named `{}` (--prior): the decisions against the prior are not scored", a.prior);
    }
    let truth: Vec<f64> = t.mixtures.iter().map(|m| m.loss).collect();
    let resamples = Resamples::new(truth.len(), a.bootstrap, a.seed);
    let top = contenders(&truth, prior);
    let mut rows = Vec::new();
    let mut cands = Vec::new();
    for r in &recipes {
        let have: Vec<usize> = (0..truth.len()).filter(|&k| r.losses[k].is_some()).collect();
        let tr: Vec<f64> = have.iter().map(|&k| truth[k]).collect();
        let pr: Vec<f64> = have.iter().map(|&k| r.losses[k].expect("filtered")).collect();
        let complete = have.len() == truth.len();
        // Paired resamples need every mixture; a partial recipe gets its own.
        let res = if complete { resamples.clone() } else { Resamples::new(have.len(), a.bootstrap, a.seed) };
        let boot = res.values(&tr, &pr, spearman);
        let pair_boot = res.values(&tr, &pr, pairwise_accuracy);
        let (agree, total) = match prior.and_then(|p| have.iter().position(|&k| k == p)) {
            Some(p) => decisions(&tr, &pr, p),
            None => (0, 0),
        };
        let rho = if have.len() >= 2 { spearman(&tr, &pr) } else { f64::NAN };
        // The contenders this recipe has proxies of, and its decisions among them.
        let top_have: Vec<usize> = (0..have.len()).filter(|&i| top.contains(&have[i])).collect();
        let (tt, tp): (Vec<f64>, Vec<f64>) = top_have.iter().map(|&i| (tr[i], pr[i])).unzip();
        let (top_agree, top_total) = match prior.and_then(|p| top_have.iter().position(|&i| have[i] == p)) {
            Some(p) => decisions(&tt, &tp, p),
            None => (0, 0),
        };
        rows.push(RecipeRow {
            recipe: r.name.clone(),
            mixtures: have.len() as u32,
            planned: truth.len() as u32,
            tokens: r.tokens,
            params: r.params,
            tokens_per_param: r.tokens as f64 / r.params as f64,
            flops_per_proxy: r.tokens as f64 * r.flops_per_token,
            spearman: Some(rho),
            spearman_lo: Some(quantile(&boot, INTERVAL.0)),
            spearman_hi: Some(quantile(&boot, INTERVAL.1)),
            pairwise: Some(pairwise_accuracy(&tr, &pr)),
            pairwise_lo: Some(quantile(&pair_boot, INTERVAL.0)),
            pairwise_hi: Some(quantile(&pair_boot, INTERVAL.1)),
            prior_decisions: total,
            prior_agree: agree,
            top_mixtures: top.len() as u32,
            top_spearman: Some(if tt.len() >= 2 { spearman(&tt, &tp) } else { f64::NAN }),
            top_prior_decisions: top_total,
            top_prior_agree: top_agree,
            verdict: String::new(),
            proxy_losses: r.losses.clone(),
            settings: r.settings.clone(),
        });
        cands.push(Candidate {
            cost: r.tokens as f64 * r.flops_per_token,
            spearman: rho,
            boot,
            complete,
            misjudges_prior: top_agree < top_total,
        });
    }
    for (row, v) in rows.iter_mut().zip(recommend(&cands)) {
        row.verdict = v.as_str().to_string();
    }
    let c = Calibration {
        inputs: Inputs {
            target: t.expr.clone(),
            targets: t.inputs.clone(),
            domains: t.domains.clone(),
            mixtures: t.mixtures.clone(),
            prior: prior.map(|p| t.mixtures[p].name.clone()),
            bootstrap: a.bootstrap,
            seed: a.seed,
            interval: [INTERVAL.0, INTERVAL.1],
        },
        rows,
    };
    c.write(&a.output, &Provenance::from_env("calibrate", env!("CARGO_PKG_VERSION")))?;
    print!("{}", table(&c));
    match c.recommended() {
        Some(r) => log::info!(
            "recommended recipe: `{}` ({} tokens per proxy, Spearman {:.3})",
            r.recipe,
            r.tokens,
            r.spearman.unwrap_or(f64::NAN)
        ),
        None => {
            log::warn!("no recipe ranks the targets better than chance: trust the prior, or calibrate longer proxies")
        }
    }
    log::info!("wrote {}", a.output.display());
    Ok(())
}

/// The calibration as a Markdown table (what the README shows).
pub fn table(c: &Calibration) -> String {
    let f = |v: Option<f64>| v.filter(|x| x.is_finite()).map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into());
    let mut s = format!(
        "| recipe | proxies | tokens | tokens/param | PFLOPs/proxy | Spearman (90% CI) | pairwise (90% CI) | vs prior | top {} Spearman | top vs prior | verdict |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        c.rows.first().map_or(0, |r| r.top_mixtures)
    );
    for r in &c.rows {
        s += &format!(
            "| {} | {}/{} | {} | {:.2} | {:.4} | {} ({} to {}) | {} ({} to {}) | {}/{} | {} | {}/{} | {} |\n",
            r.recipe,
            r.mixtures,
            r.planned,
            r.tokens,
            r.tokens_per_param,
            r.flops_per_proxy / 1e15,
            f(r.spearman),
            f(r.spearman_lo),
            f(r.spearman_hi),
            f(r.pairwise),
            f(r.pairwise_lo),
            f(r.pairwise_hi),
            r.prior_agree,
            r.prior_decisions,
            f(r.top_spearman),
            r.top_prior_agree,
            r.top_prior_decisions,
            r.verdict
        );
    }
    s
}
