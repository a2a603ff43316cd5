//! Training data: each domain's token stream (its shards, memory-mapped, concatenated),
//! the mixture sampler, and the fixed validation windows.
//!
//! A training sequence is a window of `context + 1` tokens: its domain is drawn with
//! probability `weight.<domain>`, its start uniformly over the domain's train stream. All
//! randomness of step `s` comes from `ChaCha8(hash(seed, mixture_id, s))`, so a step's batch
//! is a pure function of those three numbers: a resumed run sees the same data.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use regmix_core::schema::Schema;
use regmix_core::shard::{ShardRow, TokenShard};
use regmix_core::table::read_parquet;

/// One domain's stream in one split: shards in manifest order, concatenated.
pub struct Stream {
    shards: Vec<TokenShard>,
    starts: Vec<u64>,
    len: u64,
}

impl Stream {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies tokens `[pos, pos + out.len())` of the concatenated stream into `out`.
    pub fn read(&self, mut pos: u64, mut out: &mut [u32]) {
        assert!(pos + out.len() as u64 <= self.len, "read past the end of the stream");
        let mut i = self.starts.partition_point(|&s| s <= pos) - 1;
        while !out.is_empty() {
            let shard = &self.shards[i];
            let local = pos - self.starts[i];
            let take = ((shard.len() - local) as usize).min(out.len());
            let (head, tail) = out.split_at_mut(take);
            shard.read(local, head);
            out = tail;
            pos += take as u64;
            i += 1;
        }
    }
}

/// The tokenized corpus as tokenize-shard left it.
pub struct Corpus {
    pub dir: PathBuf,
    pub domains: Vec<String>,
    pub train: Vec<Stream>,
    pub valid: Vec<Stream>,
    pub vocab_size: usize,
    pub eos_id: u32,
    /// sha256 of tokenizer.json, as the manifest records it and the file is checked to be.
    pub tokenizer_sha256: String,
    /// The shards' identity: sha256 over the manifest's rows, vocabulary, EOS and tokenizer.
    pub shards_sha256: String,
}

impl Corpus {
    /// Opens `dir/manifest.parquet` and memory-maps every shard it lists, each checked against
    /// its manifest row (length, domain, split, token type, tokenizer: see
    /// [`TokenShard::check_row`]), so a manifest left over shards it no longer describes is an
    /// error naming the shard.
    pub fn open(dir: &Path) -> Result<Corpus> {
        let manifest = dir.join("manifest.parquet");
        let t = read_parquet(&manifest, Schema::get("shard_manifest"))?;
        if t.rows() == 0 {
            bail!("{}: the manifest is empty: it lists no shards (tokenize again)", manifest.display());
        }
        let md = |k: &str| -> Result<String> {
            t.metadata.get(k).cloned().with_context(|| format!("{}: metadata key {k} missing", manifest.display()))
        };
        let vocab_size: usize = md(regmix_core::keys::VOCAB_SIZE)?
            .parse()
            .with_context(|| format!("{}: regmix.vocab_size is not a number", manifest.display()))?;
        let eos_id: u32 = md(regmix_core::keys::EOS_ID)?
            .parse()
            .with_context(|| format!("{}: regmix.eos_id is not a number", manifest.display()))?;
        let (dom, split, file) = (t.str("domain")?, t.str("split")?, t.str("file")?);
        let mut domains: Vec<String> = (0..t.rows()).map(|i| dom.value(i).to_string()).collect();
        domains.sort();
        domains.dedup();
        let mut train: Vec<Vec<TokenShard>> = domains.iter().map(|_| Vec::new()).collect();
        let mut valid: Vec<Vec<TokenShard>> = domains.iter().map(|_| Vec::new()).collect();
        let tokenizer_sha256 = md("regmix.tokenizer_sha256")?;
        let token_type = md(regmix_core::keys::TOKEN_TYPE)?;
        let listed = t.u64("tokens")?;
        for i in 0..t.rows() {
            let d = domains.binary_search(&dom.value(i).to_string()).expect("collected above");
            let path = dir.join(file.value(i));
            let shard = TokenShard::open(&path)
                .with_context(|| format!("{} row {i}: shard {}", manifest.display(), path.display()))?;
            let row = ShardRow {
                domain: dom.value(i),
                split: split.value(i),
                tokens: listed.value(i),
                tokenizer_sha256: &tokenizer_sha256,
                token_type: Some(&token_type),
            };
            shard.check_row(&manifest, &row).with_context(|| format!("{} row {i}", manifest.display()))?;
            match split.value(i) {
                "train" => train[d].push(shard),
                "valid" => valid[d].push(shard),
                other => bail!("{} row {i}: split {other:?} is neither \"train\" nor \"valid\"", manifest.display()),
            }
        }
        let stream = |shards: Vec<TokenShard>| {
            let mut starts = Vec::with_capacity(shards.len());
            let mut len = 0;
            for s in &shards {
                starts.push(len);
                len += s.len();
            }
            Stream { shards, starts, len }
        };
        // The tokenizer beside the shards must be the one they were made with: a replaced
        // tokenizer.json would give every export the wrong vocabulary.
        let tok_path = dir.join("tokenizer.json");
        let found = regmix_core::digest::sha256_file(&tok_path)?;
        if found != tokenizer_sha256 {
            bail!(
                "{}: sha256 {}…, but {} records the tokenizer the shards were made with as {}…: \
                 the shards and the tokenizer do not belong together (tokenize again, or restore tokenizer.json)",
                tok_path.display(),
                &found[..12],
                manifest.display(),
                &tokenizer_sha256[..12.min(tokenizer_sha256.len())]
            );
        }
        let (docs, toks) = (t.u64("documents")?, t.u64("tokens")?);
        let mut identity = format!("vocab {vocab_size}\neos {eos_id}\ntokenizer {tokenizer_sha256}\n");
        for i in 0..t.rows() {
            identity.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                dom.value(i),
                split.value(i),
                file.value(i),
                docs.value(i),
                toks.value(i)
            ));
        }
        Ok(Corpus {
            dir: dir.to_path_buf(),
            domains,
            train: train.into_iter().map(stream).collect(),
            valid: valid.into_iter().map(stream).collect(),
            vocab_size,
            eos_id,
            tokenizer_sha256,
            shards_sha256: regmix_core::digest::sha256(identity.as_bytes()),
        })
    }

    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
}

