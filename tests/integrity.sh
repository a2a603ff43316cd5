#!/usr/bin/env bash
# The integrity battery (run by `make test`): bad inputs and faults of the four kinds that can
# hand a researcher a wrong mixture with exit code 0 (finished work skipped without checking
# it is the same work; outputs that record paths and ids instead of content; output folders
# atomic per file only; writers that replace what is at the output path), and inputs that
# used to panic, abort or grow without bound. Each case is graded:
#   good  an error (exit 2) whose message says the expected thing, or the right result
#   weak  a panic, a signal, a timeout, or an error that does not say what is wrong
#   bad   exit 0 where an error was due, or a wrong result
# and the totals are printed last. With STRICT=1 (make test) any case not good fails the run.
#   REGMIX_BIN   the stage binaries (default: the release build)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${REGMIX_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}/release}
py=${REGMIX_PYTHON:-$root/.venv/bin/python}
work=$(mktemp -d "${TMPDIR:-/tmp}/regmix-integrity.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
export RUST_LOG=${RUST_LOG:-info}
good=0 weak=0 bad=0
declare -a report
grade() { # NAME GRADE WHY
    case $2 in good) good=$((good + 1)) ;; weak) weak=$((weak + 1)) ;; bad) bad=$((bad + 1)) ;; esac
    report+=("$(printf '%-5s %s%s' "$2" "$1" "${3:+: $3}")")
    echo "$2: $1${3:+ ($3)}"
}
# expect_error NAME TEXT... -- COMMAND: good when the command exits 2 and stderr has every TEXT.
expect_error() {
    local name=$1; shift
    local texts=()
    while [ "$1" != -- ]; do texts+=("$1"); shift; done
    shift
    local rc=0
    timeout 120 "$@" > "$work/out" 2> "$work/err" || rc=$?
    if [ $rc = 0 ]; then grade "$name" bad "exit 0"; return; fi
    if [ $rc != 2 ]; then grade "$name" weak "exit $rc: $(grep -m1 -E 'panicked|error|memory' "$work/err" | cut -c1-120)"; return; fi
    for t in "${texts[@]}"; do
        grep -qF -- "$t" "$work/err" || { grade "$name" weak "the message does not say \`$t\`: $(grep -m1 '^error' "$work/err" | cut -c1-160)"; return; }
    done
    grade "$name" good "$(grep -m1 '^error' "$work/err" | cut -c1-160)"
}
# expect_ok NAME CHECK -- COMMAND: good when the command exits 0 and CHECK (a shell test) holds.
expect_ok() {
    local name=$1 check=$2; shift 3
    local rc=0
    timeout 120 "$@" > "$work/out" 2> "$work/err" || rc=$?
    if [ $rc != 0 ]; then
        if [ $rc = 2 ]; then grade "$name" bad "refused: $(grep -m1 '^error' "$work/err" | cut -c1-120)"; else grade "$name" weak "exit $rc"; fi
        return
    fi
    if eval "$check"; then grade "$name" good; else grade "$name" bad "exit 0 but: $check"; fi
}

# A small real pipeline to damage.
cp -r "$root/tests/corpus" "$work/corpus"
"$bin/tokenize-shard" --input "$work/corpus" --output "$work/shards" --train-bpe 512 --valid-fraction 0.1 2>/dev/null || { echo "set-up failed: tokenize-shard"; exit 1; }
"$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 4 --seed 3 --output "$work/mixtures.parquet" 2>/dev/null
"$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 4 --seed 4 --output "$work/mixtures-other.parquet" 2>/dev/null
flags=(--preset micro --batch-tokens 512 --eval-windows 4 --threads 1)
proxy=("$bin/proxy-train" --shards "$work/shards" "${flags[@]}")
"${proxy[@]}" --mixtures "$work/mixtures.parquet" --output "$work/runs" --tokens 4096 2>/dev/null || { echo "set-up failed: proxy-train"; exit 1; }
"$bin/collect" --runs "$work/runs" --mixtures "$work/mixtures.parquet" --output "$work/dataset.parquet" 2>/dev/null
"$bin/fit" --dataset "$work/dataset.parquet" --target 'mean(valid_loss.*)' --regressor linear --folds 2 --output "$work/fit" 2>/dev/null

echo "== 1. finished work is never skipped without checking that it is the same work"
expect_error "proxy-train over finished runs with other --tokens" "holds a finished run with other settings" "train.tokens: 4096 then" -- \
    "${proxy[@]}" --mixtures "$work/mixtures.parquet" --output "$work/runs" --tokens 8192
printf 'train:\n  train_code: 0.7\n  train_config: 0.2\n  train_prose: 0.1\n' > "$work/a.yaml"
printf 'train:\n  train_code: 0.1\n  train_config: 0.2\n  train_prose: 0.7\n' > "$work/b.yaml"
"${proxy[@]}" --mixtures "$work/a.yaml" --output "$work/yaml-runs" --tokens 2048 2>/dev/null
expect_ok "two YAML mixtures one after the other are two runs" '[ "$(ls "$work"/yaml-runs/*/done.json | wc -l)" = 2 ]' -- \
    "${proxy[@]}" --mixtures "$work/b.yaml" --output "$work/yaml-runs" --tokens 2048
"$bin/target-train" --shards "$work/shards" --output "$work/target" --mixture "m=$work/a.yaml" "${flags[@]}" --tokens 2048 2>/dev/null
expect_error "target-train of another mixture under a finished model's name" "holds a finished run with other settings" "weights[0]" -- \
    "$bin/target-train" --shards "$work/shards" --output "$work/target" --mixture "m=$work/b.yaml" "${flags[@]}" --tokens 2048
