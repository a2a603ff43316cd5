//! `optimize`: simulate mixtures from the Dirichlet prior, score them with the fitted model,
//! keep the best top-k in a streaming heap, and return their mean (the paper's rule), made to
//! satisfy the constraints itself.

use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use regmix_core::schema::{domains as dom_lists, Schema};
use regmix_core::table::{batch, col, read_parquet, write_parquet};
use regmix_core::{atomic, progress, Provenance};
use regmix_mixture::io::regmix_yaml;
use regmix_mixture::sampler::Dirichlet;
use regmix_mixture::Prior;
use regmix_regress::Scorer;

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
    /// Prefix of the paths in the Megatron-LM --data-path list (path = prefix + domain).
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub megatron_prefix: String,
}

/// A kept candidate: predicted target, index of the simulated mixture, weights. Ordered by
/// prediction, then index, so the heap's top is the worst kept and ties break the same way
/// whatever the number of threads.
pub struct Cand(pub f64, pub u64, pub Vec<f64>);
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o).is_eq()
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// Makes `w` satisfy 0 ≤ w ≤ cap, w = 0 or w ≥ min_weight, Σ w = 1: weights below the
/// minimum are dropped, excess above a cap is handed to the domains with room in proportion
/// to their weight, until nothing moves.
pub fn enforce(w: &mut [f64], caps: &[f64], min_weight: f64) -> Result<()> {
    for _ in 0..100 {
        for x in w.iter_mut() {
            if *x < min_weight {
                *x = 0.0;
            }
        }
        let s: f64 = w.iter().sum();
        for x in w.iter_mut() {
            *x /= s;
        }
        let mut excess = 0.0;
        for (x, c) in w.iter_mut().zip(caps) {
            if *x > *c {
                excess += *x - *c;
                *x = *c;
            }
        }
        if excess < 1e-15 {
            return Ok(());
        }
        let room: f64 = w.iter().zip(caps).filter(|(x, c)| **x > 0.0 && **x < **c).map(|(x, _)| *x).sum();
        if room <= 0.0 {
            bail!("the constraints leave no feasible mixture near the optimum");
        }
        for (x, c) in w.iter_mut().zip(caps) {
            if *x > 0.0 && *x < *c {
                *x += excess * *x / room;
            }
        }
    }
    Ok(())
}

/// What a search found and where its time went.
pub struct Found {
    /// The top-k candidates, best first.
    pub top: Vec<Cand>,
    /// Simulated mixtures that broke no cap (the others are not scored).
    pub feasible: u64,
    /// Thread-seconds spent drawing mixtures and scoring them.
    pub sample_s: f64,
    pub score_s: f64,
}

/// Per-thread state of the search: buffers reused from block to block and a local heap.
struct Local {
    heap: BinaryHeap<Cand>,
    x: Vec<f64>,
    idx: Vec<u64>,
    pred: Vec<f64>,
    w: Vec<f64>,
    feasible: u64,
    sample_s: f64,
    score_s: f64,
}

