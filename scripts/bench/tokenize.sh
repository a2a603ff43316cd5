#!/usr/bin/env bash
# Benchmark: tokenize-shard on the demo corpus with a byte-level BPE, side by side with the
# Hugging Face `tokenizers` Python package's encode_batch on the same files and tokenizer.
#   scripts/bench/tokenize.sh [CORPUS_DIR]    (default data/corpus; `make bench` runs it)
# Prints MB/s, tokens/s and peak RSS of each. The Python baseline is timed on encode_batch
# alone (texts already parsed and in memory); tokenize-shard is timed end to end (reading
# and parsing JSON, hashing the split, writing shards), so the comparison favours the baseline.
# Then, at scale (tokenize_scale.py): JSONL of SCALE_GB gigabytes (default 1,5; 0 skips it)
# generated from the corpus, one file of it .zst, tokenized with the same tokenizer; prints
# MB/s, MB per CPU-second and peak RSS per size, so a memory that grows with the input shows.
# It needs about 1.5 times the largest size of free disk under data/bench, deleted after.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
corpus=${1:-$root/data/corpus}
bin=${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}/release
venv=$root/.venv-bench
work=$root/data/bench
threads=${THREADS:-$(nproc)}
vocab=${VOCAB:-8192}
mkdir -p "$work"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q tokenizers==0.22.1
fi
# One tokenizer for both, trained once by tokenize-shard.
tok=$work/tokenizer.json
if [ ! -f "$tok" ]; then
    "$bin/tokenize-shard" --input "$corpus" --output "$work/train-bpe" --train-bpe "$vocab" 2>/dev/null
    cp "$work/train-bpe/tokenizer.json" "$tok"
fi
"$venv/bin/python" "$root/scripts/bench/tokenize_bench.py" "$bin/tokenize-shard" "$corpus" "$tok" "$work" "$threads"
scale=${SCALE_GB:-1,5}
[ "$scale" = 0 ] || python3 "$root/scripts/bench/tokenize_scale.py" "$bin/tokenize-shard" "$corpus" "$tok" "$work" "$threads" "$scale"