expect_ok "--retrain trains a run with other settings again" 'grep -q "\"tokens\": 6144" "$work/runs/0/done.json"' -- \
    "${proxy[@]}" --mixtures "$work/mixtures.parquet" --output "$work/runs" --tokens 6144 --ids 0 --retrain

echo "== 2. every consumer checks what it reads against what it expects"
expect_error "collect with a mixtures file drawn with another seed" "the runs were trained on another mixtures file" -- \
    "$bin/collect" --runs "$work/runs" --mixtures "$work/mixtures-other.parquet" --output "$work/ds2.parquet"
expect_error "collect over runs of different lengths" "runs were trained with other settings" "train.tokens" -- \
    "$bin/collect" --runs "$work/runs" --mixtures "$work/mixtures.parquet" --output "$work/ds3.parquet"
"${proxy[@]}" --mixtures "$work/mixtures.parquet" --output "$work/runs" --tokens 4096 --ids 0 --retrain 2>/dev/null
cp -r "$work/runs" "$work/runs-copied"
cp "$work/runs/3/metrics.parquet" "$work/runs-copied/1/metrics.parquet"
expect_error "a metrics file copied into another run's folder" "runs-copied/1/metrics.parquet: the run is of mixture 3" -- \
    "$bin/collect" --runs "$work/runs-copied" --mixtures "$work/mixtures.parquet" --output "$work/ds4.parquet"
cp "$work/dataset.parquet" "$work/dataset.kept"
"$bin/collect" --runs "$work/runs" --mixtures "$work/mixtures.parquet" --step 4 --output "$work/dataset.parquet" 2>/dev/null
expect_error "optimize --bootstrap after the dataset changed" "the dataset changed since fit read it" -- \
    "$bin/optimize" --fit "$work/fit" --manifest "$work/shards/manifest.parquet" --samples 1000 --top-k 10 --bootstrap 2 --output "$work/opt-b"
cp "$work/dataset.kept" "$work/dataset.parquet"
cp -r "$work/shards" "$work/shards-tok"
"$bin/tokenize-shard" --input "$work/corpus" --output "$work/other-tok" --train-bpe 300 --valid-fraction 0.1 2>/dev/null
cp "$work/other-tok/tokenizer.json" "$work/shards-tok/tokenizer.json"
expect_error "target-train on shards whose tokenizer.json was replaced" "do not belong together" -- \
    "$bin/target-train" --shards "$work/shards-tok" --output "$work/target-tok" --mixture u=uniform "${flags[@]}" --tokens 2048
cp -r "$work/fit" "$work/fit-edited"
"$py" - "$work/fit-edited/model.json" <<'PY'
import json, sys
p = sys.argv[1]; m = json.load(open(p)); m["model"]["coef"] = m["model"]["coef"][:2]; json.dump(m, open(p, "w"))
PY
expect_error "a hand-edited model.json with two coefficients for three domains" "linear has 2 coefficients for 3 domains" -- \
    "$bin/optimize" --fit "$work/fit-edited" --manifest "$work/shards/manifest.parquet" --samples 1000 --top-k 10 --output "$work/opt-e"
"$py" - "$work/runs/2/metrics.parquet" "$work/runs-nan" <<'PY'
import math, os, shutil, sys
import pyarrow as pa, pyarrow.parquet as pq
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(os.path.dirname(os.path.dirname(src)), dst)
t = pq.read_table(src)
c = t.column_names.index("valid_loss.code")
col = t.column(c).to_pylist(); col[-1] = math.nan
t = t.set_column(c, t.schema.field(c), pa.array(col, pa.float64()))
pq.write_table(t.replace_schema_metadata(t.schema.metadata), os.path.join(dst, "2", "metrics.parquet"))
PY
expect_ok "a final evaluation of NaN leaves the run out, not an earlier one in its place" 'grep -q "2 (non-finite final evaluation)" "$work/err"' -- \
    "$bin/collect" --runs "$work/runs-nan" --mixtures "$work/mixtures.parquet" --output "$work/ds5.parquet"
"$py" - "$work/runs/2/metrics.parquet" "$work/runs-neg" <<'PY'
import os, shutil, sys
import pyarrow as pa, pyarrow.parquet as pq
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(os.path.dirname(os.path.dirname(src)), dst)
t = pq.read_table(src)
c = t.column_names.index("valid_loss.code")
col = [(-x if x is not None else None) for x in t.column(c).to_pylist()]
t = t.set_column(c, t.schema.field(c), pa.array(col, pa.float64()))
pq.write_table(t.replace_schema_metadata(t.schema.metadata), os.path.join(dst, "2", "metrics.parquet"))
PY
expect_error "a negative loss" "field \`valid_loss.code\`" "is negative" -- \
    "$bin/collect" --runs "$work/runs-neg" --mixtures "$work/mixtures.parquet" --output "$work/ds6.parquet"

echo "== 3. an output folder commits as a unit; killed writers' temporaries are removed"
mkdir -p "$work/fit.tmp-999999"; echo half > "$work/ds7.parquet.tmp-999999"
"$bin/fit" --dataset "$work/dataset.parquet" --target 'mean(valid_loss.*)' --regressor linear --folds 2 --output "$work/fit" 2>/dev/null
expect_ok "fit removes a killed fit's staging folder; collect a killed collect's temporary" '[ ! -e "$work/fit.tmp-999999" ] && [ ! -e "$work/ds7.parquet.tmp-999999" ]' -- \
    "$bin/collect" --runs "$work/runs" --mixtures "$work/mixtures.parquet" --output "$work/ds7.parquet"
