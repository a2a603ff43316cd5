//! The file contracts of `schemas/*.json`, embedded at build time.
//!
//! A [`Schema`] builds the Arrow schema a writer must use ([`Schema::arrow_schema`]) and
//! checks the Arrow schema and metadata of a file being read ([`Schema::check`]). The format
//! of the JSON files is documented in `schemas/README.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Fields, Schema as ArrowSchema};
use serde::Deserialize;

use crate::provenance::{COMMON_KEYS, KEY_SCHEMA, KEY_SCHEMA_VERSION};
use crate::{domain, Error, Result};

const EMBEDDED: &[(&str, &str)] = &[
    ("shard_manifest", include_str!("../../../schemas/shard_manifest.json")),
    ("token_shard", include_str!("../../../schemas/token_shard.json")),
    ("mixtures", include_str!("../../../schemas/mixtures.json")),
    ("run_metrics", include_str!("../../../schemas/run_metrics.json")),
    ("dataset", include_str!("../../../schemas/dataset.json")),
    ("fit_report", include_str!("../../../schemas/fit_report.json")),
    ("predictions", include_str!("../../../schemas/predictions.json")),
    ("optimum", include_str!("../../../schemas/optimum.json")),
    ("top_candidates", include_str!("../../../schemas/top_candidates.json")),
    ("comparison", include_str!("../../../schemas/comparison.json")),
    ("fit_model", include_str!("../../../schemas/fit_model.json")),
    ("run_done", include_str!("../../../schemas/run_done.json")),
    ("trajectories", include_str!("../../../schemas/trajectories.json")),
    ("calibration", include_str!("../../../schemas/calibration.json")),
];

/// The storage format of a kind of file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Parquet,
    ArrowIpc,
    /// A JSON document (model.json, done.json): `fields` instead of `columns` (read and written by
    /// the `json` module).
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum TypeSpec {
    One(String),
    Any(Vec<String>),
}

#[derive(Clone, Debug, Deserialize)]
struct ColumnJson {
    name: Option<String>,
    template: Option<String>,
    #[serde(rename = "type")]
    ty: TypeSpec,
    #[serde(default)]
    nullable: bool,
    /// The contract version that added the column (absent: the first); older files lack it.
    #[serde(default)]
    since: Option<u32>,
    #[allow(dead_code)]
    description: String,
}

#[derive(Clone, Debug, Deserialize)]
struct FieldJson {
    name: String,
    #[serde(rename = "type")]
    ty: JsonType,
    #[serde(default)]
    nullable: bool,
    #[allow(dead_code)]
    description: String,
}

/// The JSON type of a field of a JSON contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonType {
    String,
    Number,
    Integer,
    Bool,
    Object,
    Array,
}

impl JsonType {
    /// Whether `v` is of this type (an integer is also a number).
    pub fn admits(self, v: &serde_json::Value) -> bool {
        match self {
            JsonType::String => v.is_string(),
            JsonType::Number => v.is_number(),
            JsonType::Integer => v.is_u64() || v.is_i64(),
            JsonType::Bool => v.is_boolean(),
            JsonType::Object => v.is_object(),
            JsonType::Array => v.is_array(),
        }
    }
}

/// A top-level field of a JSON contract.
#[derive(Clone, Debug)]
pub struct FieldSpec {
    pub name: String,
    pub ty: JsonType,
    pub nullable: bool,
}

#[derive(Clone, Debug, Deserialize)]
struct SchemaJson {
    schema: String,
    version: u32,
    /// The oldest version readers still accept (absent: only `version`). A file of an older
    /// version lacks the columns added since (their `since`); its readers say what it lacks.
    #[serde(default)]
    reads_from: Option<u32>,
    format: Format,
    producer: String,
    description: String,
    #[serde(default)]
    columns: Vec<ColumnJson>,
    #[serde(default)]
    fields: Vec<FieldJson>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// What a column of a schema is: one named column, or one per domain of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    Fixed(String),
    /// `prefix` + domain; `list` is the placeholder's name (`domain`, `eval_domain`).
    Template {
        prefix: String,
        list: String,
    },
}

#[derive(Clone, Debug)]
pub struct ColumnSpec {
    pub kind: ColumnKind,
    /// Allowed types; the first is the default the writer uses.
    pub types: Vec<DataType>,
    pub nullable: bool,
    /// The contract version that added the column (1: always there).
    pub since: u32,
}

/// One kind of file between stages.
#[derive(Clone, Debug)]
pub struct Schema {
    pub name: String,
    pub version: u32,
    /// The oldest version of the contract its readers accept.
    pub reads_from: u32,
    pub format: Format,
    pub producer: String,
    pub description: String,
    pub columns: Vec<ColumnSpec>,
    /// The top-level fields of a JSON contract (empty for tables).
    pub fields: Vec<FieldSpec>,
    /// Required metadata keys of this kind (besides [`COMMON_KEYS`]) and their meaning.
    pub metadata: BTreeMap<String, String>,
}

