#!/usr/bin/env python3
"""The held-out targets scored: how well each way of predicting ranks mixtures that no fit read,
at the target's own scale (small targets × 4M tokens). Each fit is refitted here exactly as its
optimum was (same dataset, flags and seed) with `fit --evaluate HELDOUT`, which scores the
held-out rows only after the final model is fixed; with --at-tokens each row is predicted at
its own tokens.

  law        fit --at-tokens T on the proxies with the anchors joined (what horizon-optimum searched)
  regmix     plain RegMix on the 256 proxies' losses at 262k tokens (what horizon-plain searched)
  longest    plain RegMix on the 32 anchors' losses at 2M tokens (the longest runs' last evaluation)
  own-early  each held-out target's own loss at its last evaluation at or before a quarter of its
             tokens (it needs the target trained; DataDecide's baseline, shown for scale)

  horizon-heldout.py BIN OUT_DIR --heldout H.parquet --law RUNS.parquet --proxies P.parquet
      --anchors A.parquet --at-tokens T --fit-flags "$(FIT_FLAGS)"

Spearman against the targets' true mean validation loss, and the regret of the first-ranked.
Writes OUT_DIR/heldout.json and prints a table; fewer than the planned targets is a partial
result and says so.
"""
import argparse
import importlib.util
import shlex
import sys
from pathlib import Path

import pyarrow.parquet as pq

spec = importlib.util.spec_from_file_location("backtest", Path(__file__).with_name("horizon-backtest.py"))
bt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bt)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("out")
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--law", required=True, help="the dataset the horizon optimum's fit read")
    ap.add_argument("--proxies", required=True, help="the dataset plain RegMix's fit read")
    ap.add_argument("--anchors", required=True, help="the long runs alone (a dataset)")
    ap.add_argument("--at-tokens", type=int, required=True)
    ap.add_argument("--planned", type=int, default=12, help="how many held-out targets the experiment plans")
    ap.add_argument("--fit-flags", required=True, help="the fits' flags (the Makefile's FIT_FLAGS), with --target")
    a = ap.parse_args()
    flags = shlex.split(a.fit_flags)
    if "--target" not in flags:
        sys.exit("--fit-flags: give the fits' --target")
    a.target = flags[flags.index("--target") + 1]
    b, out = Path(a.bin), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    held = pq.read_table(a.heldout)
    names = bt.by_run(held)
    truth = {names[m]: v for m, v in zip(held.column("mixture_id").to_pylist(), bt.target_of(held, a.target))}
    if len(truth) < 3:
        sys.exit(f"{a.heldout}: {len(truth)} held-out targets; ranking needs at least 3")
    common = [*flags, "--evaluate", a.heldout]
    fits = {
        "law": ([b / "fit", "--dataset", a.law, "--at-tokens", a.at_tokens], f"fit --at-tokens {a.at_tokens} on {Path(a.law).name}"),
        "regmix": ([b / "fit", "--dataset", a.proxies], f"fit on {Path(a.proxies).name}"),
        "longest": ([b / "fit", "--dataset", a.anchors], f"fit on {Path(a.anchors).name}"),
    }
    methods = []
    for name, (cmd, how) in fits.items():
        d = out / name
        bt.run([*cmd, "--output", d, *common])
        selected = pq.read_table(d / "fit_report.parquet").schema.metadata[b"regmix.selected"].decode()
        p = {names[r["mixture_id"]]: r["prediction"] for r in pq.read_table(d / "predictions.parquet").to_pylist()
             if r["regressor"] == selected and r["split"] == f"test:{Path(a.heldout).stem}"}
        methods.append((name, f"{how} ({selected})", p))
    quarter = max(held.column("tokens").to_pylist()) // 4
    early = bt.loss_at(a.heldout, held.column("run").to_pylist(), quarter, a.target)
    methods.append(("own-early", f"each target's own loss at ≤ {quarter} tokens", early))
    ids = sorted(truth)
    best = min(truth[i] for i in ids)
    rows = []
    for name, how, pred in methods:
        missing = [i for i in ids if i not in pred]
        if missing:
            sys.exit(f"{name}: no prediction for {', '.join(missing)}")
        chosen = min(ids, key=lambda i: pred[i])
        rows.append({"method": name, "how": how, "spearman": bt.spearman([pred[i] for i in ids], [truth[i] for i in ids]),
                     "regret": truth[chosen] - best, "chosen": chosen,
                     "bias": sum(pred[i] - truth[i] for i in ids) / len(ids)})
    partial = len(ids) < a.planned
    bt.write_json(out / "heldout.json", {"targets": len(ids), "planned": a.planned, "partial": partial,
                                         "at_tokens": a.at_tokens, "target": a.target, "methods": rows})
    print(f"held-out targets: {len(ids)} of {a.planned}{' (a partial result)' if partial else ''}, target {a.target}")
    print(f"{'method':<10} {'Spearman':>9} {'regret':>8} {'bias':>8}  how")
    for r in rows:
        print(f"{r['method']:<10} {100 * r['spearman']:>9.2f} {r['regret']:>8.4f} {r['bias']:>8.4f}  {r['how']}")


if __name__ == "__main__":
    main()
