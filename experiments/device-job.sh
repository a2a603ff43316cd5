#!/usr/bin/env bash
# Prepares a CPU job for scripts/gpu/device.sh: proxy-train runs of the experiment's recipes on
# the GPU machine's spare cores (one single-threaded process per core, nice 19) while the GPU
# checks run. Each SPEC is NAME=MIXTURES_FILE@IDS@FLAGS (IDS as proxy-train --ids takes them);
# its finished runs come back under $OUT/cpu-job/runs/NAME/<id>/ (metrics.parquet, done.json):
# copy them into the local runs folder of NAME and the make target collects them as its own
# (proxy-train skips a finished run whose recorded settings are its own).
#   bash experiments/device-job.sh JOB_DIR SPEC...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
job=$1; shift
rm -rf "$job" && mkdir -p "$job/mixtures"
cp "${CAL_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}/release}/proxy-train" "$job/" && strip "$job/proxy-train"
cp -r "$root/data-experiment/shards" "$job/shards"
: > "$job/tasks.tsv"
for spec in "$@"; do
    name=${spec%%=*} rest=${spec#*=}
    file=${rest%%@*} rest=${rest#*@}
    ids=${rest%%@*} flags=${rest#*@}
    cp "$file" "$job/mixtures/$name.parquet"
    for part in ${ids//,/ }; do
        if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
    done | while read -r i; do printf '%s\t%s\t%s\n' "$name" "$i" "$flags" >> "$job/tasks.tsv"; done
done
cat > "$job/job.sh" <<'JOB'
#!/usr/bin/env bash
# One proxy-train process per task line (name, id, flags), as many at once as cores less one.
cd "$(dirname "$0")"
run() { IFS=$'\t' read -r name id flags <<< "$1"
    # shellcheck disable=SC2086
    ./proxy-train --shards shards --mixtures "mixtures/$name.parquet" --output "runs/$name" --ids "$id" $flags --threads 1; }
export -f run
tr '\n' '\0' < tasks.tsv | xargs -0 -P "$(($(nproc) - 1))" -I{} bash -c 'run "$@"' _ {}
JOB
echo "$job: $(wc -l < "$job/tasks.tsv") runs"