/// The domain lists a wide table's templates expand over, by placeholder name.
pub type Lists = BTreeMap<String, Vec<String>>;

/// Convenience: the lists of a table with one template list `domain`.
pub fn domains(d: &[String]) -> Lists {
    let mut m = Lists::new();
    m.insert("domain".into(), d.to_vec());
    m
}

/// Convenience: `domain` and `eval_domain` lists.
pub fn domains_and_eval(d: &[String], e: &[String]) -> Lists {
    let mut m = domains(d);
    m.insert("eval_domain".into(), e.to_vec());
    m
}

fn parse_type(s: &str) -> DataType {
    match s {
        "bool" => DataType::Boolean,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "utf8" => DataType::Utf8,
        other => panic!("schemas/: unknown column type `{other}`"),
    }
}

/// The short name of an Arrow type as the schema files spell it.
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Boolean => "bool".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 => "utf8".into(),
        other => format!("{other}"),
    }
}

impl Schema {
    fn from_json(text: &str) -> Schema {
        let j: SchemaJson = serde_json::from_str(text).expect("schemas/*.json must parse");
        assert_eq!(
            j.format == Format::Json,
            j.columns.is_empty(),
            "schema {}: a JSON contract has fields, a table columns",
            j.schema
        );
        let columns = j
            .columns
            .into_iter()
            .map(|c| {
                let kind = match (c.name, c.template) {
                    (Some(n), None) => ColumnKind::Fixed(n),
                    (None, Some(t)) => {
                        let open = t.find('{').expect("template needs {list}");
                        let close = t.rfind('}').expect("template needs {list}");
                        assert_eq!(close, t.len() - 1, "template placeholder must end the name");
                        ColumnKind::Template { prefix: t[..open].to_string(), list: t[open + 1..close].to_string() }
                    }
                    _ => panic!("schema {}: a column has exactly one of name, template", j.schema),
                };
                let types = match c.ty {
                    TypeSpec::One(s) => vec![parse_type(&s)],
                    TypeSpec::Any(v) => v.iter().map(|s| parse_type(s)).collect(),
                };
                ColumnSpec { kind, types, nullable: c.nullable, since: c.since.unwrap_or(1) }
            })
            .collect();
        let fields = j.fields.into_iter().map(|f| FieldSpec { name: f.name, ty: f.ty, nullable: f.nullable }).collect();
        Schema {
            name: j.schema,
            version: j.version,
            reads_from: j.reads_from.unwrap_or(j.version),
            format: j.format,
            producer: j.producer,
            description: j.description,
            columns,
            fields,
            metadata: j.metadata,
        }
    }

