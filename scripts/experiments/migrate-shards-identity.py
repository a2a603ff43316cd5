#!/usr/bin/env python3
"""Moves committed results tables to the shards identity of tokenize-shard's machine-independent
shard names (commit 64559f9). Before it, a shard's name hashed its input's absolute path, so the
same corpus tokenized in two folders got two `shards_sha256` and a table trained in one could
not be merged with runs from the other.

  migrate-shards-identity.py OLD_SHARDS NEW_SHARDS RESULTS_DIR [--same-data SHA ...] [--write]

OLD_SHARDS is a folder tokenized with the old names, NEW_SHARDS the same corpus tokenized again
with the new ones. The script checks that the two are the same data (the same domains, splits,
documents and tokens row for row, every shard's tokens and metadata equal but the command line
that made it, the same tokenizer) and that its
identity formula gives what regmix records (`Corpus::open` in regmix-train/src/data.rs). Each
`*.settings.json` under RESULTS_DIR whose run settings record OLD_SHARDS' identity, or a SHA
given with --same-data (the same data tokenized on another machine, established otherwise: a
run retrained here equal to the table's bit for bit), then records NEW_SHARDS' identity.
Without --write it only says what it would change.
"""
import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import pyarrow.ipc as ipc
import pyarrow.parquet as pq


def identity(manifest):
    """shards_sha256 as regmix computes it from a manifest."""
    t = pq.read_table(manifest)
    md = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()}
    d = t.to_pydict()
    s = f"vocab {md['regmix.vocab_size']}\neos {md['regmix.eos_id']}\ntokenizer {md['regmix.tokenizer_sha256']}\n"
    for i in range(t.num_rows):
        s += f"{d['domain'][i]}\t{d['split'][i]}\t{d['file'][i]}\t{d['documents'][i]}\t{d['tokens'][i]}\n"
    return hashlib.sha256(s.encode()).hexdigest(), md, d


def shard(p):
    """A token shard's tokens and what it says of itself, less its provenance (the command line
    that made it, which names the output folder)."""
    f = ipc.open_file(p)
    md = {k: v for k, v in (f.schema.metadata or {}).items() if k != b"regmix.arguments"}
    return f.read_all().column("tokens"), md


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("results", type=Path)
    ap.add_argument("--same-data", nargs="*", default=[], metavar="SHA")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    old_id, old_md, old = identity(a.old / "manifest.parquet")
    new_id, new_md, new = identity(a.new / "manifest.parquet")
    if old_md["regmix.tokenizer_sha256"] != new_md["regmix.tokenizer_sha256"]:
        sys.exit(f"{a.new}: another tokenizer than {a.old}'s: not the same data")
    rows = lambda d: [(d["domain"][i], d["split"][i], d["documents"][i], d["tokens"][i]) for i in range(len(d["domain"]))]
    if rows(old) != rows(new):
        sys.exit(f"{a.new}/manifest.parquet lists other shards than {a.old}'s (domain, split, documents, tokens)")
    for fo, fn in zip(old["file"], new["file"]):
        (ta, ma), (tb, mb) = shard(a.old / fo), shard(a.new / fn)
        if ma != mb or not ta.equals(tb):
            sys.exit(f"{a.old / fo} and {a.new / fn}: other tokens or metadata: not the same data")
    print(f"same data: {len(old['file'])} shards with equal tokens and metadata; identity {old_id[:12]}… becomes {new_id[:12]}…")
    moved = {old_id, *a.same_data} - {new_id}
    changed = 0
    for p in sorted(a.results.rglob("*.settings.json")):
        doc = json.loads(p.read_text())
        rs = doc.get("run_settings") or {}
        if rs.get("shards_sha256") in moved:
            print(f"{p}: {rs['shards_sha256'][:12]}… -> {new_id[:12]}…")
            rs["shards_sha256"] = new_id
            changed += 1
            if a.write:
                tmp = p.with_name(p.name + f".tmp-{os.getpid()}")
                tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
                os.replace(tmp, p)
    print(f"{changed} settings files {'rewritten' if a.write else 'to rewrite (give --write)'}")


if __name__ == "__main__":
    main()
