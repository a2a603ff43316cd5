//! export-megatron on the tests' corpus: the index read back by the format's own rules (the
//! layout of megatron-core's `_IndexReader`) gives every document of every shard, token for
//! token; a rerun skips; `--help` is golden. (tests/read-in-megatron.py reads the same files with
//! megatron-core's `IndexedDataset` where torch and megatron-core are installed.)

#[path = "../../regmix-train/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

use regmix_train::data::Corpus;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_export-megatron"))
}

/// The index as megatron-core's `_IndexReader` reads it: dtype code, lengths, pointers, document
/// indices.
struct Index {
    code: u8,
    lengths: Vec<i32>,
    pointers: Vec<i64>,
    documents: Vec<i64>,
}

fn read_index(p: &Path) -> Index {
    let b = std::fs::read(p).unwrap();
    assert_eq!(&b[..9], b"MMIDIDX\x00\x00");
    assert_eq!(u64::from_le_bytes(b[9..17].try_into().unwrap()), 1);
    let code = b[17];
    let n = u64::from_le_bytes(b[18..26].try_into().unwrap()) as usize;
    let docs = u64::from_le_bytes(b[26..34].try_into().unwrap()) as usize;
    let mut at = 34;
    let lengths = (0..n).map(|i| i32::from_le_bytes(b[at + 4 * i..at + 4 * i + 4].try_into().unwrap())).collect();
    at += 4 * n;
    let pointers = (0..n).map(|i| i64::from_le_bytes(b[at + 8 * i..at + 8 * i + 8].try_into().unwrap())).collect();
    at += 8 * n;
    let documents = (0..docs).map(|i| i64::from_le_bytes(b[at + 8 * i..at + 8 * i + 8].try_into().unwrap())).collect();
    assert_eq!(at + 8 * docs, b.len(), "{}: bytes after the document indices", p.display());
    Index { code, lengths, pointers, documents }
}

#[test]
fn help_matches_golden() {
    let out = bin().arg("--help").output().unwrap();
    regmix_core::cli::check_golden(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/help.txt"),
        &String::from_utf8(out.stdout).unwrap(),
    );
}

#[test]
fn every_document_of_every_shard_reads_back_token_for_token() {
    let shards = common::shards();
    let corpus = Corpus::open(shards).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("megatron");
    let o = bin().arg("--shards").arg(shards).arg("--output").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (d, domain) in corpus.domains.iter().enumerate() {
        for (split, stream, prefix) in
            [("train", &corpus.train[d], out.join(domain)), ("valid", &corpus.valid[d], out.join("valid").join(domain))]
        {
            let idx = read_index(&prefix.with_extension("idx"));
            assert_eq!(idx.code, 8, "uint16 for a vocabulary of {}", corpus.vocab_size);
            let data = std::fs::read(prefix.with_extension("bin")).unwrap();
            let tokens: Vec<u32> = data.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u32).collect();
            let mut want = vec![0u32; stream.len() as usize];
            stream.read(0, &mut want);
            assert_eq!(tokens, want, "{domain} ({split})");
            // One sequence per document, each ending with the end-of-document token.
            assert_eq!(idx.documents, (0..=idx.lengths.len() as i64).collect::<Vec<_>>());
            let mut at = 0i64;
            for (l, p) in idx.lengths.iter().zip(&idx.pointers) {
                assert_eq!(*p, at * 2);
                at += *l as i64;
                assert_eq!(
                    tokens[at as usize - 1],
                    corpus.eos_id,
                    "{domain} ({split}): a sequence that does not end a document"
                );
            }
            assert_eq!(at as usize, tokens.len());
            assert!(idx.lengths.len() > 1, "{domain} ({split}): {} documents", idx.lengths.len());
        }
    }
    // A rerun from the same shards skips every domain.
    let o = bin().arg("--shards").arg(shards).arg("--output").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("already exported from these shards, skipped").count(), 2 * corpus.domains.len(), "{err}");
}
