#!/usr/bin/env bash
# Benchmark: training throughput of the CPU backend (train-bench) side by side with a
# PyTorch CPU implementation of the identical model, optimizer and batch
# (scripts/bench/train_torch.py), same thread count, on the micro and small presets.
#   scripts/bench/train.sh          (`make bench` runs it)
# PyPI's only Linux x86_64 torch wheels are the CUDA builds; the venv takes ~4 GB. Each
# figure is the best of REPEATS runs of STEPS timed steps after 3 warm-up steps.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}/release
venv=$root/.venv-bench
threads=${THREADS:-$(nproc)}
repeats=${REPEATS:-2}
steps=${STEPS:-10}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
    "$venv/bin/pip" install -q --progress-bar off torch==2.9.1 transformers==4.57.1
fi
best() { # best tokens/s of the JSON lines on stdin, printed with its line
    python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
print(json.dumps(max(rows, key=lambda r: r["tokens_per_s"])))'
}
results=()
for preset in micro small; do
    mb=16
    for _ in $(seq "$repeats"); do
        "$bin/train-bench" --preset "$preset" --micro-batch "$mb" --steps "$steps" --threads "$threads"
    done | best > /tmp/regmix-bench-ours.json
    for _ in $(seq "$repeats"); do
        "$venv/bin/python" "$root/scripts/bench/train_torch.py" --preset "$preset" --micro-batch "$mb" --steps "$steps" --threads "$threads"
    done | best > /tmp/regmix-bench-torch.json
    results+=("$(cat /tmp/regmix-bench-ours.json)" "$(cat /tmp/regmix-bench-torch.json)")
done
printf '%s\n' "${results[@]}" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
print("\n## Training throughput (CPU, %d threads, vocabulary 8192, random tokens)\n" % rows[0]["threads"])
print("| preset | params | tokens/step | implementation | tokens/s | GFLOP/s | vs PyTorch |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for ours, torch in zip(rows[0::2], rows[1::2]):
    flops = ours["flops_per_token"]
    for r in (ours, torch):
        print("| %s | %s | %d | %s | %.0f | %.1f | %.2fx |" % (r["preset"], format(r["params"], ","), r["tokens_per_step"], r["impl"],
              r["tokens_per_s"], r["tokens_per_s"] * flops / 1e9, r["tokens_per_s"] / torch["tokens_per_s"]))
print("\nGFLOP/s counts the model FLOPs of both with the same formula (Config::train_flops_per_token).")
'
