//! `export-megatron`: the shards as Megatron indexed datasets, the format `megatron-core`'s
//! `IndexedDataset` reads (Megatron-LM, NeMo and GPT-NeoX train from it), per domain and split:
//!
//! ```text
//! <output>/<domain>.bin, <domain>.idx              the train split (what the blend names)
//! <output>/valid/<domain>.bin, <domain>.idx        the validation split
//! <output>/.done/<split>-<domain>.json             completion marker (domain, split, the shards' and tokenizer's
//!                                                  identity, each file's sha256: `regmix_core::megatron::Marker`)
//! ```
//!
//! A domain's pair commits as a unit: its marker is removed first, both files are written under
//! temporary names and renamed, and the marker, written last, records both files' sha256. A
//! rerun skips a pair only if its marker names these shards and both files still have the
//! recorded hashes; a pair from two exports (one killed between its renames) has no marker and
//! is written again. A split with no text (a small domain's validation split) writes no files:
//! an empty indexed dataset is one no memory-mapping reader (numpy's, megatron-core's) opens.
//!
//! One document is one sequence: its tokens up to and including the end-of-document token (as
//! Megatron's `preprocess_data.py --append-eod` writes them). `.bin` holds the tokens in the
//! narrowest type Megatron would choose (uint16 below a vocabulary of 65,500, else int32);
//! `.idx` is the `MMIDIDX` index: header, version 1, the dtype code, the sequence and document
//! counts, each sequence's length (int32) and byte offset (int64), and the document indices
//! (int64; 0 first, then the running sequence count after each document). No token is
//! re-tokenized: the ids are the shards' own, so `optimize --megatron-prefix <output>/` names
//! these files in its `--data-path` blend.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use regmix_core::atomic::AtomicFile;
use regmix_core::digest::Hasher;
use regmix_core::megatron::Marker;
use regmix_train::data::{Corpus, Stream};

/// Write the token shards as Megatron indexed datasets (.bin + .idx per domain and split).
///
/// Streams each domain's tokens from the memory-mapped shards (memory: the document lengths,
/// 4 bytes per document), writes every file under a temporary name and renames it when
/// complete, the index last; a rerun skips the domains already exported from the same shards.
#[derive(Parser, Debug, Clone)]
#[command(name = "export-megatron", version, term_width = regmix_core::cli::HELP_WIDTH)]
pub struct Args {
    /// The shards folder written by tokenize-shard (with manifest.parquet).
    #[arg(long, value_name = "DIR")]
    pub shards: PathBuf,
    /// Output folder: <domain>.bin/.idx (train), valid/<domain>.bin/.idx.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
}

/// `MMIDIDX\0\0`, the first 9 bytes of every index.
pub const INDEX_HEADER: &[u8; 9] = b"MMIDIDX\x00\x00";
pub const INDEX_VERSION: u64 = 1;

/// Megatron's `DType` codes of the two token types it chooses between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    U16,
    I32,
}

impl TokenType {
    /// Megatron's `DType.optimal_dtype`: uint16 when the vocabulary is below 65,500.
    pub fn for_vocabulary(vocab_size: usize) -> TokenType {
        if vocab_size < 65_500 {
            TokenType::U16
        } else {
            TokenType::I32
        }
    }
    pub fn code(self) -> u8 {
        match self {
            TokenType::U16 => 8,
            TokenType::I32 => 4,
        }
    }
    pub fn size(self) -> u64 {
        match self {
            TokenType::U16 => 2,
            TokenType::I32 => 4,
        }
    }
}

/// The files of one domain and split under `output` (the layout is `regmix_core::megatron`'s,
/// which `optimize --megatron-prefix` checks a blend against).
pub use regmix_core::megatron::{marker, prefix};

/// What one exported domain and split holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub documents: u64,
    pub tokens: u64,
    /// sha256 of the `.bin` and the `.idx` written.
    pub bin_sha256: String,
    pub idx_sha256: String,
}

