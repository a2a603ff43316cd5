#!/usr/bin/env bash
# Calibrates proxy recipes on target-scale runs you already have: trains one proxy per target
# mixture per recipe (proxy-train: finished runs are skipped, unfinished ones resume), collects
# each recipe at its evaluation, and scores them all (calibrate score → calibration.parquet).
# Rerun it after an interruption: it picks up where it stopped.
#
#   scripts/calibrate.sh --recipes RECIPES.tsv --shards DIR --work DIR --targets "A.parquet B.parquet"
#       [--jobs N] [--bin DIR] [--results DIR --python PY] [--only "NAME ..."] [--score-only]
#
# --targets   datasets of the target-scale runs (collect --targets DIR, or collect --import-table
#             TABLE for results from any trainer): their mixtures are the ones calibrated
# RECIPES.tsv one recipe per line, tab-separated, with a header line:
#               recipe  runs  step  flags
#             recipe: its name; runs: the folder its proxies train in (recipes that are earlier
#             evaluations of the same runs share it, and must share flags); step: the optimizer
#             step of the evaluation scored (`-` for the end); flags: proxy-train's training flags
# --jobs      proxy-train processes at a time, one thread each (default: the cores)
# --results   also keep each recipe as a committed table, RESULTS/<recipe>.csv with its curves and
#             settings (scripts/experiments/export-results.py, needs --python with pyarrow): a
#             recipe whose table has every mixture is read from it, not trained, on any machine
# --only      train these recipes only (the others are scored if their datasets exist)
# --score-only  train nothing: score the recipes that have every proxy
# --array-index I --array-count K   a Slurm array task: train only every K-th mixture from I of
#             every recipe (one process), and score nothing (a last job with --score-only does)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
recipes= shards= work= targets= jobs=$(nproc) bin=${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}/release results= py= only= score_only=0 array_index= array_count=
while [ $# -gt 0 ]; do
    case $1 in
        --recipes) recipes=$2; shift 2 ;;
        --shards) shards=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --targets) targets=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --results) results=$2; shift 2 ;;
        --python) py=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --score-only) score_only=1; shift ;;
        --array-index) array_index=$2; shift 2 ;;
        --array-count) array_count=$2; shift 2 ;;
        *) echo "calibrate.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
for v in recipes shards work targets; do
    [ -n "${!v}" ] || { echo "calibrate.sh: --$v is required (see the header of $0)" >&2; exit 2; }
done
[ -z "$results" ] || [ -n "$py" ] || { echo "calibrate.sh: --results needs --python (a Python with pyarrow)" >&2; exit 2; }
[ -f "$recipes" ] || { echo "calibrate.sh: $recipes: no such recipes file" >&2; exit 2; }
mkdir -p "$work/recipes" "$work/runs"
target_flags=(); for t in $targets; do target_flags+=(--targets "$t"); done
mixtures=$work/mixtures.parquet
# It prints the number of target mixtures (ids 0 to n - 1).
n=$("$bin/calibrate" mixtures "${target_flags[@]}" --output "$mixtures")

# The recipes file: recipe, runs, step, flags (tab-separated, a header first).
declare -a names groups steps flags
while IFS=$'\t' read -r r g s f; do
    [ -n "$r" ] || continue
    case $r in recipe|\#*) continue ;; esac
    [ -n "$f" ] || { echo "calibrate.sh: $recipes: recipe $r has no flags (recipe, runs, step, flags: tab-separated)" >&2; exit 2; }
    names+=("$r"); groups+=("$g"); steps+=("$s"); flags+=("$f")
done < "$recipes"
for i in "${!names[@]}"; do for j in "${!names[@]}"; do
    if [ "${groups[i]}" = "${groups[j]}" ] && [ "${flags[i]}" != "${flags[j]}" ]; then
        echo "calibrate.sh: $recipes: recipes ${names[i]} and ${names[j]} share the runs ${groups[i]} with other flags" >&2; exit 2
    fi
done; done

# The mixture ids a recipe still needs: all of them, less those its committed table has.
missing() {
    local table=$results/$1.csv
    for i in $(seq 0 $((n - 1))); do grep -q "^$i," "$table" 2>/dev/null || echo "$i"; done | paste -sd,
}
wanted() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }

score=()
for i in "${!names[@]}"; do
    r=${names[i]} runs=$work/runs/${groups[i]} step=${steps[i]} ds=$work/recipes/${names[i]}.parquet
    step_flag=(); [ "$step" = "-" ] || step_flag=(--step "$step")
    ids=all
    if [ -n "$results" ]; then
        [ ! -f "$results/$r.csv" ] || "$py" "$root/scripts/experiments/export-results.py" --check "$results/$r.csv" \
            --flags "${flags[i]}" --manifest "$shards/manifest.parquet"
        ids=$(missing "$r")
    fi
    if [ -z "$ids" ]; then
        echo "== $r: every mixture is in $results/$r.csv (read from it)"
        "$bin/collect" --import-table "$results/$r.csv" --import-history "$results/$r.trajectories.csv" --output "$ds"
        score+=(--recipe "$r=$ds" --settings "$r=$results/$r.settings.json")
        continue
    fi
    if [ -n "$array_count" ]; then
        if wanted "$r"; then
            echo "== $r: array task $array_index of $array_count training ${groups[i]} (${flags[i]})"
            # shellcheck disable=SC2086 # the recipe's flags are words
            "$bin/proxy-train" --shards "$shards" --mixtures "$mixtures" --output "$runs" \
                --array-index "$array_index" --array-count "$array_count" ${flags[i]} --threads 0
        fi
        continue
    fi
    if [ "$score_only" = 0 ] && wanted "$r"; then
        echo "== $r: training ${groups[i]} (${flags[i]})"
        id_flag=(); [ "$ids" = all ] || id_flag=(--ids "$ids")
        threads=1; [ "$jobs" -gt 1 ] || threads=0
        pids=()
        for k in $(seq 0 $((jobs - 1))); do
            array=(); [ "$jobs" = 1 ] || array=(--array-index "$k" --array-count "$jobs")
            # --ids and --array-* exclude each other: a share of the missing ids is taken here.
            if [ "$ids" != all ] && [ "$jobs" -gt 1 ]; then
                share=$(echo "$ids" | tr , '\n' | awk -v k="$k" -v j="$jobs" '(NR - 1) % j == k' | paste -sd,)
                [ -n "$share" ] || continue
                id_flag=(--ids "$share"); array=()
            fi
            # shellcheck disable=SC2086 # the recipe's flags are words
            "$bin/proxy-train" --shards "$shards" --mixtures "$mixtures" --output "$runs" "${id_flag[@]}" "${array[@]}" \
                ${flags[i]} --threads "$threads" & pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p"; done
    fi
    [ -d "$runs" ] || { echo "== $r: no runs yet (not trained: --only or --score-only)"; continue; }
    if ! "$bin/collect" --runs "$runs" --mixtures "$mixtures" "${step_flag[@]}" --output "$ds"; then
        echo "== $r: not collected (runs unfinished?): left out of the score" >&2
        continue
    fi
    if [ -n "$results" ]; then
        "$py" "$root/scripts/experiments/export-results.py" "$ds" "$results/$r.csv" --merge --flags "${flags[i]}"
    fi
    score+=(--recipe "$r=$ds")
done
[ -z "$array_count" ] || exit 0
[ ${#score[@]} -gt 0 ] || { echo "calibrate.sh: no recipe has proxies yet" >&2; exit 1; }
"$bin/calibrate" score "${target_flags[@]}" "${score[@]}" --output "$work/calibration.parquet"
