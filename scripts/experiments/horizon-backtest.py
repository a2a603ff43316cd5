#!/usr/bin/env python3
"""Backtests of the horizon-aware fit: fit on runs seen up to some tokens, predict the loss of
held-out mixtures at a later horizon, and compare four ways to rank the mixtures by it:

  law        fit --at-tokens END --until-tokens CUT (the power law per domain)
  regmix     plain RegMix fitted on the losses at CUT (what the paper's method sees)
  last-eval  each run's own loss at CUT (DataDecide's strong baseline: no regression)
  curve      each run's own curve up to CUT extrapolated by the law (no regression; it needs
             the run, so it ranks trained mixtures only, like last-eval)

by Spearman against the runs' true final target, and by the regret of the mixture each ranks
first (its true final loss minus the best true final loss among the runs).

Backtest A (no new runs): every proxy seen up to a cut step, predicted at its own end.

  horizon-backtest.py BIN OUT_DIR --runs RUNS_DIR --mixtures MIXTURES [--step S]

Backtest B (with anchor runs): the proxies seen to their end (SEEN, a dataset with its
trajectories), predicted at the anchors' tokens (TRUTH: some of the proxies' mixtures trained
longer, the same runs continued). NAMED: more long runs (the prior, an optimum) that are no
proxy's mixture, predicted by the final models and shown beside their true losses.

  horizon-backtest.py BIN OUT_DIR --seen SEEN --truth TRUTH [--named NAMED]

In both, the regression's out-of-fold predictions come from `fit --evaluate` on the truth
dataset: its rows are training mixtures, so fit scores each with the fold model that held it
out. Writes OUT_DIR/backtest.json and prints a table.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq


def run(cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{r.stderr[-4000:]}")
    return r.stderr


def write_json(path, value):
    """Writes value to path under a temporary name, renamed when complete."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


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


def trajectories_of(dataset):
    """The trajectories file a dataset names beside it (collect's `regmix.trajectories`)."""
    meta = pq.read_schema(dataset).metadata
    name = meta.get(b"regmix.trajectories")
    if not name:
        sys.exit(f"{dataset}: names no trajectories file (collect writes one beside the dataset)")
    return pq.read_table(Path(dataset).parent / name.decode())


def loss_at(dataset, names, tokens, expr):
    """Each run's target at its last evaluation at or before `tokens`, by run name."""
    t = trajectories_of(dataset)
    runs = dict(zip(pq.read_table(dataset).column("mixture_id").to_pylist(), names))
    best = {}
    for r in t.to_pylist():
        if r["tokens"] <= tokens and (r["mixture_id"] not in best or r["tokens"] > best[r["mixture_id"]]["tokens"]):
            best[r["mixture_id"]] = r
    cols = [c for c in t.column_names if c.startswith("valid_loss.")]
    if expr != "mean(valid_loss.*)":
        sys.exit("this backtest reads the target mean(valid_loss.*)")
    return {runs[m]: sum(r[c] for c in cols) / len(cols) for m, r in best.items()}