before=$(stat -c %i "$work/fit")
expect_ok "fit's folder is replaced whole (another inode), never file by file" '[ "$(stat -c %i "$work/fit")" != "$before" ] && [ -z "$(ls -a "$work" | grep "^fit.tmp-")" ]' -- \
    "$bin/fit" --dataset "$work/dataset.parquet" --target 'valid_loss.code' --regressor linear --folds 2 --output "$work/fit"

echo "== 4. writers replace only regular files, names stay in their folder, one writer per output"
mkfifo "$work/fifo.parquet"
expect_error "sample-mixtures --output a FIFO" "refusing to replace it with an output: it is a FIFO" -- \
    "$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 2 --output "$work/fifo.parquet"
ln -s "$work/mixtures.parquet" "$work/link.parquet"
expect_error "sample-mixtures --output a symbolic link" "it is a symbolic link" -- \
    "$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 2 --output "$work/link.parquet"
expect_error "target-train --mixture ..=uniform" "NAME must be letters" -- \
    "$bin/target-train" --shards "$work/shards" --output "$work/t2" --mixture ..=uniform "${flags[@]}" --tokens 2048
"$bin/proxy-train" --shards "$work/shards" "${flags[@]}" --mixtures "$work/mixtures.parquet" --output "$work/lock-runs" --tokens 2000000 --ids 0 2>/dev/null &
holder=$!
for _ in $(seq 200); do [ -s "$work/lock-runs/0/.lock" ] && break; sleep 0.05; done
expect_error "a second proxy-train on a run being trained" "is being written by another process (pid $holder" -- \
    "${proxy[@]}" --mixtures "$work/mixtures.parquet" --output "$work/lock-runs" --tokens 2000000 --ids 0
kill -9 $holder 2>/dev/null; wait $holder 2>/dev/null
expect_ok "the run resumes once its holder is gone (the kernel drops a dead process's lock)" '[ -e "$work/lock-runs/0/done.json" ]' -- \
    "${proxy[@]}" --mixtures "$work/mixtures.parquet" --output "$work/lock-runs" --tokens 4096 --ids 0 --retrain

echo "== 5. no panic, no abort, no unbounded memory"
expect_error "fit --target steps" "column \`steps\` is not floating-point" -- \
    "$bin/fit" --dataset "$work/dataset.parquet" --target steps --output "$work/f1"
expect_error "fit --folds 1" "at least 2 folds" -- \
    "$bin/fit" --dataset "$work/dataset.parquet" --target 'mean(valid_loss.*)' --folds 1 --output "$work/f2"
"$py" - "$work/dataset.parquet" "$work/constant.parquet" <<'PY'
import sys
import pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
for i, n in enumerate(t.column_names):
    if n.startswith("valid_loss."):
        t = t.set_column(i, t.schema.field(i), pa.array([4.0] * t.num_rows, pa.float64()))
pq.write_table(t.replace_schema_metadata(t.schema.metadata), sys.argv[2])
PY
expect_error "fit --regressor auto on a constant target" "is 4 in every one of the 4 runs: there is nothing to regress" -- \
    "$bin/fit" --dataset "$work/constant.parquet" --target 'mean(valid_loss.*)' --folds 2 --output "$work/f3"
expect_error "optimize --strength NaN" "--strength NaN must be a positive number" -- \
    "$bin/optimize" --fit "$work/fit" --manifest "$work/shards/manifest.parquet" --strength NaN --output "$work/o1"
expect_error "optimize --min-weight 1" "--min-weight 1 must be in [0, 1)" -- \
    "$bin/optimize" --fit "$work/fit" --manifest "$work/shards/manifest.parquet" --min-weight 1 --output "$work/o2"
expect_error "optimize --samples 50 --top-k 100" "--top-k 100 is more than the 50 mixtures simulated" -- \
    "$bin/optimize" --fit "$work/fit" --manifest "$work/shards/manifest.parquet" --samples 50 --top-k 100 --output "$work/o3"
expect_error "tokenize-shard --train-bpe 4294967296" "--train-bpe 4294967296: a vocabulary of 256" -- \
    "$bin/tokenize-shard" --input "$work/corpus" --output "$work/t1" --train-bpe 4294967296
echo '{"context": 100000}' > "$work/huge.json"
expect_error "a model context of 100000" "needs about" "GB on the CPU" -- \
    "$bin/proxy-train" --shards "$work/shards" --preset micro --batch-tokens 100000 --threads 1 --mixtures "$work/mixtures.parquet" \
    --output "$work/r-huge" --tokens 100000 --model-config "$work/huge.json"
expect_error "sample-mixtures --count 100000000" "distinct mixtures of 3 domains exist on the grid" -- \
    "$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 100000000 --output "$work/m1.parquet"
mkdir -p "$work/c-empty"; cp "$work/corpus/"*.jsonl "$work/c-empty/"; : > "$work/c-empty/legal-0.jsonl"
expect_error "an empty domain" "legal-0.jsonl: no documents, so domain \`legal\` would be left out" -- \
    "$bin/tokenize-shard" --input "$work/c-empty" --output "$work/t2" --train-bpe 300
