//! Reading documents: JSONL (plain, `.gz`, `.zst`), Parquet with a text column, and `.txt`
//! (one document per file). Each document gets its domain from the file name's prefix (the
//! paper's `arxiv-0.jsonl` convention) or from a JSON field (`meta.pile_set_name`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use arrow::array::{Array, AsArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use regmix_core::domain;

/// Where a document's domain comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainFrom {
    /// The file name before its first `-` (`arxiv-0.jsonl` → `arxiv`).
    Prefix,
    /// A dotted path into each JSON record (`meta.pile_set_name`), normalised to a domain name.
    Field(Vec<String>),
}

impl std::str::FromStr for DomainFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "prefix" {
            Ok(DomainFrom::Prefix)
        } else if let Some(path) = s.strip_prefix("field:") {
            if path.is_empty() {
                return Err("field: needs a JSON path, e.g. field:meta.pile_set_name".into());
            }
            Ok(DomainFrom::Field(path.split('.').map(String::from).collect()))
        } else {
            Err(format!("`{s}`: expected `prefix` or `field:JSON.PATH`"))
        }
    }
}

/// The command-line spelling (`prefix`, `field:meta.pile_set_name`): what completion markers
/// record, parsed back by `FromStr`.
impl std::fmt::Display for DomainFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DomainFrom::Prefix => f.write_str("prefix"),
            DomainFrom::Field(path) => write!(f, "field:{}", path.join(".")),
        }
    }
}

impl DomainFrom {
    /// Whether a completion marker's `domain_from` names this rule: its command-line spelling,
    /// or the Rust `Debug` text that markers written before 2026-12-04 hold (`Prefix`,
    /// `Field(["meta", "x"])`), so those inputs are not tokenized again.
    pub fn is_recorded_as(&self, recorded: &str) -> bool {
        let legacy = match self {
            DomainFrom::Prefix => "Prefix".to_string(),
            DomainFrom::Field(path) => {
                format!("Field([{}])", path.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", "))
            }
        };
        recorded == self.to_string() || recorded == legacy
    }
}

/// The domain of a file under `--domain-from prefix`.
pub fn prefix_domain(path: &Path) -> Result<String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let stem = name.split('.').next().unwrap_or("");
    let prefix = stem.split('-').next().unwrap_or("");
    let d = domain::normalize(prefix);
    if d.is_empty() {
        bail!("{}: empty domain: the file name has no prefix before `-` (expected e.g. `web-0.jsonl`)", path.display());
    }
    Ok(d)
}

/// One document, or a bad record with where and why.
pub enum Record {
    Doc { line: u64, domain: String, text: String },
    Bad { line: u64, message: String },
}

/// The kind of an input file, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jsonl,
    Parquet,
    Txt,
}

pub fn kind_of(path: &Path) -> Result<Kind> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let base = name.trim_end_matches(".gz").trim_end_matches(".zst");
    if base.ends_with(".jsonl") {
        Ok(Kind::Jsonl)
    } else if name.ends_with(".parquet") {
        Ok(Kind::Parquet)
    } else if base.ends_with(".txt") {
        Ok(Kind::Txt)
    } else {
        bail!("{}: unknown input type; expected .jsonl[.gz|.zst], .parquet or .txt[.gz|.zst]", path.display())
    }
}

/// Under `--domain-from prefix`, two files whose prefixes differ but normalise to the same
/// domain (`Web-0.jsonl`, `web-1.jsonl`) would be merged silently: an error naming both.
pub fn check_prefix_domains(inputs: &[PathBuf]) -> Result<()> {
    let mut seen: std::collections::BTreeMap<String, (String, &PathBuf)> = Default::default();
    for p in inputs {
        let d = prefix_domain(p)?;
        let raw = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .split('.')
            .next()
            .unwrap_or("")
            .split('-')
            .next()
            .unwrap_or("")
            .to_string();
        match seen.get(&d) {
            Some((r, q)) if *r != raw => bail!(
                "{} and {}: the prefixes `{r}` and `{raw}` are both domain `{d}`; rename one",
                q.display(),
                p.display()
            ),
            Some(_) => {}
            None => {
                seen.insert(d, (raw, p));
            }
        }
    }
    Ok(())
}

