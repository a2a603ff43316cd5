#!/usr/bin/env bash
# The one call on the lent GPU machine (no Rust, no network): unpacks what scripts/gpu/pack.sh
# made here (dist/gpu.tar.xz: the binaries, the test shards), runs check-and-bench.sh, and,
# when dist/cpu-job.tar.xz is there, trains its proxies on the machine's spare cores at low
# priority meanwhile (their metrics come back under $OUT/cpu-job). Tables are printed last.
#   bash scripts/gpu/device.sh            (as the device tool's command; $OUT is set there)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp/regmix-gpu}
mkdir -p "$out" /tmp/regmix-dist
python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$root/dist/gpu.tar.xz" /tmp/regmix-dist
job_pid=
if [ -f "$root/dist/cpu-job.tar.xz" ]; then
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$root/dist/cpu-job.tar.xz" /tmp/regmix-job
    (cd /tmp/regmix-job && CUDA_VISIBLE_DEVICES= nice -n 19 bash job.sh "$out/cpu-job" > "$out/cpu-job.log" 2>&1) & job_pid=$!
fi
DIST=/tmp/regmix-dist/gpu SHARDS=/tmp/regmix-dist/gpu/shards MIXTURES=/tmp/regmix-dist/gpu/mixtures.parquet \
    BUDGET_S=${BUDGET_S:-330} bash "$root/scripts/gpu/check-and-bench.sh"
if [ -n "$job_pid" ]; then
    # The CPU job gets until JOB_GRACE_S after the checks; what it finished comes back (only
    # finished runs: an unfinished one would resume from a checkpoint too large to carry).
    end=$(( $(date +%s) + ${JOB_GRACE_S:-0} ))
    while kill -0 "$job_pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
    pkill -f 'xargs -0 -P' 2>/dev/null; pkill -f 'proxy-train --shards shards ' 2>/dev/null; wait "$job_pid" 2>/dev/null
    total=0 done_=0
    for d in /tmp/regmix-job/runs/*/*/; do
        total=$((total + 1))
        [ -f "$d/done.json" ] || continue
        rel=${d#/tmp/regmix-job/runs/}
        done_=$((done_ + 1)); mkdir -p "$out/cpu-job/runs/$rel"
        cp "$d/metrics.parquet" "$d/done.json" "$out/cpu-job/runs/$rel"
    done
    echo "cpu job: $done_ of $total runs finished (under \$OUT/cpu-job/runs); log: $(tail -1 "$out/cpu-job.log" 2>/dev/null | cut -c1-160)"
fi