mkdir -p "$work/c-clash"; cp "$work/corpus/code.jsonl" "$work/c-clash/code-0.jsonl"; cp "$work/corpus/prose.jsonl" "$work/c-clash/Code-1.jsonl"
expect_error "two files whose names are the same domain" "are both domain \`code\`" -- \
    "$bin/tokenize-shard" --input "$work/c-clash" --output "$work/t3" --train-bpe 300
expect_error "the same input given twice" "is given twice" -- \
    "$bin/tokenize-shard" --input "$work/corpus" --input "$work/corpus/code.jsonl" --output "$work/t4" --train-bpe 300
printf 'train:\n  train_code: 0.5\n  train_prose: 0.5\n' > "$work/two.yaml"
expect_ok "a mixture file naming two of three domains says the third trains at weight 0" 'grep -q "names no weight for 1 of the shards. domains (config)" "$work/err"' -- \
    "${proxy[@]}" --mixtures "$work/two.yaml" --output "$work/r-two" --tokens 2048

echo "== 6. a committed results table grows, and is skipped, only under its own settings"
export_results=("$py" "$root/scripts/experiments/export-results.py")
rt=(--mixtures "$work/mixtures.parquet" --tokens 4096 --eval-every 2 --checkpoint-every 2)
"${proxy[@]}" "${rt[@]}" --output "$work/rt-runs" --ids 0,1 2>/dev/null
"$bin/collect" --runs "$work/rt-runs" --mixtures "$work/mixtures.parquet" --output "$work/rt-a.parquet" 2>/dev/null
expect_ok "a results table records the flags and the runs' settings beside it" \
    'grep -q "\"flags\": \"A\"" "$work/results/t.settings.json" && grep -q "shards_sha256" "$work/results/t.settings.json"' -- \
    "${export_results[@]}" "$work/rt-a.parquet" "$work/results/t.csv" --merge --flags A
expect_error "a merge under other flags" "trained with other settings than the table" "flags: 'A' vs 'B'" -- \
    "${export_results[@]}" "$work/rt-a.parquet" "$work/results/t.csv" --merge --flags B
"${proxy[@]}" "${rt[@]}" --output "$work/rt-lr" --ids 2 --lr 1e-3 2>/dev/null
"$bin/collect" --runs "$work/rt-lr" --mixtures "$work/mixtures.parquet" --output "$work/rt-lr.parquet" 2>/dev/null
expect_error "a merge of a new run trained at another learning rate" "run_settings.train.lr" -- \
    "${export_results[@]}" "$work/rt-lr.parquet" "$work/results/t.csv" --merge --flags A
expect_ok "a refused merge leaves the table as it was" '[ "$(wc -l < "$work/results/t.csv")" = 3 ]' -- true
expect_error "skipping a table's runs under other flags" "this target trains with 'B'" -- \
    "${export_results[@]}" --check "$work/results/t.csv" --flags B --manifest "$work/shards/manifest.parquet"
expect_ok "skipping a table's runs under its own settings" 'grep -q "settings are this target" "$work/out"' -- \
    "${export_results[@]}" --check "$work/results/t.csv" --flags A --manifest "$work/shards/manifest.parquet"
mkdir -p "$work/bare" && cp "$work/results/t.csv" "$work/results/t.trajectories.csv" "$work/bare/"
expect_error "skipping the runs of a table that records no settings" "records no settings" -- \
    "${export_results[@]}" --check "$work/bare/t.csv" --flags A --manifest "$work/shards/manifest.parquet"
"${proxy[@]}" "${rt[@]}" --output "$work/rt-probe" --ids 0 --stop-after 4 2> "$work/err" || true
"$bin/collect" --runs "$work/rt-probe" --mixtures "$work/mixtures.parquet" --step 4 --output "$work/rt-probe.parquet" 2>/dev/null
expect_ok "a run trained again to step 4 reproduces the table, and the check is recorded" \
    'grep -q "\"step\": 4" "$work/results/t.settings.json"' -- \
    "${export_results[@]}" --verify "$work/rt-probe.parquet" "$work/results/t.csv" --flags A
expect_ok "the probe records the settings of a table that had none" '[ -f "$work/bare/t.settings.json" ]' -- \
    "${export_results[@]}" --verify "$work/rt-probe.parquet" "$work/bare/t.csv" --flags A
awk -F, -v OFS=, 'NR == 2 { $6 = "9.5" } { print }' "$work/results/t.trajectories.csv" > "$work/bare/x" && mv "$work/bare/x" "$work/bare/t.trajectories.csv"
expect_error "a table whose loss was changed is not reproduced" "re-trained here gives other values" "the table is not reproduced" -- \
    "${export_results[@]}" --verify "$work/rt-probe.parquet" "$work/bare/t.csv" --flags A

echo "== 7. a longer run joins a table in place of its run only if it is that run continued"
extend=("$py" "$root/scripts/experiments/extend-runs.py")
long=(--mixtures "$work/mixtures.parquet" --tokens 16384 --eval-every 2 --checkpoint-every 2 --ids 0)
"${proxy[@]}" "${long[@]}" --warmup-steps 0 --output "$work/rt-long" 2>/dev/null
"$bin/collect" --runs "$work/rt-long" --mixtures "$work/mixtures.parquet" --output "$work/rt-long.parquet" 2>/dev/null
"${export_results[@]}" "$work/rt-long.parquet" "$work/results/long.csv" --flags L > /dev/null
mkdir -p "$work/joined"
expect_ok "a run trained further replaces its shorter run, which it equals where both evaluated" \
    '[ "$(awk -F, '"'"'$1 == 0 { print $2 }'"'"' "$work/joined/t.csv")" = 16384 ] && grep -q "2 runs: 1 continued" "$work/out"' -- \
    "${extend[@]}" "$work/results/t.csv" "$work/results/long.csv" --output "$work/joined/t.csv"
