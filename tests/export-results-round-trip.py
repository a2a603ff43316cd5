#!/usr/bin/env python3
"""scripts/experiments/export-results.py writes what `collect --import-table --import-history`
reads back: a dataset and its trajectories exported to CSV and imported again have the same
runs, tokens, steps, weights, losses and evaluations, bit for bit. With --merge a table grows
by the runs it lacks, and a run whose values differ from the committed ones stops the merge.

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

    # --merge: the first two runs, then all five, give the full table; a changed value stops it.
    first = ["\n".join(table[:3]) + "\n", "\n".join(history[:9]) + "\n"]
    (t / "t2.csv").write_text(first[0])
    (t / "h2.csv").write_text(first[1])
    run(bin_dir / "collect", "--import-table", t / "t2.csv", "--import-history", t / "h2.csv", "--output", t / "c.parquet")
    grown = t / "grown/a.csv"
    run(sys.executable, root / "scripts/experiments/export-results.py", t / "c.parquet", grown, "--merge")
    run(sys.executable, root / "scripts/experiments/export-results.py", t / "a.parquet", grown, "--merge")
    for name in ["a.csv", "a.trajectories.csv"]:
        assert (t / "grown" / name).read_text() == (t / "out" / name).read_text(), f"{name}: merged in two steps differs from one export"
    print("ok: a table merged from two and then five runs equals the export of all five")
    (t / "t3.csv").write_text(first[0].replace(table[1].split(",")[-1], "9.5"))
    run(bin_dir / "collect", "--import-table", t / "t3.csv", "--import-history", t / "h2.csv", "--output", t / "d.parquet")
    r = subprocess.run([sys.executable, root / "scripts/experiments/export-results.py", t / "d.parquet", grown, "--merge"], capture_output=True, text=True)
    assert r.returncode != 0 and "'run': 'm0'" in r.stderr and "valid_loss.code" in r.stderr, r.stderr
    assert (t / "grown/a.csv").read_text() == (t / "out/a.csv").read_text(), "a refused merge changed the table"
    print("ok: a run whose loss differs from the table's is refused, naming the run and the column")