    /// The embedded schema named `name` (the file stem in `schemas/`).
    pub fn get(name: &str) -> &'static Schema {
        static ALL: OnceLock<Vec<Schema>> = OnceLock::new();
        let all = ALL.get_or_init(|| EMBEDDED.iter().map(|(_, t)| Schema::from_json(t)).collect());
        all.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no schema named `{name}`"))
    }

    /// Every embedded schema.
    pub fn all() -> Vec<&'static Schema> {
        EMBEDDED.iter().map(|(n, _)| Schema::get(n)).collect()
    }

    /// The Arrow schema of a file of this kind, with templates expanded over `lists` and each
    /// column of several allowed types given the type chosen in `types` (else the default).
    pub fn arrow_schema_with(&self, lists: &Lists, types: &HashMap<String, DataType>) -> ArrowSchema {
        let mut fields = Vec::new();
        for c in &self.columns {
            match &c.kind {
                ColumnKind::Fixed(n) => {
                    let t = types.get(n).cloned().unwrap_or_else(|| c.types[0].clone());
                    assert!(c.types.contains(&t), "schema {}: type {t} not allowed for {n}", self.name);
                    fields.push(Field::new(n, t, c.nullable));
                }
                ColumnKind::Template { prefix, list } => {
                    let names = lists.get(list).unwrap_or_else(|| {
                        panic!("schema {}: no list `{list}` given for template {prefix}", self.name)
                    });
                    for d in names {
                        fields.push(Field::new(format!("{prefix}{d}"), c.types[0].clone(), c.nullable));
                    }
                }
            }
        }
        ArrowSchema::new(fields)
    }

    pub fn arrow_schema(&self, lists: &Lists) -> Arc<ArrowSchema> {
        Arc::new(self.arrow_schema_with(lists, &HashMap::new()))
    }

    /// The metadata keys every file of this kind must carry.
    pub fn required_keys(&self) -> Vec<String> {
        COMMON_KEYS.iter().map(|s| s.to_string()).chain(self.metadata.keys().cloned()).collect()
    }

    /// Checks a file's Arrow schema and key-value metadata against this contract and returns
    /// the template lists found (e.g. the domains of a wide table), in column order.
    pub fn check(&self, path: &Path, found: &ArrowSchema, md: &HashMap<String, String>) -> Result<Lists> {
        let file_version = self.check_identity(path, md)?;
        let lists = self.check_columns(path, found, file_version)?;
        check_recorded_lists(path, md, &lists)?;
        Ok(lists)
    }

    /// Checks the metadata's kind, version and required keys; returns the file's schema
    /// version.
    fn check_identity(&self, path: &Path, md: &HashMap<String, String>) -> Result<u32> {
        // The kind and version first: a file of another kind gets an error that says so.
        match md.get(KEY_SCHEMA) {
            None => {
                return Err(Error::metadata(
                    path,
                    KEY_SCHEMA,
                    format!("missing; this file was not written by regmix (expected a `{}` file)", self.name),
                ))
            }
            Some(k) if k != &self.name => {
                return Err(Error::metadata(
                    path,
                    KEY_SCHEMA,
                    format!("this is a `{k}` file, expected a `{}` file", self.name),
                ))
            }
            _ => {}
        }
        let v = md.get(KEY_SCHEMA_VERSION).map(String::as_str).unwrap_or("");
        let Some(file_version) = v.parse::<u32>().ok().filter(|n| (self.reads_from..=self.version).contains(n)) else {
            let reads = if self.reads_from == self.version {
                format!("version {}", self.version)
            } else {
                format!("versions {} to {}", self.reads_from, self.version)
            };
            return Err(Error::metadata(
                path,
                KEY_SCHEMA_VERSION,
                format!("version `{v}` of `{}`, this build reads {reads}", self.name),
            ));
        };
        for k in self.required_keys() {
            if !md.contains_key(&k) {
                return Err(Error::metadata(path, &k, "required key is missing"));
            }
        }
        Ok(file_version)
    }

    /// Checks the columns, in order, against those of a file of `file_version` (columns added
    /// later are not expected); returns the template lists found.
    fn check_columns(&self, path: &Path, found: &ArrowSchema, file_version: u32) -> Result<Lists> {
        let fields = found.fields();
        let mut lists = Lists::new();
        let mut i = 0;
        for (ci, c) in self.columns.iter().enumerate() {
            if c.since > file_version {
                continue;
            }
            match &c.kind {
                ColumnKind::Fixed(name) => {
                    check_fixed_column(path, fields, i, name, c)?;
                    i += 1;
                }
                ColumnKind::Template { prefix, list } => {
                    let names = self.template_columns(path, fields, &mut i, ci, prefix, list)?;
                    lists.insert(list.clone(), names);
                }
            }
        }
        if let Some(f) = fields.get(i) {
            return Err(Error::Column {
                path: path.into(),
                column: f.name().clone(),
                expected: "no further columns".into(),
                found: "an extra column".into(),
            });
        }
        Ok(lists)
    }

    /// Reads the columns of template `ci` (`<prefix><name>`, at least one) from position `*i`
    /// on, advancing `*i` past them; returns the names.
    fn template_columns(
        &self,
        path: &Path,
        fields: &Fields,
        i: &mut usize,
        ci: usize,
        prefix: &str,
        list: &str,
    ) -> Result<Vec<String>> {
        let c = &self.columns[ci];
        // A template ends where the next fixed column or template starts.
        let next_prefix = self.columns.get(ci + 1).map(|n| match &n.kind {
            ColumnKind::Fixed(s) => s.clone(),
            ColumnKind::Template { prefix, .. } => prefix.clone(),
        });
        let mut names = Vec::new();
        while let Some(f) = fields.get(*i) {
            let n = f.name();
            let Some(d) = n.strip_prefix(prefix) else { break };
            if let Some(np) = &next_prefix {
                if n.starts_with(np.as_str()) && np.len() > prefix.len() {
                    break;
                }
            }
            domain::validate(d).map_err(|e| Error::Column {
                path: path.into(),
                column: n.clone(),
                expected: format!("`{prefix}<domain>`"),
                found: e.to_string(),
            })?;
            check_field(path, f, c)?;
            names.push(d.to_string());
            *i += 1;
        }
        if names.is_empty() {
            return Err(Error::Column {
                path: path.into(),
                column: format!("{prefix}<{list}>"),
                expected: format!("at least one `{prefix}<{list}>` column at position {i}"),
                found: fields.get(*i).map(|f| format!("`{}`", f.name())).unwrap_or("none".into()),
            });
        }
        Ok(names)
    }
}

