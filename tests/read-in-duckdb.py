#!/usr/bin/env python3
"""Every output opens in DuckDB with the column types pyarrow sees: a small pipeline on the
tests' corpus with the release binaries (tokenize-shard → sample-mixtures → proxy-train →
collect → fit → optimize → target-train), then each Parquet file it wrote read by both, and
the two queries the README shows run on it.

  tests/read-in-duckdb.py BIN_DIR
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

bin_dir = Path(sys.argv[1])
root = Path(__file__).resolve().parent.parent
failures = []


def run(*cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(map(str, cmd))}\n{r.stderr[-3000:]}")


with tempfile.TemporaryDirectory() as t:
    w = Path(t)
    b = lambda name: bin_dir / name
    train = ["--preset", "micro", "--batch-tokens", "512", "--eval-windows", "4", "--threads", "1", "--tokens", "4096"]
    run(b("tokenize-shard"), "--input", root / "tests/corpus", "--output", w / "shards", "--train-bpe", "512", "--valid-fraction", "0.1")
    run(b("sample-mixtures"), "--manifest", w / "shards/manifest.parquet", "--count", "10", "--output", w / "mixtures.parquet")
    run(b("proxy-train"), "--shards", w / "shards", "--mixtures", w / "mixtures.parquet", "--output", w / "runs", *train, "--eval-every", "2")
    run(b("collect"), "--runs", w / "runs", "--mixtures", w / "mixtures.parquet", "--output", w / "dataset.parquet")
    run(b("fit"), "--dataset", w / "dataset.parquet", "--target", "mean(valid_loss.*)", "--regressor", "linear", "--folds", "2", "--output", w / "fit")
    run(b("optimize"), "--fit", w / "fit", "--manifest", w / "shards/manifest.parquet", "--samples", "2000", "--top-k", "5", "--output", w / "optimum")
    run(b("target-train"), "--shards", w / "shards", "--output", w / "target", *train, "--mixture", "regmix=" + str(w / "optimum/optimum.parquet"),
        "--mixture", "prior=prior")
    files = [w / "shards/manifest.parquet", w / "mixtures.parquet", w / "runs/0/metrics.parquet", w / "dataset.parquet",
             w / "dataset.trajectories.parquet", w / "fit/fit_report.parquet", w / "fit/predictions.parquet",
             w / "optimum/optimum.parquet", w / "optimum/top_candidates.parquet", w / "target/comparison.parquet"]
    con = duckdb.connect()
    for f in files:
        pa_schema = pq.read_schema(f)
        db = con.sql(f"SELECT * FROM read_parquet('{f}')").arrow()
        db = db.read_all() if hasattr(db, "read_all") else db  # DuckDB 2 gives a reader, 1.x a table
        db_schema = db.schema
        got = [(x.name, str(x.type)) for x in db_schema]
        want = [(x.name, str(x.type)) for x in pa_schema]
        if got != want:
            diff = [f"{a} vs {b}" for a, b in zip(want, got) if a != b] or [f"{len(want)} columns vs {len(got)}"]
            failures.append(f"{f.relative_to(w)}: pyarrow and DuckDB disagree: {'; '.join(diff[:4])}")
        else:
            print(f"ok: {f.relative_to(w)}: {len(got)} columns, the same types in DuckDB and pyarrow")
    # The README's queries: the final validation losses of every run, and the top candidates
    # against the prior.
    finals = con.sql(f"""
        SELECT regexp_extract(filename, 'runs/([0-9]+)/', 1)::INTEGER AS run, "valid_loss.code", "valid_loss.prose"
        FROM read_parquet('{w}/runs/*/metrics.parquet', filename = true)
        WHERE status = 'finished' ORDER BY run""").fetchall()
    if len(finals) != 10 or any(v is None for r in finals for v in r):
        failures.append(f"the final losses query gave {finals}")
    else:
        print(f"ok: final validation losses of {len(finals)} runs through a glob over runs/*/metrics.parquet")
    top = con.sql(f"""
        SELECT c.rank, c.predicted, o.predicted_prior, o.predicted_prior - c.predicted AS gain_over_prior
        FROM '{w}/optimum/top_candidates.parquet' c, '{w}/optimum/optimum.parquet' o ORDER BY c.rank LIMIT 5""").fetchall()
    if len(top) != 5 or any(a[1] > b[1] for a, b in zip(top, top[1:])):
        failures.append(f"the top-candidates query gave {top}")
    else:
        print(f"ok: the top 5 candidates against the prior ({top[0][3]:+.4f} for the best)")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
