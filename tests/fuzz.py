"""Fuzzes every stage binary (run by `make test`): random values for each flag, and random
corruptions of valid input files (truncated, bytes flipped, emptied, another kind of file in
its place). Every case must end with exit code 0 or 2 and, on 2, a message on stderr; never a
panic (exit 101), a signal (an abort on a failed allocation), a timeout, or more memory than
the limit. Deterministic: the same seed gives the same cases.

Then the corpus-level cases: a copy of the shards folder damaged as a killed or botched
re-tokenization or a careless copy leaves it (two shards swapped, a shard truncated, a shard
replaced by a shorter one of a re-tokenization under the old manifest, a FIFO or nothing where
a shard should be), read by proxy-train and export-megatron. Each must be refused (exit 2)
with a message naming the damaged shard: exit 0 here is a reader that trusted its index.

    python tests/fuzz.py BIN_DIR [--cases N] [--corpus-cases N] [--seed S]
"""
import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("--cases", type=int, default=24, help="random cases per binary")
ap.add_argument("--corpus-cases", type=int, default=12, help="damaged shard folders")
ap.add_argument("--seed", type=int, default=7)
ap.add_argument("--timeout", type=float, default=60)
ap.add_argument("--memory-gb", type=float, default=6)
args = ap.parse_args()
rng = random.Random(args.seed)
work = tempfile.mkdtemp(prefix="regmix-fuzz.")
W = lambda *p: os.path.join(work, *p)


def limit():
    b = int(args.memory_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (b, b))


def run(argv, check=False):
    try:
        p = subprocess.run([os.path.join(args.bin, argv[0])] + argv[1:], capture_output=True, text=True,
                           timeout=args.timeout, preexec_fn=limit, env=dict(os.environ, RUST_LOG="warn"))
    except subprocess.TimeoutExpired:
        return None, "timeout"
    if check and p.returncode != 0:
        sys.exit("fuzz set-up failed: %s\n%s" % (" ".join(argv), p.stderr[-2000:]))
    return p.returncode, p.stderr


# Valid inputs, made by the binaries themselves.
shutil.copytree(os.path.join(ROOT, "tests", "corpus"), W("corpus"))
run(["tokenize-shard", "--input", W("corpus"), "--output", W("shards"), "--train-bpe", "512", "--valid-fraction", "0.1"], True)
run(["sample-mixtures", "--manifest", W("shards/manifest.parquet"), "--count", "8", "--seed", "1", "--output", W("mixtures.parquet")], True)
train = ["--preset", "micro", "--tokens", "2048", "--batch-tokens", "512", "--eval-windows", "2", "--threads", "1"]
run(["proxy-train", "--shards", W("shards"), "--mixtures", W("mixtures.parquet"), "--output", W("runs")] + train, True)
run(["collect", "--runs", W("runs"), "--mixtures", W("mixtures.parquet"), "--output", W("dataset.parquet")], True)
run(["fit", "--dataset", W("dataset.parquet"), "--target", "mean(valid_loss.*)", "--regressor", "linear", "--folds", "2", "--output", W("fit")], True)
run(["optimize", "--fit", W("fit"), "--manifest", W("shards/manifest.parquet"), "--samples", "2000", "--top-k", "10", "--output", W("optimum")], True)

valid_files = [W("shards/manifest.parquet"), W("mixtures.parquet"), W("dataset.parquet"), W("fit/model.json"),
               W("fit/fit_report.parquet"), W("optimum/optimum.parquet"), W("runs/0/metrics.parquet"), W("shards/tokenizer.json")]
n_corrupt = [0]


def corrupt():
    """A damaged copy of a valid file (or another kind of file where one is expected)."""
    src = rng.choice(valid_files)
    n_corrupt[0] += 1
    dst = W("bad-%d-%s" % (n_corrupt[0], os.path.basename(src)))
    data = bytearray(open(src, "rb").read())
    how = rng.choice(["truncate", "flip", "empty", "other", "json"])
    if how == "truncate":
        data = data[: rng.randrange(0, max(1, len(data)))]
    elif how == "flip":
        for _ in range(rng.randrange(1, 16)):
            if data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif how == "empty":
        data = b""
    elif how == "other":
        data = open(rng.choice(valid_files), "rb").read()
    elif how == "json" and src.endswith(".json"):
        try:
            v = json.loads(data)
            keys = [k for k in v if k != "regmix"]
            if keys:
                v[rng.choice(keys)] = rng.choice([None, -1, "x", [], {}, 1e308])
            data = json.dumps(v).encode()
        except ValueError:
            pass
    with open(dst, "wb") as f:
        f.write(data)
    return dst


