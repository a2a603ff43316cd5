#!/usr/bin/env python3
"""export-megatron and optimize's blend against the real readers:

1. megatron-core's own IndexedDataset reads every document of the tests' corpus token for token
   equal to the shards (read with pyarrow);
2. its BlendedMegatronDatasetBuilder, given the --data-path list optimize wrote
   (megatron_data_path.txt, parsed by megatron-core's get_blend_from_list as Megatron-LM parses
   --data-path), draws from each domain in the optimum's proportions, and every sample it draws
   for a domain is a window of that domain's tokens. The optimum comes from collect
   --import-table → fit → optimize on synthetic proxy results over the corpus's domains.
   Tolerance: the share of samples per domain within 1/SAMPLES of the optimum's weight (the
   file's six decimals renormalised), because megatron-core's blending index is greedy: after
   each sample, every dataset's count is within one sample of SAMPLES × weight.

  tests/read-in-megatron.py BIN_DIR

Needs torch and megatron-core (pip install torch megatron-core). A manual check
(`make check-megatron`, which sets REGMIX_REQUIRE_MEGATRON=1: without them it fails, naming
what is missing); run directly without them it prints SKIPPED and why, and exits 0. (crates/export-megatron/tests/cli.rs checks the same files against the
format's layout on every machine.)
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import numpy
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.utils import get_blend_from_list
except ImportError as e:
    why = f"megatron-core's IndexedDataset cannot be imported here ({e}); pip install torch megatron-core to run this check"
    if os.environ.get("REGMIX_REQUIRE_MEGATRON") == "1":
        sys.exit(f"FAIL: {why}")
    print(f"SKIPPED: {why}")
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

    # 2. The blend: synthetic proxy results whose best mixture is interior, through the stages.
    domains = sorted({r["domain"] for r in m})
    rng = numpy.random.default_rng(7)
    best = numpy.linspace(1.0, 2.0, len(domains))
    best /= best.sum()
    with open(t / "runs.csv", "w") as f:
        f.write("run," + ",".join(f"weight.{d}" for d in domains) + ",loss\n")
        for i, w in enumerate(rng.dirichlet(numpy.ones(len(domains)), 96)):
            loss = 3.0 + 4.0 * float(((w - best) ** 2).sum())
            f.write(f"r{i}," + ",".join(repr(float(x)) for x in w) + f",{loss!r}\n")
    def run(*a):
        r = subprocess.run([str(x) for x in a], capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(map(str, a))}: {r.stderr[-3000:]}"
    run(bin_dir / "collect", "--import-table", t / "runs.csv", "--output", t / "dataset.parquet")
    run(bin_dir / "fit", "--dataset", t / "dataset.parquet", "--target", "valid_loss.loss", "--regressor", "gp", "--output", t / "fit")
    run(bin_dir / "optimize", "--fit", t / "fit", "--output", t / "optimum", "--manifest", t / "shards/manifest.parquet", "--samples", "20000", "--megatron-prefix", f"{t / 'megatron'}/")
    data_path = (t / "optimum/megatron_data_path.txt").read_text().split()
    prefixes, weights = get_blend_from_list(data_path)
    opt = pq.read_table(t / "optimum/optimum.parquet").to_pylist()[0]
    want = {d: opt[f"weight.{d}"] for d in domains}
    assert sorted(prefixes) == sorted(str(t / "megatron" / d) for d, x in want.items() if x > 0), prefixes

    class Tokenizer:  # what GPTDataset asks of a tokenizer: ids, not text
        eod = eos
        pad = -1
        vocab_size = int(pq.read_schema(t / "shards/manifest.parquet").metadata[b"regmix.vocab_size"])
        unique_identifiers = {"class": "regmix-shards"}

    # The builder asks torch.distributed for its rank, as a Megatron-LM job's rank 0 would answer.
    import torch.distributed
    torch.distributed.init_process_group("gloo", init_method=f"file://{t / 'process-group'}", rank=0, world_size=1)
    samples, seq = 20000, 16
    config = GPTDatasetConfig(random_seed=1234, sequence_length=seq, blend=(prefixes, weights), split="1,0,0",
                              tokenizer=Tokenizer(), reset_position_ids=False, reset_attention_mask=False,
                              eod_mask_loss=False, path_to_cache=str(t / "cache"))
    train, _, _ = BlendedMegatronDatasetBuilder(GPTDataset, [samples, 0, 0], lambda: True, config).build()
    counts = numpy.bincount(numpy.asarray(train.dataset_index), minlength=len(prefixes))
    total = sum(weights)
    for k, prefix in enumerate(prefixes):
        d = Path(prefix).name
        share, w = counts[k] / samples, weights[k] / total
        assert abs(share - w) <= 1.0 / samples, f"{d}: {share:.6f} of the samples for weight {w:.6f}"
        assert abs(w - want[d]) <= 1e-5, f"{d}: the blend file says {w}, the optimum {want[d]}"
        print(f"ok: {d}: the blended builder draws {share:.5f} of {samples} samples; the optimum's weight is {want[d]:.5f}")
    # A sample is documents of one domain (in megatron-core's shuffled order) cut to the window,
    # so every piece of it between end-of-document tokens is a run of that domain's tokens.
    readers = {Path(p).name: IndexedDataset(p) for p in prefixes}  # kept open: their arrays are views of the mmap
    streams = {d: numpy.concatenate([numpy.array(r[j]) for j in range(len(r))]).astype(numpy.int32).tobytes() for d, r in readers.items()}

    def occurs(hay, piece):
        needle, at = piece.astype(numpy.int32).tobytes(), hay.find(piece.astype(numpy.int32).tobytes())
        while at >= 0 and at % 4:
            at = hay.find(needle, at + 1)
        return at >= 0

    checked = 0
    for i in range(0, samples, 97):
        d = Path(prefixes[train.dataset_index[i]]).name
        tokens = train[i]["tokens"].numpy()
        pieces = [p for p in numpy.split(tokens, numpy.flatnonzero(tokens == eos)) if len(p[p != eos])]
        for piece in pieces:
            piece = piece[piece != eos]
            assert occurs(streams[d], piece), f"sample {i} ({d}): {piece[:8]}… is not a run of {d}'s tokens"
        checked += 1
    print(f"ok: {checked} of the samples drawn, each made of runs of its own domain's tokens")
