#!/usr/bin/env python3
"""scripts/experiments/export-results.py writes what `collect --import-table --import-history`
reads back: a dataset and its trajectories exported to CSV and imported again have the same
runs, tokens, steps, weights, losses and evaluations, bit for bit.

  tests/export-results-round-trip.py BIN_DIR
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

bin_dir = Path(sys.argv[1])
root = Path(__file__).resolve().parent.parent


def run(*a):
    r = subprocess.run([str(x) for x in a], capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(map(str, a))}: {r.stderr[-3000:]}"


with tempfile.TemporaryDirectory() as t:
    t = Path(t)
    table, history = ["run,tokens,steps,weight.web,weight.code,valid_loss.web,valid_loss.code"], ["run,step,tokens,lr,warmup,valid_loss.web,valid_loss.code"]
    for i in range(5):
        w = 0.1 + 0.2 * i
        for s in range(1, 5):
            history.append(f"m{i},{s * 8},{s * 8192},{0.002 / s!r},{'true' if s == 1 else 'false'},{3.0 + w / s + 1e-9 * i!r},{4.0 - w / (3 * s)!r}")
        table.append(f"m{i},32768,32,{w!r},{1 - w!r},{3.0 + w / 4 + 1e-9 * i!r},{4.0 - w / 12!r}")
    (t / "table.csv").write_text("\n".join(table) + "\n")
    (t / "history.csv").write_text("\n".join(history) + "\n")
    run(bin_dir / "collect", "--import-table", t / "table.csv", "--import-history", t / "history.csv", "--output", t / "a.parquet")
    run(sys.executable, root / "scripts/experiments/export-results.py", t / "a.parquet", t / "out/a.csv")
    run(bin_dir / "collect", "--import-table", t / "out/a.csv", "--import-history", t / "out/a.trajectories.csv", "--output", t / "b.parquet")
    for name in ["{}.parquet", "{}.trajectories.parquet"]:
        a, b = pq.read_table(t / name.format("a")), pq.read_table(t / name.format("b"))
        assert a.column_names == b.column_names, (a.column_names, b.column_names)
        for c in a.column_names:
            assert a.column(c).to_pylist() == b.column(c).to_pylist(), f"{name.format('b')}: column {c} differs"
        print(f"ok: {name.format('a')}: {a.num_rows} rows, {a.num_columns} columns equal after the CSV round trip")
