#!/usr/bin/env bash
# Builds, on a machine with Rust, everything scripts/gpu/check-and-bench.sh runs on a GPU
# machine that has no Rust: release train-bench and the regmix-cuda test binaries, copied
# into dist/gpu/ (git-ignored; carry it to the GPU machine with the working tree).
#   bash scripts/gpu/build.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}
dist=$root/dist/gpu
rm -rf "$dist" && mkdir -p "$dist/tests"
cargo build --release -p regmix-train --bin train-bench
cp "$CARGO_TARGET_DIR/release/train-bench" "$dist/"
# The test executables cargo builds for regmix-cuda, found from its JSON messages.
cargo test --release -p regmix-cuda --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])' |
    while read -r name exe; do cp "$exe" "$dist/tests/$name"; done
# proxy-train, with the demo corpus's shards and mixtures, for scripts/gpu/proxy-resume.py.
cargo build --release -p proxy-train
cp "$CARGO_TARGET_DIR/release/proxy-train" "$dist/"
shards=${SHARDS:-$root/data-experiment/shards} mixtures=${MIXTURES:-$root/data-experiment/mixtures.parquet}
if [ -f "$shards/manifest.parquet" ] && [ -f "$mixtures" ]; then
    cp -r "$shards" "$dist/shards" && cp "$mixtures" "$dist/mixtures.parquet"
else
    echo "build.sh: no $shards or $mixtures (make experiment-shards, then $root/data-experiment/mixtures.parquet): proxy-resume will be skipped" >&2
fi
strip "$dist/train-bench" "$dist/proxy-train" "$dist"/tests/* 2>/dev/null || true
ls -la "$dist" "$dist/tests"
du -sh "$dist"
