"""Prints target-train's comparison.parquet as a table: one row per target model, its
mean validation loss over the domains, and the loss on each domain (lower is better).

    python scripts/show-comparison.py data/target/comparison.parquet
"""
import sys

import pyarrow.parquet as pq

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
