//! Tokenizers: load a Hugging Face `tokenizer.json`, or train a byte-level BPE; encode
//! documents fast.
//!
//! [`Encoder`] has a fast path for byte-level BPE tokenizers (GPT-2, GPT-NeoX, and the ones
//! `--train-bpe` makes): the GPT-2 pre-tokenizer split with the `regex` crate, the byte-level
//! alphabet, and a per-thread cache from pre-token to ids in front of the BPE merges. It gives
//! ids identical to `Tokenizer::encode` (a test checks this on varied text); any other
//! tokenizer, and any document containing an added token's text, takes the library's path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use regex::Regex;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Model, Tokenizer, TokenizerBuilder};
use unicode_normalization::UnicodeNormalization;

/// The end-of-document token of tokenizers that `--train-bpe` makes.
pub const DEFAULT_EOS: &str = "<|endoftext|>";

/// GPT-2's pre-tokenizer pattern without its look-ahead `\s+(?!\S)`, which
/// [`split_pretokens`] emulates by giving the last whitespace character back.
const PRETOKEN_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// A loaded tokenizer with its identity.
pub struct LoadedTokenizer {
    pub tokenizer: Tokenizer,
    pub sha256: String,
    pub vocab_size: usize,
    pub eos_id: u32,
    pub eos: String,
}

/// Loads `tokenizer.json` and finds its end-of-document token (`eos` if given, else the
/// first of `<|endoftext|>`, `</s>`, `<eos>` it has).
pub fn load(path: &Path, eos: Option<&str>) -> Result<LoadedTokenizer> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let tokenizer =
        Tokenizer::from_bytes(&bytes).map_err(|e| anyhow!("{}: not a valid tokenizer.json: {e}", path.display()))?;
    let sha256 = regmix_core::digest::sha256(&bytes);
    let vocab_size = tokenizer.get_vocab_size(true);
    let candidates: Vec<&str> = match eos {
        Some(e) => vec![e],
        None => vec![DEFAULT_EOS, "</s>", "<eos>", "<|end_of_text|>"],
    };
    let (eos, eos_id) =
        candidates.iter().find_map(|c| tokenizer.token_to_id(c).map(|id| (c.to_string(), id))).ok_or_else(|| {
            anyhow!("{}: no end-of-document token among {candidates:?}; name one with --eos-token", path.display())
        })?;
    Ok(LoadedTokenizer { tokenizer, sha256, vocab_size, eos_id, eos })
}

/// Trains a byte-level BPE of `vocab_size` tokens (with `<|endoftext|>` as id 0) on `texts`
/// and saves it as `out` (atomically).
pub fn train_bpe<I>(vocab_size: usize, texts: I, out: &Path) -> Result<()>
where
    I: Iterator<Item = String> + Send,
{
    if vocab_size < 257 {
        bail!("--train-bpe {vocab_size}: a byte-level BPE needs at least 257 tokens (256 bytes and EOS)");
    }
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(DEFAULT_EOS, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer = TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel>::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)))
        .with_post_processor(Some(ByteLevel::default().trim_offsets(false)))
        .with_decoder(Some(ByteLevel::default()))
        .build()
        .map_err(|e| anyhow!("building the BPE tokenizer: {e}"))?;
    tokenizer.train(&mut trainer, texts).map_err(|e| anyhow!("training the BPE: {e}"))?;
    let json = tokenizer.to_string(false).map_err(|e| anyhow!("serialising the tokenizer: {e}"))?;
    regmix_core::atomic::write_bytes(out, json.as_bytes())?;
    Ok(())
}