/// Refuses an input that is not a regular file (a FIFO would block forever, a device such as
/// `/dev/zero` never ends): an error naming it. Links are followed, so a link to a file is
/// fine and a link to a device is not.
pub fn check_regular(p: &Path) -> Result<()> {
    let md = std::fs::metadata(p).with_context(|| format!("{}: cannot read input", p.display()))?;
    if md.is_file() {
        return Ok(());
    }
    let what = regmix_core::atomic::kind_of(&md.file_type());
    bail!("{}: refusing to read it as an input: it is {what}; give regular files or folders", p.display())
}

/// Expands folders into the input files under them (sorted), keeps files as given. An input
/// given twice (itself, or inside a folder also given) is an error: it would count twice; so
/// is an input that is not a regular file ([`check_regular`]).
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        let md = std::fs::metadata(p).with_context(|| format!("{}: cannot read input", p.display()))?;
        if md.is_dir() {
            let mut found = Vec::new();
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).with_context(|| format!("{}: cannot list", d.display()))? {
                    let e = e?;
                    let path = e.path();
                    if e.file_name().to_string_lossy().starts_with('.') {
                        continue;
                    }
                    if e.file_type()?.is_dir() {
                        stack.push(path);
                    } else if kind_of(&path).is_ok() {
                        check_regular(&path)?;
                        found.push(path);
                    }
                }
            }
            found.sort();
            out.extend(found);
        } else {
            kind_of(p)?;
            check_regular(p)?;
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        bail!("no input files found in {inputs:?}");
    }
    let mut canonical = std::collections::HashMap::new();
    for p in &out {
        let c = std::fs::canonicalize(p).with_context(|| format!("{}: cannot read input", p.display()))?;
        if let Some(q) = canonical.insert(c, p.clone()) {
            bail!("{} is given twice (also as {}): its documents would count twice", p.display(), q.display());
        }
    }
    Ok(out)
}

fn open_decompressed(path: &Path) -> Result<Box<dyn Read + Send>> {
    let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let name = path.to_string_lossy();
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, f)))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(f).with_context(|| format!("{}: not zstd", path.display()))?)
    } else {
        Box::new(f)
    })
}

fn json_path<'v>(v: &'v serde_json::Value, path: &[String]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The default bound on one record: a JSONL line, a Parquet text value or a `.txt` file, in
/// bytes after decompression.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 256 << 20;

fn too_long(max: usize) -> String {
    format!("a record of more than {max} bytes after decompression (--max-record-bytes; split the document or raise the bound)")
}

/// Reads one line (through its `\n`, or to the end) into `buf`, keeping at most `max` bytes.
/// Returns the bytes consumed (0 at the end) and whether the line was longer than `max`; with
/// `stop_when_long` it returns as soon as it is, without reading the rest of the line.
fn read_line_bounded(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
    stop_when_long: bool,
) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut long = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok((consumed, long));
        }
        let (take, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if !long {
            if buf.len() + take > max + 1 {
                long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&avail[..take]);
            }
        }
        r.consume(take);
        consumed += take;
        if done || (long && stop_when_long) {
            return Ok((consumed, long));
        }
    }
}

/// Streams the records of one input file to `sink`, in order, with the default bound on a
/// record's size ([`read_records_bounded`]).
pub fn read_records(
    path: &Path,
    text_field: &str,
    domain_from: &DomainFrom,
    sink: impl FnMut(Record) -> Result<()>,
) -> Result<()> {
    read_records_bounded(path, text_field, domain_from, DEFAULT_MAX_RECORD_BYTES, false, sink)
}

