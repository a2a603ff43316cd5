"""Times tokenize-shard and HF tokenizers' encode_batch on the same corpus; prints a table.

Each side runs in its own child process so that its peak RSS is its own, and each is run
REPEAT times (default 3), reporting the best."""
import glob, json, os, resource, shutil, subprocess, sys, time

exe, corpus, tok, work, threads = sys.argv[1:6]
repeat = int(os.environ.get("REPEAT", "3"))
files = sorted(glob.glob(os.path.join(corpus, "*.jsonl")))
text_bytes = 0
for f in files:
    with open(f, encoding="utf-8") as fh:
        for line in fh:
            text_bytes += len(json.loads(line)["text"].encode("utf-8"))

BASELINE = r'''
import json, os, sys, time, resource
os.environ["TOKENIZERS_PARALLELISM"] = "true"
os.environ["RAYON_NUM_THREADS"] = sys.argv[3]
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
texts = []
for f in sys.argv[2].split(","):
    with open(f, encoding="utf-8") as fh:
        texts.extend(json.loads(l)["text"] for l in fh)
t = time.perf_counter()
n = 0
for i in range(0, len(texts), 1024):
    for e in tok.encode_batch_fast(texts[i:i + 1024], add_special_tokens=False) if hasattr(tok, "encode_batch_fast") else tok.encode_batch(texts[i:i + 1024], add_special_tokens=False):
        n += len(e.ids) + 1
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "tokens": n, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def run_regmix():
    out = os.path.join(work, "shards")
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/env", "RUST_LOG=info", exe, "--input", *files, "--output", out, "--tokenizer", tok,
                        "--threads", threads], capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(r.stderr)
    toks = 0
    for line in r.stderr.splitlines():
        if "documents," in line and "tokens," in line and "skipped" in line:
            toks = int(line.split(" documents, ")[1].split(" tokens")[0])
    return dt, toks


def run_baseline():
    r = subprocess.run([sys.executable, "-c", BASELINE, tok, ",".join(files), threads], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(r.stderr)
    j = json.loads(r.stdout.strip().splitlines()[-1])
    return j["seconds"], j["tokens"], j["rss_mb"]


rs = [run_regmix() for _ in range(repeat)]
rs_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
py = [run_baseline() for _ in range(repeat)]
rs_t, rs_tok = min(rs)
py_t, py_tok, py_rss = min(py)
mb = text_bytes / 1e6
print()
print(f"tokenize: {len(files)} files, {mb:.1f} MB of text, {threads} threads, best of {repeat}")
print(f"| {'implementation':<44} | {'MB/s':>7} | {'Mtok/s':>7} | {'tokens':>11} | {'peak RSS MB':>11} |")
print(f"|{'-' * 46}|{'-' * 9}|{'-' * 9}|{'-' * 13}|{'-' * 13}|")
print(f"| {'regmix tokenize-shard (end to end)':<44} | {mb / rs_t:7.2f} | {rs_tok / rs_t / 1e6:7.2f} | {rs_tok:11d} | {rs_rss:11.0f} |")
print(f"| {'HF tokenizers (Python) encode_batch only':<44} | {mb / py_t:7.2f} | {py_tok / py_t / 1e6:7.2f} | {py_tok:11d} | {py_rss:11.0f} |")
print(f"speed-up: {py_t / rs_t:.2f}x; token counts {'match' if rs_tok == py_tok else 'DIFFER'}")