"${proxy[@]}" "${long[@]}" --warmup-steps 2 --output "$work/rt-warm" 2>/dev/null
"$bin/collect" --runs "$work/rt-warm" --mixtures "$work/mixtures.parquet" --output "$work/rt-warm.parquet" 2>/dev/null
"${export_results[@]}" "$work/rt-warm.parquet" "$work/results/warm.csv" --flags W > /dev/null
expect_error "a longer run of the same mixture trained otherwise (another warm-up)" "not the same run continued" -- \
    "${extend[@]}" "$work/results/t.csv" "$work/results/warm.csv" --output "$work/joined/w.csv"
awk -F, -v OFS=, 'NR == 2 { $4 = ($4 == "0.0" ? "0.5" : "0.0") } { print }' "$work/results/long.csv" > "$work/joined/other.csv"
cp "$work/results/long.trajectories.csv" "$work/joined/other.trajectories.csv"
expect_error "a longer run under a table run's name but of another mixture" "not the same mixture" -- \
    "${extend[@]}" "$work/results/t.csv" "$work/joined/other.csv" --output "$work/joined/o.csv"

echo "== 8. readers check what they read against its index; writers own only what they create (issue 28)"
# A shard replaced after tokenization: by another domain's shard, by a shorter one of the same
# domain (a re-tokenization killed part way over the old manifest), or by a FIFO.
train_shard() { ls "$1/$2/train/"*.arrow | head -1; }
cp -r "$work/shards" "$work/sh-swap"
cp "$(train_shard "$work/shards" prose)" "$(train_shard "$work/sh-swap" code)"
expect_error "a shard replaced by another domain's shard" "domain prose, but" "lists it with domain code" -- \
    "$bin/proxy-train" --shards "$work/sh-swap" "${flags[@]}" --mixtures "$work/mixtures.parquet" --output "$work/r-swap" --tokens 2048 --ids 0
mkdir -p "$work/c-half"; head -n 20 "$work/corpus/code.jsonl" > "$work/c-half/code.jsonl"
"$bin/tokenize-shard" --input "$work/c-half" --output "$work/sh-half-src" --tokenizer "$work/shards/tokenizer.json" --valid-fraction 0.1 2>/dev/null
cp -r "$work/shards" "$work/sh-len"
cp "$(train_shard "$work/sh-half-src" code)" "$(train_shard "$work/sh-len" code)"
expect_error "a shard re-tokenized under the old manifest (its length differs)" "but $work/sh-len/manifest.parquet lists it with tokens" -- \
    "$bin/export-megatron" --shards "$work/sh-len" --output "$work/meg-len"
cp -r "$work/shards" "$work/sh-fifo"; f=$(train_shard "$work/sh-fifo" config); rm "$f"; mkfifo "$f"
expect_error "a FIFO where a shard should be is refused, not waited on" "not a regular file" -- \
    "$bin/export-megatron" --shards "$work/sh-fifo" --output "$work/meg-fifo"
"$bin/export-megatron" --shards "$work/shards" --output "$work/meg" 2>/dev/null
"$bin/export-megatron" --shards "$work/sh-half-src" --output "$work/meg-other" 2>/dev/null
cp "$work/meg/code.idx" "$work/code.idx.good"; cp "$work/meg-other/code.idx" "$work/meg/code.idx"
expect_ok "export-megatron rerun over a pair of two exports writes it again, never skips it" \
    'cmp -s "$work/meg/code.idx" "$work/code.idx.good" && grep -q "are not the files its marker records" "$work/err"' -- \
    "$bin/export-megatron" --shards "$work/shards" --output "$work/meg"
expect_ok "a rerun over intact pairs skips them" '[ "$(grep -c "already exported from these shards, skipped" "$work/err")" = 6 ]' -- \
    "$bin/export-megatron" --shards "$work/shards" --output "$work/meg"
expect_ok "fit records the sha256 of the bytes it fitted" \
    'grep -q "\"dataset_sha256\": *\"$(sha256sum "$work/dataset.parquet" | cut -d" " -f1)\"" "$work/fit-h/model.json"' -- \
    "$bin/fit" --dataset "$work/dataset.parquet" --target 'mean(valid_loss.*)' --regressor linear --folds 2 --output "$work/fit-h"

mkdir -p "$work/proj"; cp "$work/dataset.parquet" "$work/proj/"; echo notes > "$work/proj/notes.md"
mkdir -p "$work/other-folder"; echo keep > "$work/other-folder/notes.md"
expect_error "fit --output a folder of other files" "refusing to replace this folder with a fit: it is not empty and is not a fit" -- \
    "$bin/fit" --dataset "$work/dataset.parquet" --target 'mean(valid_loss.*)' --regressor linear --folds 2 --output "$work/other-folder"
expect_ok "the folder of other files is left as it was" '[ "$(cat "$work/other-folder/notes.md")" = keep ]' -- true
expect_error "fit --output the folder that holds its dataset" "the output holds the input --dataset" -- \
    "$bin/fit" --dataset "$work/proj/dataset.parquet" --target 'mean(valid_loss.*)' --regressor linear --folds 2 --output "$work/proj"
