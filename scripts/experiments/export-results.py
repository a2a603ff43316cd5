#!/usr/bin/env python3
"""Write a collect output as the small, committed CSV tables of an experiment's results, so
that a later session on a fresh machine scores them without training them again:

  OUT.csv               one row per run: run, tokens, steps, weight.<domain>, valid_loss.<d>
                        (what `collect --import-table OUT.csv` reads back into a dataset, each
                        row at its own tokens)
  OUT.trajectories.csv  every evaluation of every run: run, step, tokens, lr, warmup,
                        valid_loss.<d> (the curves, for plots and for checking a crossing)

  export-results.py DATASET.parquet OUT.csv [--merge]

With --merge, the runs already in OUT.csv (an earlier session's, committed) are kept and the
dataset's runs added, so a table grows across sessions as its runs finish; a run in both must
have the same values in every column (else it stops, naming the run and the column: results of
other settings, or a trainer that is not deterministic, are never mixed in). Rows are in run
order (m2 before m10).

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
    args = [a for a in sys.argv[1:] if a != "--merge"]
    merge = "--merge" in sys.argv[1:]
    if len(args) != 2:
        sys.exit(__doc__)
    src, out = Path(args[0]), Path(args[1])
    t = pq.read_table(src)
    meta = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()}
    if meta.get("regmix.schema") != "dataset":
        sys.exit(f"{src}: not a collect dataset (metadata regmix.schema = {meta.get('regmix.schema')!r})")
    domains, evals = json.loads(meta["regmix.domains"]), json.loads(meta["regmix.eval_domains"])
    cols = ["run", "tokens", "steps"] + [f"weight.{d}" for d in domains] + [f"valid_loss.{e}" for e in evals]
    rows = [{c: cell(v) for c, v in r.items()} for r in t.select(cols).to_pylist()]
    by_id = {r["mixture_id"]: r["run"] for r in t.select(["mixture_id", "run"]).to_pylist()}
    out.parent.mkdir(parents=True, exist_ok=True)
    if merge:
        rows = merged(out, cols, rows, ("run",))
    # Both tables are checked before either is written, so a refused merge changes neither.
    name = meta.get("regmix.trajectories", "")
    if not name:
        write(out, cols, rows)
        print(f"{out}: {len(rows)} runs")
        return
    traj = src.parent / name
    sha = hashlib.sha256(traj.read_bytes()).hexdigest()
    if sha != meta.get("regmix.trajectories_sha256"):
        sys.exit(f"{traj}: sha256 {sha} is not the one {src} records; collect again")
    tcols = ["run", "step", "tokens", "lr", "warmup"] + [f"valid_loss.{e}" for e in evals]
    tt = []
    for r in pq.read_table(traj).to_pylist():
        r["run"] = by_id[r["mixture_id"]]
        tt.append({c: cell(r[c]) for c in tcols})
    tout = out.with_suffix(".trajectories.csv")
    if merge:
        tt = merged(tout, tcols, tt, ("run", "step"))
    write(out, cols, rows)
    print(f"{out}: {len(rows)} runs")
    write(tout, tcols, tt)
    print(f"{tout}: {len(tt)} evaluations")


def run_order(name):
    """m2 before m10: the name's digits compared as a number."""
    head = name.rstrip("0123456789")
    tail = name[len(head):]
    return (head, int(tail) if tail else -1, name)


def merged(path, cols, rows, key):
    """`rows` added to the rows already in `path` (all cells as text), checked where both have
    a row of the same key."""
    if not path.exists():
        old = []
    else:
        with open(path, newline="") as f:
            r = csv.DictReader(f)
            if r.fieldnames != cols:
                sys.exit(f"{path}: its columns are not this dataset's ({r.fieldnames} vs {cols}); results of other settings")
            old = list(r)
    have = {tuple(o[k] for k in key): o for o in old}
    for n in rows:
        k = tuple(n[c] for c in key)
        o = have.get(k)
        if o is not None:
            diff = [c for c in cols if o[c] != n[c]]
            if diff:
                sys.exit(f"{path}: {dict(zip(key, k))} is there with other values in {', '.join(diff[:4])}: results of other settings or another trainer; not merged")
        have[k] = n
    return sorted(have.values(), key=lambda r: (run_order(r["run"]),) + tuple(int(r[c]) for c in key[1:]))


def write(path, cols, rows):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([r[c] for c in cols])
    tmp.replace(path)


if __name__ == "__main__":
    main()
