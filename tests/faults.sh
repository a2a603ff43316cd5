#!/usr/bin/env bash
# Faults, tried on purpose (run by `make test`), with the real stage binaries on a small real
# corpus (tests/corpus, the tests' own snapshot). Each case ends in a clear message or a correct
# resume, and no stage leaves a half-written output under its final name.
#   REGMIX_BIN   the stage binaries (default: the release build, as `make test` passes)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}
bin=${REGMIX_BIN:-$target/release}
py=${REGMIX_PYTHON:-$root/.venv/bin/python}
work=$(mktemp -d "${TMPDIR:-/tmp}/regmix-faults.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
export RUST_LOG=${RUST_LOG:-info}
fail() { echo "FAILED: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
# expect_error NAME TEXT... -- COMMAND: the command fails with exit code 2 and its stderr has every TEXT.
expect_error() {
    local name=$1; shift
    local texts=()
    while [ "$1" != -- ]; do texts+=("$1"); shift; done
    shift
    local rc=0
    "$@" > "$work/out" 2> "$work/err" || rc=$?
    [ $rc = 2 ] || { cat "$work/err" >&2; fail "$name: exit code $rc, expected 2"; }
    for t in "${texts[@]}"; do
        grep -qF -- "$t" "$work/err" || { cat "$work/err" >&2; fail "$name: the message does not say \`$t\`"; }
    done
    echo "   message: $(grep -m1 '^error' "$work/err")"
}

cp -r "$root/tests/corpus" "$work/corpus"
"$bin/tokenize-shard" --input "$work/corpus" --output "$work/shards" --train-bpe 512 --valid-fraction 0.1 2>/dev/null
"$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 4 --seed 3 --output "$work/mixtures.parquet" 2>/dev/null
train() { # output dir, extra flags...
    local out=$1; shift
    "$bin/proxy-train" --shards "$work/shards" --mixtures "$work/mixtures.parquet" --output "$out" --preset micro \
        --batch-tokens 512 --eval-windows 4 --threads 1 "$@"
}
# The same in the background: `train_exec … &` forks a shell that becomes proxy-train, so `$!`
# is proxy-train's own pid and `kill -9 $!` kills the trainer, not only its shell.
train_exec() {
    local out=$1; shift
    exec "$bin/proxy-train" --shards "$work/shards" --mixtures "$work/mixtures.parquet" --output "$out" --preset micro \
        --batch-tokens 512 --eval-windows 4 --threads 1 "$@"
}

echo "== a proxy run killed with SIGKILL in the middle resumes when rerun"
train_exec "$work/killed" --ids 0 --tokens 65536 --checkpoint-every 4 --eval-every 16 2> "$work/killed.log" &
pid=$!
for _ in $(seq 600); do [ -f "$work/killed/0/checkpoint.safetensors" ] && break; sleep 0.1; done
[ -f "$work/killed/0/checkpoint.safetensors" ] || fail "no checkpoint before the kill"
kill -9 $pid; wait $pid 2>/dev/null || true
[ ! -e "$work/killed/0/done.json" ] || fail "a killed run is marked done"
train "$work/killed" --ids 0 --tokens 65536 --checkpoint-every 4 --eval-every 16 2> "$work/resumed.log"
grep -q "resuming at step" "$work/resumed.log" || fail "the rerun did not resume"
grep -q '"finished"' "$work/killed/0/done.json" || fail "the resumed run did not finish"
[ -z "$(find "$work/killed" -name '*.tmp-*')" ] || fail "temporary files left behind: $(find "$work/killed" -name '*.tmp-*')"
pass "$(grep -o 'resuming at step [0-9]*' "$work/resumed.log"), finished, no temporary files left"

echo "== a runs folder with one diverged run: collect leaves it out, names it, and keeps the rest"
train "$work/runs" --ids 0,1 --tokens 1024 2> "$work/runs.log" || { cat "$work/runs.log"; fail "training the runs for collect"; }
train "$work/runs" --ids 2 --tokens 1024 --lr 1e30 2> "$work/diverged.log" || { cat "$work/diverged.log"; fail "training the diverging run"; }
"$bin/collect" --runs "$work/runs" --mixtures "$work/mixtures.parquet" --output "$work/dataset.parquet" 2> "$work/collect.log"
grep -q "2 (diverged)" "$work/collect.log" || { cat "$work/collect.log"; fail "collect does not name the diverged run"; }
grep -q "3 (missing)" "$work/collect.log" || { cat "$work/collect.log"; fail "collect does not name the missing run"; }
rows=$("$py" -c "import pyarrow.parquet as pq, sys; print(pq.read_table(sys.argv[1]).num_rows)" "$work/dataset.parquet")
[ "$rows" = 2 ] || fail "dataset has $rows rows, expected the 2 usable runs"
pass "$(grep -o 'left out.*' "$work/collect.log")"

echo "== a truncated Parquet file stops the next stage, which names it and writes nothing"
head -c 300 "$work/mixtures.parquet" > "$work/truncated-mixtures.parquet"
expect_error "proxy-train on truncated mixtures" "$work/truncated-mixtures.parquet" -- \
    "$bin/proxy-train" --shards "$work/shards" --mixtures "$work/truncated-mixtures.parquet" --output "$work/runs-t" --preset micro --tokens 1024
[ ! -e "$work/runs-t" ] || [ -z "$(ls -A "$work/runs-t")" ] || fail "proxy-train wrote runs from a truncated file"
size=$(stat -c %s "$work/dataset.parquet")
head -c $((size / 2)) "$work/dataset.parquet" > "$work/truncated-dataset.parquet"
expect_error "fit on a truncated dataset" "$work/truncated-dataset.parquet" -- \
    "$bin/fit" --dataset "$work/truncated-dataset.parquet" --target "mean(valid_loss.*)" --output "$work/fit-t"
[ ! -e "$work/fit-t/model.json" ] || fail "fit wrote a model from a truncated file"
cp "$work/runs/1/metrics.parquet" "$work/metrics.bak"
head -c 200 "$work/metrics.bak" > "$work/runs/1/metrics.parquet"
expect_error "collect over a truncated metrics file" "$work/runs/1/metrics.parquet" -- \
    "$bin/collect" --runs "$work/runs" --mixtures "$work/mixtures.parquet" --output "$work/dataset-t.parquet"
[ ! -e "$work/dataset-t.parquet" ] || fail "collect wrote a dataset despite the truncated file"
cp "$work/metrics.bak" "$work/runs/1/metrics.parquet"
pass "each stage refused its truncated input by name and left no output"

echo "== a mixtures file whose weights do not sum to 1 is refused, naming the row"
"$py" - "$work/mixtures.parquet" "$work/bad-sum.parquet" <<'PY'
import sys
import pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
col = next(c for c in t.column_names if c.startswith("weight."))
w = t.column(col).to_pylist()
w[1] = w[1] * 0.5 + 0.2  # row 1 no longer sums to 1
t = t.set_column(t.column_names.index(col), t.schema.field(col), pa.array(w, pa.float64()))
pq.write_table(t, sys.argv[2])  # the schema and its metadata are kept
PY
expect_error "proxy-train on weights that do not sum to 1" "$work/bad-sum.parquet" "row 1" "sum to" -- \
    "$bin/proxy-train" --shards "$work/shards" --mixtures "$work/bad-sum.parquet" --output "$work/runs-s" --preset micro --tokens 1024
expect_error "target-train on weights that do not sum to 1" "$work/bad-sum.parquet" "sum to" -- \
    "$bin/target-train" --shards "$work/shards" --output "$work/target-s" --preset micro --tokens 1024 --mixture "x=$work/bad-sum.parquet#1"
pass "refused by proxy-train and target-train"
echo "== --backend cuda on a machine without a usable GPU: a message naming what is missing, no run"
if "$bin/proxy-train" --help >/dev/null && [ ! -e /dev/nvidia0 ]; then
    expect_error "proxy-train --backend cuda without a GPU" "--backend cuda" "CUDA is not available" -- \
        train "$work/runs-cuda" --ids 0 --tokens 1024 --backend cuda
    [ -z "$(ls -A "$work/runs-cuda" 2>/dev/null)" ] || fail "a run was started: $(ls "$work/runs-cuda")"
    pass "refused, nothing written"
else
    echo "SKIPPED: this machine has a GPU (/dev/nvidia0)"
fi
echo "faults: all cases passed"