expect_error "collect --output its own --mixtures" "the output is the input --mixtures" -- \
    "$bin/collect" --runs "$work/runs" --mixtures "$work/mixtures.parquet" --output "$work/mixtures.parquet"
expect_error "sample-mixtures --output its own --manifest" "the output is the input --manifest" -- \
    "$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 2 --output "$work/shards/manifest.parquet"
expect_error "export-megatron --output inside its --shards" "the output lies inside the input --shards" -- \
    "$bin/export-megatron" --shards "$work/shards" --output "$work/shards/megatron"
echo "mine" > "$work/meg/notes.tmp-draft"; echo "mine" > "$work/meg/plan.tmp-1-2"
expect_ok "a user's files whose names hold .tmp- survive a writer's clean-up" '[ -f "$work/meg/notes.tmp-draft" ] && [ -f "$work/meg/plan.tmp-1-2" ]' -- \
    "$bin/export-megatron" --shards "$work/shards" --output "$work/meg"

expect_error "proxy-train --ids 0-4294967295" "names 4294967296 mixtures or more, more than the 4 mixtures in the mixtures file" -- \
    "${proxy[@]}" --mixtures "$work/mixtures.parquet" --output "$work/r-ids" --tokens 2048 --ids 0-4294967295

edit_weights() { # SRC DST PYTHON-EXPRESSION-OF-ROW-0's-WEIGHTS
    "$py" - "$1" "$2" "$3" <<'PY'
import math, sys
import pyarrow as pa, pyarrow.parquet as pq
src, dst, expr = sys.argv[1:]
t = pq.read_table(src)
cols = [i for i, n in enumerate(t.column_names) if n.startswith("weight.")]
new = eval(expr, {"math": math})
for i, v in zip(cols, new):
    col = t.column(i).to_pylist(); col[1] = v
    t = t.set_column(i, t.schema.field(i), pa.array(col, pa.float64()))
pq.write_table(t.replace_schema_metadata(t.schema.metadata), dst)
PY
}
edit_weights "$work/dataset.parquet" "$work/ds-nan.parquet" '[math.nan, 0.5, 0.5]'
expect_error "fit on a dataset with a NaN weight (it hung)" "row 1, field \`weight.code\`: NaN is not a weight" -- \
    "$bin/fit" --dataset "$work/ds-nan.parquet" --target 'mean(valid_loss.*)' --regressor linear --folds 2 --output "$work/f-nan"
edit_weights "$work/dataset.parquet" "$work/ds-inf.parquet" '[math.inf, 0.5, 0.5]'
expect_error "fit log-linear on a dataset with an infinite weight" "row 1, field \`weight.code\`: inf is not a weight" -- \
    "$bin/fit" --dataset "$work/ds-inf.parquet" --target 'mean(valid_loss.*)' --regressor log-linear --folds 2 --output "$work/f-inf"
edit_weights "$work/dataset.parquet" "$work/ds-four.parquet" '[2.0, 1.0, 1.0]'
expect_error "fit on rows that sum to 4" "row 1: the weights sum to 4, not 1" -- \
    "$bin/fit" --dataset "$work/ds-four.parquet" --target 'mean(valid_loss.*)' --regressor linear --folds 2 --output "$work/f-four"
# A target-scale run without one of its losses: fit --target-runs names the file, row and field
# (before, the row was left out and the error named neither).
"$py" - "$work/dataset.parquet" "$work/ds-nanloss.parquet" <<'PY'
import math, sys
import pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
i = [k for k, n in enumerate(t.column_names) if n.startswith("valid_loss.")][0]
col = t.column(i).to_pylist(); col[1] = math.nan
t = t.set_column(i, t.schema.field(i), pa.array(col, pa.float64()))
pq.write_table(t.replace_schema_metadata(t.schema.metadata), sys.argv[2])
PY
expect_error "fit --target-runs with a NaN loss" "ds-nanloss.parquet: row 1, field \`valid_loss." "NaN is not a loss" -- \
    "$bin/fit" --dataset "$work/dataset.parquet" --target 'mean(valid_loss.*)' --target-runs "$work/ds-nanloss.parquet" --output "$work/f-nanloss"
expect_ok "nothing is written when fit refuses target-scale runs" '[ ! -e "$work/f-nanloss" ]' -- true
edit_weights "$work/dataset.parquet" "$work/ds-neg.parquet" '[-0.5, 1.0, 0.5]'
expect_error "fit on a row with a negative weight" "row 1, field \`weight.code\`: -0.5 is negative" -- \
    "$bin/fit" --dataset "$work/ds-neg.parquet" --target 'mean(valid_loss.*)' --regressor gp --folds 2 --output "$work/f-neg"

"$py" - "$work/shards/manifest.parquet" "$work/empty-manifest.parquet" <<'PY'
import sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
pq.write_table(t.slice(0, 0).replace_schema_metadata(t.schema.metadata), sys.argv[2])
PY
expect_error "an empty manifest" "the manifest is empty" -- \
    "$bin/sample-mixtures" --manifest "$work/empty-manifest.parquet" --count 2 --output "$work/m-empty.parquet"
mkdir -p "$work/full" "$work/ro"
if mount -t tmpfs -o size=64k tmpfs "$work/full" 2>/dev/null; then
    expect_error "a full disk" "$work/full/megatron" "the disk is full" -- \
        "$bin/export-megatron" --shards "$work/shards" --output "$work/full/megatron"
    expect_ok "a write that failed on a full disk leaves no temporary" '[ -z "$(find "$work/full" -name "*.tmp-*")" ]' -- true
    umount "$work/full"