/// Whether `tokenizer.json` is a byte-level BPE the fast path reproduces exactly.
fn fast_path_applies(json: &serde_json::Value) -> Result<bool, String> {
    let norm = &json["normalizer"];
    let nfc = match norm {
        serde_json::Value::Null => false,
        v if v["type"] == "NFC" => true,
        _ => return Err(format!("normalizer {}", norm["type"])),
    };
    let pt = &json["pre_tokenizer"];
    let bl = if pt["type"] == "Sequence" {
        match pt["pretokenizers"].as_array() {
            Some(a) if a.len() == 1 => &a[0],
            _ => return Err("pre-tokenizer sequence".into()),
        }
    } else {
        pt
    };
    if bl["type"] != "ByteLevel" || bl["add_prefix_space"] != false || bl["use_regex"] == false {
        return Err(format!("pre-tokenizer {}", bl["type"]));
    }
    let m = &json["model"];
    let empty = |v: &serde_json::Value| v.is_null() || v == "";
    if m["type"] != "BPE"
        || !m["dropout"].is_null()
        || !empty(&m["continuing_subword_prefix"])
        || !empty(&m["end_of_word_suffix"])
        || m["byte_fallback"] == true
    {
        return Err("model options".into());
    }
    Ok(nfc)
}

/// GPT-2's byte → printable character table.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            let c = char::from_u32(256 + n).unwrap();
            n += 1;
            c
        };
    }
    table
}

/// Splits `text` into GPT-2 pre-tokens, calling `f` on each.
pub fn split_pretokens<'t>(re: &Regex, text: &'t str, mut f: impl FnMut(&'t str)) {
    let mut pos = 0;
    while pos < text.len() {
        let m = re.find_at(text, pos).expect("the pattern matches every character");
        debug_assert_eq!(m.start(), pos, "the pattern covers the text without gaps");
        let mut end = m.end();
        let piece = &text[pos..end];
        // `\s+(?!\S)`: a whitespace run followed by a non-space gives its last character to
        // the next pre-token (so " word" keeps its space).
        if end < text.len() && piece.chars().all(char::is_whitespace) {
            let last = piece.chars().next_back().unwrap();
            if piece.len() > last.len_utf8() {
                end -= last.len_utf8();
            }
        }
        f(&text[pos..end]);
        pos = end;
    }
}

thread_local! {
    static CACHE: RefCell<HashMap<Box<str>, Box<[u32]>>> = RefCell::new(HashMap::new());
}

/// Entries per thread before the cache is emptied (memory stays bounded on any input).
const CACHE_LIMIT: usize = 1 << 20;

/// Encodes documents to ids, fast where it can be.
pub struct Encoder {
    tokenizer: Tokenizer,
    fast: Option<Fast>,
    added: Vec<String>,
}

struct Fast {
    re: Regex,
    nfc: bool,
    table: [char; 256],
    bpe: BPE,
}

impl Encoder {
    pub fn new(loaded: &LoadedTokenizer) -> Result<Self> {
        let json: serde_json::Value =
            serde_json::from_str(&loaded.tokenizer.to_string(false).map_err(|e| anyhow!("{e}"))?)?;
        let added = json["added_tokens"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["content"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        let fast = match fast_path_applies(&json) {
            Ok(nfc) => {
                let bpe = match loaded.tokenizer.get_model() {
                    tokenizers::ModelWrapper::BPE(b) => b.clone(),
                    _ => unreachable!("fast_path_applies checked the model type"),
                };
                log::info!("tokenizer: byte-level BPE, fast path{}", if nfc { " with NFC" } else { "" });
                Some(Fast { re: Regex::new(PRETOKEN_PATTERN).unwrap(), nfc, table: bytes_to_unicode(), bpe })
            }
            Err(why) => {
                log::info!("tokenizer: generic path ({why} is outside the byte-level BPE fast path)");
                None
            }
        };
        Ok(Encoder { tokenizer: loaded.tokenizer.clone(), fast, added })
    }

    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// Appends the ids of `text` (no special tokens added) to `out`.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        match &self.fast {
            Some(f) if !self.added.iter().any(|a| memchr::memmem::find(text.as_bytes(), a.as_bytes()).is_some()) => {
                if f.nfc
                    && !unicode_normalization::is_nfc_quick(text.chars()).eq(&unicode_normalization::IsNormalized::Yes)
                {
                    let t: String = text.nfc().collect();
                    return self.encode_fast(f, &t, out);
                }
                self.encode_fast(f, text, out)
            }
            _ => {
                let enc = self.tokenizer.encode_fast(text, false).map_err(|e| anyhow!("encoding: {e}"))?;
                out.extend_from_slice(enc.get_ids());
                Ok(())
            }
        }
    }