/// The search. Blocks of `block` mixtures run in parallel; each is drawn from its own
/// stream seeded by (seed, block index), scored in one call, and offered to its thread's
/// top-k heap; the heaps are merged at the end. Memory is threads × block × domains, not
/// samples × domains, and the result does not depend on the number of threads.
pub fn search(scorer: &Scorer, alpha: &[f64], caps: &[f64], samples: u64, block: usize, top_k: usize, seed: u64) -> Found {
    let d = alpha.len();
    let dirichlet = Dirichlet::new(alpha);
    let block = block.max(1);
    let blocks = samples.div_ceil(block as u64);
    let pb = progress::bar(samples, "optimize");
    let offer = |heap: &mut BinaryHeap<Cand>, c: Cand| {
        if heap.len() < top_k {
            heap.push(c);
        } else if heap.peek().is_some_and(|worst| c < *worst) {
            heap.pop();
            heap.push(c);
        }
    };
    let new_local = || Local {
        heap: BinaryHeap::with_capacity(top_k + 1),
        x: Vec::with_capacity(block * d),
        idx: Vec::with_capacity(block),
        pred: vec![0.0; block],
        w: vec![0.0; d],
        feasible: 0,
        sample_s: 0.0,
        score_s: 0.0,
    };
    let merged = (0..blocks)
        .into_par_iter()
        .fold(new_local, |mut st, b| {
            let t0 = std::time::Instant::now();
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ b.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let first = b * block as u64;
            let m = (samples - first).min(block as u64);
            st.x.clear();
            st.idx.clear();
            for i in 0..m {
                dirichlet.sample(&mut rng, &mut st.w);
                if st.w.iter().zip(caps).all(|(x, c)| x <= c) {
                    st.x.extend_from_slice(&st.w);
                    st.idx.push(first + i);
                }
            }
            let t1 = std::time::Instant::now();
            let rows = st.idx.len();
            scorer.score(&st.x, d, &mut st.pred[..rows]);
            for r in 0..rows {
                let (p, i) = (st.pred[r], st.idx[r]);
                // Most candidates lose to the worst kept: compare before copying the weights.
                if st.heap.len() < top_k || st.heap.peek().is_some_and(|worst| Cand(p, i, Vec::new()) < *worst) {
                    offer(&mut st.heap, Cand(p, i, st.x[r * d..(r + 1) * d].to_vec()));
                }
            }
            st.feasible += rows as u64;
            st.sample_s += (t1 - t0).as_secs_f64();
            st.score_s += t1.elapsed().as_secs_f64();
            pb.inc(m);
            st
        })
        .reduce(new_local, |mut a, b| {
            for c in b.heap {
                offer(&mut a.heap, c);
            }
            a.feasible += b.feasible;
            a.sample_s += b.sample_s;
            a.score_s += b.score_s;
            a
        });
    pb.finish_and_clear();
    Found { top: merged.heap.into_sorted_vec(), feasible: merged.feasible, sample_s: merged.sample_s, score_s: merged.score_s }
}

fn optimum_of(top: &[Cand], caps: &[f64], min_weight: f64) -> Result<Vec<f64>> {
    let d = caps.len();
    let mut w = vec![0.0; d];
    for c in top {
        for j in 0..d {
            w[j] += c.2[j] / top.len() as f64;
        }
    }
    enforce(&mut w, caps, min_weight)?;
    Ok(w)
}

