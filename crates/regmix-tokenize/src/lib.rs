//! Tokenization, the library behind the `tokenize-shard` stage: raw text to per-domain token
//! shards and `manifest.parquet`.
//!
//! For each input file, documents are read in order, encoded in parallel, split into train
//! and validation by a hash of their text, and appended (each followed by EOS) to one shard
//! per (domain, split): `<output>/<domain>/<split>/<input stem>-<path hash>.arrow`. When an
//! input is done, its shard files are renamed into place and a marker
//! `<output>/.done/<input stem>-<path hash>.json` records what it produced; a rerun skips
//! inputs whose marker matches and redoes any input that was interrupted. Finally
//! `manifest.parquet` lists every shard.
//!
//! Over a Slurm array, task I of K (`--array-index I --array-count K`) encodes input files
//! I, I + K, I + 2K… of the sorted inputs into the same output folder and writes no manifest;
//! `--merge` then writes `manifest.parquet` from every input's marker, the same rows a
//! single process writes. A tokenizer to train is trained first, alone (`--train-only`).
//!
//! **Invariant:** a `manifest.parquet` never lists shards other than the ones in the folder:
//! a run removes it before it replaces the first shard, and writes it again only when every
//! input is done. Temporary files are cleaned only where they are this run's own (the shard
//! and marker names of its inputs).

mod encode;
pub mod input;
pub mod tok;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::{Instant, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use regmix_core::schema::{Lists, Schema};
use regmix_core::shard::token_type;
use regmix_core::table::{batch, col, write_parquet};
use regmix_core::{atomic, progress, schema, Provenance};
use serde::{Deserialize, Serialize};

use encode::{bad_record, encode_input, for_each_chunk};
use input::{DomainFrom, Record};

/// Tokenize raw text into per-domain token shards.
///
/// Inputs are JSONL files (optionally .gz or .zst), Parquet files with a text column, or .txt
/// files (one document per file); folders are searched for such files. Each document's domain
/// comes from its file name's prefix before the first `-` (arxiv-0.jsonl → arxiv), or from a
/// JSON field such as meta.pile_set_name. Documents are split into train and valid by a hash
/// of their text, so reruns and reorderings give the same split. Output: <domain>/<split>/*.arrow
/// token shards (Arrow IPC, memory-mappable), manifest.parquet, and tokenizer.json.
#[derive(Parser, Debug, Clone)]
#[command(name = "tokenize-shard", version, term_width = regmix_core::cli::HELP_WIDTH)]
pub struct Args {
    /// Input files or folders.
    #[arg(long, value_name = "PATH", num_args = 1.., required = true)]
    pub input: Vec<PathBuf>,
    /// Output folder for shards, manifest.parquet and tokenizer.json.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// A Hugging Face tokenizer.json (e.g. GPT-NeoX's, which the paper used).
    #[arg(long, value_name = "FILE", conflicts_with = "train_bpe", required_unless_present = "train_bpe")]
    pub tokenizer: Option<PathBuf>,
    /// Train a byte-level BPE of this many tokens on the inputs' training documents instead; saved as <output>/tokenizer.json and reused by reruns.
    #[arg(long, value_name = "VOCAB_SIZE")]
    pub train_bpe: Option<usize>,
    /// At most this many bytes of text go into BPE training (taken evenly across inputs).
    #[arg(long, value_name = "BYTES", default_value_t = 512 << 20)]
    pub bpe_max_bytes: u64,
    /// Where each document's domain comes from: `prefix` (file name before the first `-`) or `field:JSON.PATH`.
    #[arg(long, value_name = "prefix|field:JSON.PATH", default_value = "prefix")]
    pub domain_from: DomainFrom,
    /// The JSON field (or Parquet column) holding the text.
    #[arg(long, value_name = "NAME", default_value = "text")]
    pub text_field: String,
    /// Fraction of documents that go to the validation split (by a hash of the text).
    #[arg(long, value_name = "F", default_value_t = 0.01)]
    pub valid_fraction: f64,
    /// End-of-document token (default: the first of <|endoftext|>, </s>, <eos> the tokenizer has).
    #[arg(long, value_name = "TOKEN")]
    pub eos_token: Option<String>,
    /// Count bad records (malformed JSON, invalid UTF-8, missing text or domain), log the first few, record the count, and go on; without it the first one is an error.
    #[arg(long)]
    pub skip_bad_records: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// The longest record (a JSONL line, a Parquet text value, a .txt file), in bytes after decompression; a longer one is a bad record.
    #[arg(long, value_name = "BYTES", default_value_t = input::DEFAULT_MAX_RECORD_BYTES)]
    pub max_record_bytes: usize,
    /// Train the BPE (--train-bpe) into <output>/tokenizer.json and stop: the step before an array of tasks.
    #[arg(long, requires = "train_bpe", conflicts_with_all = ["merge", "array_index"])]
    pub train_only: bool,
    /// This task's index in an array of --array-count tasks: it encodes input files I, I+K, I+2K… (of the sorted inputs) and writes no manifest.
    #[arg(long, value_name = "I", requires = "array_count")]
    pub array_index: Option<usize>,
    /// The number of array tasks K (with --array-index, or with --merge to name the task that owns a missing input).
    #[arg(long, value_name = "K")]
    pub array_count: Option<usize>,
    /// Tokenize nothing: check that every input was encoded (by the array tasks) with these settings and write manifest.parquet.
    #[arg(long, conflicts_with = "array_index")]
    pub merge: bool,
}

/// What one input produced; stored as its completion marker.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Marker {
    source: String,
    size: u64,
    mtime_ns: u128,
    tokenizer_sha256: String,
    valid_fraction: f64,
    text_field: String,
    domain_from: String,
    bad_records: u64,
    shards: Vec<ShardRow>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ShardRow {
    domain: String,
    split: String,
    file: String,
    documents: u64,
    tokens: u64,
    bytes: u64,
}

/// Totals of a run, for the log and the benchmark.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub inputs: usize,
    pub skipped: usize,
    pub documents: u64,
    pub tokens: u64,
    pub bytes: u64,
    pub bad_records: u64,
    pub seconds: f64,
    /// Text bytes and tokens of the inputs processed in this run (not skipped).
    pub processed_bytes: u64,
    pub processed_tokens: u64,
}

