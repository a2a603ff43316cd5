//! optimize's outputs, written into the output folder: `optimum.parquet` (the contract,
//! through [`regmix_mixture::Optimum`]), `top_candidates.parquet`, `optimum.yaml` (a regmix
//! mixture config), `megatron_data_path.txt` (a Megatron-LM `--data-path` blend),
//! `optimum.json` (the same facts for people and scripts), `optimum_vs_prior.svg`, and the
//! recommended mixture (the optimum or the prior: [`Optimum::recommendation`]) as
//! `recommended.yaml` and `recommended_megatron_data_path.txt`, each opening with why.

use anyhow::Result;
use regmix_core::atomic::{self, OutputDir};
use regmix_core::schema::{domains as dom_lists, Schema};
use regmix_core::table::{batch, col, write_parquet};
use regmix_core::Provenance;
use regmix_mixture::io::regmix_yaml;
use regmix_mixture::{Choice, Optimum};

use crate::search::Cand;
use crate::Args;

/// The files named in the module's documentation.
pub const FILES: [&str; 8] = [
    "optimum.parquet",
    "top_candidates.parquet",
    "optimum.yaml",
    "megatron_data_path.txt",
    "optimum.json",
    "optimum_vs_prior.svg",
    "recommended.yaml",
    "recommended_megatron_data_path.txt",
];

/// With a horizon model: the optimum the same model finds at the proxies' own horizon,
/// written as `optimum_at_proxies.parquet` (the optimum contract, without a bootstrap).
pub struct AtProxies {
    pub tokens: u64,
    pub weights: Vec<f64>,
    pub predicted: f64,
    pub predicted_prior: f64,
}

/// The file of [`AtProxies`].
pub const AT_PROXIES: &str = "optimum_at_proxies.parquet";

/// Writes the files into a staging folder and swaps it in whole: optimum.parquet and
/// optimum.yaml always belong to one search.
/// `staged` is the output folder begun before the search ([`OutputDir::create_owned`]).
#[allow(clippy::too_many_arguments)]
pub fn write(
    args: &Args,
    staged: OutputDir,
    optimum: &Optimum,
    top: &[Cand],
    caps: &[f64],
    at_proxies: Option<&AtProxies>,
    kl: Option<serde_json::Value>,
    prov: &Provenance,
) -> Result<()> {
    let out = staged.path();
    let doms = &optimum.domains;
    let w = &optimum.weights;
    let by_domain = |v: &[f64]| {
        doms.iter().zip(v).map(|(d, x)| (d.clone(), serde_json::json!(x))).collect::<serde_json::Map<_, _>>()
    };
    let constraints = serde_json::json!({
        "caps": by_domain(caps),
        "min_weight": args.min_weight, "max_epochs": args.max_epochs, "target_tokens": args.target_tokens,
    });
    optimum.write(&out.join(FILES[0]), &constraints, prov)?;
    if let Some(a) = at_proxies {
        let o = Optimum {
            weights: a.weights.clone(),
            weight_std: None,
            predicted: a.predicted,
            predicted_std: None,
            gain: regmix_mixture::Gain {
                prior: a.predicted_prior,
                gain: a.predicted_prior - a.predicted,
                std: None,
                win_share: None,
            },
            ..optimum.clone()
        };
        o.write(&out.join(AT_PROXIES), &constraints, prov)?;
    }

    let lists = dom_lists(doms);
    let s = Schema::get("top_candidates");
    let mut cols =
        vec![col::u32((1..=top.len() as u32).collect()), col::f64(top.iter().map(|c| c.predicted).collect())];
    cols.extend((0..doms.len()).map(|j| col::f64(top.iter().map(|c| c.weights[j]).collect())));
    write_parquet(&out.join(FILES[1]), s, &lists, &batch(s, &lists, cols)?, &[], prov)?;

    let rec = &optimum.recommendation;
    let note = format!("# recommendation: train on the {} ({})\n", rec.choice.as_str(), rec.reason.replace('\n', " "));
    atomic::write_bytes(out.join(FILES[2]), format!("{note}{}", regmix_yaml(doms, w, "train_", &[])).as_bytes())?;
    let megatron = |w: &[f64]| {
        let pairs: Vec<String> = doms
            .iter()
            .zip(w)
            .filter(|(_, x)| **x > 0.0)
            .map(|(d, x)| format!("{x:.6} {}{d}", args.megatron_prefix))
            .collect();
        format!("{}\n", pairs.join(" "))
    };
    atomic::write_bytes(out.join(FILES[3]), megatron(w).as_bytes())?;
    let recommended = match rec.choice {
        Choice::Optimum => w,
        Choice::Prior => &optimum.prior,
    };
    atomic::write_bytes(
        out.join(FILES[6]),
        format!("{note}{}", regmix_yaml(doms, recommended, "train_", &[])).as_bytes(),
    )?;
    // Megatron reads the file's text as its --data-path: the reason stays in the YAML.
    atomic::write_bytes(out.join(FILES[7]), megatron(recommended).as_bytes())?;
    let g = &optimum.gain;
    let json = serde_json::json!({
        "target": optimum.target, "predicted": optimum.predicted, "predicted_std": optimum.predicted_std,
        "predicted_prior": g.prior, "predicted_gain": g.gain, "predicted_gain_std": g.std,
        "bootstrap_win_share": g.win_share,
        "recommendation": {"choice": rec.choice.as_str(), "reason": rec.reason, "weights": by_domain(recommended)},
        "weights": by_domain(w),
        "weight_std": optimum.weight_std.as_deref().map(by_domain),
        "prior": by_domain(&optimum.prior),
        "constraints": constraints,
        "kl_to_prior": kl,
        "at_proxies_horizon": at_proxies.map(|a| serde_json::json!({"tokens": a.tokens, "weights": by_domain(&a.weights), "predicted": a.predicted, "predicted_prior": a.predicted_prior})),
    });
    atomic::write_bytes(out.join(FILES[4]), serde_json::to_string_pretty(&json)?.as_bytes())?;
    atomic::write_bytes(
        out.join(FILES[5]),
        regmix_plot::bar_chart(doms, w, optimum.weight_std.as_deref(), &optimum.prior).as_bytes(),
    )?;
    staged.commit()?;
    log::info!("wrote {}/{{{}}}", args.output.display(), FILES.join(", "));
    Ok(())
}
