#!/usr/bin/env bash
# Packs dist/gpu (scripts/gpu/build.sh) as dist/gpu.tar.xz for the device tool's carry (the
# carry is limited to 64 MiB; xz makes the binaries and shards about a third). With a folder
# argument, packs it too as dist/cpu-job.tar.xz: a job.sh and its inputs that
# scripts/gpu/device.sh runs on the GPU machine's spare cores.
#   bash scripts/gpu/pack.sh [JOB_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pack() {  # pack SRC_DIR NAME_IN_ARCHIVE OUT
    python3 -c 'import sys, tarfile
with tarfile.open(sys.argv[3], "w:xz", preset=6) as t: t.add(sys.argv[1], arcname=sys.argv[2])' "$@"
}
pack "$root/dist/gpu" gpu "$root/dist/gpu.tar.xz"
[ $# -eq 0 ] || pack "$1" . "$root/dist/cpu-job.tar.xz"
ls -la "$root"/dist/*.tar.xz