/// Draws training windows for one mixture.
pub struct MixtureSampler {
    /// Cumulative weights over the corpus's domains (last = 1).
    cumulative: Vec<f64>,
    seed: u64,
    mixture_id: u64,
    window: usize,
    /// Per domain: the part of its stream windows are drawn from (None: all of it).
    subsets: Vec<Option<Subset>>,
}

/// A domain's stream cut to `chunks` evenly spaced pieces of `chunk_len` tokens, `stride`
/// apart: a smaller stream spread over the whole domain (a prefix would be one corner of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subset {
    pub chunks: u64,
    pub chunk_len: u64,
    pub stride: u64,
}

impl Subset {
    pub fn tokens(&self) -> u64 {
        self.chunks * self.chunk_len
    }
}

/// The most pieces a matched subset is cut into.
pub const SUBSET_CHUNKS: u64 = 64;

/// What repetition matching did to one domain.
#[derive(Clone, Debug, PartialEq)]
pub struct Matched {
    pub domain: usize,
    /// Times the target would repeat the domain, and tokens the proxy now draws from.
    pub target_epochs: f64,
    pub subset_tokens: u64,
}

/// Where a training window comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    pub domain: usize,
    pub start: u64,
}

impl MixtureSampler {
    /// `weights` are aligned to `corpus.domains`. Every domain with positive weight must hold
    /// at least one window of `context + 1` tokens.
    pub fn new(corpus: &Corpus, weights: &[f64], context: usize, seed: u64, mixture_id: u64) -> Result<Self> {
        assert_eq!(weights.len(), corpus.domains.len());
        let total: f64 = weights.iter().sum();
        if !(total > 0.0) || weights.iter().any(|w| !(*w >= 0.0)) {
            bail!("mixture {mixture_id}: weights must be non-negative with a positive sum");
        }
        for (d, &w) in weights.iter().enumerate() {
            if w > 0.0 && corpus.train[d].len() < context as u64 + 1 {
                bail!(
                    "mixture {mixture_id}: domain {} has weight {w} but only {} training tokens, fewer than one window of {}",
                    corpus.domains[d],
                    corpus.train[d].len(),
                    context + 1
                );
            }
        }
        let mut acc = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        Ok(MixtureSampler { cumulative, seed, mixture_id, window: context + 1, subsets: vec![None; weights.len()] })
    }