else
    echo "skip: a full disk (cannot mount a small tmpfs here)"
fi
if mount -t tmpfs -o size=64k,ro tmpfs "$work/ro" 2>/dev/null; then
    expect_error "a lock in a folder that is not writable" "$work/ro: cannot create the lock file" "the folder must be writable" -- \
        "$bin/fit" --dataset "$work/dataset.parquet" --target 'mean(valid_loss.*)' --regressor linear --folds 2 --output "$work/ro/fit"
    umount "$work/ro"
else
    echo "skip: a lock in a folder that is not writable (cannot mount a read-only tmpfs here)"
fi

echo "== 9. a small domain (no validation text) trains and goes through every stage (issue 28)"
mkdir -p "$work/c-small"; cp "$work/corpus/"*.jsonl "$work/c-small/"
sed -n '3,6p' "$work/corpus/prose.jsonl" > "$work/c-small/tiny.jsonl"
expect_ok "tokenize-shard: the tiny domain has no validation documents" 'grep -q "domain \`tiny\` has no validation documents" "$work/err"' -- \
    "$bin/tokenize-shard" --input "$work/c-small" --output "$work/sh-small" --train-bpe 512 --valid-fraction 0.1
"$bin/sample-mixtures" --manifest "$work/sh-small/manifest.parquet" --count 4 --seed 3 --output "$work/m-small.parquet" 2>/dev/null
expect_ok "proxy-train: the tiny domain trains, and is no validation column" \
    '[ "$(ls "$work"/r-small/*/done.json | wc -l)" = 4 ] && "$py" -c "import pyarrow.parquet as pq, sys; c = pq.read_schema(sys.argv[1]).names; sys.exit(\"valid_loss.tiny\" in c or \"valid_loss.code\" not in c)" "$work/r-small/0/metrics.parquet"' -- \
    "$bin/proxy-train" --shards "$work/sh-small" "${flags[@]}" --mixtures "$work/m-small.parquet" --output "$work/r-small" --tokens 4096
expect_ok "collect keeps every run of a corpus with a small domain" '[ -z "$(grep "left out" "$work/err")" ] && grep -q "wrote 4 runs" "$work/err"' -- \
    "$bin/collect" --runs "$work/r-small" --mixtures "$work/m-small.parquet" --output "$work/ds-small.parquet"
expect_ok "fit mean(valid_loss.*) means the domains that have one" '[ -f "$work/fit-small/model.json" ] && grep -q "valid_loss.code" "$work/fit-small/model.json" && ! grep -q "valid_loss.tiny" "$work/fit-small/model.json"' -- \
    "$bin/fit" --dataset "$work/ds-small.parquet" --target 'mean(valid_loss.*)' --regressor linear --folds 2 --output "$work/fit-small"
expect_ok "optimize over the small domain's fit" '[ -f "$work/opt-small/optimum.parquet" ]' -- \
    "$bin/optimize" --fit "$work/fit-small" --manifest "$work/sh-small/manifest.parquet" --samples 1000 --top-k 10 --output "$work/opt-small"
expect_ok "export-megatron writes the tiny domain's train pair and no empty validation pair" \
    '[ -s "$work/meg-small/tiny.bin" ] && [ -s "$work/meg-small/tiny.idx" ] && [ ! -e "$work/meg-small/valid/tiny.bin" ] && [ ! -e "$work/meg-small/valid/tiny.idx" ]' -- \
    "$bin/export-megatron" --shards "$work/sh-small" --output "$work/meg-small"
expect_ok "target-train on the optimum over a small domain" '[ -f "$work/t-small/comparison.parquet" ]' -- \
    "$bin/target-train" --shards "$work/sh-small" --output "$work/t-small" --mixture "opt=$work/opt-small/optimum.parquet" "${flags[@]}" --tokens 2048

echo "== 10. optimize owns only its output, bounds its search, and checks its manifest against the fit (issue 28)"
opt=("$bin/optimize" --manifest "$work/shards/manifest.parquet" --samples 1000 --top-k 10)
expect_error "optimize --output a folder of other files" "refusing to replace this folder with an optimum: it is not empty and is not an optimum" -- \
    "${opt[@]}" --fit "$work/fit" --output "$work/other-folder"
expect_ok "the folder of other files is left as it was by optimize" '[ "$(cat "$work/other-folder/notes.md")" = keep ] && [ "$(ls -A "$work/other-folder")" = notes.md ]' -- true
expect_error "optimize --output its own --fit" "the output is the input --fit" -- \
    "${opt[@]}" --fit "$work/fit" --output "$work/fit"
expect_error "optimize --output inside its --fit" "the output lies inside the input --fit" -- \
    "${opt[@]}" --fit "$work/fit" --output "$work/fit/optimum"
mkdir -p "$work/proj-opt"; cp -r "$work/fit" "$work/proj-opt/fit"
expect_error "optimize --output the folder that holds its --fit" "the output holds the input --fit" -- \
    "${opt[@]}" --fit "$work/proj-opt/fit" --output "$work/proj-opt"
expect_ok "the fit is left as it was" 'cmp -s "$work/fit/model.json" "$work/proj-opt/fit/model.json"' -- true
"${opt[@]}" --fit "$work/fit" --output "$work/opt-own" 2>/dev/null
before=$(stat -c %i "$work/opt-own")
expect_ok "optimize replaces its own earlier optimum, whole" '[ "$(stat -c %i "$work/opt-own")" != "$before" ] && [ -f "$work/opt-own/recommended.yaml" ]' -- \
    "${opt[@]}" --fit "$work/fit" --output "$work/opt-own" --seed 7
