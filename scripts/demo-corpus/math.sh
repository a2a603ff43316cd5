#!/usr/bin/env bash
# The math domain (opt-in: CORPUS_MATH=1): questions and answers from DeepMind's
# mathematics_dataset generator, the generator behind the Pile's DM Mathematics, in a pinned
# venv. It is slow (~5 KB/s per core) and not byte-reproducible, so its output is generated
# once, kept in the cache with its sha256, and reused.
#   math.sh CACHE_DIR OUT_DIR
set -euo pipefail
cache=$1; out=$2
cap_mb=${CORPUS_CAP_MB:-5}
gen=$cache/math-0.jsonl
if [ ! -f "$gen" ]; then
    venv=$cache/math-venv
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q sympy==1.4 mpmath==1.3.0 numpy==1.23.5 absl-py six mathematics-dataset==1.0.1
    fi
    # Modules are generated in parallel, one process per core, until the cap is reached.
    per_module=${CORPUS_MATH_PER_MODULE:-40}
    "$venv/bin/python" - "$gen" "$cap_mb" "$per_module" <<'PY'
import json, os, sys, zlib, random, concurrent.futures as cf
import numpy as np
from absl import flags
from mathematics_dataset import generate
out, cap, per = sys.argv[1], float(sys.argv[2]) * 1e6, int(sys.argv[3])
flags.FLAGS(["generate"])
generate.init_modules(train_split=True)
# The training regimes only (easy, medium, hard), as the Pile's DM Mathematics.
flat = {f"{regime}/{name}": m for regime, mods in generate.filtered_modules.items()
        if regime.startswith("train") for name, m in mods.items()}
names = sorted(flat)

def gen(item):
    name, rnd = item
    # Forked workers share the parent's random state: seed each (module, round) on its own.
    seed = zlib.crc32(f"{name}#{rnd}".encode())
    random.seed(seed); np.random.seed(seed)
    lines = []
    for _ in range(per):
        problem, _ = generate.sample_from_module(flat[name])
        lines.append(f"Question: {problem.question}\nAnswer: {problem.answer}")
    return f"{name}#{rnd}", "\n\n".join(lines)

size = 0
tmp = out + ".tmp"
rnd = 0
with open(tmp, "w") as f, cf.ProcessPoolExecutor() as ex:
    # Rounds over every module until the cap: each document is one module's problems.
    while size < cap:
        for name, text in ex.map(gen, [(n, rnd) for n in names]):
            f.write(json.dumps({"text": text, "meta": {"domain": "math", "source": f"mathematics_dataset 1.0.1:{name}", "license": "Apache-2.0"}}) + "\n")
            size += len(text)
            if size >= cap:
                break
        rnd += 1
os.replace(tmp, out)
PY
    sha256sum "$gen" > "$gen.sha256"
fi
cp "$gen" "$out/math-0.jsonl"
