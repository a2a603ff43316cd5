#!/usr/bin/env bash
# The GPU checks and benchmark of the CUDA backend, in one go (under 8 minutes on an H200),
# on a machine with CUDA, PyTorch and Python but no Rust and no network. Needs dist/gpu/
# from scripts/gpu/build.sh. Writes logs to $OUT (or /tmp/regmix-gpu) and prints a table last.
#   bash scripts/gpu/check-and-bench.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dist=${DIST:-$root/dist/gpu}
out=${OUT:-/tmp/regmix-gpu}
py=${PYTHON:-python3}
mkdir -p "$out"
# cuBLAS and NVRTC: the toolkit's, else the ones PyTorch's wheels bring.
torch_libs=$("$py" -c 'import os, glob, nvidia; print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + "/*/lib/lib*.so*")})))' 2>/dev/null || true)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${torch_libs:+:$torch_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export REGMIX_KERNEL_CACHE=$out/kernel-cache
# Here a skipped GPU test is a failure.
export REGMIX_REQUIRE_GPU=1 REGMIX_REQUIRE_NVRTC=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

# 1. Correctness: every regmix-cuda test binary (NVRTC compile checks, probe, CUDA vs CPU).
declare -A verdict
for t in "$dist"/tests/*; do
    name=$(basename "$t")
    # Tests synchronise after every launch so a kernel fault names the kernel.
    if REGMIX_CUDA_SYNC=1 timeout 240 "$t" --test-threads 1 --nocapture > "$out/test-$name.log" 2>&1; then verdict[$name]=pass; else verdict[$name]=FAIL; fi
    grep -E "^test |SKIPPED|rel |relative error|panicked" "$out/test-$name.log" | head -80
done

# 2. Throughput of regmix-1m at the paper's batch: 512 sequences of 2048 tokens per step
# (1,048,576 tokens), as 16 micro-batches of 32.
bench=(--preset regmix-1m --vocab 50432 --micro-batch 32 --accumulation 16 --warmup 1 --steps 3)
timeout 150 "$dist/train-bench" --backend cuda "${bench[@]}" > "$out/bench-regmix.json" 2> "$out/bench-regmix.log" || echo "train-bench failed: $(tail -3 "$out/bench-regmix.log")"
# The size of the logit chunks the output layer and the fused classifier work through.
for mb in 16 48 512; do
    REGMIX_LOGIT_CHUNK_MB=$mb timeout 120 "$dist/train-bench" --backend cuda "${bench[@]}" > "$out/bench-regmix-chunk$mb.json" 2> "$out/bench-regmix-chunk$mb.log" || echo "train-bench chunk $mb MB failed: $(tail -3 "$out/bench-regmix-chunk$mb.log")"
done
# Two proxies at once on the one GPU (each on its own stream): does the total rise?
timeout 150 "$dist/train-bench" --backend cuda --concurrent 2 "${bench[@]}" > "$out/bench-regmix-x2.json" 2> "$out/bench-regmix-x2.log" || echo "train-bench ×2 failed: $(tail -3 "$out/bench-regmix-x2.log")"
timeout 120 "$py" "$root/scripts/bench/train_torch.py" --device cuda "${bench[@]}" > "$out/bench-torch-eager.json" 2> "$out/bench-torch-eager.log" || echo "torch eager failed: $(tail -3 "$out/bench-torch-eager.log")"
timeout 200 "$py" "$root/scripts/bench/train_torch.py" --device cuda --compile "${bench[@]}" > "$out/bench-torch-compile.json" 2> "$out/bench-torch-compile.log" || echo "torch compile failed: $(tail -3 "$out/bench-torch-compile.log")"

echo
echo "== correctness =="
for name in "${!verdict[@]}"; do printf '%-16s %s\n' "$name" "${verdict[$name]}"; done
echo
echo "== throughput: regmix-1m, vocabulary 50432, 1,048,576 tokens per step =="
"$py" - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
PEAK = 790e12  # bf16 dense matrix product measured on this H200 (issue 5)
rows = []
names = ("bench-regmix", "bench-regmix-chunk16", "bench-regmix-chunk48", "bench-regmix-chunk512", "bench-regmix-x2",
         "bench-torch-eager", "bench-torch-compile")
for name in names:
    try:
        with open(os.path.join(out, name + ".json")) as f:
            rows.append(json.loads(f.read().strip().splitlines()[-1]))
    except (OSError, IndexError, ValueError):
        rows.append({"impl": name, "error": "no result, see %s.log" % name})
        continue
    if "chunk" in name:
        rows[-1]["impl"] += " (logit chunks of %s MB)" % name.split("chunk")[1]
flops = next((r["flops_per_token"] for r in rows if "flops_per_token" in r), 91.6e6)
print("| implementation (default logit chunks: 128 MB) | tokens/s | TFLOP/s | MFU (of 790) | loss after 4 steps |")
print("| --- | --- | --- | --- | --- |")
for r in rows:
    if "tokens_per_s" not in r:
        print("| %s | failed: %s | | | |" % (r["impl"], r.get("error", "")[:60]))
        continue
    tf = r["tokens_per_s"] * flops
    print("| %s | %.0f | %.1f | %.1f%% | %.4f |" % (r["impl"], r["tokens_per_s"], tf / 1e12, 100 * tf / PEAK, r["final_loss"]))
ours = rows[0].get("tokens_per_s")
for r in rows[5:]:
    if ours and "tokens_per_s" in r:
        print("regmix / %s: %.2fx" % (r["impl"], ours / r["tokens_per_s"]))
PY
