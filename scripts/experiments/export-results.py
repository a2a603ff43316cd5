#!/usr/bin/env python3
"""Write a collect output as the small, committed CSV tables of an experiment's results, so
that a later session on a fresh machine scores them without training them again:

  OUT.csv               one row per run: run, tokens, steps, weight.<domain>, valid_loss.<d>
                        (what `collect --import-table OUT.csv` reads back into a dataset, each
                        row at its own tokens)
  OUT.trajectories.csv  every evaluation of every run: run, step, tokens, lr, warmup,
                        valid_loss.<d> (the curves, for plots and for checking a crossing)

  export-results.py DATASET.parquet OUT.csv

Floats are written with repr (shortest round trip), so the import reads the values collect
wrote, bit for bit. The dataset must have been written by collect (schema `dataset`); its
trajectories are read from the file its metadata names, checked against its sha256.
"""
import csv
import hashlib
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq


def cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    t = pq.read_table(src)
    meta = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()}
    if meta.get("regmix.schema") != "dataset":
        sys.exit(f"{src}: not a collect dataset (metadata regmix.schema = {meta.get('regmix.schema')!r})")
    domains, evals = json.loads(meta["regmix.domains"]), json.loads(meta["regmix.eval_domains"])
    cols = ["run", "tokens", "steps"] + [f"weight.{d}" for d in domains] + [f"valid_loss.{e}" for e in evals]
    rows = t.select(cols).to_pylist()
    by_id = {r["mixture_id"]: r["run"] for r in t.select(["mixture_id", "run"]).to_pylist()}
    out.parent.mkdir(parents=True, exist_ok=True)
    write(out, cols, rows)
    print(f"{out}: {len(rows)} runs")

    name = meta.get("regmix.trajectories", "")
    if not name:
        return
    traj = src.parent / name
    sha = hashlib.sha256(traj.read_bytes()).hexdigest()
    if sha != meta.get("regmix.trajectories_sha256"):
        sys.exit(f"{traj}: sha256 {sha} is not the one {src} records; collect again")
    tt = pq.read_table(traj).to_pylist()
    tcols = ["run", "step", "tokens", "lr", "warmup"] + [f"valid_loss.{e}" for e in evals]
    for r in tt:
        r["run"] = by_id[r["mixture_id"]]
    tout = out.with_suffix(".trajectories.csv")
    write(tout, tcols, tt)
    print(f"{tout}: {len(tt)} evaluations")


def write(path, cols, rows):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([cell(r[c]) for c in cols])
    tmp.replace(path)


if __name__ == "__main__":
    main()
