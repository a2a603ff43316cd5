#!/usr/bin/env bash
# The GPU checks and benchmark of the CUDA backend in one call, on a machine with CUDA,
# PyTorch and Python but no Rust and no network. Needs dist/gpu/ from scripts/gpu/build.sh.
# Correctness first (each kernel against its CPU op, then the whole backend tensor by tensor
# and 20 steps of loss, then the compile and probe checks), throughput after (regmix-1m at the
# paper's batch: ours, PyTorch eager, torch.compile, 1/2/4 concurrent proxies). The whole call
# keeps to BUDGET_S seconds (default 330, under 6 minutes, so a second try fits the device
# time): each step gets what is left, and a step that cannot fit is reported as skipped.
# Every log is written under $OUT; the tables are printed last.
#   bash scripts/gpu/check-and-bench.sh          (SKIP_BENCH=1: the correctness checks only; SKIP_BENCH=baseline: and regmix's own throughput, not PyTorch's)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dist=${DIST:-$root/dist/gpu}
out=${OUT:-/tmp/regmix-gpu}
py=${PYTHON:-python3}
budget=${BUDGET_S:-330}
mkdir -p "$out"
start=$(date +%s)
deadline=$((start + budget))
left() { echo $((deadline - $(date +%s))); }
# run_step NAME LIMIT_S COMMAND...: runs within min(LIMIT_S, time left − 5 s); records the outcome.
declare -A outcome
order=()
run_step() {
    local name=$1 limit=$2; shift 2
    local t; t=$(left); t=$((t - 5)); [ "$t" -lt "$limit" ] && limit=$t
    order+=("$name")
    if [ "$limit" -lt 10 ]; then outcome[$name]="skipped: out of time"; return; fi
    local s0; s0=$(date +%s)
    timeout "$limit" "$@" > "$out/$name.out" 2> "$out/$name.log"
    local rc=$? dt=$(( $(date +%s) - s0 ))
    case $rc in
        0) outcome[$name]="pass (${dt} s)" ;;
        124) outcome[$name]="TIMEOUT after ${limit} s (see $name.log)" ;;
        *) outcome[$name]="FAIL rc=$rc (${dt} s; see $name.log)" ;;
    esac
}