    fn encode_fast(&self, f: &Fast, text: &str, out: &mut Vec<u32>) -> Result<()> {
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.len() > CACHE_LIMIT {
                cache.clear();
            }
            let mut err = None;
            let mut mapped = String::new();
            split_pretokens(&f.re, text, |piece| {
                if err.is_some() {
                    return;
                }
                if let Some(ids) = cache.get(piece) {
                    out.extend_from_slice(ids);
                    return;
                }
                mapped.clear();
                mapped.extend(piece.bytes().map(|b| f.table[b as usize]));
                match f.bpe.tokenize(&mapped) {
                    Ok(toks) => {
                        let ids: Box<[u32]> = toks.iter().map(|t| t.id).collect();
                        out.extend_from_slice(&ids);
                        cache.insert(piece.into(), ids);
                    }
                    Err(e) => err = Some(anyhow!("BPE: {e}")),
                }
            });
            err.map_or(Ok(()), Err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &[&str] = &[
        "Hello world! It's a test, isn't it? They'll say we've done 1234 things.",
        "  leading spaces\n\n\nthree newlines\tand\ttabs   trailing   ",
        "def f(x):\n    return x**2  # comment\n\n\nclass A:\n\tpass\n",
        "Ünïcödé — “quotes” naïve café 日本語のテキスト 123abc ½ ² Ⅻ",
        "emoji 🎉🎉 and \u{3000}ideographic space and\u{a0}nbsp",
        "trailing newline\n",
        " ",
        "",
        "a\r\nb\r\n\r\n c",
        "The <|endoftext|> token inside text.",
    ];

    fn tiny_tokenizer(dir: &Path) -> LoadedTokenizer {
        let text: Vec<String> = (0..50).flat_map(|_| SAMPLES.iter().map(|s| s.to_string())).collect();
        let p = dir.join("tokenizer.json");
        train_bpe(400, text.into_iter(), &p).unwrap();
        load(&p, None).unwrap()
    }

    #[test]
    fn fast_path_gives_the_same_ids_as_the_library() {
        let dir = tempfile::tempdir().unwrap();
        let t = tiny_tokenizer(dir.path());
        assert_eq!(t.eos_id, 0);
        let enc = Encoder::new(&t).unwrap();
        assert!(enc.is_fast());
        for s in SAMPLES {
            let mut ours = Vec::new();
            enc.encode_into(s, &mut ours).unwrap();
            // Twice: the second time through the cache.
            let mut again = Vec::new();
            enc.encode_into(s, &mut again).unwrap();
            let lib = t.tokenizer.encode(*s, false).unwrap().get_ids().to_vec();
            assert_eq!(ours, lib, "{s:?}");
            assert_eq!(again, lib, "{s:?} (cached)");
        }
    }

    #[test]
    fn pretokens_cover_the_text_exactly() {
        let re = Regex::new(PRETOKEN_PATTERN).unwrap();
        for s in SAMPLES {
            let mut parts = Vec::new();
            split_pretokens(&re, s, |p| parts.push(p));
            assert_eq!(parts.concat(), *s);
        }
        let mut parts = Vec::new();
        split_pretokens(&re, "a   b", |p| parts.push(p));
        assert_eq!(parts, vec!["a", "  ", " b"]);
    }

    #[test]
    fn too_small_vocabulary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = train_bpe(100, vec!["x".to_string()].into_iter(), &dir.path().join("t.json")).unwrap_err();
        assert!(e.to_string().contains("257"));
    }
}
