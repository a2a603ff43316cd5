#!/usr/bin/env python3
"""Join committed results tables (export-results.py's CSV pairs) where some runs are longer runs
of others: each run of a LONGER table that BASE also has (same run name) replaces BASE's row and
curve, and the rest of LONGER's runs are added. The horizon fit reads the result, so the 256
proxies' curves to 262k tokens and the anchors' curves to 2M come in as one dataset.

  extend-runs.py BASE.csv LONGER.csv [LONGER.csv ...] --output OUT.csv

A longer run replaces a base run only if it is that run continued: the same weights, and at every
step both evaluated the same tokens, learning rate and losses, bit for bit (the tables hold
floats as repr, so equal text is equal floats). Otherwise it stops, naming the run, the step and
the column. Writes OUT.csv and OUT.trajectories.csv, each under a temporary name first.
"""
import argparse
import csv
import os
import sys
from pathlib import Path


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def traj_path(table):
    return table.with_name(table.name[: -len(".csv")] + ".trajectories.csv")


def read(path):
    if not path.is_file():
        die(f"{path}: not found")
    with path.open(newline="") as f:
        r = csv.reader(f)
        header = next(r, None)
        if header is None:
            die(f"{path}: empty")
        rows = [dict(zip(header, row)) for row in r]
    return header, rows


def read_pair(table):
    header, rows = read(table)
    theader, trows = read(traj_path(table))
    curves = {}
    for t in trows:
        curves.setdefault(t["run"], []).append(t)
    return header, rows, theader, curves


def write(path, header, rows):
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow([r[c] for c in header])
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base", type=Path)
    ap.add_argument("longer", type=Path, nargs="+")
    ap.add_argument("--output", type=Path, required=True)
    a = ap.parse_args()
    if not a.output.name.endswith(".csv"):
        die(f"{a.output}: the output is a .csv table (its curves go beside it, .trajectories.csv)")
    header, rows, theader, curves = read_pair(a.base)
    index = {r["run"]: i for i, r in enumerate(rows)}
    weights = [c for c in header if c.startswith("weight.")]
    replaced, added, common = 0, 0, 0
    for table in a.longer:
        h, lrows, th, lcurves = read_pair(table)
        if h != header or th != theader:
            die(f"{table}: its columns are not {a.base}'s")
        for r in lrows:
            name = r["run"]
            if name not in index:
                index[name] = len(rows)
                rows.append(r)
                curves[name] = lcurves.get(name, [])
                added += 1
                continue
            base = rows[index[name]]
            for c in weights:
                if base[c] != r[c]:
                    die(f"{table}: run {name}: {c} is {r[c]}, {a.base} has {base[c]}: not the same mixture")
            at = {t["step"]: t for t in lcurves.get(name, [])}
            shared = 0
            for t in curves.get(name, []):
                if t["step"] not in at:
                    continue
                for c in theader:
                    if at[t["step"]][c] != t[c]:
                        die(f"{traj_path(table)}: run {name}, step {t['step']}: {c} is {at[t['step']][c]}, "
                            f"{traj_path(a.base)} has {t[c]}: not the same run continued")
                shared += 1
            if shared == 0:
                die(f"{traj_path(table)}: run {name} shares no evaluation step with {traj_path(a.base)}: "
                    "nothing shows it continues that run")
            common += shared
            if int(r["tokens"]) <= int(base["tokens"]):
                die(f"{table}: run {name} ends at {r['tokens']} tokens, not after {a.base}'s {base['tokens']}")
            rows[index[name]] = r
            curves[name] = lcurves.get(name, [])
            replaced += 1
    write(a.output, header, rows)
    write(traj_path(a.output), theader, [t for r in rows for t in curves.get(r["run"], [])])
    print(f"{a.output}: {len(rows)} runs: {replaced} continued by a longer run ({common} shared evaluations "
          f"equal bit for bit), {added} added")


if __name__ == "__main__":
    main()