# cuBLAS and NVRTC: the toolkit's, else the ones PyTorch's wheels bring.
torch_libs=$("$py" -c 'import os, glob, nvidia; print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + "/*/lib/lib*.so*")})))' 2>/dev/null || true)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${torch_libs:+:$torch_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export REGMIX_KERNEL_CACHE=$out/kernel-cache
# Here a skipped GPU test is a failure.
export REGMIX_REQUIRE_GPU=1 REGMIX_REQUIRE_NVRTC=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/gpu.txt" 2>&1

# 1. Correctness, in order; tests synchronise after every launch so a fault names the kernel.
for t in kernels against_cpu nvrtc probe; do
    [ -x "$dist/tests/$t" ] || { order+=("test-$t"); outcome[test-$t]="FAIL: $dist/tests/$t missing (scripts/gpu/build.sh)"; continue; }
    REGMIX_CUDA_SYNC=1 run_step "test-$t" 150 "$dist/tests/$t" --test-threads 1 --nocapture
done

# The stage itself: proxy-train on CUDA against the CPU backend, stopped and resumed.
if [ -x "$dist/proxy-train" ] && [ -f "${SHARDS:-$dist/shards}/manifest.parquet" ]; then
    run_step proxy-resume 120 "$py" "$root/scripts/gpu/proxy-resume.py" "$dist" "${SHARDS:-$dist/shards}" \
        "${MIXTURES:-$dist/mixtures.parquet}" "$out/proxy-resume"
else
    order+=("proxy-resume"); outcome[proxy-resume]="skipped: no $dist/proxy-train or shards (scripts/gpu/build.sh)"
fi

# 2. Throughput of regmix-1m at the paper's batch: 512 sequences of 2048 tokens per step
# (1,048,576 tokens), as 16 micro-batches of 32.
if [ "${SKIP_BENCH:-}" != 1 ]; then
bench=(--preset regmix-1m --vocab 50432 --micro-batch 32 --accumulation 16 --warmup 1 --steps 3)
run_step bench-regmix 60 "$dist/train-bench" --backend cuda "${bench[@]}"
if [ "${SKIP_BENCH:-}" != baseline ]; then
run_step bench-torch-eager 60 "$py" "$root/scripts/bench/train_torch.py" --device cuda "${bench[@]}"
run_step bench-torch-compile 120 "$py" "$root/scripts/bench/train_torch.py" --device cuda --compile "${bench[@]}"
for n in 2 4; do
    run_step "bench-regmix-x$n" 60 "$dist/train-bench" --backend cuda --concurrent "$n" "${bench[@]}"
done
run_step bench-regmix-chunk512 45 env REGMIX_LOGIT_CHUNK_MB=512 "$dist/train-bench" --backend cuda "${bench[@]}"
fi
fi

echo
echo "== $(cat "$out/gpu.txt" 2>/dev/null | head -1); $(( $(date +%s) - start )) s of a ${budget} s budget; logs in $out =="
echo
echo "| step | outcome |"
echo "| --- | --- |"
for name in "${order[@]}"; do echo "| $name | ${outcome[$name]} |"; done
echo
[ ! -s "$out/proxy-resume.out" ] || { echo "proxy-resume: $(tail -1 "$out/proxy-resume.out")"; echo; }
"$py" - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
# Every test, from the harness's own lines, with the measured errors the tests print.
for t in ("kernels", "against_cpu", "nvrtc", "probe"):
    p = os.path.join(out, "test-%s.out" % t)
    if not os.path.exists(p):
        continue
    text = open(p, errors="replace").read() + open(os.path.join(out, "test-%s.log" % t), errors="replace").read()
    res = re.findall(r"^test (\S+) \.\.\. (ok|FAILED|ignored)", text, re.M)
    print("%s: %d ok, %d failed: %s" % (t, sum(r == "ok" for _, r in res), sum(r == "FAILED" for _, r in res),
          ", ".join(n for n, r in res if r == "FAILED") or "-"))
    for line in text.splitlines():
        if "max error" in line or "measured" in line:
            print("   " + line.strip()[:160])
PEAK = 790e12  # bf16 dense matrix product of this H200 (issue 5)
rows = []
for name in ("bench-regmix", "bench-torch-eager", "bench-torch-compile", "bench-regmix-x2", "bench-regmix-x4", "bench-regmix-chunk512"):
    try:
        with open(os.path.join(out, name + ".out")) as f:
            r = json.loads(f.read().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        r = {"impl": name, "error": "no result, see %s.log" % name}
    r["step"] = name
    rows.append(r)
flops = next((r["flops_per_token"] for r in rows if "flops_per_token" in r), 91.6e6)
print()
print("| regmix-1m, 1,048,576 tokens/step | tokens/s | TFLOP/s | MFU (of 790) | loss after 4 steps |")
print("| --- | --- | --- | --- | --- |")
for r in rows:
    label = r.get("impl", r["step"]) + (" (logit chunks of 512 MB)" if "chunk" in r["step"] else "")
    if "tokens_per_s" not in r:
        print("| %s | %s | | | |" % (label, r.get("error", "failed")[:60]))
        continue
    tf = r["tokens_per_s"] * flops
    print("| %s | %.0f | %.1f | %.1f%% | %.4f |" % (label, r["tokens_per_s"], tf / 1e12, 100 * tf / PEAK, r["final_loss"]))
ours = rows[0].get("tokens_per_s")
for r in rows[1:3]:
    if ours and "tokens_per_s" in r:
        print("regmix / %s: %.2fx" % (r.get("impl", r["step"]), ours / r["tokens_per_s"]))
PY