/// Whether a document goes to the validation split: a hash of its text, so the split does
/// not depend on file order or on reruns.
pub fn is_valid_doc(text: &str, fraction: f64) -> bool {
    let h = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    (h as f64) < fraction * (u64::MAX as f64)
}

/// Each input file's key: the stem of its name and a hash of its path *relative to the
/// `--input` it was found under* (a folder: the path inside it; a file: its name). Shard and
/// marker names derive from it, and so does the shards' identity (`shards_sha256`), so the same
/// corpus laid out the same way gets the same names on every machine, wherever it lies. Two
/// inputs with the same relative path under different `--input` folders are an error.
fn input_keys(given: &[PathBuf], files: &[PathBuf]) -> Result<HashMap<PathBuf, String>> {
    let mut keys = HashMap::new();
    let mut seen: HashMap<String, &Path> = HashMap::new();
    for f in files {
        let rel = given
            .iter()
            .find_map(|g| {
                if g == f {
                    f.file_name().map(PathBuf::from)
                } else {
                    f.strip_prefix(g).ok().map(Path::to_path_buf)
                }
            })
            .with_context(|| format!("{}: not under any --input", f.display()))?;
        let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let rel = rel.join("/");
        if let Some(other) = seen.insert(rel.clone(), f) {
            bail!(
                "{} and {}: two inputs at the same path ({rel}) under different --input folders would get the same \
                 shard names; rename one, or tokenize them into separate outputs",
                other.display(),
                f.display()
            );
        }
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("input");
        let stem = name.split('.').next().unwrap_or("input");
        let h = xxhash_rust::xxh3::xxh3_64(rel.as_bytes());
        keys.insert(f.clone(), format!("{stem}-{:08x}", h as u32));
    }
    Ok(keys)
}