/// Streams the records of one input file to `sink`, in order. I/O errors end the stream with
/// an error; a bad record is passed as [`Record::Bad`] for the caller to reject or count. A
/// record longer than `max_record` bytes (after decompression) is a bad record: memory stays
/// bounded whatever the input holds. With `skip_long`, the rest of a long line is read and
/// dropped so the next record can follow; without it reading stops at the bound (the caller
/// rejects the record anyway).
pub fn read_records_bounded(
    path: &Path,
    text_field: &str,
    domain_from: &DomainFrom,
    max_record: usize,
    skip_long: bool,
    mut sink: impl FnMut(Record) -> Result<()>,
) -> Result<()> {
    let file_domain = match domain_from {
        DomainFrom::Prefix => Some(prefix_domain(path)?),
        DomainFrom::Field(_) => None,
    };
    match kind_of(path)? {
        Kind::Txt => {
            let d = file_domain.ok_or_else(|| anyhow!("{}: .txt input needs --domain-from prefix", path.display()))?;
            let mut bytes = Vec::new();
            open_decompressed(path)?
                .take(max_record as u64 + 1)
                .read_to_end(&mut bytes)
                .with_context(|| format!("{}: read error", path.display()))?;
            if bytes.len() > max_record {
                return sink(Record::Bad { line: 1, message: too_long(max_record) });
            }
            match String::from_utf8(bytes) {
                Ok(text) => sink(Record::Doc { line: 1, domain: d, text }),
                Err(e) => sink(Record::Bad {
                    line: 1,
                    message: format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
                }),
            }
        }
        Kind::Jsonl => {
            let mut r = BufReader::with_capacity(1 << 20, open_decompressed(path)?);
            let mut buf = Vec::new();
            let mut line = 0u64;
            loop {
                buf.clear();
                let (n, long) = read_line_bounded(&mut r, &mut buf, max_record, !skip_long)
                    .with_context(|| format!("{}: read error after line {line}", path.display()))?;
                if n == 0 {
                    break;
                }
                line += 1;
                if long {
                    sink(Record::Bad { line, message: too_long(max_record) })?;
                    if !skip_long {
                        return Ok(());
                    }
                    continue;
                }
                let trimmed = buf.trim_ascii();
                if trimmed.is_empty() {
                    continue;
                }
                let rec = parse_json_record(trimmed, text_field, domain_from, file_domain.as_deref());
                sink(match rec {
                    Ok((domain, text)) => Record::Doc { line, domain, text },
                    Err(message) => Record::Bad { line, message },
                })?;
            }
            Ok(())
        }
        Kind::Parquet => {
            let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
            let b = ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| anyhow!("{}: not a valid Parquet file: {e}", path.display()))?;
            let schema = b.schema().clone();
            let text_idx = schema
                .index_of(text_field)
                .map_err(|_| anyhow!("{}: no column `{text_field}` (use --text-field)", path.display()))?;
            let dom_idx = match domain_from {
                DomainFrom::Field(p) => Some(schema.index_of(&p.join(".")).map_err(|_| {
                    anyhow!(
                        "{}: no column `{}` for --domain-from (Parquet inputs take a top-level column)",
                        path.display(),
                        p.join(".")
                    )
                })?),
                DomainFrom::Prefix => None,
            };
            let reader = b.with_batch_size(4096).build()?;
            let mut line = 0u64;
            for batch in reader {
                let batch = batch.map_err(|e| anyhow!("{}: read error after row {line}: {e}", path.display()))?;
                let texts = batch.column(text_idx);
                let texts = texts.as_string_opt::<i32>().ok_or_else(|| {
                    anyhow!("{}: column `{text_field}` is {}, expected utf8", path.display(), texts.data_type())
                })?;
                let doms = dom_idx.map(|i| batch.column(i).as_string::<i32>().clone());
                for i in 0..batch.num_rows() {
                    line += 1;
                    if texts.is_null(i) {
                        sink(Record::Bad { line, message: format!("`{text_field}` is null") })?;
                        continue;
                    }
                    let d = match (&doms, &file_domain) {
                        (Some(ds), _) if !ds.is_null(i) => domain::normalize(ds.value(i)),
                        (None, Some(d)) => d.clone(),
                        _ => String::new(),
                    };
                    if d.is_empty() {
                        sink(Record::Bad { line, message: "empty domain".into() })?;
                        continue;
                    }
                    if texts.value(i).len() > max_record {
                        sink(Record::Bad { line, message: too_long(max_record) })?;
                        continue;
                    }
                    sink(Record::Doc { line, domain: d, text: texts.value(i).to_string() })?;
                }
            }
            Ok(())
        }
    }
}

