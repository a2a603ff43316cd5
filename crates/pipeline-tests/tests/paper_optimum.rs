//! collect → fit → optimize on the paper's real runs (Pile-CC target).

use std::path::{Path, PathBuf};

use regmix_core::Provenance;
use regmix_mixture::prior::pile_prior;
use regmix_mixture::Optimum;

#[path = "../../../tests/support/skip.rs"]
mod skip;

fn paper() -> Option<PathBuf> {
    skip::paper_data()
}

fn args(fit: &Path, prior: &Path, out: &Path) -> optimize::Args {
    use clap::Parser;
    optimize::Args::parse_from([
        "optimize",
        "--fit",
        fit.to_str().unwrap(),
        "--prior",
        prior.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--samples",
        "100000",
        "--top-k",
        "128",
    ])
}

#[test]
fn optimum_of_the_papers_model_favours_pile_cc_and_respects_caps() {
    let Some(d) = paper() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("train.parquet");
    collect::import_paper(&d.join("train_mixture_1m.csv"), &d.join("train_pile_loss_1m.csv"))
        .unwrap()
        .write(&ds, None, &Provenance::new("test", "0", &[]))
        .unwrap();
    let fit_dir = dir.path().join("fit");
    {
        use clap::Parser;
        let a = fit::Args::parse_from([
            "fit",
            "--dataset",
            ds.to_str().unwrap(),
            "--target",
            "valid_loss.pile_cc",
            "--regressor",
            "gp",
            "--output",
            fit_dir.to_str().unwrap(),
        ]);
        fit::run(&a).unwrap();
    }
    // A prior with token counts (the Pile's shares of 1B tokens), so availability caps apply.
    let prior = dir.path().join("prior.json");
    let pile = pile_prior();
    let tokens: serde_json::Map<String, serde_json::Value> =
        pile.domains.iter().zip(&pile.weights).map(|(d, p)| (d.clone(), serde_json::json!((p * 1e9) as u64))).collect();
    std::fs::write(&prior, serde_json::json!({ "tokens": tokens }).to_string()).unwrap();

    let out = dir.path().join("free");
    let mut a = args(&fit_dir, &prior, &out);
    a.bootstrap = 2;
    optimize::run(&a).unwrap();
    let o = Optimum::read(&out.join("optimum.parquet")).unwrap();
    let (doms, w) = (&o.domains, &o.weights);
    let cc = doms.iter().position(|x| x == "pile_cc").unwrap();
    let best = w.iter().cloned().fold(0.0, f64::max);
    assert_eq!(w[cc], best, "Pile-CC gets the largest weight: {w:?}");
    assert!(w[cc] > 0.7, "Pile-CC {:.3}", w[cc]);
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    // 512 runs of 1B tokens on the Pile-CC loss: the optimum's gain over the Pile's own shares
    // is large and every refit predicts it (the paper: the optimum beats the Pile's mixture).
    let g = o.gain;
    assert!(g.gain > 0.05 && g.is_clear(), "{g:?}");
    assert!((g.prior - g.gain - o.predicted).abs() < 1e-12);

    // Caps: 2 epochs of 1B tokens for a 1B-token target: w_d <= 2 · share_d.
    let out = dir.path().join("capped");
    let mut a = args(&fit_dir, &prior, &out);
    a.max_epochs = Some(2.0);
    a.target_tokens = Some(1_000_000_000);
    optimize::run(&a).unwrap();
    let o = Optimum::read(&out.join("optimum.parquet")).unwrap();
    let w = &o.weights;
    for (d, x) in o.domains.iter().zip(w) {
        let share = pile.weights[pile.domains.iter().position(|p| p == d).unwrap()];
        assert!(*x <= (2.0 * share).min(1.0) + 1e-9, "{d}: {x} above its cap {}", 2.0 * share);
    }
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(out.join("optimum.yaml").exists() && out.join("megatron_data_path.txt").exists());
}