fn file_identity(path: &Path) -> Result<(u64, u128)> {
    let md = std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mtime = md.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
    Ok((md.len(), mtime))
}

/// The largest vocabulary --train-bpe trains (2^20; the largest in use are about 256k).
pub const MAX_VOCAB: usize = 1 << 20;

/// The share of array task `index` of `count`: inputs index, index + count, … of the sorted
/// list, so a task's share depends only on the inputs, never on timing.
pub fn array_share<T: Clone>(inputs: &[T], index: usize, count: usize) -> Vec<T> {
    inputs.iter().skip(index).step_by(count).cloned().collect()
}

/// Removes the temporary files a killed run of this output left for `keys`' shards and
/// markers (`<key>.arrow.tmp-<pid>…`, `.done/<key>.json.tmp-<pid>…`) whose process is not
/// running here. Nothing else is touched: a file of the user's with `.tmp-` in its name stays.
fn clean_own_temporaries(output: &Path, keys: &[String]) -> Result<usize> {
    let mut dirs = vec![output.join(".done")];
    if let Ok(rd) = std::fs::read_dir(output) {
        for d in rd.flatten() {
            if d.file_name().to_string_lossy().starts_with('.') || !d.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for split in ["train", "valid"] {
                dirs.push(d.path().join(split));
            }
        }
    }
    let prefixes: std::collections::HashSet<String> =
        keys.iter().flat_map(|k| [format!("{k}.arrow.tmp-"), format!("{k}.json.tmp-")]).collect();
    let mut removed = 0;
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(at) = name.find(".tmp-") else { continue };
            if !prefixes.contains(&name[..at + 5]) || !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let rest = &name[at + 5..];
            let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            let live =
                pid.parse::<u32>().is_ok_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists());
            if pid.is_empty() || live {
                continue;
            }
            std::fs::remove_file(e.path()).with_context(|| format!("{}: cannot remove", e.path().display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Tokenizes the inputs (the array task's share of them), or trains the tokenizer alone
/// (`--train-only`), or merges the array tasks' markers (`--merge`); writes the manifest
/// unless it is an array task.
pub fn run(args: &Args) -> Result<Summary> {
    let array = array_task(args)?;
    // One writer per output, and per array task: the tasks share the folder, each writing the
    // shards and markers of its own inputs.
    let _lock = lock_output(args, array)?;
    check_settings(args)?;
    let prov = Provenance::from_env("tokenize-shard", env!("CARGO_PKG_VERSION"));
    let all_inputs = input::expand_inputs(&args.input)?;
    let input_key = input_keys(&args.input, &all_inputs)?;
    if args.domain_from == DomainFrom::Prefix {
        input::check_prefix_domains(&all_inputs)?;
    }
    std::fs::create_dir_all(&args.output).with_context(|| format!("{}: cannot create", args.output.display()))?;
    let inputs = task_inputs(args, array, &all_inputs, &input_key)?;
    let Some(loaded) = tokenizer_for(args, array, &all_inputs)? else {
        return Ok(Summary::default());
    };
    let encoder = tok::Encoder::new(&loaded)?;
    let Pass { summary, markers, missing } = encode_inputs(args, &inputs, &input_key, &loaded, &encoder, &prov)?;
    check_merge_complete(missing)?;
    if let Some((i, k)) = array {
        log::info!(
            "array task {i} of {k} done: {} documents, {} tokens; {} inputs skipped as done. When every task is done: tokenize-shard --merge",
            summary.documents,
            summary.tokens,
            summary.skipped
        );
        return Ok(summary);
    }
    check_no_empty_domain(args, &markers)?;
    write_manifest(args, &markers, &loaded, &prov)?;
    log_summary(&summary);
    log::info!("wrote {}", args.output.join("manifest.parquet").display());
    Ok(summary)
}

/// The array task this process is (`--array-index I --array-count K`), or `None` outside an
/// array; refuses an index out of range, a count without an index (unless `--merge`), and an
/// array task or merge without a tokenizer trained beforehand.
fn array_task(args: &Args) -> Result<Option<(usize, usize)>> {
    let array = match (args.array_index, args.array_count) {
        (Some(i), Some(k)) if k == 0 || i >= k => {
            bail!("--array-index {i} --array-count {k}: the index must be below the count")
        }
        (Some(i), Some(k)) => Some((i, k)),
        (None, Some(0)) => bail!("--array-count 0: at least one task"),
        (None, Some(k)) if !args.merge => {
            bail!("--array-count {k} without --array-index: give the task's index (or --merge)")
        }
        _ => None,
    };
    if (array.is_some() || args.merge) && args.tokenizer.is_none() {
        bail!(
            "{} encodes with a tokenizer trained beforehand: give --tokenizer (e.g. {}/tokenizer.json after `tokenize-shard --train-bpe N --train-only`)",
            if args.merge { "--merge" } else { "an array task" },
            args.output.display()
        );
    }
    Ok(array)
}

/// The lock of the output (one writer), or of the array task within it.
fn lock_output(args: &Args, array: Option<(usize, usize)>) -> Result<regmix_core::lock::Lock> {
    let lock = match array {
        Some((i, k)) => {
            std::fs::create_dir_all(&args.output)
                .with_context(|| format!("{}: cannot create", args.output.display()))?;
            regmix_core::lock::Lock::at(
                &args.output.join(format!(".task-{i}-of-{k}.lock")),
                &format!("{} (tokenize-shard's array task {i} of {k})", args.output.display()),
            )?
        }
        None => regmix_core::lock::Lock::output(
            &args.output,
            &format!("{} (tokenize-shard's output)", args.output.display()),
        )?,
    };
    Ok(lock)
}

/// Checks the numeric settings (`--max-record-bytes`, `--threads`, `--valid-fraction`,
/// `--train-bpe`) and sizes the global thread pool to `--threads`.
fn check_settings(args: &Args) -> Result<()> {
    if args.max_record_bytes == 0 {
        bail!("--max-record-bytes 0: a record of at least one byte");
    }
    if let Some(n) = args.threads {
        regmix_core::cli::check_threads(n)?;
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().ok();
    }
    if !(0.0..1.0).contains(&args.valid_fraction) {
        bail!("--valid-fraction {} must be in [0, 1)", args.valid_fraction);
    }
    if let Some(n) = args.train_bpe {
        if !(256..=MAX_VOCAB).contains(&n) {
            bail!("--train-bpe {n}: a vocabulary of 256 (the bytes) to {MAX_VOCAB} tokens");
        }
    }
    Ok(())
}

/// The inputs this process encodes (all of them, or the array task's share); removes the
/// temporaries an interrupted run left for them, unless it only merges or trains.
fn task_inputs(
    args: &Args,
    array: Option<(usize, usize)>,
    all_inputs: &[PathBuf],
    input_key: &HashMap<PathBuf, String>,
) -> Result<Vec<PathBuf>> {
    let inputs = match array {
        Some((i, k)) => {
            let share = array_share(all_inputs, i, k);
            log::info!("array task {i} of {k}: {} of {} input files", share.len(), all_inputs.len());
            share
        }
        None => {
            log::info!("{} input files", all_inputs.len());
            all_inputs.to_vec()
        }
    };
    if !args.merge && !args.train_only {
        let keys: Vec<String> = inputs.iter().map(|p| input_key[p].clone()).collect();
        let stale = clean_own_temporaries(&args.output, &keys)?;
        if stale > 0 {
            log::info!("removed {stale} temporary files left by an interrupted run");
        }
    }
    Ok(inputs)
}

/// The tokenizer: given, or trained (once) on the inputs, and copied to
/// `<output>/tokenizer.json` (except by array tasks). `None` when `--train-only` trained it
/// and there is nothing to encode.
fn tokenizer_for(
    args: &Args,
    array: Option<(usize, usize)>,
    all_inputs: &[PathBuf],
) -> Result<Option<tok::LoadedTokenizer>> {
    let tok_path = args.output.join("tokenizer.json");
    let tok_src = match (&args.tokenizer, args.train_bpe) {
        (Some(t), _) => t.clone(),
        (None, Some(n)) => {
            let reuse = tok_path.exists()
                && tok::load(&tok_path, args.eos_token.as_deref()).map(|t| t.vocab_size == n).unwrap_or(false);
            if reuse {
                log::info!("reusing the BPE tokenizer trained earlier: {}", tok_path.display());
            } else {
                train_tokenizer(args, all_inputs, n, &tok_path)?;
            }
            if args.train_only {
                log::info!("--train-only: the tokenizer is {}; encode with --tokenizer {0}", tok_path.display());
                return Ok(None);
            }
            tok_path.clone()
        }
        (None, None) => bail!("give --tokenizer FILE or --train-bpe VOCAB_SIZE"),
    };
    let loaded = tok::load(&tok_src, args.eos_token.as_deref())?;
    let same_file =
        std::fs::canonicalize(&tok_src).ok().is_some_and(|a| std::fs::canonicalize(&tok_path).ok() == Some(a));
    // Array tasks leave tokenizer.json to --merge, which runs alone: two tasks copying it at
    // once would race on its temporary.
    if tok_src != tok_path && !same_file && array.is_none() {
        atomic::write_bytes(&tok_path, &std::fs::read(&tok_src)?)?;
    }
    log::info!(
        "tokenizer {} (sha256 {}), vocabulary {}, EOS {:?} = {}",
        tok_src.display(),
        &loaded.sha256[..12],
        loaded.vocab_size,
        loaded.eos,
        loaded.eos_id
    );
    Ok(Some(loaded))
}

/// What the pass over the inputs gave: the totals, every input's marker (in input order),
/// and, under `--merge`, the inputs without a matching marker.
struct Pass {
    summary: Summary,
    markers: Vec<Marker>,
    missing: Vec<String>,
}

/// Goes over the inputs in order: skips those whose marker matches these settings, encodes
/// the others (or, under `--merge`, lists them as missing), and sums what they hold.
fn encode_inputs(
    args: &Args,
    inputs: &[PathBuf],
    input_key: &HashMap<PathBuf, String>,
    loaded: &tok::LoadedTokenizer,
    encoder: &tok::Encoder,
    prov: &Provenance,
) -> Result<Pass> {
    let done_dir = args.output.join(".done");
    std::fs::create_dir_all(&done_dir)?;
    let total_bytes: u64 = inputs.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
    let pb = progress::byte_bar(total_bytes, "tokenize");
    let start = Instant::now();
    let mut summary = Summary { inputs: inputs.len(), ..Default::default() };
    let mut markers = Vec::new();
    let mut missing = Vec::new();
    let mut manifest_removed = false;
    for (j, path) in inputs.iter().enumerate() {
        let key = input_key[path].clone();
        let marker_path = done_dir.join(format!("{key}.json"));
        let (size, mtime_ns) = file_identity(path)?;
        let previous: Option<Marker> = std::fs::read(&marker_path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let marker = match previous {
            Some(m) if marker_matches(args, &m, (size, mtime_ns), loaded) => {
                log::info!("{}: done earlier, skipping", path.display());
                summary.skipped += 1;
                m
            }
            _ if args.merge => {
                let owner = args.array_count.map(|k| format!(" (array task {} of {k})", j % k)).unwrap_or_default();
                missing.push(format!("{}{owner}", path.display()));
                pb.inc(size);
                continue;
            }
            _ => {
                // The old manifest goes before the first shard it lists is replaced: a run
                // killed from here on leaves no manifest, never one over other shards.
                if !manifest_removed {
                    remove_manifest(args)?;
                    manifest_removed = true;
                }
                let m = encode_input(args, path, &key, loaded, encoder, prov, (size, mtime_ns))?;
                atomic::write_bytes(&marker_path, &serde_json::to_vec_pretty(&m)?)?;
                summary.processed_tokens += m.shards.iter().map(|s| s.tokens).sum::<u64>();
                summary.processed_bytes += m.shards.iter().map(|s| s.bytes).sum::<u64>();
                m
            }
        };
        for s in &marker.shards {
            summary.documents += s.documents;
            summary.tokens += s.tokens;
            summary.bytes += s.bytes;
        }
        summary.bad_records += marker.bad_records;
        markers.push(marker);
        pb.inc(size);
    }
    pb.finish_and_clear();
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(Pass { summary, markers, missing })
}

/// Whether an input's marker was made with these settings from the file as it is (size and
/// time), and its shards are all there: the input is done.
fn marker_matches(args: &Args, m: &Marker, (size, mtime_ns): (u64, u128), loaded: &tok::LoadedTokenizer) -> bool {
    m.size == size
        && m.mtime_ns == mtime_ns
        && m.tokenizer_sha256 == loaded.sha256
        && m.valid_fraction == args.valid_fraction
        && m.text_field == args.text_field
        && args.domain_from.is_recorded_as(&m.domain_from)
        && m.shards.iter().all(|s| args.output.join(&s.file).exists())
}

/// Removes the output's `manifest.parquet`, if any, before a shard it lists is replaced.
fn remove_manifest(args: &Args) -> Result<()> {
    let manifest = args.output.join("manifest.parquet");
    match std::fs::remove_file(&manifest) {
        Ok(()) => log::info!("removed {}: it is written again when every input is done", manifest.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("{}: cannot remove", manifest.display())),
    }
    Ok(())
}

/// Refuses a merge that lacks some inputs' markers, naming the first 20.
fn check_merge_complete(mut missing: Vec<String>) -> Result<()> {
    if !missing.is_empty() {
        let k = missing.len();
        missing.truncate(20);
        bail!(
            "--merge: {k} input files have no completion marker made with these settings (tokenizer, --valid-fraction, --text-field, --domain-from, the file's size and time): {}{}; run their array tasks (again) first",
            missing.join(", "),
            if k > 20 { ", …" } else { "" }
        );
    }
    Ok(())
}

/// Refuses an input with no document when domains come from file names: it would drop its
/// domain from the manifest without a word.
fn check_no_empty_domain(args: &Args, markers: &[Marker]) -> Result<()> {
    if args.domain_from == DomainFrom::Prefix {
        if let Some(m) = markers.iter().find(|m| m.shards.is_empty()) {
            bail!(
                "{}: no documents, so domain `{}` would be left out; remove the file or add text",
                m.source,
                input::prefix_domain(Path::new(&m.source))?
            );
        }
    }
    Ok(())
}

/// Logs the totals, and the speed of the inputs encoded in this run.
fn log_summary(summary: &Summary) {
    let secs = summary.seconds.max(1e-9);
    log::info!(
        "{} documents, {} tokens, {:.1} MB of text; {} inputs skipped as done",
        summary.documents,
        summary.tokens,
        summary.bytes as f64 / 1e6,
        summary.skipped
    );
    if summary.processed_bytes > 0 {
        log::info!(
            "tokenized {:.1} MB in {:.2}s: {:.1} MB/s, {:.2}M tokens/s",
            summary.processed_bytes as f64 / 1e6,
            summary.seconds,
            summary.processed_bytes as f64 / 1e6 / secs,
            summary.processed_tokens as f64 / 1e6 / secs
        );
    }
}

fn train_tokenizer(args: &Args, inputs: &[PathBuf], vocab: usize, out: &Path) -> Result<()> {
    let per_file = args.bpe_max_bytes / inputs.len() as u64;
    log::info!("training a byte-level BPE of {vocab} tokens on up to {} MB of training text", args.bpe_max_bytes >> 20);
    let t = Instant::now();
    let (tx, rx) = sync_channel::<String>(1024);
    let mut result = Ok(());
    std::thread::scope(|s| {
        let feeder = s.spawn(move || -> Result<()> {
            let mut bad = 0;
            for p in inputs {
                let mut taken = 0u64;
                for_each_chunk(args, p, |chunk| {
                    for r in chunk {
                        match r {
                            Record::Doc { text, .. } => {
                                if is_valid_doc(&text, args.valid_fraction) {
                                    continue;
                                }
                                taken += text.len() as u64;
                                tx.send(text).map_err(|_| anyhow!("BPE trainer stopped"))?;
                            }
                            Record::Bad { line, message } => bad_record(args, p, line, &message, &mut bad)?,
                        }
                        if taken >= per_file {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                })?;
            }
            Ok(())
        });
        let trained = tok::train_bpe(vocab, rx.into_iter(), out);
        let fed = feeder.join().expect("feeder panicked");
        result = fed.and(trained);
    });
    result?;
    log::info!("trained the BPE in {:.1}s: {}", t.elapsed().as_secs_f64(), out.display());
    Ok(())
}

fn write_manifest(args: &Args, markers: &[Marker], loaded: &tok::LoadedTokenizer, prov: &Provenance) -> Result<()> {
    let mut rows: Vec<(&ShardRow, &Marker)> =
        markers.iter().flat_map(|m| m.shards.iter().map(move |s| (s, m))).collect();
    rows.sort_by(|a, b| (&a.0.domain, &a.0.split, &a.0.file).cmp(&(&b.0.domain, &b.0.split, &b.0.file)));
    if rows.is_empty() {
        bail!("no documents in any input: nothing to write");
    }
    let domains: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.0.domain.as_str()).collect();
    for d in &domains {
        if !rows.iter().any(|r| r.0.domain == *d && r.0.split == "train") {
            bail!("domain `{d}` has no training documents");
        }
        if !rows.iter().any(|r| r.0.domain == *d && r.0.split == "valid") {
            log::warn!("domain `{d}` has no validation documents; raise --valid-fraction or add text");
        }
    }
    let s = Schema::get("shard_manifest");
    let lists = Lists::new();
    let b = batch(
        s,
        &lists,
        vec![
            col::str(&rows.iter().map(|r| r.0.domain.as_str()).collect::<Vec<_>>()),
            col::str(&rows.iter().map(|r| r.0.split.as_str()).collect::<Vec<_>>()),
            col::str(&rows.iter().map(|r| r.0.file.as_str()).collect::<Vec<_>>()),
            col::str(&rows.iter().map(|r| r.1.source.as_str()).collect::<Vec<_>>()),
            col::u64(rows.iter().map(|r| r.0.documents).collect()),
            col::u64(rows.iter().map(|r| r.0.tokens).collect()),
            col::u64(rows.iter().map(|r| r.0.bytes).collect()),
            col::u64(rows.iter().map(|r| r.1.bad_records).collect()),
        ],
    )?;
    let md = vec![
        ("regmix.tokenizer_sha256".to_string(), loaded.sha256.clone()),
        (regmix_core::keys::VOCAB_SIZE.to_string(), loaded.vocab_size.to_string()),
        (regmix_core::keys::EOS_ID.to_string(), loaded.eos_id.to_string()),
        (regmix_core::keys::TOKEN_TYPE.to_string(), schema::type_name(&token_type(loaded.vocab_size))),
        (regmix_core::keys::VALID_FRACTION.to_string(), args.valid_fraction.to_string()),
    ];
    write_parquet(&args.output.join("manifest.parquet"), s, &lists, &b, &md, prov)?;
    Ok(())
}