    /// Repetition matching: a domain the target (`target_tokens` at these weights) would see
    /// more than once is cut, for this run of `run_tokens`, to a subset of
    /// tokens · run_tokens / target_tokens, so the run repeats it as often as the target would
    /// (a proxy that sees a domain once where the target sees it four times is a biased
    /// witness of it). Domains the target sees at most once are left whole. Returns what was cut.
    pub fn match_epochs(
        &mut self,
        corpus: &Corpus,
        weights: &[f64],
        run_tokens: u64,
        target_tokens: u64,
    ) -> Vec<Matched> {
        let total: f64 = weights.iter().sum();
        let mut out = Vec::new();
        for (d, &w) in weights.iter().enumerate() {
            let n = corpus.train[d].len();
            let epochs = w / total * target_tokens as f64 / n as f64;
            if w <= 0.0 || epochs <= 1.0 || run_tokens >= target_tokens {
                continue;
            }
            let want = ((n as f64 * run_tokens as f64 / target_tokens as f64) as u64).max(self.window as u64);
            let chunks = (want / (2 * self.window as u64)).clamp(1, SUBSET_CHUNKS);
            let chunk_len = (want / chunks).max(self.window as u64);
            let sub = Subset { chunks, chunk_len, stride: n / chunks };
            self.subsets[d] = Some(sub);
            out.push(Matched { domain: d, target_epochs: epochs, subset_tokens: sub.tokens() });
        }
        out
    }

    /// The subset windows of domain `d` are drawn from, if repetition matching cut it.
    pub fn subset(&self, d: usize) -> Option<Subset> {
        self.subsets[d]
    }

    /// The random source of optimizer step `step`: its own stream, (seed, mixture id, step).
    pub fn step_rng(&self, step: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(regmix_core::seed::derive(&[self.seed, self.mixture_id, step]))
    }

    /// One window's domain and start.
    pub fn draw(&self, rng: &mut ChaCha8Rng, corpus: &Corpus) -> Draw {
        let u: f64 = rng.random();
        let mut domain = self.cumulative.partition_point(|&c| c <= u).min(self.cumulative.len() - 1);
        // Rounding can leave the last cumulative weight a hair below 1 and land on a
        // zero-weight domain; step back to the last domain with weight.
        while domain > 0 && self.cumulative[domain] == self.cumulative[domain - 1] {
            domain -= 1;
        }
        let start = match self.subsets[domain] {
            None => rng.random_range(0..=corpus.train[domain].len() - self.window as u64),
            Some(s) => {
                rng.random_range(0..s.chunks) * s.stride + rng.random_range(0..=s.chunk_len - self.window as u64)
            }
        };
        Draw { domain, start }
    }

    /// Fills `draws` with the windows of step `step` (all its micro-batches, in order).
    pub fn draws_for_step(&self, step: u64, corpus: &Corpus, draws: &mut [Draw]) {
        let mut rng = self.step_rng(step);
        for d in draws.iter_mut() {
            *d = self.draw(&mut rng, corpus);
        }
    }

    /// Copies the tokens of `draws` into `out` (`draws.len() × (context + 1)`).
    pub fn fill(&self, corpus: &Corpus, draws: &[Draw], out: &mut [u32]) {
        for (d, w) in draws.iter().zip(out.chunks_mut(self.window)) {
            corpus.train[d.domain].read(d.start, w);
        }
    }
}

/// The fixed validation windows: per domain, up to `per_domain` non-overlapping windows of
/// `context + 1` tokens spread evenly over its validation stream. They depend only on the
/// shards and the context, so every run is evaluated on exactly the same tokens.
pub struct EvalSet {
    pub window: usize,
    /// `starts[d]`: window starts in domain d's validation stream (empty: no validation
    /// text long enough; the domain is not evaluated, see [`EvalSet::evaluated`]).
    pub starts: Vec<Vec<u64>>,
}

impl EvalSet {
    pub fn new(corpus: &Corpus, context: usize, per_domain: usize) -> EvalSet {
        let window = context + 1;
        let starts = corpus
            .valid
            .iter()
            .enumerate()
            .map(|(d, s)| {
                let fit = (s.len() / window as u64) as usize;
                let n = fit.min(per_domain);
                if n == 0 {
                    log::warn!(
                        "domain {}: {} validation tokens, fewer than one window of {window}: it trains as usual but is not evaluated (no valid_loss.{} column)",
                        corpus.domains[d],
                        s.len(),
                        corpus.domains[d]
                    );
                    return Vec::new();
                }
                let stride = s.len() / n as u64;
                (0..n as u64).map(|i| i * stride).collect()
            })
            .collect();
        EvalSet { window, starts }
    }

    pub fn tokens(&self) -> usize {
        self.starts.iter().map(|s| s.len()).sum::<usize>() * (self.window - 1)
    }

    /// Per domain (corpus order): whether it has validation windows. A domain without any (no
    /// validation text, or less than one window of it) is not a validation column: runs
    /// write no `valid_loss.<domain>` for it, and every later stage sees the domains that have one.
    pub fn evaluated(&self) -> Vec<bool> {
        self.starts.iter().map(|s| !s.is_empty()).collect()
    }
}
