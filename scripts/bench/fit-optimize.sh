#!/usr/bin/env bash
# Benchmark: fit time for all 13 paper targets (5-fold CV, each regressor), and optimize
# throughput (mixtures scored per second, peak RSS) side by side with Python LightGBM's
# `predict` on a model with as many trees as our XGBoost model, in the same run.
#   scripts/bench/fit-optimize.sh          SAMPLES="1000000 10000000" to change the sizes
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}/release
paper=${PAPER:-$root/../shared/regmix-paper-data}
work=$root/data/bench-fit
venv=$root/.venv-bench
samples=${SAMPLES:-"1000000 10000000"}
mkdir -p "$work"
[ -d "$paper" ] || { echo "paper data not found at $paper" >&2; exit 1; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import lightgbm, numpy' 2>/dev/null || "$venv/bin/pip" install -q lightgbm==4.6.0 numpy
"$bin/collect" --import-regmix-csv "$paper/train_mixture_1m.csv" "$paper/train_pile_loss_1m.csv" --output "$work/train.parquet" 2>/dev/null
targets=$("$venv/bin/python" -c "
import csv; h=next(csv.reader(open('$paper/train_pile_loss_1m.csv')))
print(' '.join('valid_loss.'+c[len('metric/the_pile_'):-len('_val_loss')] for c in h if c.startswith('metric/')))")
echo "== fit: 13 targets, 5-fold CV =="
printf '| %-12s | %-28s | %9s |\n' regressor target seconds
for r in linear log-linear xgboost gp ensemble auto; do
    total=0
    for t in $targets; do
        s=$(date +%s.%N)
        "$bin/fit" --dataset "$work/train.parquet" --target "$t" --regressor "$r" --output "$work/fit-$r" 2>/dev/null
        total=$(echo "$total + $(date +%s.%N) - $s" | bc)
    done
    printf '| %-12s | %-28s | %9.1f |\n' "$r" "all 13" "$total"
done
"$bin/fit" --dataset "$work/train.parquet" --target valid_loss.pile_cc --regressor xgboost --output "$work/fit-xgb" 2>/dev/null
"$bin/fit" --dataset "$work/train.parquet" --target valid_loss.pile_cc --regressor gp --output "$work/fit-gp" 2>/dev/null
rounds=$("$venv/bin/python" -c "import json; print(json.load(open('$work/fit-xgb/model.json'))['model']['rounds'])")
echo
echo "== optimize: mixtures scored per second (Pile-CC model, prior × 1) =="
printf '| %-44s | %11s | %10s | %12s | %9s |\n' implementation samples seconds mixtures/s "RSS MB"
for n in $samples; do
    for r in xgb gp; do
        out=$( { /usr/bin/time -f "TIME %e %M" "$bin/optimize" --fit "$work/fit-$r" --prior "$root/scripts/pile-prior.json" --output "$work/opt-$r" --samples "$n" >/dev/null; } 2>&1 | grep TIME)
        set -- $out
        printf '| %-44s | %11d | %10.1f | %12.0f | %9.0f |\n' "regmix optimize ($r)" "$n" "$2" "$(echo "$n / $2" | bc -l)" "$(echo "$3 / 1024" | bc -l)"
    done
    "$venv/bin/python" - "$paper" "$n" "$rounds" <<'PY'
import csv, resource, sys, time
import numpy as np, lightgbm as lgb
paper, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mix = list(csv.DictReader(open(f"{paper}/train_mixture_1m.csv")))
loss = {r["index"]: float(r["metric/the_pile_pile_cc_val_loss"]) for r in csv.DictReader(open(f"{paper}/train_pile_loss_1m.csv"))}
cols = [c for c in mix[0] if c != "index"]
X = np.array([[float(r[c]) for c in cols] for r in mix]); y = np.array([loss[r["index"]] for r in mix])
m = lgb.train({"verbosity": -1, "num_threads": 0}, lgb.Dataset(X, y), num_boost_round=rounds)
prior = np.array([.113285273,.079608651,.003913491,.185375901,.051081359,.015962925,.101750772,.003707518,.066529351,.001750772,.027085479,.236869207,.01184346,.007929969,.008032956,.038825953,.046446962])
rng = np.random.default_rng(0); t = time.perf_counter(); done = 0
while done < n:
    k = min(1 << 20, n - done)
    m.predict(rng.dirichlet(prior, k)); done += k
dt = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"| {'Python LightGBM predict (' + str(rounds) + ' trees)':<44} | {n:11d} | {dt:10.1f} | {n / dt:12.0f} | {rss:9.0f} |")
PY
done