/// A writer that hashes what goes through it.
struct Hashing<W: Write> {
    inner: W,
    hash: Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes one stream as `<prefix>.bin` and `<prefix>.idx`: both under temporary names first,
/// then renamed, the index last.
pub fn export_stream(stream: &Stream, eos: u32, ty: TokenType, prefix: &Path) -> Result<Exported> {
    let bin_path = prefix.with_extension("bin");
    let idx_path = prefix.with_extension("idx");
    let mut bin = std::io::BufWriter::with_capacity(
        1 << 20,
        Hashing { inner: AtomicFile::create(&bin_path)?, hash: Hasher::default() },
    );
    let mut lengths: Vec<i32> = Vec::new();
    let mut current: u64 = 0;
    let mut buf = vec![0u32; 1 << 16];
    let mut bytes: Vec<u8> = Vec::with_capacity(buf.len() * 4);
    let mut pos = 0u64;
    let too_long = |n: u64| {
        anyhow::anyhow!(
            "{}: a document of {n} tokens; Megatron's index holds at most {} per sequence",
            bin_path.display(),
            i32::MAX
        )
    };
    while pos < stream.len() {
        let n = (stream.len() - pos).min(buf.len() as u64) as usize;
        stream.read(pos, &mut buf[..n]);
        bytes.clear();
        for &t in &buf[..n] {
            match ty {
                TokenType::U16 => bytes.extend_from_slice(&(t as u16).to_le_bytes()),
                TokenType::I32 => bytes.extend_from_slice(&(t as i32).to_le_bytes()),
            }
            current += 1;
            if t == eos {
                lengths.push(i32::try_from(current).map_err(|_| too_long(current))?);
                current = 0;
            }
        }
        bin.write_all(&bytes).with_context(|| format!("writing {}", bin_path.display()))?;
        pos += n as u64;
    }
    if current > 0 {
        // A stream that does not end with the end-of-document token: its tail is a document.
        lengths.push(i32::try_from(current).map_err(|_| too_long(current))?);
    }
    let bin = bin.into_inner().map_err(|e| anyhow::anyhow!("writing {}: {}", bin_path.display(), e.error()))?;
    let mut idx = std::io::BufWriter::new(Hashing { inner: AtomicFile::create(&idx_path)?, hash: Hasher::default() });
    let n = lengths.len() as u64;
    let mut head = Vec::with_capacity(34);
    head.extend_from_slice(INDEX_HEADER);
    head.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    head.push(ty.code());
    head.extend_from_slice(&n.to_le_bytes());
    head.extend_from_slice(&(n + 1).to_le_bytes());
    idx.write_all(&head)?;
    for l in &lengths {
        idx.write_all(&l.to_le_bytes())?;
    }
    let mut offset: i64 = 0;
    for l in &lengths {
        idx.write_all(&offset.to_le_bytes())?;
        offset += *l as i64 * ty.size() as i64;
    }
    for d in 0..=n as i64 {
        idx.write_all(&d.to_le_bytes())?;
    }
    let idx = idx.into_inner().map_err(|e| anyhow::anyhow!("writing {}: {}", idx_path.display(), e.error()))?;
    let (bin_sha256, idx_sha256) = (bin.hash.finish(), idx.hash.finish());
    bin.inner.commit()?;
    idx.inner.commit()?;
    Ok(Exported { documents: n, tokens: stream.len(), bin_sha256, idx_sha256 })
}

/// Whether the pair at `prefix` is the one `marker` records: both files there with their
/// recorded sha256. Anything else (a file missing, replaced, or from another export) is not.
fn pair_matches(prefix: &Path, marker: &serde_json::Value) -> Result<bool> {
    for (ext, key) in [("bin", "bin_sha256"), ("idx", "idx_sha256")] {
        let p = prefix.with_extension(ext);
        let Some(want) = marker[key].as_str() else { return Ok(false) };
        if !p.is_file() || regmix_core::digest::sha256_file(&p)? != want {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes `path` if it is there.
fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

pub fn run(args: &Args) -> Result<()> {
    regmix_core::atomic::refuse_overlap(&args.output, "--output", &[("--shards", args.shards.as_path())])?;
    let corpus = Corpus::open(&args.shards)?;
    let _lock = regmix_core::lock::Lock::output(
        &args.output.join("index"),
        &format!("{} (export-megatron's output)", args.output.display()),
    )?;
    let ty = TokenType::for_vocabulary(corpus.vocab_size);
    if ty == TokenType::I32 && corpus.vocab_size > i32::MAX as usize {
        bail!("a vocabulary of {} does not fit Megatron's int32 tokens", corpus.vocab_size);
    }
    std::fs::create_dir_all(args.output.join(".done"))
        .with_context(|| format!("creating {}", args.output.display()))?;
    std::fs::create_dir_all(args.output.join("valid"))
        .with_context(|| format!("creating {}", args.output.display()))?;
    regmix_core::atomic::clean_stale(&args.output)?;
    regmix_core::atomic::clean_stale(&args.output.join("valid"))?;
    let mut blend = Vec::new();
    for (d, domain) in corpus.domains.iter().enumerate() {
        for (split, stream) in [("train", &corpus.train[d]), ("valid", &corpus.valid[d])] {
            let p = prefix(&args.output, split, domain);
            let m = marker(&args.output, split, domain);
            let done =
                std::fs::read_to_string(&m).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
            if stream.is_empty() {
                // No text in this split (a small domain's validation): no files, and none of
                // an earlier export left behind.
                if done.is_some() {
                    for f in [p.with_extension("bin"), p.with_extension("idx"), m.clone()] {
                        remove_if_present(&f)?;
                    }
                }
                log::warn!("{domain} ({split}): no {split} text, so no {}.{{bin,idx}} (an empty indexed dataset is one Megatron cannot open)", p.display());
                continue;
            }
            let want = serde_json::json!({"shards_sha256": corpus.shards_sha256, "tokens": stream.len(), "token_type_code": ty.code()});
            let same_shards = done
                .as_ref()
                .is_some_and(|v| ["shards_sha256", "tokens", "token_type_code"].iter().all(|k| v[*k] == want[*k]));
            if same_shards && pair_matches(&p, done.as_ref().expect("checked"))? {
                log::info!("{domain} ({split}): already exported from these shards, skipped");
                continue;
            }
            if same_shards {
                log::warn!("{domain} ({split}): {}.{{bin,idx}} are not the files its marker records (replaced, or left by a killed export): exporting again", p.display());
            }
            // The marker goes first: until the pair is whole again, nothing claims it is.
            remove_if_present(&m)?;
            let e = export_stream(stream, corpus.eos_id, ty, &p)?;
            let record = Marker {
                domain: Some(domain.clone()),
                split: Some(split.to_string()),
                shards_sha256: corpus.shards_sha256.clone(),
                tokenizer_sha256: Some(corpus.tokenizer_sha256.clone()),
                tokens: stream.len(),
                token_type_code: ty.code(),
                documents: e.documents,
                bin_sha256: e.bin_sha256,
                idx_sha256: e.idx_sha256,
            };
            record.write(&m)?;
            log::info!(
                "{domain} ({split}): {} documents, {} tokens → {}.{{bin,idx}}",
                e.documents,
                e.tokens,
                p.display()
            );
        }
        blend.push(domain.clone());
    }
    log::info!(
        "wrote {} domains under {}; optimize --megatron-prefix {}/ names them in its --data-path blend",
        blend.len(),
        args.output.display(),
        args.output.display()
    );
    Ok(())
}