def corrupt_dir(src):
    """A copy of a folder input (fit/, optimum/, runs/, shards/) with one of its files damaged."""
    n_corrupt[0] += 1
    dst = W("baddir-%d" % n_corrupt[0])
    shutil.copytree(src, dst)
    files = [os.path.join(d, f) for d, _, fs in os.walk(dst) for f in fs]
    victim = rng.choice(files)
    data = bytearray(open(victim, "rb").read())
    data = data[: rng.randrange(0, max(1, len(data)))] if rng.random() < 0.5 else data
    if data and rng.random() < 0.7:
        data[rng.randrange(len(data))] ^= 0xFF
    open(victim, "wb").write(data)
    return dst


NUM = ["0", "1", "-1", "2", "7", "NaN", "inf", "-inf", "1e300", "-1e300", "0.5", "4294967296", "18446744073709551616",
       "999999999999", "1e-320", "abc", ""]
# Flags that say how much work to do (tokens, samples, refits): a huge valid value is a long
# run that reports its progress, not a fault, so these get only values that end quickly.
SIZE = ["0", "1", "2", "-1", "NaN", "inf", "1e-320", "abc", "", "18446744073709551616"]
PATHS = lambda: [W("nope/x"), "/dev/null", "/", "..", corrupt()]


def value(kind):
    if kind == "num":
        return rng.choice(NUM)
    if kind == "size":
        return rng.choice(SIZE)
    if kind == "file":
        return rng.choice(PATHS() + [rng.choice(valid_files)])
    if kind == "dir":
        return rng.choice([W("nope"), "/dev/null", corrupt_dir(rng.choice([W("fit"), W("optimum"), W("shards")]))])
    if kind == "out":
        # Outputs over existing files and folders are copies: the valid inputs stay valid.
        n = rng.randrange(10 ** 6)
        existing_dir, existing_file = W("old-dir-%d" % n), W("old-file-%d.parquet" % n)
        shutil.copytree(W("fit"), existing_dir)
        shutil.copy(W("mixtures.parquet"), existing_file)
        return rng.choice([W("out-%d" % n), "/dev/null", existing_dir, existing_file, W("nope/deep/x.parquet")])
    if kind == "text":
        return rng.choice(["", "x", "mean(valid_loss.*)", "steps", "0.5*valid_loss.code+", "valid_loss.code", "mixture_id", "..=uniform", "a=b=c"])
    return kind  # a literal


# Per binary: the base arguments of a valid call, and the flags to fuzz with their kinds.
B = {
    "tokenize-shard": (["--input", W("corpus"), "--output", W("tok-out"), "--train-bpe", "300"],
                       {"--input": "file", "--output": "out", "--train-bpe": "num", "--valid-fraction": "num", "--tokenizer": "file",
                        "--text-field": "text", "--domain-from": "text", "--bpe-max-bytes": "size", "--threads": "num"}),
    "sample-mixtures": (["--manifest", W("shards/manifest.parquet"), "--count", "4", "--output", W("mix-out.parquet")],
                        {"--manifest": "file", "--count": "size", "--seed": "num", "--min-weight": "num", "--oversample": "size",
                         "--temperature": "num", "--min-strength": "num", "--max-strength": "num", "--max-epochs": "num",
                         "--target-tokens": "num", "--output": "out", "--prior": "file"}),
    "proxy-train": (["--shards", W("shards"), "--mixtures", W("mixtures.parquet"), "--output", W("fuzz-runs")] + train,
                    {"--shards": "dir", "--mixtures": "file", "--tokens": "size", "--batch-tokens": "size", "--lr": "num",
                     "--eval-windows": "size", "--eval-every": "num", "--warmup-steps": "num", "--micro-batch": "num",
                     "--ids": "text", "--model-config": "file", "--output": "out", "--concurrent-runs": "num",
                     "--eval-at": "text", "--match-epochs-of": "num"}),
    "collect": (["--runs", W("runs"), "--mixtures", W("mixtures.parquet"), "--output", W("ds-out.parquet")],
                {"--runs": "dir", "--mixtures": "file", "--step": "num", "--output": "out", "--targets": "dir", "--trajectories": "out"}),
    "fit": (["--dataset", W("dataset.parquet"), "--target", "mean(valid_loss.*)", "--regressor", "linear", "--folds", "2", "--output", W("fit-out")],
            {"--dataset": "file", "--target": "text", "--regressor": "text", "--folds": "num", "--seed": "num", "--evaluate": "file", "--output": "out",
             "--at-tokens": "num", "--until-tokens": "num", "--trajectories": "file"}),
    "optimize": (["--fit", W("fit"), "--manifest", W("shards/manifest.parquet"), "--samples", "500", "--top-k", "5", "--output", W("opt-out")],
                 {"--fit": "dir", "--manifest": "file", "--samples": "size", "--top-k": "num", "--strength": "num", "--seed": "num",
                  "--min-weight": "num", "--max-weight": "text", "--bootstrap": "size", "--chunk": "num", "--output": "out",
                  "--target-tokens": "num", "--max-epochs": "num", "--kl-to-prior": "text", "--holdout": "file"}),
    "target-train": (["--shards", W("shards"), "--output", W("tt-out"), "--mixture", "u=uniform"] + train,
                     {"--shards": "dir", "--mixture": "text", "--tokens": "size", "--lr": "num", "--min-lr": "num", "--output": "out"}),
    "export-megatron": (["--shards", W("shards"), "--output", W("em-out")], {"--shards": "dir", "--output": "out"}),
    "report": (["--output", W("r.html"), "--mixtures", W("mixtures.parquet")],
               {"--mixtures": "file", "--dataset": "file", "--fit": "dir", "--optimum": "dir", "--comparison": "file", "--output": "out"}),
}