fn parse_json_record(
    bytes: &[u8],
    text_field: &str,
    domain_from: &DomainFrom,
    file_domain: Option<&str>,
) -> Result<(String, String), String> {
    let s = std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("malformed JSON: {e}"))?;
    let text = match v.get(text_field) {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(_) => return Err(format!("field `{text_field}` is not a string")),
        None => return Err(format!("missing field `{text_field}`")),
    };
    let domain = match (domain_from, file_domain) {
        (DomainFrom::Prefix, Some(d)) => d.to_string(),
        (DomainFrom::Field(p), _) => match json_path(&v, p) {
            Some(serde_json::Value::String(d)) => domain::normalize(d),
            _ => return Err(format!("missing string field `{}` for the domain", p.join("."))),
        },
        _ => unreachable!(),
    };
    if domain.is_empty() {
        return Err("empty domain".into());
    }
    Ok((domain, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_record_the_domain_rule_as_the_command_line_spells_it_and_read_the_old_debug_text() {
        let field: DomainFrom = "field:meta.pile_set_name".parse().unwrap();
        assert_eq!(DomainFrom::Prefix.to_string(), "prefix");
        assert_eq!(field.to_string(), "field:meta.pile_set_name");
        assert_eq!(field.to_string().parse::<DomainFrom>().unwrap(), field);
        assert!(DomainFrom::Prefix.is_recorded_as("Prefix"));
        assert!(field.is_recorded_as(r#"Field(["meta", "pile_set_name"])"#));
        assert!(field.is_recorded_as(&format!("{field:?}")));
        assert!(!field.is_recorded_as("prefix"));
    }

    #[test]
    fn two_prefixes_of_one_domain_are_refused_and_shards_of_one_prefix_are_not() {
        let p = |s: &str| PathBuf::from(s);
        check_prefix_domains(&[p("in/web-0.jsonl"), p("in/web-1.jsonl"), p("in/code-0.jsonl")]).unwrap();
        let e = check_prefix_domains(&[p("in/web-0.jsonl"), p("in/Web-1.jsonl")]).unwrap_err().to_string();
        assert_eq!(
            e,
            "in/web-0.jsonl and in/Web-1.jsonl: the prefixes `web` and `Web` are both domain `web`; rename one"
        );
    }

    /// Each record's number and its (domain, text) or error.
    type Records = Vec<(u64, Result<(String, String), String>)>;

    fn collect(path: &Path, df: &DomainFrom) -> Records {
        let mut v = Vec::new();
        read_records(path, "text", df, |r| {
            v.push(match r {
                Record::Doc { line, domain, text } => (line, Ok((domain, text))),
                Record::Bad { line, message } => (line, Err(message)),
            });
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn prefix_domain_follows_the_papers_file_names() {
        assert_eq!(prefix_domain(Path::new("/x/arxiv-0.jsonl")).unwrap(), "arxiv");
        assert_eq!(prefix_domain(Path::new("pile_cc-12.jsonl.zst")).unwrap(), "pile_cc");
        assert!(prefix_domain(Path::new("-0.jsonl")).is_err());
    }

    #[test]
    fn bad_lines_are_reported_with_their_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web-0.jsonl");
        let mut bytes = b"{\"text\": \"ok\"}\n{\"text\": \n{\"txt\": \"x\"}\n\n".to_vec();
        bytes.extend_from_slice(b"{\"text\": \"\xff\"}\n{\"text\": 3}\n");
        std::fs::write(&p, bytes).unwrap();
        let r = collect(&p, &DomainFrom::Prefix);
        assert_eq!(r[0], (1, Ok(("web".into(), "ok".into()))));
        assert!(matches!(&r[1], (2, Err(m)) if m.contains("malformed JSON")));
        assert!(matches!(&r[2], (3, Err(m)) if m.contains("missing field `text`")));
        assert!(matches!(&r[3], (5, Err(m)) if m.contains("UTF-8")));
        assert!(matches!(&r[4], (6, Err(m)) if m.contains("not a string")));
    }

    #[test]
    fn domain_from_a_json_field_like_the_pile() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("00.jsonl.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(
            &mut gz,
            b"{\"text\": \"a\", \"meta\": {\"pile_set_name\": \"Pile-CC\"}}\n{\"text\": \"b\", \"meta\": {}}\n",
        )
        .unwrap();
        std::fs::write(&p, gz.finish().unwrap()).unwrap();
        let df: DomainFrom = "field:meta.pile_set_name".parse().unwrap();
        let r = collect(&p, &df);
        assert_eq!(r[0], (1, Ok(("pile_cc".into(), "a".into()))));
        assert!(matches!(&r[1], (2, Err(m)) if m.contains("meta.pile_set_name")));
    }

    fn collect_bounded(path: &Path, max: usize, skip_long: bool) -> Records {
        let mut v = Vec::new();
        read_records_bounded(path, "text", &DomainFrom::Prefix, max, skip_long, |r| {
            v.push(match r {
                Record::Doc { line, domain, text } => (line, Ok((domain, text))),
                Record::Bad { line, message } => (line, Err(message)),
            });
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn a_line_longer_than_the_bound_is_a_bad_record_and_the_next_line_follows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web-0.jsonl");
        let long = format!("{{\"text\": \"{}\"}}\n", "x".repeat(5000));
        std::fs::write(&p, format!("{{\"text\": \"a\"}}\n{long}{{\"text\": \"b\"}}\n")).unwrap();
        let r = collect_bounded(&p, 1000, true);
        assert_eq!(r.len(), 3);
        assert!(matches!(&r[1], (2, Err(m)) if m.contains("more than 1000 bytes")));
        assert_eq!(r[2], (3, Ok(("web".into(), "b".into()))));
    }

    #[test]
    fn a_zstd_input_expanding_to_one_endless_line_stops_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web-0.jsonl.zst");
        // 64 MB of one line without a newline, compressed to a few kB.
        let bytes = zstd::encode_all(std::io::repeat(b'a').take(64 << 20), 3).unwrap();
        assert!(bytes.len() < 1 << 20);
        std::fs::write(&p, bytes).unwrap();
        let r = collect_bounded(&p, 1 << 20, false);
        assert_eq!(r.len(), 1);
        assert!(matches!(&r[0], (1, Err(m)) if m.contains("more than 1048576 bytes")));
    }

    #[test]
    fn a_txt_input_larger_than_the_bound_is_a_bad_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web-0.txt");
        std::fs::write(&p, "y".repeat(2000)).unwrap();
        let r = collect_bounded(&p, 1000, false);
        assert!(matches!(&r[0], (1, Err(m)) if m.contains("more than 1000 bytes")));
    }

    #[test]
    fn a_fifo_in_an_input_folder_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web-0.jsonl"), "{\"text\": \"a\"}\n").unwrap();
        let fifo = dir.path().join("web-1.jsonl");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let e = expand_inputs(&[dir.path().to_path_buf()]).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: refusing to read it as an input: it is a FIFO; give regular files or folders", fifo.display())
        );
    }

    #[test]
    fn a_link_to_dev_zero_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("web-0.jsonl");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = expand_inputs(std::slice::from_ref(&link)).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: refusing to read it as an input: it is a device", link.display())), "{e}");
    }
}
