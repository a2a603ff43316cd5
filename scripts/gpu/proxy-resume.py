#!/usr/bin/env python3
"""proxy-train on the GPU, against the CPU backend, killed and resumed: the Slurm path proven on
a GPU. Runs on the GPU machine (no Rust): dist/gpu/proxy-train, the shards given, pyarrow.

  proxy-resume.py DIST SHARDS MIXTURES OUT

Trains mixture 0 four times with the same flags: on the CPU (all cores), twice on CUDA without
a stop (are two CUDA runs equal to the bit?), and on CUDA stopped after STOP steps (--stop-after: it exits as if killed, its last
checkpoint and metrics kept) then rerun to the end. Prints one JSON line: the largest absolute
difference of any validation loss between CUDA and CPU at each evaluation, and whether the
resumed run's metrics equal the uninterrupted CUDA run's bit for bit.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

FLAGS = ["--preset", "micro", "--tokens", "393216", "--batch-tokens", "1024", "--lr", "3e-3",
         "--eval-windows", "16", "--eval-every", "32", "--checkpoint-every", "32", "--ids", "0"]
STOP = 160


def train(dist, shards, mixtures, out, backend, extra=()):
    cmd = [str(dist / "proxy-train"), "--shards", str(shards), "--mixtures", str(mixtures),
           "--output", str(out), "--backend", backend, *FLAGS, *extra]
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    (out.parent / (out.name + ".log")).write_text(r.stderr)
    return r.returncode, time.time() - t, r.stderr


def losses(run):
    t = pq.read_table(run / "0" / "metrics.parquet").to_pydict()
    cols = sorted(c for c in t if c.startswith("valid_loss."))
    return {s: [t[c][i] for c in cols] for i, s in enumerate(t["step"]) if all(t[c][i] is not None for c in cols)}


def main():
    dist, shards, mixtures, out = (Path(a) for a in sys.argv[1:5])
    out.mkdir(parents=True, exist_ok=True)
    rc, cpu_s, err = train(dist, shards, mixtures, out / "cpu", "cpu", ["--threads", "0"])
    if rc:
        sys.exit(f"cpu run failed ({rc}): {err[-2000:]}")
    rc, cuda_s, err = train(dist, shards, mixtures, out / "cuda", "cuda")
    if rc:
        sys.exit(f"cuda run failed ({rc}): {err[-2000:]}")
    rc, _, err = train(dist, shards, mixtures, out / "cuda-again", "cuda")
    if rc:
        sys.exit(f"the second cuda run failed ({rc}): {err[-2000:]}")
    rc, _, err = train(dist, shards, mixtures, out / "resumed", "cuda", ["--stop-after", str(STOP)])
    if rc == 0 or f"stopped after {STOP} steps" not in err:
        sys.exit(f"the stopped run did not stop as asked ({rc}): {err[-2000:]}")
    rc, _, err = train(dist, shards, mixtures, out / "resumed", "cuda")
    if rc:
        sys.exit(f"the resumed run failed ({rc}): {err[-2000:]}")
    cpu, cuda, resumed = losses(out / "cpu"), losses(out / "cuda"), losses(out / "resumed")
    again = losses(out / "cuda-again")
    steps = sorted(cpu)
    diff = {s: max(abs(a - b) for a, b in zip(cpu[s], cuda[s])) for s in steps if s in cuda}
    print(json.dumps({
        "steps": max(steps), "evaluations": len(steps), "cpu_s": round(cpu_s, 1), "cuda_s": round(cuda_s, 1),
        "max_abs_diff_by_step": {str(s): round(d, 6) for s, d in diff.items()},
        "max_abs_diff": max(diff.values()),
        "final_mean_loss": {"cpu": sum(cpu[steps[-1]]) / len(cpu[steps[-1]]), "cuda": sum(cuda[steps[-1]]) / len(cuda[steps[-1]])},
        "rerun_equals_run": again == cuda,
        "rerun_max_abs_diff": max(max(abs(a - b) for a, b in zip(again[s], cuda[s])) for s in cuda if s in again),
        "resumed_equals_uninterrupted": resumed == cuda,
        "resumed_max_abs_diff": max(max(abs(a - b) for a, b in zip(resumed[s], cuda[s])) for s in cuda if s in resumed),
    }))


if __name__ == "__main__":
    main()
