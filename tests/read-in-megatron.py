#!/usr/bin/env python3
"""export-megatron against the real reader: megatron-core's own IndexedDataset reads every
document of the tests' corpus token for token equal to the shards (read with pyarrow). (The
check of megatron-core's blended dataset builder on optimize's blend is still to be written.)

  tests/read-in-megatron.py BIN_DIR

Needs torch and megatron-core (pip install torch megatron-core); without them it prints SKIP
and why, and exits 0. (crates/export-megatron/tests/cli.rs checks the same files against the
format's layout on every machine.)
"""
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import numpy
    from megatron.core.datasets.indexed_dataset import IndexedDataset
except ImportError as e:
    print(f"SKIP: megatron-core's IndexedDataset cannot be imported here ({e}); pip install torch megatron-core to run this test")
    sys.exit(0)
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

bin_dir = Path(sys.argv[1])
root = Path(__file__).resolve().parent.parent
with tempfile.TemporaryDirectory() as t:
    t = Path(t)
    subprocess.run([bin_dir / "tokenize-shard", "--input", root / "tests/corpus", "--output", t / "shards", "--train-bpe", "512",
                    "--valid-fraction", "0.1"], check=True, capture_output=True)
    subprocess.run([bin_dir / "export-megatron", "--shards", t / "shards", "--output", t / "megatron"], check=True, capture_output=True)
    m = pq.read_table(t / "shards/manifest.parquet").to_pylist()
    eos = int(pq.read_schema(t / "shards/manifest.parquet").metadata[b"regmix.eos_id"])
    for domain in sorted({r["domain"] for r in m}):
        for split, prefix in [("train", t / "megatron" / domain), ("valid", t / "megatron/valid" / domain)]:
            files = [r["file"] for r in m if r["domain"] == domain and r["split"] == split]
            stream = numpy.concatenate([ipc.open_file(pa.memory_map(str(t / "shards" / f))).read_all().column("tokens").to_numpy() for f in files])
            ds = IndexedDataset(str(prefix))
            docs = numpy.split(stream, numpy.flatnonzero(stream == eos) + 1)
            docs = [d for d in docs if len(d)]
            assert len(ds) == len(docs), f"{domain} {split}: {len(ds)} sequences for {len(docs)} documents"
            for i, d in enumerate(docs):
                assert numpy.array_equal(ds[i].astype(numpy.int64), d.astype(numpy.int64)), f"{domain} {split}: document {i} differs"
            print(f"ok: {domain} ({split}): IndexedDataset reads {len(ds)} documents equal to the shards")