def by_run(table):
    return dict(zip(table.column("mixture_id").to_pylist(), table.column("run").to_pylist()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("out")
    ap.add_argument("--runs", help="A: the proxies' run folder")
    ap.add_argument("--mixtures", help="A: their mixtures")
    ap.add_argument("--step", type=int, default=64, help="A: the cut: evaluations up to this step are seen")
    ap.add_argument("--seen", help="B: the dataset the fits read (with its trajectories)")
    ap.add_argument("--truth", help="B: long runs of the seen dataset's mixtures (dataset)")
    ap.add_argument("--named", help="B: long runs of other mixtures (a dataset), shown apart")
    ap.add_argument("--target", default="mean(valid_loss.*)")
    ap.add_argument("--regressor", default="auto")
    a = ap.parse_args()
    b, out = Path(a.bin), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.runs and a.mixtures and not (a.seen or a.truth):
        backtest, final, cut = "A", out / "final.parquet", out / "cut.parquet"
        run([b / "collect", "--runs", a.runs, "--mixtures", a.mixtures, "--output", final])
        run([b / "collect", "--runs", a.runs, "--mixtures", a.mixtures, "--step", a.step, "--output", cut])
    elif a.seen and a.truth and not (a.runs or a.mixtures):
        backtest, final, cut = "B", Path(a.truth), Path(a.seen)
    else:
        sys.exit("give --runs and --mixtures (backtest A) or --seen and --truth (backtest B)")
    ft, ct = pq.read_table(final), pq.read_table(cut)
    end_tokens = max(ft.column("tokens").to_pylist())
    cut_tokens = max(ct.column("tokens").to_pylist())
    if min(ft.column("tokens").to_pylist()) != end_tokens:
        sys.exit(f"{final}: its runs end at different tokens; a backtest predicts one horizon")
    final_run, cut_run = by_run(ft), by_run(ct)
    truth = {final_run[m]: v for m, v in zip(ft.column("mixture_id").to_pylist(), target_of(ft, a.target))}
    at_cut = {cut_run[m]: v for m, v in zip(ct.column("mixture_id").to_pylist(), target_of(ct, a.target))}
    evaluate = ["--evaluate", final] + (["--evaluate", a.named] if a.named else [])
    common = ["--target", a.target, "--regressor", a.regressor, *evaluate]
    horizon = ["--at-tokens", end_tokens] + (["--until-tokens", cut_tokens] if backtest == "A" else [])
    run([b / "fit", "--dataset", cut, "--output", out / "regmix", *common])
    run([b / "fit", "--dataset", cut, *horizon, "--output", out / "law", *common])
    named = pq.read_table(a.named) if a.named else None

    def predictions(fit_dir):
        rep = pq.read_table(fit_dir / "fit_report.parquet")
        selected = rep.schema.metadata[b"regmix.selected"].decode()
        p = [r for r in pq.read_table(fit_dir / "predictions.parquet").to_pylist() if r["regressor"] == selected]
        # test:<stem> splits, one per --evaluate file, in their order.
        got = {final_run[r["mixture_id"]]: r["prediction"] for r in p if r["split"] == f"test:{final.stem}"}
        apart = {}
        if named is not None:
            names = by_run(named)
            apart = {names[r["mixture_id"]]: r["prediction"] for r in p if r["split"] == f"test:{Path(a.named).stem}"}
        # With --at-tokens, the "truth" of the out-of-fold rows is each run's own curve at the horizon.
        curves = {cut_run[r["mixture_id"]]: r["truth"] for r in p if r["split"] == "oof"}
        return selected, got, rep, curves, apart

    rows = []
    methods = []
    sel, law_pred, law_rep, curves, law_named = predictions(out / "law")
    how = f"fit --at-tokens {end_tokens}" + (f" --until-tokens {cut_tokens}" if backtest == "A" else "")
    methods.append(("law", f"{how} ({sel})", law_pred))
    sel, reg_pred, _, _, reg_named = predictions(out / "regmix")
    methods.append(("regmix", f"fit on the losses at {cut_tokens} tokens ({sel})", reg_pred))
    methods.append(("last-eval", f"each run's own loss at {cut_tokens} tokens", at_cut))
    methods.append(("curve", f"each run's own curve up to {cut_tokens} tokens, extrapolated", curves))
    # Runs the law left out (too few evaluations) are left out of every method's ranking.
    ids = sorted(i for i in truth if i in at_cut and i in curves and i in law_pred and i in reg_pred)
    if len(ids) < 3:
        sys.exit(f"{final}: {len(ids)} runs to rank; a backtest needs at least 3")
    best_true = min(truth[i] for i in ids)
    top = min(10, len(ids) // 3)
    for name, how, pred in methods:
        xs = [pred[i] for i in ids]
        ys = [truth[i] for i in ids]
        chosen = min(ids, key=lambda i: pred[i])
        topk = sorted(ids, key=lambda i: pred[i])[:top]
        rows.append({
            "method": name,
            "how": how,
            "spearman": spearman(xs, ys),
            "regret": truth[chosen] - best_true,
            "top_k": top,
            "regret_top_k_mean": sum(truth[i] for i in topk) / top - best_true,
            # Mean prediction minus truth (for last-eval: how much the loss still falls).
            "bias": sum(x - y for x, y in zip(xs, ys)) / len(xs),
            "chosen": chosen,
        })
    laws = [r for r in law_rep.to_pylist() if r["split"].startswith("law:")]
    result = {
        "backtest": backtest,
        "runs": len(ids),
        "cut_tokens": cut_tokens,
        "end_tokens": end_tokens,
        "target": a.target,
        "best_true_final": best_true,
        "methods": rows,
        "laws": [{"domain": r["split"][4:], "beta": r["exponent"], "curve_rmse": r["curve_rmse"]} for r in laws],
        "law_fit": json.loads(law_rep.schema.metadata[b"regmix.horizon"].decode()),
    }
    if named is not None:
        true_named = {n: v for n, v in zip(named.column("run").to_pylist(), target_of(named, a.target))}
        cut_named = loss_at(a.named, named.column("run").to_pylist(), cut_tokens, a.target)
        result["named"] = [{"run": n, "truth": true_named[n], "law": law_named.get(n), "regmix": reg_named.get(n),
                            "last_eval": cut_named.get(n)} for n in sorted(true_named)]
    write_json(out / "backtest.json", result)
    print(f"Backtest {backtest}: {len(ids)} runs, seen up to {cut_tokens} tokens, predicted at {end_tokens} (target {a.target})")
    print(f"{'method':<10} {'Spearman':>9} {'regret':>8} {f'regret top-{top}':>14} {'bias':>8}  how")
    for r in rows:
        print(f"{r['method']:<10} {100 * r['spearman']:>9.2f} {r['regret']:>8.4f} {r['regret_top_k_mean']:>14.4f} {r['bias']:>8.4f}  {r['how']}")
    print("exponents: " + ", ".join(f"{l['domain']} {l['beta']:.2f}" for l in result["laws"]))
    for r in result.get("named", []):
        fmt = lambda v: "-" if v is None else f"{v:.4f}"
        print(f"{r['run']}: true {r['truth']:.4f} at {end_tokens}; law {fmt(r['law'])}, regmix {fmt(r['regmix'])}, "
              f"own loss at {cut_tokens} {fmt(r['last_eval'])}")


if __name__ == "__main__":
    main()
