#!/usr/bin/env bash
# Benchmark: does link-time optimisation pay? The hot binaries built twice, in the release
# profile (no LTO, what every make target uses) and in release-lto (thin LTO), then run side
# by side in the same run, alternating: CPU training (train-bench, micro and small) and
# optimize's scoring (the paper's Pile-CC model, xgboost and GP, 10M mixtures).
#   scripts/bench/lto.sh            (make bench-lto; needs ../shared/regmix-paper-data)
set -euo pipefail
shopt -s inherit_errexit
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}
paper=${PAPER:-$root/../shared/regmix-paper-data}
work=$root/data/bench-lto
samples=${SAMPLES:-10000000}
repeats=${REPEATS:-3}
mkdir -p "$work"
cd "$root"
for p in release release-lto; do
    cargo build -q --profile "$p" -p regmix-train -p optimize --bin train-bench --bin optimize
done
cargo build -q --release -p collect -p fit
bin() { echo "$target/$1/$2"; }
"$(bin release collect)" --import-regmix-csv "$paper/train_mixture_1m.csv" "$paper/train_pile_loss_1m.csv" --output "$work/train.parquet" 2>/dev/null
for r in xgboost gp; do
    "$(bin release fit)" --dataset "$work/train.parquet" --target valid_loss.pile_cc --regressor $r --output "$work/fit-$r" 2>/dev/null
done
best_train() { # profile preset → best tokens/s of $repeats runs
    local b=0
    for _ in $(seq "$repeats"); do
        t=$("$(bin "$1" train-bench)" --backend cpu --preset "$2" --vocab 8192 --micro-batch 16 --accumulation 1 --warmup 3 --steps 10 2>/dev/null | tail -1 |
            python3 -c 'import json,sys; print(round(json.loads(sys.stdin.read())["tokens_per_s"]))')
        [ "$t" -gt "$b" ] && b=$t
    done
    echo "$b"
}
best_opt() { # profile regressor → best mixtures/s of $repeats runs
    local b=0
    for _ in $(seq "$repeats"); do
        s=$(date +%s.%N)
        "$(bin "$1" optimize)" --fit "$work/fit-$2" --prior "$root/scripts/pile-prior.json" --output "$work/opt-$1-$2" --samples "$samples" >/dev/null 2>&1
        m=$(echo "$samples / ($(date +%s.%N) - $s)" | bc)
        [ "$m" -gt "$b" ] && b=$m
    done
    echo "$b"
}
echo "| benchmark (best of $repeats, $(nproc) cores) | release (no LTO) | release-lto (thin) | LTO / no LTO |"
echo "| --- | --- | --- | --- |"
for preset in ${PRESETS:-micro small}; do
    a=$(best_train release $preset); b=$(best_train release-lto $preset)
    echo "| train-bench $preset, tokens/s | $a | $b | $(echo "scale=3; $b / $a" | bc) |"
done
for r in xgboost gp; do
    a=$(best_opt release $r); b=$(best_opt release-lto $r)
    echo "| optimize $r model, $samples mixtures, mixtures/s | $a | $b | $(echo "scale=3; $b / $a" | bc) |"
done
