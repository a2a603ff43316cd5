//! Reading one input and encoding it into its shards: the records streamed in chunks from a
//! reader thread (`for_each_chunk`, also what `--train-bpe` reads), encoded in parallel, each
//! document appended to the shard of its (domain, split), and the input's marker made.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use regmix_core::shard::{token_type, ShardWriter};
use regmix_core::Provenance;

use crate::input::{self, Record};
use crate::{is_valid_doc, tok, Args, Marker, ShardRow};

/// Documents per chunk handed to the encoder threads, and the text bytes that end a chunk early.
const CHUNK_DOCS: usize = 4096;
const CHUNK_BYTES: usize = 8 << 20;

/// Encodes one input into its shards and logs what it held; returns its marker (not yet
/// written).
pub(crate) fn encode_input(
    args: &Args,
    path: &Path,
    key: &str,
    loaded: &tok::LoadedTokenizer,
    encoder: &tok::Encoder,
    prov: &Provenance,
    identity: (u64, u128),
) -> Result<Marker> {
    let t = Instant::now();
    let m = process_file(args, path, key, loaded, encoder, prov, identity)?;
    let toks: u64 = m.shards.iter().map(|s| s.tokens).sum();
    let docs: u64 = m.shards.iter().map(|s| s.documents).sum();
    log::info!(
        "{}: {docs} documents, {toks} tokens in {} shards ({:.1}s){}",
        path.display(),
        m.shards.len(),
        t.elapsed().as_secs_f64(),
        if m.bad_records > 0 { format!(", {} bad records skipped", m.bad_records) } else { String::new() }
    );
    Ok(m)
}

/// The reader's signal that the consumer stopped early (not an error).
#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reading stopped by the consumer")
    }
}

impl std::error::Error for Stopped {}

/// Streams `path`'s records in chunks from a reader thread to `f`.
pub(crate) fn for_each_chunk(args: &Args, path: &Path, mut f: impl FnMut(Vec<Record>) -> Result<bool>) -> Result<()> {
    let (tx, rx) = sync_channel::<Vec<Record>>(4);
    std::thread::scope(|s| {
        let reader = s.spawn(|| -> Result<()> {
            let mut chunk = Vec::with_capacity(CHUNK_DOCS);
            let mut bytes = 0;
            let res = input::read_records_bounded(
                path,
                &args.text_field,
                &args.domain_from,
                args.max_record_bytes,
                args.skip_bad_records,
                |r| {
                    if let Record::Doc { text, .. } = &r {
                        bytes += text.len();
                    }
                    chunk.push(r);
                    if chunk.len() >= CHUNK_DOCS || bytes >= CHUNK_BYTES {
                        bytes = 0;
                        // The receiver hung up: it has what it needs, stop reading.
                        tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_DOCS)))
                            .map_err(|_| anyhow::Error::new(Stopped))?;
                    }
                    Ok(())
                },
            );
            if !chunk.is_empty() {
                let _ = tx.send(chunk);
            }
            drop(tx);
            match res {
                Err(e) if e.is::<Stopped>() => Ok(()),
                r => r,
            }
        });
        let mut result = Ok(());
        for chunk in rx.iter() {
            match f(chunk) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(rx);
        let read = reader.join().expect("reader thread panicked");
        result.and(read)
    })
}

pub(crate) fn bad_record(args: &Args, path: &Path, line: u64, message: &str, count: &mut u64) -> Result<()> {
    if !args.skip_bad_records {
        bail!("{}:{line}: {message} (use --skip-bad-records to count and skip such records)", path.display());
    }
    *count += 1;
    if *count <= 5 {
        log::warn!("{}:{line}: {message}; skipped", path.display());
    }
    Ok(())
}

/// A record after encoding.
enum Encoded {
    Doc { domain: String, valid: bool, ids: Vec<u32>, bytes: usize },
    Bad { line: u64, message: String },
}

fn process_file(
    args: &Args,
    path: &Path,
    key: &str,
    loaded: &tok::LoadedTokenizer,
    encoder: &tok::Encoder,
    prov: &Provenance,
    (size, mtime_ns): (u64, u128),
) -> Result<Marker> {
    let dtype = token_type(loaded.vocab_size);
    let mut writers: BTreeMap<(String, String), (ShardWriter, ShardRow)> = BTreeMap::new();
    let mut bad = 0u64;
    for_each_chunk(args, path, |chunk| {
        // Encode in parallel, keep document order.
        let encoded: Vec<Result<Encoded>> = chunk
            .into_par_iter()
            .map(|r| match r {
                Record::Doc { line, domain, text } => {
                    let mut ids = Vec::with_capacity(text.len() / 3 + 1);
                    encoder.encode_into(&text, &mut ids).map_err(|e| anyhow!("{}:{line}: {e}", path.display()))?;
                    ids.push(loaded.eos_id);
                    let valid = is_valid_doc(&text, args.valid_fraction);
                    Ok(Encoded::Doc { domain, valid, ids, bytes: text.len() })
                }
                Record::Bad { line, message } => Ok(Encoded::Bad { line, message }),
            })
            .collect();
        for e in encoded {
            let (domain, valid, ids, nbytes) = match e? {
                Encoded::Doc { domain, valid, ids, bytes } => (domain, valid, ids, bytes),
                Encoded::Bad { line, message } => {
                    bad_record(args, path, line, &message, &mut bad)?;
                    continue;
                }
            };
            let split = if valid { "valid" } else { "train" };
            let k = (domain.clone(), split.to_string());
            if !writers.contains_key(&k) {
                let rel = format!("{domain}/{split}/{key}.arrow");
                let md = vec![
                    (regmix_core::keys::DOMAIN.to_string(), domain.clone()),
                    (regmix_core::keys::SPLIT.to_string(), split.to_string()),
                    ("regmix.tokenizer_sha256".to_string(), loaded.sha256.clone()),
                    (regmix_core::keys::EOS_ID.to_string(), loaded.eos_id.to_string()),
                ];
                let w = ShardWriter::create(&args.output.join(&rel), dtype.clone(), &md, prov)?;
                let row = ShardRow {
                    domain: domain.clone(),
                    split: split.into(),
                    file: rel,
                    documents: 0,
                    tokens: 0,
                    bytes: 0,
                };
                writers.insert(k.clone(), (w, row));
            }
            let (w, row) = writers.get_mut(&k).unwrap();
            w.push(&ids)?;
            row.documents += 1;
            row.bytes += nbytes as u64;
        }
        Ok(true)
    })?;
    let mut shards = Vec::new();
    for (_, (w, mut row)) in writers {
        row.tokens = w.finish()?;
        shards.push(row);
    }
    Ok(Marker {
        source: path.display().to_string(),
        size,
        mtime_ns,
        tokenizer_sha256: loaded.sha256.clone(),
        valid_fraction: args.valid_fraction,
        text_field: args.text_field.clone(),
        domain_from: args.domain_from.to_string(),
        bad_records: bad,
        shards,
    })
}