/// Checks that the field at position `i` is the fixed column `name`, of an allowed type.
fn check_fixed_column(path: &Path, fields: &Fields, i: usize, name: &str, c: &ColumnSpec) -> Result<()> {
    let Some(f) = fields.get(i) else {
        return Err(Error::Column {
            path: path.into(),
            column: name.to_string(),
            expected: format!("a column at position {i}"),
            found: "end of columns".into(),
        });
    };
    if f.name() != name {
        return Err(Error::Column {
            path: path.into(),
            column: name.to_string(),
            expected: format!("column `{name}` at position {i}"),
            found: format!("`{}`", f.name()),
        });
    }
    check_field(path, f, c)
}

/// Checks that the lists recorded in metadata (`regmix.<list>s`) agree with the columns.
fn check_recorded_lists(path: &Path, md: &HashMap<String, String>, lists: &Lists) -> Result<()> {
    for (list, names) in lists {
        let key = format!("regmix.{list}s");
        if let Some(text) = md.get(&key) {
            let recorded: Vec<String> = serde_json::from_str(text)
                .map_err(|e| Error::metadata(path, &key, format!("not a JSON array of names: {e}")))?;
            if &recorded != names {
                return Err(Error::metadata(
                    path,
                    &key,
                    format!("lists {recorded:?} but the columns are for {names:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that a field's type is one its column allows.
fn check_field(path: &Path, f: &Field, c: &ColumnSpec) -> Result<()> {
    if !c.types.contains(f.data_type()) {
        let expected = c.types.iter().map(type_name).collect::<Vec<_>>().join(" or ");
        return Err(Error::Column {
            path: path.into(),
            column: f.name().clone(),
            expected,
            found: type_name(f.data_type()),
        });
    }
    Ok(())
}

/// Metadata keys with the schema's identity, to merge into a file's key-value metadata.
pub fn identity(schema: &Schema) -> Vec<(String, String)> {
    vec![(KEY_SCHEMA.into(), schema.name.clone()), (KEY_SCHEMA_VERSION.into(), schema.version.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md_for(s: &Schema, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut md: HashMap<String, String> = identity(s).into_iter().collect();
        for k in s.required_keys() {
            md.entry(k).or_insert_with(|| "[]".into());
        }
        for (k, v) in extra {
            md.insert(k.to_string(), v.to_string());
        }
        md
    }

    #[test]
    fn every_embedded_schema_parses_and_expands() {
        for s in Schema::all() {
            if s.format == Format::Json {
                assert!(!s.fields.is_empty(), "{}: a JSON contract without fields", s.name);
                continue;
            }
            let lists = domains_and_eval(&["a".into(), "b".into()], &["c".into()]);
            let a = s.arrow_schema(&lists);
            assert!(!a.fields().is_empty(), "{}", s.name);
        }
    }

    #[test]
    fn check_returns_domains_of_a_wide_table_in_column_order() {
        let s = Schema::get("dataset");
        let d: Vec<String> = vec!["web".into(), "code".into()];
        let e: Vec<String> = vec!["web".into()];
        let a = s.arrow_schema(&domains_and_eval(&d, &e));
        let md = md_for(s, &[(crate::keys::DOMAINS, r#"["web","code"]"#), (crate::keys::EVAL_DOMAINS, r#"["web"]"#)]);
        let lists = s.check(Path::new("x.parquet"), &a, &md).unwrap();
        assert_eq!(lists["domain"], d);
        assert_eq!(lists["eval_domain"], e);
    }

    #[test]
    fn check_names_the_column_with_the_wrong_type() {
        let s = Schema::get("mixtures");
        let a = ArrowSchema::new(vec![
            Field::new("mixture_id", DataType::UInt32, false),
            Field::new("weight.web", DataType::Utf8, false),
        ]);
        let err = s.check(Path::new("m.parquet"), &a, &md_for(s, &[(crate::keys::DOMAINS, r#"["web"]"#)]));
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("m.parquet") && msg.contains("weight.web") && msg.contains("float64"), "{msg}");
    }

    #[test]
    fn check_rejects_a_file_of_another_kind() {
        let s = Schema::get("mixtures");
        let other = Schema::get("fit_report");
        let a = other.arrow_schema(&Lists::new());
        let msg = s.check(Path::new("f.parquet"), &a, &md_for(other, &[])).unwrap_err().to_string();
        assert!(msg.contains("`fit_report` file, expected a `mixtures` file"), "{msg}");
    }

    #[test]
    fn check_rejects_metadata_domains_that_disagree_with_columns() {
        let s = Schema::get("mixtures");
        let a = s.arrow_schema(&domains(&["web".into()]));
        let md = md_for(s, &[(crate::keys::DOMAINS, r#"["code"]"#)]);
        assert!(s.check(Path::new("m.parquet"), &a, &md).is_err());
    }
}
