#!/usr/bin/env python3
"""Write a collect output as the small, committed CSV tables of an experiment's results, so
that a later session on a fresh machine scores them without training them again:

  OUT.csv               one row per run: run, tokens, steps, weight.<domain>, valid_loss.<d>
                        (what `collect --import-table OUT.csv` reads back into a dataset, each
                        row at its own tokens)
  OUT.trajectories.csv  every evaluation of every run: run, step, tokens, lr, warmup,
                        valid_loss.<d> (the curves, for plots and for checking a crossing)
  OUT.settings.json     what the runs were trained with (schemas/results_settings.json): the
                        make target's flags and the dataset's regmix.run_settings

  export-results.py DATASET.parquet OUT.csv [--merge] [--flags TEXT]
  export-results.py --check OUT.csv --flags TEXT --manifest MANIFEST.parquet
  export-results.py --verify PROBE.parquet OUT.csv --flags TEXT

With --merge, the runs already in OUT.csv (an earlier session's, committed) are kept and the
dataset's runs added, so a table grows across sessions as its runs finish. The dataset's
settings must be the table's (OUT.settings.json), and a run in both must have the same values
in every column; else it stops, naming the setting, or the run and the column: results of
other settings, or of a trainer that is not deterministic, are never mixed in. Rows are in run
order (m2 before m10).

--check is what a make target runs before it skips the models already in a table: the flags it
would train with and the manifest's tokenizer must be the ones the table records (a table
without a settings file is an error too: it was never checked).

--verify compares a probe (a collect of one of the table's runs trained again on this machine,
to one of its evaluations or to its end) with the table: every evaluation of the probe must be
in the table's trajectories with the same values, bit for bit, and the probe's settings must be
the table's. It then records the check in OUT.settings.json, and writes the settings file from
the probe where the table had none (tables committed before settings were recorded).

Floats are written with repr (shortest round trip), so the import reads the values collect
wrote, bit for bit. The dataset must have been written by collect (schema `dataset`); its
trajectories are read from the file its metadata names, checked against its sha256.
"""
import argparse
import csv
import datetime
import hashlib
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent.parent
CONTRACT = ROOT / "schemas/results_settings.json"


def die(msg):
    """An error (exit 2, as the stages' errors): the file, the run or the setting, and why."""
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", nargs="?", type=Path, help="a collect output (dataset.parquet)")
    p.add_argument("out", type=Path, help="the table, OUT.csv")
    p.add_argument("--merge", action="store_true", help="grow OUT.csv by the dataset's runs")
    p.add_argument("--flags", help="the training flags of the make target, recorded and compared as text")
    p.add_argument("--check", action="store_true", help="check the table's settings before skipping its runs")
    p.add_argument("--manifest", type=Path, help="with --check: the shards' manifest.parquet")
    p.add_argument("--verify", type=Path, metavar="PROBE", help="a collect of one of the table's runs trained again")
    a = p.parse_args()
    if a.check:
        if a.dataset is not None or a.flags is None or a.manifest is None:
            p.error("--check OUT.csv --flags TEXT --manifest MANIFEST")
        return check(a.out, a.flags, a.manifest)
    if a.verify is not None:
        if a.dataset is not None or a.flags is None:
            p.error("--verify PROBE.parquet OUT.csv --flags TEXT")
        return verify(a.verify, a.out, a.flags)
    if a.dataset is None:
        p.error("DATASET.parquet OUT.csv")
    export(a.dataset, a.out, a.merge, a.flags)


# --- the settings file -------------------------------------------------------------------

def settings_path(out):
    return out.with_suffix(".settings.json")


def contract():
    return json.loads(CONTRACT.read_text())


def read_settings(out):
    """The table's settings file checked against its contract, or None when there is none."""
    path = settings_path(out)
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        die(f"{path}: not JSON ({e})")
    c = contract()
    ident = doc.get("regmix", {})
    if ident.get("schema") != c["schema"] or ident.get("schema_version") != c["version"]:
        die(f"{path}: regmix.schema {ident.get('schema')!r} version {ident.get('schema_version')!r}; expected {c['schema']!r} version {c['version']}")
    types = {"string": str, "object": dict, "array": list}
    for f in c["fields"]:
        if f["name"] not in doc:
            die(f"{path}: field `{f['name']}` is missing ({c['schema']} contract)")
        v = doc[f["name"]]
        if v is None and f.get("nullable"):
            continue
        if not isinstance(v, types[f["type"]]):
            die(f"{path}: field `{f['name']}` is not a {f['type']} ({c['schema']} contract)")
    return doc


