//! An `export-megatron` folder's layout and completion markers, in one place: the exporter
//! writes them, and `optimize --megatron-prefix` checks the blend it names against them (as
//! [`crate::run`] is the one description of a run folder).
//!
//! ```text
//! <output>/<domain>.bin, <domain>.idx              the train split (what a blend names)
//! <output>/valid/<domain>.bin, <domain>.idx        the validation split
//! <output>/.done/<split>-<domain>.json             completion marker, written last
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The folder of completion markers under an export.
pub const MARKERS: &str = ".done";

/// The files of one domain and split under `output` (`.bin` and `.idx` are its extensions).
pub fn prefix(output: &Path, split: &str, domain: &str) -> PathBuf {
    if split == "train" {
        output.join(domain)
    } else {
        output.join(split).join(domain)
    }
}

/// The completion marker of one domain and split.
pub fn marker(output: &Path, split: &str, domain: &str) -> PathBuf {
    output.join(MARKERS).join(format!("{split}-{domain}.json"))
}

/// What a completion marker records: the shards the pair was exported from and both files'
/// sha256. `domain`, `split` and `tokenizer_sha256` are absent from markers written before
/// they were recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// The shards' identity (regmix-train's `Corpus::shards_sha256`, as runs record it).
    pub shards_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer_sha256: Option<String>,
    pub tokens: u64,
    /// Megatron's dtype code of the `.bin`'s tokens (8: uint16, 4: int32).
    pub token_type_code: u8,
    pub documents: u64,
    pub bin_sha256: String,
    pub idx_sha256: String,
}

impl Marker {
    /// Reads a marker; an error names the file.
    pub fn read(path: &Path) -> Result<Marker> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::format(path, "export-megatron marker", e))
    }

    /// Writes the marker atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::atomic::write_bytes(path, serde_json::to_string(self).expect("a marker serialises").as_bytes())
    }

    /// Bytes per token of the `.bin`, from its dtype code.
    pub fn token_bytes(&self) -> Option<u64> {
        match self.token_type_code {
            8 => Some(2),
            4 => Some(4),
            _ => None,
        }
    }
}

/// What a blend's export must be: the fit's domains, and the data its runs trained on where
/// that is recorded (imported results record none).
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub domains: &'a [String],
    pub shards_sha256: Option<&'a str>,
    pub tokenizer_sha256: Option<&'a str>,
    /// Where the expectation comes from, for the errors ("the fit's dataset data/dataset.parquet").
    pub source: &'a str,
}

/// The outcome of [`check_prefix`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// The export was found here and every domain's marker matched.
    Matched { folder: PathBuf },
    /// Nothing the prefix names exists here (a path on the cluster): not checked.
    NotHere,
}

