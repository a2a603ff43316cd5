//! The report from a small pipeline's real outputs (sampled mixtures, a dataset whose losses
//! depend on the weights, fit, optimize with bootstrap, a comparison): every figure is in the
//! page, and headless Chromium lays each one out with a non-zero size and its marks.

use std::path::Path;
use std::process::Command;

use clap::Parser;
use rand::SeedableRng;
use regmix_core::run::RunStatus;
use regmix_core::schema::{domains, domains_and_eval, Schema};
use regmix_core::table::{batch, col, write_parquet};
use regmix_core::Provenance;
use regmix_mixture::sampler::dirichlet;
use regmix_mixture::Optimum;

/// Draws the report in this process.
fn report(args: &[String]) -> anyhow::Result<()> {
    let a = report::Args::parse_from(std::iter::once("report".to_string()).chain(args.iter().cloned()));
    report::run(&a)
}

const DOMS: [&str; 4] = ["web", "code", "books", "math"];
const FIGURES: [&str; 6] =
    ["optimum", "comparison", "target-curves", "mixtures", "weight-vs-target", "predicted-vs-true"];

/// Writes the inputs of every section under `dir`; returns the report's arguments.
fn pipeline(dir: &Path) -> Vec<String> {
    let prov = Provenance::new("test", "0", &["report-test"]);
    let doms: Vec<String> = DOMS.iter().map(|s| s.to_string()).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let prior = [0.4, 0.3, 0.2, 0.1];
    let weights: Vec<Vec<f64>> = (0..60)
        .map(|_| {
            let mut w = vec![0.0; 4];
            dirichlet(&mut rng, &prior, &mut w);
            w
        })
        .collect();
    let mixtures =
        regmix_mixture::io::Mixtures { domains: doms.clone(), ids: (0..60).collect(), weights: weights.clone() };
    mixtures.write_parquet(&dir.join("mixtures.parquet"), &serde_json::json!({"test": true}), &prov).unwrap();
    // Loss per domain falls with the log of its own weight; web helps the others a little.
    let loss = |w: &[f64], e: usize| 4.0 - 0.3 * (w[e] + 1e-3).ln() * 0.2 - 0.4 * w[0];
    let mut ds = collect::Dataset::empty(doms.clone(), doms.clone());
    for (i, w) in weights.iter().enumerate() {
        ds.ids.push(i as u32);
        ds.runs.push(i.to_string());
        ds.tokens.push(1000);
        ds.steps.push(10);
        ds.status.push(RunStatus::Finished.as_str().into());
        ds.weights.push(w.clone());
        ds.losses.push((0..4).map(|e| Some(loss(w, e))).collect());
    }
    ds.write(&dir.join("dataset.parquet"), None, &prov).unwrap();
    let prior_json = dir.join("prior.json");
    std::fs::write(&prior_json, serde_json::json!({"weights": DOMS.iter().zip(prior).map(|(d, w)| (d.to_string(), serde_json::json!(w))).collect::<serde_json::Map<_, _>>()}).to_string()).unwrap();
    let p = |s: &str| dir.join(s).to_str().unwrap().to_string();
    fit::run(&fit::Args::parse_from([
        "fit",
        "--dataset",
        &p("dataset.parquet"),
        "--target",
        "mean(valid_loss.*)",
        "--regressor",
        "gp",
        "--output",
        &p("fit"),
    ]))
    .unwrap();
    optimize::run(&optimize::Args::parse_from([
        "optimize",
        "--fit",
        &p("fit"),
        "--prior",
        &p("prior.json"),
        "--output",
        &p("optimum"),
        "--samples",
        "20000",
        "--bootstrap",
        "3",
    ]))
    .unwrap();
    let s = Schema::get("comparison");
    let lists = domains_and_eval(&doms, &doms);
    let named = [("regmix", [0.7, 0.1, 0.1, 0.1]), ("prior", prior), ("uniform", [0.25; 4])];
    let mut cols = vec![col::str(&named.map(|n| n.0)), col::u64(vec![1000; 3]), col::str(&["finished"; 3])];
    cols.extend((0..4).map(|j| col::f64(named.iter().map(|n| n.1[j]).collect())));
    cols.extend((0..4).map(|e| col::f64_opt(named.iter().map(|n| Some(loss(&n.1, e))).collect())));
    write_parquet(&dir.join("comparison.parquet"), s, &lists, &batch(s, &lists, cols).unwrap(), &[], &prov).unwrap();
    // Each target's metrics beside comparison.parquet, as target-train writes them: evaluations at
    // steps 2 and 4 only (nulls between), the regmix curve starting above the others and ending below.
    let s = Schema::get("run_metrics");
    let lists = domains(&doms);
    for (k, (name, _)) in named.iter().enumerate() {
        let eval = |step: usize| -> Option<f64> {
            (step % 2 == 0).then_some(if k == 0 { 6.0 - step as f64 * 0.5 } else { 5.5 - step as f64 * 0.3 })
        };
        let mut cols = vec![
            col::u64(vec![1, 2, 3, 4]),
            col::u64(vec![250, 500, 750, 1000]),
            col::f64(vec![1e-3; 4]),
            col::f64(vec![5.0, 4.5, 4.0, 3.5]),
            col::f64(vec![1.0; 4]),
            col::f64(vec![0.1, 0.2, 0.3, 0.4]),
            col::str(&["running", "running", "running", "finished"]),
        ];
        cols.extend((0..4).map(|_| col::f64_opt((1..=4).map(eval).collect())));
        std::fs::create_dir_all(dir.join(name)).unwrap();
        let md: Vec<(String, String)> = [
            ("regmix.run_spec", "{}"),
            ("regmix.mixture_id", "0"),
            ("regmix.model", "{}"),
            ("regmix.train", "{}"),
            ("regmix.backend", "cpu f32, 1 thread"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        write_parquet(&dir.join(name).join("metrics.parquet"), s, &lists, &batch(s, &lists, cols).unwrap(), &md, &prov)
            .unwrap();
    }
    vec![
        "--mixtures".into(),
        p("mixtures.parquet"),
        "--dataset".into(),
        p("dataset.parquet"),
        "--fit".into(),
        p("fit"),
        "--optimum".into(),
        p("optimum"),
        "--comparison".into(),
        p("comparison.parquet"),
        "--output".into(),
        p("report.html"),
    ]
}

#[test]
fn every_figure_and_table_is_in_the_page_with_the_provenance_of_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let args = pipeline(dir.path());
    report(&args).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for f in FIGURES {
        assert!(html.contains(&format!("<figure data-figure=\"{f}\"><svg")), "figure {f} missing");
    }
    assert_eq!(html.matches("<details>").count(), FIGURES.len(), "one table behind each figure");
    // Error bars from the bootstrap, the prior beside the optimum, the best target model.
    assert!(html.contains("one standard deviation over bootstrap refits"));
    // The gain over the prior, with its bootstrap spread and a verdict on it.
    assert!(html.contains("gain of the optimum over the prior") && html.contains("% of refits"));
    // The verdict the optimum's own gain calls for, and not the other one.
    let gain = Optimum::read(&dir.path().join("optimum/optimum.parquet")).unwrap().gain;
    let (said, not_said) = if gain.is_clear() {
        ("The proxies support this gain", "do not clearly support")
    } else {
        ("do not clearly support this gain", "The proxies support this gain")
    };
    assert!(html.contains(said) && !html.contains(not_said), "gain {gain:?}: the page should say `{said}`");
    assert!(html.contains("lowest mean validation loss: <b>regmix"));
    // Provenance: each file read, with the command that wrote it.
    for f in [
        "mixtures.parquet",
        "dataset.parquet",
        "fit_report.parquet",
        "predictions.parquet",
        "optimum.parquet",
        "comparison.parquet",
    ] {
        assert!(html.contains(f), "{f} not in the provenance table");
    }
    assert!(html.contains("report-test") && html.contains("optimize 0.1.0"));
    assert!(
        !html.contains("http://")
            || html.matches("http://").count() == html.matches("http://www.w3.org/2000/svg").count(),
        "no network resources"
    );
}

#[test]
fn training_curves_come_from_the_targets_metrics_and_are_left_out_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let args = pipeline(dir.path());
    report(&args).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    // Two evaluations per model (the rows without one are skipped): regmix 5.0 then 4.0, the
    // others 4.9 then 4.3.
    assert!(html.contains("<td>500</td><td>5.0000</td><td>4.9000</td><td>4.9000</td>"), "table of the curves");
    assert!(html.contains("<td>1000</td><td>4.0000</td><td>4.3000</td><td>4.3000</td>"));
    assert!(html.contains("prior/metrics.parquet"), "the metrics are in the provenance table");

    std::fs::remove_file(dir.path().join("prior/metrics.parquet")).unwrap();
    report(&args).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(!html.contains("data-figure=\"target-curves\"") && html.contains("data-figure=\"comparison\""));
}

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .map(String::from)
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

#[test]
fn chromium_lays_out_every_figure_with_a_size_and_marks() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium on PATH (scripts/setup.sh installs Debian's chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let args = pipeline(dir.path());
    report(&args).unwrap();
    let url = format!("file://{}", dir.path().join("report.html").display());
    let o = Command::new(&browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom", &url])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    let start = dom
        .find("<pre id=\"render-check\"")
        .unwrap_or_else(|| panic!("no render check in the DOM: {}", String::from_utf8_lossy(&o.stderr)));
    let json = &dom[start..];
    let json = &json[json.find('>').unwrap() + 1..json.find("</pre>").unwrap()];
    let figs: Vec<serde_json::Value> =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("render check `{json}`: {e}"));
    let names: Vec<&str> = figs.iter().map(|f| f["figure"].as_str().unwrap()).collect();
    assert_eq!(names, FIGURES);
    for f in &figs {
        assert!(f["width"].as_f64().unwrap() > 100.0 && f["height"].as_f64().unwrap() > 100.0, "{f}");
        assert!(f["marks"].as_u64().unwrap() >= 10, "{f}");
    }
}