expect_error "optimize --samples 1000000000 --top-k 1000000000 (it aborted allocating 40 GB)" "--top-k 1000000000 would take about" "GB" "this machine has" -- \
    "$bin/optimize" --fit "$work/fit" --manifest "$work/shards/manifest.parquet" --samples 1000000000 --top-k 1000000000 --output "$work/o-topk"
expect_error "optimize --chunk 10000000000 over as many samples" "--chunk 10000000000 would take about" "this machine has" -- \
    "$bin/optimize" --fit "$work/fit" --manifest "$work/shards/manifest.parquet" --samples 10000000000 --top-k 10 --chunk 10000000000 --output "$work/o-chunk"
"${opt[@]}" --fit "$work/fit" --output "$work/opt-1000" 2>/dev/null
weights() { "$py" -c 'import pyarrow.parquet as pq, sys; print([v for n, v in pq.read_table(sys.argv[1]).to_pylist()[0].items() if n.startswith("weight.")])' "$1"; }
expect_ok "optimize --chunk 1000000000 over 1000 samples draws the one block of 1000 (it aborted allocating 16 GB)" \
    '[ "$(weights "$work/o-big-chunk/optimum.parquet")" = "$(weights "$work/opt-1000/optimum.parquet")" ]' -- \
    "${opt[@]}" --fit "$work/fit" --chunk 1000000000 --output "$work/o-big-chunk"
expect_error "optimize --manifest with one more domain than the fit (its prior summed to 0.657)" "its domains are not the fit's (code, config, prose)" "domains the fit does not have: tiny" -- \
    "$bin/optimize" --fit "$work/fit" --manifest "$work/sh-small/manifest.parquet" --samples 1000 --top-k 10 --output "$work/o-more"
expect_error "optimize --manifest of shards of another tokenizer" "were tokenized with tokenizer sha256" "but the fit's runs" -- \
    "$bin/optimize" --fit "$work/fit" --manifest "$work/other-tok/manifest.parquet" --samples 1000 --top-k 10 --output "$work/o-tok"

echo "== 11. optimize --megatron-prefix is checked against its export; --write-yaml owns only its folder (issue 28)"
expect_ok "optimize --megatron-prefix of the fit's own export: checked, and named in the blend" \
    'grep -q "matches the fit" "$work/err" && grep -q "$work/meg/code" "$work/o-meg/megatron_data_path.txt"' -- \
    "${opt[@]}" --fit "$work/fit" --megatron-prefix "$work/meg/" --output "$work/o-meg"
expect_error "optimize --megatron-prefix of an export of other shards" "$work/meg-other/.done/train-code.json" "records shards sha256" -- \
    "${opt[@]}" --fit "$work/fit" --megatron-prefix "$work/meg-other/" --output "$work/o-meg-other"
cp -r "$work/meg" "$work/meg-unfinished"; rm "$work/meg-unfinished/.done/train-config.json"
expect_error "optimize --megatron-prefix of an export without one domain's marker" "$work/meg-unfinished/.done/train-config.json" "marker is missing" -- \
    "${opt[@]}" --fit "$work/fit" --megatron-prefix "$work/meg-unfinished/" --output "$work/o-meg-unfinished"
expect_error "optimize --megatron-prefix naming the export folder without its /" "give $work/meg/" -- \
    "${opt[@]}" --fit "$work/fit" --megatron-prefix "$work/meg" --output "$work/o-meg-noslash"
expect_ok "optimize --megatron-prefix of a cluster path is written, said not checked" \
    'grep -q "is not checked against the fit" "$work/err" && grep -q "/nonexistent-cluster/megatron/code" "$work/o-meg-cluster/megatron_data_path.txt"' -- \
    "${opt[@]}" --fit "$work/fit" --megatron-prefix /nonexistent-cluster/megatron/ --output "$work/o-meg-cluster"
expect_error "sample-mixtures --write-yaml the folder of its --manifest" "the output holds the input --manifest" -- \
    "$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 2 --output "$work/m-y.parquet" --write-yaml "$work/shards"
expect_error "sample-mixtures --write-yaml the folder that holds its --output" "the output holds the input --output" -- \
    "$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 2 --output "$work/y-out/m.parquet" --write-yaml "$work/y-out"
expect_error "sample-mixtures --write-yaml a folder of other files" "refusing to replace this folder with a folder of sample-mixtures' YAML configs" -- \
    "$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 2 --output "$work/m-y.parquet" --write-yaml "$work/other-folder"
expect_ok "the folder of other files is left as it was by sample-mixtures" '[ "$(ls -A "$work/other-folder")" = notes.md ]' -- true
"$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 4 --output "$work/m-y.parquet" --write-yaml "$work/y-own" 2>/dev/null
expect_ok "sample-mixtures --write-yaml replaces its own folder whole (no config of the earlier draw left)" '[ "$(ls "$work/y-own" | wc -l)" = 2 ]' -- \
    "$bin/sample-mixtures" --manifest "$work/shards/manifest.parquet" --count 2 --output "$work/m-y.parquet" --write-yaml "$work/y-own"

echo
echo "== integrity battery: $((good + weak + bad)) cases: $good good, $weak weak, $bad bad =="
for r in "${report[@]}"; do echo "  $r"; done
if [ -n "${STRICT:-}" ] && [ $((weak + bad)) -gt 0 ]; then exit 1; fi
exit 0