pub fn run(args: &Args) -> Result<()> {
    let prov = Provenance::from_env("optimize", env!("CARGO_PKG_VERSION"));
    let saved = fit::SavedFit::load(&args.fit)?;
    let prior = Prior::load(args.manifest.as_deref(), args.prior.as_deref())?;
    let doms = &saved.domains;
    // The prior in the fit's domain order.
    let mut p = Vec::with_capacity(doms.len());
    for d in doms {
        let i = prior.domains.iter().position(|x| x == d).with_context(|| format!("domain `{d}` of the fit is not in the prior"))?;
        p.push(prior.weights[i]);
    }
    let aligned = Prior {
        domains: doms.clone(),
        weights: p.clone(),
        tokens: prior.tokens.as_ref().map(|t| doms.iter().map(|d| t[prior.domains.iter().position(|x| x == d).unwrap()]).collect()),
    };
    let mut caps: Vec<f64> = vec![1.0; doms.len()];
    if let Some(k) = args.max_epochs {
        for (c, b) in caps.iter_mut().zip(aligned.bounds(k, args.target_tokens)?) {
            *c = c.min(b);
        }
    }
    for mw in &args.max_weight {
        let (d, x) = mw.split_once('=').with_context(|| format!("--max-weight `{mw}`: expected DOMAIN=X"))?;
        let i = doms.iter().position(|v| v == d).with_context(|| format!("--max-weight: no domain `{d}` in {doms:?}"))?;
        caps[i] = caps[i].min(x.parse::<f64>().with_context(|| format!("--max-weight `{mw}`: not a number"))?);
    }
    if caps.iter().sum::<f64>() < 1.0 {
        bail!("the caps sum to {:.4} < 1: no mixture satisfies them", caps.iter().sum::<f64>());
    }
    let alpha: Vec<f64> = p.iter().map(|x| x * args.strength).collect();
    let started = std::time::Instant::now();
    let scorer = Scorer::new(&saved.model)?;
    let Found { top, feasible, sample_s, score_s } = search(&scorer, &alpha, &caps, args.samples, args.chunk, args.top_k, args.seed);
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
    let w = optimum_of(&top, &caps, args.min_weight)?;
    let predicted = saved.model.predict_many(&[w.clone()])[0];
    // The same model at the prior: how much the search claims to gain over doing nothing.
    let predicted_prior = saved.model.predict_many(&[p.clone()])[0];

    // Bootstrap: refit on resampled runs, search again, and measure the spread. Each refit
    // also scores the optimum found above against the prior, so the gain gets a spread too.
    let (mut w_std, mut pred_std, mut gain_std, mut win_share) = (None, None, None, None);
    if args.bootstrap > 0 {
        let t = read_parquet(&saved.dataset, Schema::get("dataset"))?;
        let (_, _, x, y) = fit::load_xy(&t, Some(doms), &saved.target)?;
        let mut ws = Vec::new();
        let mut ps = Vec::new();
        let mut gains = Vec::new();
        for b in 0..args.bootstrap {
            let mut rng = ChaCha8Rng::seed_from_u64(args.seed.wrapping_add(1000 + b as u64));
            let idx: Vec<usize> = (0..x.len()).map(|_| rand::Rng::random_range(&mut rng, 0..x.len())).collect();
            let xb: Vec<Vec<f64>> = idx.iter().map(|&i| x[i].clone()).collect();
            let yb: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
            let m = saved.model.refit(&xb, &yb, args.seed + b as u64)?;
            let sb = Scorer::new(&m)?;
            let found = search(&sb, &alpha, &caps, args.samples, args.chunk, args.top_k, args.seed + 7919 * (b as u64 + 1));
            let wb = optimum_of(&found.top, &caps, args.min_weight)?;
            // This refit's own optimum, then the prior and the optimum found above.
            let pred = m.predict_many(&[wb.clone(), p.clone(), w.clone()]);
            ps.push(pred[0]);
            gains.push(pred[1] - pred[2]);
            ws.push(wb);
            log::info!("bootstrap {}/{} done", b + 1, args.bootstrap);
        }
        let sd = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64).sqrt()
        };
        w_std = Some((0..doms.len()).map(|j| sd(&ws.iter().map(|w| w[j]).collect::<Vec<_>>())).collect::<Vec<f64>>());
        pred_std = Some(sd(&ps));
        gain_std = Some(sd(&gains));
        win_share = Some(gains.iter().filter(|g| **g > 0.0).count() as f64 / gains.len() as f64);
    }
    let gain = Gain { prior: predicted_prior, gain: predicted_prior - predicted, std: gain_std, win_share };

    for (j, d) in doms.iter().enumerate() {
        let spread = w_std.as_ref().map(|s| format!(" ± {:.4}", s[j])).unwrap_or_default();
        log::info!("  {d:<24} {:.4}{spread}   (prior {:.4}, cap {:.4})", w[j], p[j], caps[j]);
    }
    log::info!("predicted {} at the optimum: {predicted:.4}", saved.target.expr);
    log::info!("{}", gain.describe());
    if !gain.is_clear() {
        log::warn!(
            "the regression does not clearly prefer the optimum to the prior (gain within two bootstrap \
             standard deviations, or not predicted in every refit): more or longer proxy runs would tell"
        );
    }
    write_outputs(args, &saved, &w, predicted, w_std.as_deref(), pred_std, &gain, &top, &p, &caps, &prov)
}

/// What the search claims over the prior: the fitted model's prediction at the prior, the
/// predicted gain of the optimum (prior − optimum; positive when the optimum is predicted lower),
/// and, with --bootstrap, the gain's spread over refits (each refit scoring the same two
/// mixtures) and the share of refits that predict the optimum below the prior.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gain {
    pub prior: f64,
    pub gain: f64,
    pub std: Option<f64>,
    pub win_share: Option<f64>,
}

impl Gain {
    /// A gain the proxies support: positive, at least two bootstrap standard deviations, and
    /// predicted by every refit. Without a bootstrap there is nothing to judge it by: false.
    pub fn is_clear(&self) -> bool {
        match (self.std, self.win_share) {
            (Some(sd), Some(share)) => self.gain > 0.0 && self.gain >= 2.0 * sd && share >= 1.0,
            _ => false,
        }
    }

