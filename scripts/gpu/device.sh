#!/usr/bin/env bash
# The one call on the lent GPU machine (no Rust, no network): unpacks what scripts/gpu/pack.sh
# made here (dist/gpu.tar.xz: the binaries, the test shards), runs check-and-bench.sh, and,
# when dist/cpu-job.tar.xz is there, trains its proxies on the machine's spare cores at low
# priority meanwhile (their metrics come back in $OUT/job-runs.tar). Tables are printed last.
#   bash scripts/gpu/device.sh            (as the device tool's command; $OUT is set there)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp/regmix-gpu}
t0=$(date +%s)
mkdir -p "$out" /tmp/regmix-dist
python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$root/dist/gpu.tar.xz" /tmp/regmix-dist
# cuBLAS and NVRTC for the job's GPU processes: the toolkit's, else those PyTorch's wheels bring.
torch_libs=$(python3 -c 'import os, glob, nvidia; print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + "/*/lib/lib*.so*")})))' 2>/dev/null || true)
job_pid=
if [ -f "$root/dist/cpu-job.tar.xz" ]; then
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$root/dist/cpu-job.tar.xz" /tmp/regmix-job
    (cd /tmp/regmix-job && LD_LIBRARY_PATH=/usr/local/cuda/lib64${torch_libs:+:$torch_libs} \
        REGMIX_KERNEL_CACHE=/tmp/regmix-job/kernel-cache setsid --wait bash job.sh > "$out/job.log" 2>&1) & job_pid=$!
fi
DIST=/tmp/regmix-dist/gpu SHARDS=/tmp/regmix-dist/gpu/shards MIXTURES=/tmp/regmix-dist/gpu/mixtures.parquet \
    BUDGET_S=${BUDGET_S:-330} bash "$root/scripts/gpu/check-and-bench.sh"
if [ -n "$job_pid" ]; then
    # The job runs until JOB_UNTIL_S seconds after this script began (or JOB_GRACE_S after the
    # checks); what it finished comes back (only finished runs: an unfinished one would resume
    # from a checkpoint too large to carry).
    end=$(( $(date +%s) + ${JOB_GRACE_S:-0} ))
    [ -z "${JOB_UNTIL_S:-}" ] || end=$((t0 + JOB_UNTIL_S))
    while kill -0 "$job_pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
    # The job runs in a process group of its own (setsid): end all of it, never this script.
    sid=$(pgrep -f '^bash job.sh' | head -1); [ -z "$sid" ] || pkill -TERM -s "$sid"
    pkill -f '^./proxy-train --shards shards ' 2>/dev/null; wait "$job_pid" 2>/dev/null
    total=0 done_=0
    for d in /tmp/regmix-job/runs/*/*/; do
        total=$((total + 1))
        [ -f "$d/done.json" ] || continue
        done_=$((done_ + 1))
        rel=${d#/tmp/regmix-job/}; rel=${rel%/}
        echo "$rel/metrics.parquet"; echo "$rel/done.json"
    done > /tmp/regmix-job/finished.txt
    # One file back (the device returns at most 8): every finished run's metrics and marker.
    tar -C /tmp/regmix-job -cf "$out/job-runs.tar" -T /tmp/regmix-job/finished.txt
    echo "job: $done_ of $total started runs finished (in \$OUT/job-runs.tar); log: $(tail -1 "$out/job.log" 2>/dev/null | cut -c1-160)"
fi
# The device returns at most 8 files: every log in one archive beside the job's runs.
(cd "$out" && find . -type f ! -name job-runs.tar ! -name logs.tar.gz ! -name '*.safetensors' -printf '%P\n' > /tmp/regmix-logs.txt &&
    tar -czf logs.tar.gz -T /tmp/regmix-logs.txt && rm -rf -- */ && xargs -d "\n" rm -f < /tmp/regmix-logs.txt)
