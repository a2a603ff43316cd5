"""Prints the optimum beside the prior (from optimize's optimum.parquet, with the bootstrap
spread when there is one), then target-train's comparison.parquet as a table: one column per
target model, its mean validation loss over the domains, and the loss on each domain (lower
is better).

    python scripts/show-comparison.py data/target/comparison.parquet [data/optimum/optimum.parquet]
"""
import json
import sys

import pyarrow.parquet as pq

if len(sys.argv) > 2:
    f = pq.read_table(sys.argv[2])
    md = {k.decode(): v.decode() for k, v in (f.schema.metadata or {}).items()}
    prior = json.loads(md.get("regmix.prior", "{}"))
    o = f.to_pydict()
    doms = [c[len("weight."):] for c in o if c.startswith("weight.")]
    sd = o.get("predicted_std", [None])[0]
    print(f"\noptimum for {md.get('regmix.target', '?')}: predicted {o['predicted'][0]:.4f}" + (f" ± {sd:.4f}" if sd is not None else ""))
    g, gsd, share = o["predicted_gain"][0], o["predicted_gain_std"][0], o["bootstrap_win_share"][0]
    print(f"predicted at the prior {o['predicted_prior'][0]:.4f}: gain {g:.4f}"
          + (f" ± {gsd:.4f}, optimum predicted lower in {100 * share:.0f}% of bootstrap refits" if gsd is not None else ""))
    print(f"{'domain':<16} {'optimum':>8} {'± sd':>7} {'prior':>8}")
    for d in sorted(doms, key=lambda d: -o[f"weight.{d}"][0]):
        s = o.get(f"weight_std.{d}", [None])[0]
        print(f"{d:<16} {o[f'weight.{d}'][0]:>8.4f} {(f'{s:.4f}' if s is not None else '—'):>7} {prior.get(d, float('nan')):>8.4f}")

t = pq.read_table(sys.argv[1]).to_pydict()
domains = [c[len("valid_loss."):] for c in t if c.startswith("valid_loss.")]
rows = []
for i, name in enumerate(t["mixture"]):
    losses = [t[f"valid_loss.{d}"][i] for d in domains]
    known = [x for x in losses if x is not None]
    rows.append((name, t["status"][i], sum(known) / len(known) if known else float("nan"), losses))
width = max(len(d) for d in domains + ["mean"])
print(f"\nfinal validation loss (nats/token), {t['tokens'][0]:,} training tokens per model")
print(f"{'domain':<{width}}  " + "  ".join(f"{r[0]:>10}" for r in rows))
print(f"{'mean':<{width}}  " + "  ".join(f"{r[2]:>10.4f}" for r in rows))
for j, d in enumerate(domains):
    print(f"{d:<{width}}  " + "  ".join(f"{(r[3][j] if r[3][j] is not None else float('nan')):>10.4f}" for r in rows))
best = min(rows, key=lambda r: r[2])
print(f"lowest mean loss: {best[0]}")
