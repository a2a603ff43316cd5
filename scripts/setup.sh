#!/usr/bin/env bash
# Checks (and where it can, installs) what the build and the demo need on a Debian 12 machine:
# a Rust toolchain, a C compiler, Python 3 with venv, npm and groff (for the demo corpus),
# Chromium (to render the report in a test), Slurm and munge (for the Slurm test).
# Installs with apt-get only when something is missing and we are root.
set -euo pipefail
missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v npm >/dev/null || missing+=(npm)
command -v groff >/dev/null || missing+=(groff-base)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v bc >/dev/null || missing+=(bc)
[ -x /usr/bin/time ] || missing+=(time)
# XGBoost's C++ (built by the xgboost-rs-sys crate) needs cmake, a C++ compiler and libclang.
command -v cmake >/dev/null || missing+=(cmake)
command -v c++ >/dev/null || missing+=(g++)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev clang)
# The report's render test opens it in headless Chromium.
command -v chromium >/dev/null || missing+=(chromium)
# The Slurm test starts a one-node cluster (scripts/slurm/local-cluster.sh).
command -v slurmctld >/dev/null || missing+=(slurm-wlm)
command -v munged >/dev/null || missing+=(munge)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "[setup] installing: ${missing[*]}" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "[setup] missing: ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi
if ! command -v cargo >/dev/null; then
    echo "[setup] no Rust toolchain: install one with rustup (https://rustup.rs), Rust 1.88 or newer" >&2
    exit 1
fi