/// A Megatron `--data-path` prefix (path = prefix + domain) split into the folder and the start
/// of the file names: `data/megatron/` → (`data/megatron`, ``), `data/pile_` → (`data`, `pile_`).
pub fn split_prefix(prefix: &str) -> (PathBuf, String) {
    if prefix.ends_with('/') {
        let folder = prefix.trim_end_matches('/');
        return (PathBuf::from(if folder.is_empty() { "/" } else { folder }), String::new());
    }
    let p = Path::new(prefix);
    let folder = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    (folder, p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

/// Checks the export a blend's `prefix` names against `want`: when any file the blend names
/// (`<prefix><domain>.bin/.idx`) or the export's marker folder exists here, every domain of the
/// fit must have its marker (written last by export-megatron, so a missing one is an export
/// that did not finish), recording that domain, the train split, the shards and tokenizer the
/// fit's runs trained on (where both sides record them), and a `.bin` of the recorded size; and
/// the export must hold no domain the fit lacks. Errors name the file. When nothing of it is
/// here (a cluster path), [`Checked::NotHere`].
pub fn check_prefix(prefix: &str, want: &Expected) -> Result<Checked> {
    let (folder, stem) = split_prefix(prefix);
    let file = |d: &str, ext: &str| PathBuf::from(format!("{prefix}{d}.{ext}"));
    let markers = folder.join(MARKERS);
    let any_named = want.domains.iter().any(|d| file(d, "bin").exists() || file(d, "idx").exists());
    let no_slash = !prefix.is_empty() && !prefix.ends_with('/') && Path::new(prefix).join(MARKERS).is_dir();
    if !any_named && no_slash {
        return Err(Error::Invalid(format!(
            "--megatron-prefix {prefix}: names {prefix}<domain>.bin, but {prefix} is an export folder (it holds {MARKERS}/): give {prefix}/"
        )));
    }
    if !any_named && !(stem.is_empty() && markers.is_dir()) {
        return Ok(Checked::NotHere);
    }
    let what = format!("--megatron-prefix {prefix}");
    for d in want.domains {
        let name = format!("{stem}{d}");
        let m = marker(&folder, "train", &name);
        if !m.is_file() {
            return Err(Error::Invalid(format!(
                "{}: no such file: {what} names {prefix}{d}.{{bin,idx}}, whose export-megatron marker is missing (an export that did not \
                 finish, or not export-megatron's): export the shards the fit's runs trained on (export-megatron --output {})",
                m.display(),
                folder.display()
            )));
        }
        let k = Marker::read(&m)?;
        let mismatch = |field: &str, found: &str, expected: &str| {
            Error::Invalid(format!(
                "{}: {what}: the export of {d} records {field} {found}, but {} has {expected}: the export is not of the data the fit's runs \
                 trained on (export the shards they trained on)",
                m.display(),
                want.source
            ))
        };
        if let Some(kd) = &k.domain {
            if *kd != name {
                return Err(mismatch("domain", kd, &name));
            }
        }
        if let Some(ks) = &k.split {
            if ks != "train" {
                return Err(mismatch("split", ks, "train"));
            }
        }
        if let Some(s) = want.shards_sha256 {
            if k.shards_sha256 != s {
                return Err(mismatch("shards sha256", short(&k.shards_sha256), short(s)));
            }
        }
        if let (Some(t), Some(kt)) = (want.tokenizer_sha256, &k.tokenizer_sha256) {
            if kt != t {
                return Err(mismatch("tokenizer sha256", short(kt), short(t)));
            }
        }
        let idx = file(d, "idx");
        if !idx.is_file() {
            return Err(Error::Invalid(format!(
                "{}: no such file, though {} records its export ({what})",
                idx.display(),
                m.display()
            )));
        }
        let bin = file(d, "bin");
        let size = std::fs::metadata(&bin).map_err(|e| Error::io(&bin, e))?.len();
        if let Some(b) = k.token_bytes() {
            if size != k.tokens * b {
                return Err(Error::Invalid(format!(
                    "{}: {size} bytes, but {} records {} tokens of {b} bytes: the file is not the one exported ({what})",
                    bin.display(),
                    m.display(),
                    k.tokens
                )));
            }
        }
    }
    // Domains the export holds that the fit does not: an export of another corpus.
    let mut extra = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&markers) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let Some(name) = n.strip_prefix("train-").and_then(|r| r.strip_suffix(".json")) else { continue };
            let Some(d) = name.strip_prefix(stem.as_str()) else { continue };
            if !want.domains.iter().any(|x| x == d) {
                extra.push(d.to_string());
            }
        }
    }
    if !extra.is_empty() {
        extra.sort();
        return Err(Error::Invalid(format!(
            "{}: {what}: the export holds domains the fit does not have ({}; the fit's: {}): it is not an export of the shards the fit's \
             runs trained on",
            markers.display(),
            extra.join(", "),
            want.domains.join(", ")
        )));
    }
    Ok(Checked::Matched { folder })
}

fn short(s: &str) -> &str {
    &s[..12.min(s.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_splits_into_its_folder_and_the_start_of_the_names() {
        assert_eq!(split_prefix("data/megatron/"), (PathBuf::from("data/megatron"), String::new()));
        assert_eq!(split_prefix("data/pile_"), (PathBuf::from("data"), "pile_".to_string()));
        assert_eq!(split_prefix("pile_"), (PathBuf::from("."), "pile_".to_string()));
        assert_eq!(split_prefix("/"), (PathBuf::from("/"), String::new()));
        assert_eq!(split_prefix("/scratch/m/"), (PathBuf::from("/scratch/m"), String::new()));
    }

    #[test]
    fn a_marker_written_before_domain_and_tokenizer_were_recorded_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train-web.json");
        std::fs::write(
            &p,
            r#"{"shards_sha256":"s","tokens":4,"token_type_code":8,"documents":1,"bin_sha256":"b","idx_sha256":"i"}"#,
        )
        .unwrap();
        let m = Marker::read(&p).unwrap();
        assert_eq!((m.token_bytes(), m.domain, m.tokenizer_sha256), (Some(2), None, None));
        std::fs::write(&p, "{").unwrap();
        assert!(Marker::read(&p).unwrap_err().to_string().contains("train-web.json"));
    }
}