def settings_doc(out, flags, run_settings, verified):
    c = contract()
    return {
        "regmix": {
            "schema": c["schema"],
            "schema_version": c["version"],
            "producer": "export-results.py",
            "producer_version": "1",
            "arguments": sys.argv,
        },
        "table": out.name,
        "flags": flags,
        "run_settings": run_settings,
        "verified": verified,
    }


def differences(a, b, at=""):
    """The paths where two JSON values differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            p = f"{at}.{k}" if at else k
            if k not in a or k not in b:
                out.append(f"{p}: {json.dumps(a.get(k))} vs {json.dumps(b.get(k))}")
            else:
                out += differences(a[k], b[k], p)
        return out
    if a != b:
        return [f"{at or '(the whole value)'}: {json.dumps(a)[:120]} vs {json.dumps(b)[:120]}"]
    return []


def same_settings(out, have, flags, run_settings, what):
    """Stops unless `have` (the table's settings) records these flags and run settings."""
    diff = []
    if have["flags"] != flags:
        diff.append(f"flags: {have['flags']!r} vs {flags!r}")
    diff += [f"run_settings.{d}" for d in differences(have["run_settings"], run_settings)]
    if diff:
        die(
            f"{settings_path(out)}: {what} was trained with other settings than the table:\n  "
            + "\n  ".join(diff[:8])
            + ("\n  …" if len(diff) > 8 else "")
            + "\nnot merged: give the table's settings, or remove the table to start it again"
        )


def write_settings(out, doc):
    path = settings_path(out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


# --- export and merge --------------------------------------------------------------------

def read_dataset(src):
    t = pq.read_table(src)
    meta = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()}
    if meta.get("regmix.schema") != "dataset":
        die(f"{src}: not a collect dataset (metadata regmix.schema = {meta.get('regmix.schema')!r})")
    if "regmix.run_settings" not in meta:
        die(f"{src}: no regmix.run_settings in its metadata (written by an older collect); collect again")
    return t, meta


def tables_of(src):
    """The dataset's rows and evaluations as text cells: (cols, rows, tcols, trajectory rows or
    None, run settings)."""
    t, meta = read_dataset(src)
    domains, evals = json.loads(meta["regmix.domains"]), json.loads(meta["regmix.eval_domains"])
    cols = ["run", "tokens", "steps"] + [f"weight.{d}" for d in domains] + [f"valid_loss.{e}" for e in evals]
    rows = [{c: cell(v) for c, v in r.items()} for r in t.select(cols).to_pylist()]
    tcols = ["run", "step", "tokens", "lr", "warmup"] + [f"valid_loss.{e}" for e in evals]
    name = meta.get("regmix.trajectories", "")
    if not name:
        return cols, rows, tcols, None, json.loads(meta["regmix.run_settings"])
    by_id = {r["mixture_id"]: r["run"] for r in t.select(["mixture_id", "run"]).to_pylist()}
    traj = src.parent / name
    sha = hashlib.sha256(traj.read_bytes()).hexdigest()
    if sha != meta.get("regmix.trajectories_sha256"):
        die(f"{traj}: sha256 {sha} is not the one {src} records; collect again")
    tt = []
    for r in pq.read_table(traj).to_pylist():
        r["run"] = by_id[r["mixture_id"]]
        tt.append({c: cell(r[c]) for c in tcols})
    return cols, rows, tcols, tt, json.loads(meta["regmix.run_settings"])


def export(src, out, merge, flags):
    cols, rows, tcols, tt, run_settings = tables_of(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    have = read_settings(out)
    verified = []
    if merge and out.exists():
        if have is None:
            die(f"{out}: the table records no settings ({settings_path(out).name} is missing), so nothing can be merged into it unchecked; `make horizon-verify` trains one of its runs again and records them")
        same_settings(out, have, flags, run_settings, str(src))
        verified = have["verified"]
    # Every table is checked before any is written, so a refused merge changes none.
    if merge:
        rows = merged(out, cols, rows, ("run",))
    tout = out.with_suffix(".trajectories.csv")
    if tt is not None and merge:
        tt = merged(tout, tcols, tt, ("run", "step"))
    write(out, cols, rows)
    print(f"{out}: {len(rows)} runs")
    if tt is not None:
        write(tout, tcols, tt)
        print(f"{tout}: {len(tt)} evaluations")
    write_settings(out, settings_doc(out, flags, run_settings, verified))


def run_order(name):
    """m2 before m10: the name's digits compared as a number."""
    head = name.rstrip("0123456789")
    tail = name[len(head):]
    return (head, int(tail) if tail else -1, name)


def read_csv(path, cols):
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        if r.fieldnames != cols:
            die(f"{path}: its columns are not this dataset's ({r.fieldnames} vs {cols}); results of other settings")
        return list(r)


def merged(path, cols, rows, key):
    """`rows` added to the rows already in `path` (all cells as text), checked where both have
    a row of the same key."""
    old = read_csv(path, cols) if path.exists() else []
    have = {tuple(o[k] for k in key): o for o in old}
    for n in rows:
        k = tuple(n[c] for c in key)
        o = have.get(k)
        if o is not None:
            diff = [c for c in cols if o[c] != n[c]]
            if diff:
                die(f"{path}: {dict(zip(key, k))} is there with other values in {', '.join(diff[:4])}: results of other settings or another trainer; not merged")
        have[k] = n
    return sorted(have.values(), key=lambda r: (run_order(r["run"]),) + tuple(int(r[c]) for c in key[1:]))


def write(path, cols, rows):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([r[c] for c in cols])
    tmp.replace(path)


# --- check and verify --------------------------------------------------------------------

def check(out, flags, manifest):
    if not out.exists():
        print(f"{out}: not there yet; every model is to be trained")
        return
    have = read_settings(out)
    if have is None:
        die(f"{out}: the table records no settings ({settings_path(out).name} is missing), so its runs cannot be taken for this target's; `make horizon-verify` trains one of them again and records them")
    if have["flags"] != flags:
        die(f"{settings_path(out)}: the table was trained with flags {have['flags']!r}, this target trains with {flags!r}: not the same results; give the table's flags or remove the table")
    md = pq.read_schema(manifest).metadata or {}
    tok = md.get(b"regmix.tokenizer_sha256", b"").decode()
    rec = (have["run_settings"] or {}).get("tokenizer_sha256")
    if rec != tok:
        die(f"{settings_path(out)}: the table's runs were trained with tokenizer {rec}, but {manifest} has {tok}: another corpus; remove the table to train it again")
    print(f"{out}: settings are this target's ({len(have['verified'])} re-trainings reproduced it)")


def verify(probe, out, flags):
    cols, probe_rows, tcols, tt, run_settings = tables_of(probe)
    if tt is None or not tt:
        die(f"{probe}: no evaluations to compare")
    tout = out.with_suffix(".trajectories.csv")
    for p in (out, tout):
        if not p.exists():
            die(f"{p}: not there; nothing to verify")
    committed = {(r["run"], r["step"]): r for r in read_csv(tout, tcols)}
    runs = {r["run"]: r for r in read_csv(out, cols)}
    weights = [k for k in cols if k.startswith("weight.")]
    for r in probe_rows:
        if r["run"] not in runs:
            die(f"{out}: the probe trained run {r['run']}, which the table does not have")
        diff = [k for k in weights if runs[r["run"]][k] != r[k]]
        if diff:
            die(f"{out}: run {r['run']} re-trained here has other weights in {', '.join(diff[:4])} ({r[diff[0]]} vs the table's {runs[r['run']][diff[0]]}): another mixture")
    checked = []
    for r in tt:
        c = committed.get((r["run"], r["step"]))
        if c is None:
            die(f"{tout}: the probe evaluated run {r['run']} at step {r['step']}, which the table does not have")
        diff = [k for k in tcols if c[k] != r[k]]
        if diff:
            die(f"{tout}: run {r['run']} at step {r['step']} re-trained here gives other values in {', '.join(diff[:4])} ({r[diff[0]]} vs the table's {c[diff[0]]}): the table is not reproduced on this machine")
        checked.append(r)
    have = read_settings(out)
    if have is not None:
        same_settings(out, have, flags, run_settings, str(probe))
        verified = have["verified"]
    else:
        verified = []
        print(f"{settings_path(out)}: recorded from the probe (the table had none)")
    last = checked[-1]
    verified.append({
        "run": last["run"],
        "step": int(last["step"]),
        "columns": [k for k in tcols if k.startswith("valid_loss.") or k == "lr"],
        "evaluations": len(checked),
        "date": datetime.date.today().isoformat(),
    })
    write_settings(out, settings_doc(out, flags, run_settings, verified))
    print(f"{out}: reproduced: run {last['run']}, {len(checked)} evaluations to step {last['step']} equal bit for bit")


if __name__ == "__main__":
    main()
