"""Tokenization at scale: is tokenize-shard's memory flat as the input grows?

Generates JSONL of SIZES gigabytes (default 1 and 5) from the demo corpus's documents (each
copy of a document made distinct by a prefix, spread round-robin over the corpus's domains in
files of about 100 MB, one of them zstd-compressed), tokenizes each size with a given
tokenizer, and prints, per size: text MB, wall seconds, MB/s, MB per CPU-second (per core) and
the process's peak RSS (/usr/bin/time's maximum resident set size).

    python3 tokenize_scale.py TOKENIZE_SHARD CORPUS_DIR TOKENIZER WORK THREADS [SIZES_GB]

The generated data and shards live under WORK/scale and are deleted at the end (KEEP=1 keeps
them)."""
import glob, os, shutil, subprocess, sys, time

exe, corpus, tok, work, threads = sys.argv[1:6]
sizes = [float(x) for x in (sys.argv[6] if len(sys.argv) > 6 else "1,5").split(",")]
FILE_BYTES = 100 << 20
scale = os.path.join(work, "scale")
gen = os.path.join(scale, "input")
reuse = os.environ.get("REUSE") and os.path.isdir(gen) and os.listdir(gen)
if not reuse:
    shutil.rmtree(scale, ignore_errors=True)
    os.makedirs(gen)

# The source documents, as JSON lines, per domain.
docs = {}
for f in sorted(glob.glob(os.path.join(corpus, "*-0.jsonl"))):
    d = os.path.basename(f).split("-")[0]
    with open(f, encoding="utf-8") as fh:
        docs[d] = [l.rstrip("\n") for l in fh if l.strip()]
domains = sorted(docs)
if not domains:
    sys.exit(f"{corpus}: no <domain>-0.jsonl files (make corpus first)")


def generate(total_bytes):
    """Files of FILE_BYTES, round-robin over the domains, until total_bytes are written; each
    line is a corpus document with a distinct prefix in its text. Returns the file list."""
    files, written, k = [], 0, 0
    pos = {d: 0 for d in domains}
    copy = 0
    while written < total_bytes:
        d = domains[k % len(domains)]
        path = os.path.join(gen, f"{d}-{k // len(domains):04d}.jsonl")
        n = 0
        with open(path, "w", encoding="utf-8") as out:
            lines = docs[d]
            buf = []
            while n < FILE_BYTES:
                i = pos[d] % len(lines)
                pos[d] += 1
                copy += 1
                line = lines[i]
                # {"text": "… → {"text": "[copy N] …
                j = line.index('"text": "') + 9
                s = line[:j] + f"[copy {copy}] " + line[j:] + "\n"
                buf.append(s)
                n += len(s.encode("utf-8"))
                if len(buf) >= 4096:
                    out.write("".join(buf))
                    buf = []
            out.write("".join(buf))
        files.append(path)
        written += n
        k += 1
    return files, written


t = time.time()
if reuse:
    # REUSE=1: the files a run with KEEP=1 left, in the order they were generated.
    files = sorted((os.path.join(gen, f) for f in os.listdir(gen)), key=lambda f: (int(os.path.basename(f).split("-")[1].split(".")[0]), f))
    print(f"reusing {len(files)} generated files in {gen}", flush=True)
else:
    files, written = generate(int(max(sizes) * 1e9))
    # One input compressed: the first file becomes .zst.
    subprocess.run(["zstd", "-q", "-3", "--rm", files[0]], check=True)
    files[0] += ".zst"
    print(f"generated {written / 1e9:.2f} GB of JSONL in {len(files)} files ({time.time() - t:.0f}s); {files[0]} compressed", flush=True)

rows = []
for gb in sizes:
    # The first files adding up to `gb` (the .zst counts by its uncompressed size).
    take, acc = [], 0
    for f in files:
        if acc >= gb * 1e9:
            break
        take.append(f)
        acc += FILE_BYTES
    out = os.path.join(scale, f"shards-{gb:g}")
    r = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M %U %S", "/usr/bin/env", "RUST_LOG=info", exe, "--input", *take, "--output", out, "--tokenizer", tok, "--threads", threads],
        capture_output=True, text=True,
    )
    if r.returncode != 0:
        sys.exit(r.stderr[-3000:])
    wall, rss_kb, user, sys_s = r.stderr.strip().splitlines()[-1].split()
    # tokenize-shard's own count: "N documents, T tokens, X MB of text; …"
    tb = next(float(l.split(" tokens, ")[1].split(" MB of text")[0]) * 1e6 for l in r.stderr.splitlines() if " MB of text;" in l)
    wall, cpu = float(wall), float(user) + float(sys_s)
    rows.append((gb, len(take), tb / 1e6, wall, cpu, int(rss_kb) / 1024))
    shutil.rmtree(out, ignore_errors=True)
    print(f"  {gb:g} GB: {len(take)} files, {tb / 1e6:.0f} MB of text, {wall:.1f}s wall, {cpu:.1f} CPU-s, peak RSS {int(rss_kb) / 1024:.0f} MB", flush=True)

print()
print(f"tokenize-shard at scale, {threads} threads, {os.cpu_count()} cores visible")
print("| input | files | text MB | wall s | MB/s | MB per CPU-second (per core) | peak RSS MB |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for gb, n, mb, wall, cpu, rss in rows:
    print(f"| {gb:g} GB JSONL (one .zst) | {n} | {mb:,.0f} | {wall:.1f} | {mb / wall:.1f} | {mb / cpu:.1f} | {rss:.0f} |")
if not os.environ.get("KEEP"):
    shutil.rmtree(scale, ignore_errors=True)
