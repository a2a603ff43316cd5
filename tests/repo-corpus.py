"""Writes a small real corpus from the repository's own files: prose (Markdown), code (Rust)
and config (TOML/JSON/YAML/shell), one JSON line per paragraph, one file per domain — the
same three domains the Rust tests train on. Used by the shell tests.

    python tests/repo-corpus.py REPO OUT_DIR
"""
import json
import os
import sys

root, out = sys.argv[1], sys.argv[2]
kinds = {".md": "prose", ".rs": "code", ".toml": "config", ".json": "config", ".sh": "config", ".yaml": "config"}
docs = {}
for d, dirs, names in os.walk(root):
    dirs[:] = sorted(x for x in dirs if not x.startswith(".") and x not in ("target", "data"))
    for n in sorted(names):
        k = kinds.get(os.path.splitext(n)[1])
        if k:
            with open(os.path.join(d, n), errors="replace") as f:
                for p in f.read().split("\n\n"):
                    if len(p.strip()) > 20:
                        docs.setdefault(k, []).append(json.dumps({"text": p}))
os.makedirs(out, exist_ok=True)
for k, lines in docs.items():
    with open(os.path.join(out, f"{k}.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
