//! Token shards: uncompressed Arrow IPC files of one `tokens` column, written batch by batch
//! (memory stays bounded) and read back memory-mapped without copying.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type};
use arrow_array::{ArrayRef, RecordBatch, UInt16Array, UInt32Array};
use arrow_buffer::Buffer;
use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::reader::{read_footer_length, FileDecoder};
use arrow_ipc::writer::FileWriter;
use arrow_ipc::{root_as_footer, Block};
use arrow_schema::{DataType, Schema as ArrowSchema};

use crate::atomic::AtomicFile;
use crate::schema::{identity, Lists, Schema};
use crate::{Error, Provenance, Result};

/// Tokens per record batch: 1M tokens is 2 MB of `uint16`.
pub const BATCH_TOKENS: usize = 1 << 20;

/// The token type a vocabulary needs.
pub fn token_type(vocab_size: usize) -> DataType {
    if vocab_size <= 1 << 16 {
        DataType::UInt16
    } else {
        DataType::UInt32
    }
}

/// Writes one shard: push tokens, then [`ShardWriter::finish`] renames it into place.
pub struct ShardWriter {
    path: PathBuf,
    dtype: DataType,
    buf: Vec<u32>,
    writer: Option<FileWriter<AtomicFile>>,
    schema: Arc<ArrowSchema>,
    tokens: u64,
}

impl ShardWriter {
    /// `metadata` must hold the token_shard schema's keys (domain, split, tokenizer, eos).
    pub fn create(path: &Path, dtype: DataType, metadata: &[(String, String)], prov: &Provenance) -> Result<Self> {
        let contract = Schema::get("token_shard");
        let mut types = HashMap::new();
        types.insert("tokens".to_string(), dtype.clone());
        let mut md: HashMap<String, String> = identity(contract).into_iter().collect();
        md.extend(prov.to_metadata());
        md.extend(metadata.iter().cloned());
        let schema = Arc::new(contract.arrow_schema_with(&Lists::new(), &types).with_metadata(md.clone()));
        contract.check(path, &schema, &md)?;
        let file = AtomicFile::create(path)?;
        let writer = FileWriter::try_new(file, &schema).map_err(|e| Error::format(path, "arrow ipc", e))?;
        Ok(ShardWriter {
            path: path.to_path_buf(),
            dtype,
            buf: Vec::with_capacity(BATCH_TOKENS),
            writer: Some(writer),
            schema,
            tokens: 0,
        })
    }