failures = []
cases = 0
for name, (base, flags) in B.items():
    for _ in range(args.cases):
        argv = list(base)
        for _ in range(rng.randrange(1, 3)):
            flag = rng.choice(list(flags))
            v = value(flags[flag])
            if flag in argv:
                argv[argv.index(flag) + 1] = v
            else:
                argv += [flag, v]
        cases += 1
        rc, err = run([name] + argv)
        bad = None
        if rc is None:
            bad = "did not end within %.0f s" % args.timeout
        elif rc < 0:
            bad = "killed by signal %d" % -rc
        elif rc == 101 or "panicked at" in err:
            bad = "panicked"
        elif rc not in (0, 2):
            bad = "exit code %d" % rc
        elif rc == 2 and not err.strip():
            bad = "exit code 2 without a message"
        if bad:
            failures.append("%s %s: %s\n    %s" % (name, " ".join(repr(a) for a in argv), bad, (err or "").strip()[-400:]))

# Corpus-level cases: damaged copies of the shards folder.
os.makedirs(W("corpus-half"))
with open(W("corpus", "code.jsonl")) as src, open(W("corpus-half", "code.jsonl"), "w") as dst:
    dst.writelines(src.readlines()[:20])
run(["tokenize-shard", "--input", W("corpus-half"), "--output", W("shards-half"), "--tokenizer", W("shards/tokenizer.json"),
     "--valid-fraction", "0.1"], True)


def shard_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs if f.endswith(".arrow"))


def damage_corpus(k):
    """A copy of the shards with one kind of damage; returns (folder, how, the shards damaged)."""
    dst = W("corpus-damaged-%d" % k)
    shutil.copytree(W("shards"), dst)
    files = shard_files(dst)
    how = rng.choice(["swap", "truncate", "re-tokenized", "fifo", "missing"])
    victim = rng.choice(files)
    p = os.path.join(dst, victim)
    if how == "swap":
        other = rng.choice([f for f in files if f != victim])
        q = os.path.join(dst, other)
        os.rename(p, p + ".x"); os.rename(q, p); os.rename(p + ".x", q)
        return dst, how, [victim, other]
    if how == "truncate":
        data = open(p, "rb").read()
        open(p, "wb").write(data[: rng.randrange(0, len(data) - 1)])
    elif how == "re-tokenized":
        domain, split = victim.split(os.sep)[:2]
        half = [f for f in shard_files(W("shards-half")) if f.startswith(domain + os.sep + split + os.sep)]
        src = os.path.join(W("shards-half"), half[0]) if half else os.path.join(W("shards-half"), shard_files(W("shards-half"))[0])
        shutil.copy(src, p)
    elif how == "fifo":
        os.remove(p)
        os.mkfifo(p)
    elif how == "missing":
        os.remove(p)
    return dst, how, [victim]


corpus_cases = 0
for k in range(args.corpus_cases):
    dst, how, victims = damage_corpus(k)
    for argv in (["proxy-train", "--shards", dst, "--mixtures", W("mixtures.parquet"), "--output", W("corpus-runs-%d" % k), "--ids", "0"] + train,
                 ["export-megatron", "--shards", dst, "--output", W("corpus-megatron-%d" % k)]):
        corpus_cases += 1
        rc, err = run(argv)
        bad = None
        if rc is None:
            bad = "did not end within %.0f s" % args.timeout
        elif rc == 0:
            bad = "exit 0: the damaged shards were read as if whole"
        elif rc != 2:
            bad = "exit code %d" % rc
        elif not any(v in err for v in victims):
            bad = "the message does not name the damaged shard (%s)" % " or ".join(victims)
        if bad:
            failures.append("%s on shards with %s %s: %s\n    %s" % (argv[0], how, " and ".join(victims), bad, (err or "").strip()[-400:]))
cases += corpus_cases

print("fuzz: %d cases over %d binaries (%d of them on damaged shard folders), %d failures" % (cases, len(B), corpus_cases, len(failures)))
for f in failures:
    print("FAILED: " + f)
if not os.environ.get("KEEP"):
    shutil.rmtree(work, ignore_errors=True)
sys.exit(1 if failures else 0)
