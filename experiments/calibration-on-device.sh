#!/usr/bin/env bash
# Prepares a CPU job for scripts/gpu/device.sh: the calibration recipe RECIPE's proxies
# (experiments/calibration-recipes.tsv), one single-threaded proxy-train process per mixture,
# on the GPU machine's spare cores while the GPU checks run. Its finished runs come back under
# $OUT/cpu-job/runs/<id>/ (metrics.parquet, done.json): copy them into
# data-experiment/calibration/runs/<runs>/ and `make calibration` collects them as its own.
#   bash experiments/calibration-on-device.sh RECIPE JOB_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
recipe=$1 job=$2
flags=$(awk -F'\t' -v r="$recipe" '$1 == r { print $4 }' "$root/experiments/calibration-recipes.tsv")
[ -n "$flags" ] || { echo "no recipe $recipe in experiments/calibration-recipes.tsv" >&2; exit 2; }
rm -rf "$job" && mkdir -p "$job"
cp "${CAL_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}/release}/proxy-train" "$job/" && strip "$job/proxy-train"
cp -r "$root/data-experiment/shards" "$job/shards"
cp "$root/data-experiment/calibration/mixtures.parquet" "$job/mixtures.parquet"
n=$(python3 -c 'import sys; print(sys.argv[1])' "$(ls "$root/data-experiment/calibration/runs/" >/dev/null; echo 16)")
cat > "$job/job.sh" <<JOB
#!/usr/bin/env bash
# Recipe $recipe: $flags
out=\$1; mkdir -p "\$out"
for i in \$(seq 0 $((n - 1))); do
    ./proxy-train --shards shards --mixtures mixtures.parquet --output runs --ids \$i $flags --threads 1 &
done
wait
JOB
echo "$job: recipe $recipe ($flags)"
