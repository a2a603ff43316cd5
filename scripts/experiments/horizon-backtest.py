#!/usr/bin/env python3
"""Backtest A of the horizon-aware fit (no new runs): fit on every proxy's evaluations up to a
fraction of its tokens, predict its loss at the end for mixtures held out by 5-fold
cross-validation, and compare three ways to rank the mixtures by their final loss:

  law        fit --at-tokens END --until-tokens CUT (the power law per domain)
  regmix     plain RegMix fitted on the losses at CUT (what the paper's method sees)
  last-eval  each run's own loss at CUT (DataDecide's strong baseline: no regression)
  curve      each run's own curve up to CUT extrapolated by the law (no regression; it needs
             the run, so it ranks trained mixtures only, like last-eval)

by Spearman against the runs' true final target, and by the regret of the mixture each ranks
first (its true final loss minus the best true final loss among the runs).

  horizon-backtest.py BIN RUNS_DIR MIXTURES OUT_DIR [--step S] [--target EXPR]

The regression's out-of-fold predictions come from `fit --evaluate` on the final dataset: its
rows are the training mixtures, so fit scores each with the fold model that held it out.
Writes OUT_DIR/backtest.json and prints a table.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq


def run(cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{r.stderr[-4000:]}")
    return r.stderr


def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2.0
        i = j + 1
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb)


def target_of(table, expr):
    cols = [c for c in table.column_names if c.startswith("valid_loss.")]
    if expr != "mean(valid_loss.*)":
        sys.exit("this backtest reads the target mean(valid_loss.*)")
    vals = [table.column(c).to_pylist() for c in cols]
    return [sum(v[i] for v in vals) / len(vals) for i in range(table.num_rows)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("runs")
    ap.add_argument("mixtures")
    ap.add_argument("out")
    ap.add_argument("--step", type=int, default=64, help="the cut: evaluations up to this step are seen")
    ap.add_argument("--target", default="mean(valid_loss.*)")
    ap.add_argument("--regressor", default="auto")
    a = ap.parse_args()
    b, out = Path(a.bin), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    final, cut = out / "final.parquet", out / "cut.parquet"
    run([b / "collect", "--runs", a.runs, "--mixtures", a.mixtures, "--output", final])
    run([b / "collect", "--runs", a.runs, "--mixtures", a.mixtures, "--step", a.step, "--output", cut])
    ft, ct = pq.read_table(final), pq.read_table(cut)
    end_tokens = max(ft.column("tokens").to_pylist())
    cut_tokens = max(ct.column("tokens").to_pylist())
    truth = dict(zip(ft.column("mixture_id").to_pylist(), target_of(ft, a.target)))
    at_cut = dict(zip(ct.column("mixture_id").to_pylist(), target_of(ct, a.target)))
    ids = sorted(set(truth) & set(at_cut))
    common = ["--target", a.target, "--regressor", a.regressor, "--evaluate", final]
    run([b / "fit", "--dataset", cut, "--output", out / "regmix", *common])
    log = run([b / "fit", "--dataset", cut, "--at-tokens", end_tokens, "--until-tokens", cut_tokens, "--output", out / "law", *common])

    def oof_predictions(fit_dir):
        rep = pq.read_table(fit_dir / "fit_report.parquet")
        selected = rep.schema.metadata[b"regmix.selected"].decode()
        p = pq.read_table(fit_dir / "predictions.parquet").to_pylist()
        got = {r["mixture_id"]: r["prediction"] for r in p if r["split"] == "test:final" and r["regressor"] == selected}
        # With --at-tokens, the "truth" of the out-of-fold rows is each run's own curve at the horizon.
        curves = {r["mixture_id"]: r["truth"] for r in p if r["split"] == "oof" and r["regressor"] == selected}
        return selected, got, rep, curves

    rows = []
    methods = []
    sel, law_pred, law_rep, curves = oof_predictions(out / "law")
    methods.append(("law", f"fit --at-tokens {end_tokens} --until-tokens {cut_tokens} ({sel})", law_pred))
    sel, reg_pred, _, _ = oof_predictions(out / "regmix")
    methods.append(("regmix", f"fit on the losses at {cut_tokens} tokens ({sel})", reg_pred))
    methods.append(("last-eval", f"each run's own loss at {cut_tokens} tokens", at_cut))
    methods.append(("curve", f"each run's own curve up to {cut_tokens} tokens, extrapolated", curves))
    # Runs the law left out (too few evaluations) are left out of every method's ranking.
    ids = [i for i in ids if i in curves and i in law_pred and i in reg_pred]
    best_true = min(truth[i] for i in ids)
    for name, how, pred in methods:
        xs = [pred[i] for i in ids]
        ys = [truth[i] for i in ids]
        chosen = min(ids, key=lambda i: pred[i])
        top10 = sorted(ids, key=lambda i: pred[i])[:10]
        rows.append({
            "method": name,
            "how": how,
            "spearman": spearman(xs, ys),
            "regret": truth[chosen] - best_true,
            "regret_top10_mean": sum(truth[i] for i in top10) / 10 - best_true,
            # Mean prediction minus truth (for last-eval: how much the loss still falls).
            "bias": sum(x - y for x, y in zip(xs, ys)) / len(xs),
            "chosen": chosen,
        })
    laws = [r for r in law_rep.to_pylist() if r["split"].startswith("law:")]
    result = {
        "runs": len(ids),
        "cut_tokens": cut_tokens,
        "end_tokens": end_tokens,
        "target": a.target,
        "best_true_final": best_true,
        "methods": rows,
        "laws": [{"domain": r["split"][4:], "beta": r["exponent"], "curve_rmse": r["curve_rmse"]} for r in laws],
        "law_fit": json.loads(law_rep.schema.metadata[b"regmix.horizon"].decode()),
    }
    (out / "backtest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"Backtest A: {len(ids)} runs, seen up to {cut_tokens} tokens, predicted at {end_tokens} (target {a.target})")
    print(f"{'method':<10} {'Spearman':>9} {'regret':>8} {'regret top-10':>14} {'bias':>8}  how")
    for r in rows:
        print(f"{r['method']:<10} {100 * r['spearman']:>9.2f} {r['regret']:>8.4f} {r['regret_top10_mean']:>14.4f} {r['bias']:>8.4f}  {r['how']}")
    print("exponents: " + ", ".join(f"{l['domain']} {l['beta']:.2f}" for l in result["laws"]))


if __name__ == "__main__":
    main()