    pub fn push(&mut self, tokens: &[u32]) -> Result<()> {
        let mut rest = tokens;
        while !rest.is_empty() {
            let take = (BATCH_TOKENS - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == BATCH_TOKENS {
                self.flush_batch()?;
            }
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let col: ArrayRef = match self.dtype {
            DataType::UInt16 => {
                let mut v = Vec::with_capacity(self.buf.len());
                for &t in &self.buf {
                    let t16 = u16::try_from(t).map_err(|_| {
                        Error::Invalid(format!("{}: token id {t} does not fit uint16", self.path.display()))
                    })?;
                    v.push(t16);
                }
                Arc::new(UInt16Array::from(v))
            }
            _ => Arc::new(UInt32Array::from(std::mem::take(&mut self.buf))),
        };
        self.tokens += col.len() as u64;
        self.buf.clear();
        let batch = RecordBatch::try_new(self.schema.clone(), vec![col])
            .map_err(|e| Error::format(&self.path, "arrow ipc", e))?;
        self.writer
            .as_mut()
            .expect("write after finish")
            .write(&batch)
            .map_err(|e| Error::format(&self.path, "arrow ipc", e))
    }

    /// Tokens pushed so far.
    pub fn tokens(&self) -> u64 {
        self.tokens + self.buf.len() as u64
    }

    /// Writes the last batch and the footer, and renames the file into place.
    pub fn finish(mut self) -> Result<u64> {
        self.flush_batch()?;
        let mut w = self.writer.take().unwrap();
        w.finish().map_err(|e| Error::format(&self.path, "arrow ipc", e))?;
        let file = w.into_inner().map_err(|e| Error::format(&self.path, "arrow ipc", e))?;
        file.commit()?;
        Ok(self.tokens)
    }
}

/// What an index (the manifest) says of one shard, for [`TokenShard::check_row`].
pub struct ShardRow<'a> {
    pub domain: &'a str,
    pub split: &'a str,
    pub tokens: u64,
    pub tokenizer_sha256: &'a str,
    /// `uint16` or `uint32`, where the index records it.
    pub token_type: Option<&'a str>,
}

/// A shard, memory-mapped: the token stream is the concatenation of its batches.
pub struct TokenShard {
    pub path: PathBuf,
    pub metadata: HashMap<String, String>,
    /// The type of the `tokens` column (uint16 or uint32).
    pub dtype: DataType,
    chunks: Vec<ArrayRef>,
    starts: Vec<u64>,
    len: u64,
}

impl TokenShard {
    pub fn open(path: &Path) -> Result<Self> {
        // A FIFO would block the open forever, a device map without end: only a regular file
        // (or a link to one) is a shard.
        let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !md.is_file() {
            return Err(Error::format(
                path,
                "token shard",
                "not a regular file (a folder, FIFO or device where a shard should be)",
            ));
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the file is opened read-only and regmix never rewrites a shard in place
        // (writers create a new file and rename it), so the mapping stays valid and unchanged.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let len = mmap.len();
        if len < 10 + 8 || &mmap[..6] != b"ARROW1" || &mmap[len - 6..] != b"ARROW1" {
            return Err(Error::format(path, "token shard", "not an Arrow IPC file (missing ARROW1 magic; truncated?)"));
        }
        let ptr = NonNull::new(mmap.as_ptr() as *mut u8).expect("mmap is non-null");
        // SAFETY: `ptr` points at `len` readable bytes owned by `mmap`, which the Buffer keeps
        // alive through the Arc for as long as any slice of it exists.
        let buffer = unsafe { Buffer::from_custom_allocation(ptr, len, Arc::new(mmap)) };
        let bad = |m: String| Error::format(path, "token shard", m);
        let trailer_start = len - 10;
        let footer_len =
            read_footer_length(buffer[trailer_start..].try_into().unwrap()).map_err(|e| bad(e.to_string()))?;
        if footer_len > trailer_start {
            return Err(bad("footer length exceeds the file".into()));
        }
        let footer = root_as_footer(&buffer[trailer_start - footer_len..trailer_start])
            .map_err(|e| bad(format!("unreadable footer: {e}")))?;
        let fb_schema = footer.schema().ok_or_else(|| bad("no schema in footer".into()))?;
        let schema = try_fb_to_schema(fb_schema).map_err(|e| bad(e.to_string()))?;
        let metadata: HashMap<String, String> = schema.metadata().clone().into();
        Schema::get("token_shard").check(path, &schema, &metadata)?;
        let dtype = schema.field(0).data_type().clone();
        let decoder = FileDecoder::new(Arc::new(schema), footer.version());
        let blocks: Vec<Block> = footer.recordBatches().map(|b| b.iter().copied().collect()).unwrap_or_default();
        let mut chunks = Vec::with_capacity(blocks.len());
        let mut starts = Vec::with_capacity(blocks.len());
        let mut total = 0u64;
        for block in &blocks {
            let block_len = block.bodyLength() as usize + block.metaDataLength() as usize;
            if block.offset() as usize + block_len > len {
                return Err(bad("a record batch lies past the end of the file (truncated?)".into()));
            }
            let data = buffer.slice_with_length(block.offset() as usize, block_len);
            let batch = decoder
                .read_record_batch(block, &data)
                .map_err(|e| bad(e.to_string()))?
                .ok_or_else(|| bad("empty record batch block".into()))?;
            let col = batch.column(0).clone();
            starts.push(total);
            total += col.len() as u64;
            chunks.push(col);
        }
        Ok(TokenShard { path: path.to_path_buf(), metadata, dtype, chunks, starts, len: total })
    }

    /// Checks the shard against the row of the index that lists it (a manifest): its length,
    /// and the domain, split, token type and tokenizer its own metadata records. A shard that
    /// another re-tokenization replaced, or another domain's shard copied in its place, is an
    /// error naming the file and what differs. Costs nothing beyond [`TokenShard::open`].
    pub fn check_row(&self, index: &Path, row: &ShardRow<'_>) -> Result<()> {
        let differs = |what: &str, found: &str, listed: &str| {
            Error::Invalid(format!(
                "{}: {what} {found}, but {} lists it with {what} {listed}: the shard is not the one the manifest describes \
                 (replaced or damaged after tokenization): tokenize again",
                self.path.display(),
                index.display()
            ))
        };
        for (key, what, listed) in [
            (crate::keys::DOMAIN, "domain", row.domain),
            (crate::keys::SPLIT, "split", row.split),
            ("regmix.tokenizer_sha256", "tokenizer sha256", row.tokenizer_sha256),
        ] {
            let found = self.metadata.get(key).map(String::as_str).unwrap_or("");
            if found != listed {
                return Err(differs(what, found, listed));
            }
        }
        if let Some(t) = row.token_type {
            let found = match self.dtype {
                DataType::UInt16 => "uint16",
                DataType::UInt32 => "uint32",
                _ => "another type",
            };
            if found != t {
                return Err(differs("token type", found, t));
            }
        }
        if self.len != row.tokens {
            return Err(differs("tokens", &self.len.to_string(), &row.tokens.to_string()));
        }
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies tokens `[pos, pos + out.len())` into `out`.
    pub fn read(&self, pos: u64, out: &mut [u32]) {
        assert!(pos + out.len() as u64 <= self.len, "read past the end of {}", self.path.display());
        let mut ci = match self.starts.binary_search(&pos) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let mut off = (pos - self.starts[ci]) as usize;
        let mut written = 0;
        while written < out.len() {
            let chunk = &self.chunks[ci];
            let n = (chunk.len() - off).min(out.len() - written);
            match chunk.data_type() {
                DataType::UInt16 => {
                    let v = chunk.as_primitive::<UInt16Type>().values();
                    for (o, &t) in out[written..written + n].iter_mut().zip(&v[off..off + n]) {
                        *o = t as u32;
                    }
                }
                _ => {
                    let v = chunk.as_primitive::<UInt32Type>().values();
                    out[written..written + n].copy_from_slice(&v[off..off + n]);
                }
            }
            written += n;
            ci += 1;
            off = 0;
        }
    }

    /// All tokens (for tests and small shards).
    pub fn to_vec(&self) -> Vec<u32> {
        let mut v = vec![0; self.len as usize];
        self.read(0, &mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md() -> Vec<(String, String)> {
        vec![
            (crate::keys::DOMAIN.into(), "web".into()),
            (crate::keys::SPLIT.into(), "train".into()),
            ("regmix.tokenizer_sha256".into(), "00".into()),
            (crate::keys::EOS_ID.into(), "0".into()),
        ]
    }

    #[test]
    fn shard_round_trips_across_batch_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.arrow");
        let prov = Provenance::new("test", "0", &[]);
        let mut w = ShardWriter::create(&p, DataType::UInt16, &md(), &prov).unwrap();
        let toks: Vec<u32> = (0..(BATCH_TOKENS as u32 * 2 + 17)).map(|i| i % 65000).collect();
        for c in toks.chunks(333_333) {
            w.push(c).unwrap();
        }
        assert_eq!(w.finish().unwrap(), toks.len() as u64);
        let s = TokenShard::open(&p).unwrap();
        assert_eq!(s.len(), toks.len() as u64);
        let mut window = vec![0u32; 100];
        let at = BATCH_TOKENS as u64 - 50;
        s.read(at, &mut window);
        assert_eq!(&window[..], &toks[at as usize..at as usize + 100]);
        assert_eq!(s.to_vec(), toks);
    }

    #[test]
    fn uint16_shard_rejects_a_token_that_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.arrow");
        let mut w = ShardWriter::create(&p, DataType::UInt16, &md(), &Provenance::new("t", "0", &[])).unwrap();
        w.push(&[70_000]).unwrap();
        assert!(w.finish().is_err());
        assert!(!p.exists(), "no shard may be left under its final name");
    }

    #[test]
    fn a_shard_that_is_not_the_one_its_manifest_row_lists_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.arrow");
        let mut w = ShardWriter::create(&p, DataType::UInt16, &md(), &Provenance::new("t", "0", &[])).unwrap();
        w.push(&[1, 2, 3]).unwrap();
        w.finish().unwrap();
        let s = TokenShard::open(&p).unwrap();
        let idx = dir.path().join("manifest.parquet");
        let row =
            ShardRow { domain: "web", split: "train", tokens: 3, tokenizer_sha256: "00", token_type: Some("uint16") };
        s.check_row(&idx, &row).unwrap();
        let e = |r: ShardRow| s.check_row(&idx, &r).unwrap_err().to_string();
        assert!(
            e(ShardRow { tokens: 4, ..row }).contains("s.arrow: tokens 3, but"),
            "{}",
            e(ShardRow { tokens: 4, ..row })
        );
        assert!(e(ShardRow { domain: "code", ..row }).contains("domain web, but"));
        assert!(e(ShardRow { split: "valid", ..row }).contains("split train, but"));
        assert!(e(ShardRow { tokenizer_sha256: "ff", ..row }).contains("tokenizer sha256 00, but"));
        assert!(e(ShardRow { token_type: Some("uint32"), ..row }).contains("token type uint16, but"));
    }

    #[test]
    fn truncated_shard_is_rejected_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.arrow");
        let mut w = ShardWriter::create(&p, DataType::UInt32, &md(), &Provenance::new("t", "0", &[])).unwrap();
        w.push(&[1, 2, 3]).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 20]).unwrap();
        let e = TokenShard::open(&p).err().unwrap().to_string();
        assert!(e.contains("s.arrow"), "{e}");
    }
}
