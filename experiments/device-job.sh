#!/usr/bin/env bash
# Prepares a proxy-train job for scripts/gpu/device.sh on the GPU machine: runs of the
# experiment's recipes on its spare CPU cores (one single-threaded process per core, nice 19,
# the GPU hidden) and, for specs marked `cuda:`, on its GPU (GPU_JOBS processes at once, each
# training its share of the ids in turn), while the GPU checks run. Each SPEC is
# [cuda:]NAME=MIXTURES_FILE@IDS@FLAGS (IDS as proxy-train --ids takes them); tasks run in the
# order given, so put first what matters most. The finished runs come back in
# $OUT/job-runs.tar (runs/NAME/<id>/{metrics.parquet,done.json}): unpack it into a folder,
# copy each NAME into the local runs folder of its recipe, and the make target collects them
# as its own (proxy-train skips a finished run whose recorded settings are its own).
#   bash experiments/device-job.sh JOB_DIR SPEC...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
job=$1; shift
rm -rf "$job" && mkdir -p "$job/mixtures"
cp "${CAL_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}/release}/proxy-train" "$job/" && strip "$job/proxy-train"
cp -r "$root/data-experiment/shards" "$job/shards"
: > "$job/tasks.tsv"
# GPU specs train CHUNK ids per process (one CUDA context and one kernel compile for several runs).
chunk=${GPU_CHUNK:-4}
for spec in "$@"; do
    pool=cpu
    [[ $spec == cuda:* ]] && { pool=cuda; spec=${spec#cuda:}; }
    name=${spec%%=*} rest=${spec#*=}
    file=${rest%%@*} rest=${rest#*@}
    ids=${rest%%@*} flags=${rest#*@}
    cp "$file" "$job/mixtures/$name.parquet"
    for part in ${ids//,/ }; do
        if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
    done > "$job/ids.tmp"
    if [ "$pool" = cuda ]; then
        paste -d, $(printf -- '- %.0s' $(seq "$chunk")) < "$job/ids.tmp" | sed 's/,*$//' |
            while read -r i; do printf 'cuda\t%s\t%s\t%s\n' "$name" "$i" "$flags --backend cuda" >> "$job/tasks.tsv"; done
    else
        while read -r i; do printf 'cpu\t%s\t%s\t%s\n' "$name" "$i" "$flags --threads 1" >> "$job/tasks.tsv"; done < "$job/ids.tmp"
    fi
done
rm "$job/ids.tmp"
cat > "$job/job.sh" <<'JOB'
#!/usr/bin/env bash
# Two pools over tasks.tsv (pool, name, ids, flags): the GPU's, GPU_JOBS processes at once, and
# the CPU's, one single-threaded process per remaining core at nice 19 with the GPU hidden.
cd "$(dirname "$0")"
gpu_jobs=${GPU_JOBS:-4}
run() { IFS=$'\t' read -r _ name ids flags <<< "$1"
    # shellcheck disable=SC2086
    ./proxy-train --shards shards --mixtures "mixtures/$name.parquet" --output "runs/$name" --ids "$ids" $flags; }
export -f run
cpu_jobs=$(( $(nproc) - 1 - gpu_jobs )); [ "$cpu_jobs" -ge 1 ] || cpu_jobs=1
grep -P '^cuda\t' tasks.tsv | tr '\n' '\0' | xargs -0 -r -P "$gpu_jobs" -I{} bash -c 'run "$@"' _ {} &
grep -P '^cpu\t' tasks.tsv | tr '\n' '\0' | CUDA_VISIBLE_DEVICES= nice -n 19 xargs -0 -r -P "$cpu_jobs" -I{} bash -c 'run "$@"' _ {} &
wait
JOB
echo "$job: $(grep -c $'^cuda\t' "$job/tasks.tsv") GPU tasks, $(grep -c $'^cpu\t' "$job/tasks.tsv") CPU runs"
