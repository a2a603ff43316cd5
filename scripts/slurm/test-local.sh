#!/usr/bin/env bash
# The Slurm test (run by `make test`): on a one-node cluster started here,
#  1. submit the whole pipeline at micro scale with submit.sh, as a user with their own data
#     would: the tokenizer given (the one the make run trained), each document's domain from a
#     field of its record (in files whose names say nothing of it), tokenization over a
#     2-task array and a merge; wait, and check that its outputs (mixtures, dataset, optimum,
#     target comparison) hold the same numbers as the make-driven run of the same
#     configuration, and that the settings and commands were written beside $DATA;
#  2. requeue a running proxy-train array task (scontrol requeue: the task is killed and put
#     back in the queue) and check that it resumes from its checkpoint and ends with the
#     same metrics as an uninterrupted run.
# Then it tears the cluster down. Skips, saying why, without root or without slurm-wlm.
#   REGMIX_BIN   the stage binaries (default: the release build, as `make test` passes)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export REGMIX_ROOT=$root
target=${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}
export REGMIX_BIN=${REGMIX_BIN:-$target/release}
py=${REGMIX_PYTHON:-$root/.venv/bin/python}
skip() { echo "SKIPPED slurm test: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root to start munged, slurmctld and slurmd"
for b in munged slurmctld slurmd sbatch; do command -v $b >/dev/null || skip "$b not installed (scripts/setup.sh installs slurm-wlm and munge)"; done
for b in tokenize-shard sample-mixtures proxy-train collect fit optimize target-train report; do
    [ -x "$REGMIX_BIN/$b" ] || { echo "slurm test: $REGMIX_BIN/$b missing (cargo build --release --workspace first)" >&2; exit 1; }
done
"$py" -c 'import pyarrow' || { echo "slurm test: $py has no pyarrow" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/regmix-slurm-test.XXXXXX")
cluster=$work/cluster
cleanup() {
    scancel --quiet --user=root 2>/dev/null || true
    bash "$root/scripts/slurm/local-cluster.sh" stop "$cluster" || true
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
# A machine that cannot run the daemons at all (no hostname resolution, no room for a socket)
# is an environment we cannot test in: say so loudly and skip. Everything after this is a
# real failure.
if ! conf=$(bash "$root/scripts/slurm/local-cluster.sh" start "$cluster"); then
    skip "the local cluster did not start on this machine (logs above)"
fi
eval "$conf"
started=$(date +%s)

# A small real corpus: tests/corpus, the tests' own snapshot of prose, code and configuration,
# one JSON line per paragraph (the same three domains as the Rust tests).
corpus=$work/corpus
mkdir -p "$corpus"
cp -r "$root/tests/corpus/." "$corpus"

# The configuration both runs share (the names of env.sh and of the Makefile).
export VOCAB=512 VALID=0.1 MIXTURES=12 SEED=7 SAMPLES=20000 TOP_K=16 BOOTSTRAP=2 MAX_EPOCHS=4
export PROXY_PRESET=micro PROXY_TOKENS=4096 PROXY_FLAGS="--batch-tokens 512 --eval-windows 4 --eval-every 4 --lr 3e-3"
export TARGET_PRESET=micro TARGET_TOKENS=4096 TARGET_FLAGS="--batch-tokens 512 --eval-windows 4 --lr 3e-3"
export FIT_TARGET='mean(valid_loss.*)' FIT_REGRESSOR=gp
mkcfg=(VOCAB=$VOCAB VALID=$VALID MIXTURES=$MIXTURES SEED=$SEED PROXY_PRESET=$PROXY_PRESET PROXY_TOKENS=$PROXY_TOKENS
       "PROXY_FLAGS=$PROXY_FLAGS" TARGET_PRESET=$TARGET_PRESET TARGET_TOKENS=$TARGET_TOKENS "TARGET_FLAGS=$TARGET_FLAGS"
       "DEMO_TARGET=$FIT_TARGET" DEMO_REGRESSOR=$FIT_REGRESSOR DEMO_SAMPLES=$SAMPLES DEMO_TOP_K=$TOP_K
       DEMO_BOOTSTRAP=$BOOTSTRAP MAX_EPOCHS=$MAX_EPOCHS)

echo "== 1. the pipeline through make, then through Slurm =="
mkdir -p "$work/make"
cp -r "$corpus" "$work/make/corpus"
touch "$work/make/corpus/.stamp"
make -C "$root" --no-print-directory -o build -o setup BIN="$REGMIX_BIN" DATA="$work/make" "${mkcfg[@]}" \
    "$work/make/report.html" > "$work/make.log" 2>&1 || { tail -30 "$work/make.log"; exit 1; }

# The same documents, each file's domain in a field (meta.source) of every record and not in
# its name: one file per domain keeps each domain's document order, so the shards equal the
# make run's.
field=$work/field-corpus
mkdir -p "$field"
"$py" - "$corpus" "$field" <<'PY'
import json, pathlib, sys
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for i, f in enumerate(sorted(src.glob("*.jsonl"))):
    with open(f) as a, open(dst / f"part_{i}-0.jsonl", "w") as b:
        for line in a:
            if line.strip():
                b.write(json.dumps({"text": json.loads(line)["text"], "meta": {"source": f.stem}}) + "\n")
PY
export DATA=$work/slurm CORPUS=$field CPUS=1 ARRAY_PARALLEL=2
export TOKENIZER=$work/make/shards/tokenizer.json DOMAIN_FROM=field:meta.source TEXT_FIELD=text TOKENIZE_TASKS=2
ids=$(bash "$root/scripts/slurm/submit.sh")
echo "$ids"
wait_for() { # job ids...: until none is pending or running; fails unless all COMPLETED
    local deadline=$(( $(date +%s) + ${TIMEOUT:-480} ))
    while squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null | grep -q .; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for $*" >&2; squeue >&2; return 1; }
        sleep 2
    done
    local bad
    bad=$(for j in "$@"; do scontrol show job "$j" 2>/dev/null | grep -o 'JobState=[A-Z_]*' ; done | grep -v COMPLETED || true)
    [ -z "$bad" ] || { echo "jobs did not complete: $bad" >&2; tail -20 "$DATA"/logs/*.out >&2; return 1; }
}
# shellcheck disable=SC2046
wait_for $(awk '{print $2}' <<< "$ids" | grep -E '^[0-9]+$')
"$py" - "$work/make" "$DATA" <<'PY'
import sys
import pyarrow.parquet as pq
a, b = sys.argv[1], sys.argv[2]
for f in ["mixtures.parquet", "dataset.parquet", "optimum/optimum.parquet", "target/comparison.parquet"]:
    x, y = (pq.read_table(f"{d}/{f}").replace_schema_metadata(None) for d in (a, b))
    assert x.equals(y), f"{f}: the Slurm run differs from the make run\n{x.to_pydict()}\n{y.to_pydict()}"
    print(f"  {f}: identical ({x.num_rows} rows, {x.num_columns} columns)")
PY
test -s "$DATA/report.html" && echo "  report.html written"
grep -qx "TOKENIZER=$TOKENIZER" "$DATA/submit/settings.env" && grep -qx "DOMAIN_FROM=field:meta.source" "$DATA/submit/settings.env" \
    || { echo "settings.env lacks the run's settings" >&2; cat "$DATA/submit/settings.env" >&2; exit 1; }
grep -q -- "--array-index \$SLURM_ARRAY_TASK_ID --array-count 2" "$DATA/submit/jobs.sh" && grep -q -- "--merge --array-count 2" "$DATA/submit/jobs.sh" \
    || { echo "jobs.sh lacks the tokenization array's commands" >&2; cat "$DATA/submit/jobs.sh" >&2; exit 1; }
echo "  settings.env and jobs.sh written beside \$DATA"

echo "== 2. requeue a running proxy task: it resumes from its checkpoint =="
export RUNS=$work/requeue-runs PROXY_TOKENS=65536
export PROXY_FLAGS="--batch-tokens 512 --eval-windows 4 --eval-every 16 --checkpoint-every 4 --lr 3e-3"
export ARRAY_COUNT=$MIXTURES
job=$(sbatch --parsable --export=ALL --array=0 --job-name=regmix-proxy --output="$work/requeue-%A_%a.out" \
    "$root/scripts/slurm/proxy-train.sbatch" | cut -d';' -f1)
# Task 0 of an array of MIXTURES tasks trains mixture 0. Wait for its first checkpoint.
for _ in $(seq 240); do
    [ -f "$RUNS/0/checkpoint.safetensors" ] && break
    sleep 0.5
done
[ -f "$RUNS/0/checkpoint.safetensors" ] || { echo "no checkpoint appeared" >&2; cat "$work"/requeue-*.out >&2; exit 1; }
scontrol requeue "${job}_0"
echo "  requeued ${job}_0 after its first checkpoint"
TIMEOUT=600 wait_for "$job"
grep -q "resuming at step" "$work"/requeue-*.out || { echo "the requeued task did not resume" >&2; cat "$work"/requeue-*.out >&2; exit 1; }
grep -o "resuming at step [0-9]*" "$work"/requeue-*.out | sed 's/^/  /'
# The same run, never interrupted, outside Slurm.
# shellcheck disable=SC2086
"$REGMIX_BIN/proxy-train" --shards "$DATA/shards" --mixtures "$DATA/mixtures.parquet" --output "$work/plain-runs" \
    --preset micro --tokens "$PROXY_TOKENS" --seed "$SEED" --threads 1 --ids 0 $PROXY_FLAGS 2>/dev/null
"$py" - "$RUNS/0/metrics.parquet" "$work/plain-runs/0/metrics.parquet" <<'PY'
import sys
import pyarrow.parquet as pq
x, y = (pq.read_table(p).replace_schema_metadata(None).drop(["elapsed_s"]) for p in sys.argv[1:])
assert x.equals(y), "the requeued run's metrics differ from an uninterrupted run"
print(f"  metrics identical to an uninterrupted run ({x.num_rows} evaluations)")
PY
echo "slurm test passed in $(( $(date +%s) - started ))s"