    pub fn describe(&self) -> String {
        let mut s = format!("predicted at the prior: {:.4}; gain of the optimum over the prior: {:.4}", self.prior, self.gain);
        if let (Some(sd), Some(share)) = (self.std, self.win_share) {
            s += &format!(" ± {sd:.4} (bootstrap sd); the optimum is predicted below the prior in {:.0}% of refits", 100.0 * share);
        } else {
            s += " (no bootstrap: run optimize --bootstrap B to see how sure this is)";
        }
        s
    }
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    args: &Args,
    saved: &fit::SavedFit,
    w: &[f64],
    predicted: f64,
    w_std: Option<&[f64]>,
    pred_std: Option<f64>,
    gain: &Gain,
    top: &[Cand],
    prior: &[f64],
    caps: &[f64],
    prov: &Provenance,
) -> Result<()> {
    let out = &args.output;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let doms = &saved.domains;
    let lists = dom_lists(doms);
    let constraints = serde_json::json!({
        "caps": doms.iter().zip(caps).map(|(d, c)| (d.clone(), serde_json::json!(c))).collect::<serde_json::Map<_, _>>(),
        "min_weight": args.min_weight, "max_epochs": args.max_epochs, "target_tokens": args.target_tokens,
    });
    let s = Schema::get("optimum");
    let mut cols = vec![
        col::f64(vec![predicted]),
        col::f64_opt(vec![pred_std]),
        col::f64(vec![gain.prior]),
        col::f64(vec![gain.gain]),
        col::f64_opt(vec![gain.std]),
        col::f64_opt(vec![gain.win_share]),
    ];
    cols.extend(w.iter().map(|x| col::f64(vec![*x])));
    cols.extend((0..doms.len()).map(|j| col::f64_opt(vec![w_std.map(|s| s[j])])));
    let prior_json: serde_json::Map<_, _> = doms.iter().zip(prior).map(|(d, x)| (d.clone(), serde_json::json!(x))).collect();
    let md = vec![
        ("regmix.constraints".to_string(), constraints.to_string()),
        ("regmix.target".to_string(), saved.target.expr.clone()),
        ("regmix.prior".to_string(), serde_json::Value::Object(prior_json).to_string()),
    ];
    write_parquet(&out.join("optimum.parquet"), s, &lists, &batch(s, &lists, cols)?, &md, prov)?;
    let s = Schema::get("top_candidates");
    let mut cols = vec![col::u32((1..=top.len() as u32).collect()), col::f64(top.iter().map(|c| c.0).collect())];
    cols.extend((0..doms.len()).map(|j| col::f64(top.iter().map(|c| c.2[j]).collect())));
    write_parquet(&out.join("top_candidates.parquet"), s, &lists, &batch(s, &lists, cols)?, &[], prov)?;
    atomic::write_bytes(out.join("optimum.yaml"), regmix_yaml(doms, w, "train_", &[]).as_bytes())?;
    let megatron: Vec<String> = doms.iter().zip(w).filter(|(_, x)| **x > 0.0).map(|(d, x)| format!("{x:.6} {}{d}", args.megatron_prefix)).collect();
    atomic::write_bytes(out.join("megatron_data_path.txt"), format!("{}\n", megatron.join(" ")).as_bytes())?;
    let json = serde_json::json!({
        "target": saved.target.expr, "predicted": predicted, "predicted_std": pred_std,
        "predicted_prior": gain.prior, "predicted_gain": gain.gain, "predicted_gain_std": gain.std,
        "bootstrap_win_share": gain.win_share,
        "weights": doms.iter().zip(w).map(|(d, x)| (d.clone(), serde_json::json!(x))).collect::<serde_json::Map<_, _>>(),
        "weight_std": w_std.map(|s| doms.iter().zip(s).map(|(d, x)| (d.clone(), serde_json::json!(x))).collect::<serde_json::Map<_, _>>()),
        "constraints": constraints,
    });
    atomic::write_bytes(out.join("optimum.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    atomic::write_bytes(out.join("optimum_vs_prior.svg"), bar_chart(doms, w, w_std, prior).as_bytes())?;
    log::info!("wrote {}/{{optimum.parquet, top_candidates.parquet, optimum.yaml, megatron_data_path.txt, optimum.json, optimum_vs_prior.svg}}", out.display());
    Ok(())
}

/// Horizontal bars: the optimum (with bootstrap error bars) beside the prior.
pub fn bar_chart(doms: &[String], w: &[f64], sd: Option<&[f64]>, prior: &[f64]) -> String {
    let (left, width, row) = (160.0, 420.0, 26.0);
    let h = 60.0 + row * doms.len() as f64;
    let max = w.iter().chain(prior).cloned().fold(0.0, f64::max).max(1e-9) * 1.1;
    let sx = |v: f64| left + v / max * width;
    let mut s = String::new();
    writeln!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{h}" font-family="sans-serif" font-size="12">"#, left + width + 40.0).unwrap();
    writeln!(s, r##"<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="14">Optimum (blue) and token-share prior (grey)</text>"##).unwrap();
    for (i, d) in doms.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{d}</text>"#, left - 6.0, y + 14.0).unwrap();
        writeln!(s, r##"<rect x="{left}" y="{y}" width="{:.1}" height="10" fill="#1f77b4"/>"##, sx(w[i]) - left).unwrap();
        writeln!(s, r##"<rect x="{left}" y="{}" width="{:.1}" height="8" fill="#aaa"/>"##, y + 11.0, sx(prior[i]) - left).unwrap();
        if let Some(sd) = sd {
            writeln!(s, r#"<line x1="{:.1}" y1="{}" x2="{:.1}" y2="{}" stroke="black"/>"#, sx((w[i] - sd[i]).max(0.0)), y + 5.0, sx(w[i] + sd[i]), y + 5.0).unwrap();
        }
        writeln!(s, r#"<text x="{:.1}" y="{}">{:.3}</text>"#, sx(w[i].max(prior[i])) + 4.0, y + 10.0, w[i]).unwrap();
    }
    s.push_str("</svg>\n");
    s
}

/// For tests: the optimum file's weights.
pub fn read_optimum(path: &Path) -> Result<(Vec<String>, Vec<f64>)> {
    let t = read_parquet(path, Schema::get("optimum"))?;
    let d = t.list("domain")?.to_vec();
    let w = d.iter().map(|x| t.f64_values(&format!("weight.{x}")).map(|v| v[0])).collect::<regmix_core::Result<_>>()?;
    Ok((d, w))
}

/// The optimum file's gain over the prior (see [`Gain`]).
pub fn read_gain(path: &Path) -> Result<Gain> {
    gain_of(&read_parquet(path, Schema::get("optimum"))?)
}

/// The gain over the prior in an optimum table already read.
pub fn gain_of(t: &regmix_core::table::Table) -> Result<Gain> {
    let opt = |c: &str| -> Result<Option<f64>> { Ok(t.f64_opt_values(c)?[0]) };
    Ok(Gain {
        prior: t.f64_values("predicted_prior")?[0],
        gain: t.f64_values("predicted_gain")?[0],
        std: opt("predicted_gain_std")?,
        win_share: opt("bootstrap_win_share")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gain_is_clear_only_when_positive_over_two_sd_and_in_every_refit() {
        let g = |gain, std, win_share| Gain { prior: 5.0, gain, std, win_share };
        assert!(g(0.10, Some(0.04), Some(1.0)).is_clear());
        assert!(!g(0.10, Some(0.06), Some(1.0)).is_clear(), "under two sd");
        assert!(!g(0.10, Some(0.01), Some(0.9)).is_clear(), "one refit disagrees");
        assert!(!g(-0.10, Some(0.01), Some(1.0)).is_clear(), "the prior is predicted lower");
        assert!(!g(0.10, None, None).is_clear(), "no bootstrap, nothing to judge by");
        assert!(g(0.10, None, None).describe().contains("--bootstrap"));
    }

    #[test]
    fn enforce_moves_excess_to_domains_with_room_and_drops_small_weights() {
        let mut w = vec![0.7, 0.2, 0.095, 0.005];
        enforce(&mut w, &[0.5, 1.0, 1.0, 1.0], 0.01).unwrap();
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(w[0] <= 0.5 + 1e-12 && w[3] == 0.0, "{w:?}");
    }
}
