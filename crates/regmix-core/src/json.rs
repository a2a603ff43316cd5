//! JSON files between stages (`fit/model.json`, `runs/<id>/done.json`), written and read
//! against their contract in `schemas/` as the Parquet files are.
//!
//! A document is the value's own JSON object with one more key, `regmix`: the schema's name
//! and version and the provenance (producer, its version, its arguments). A reader checks the
//! name, the version and every field's presence and JSON type before it deserialises, so a
//! file of another kind, another version or a hand edit gets an error naming the file and the
//! field, not a serde message about line and column.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::schema::{Format, Schema};
use crate::{atomic, Error, Provenance, Result};

/// The key of the contract's own object in every document.
pub const KEY: &str = "regmix";

fn contract(schema: &Schema, prov: &Provenance) -> Value {
    serde_json::json!({
        "schema": schema.name,
        "schema_version": schema.version,
        "producer": prov.producer,
        "producer_version": prov.version,
        "arguments": prov.arguments,
    })
}

/// The document of `value` (pretty-printed), checked against `schema` as a reader would.
pub fn to_document<T: Serialize>(path: &Path, schema: &Schema, value: &T, prov: &Provenance) -> Result<String> {
    assert_eq!(schema.format, Format::Json, "schema {} is not a JSON contract", schema.name);
    let mut obj = match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(Error::format(path, "JSON", "a contract's value must serialise to an object")),
        Err(e) => return Err(Error::format(path, "JSON", e)),
    };
    check_fields(path, schema, &obj)?;
    let mut doc = Map::new();
    doc.insert(KEY.to_string(), contract(schema, prov));
    doc.append(&mut obj);
    serde_json::to_string_pretty(&Value::Object(doc)).map_err(|e| Error::format(path, "JSON", e))
}

/// Writes `value` to `path` atomically as a document of `schema`.
pub fn write<T: Serialize>(path: &Path, schema: &Schema, value: &T, prov: &Provenance) -> Result<()> {
    let mut text = to_document(path, schema, value, prov)?;
    text.push('\n');
    atomic::write_bytes(path, text.as_bytes())
}

/// Reads a document of `schema` from `path`: the value and who wrote it.
pub fn read<T: DeserializeOwned>(path: &Path, schema: &Schema) -> Result<(T, Provenance)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(path, &text, schema)
}

/// [`read`] on text already read (`path` names it in errors).
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str, schema: &Schema) -> Result<(T, Provenance)> {
    let kind = "JSON";
    let doc: Value = serde_json::from_str(text).map_err(|e| Error::format(path, kind, e))?;
    let Value::Object(mut obj) = doc else {
        return Err(Error::format(path, kind, format!("expected a `{}` document (a JSON object)", schema.name)));
    };
    let Some(c) = obj.remove(KEY) else {
        return Err(Error::metadata(
            path,
            KEY,
            format!("missing; this file was not written by regmix (expected a `{}` file)", schema.name),
        ));
    };
    let field = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
    match field("schema").as_str() {
        Some(n) if n == schema.name => {}
        Some(n) => {
            return Err(Error::metadata(
                path,
                &format!("{KEY}.schema"),
                format!("this is a `{n}` file, expected a `{}` file", schema.name),
            ))
        }
        None => return Err(Error::metadata(path, &format!("{KEY}.schema"), "missing")),
    }
    let v = field("schema_version");
    if v.as_u64() != Some(schema.version as u64) {
        return Err(Error::metadata(
            path,
            &format!("{KEY}.schema_version"),
            format!("version `{v}` of `{}`, this build reads version {}", schema.name, schema.version),
        ));
    }
    let prov = (|| {
        Some(Provenance {
            producer: c.get("producer")?.as_str()?.to_string(),
            version: c.get("producer_version")?.as_str()?.to_string(),
            arguments: serde_json::from_value(c.get("arguments")?.clone()).ok()?,
        })
    })()
    .ok_or_else(|| Error::metadata(path, KEY, "producer, producer_version and arguments are required"))?;
    check_fields(path, schema, &obj)?;
    let value = serde_json::from_value(Value::Object(obj)).map_err(|e| Error::format(path, kind, e))?;
    Ok((value, prov))
}

/// Where two JSON values differ: one line per leaf, `path: then → now` (objects by key,
/// arrays by index), in key order. Empty when they are equal.
pub fn differences(then: &Value, now: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_into("", then, now, &mut out);
    out
}

fn diff_into(at: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let key = |k: &str| if at.is_empty() { k.to_string() } else { format!("{at}.{k}") };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                diff_into(&key(k), x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_into(&format!("{at}[{i}]"), p, q, out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{}: {a} then, {b} now", if at.is_empty() { "(value)" } else { at })),
    }
}

fn check_fields(path: &Path, schema: &Schema, obj: &Map<String, Value>) -> Result<()> {
    for f in &schema.fields {
        match obj.get(&f.name) {
            None => {
                return Err(Error::Column {
                    path: path.into(),
                    column: f.name.clone(),
                    expected: format!("field `{}`", f.name),
                    found: "no such field".into(),
                })
            }
            Some(Value::Null) if f.nullable => {}
            Some(v) if f.ty.admits(v) => {}
            Some(v) => {
                let found = match v {
                    Value::Null => "null".to_string(),
                    Value::String(_) => "a string".into(),
                    Value::Number(_) => format!("the number {v}"),
                    Value::Bool(_) => "a boolean".into(),
                    Value::Array(_) => "an array".into(),
                    Value::Object(_) => "an object".into(),
                };
                return Err(Error::Column {
                    path: path.into(),
                    column: f.name.clone(),
                    expected: format!("{:?}", f.ty).to_lowercase(),
                    found,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Done {
        status: String,
        steps: u64,
        tokens: u64,
        valid: Vec<Option<f64>>,
        elapsed_s: f64,
        spec: serde_json::Value,
    }

    fn done() -> Done {
        Done {
            status: "finished".into(),
            steps: 3,
            tokens: 96,
            valid: vec![Some(5.0)],
            elapsed_s: 1.5,
            spec: serde_json::json!({"tokens": 96}),
        }
    }

    #[test]
    fn floats_read_back_from_a_document_bit_for_bit() {
        // A finished run's settings are compared with a rerun's exactly, so a float must parse
        // back to the value written: serde_json's default parser is up to an ulp off (it needs
        // `float_roundtrip`), and a prior's weights then made a finished run "another run".
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut values = vec![0.09857920103730371, 0.09611410340621189, 0.1 + 0.2, 1.0 / 3.0];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push((x >> 11) as f64 / (1u64 << 53) as f64);
        }
        let text = serde_json::to_string(&values).unwrap();
        let back: Vec<f64> = serde_json::from_str(&text).unwrap();
        let wrong = values.iter().zip(&back).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(wrong, 0, "{wrong} of {} floats came back changed", values.len());
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value, serde_json::to_value(&values).unwrap());
    }

    #[test]
    fn differences_name_each_leaf_that_changed() {
        let a = serde_json::json!({"train": {"tokens": 8192, "lr": 0.003}, "weights": [0.5, 0.5]});
        let b = serde_json::json!({"train": {"tokens": 16384, "lr": 0.003}, "weights": [0.25, 0.75]});
        assert_eq!(
            differences(&a, &b),
            ["train.tokens: 8192 then, 16384 now", "weights[0]: 0.5 then, 0.25 now", "weights[1]: 0.5 then, 0.75 now"]
        );
        assert!(differences(&a, &a).is_empty());
    }

    #[test]
    fn a_document_round_trips_with_its_provenance() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("done.json");
        let prov = Provenance::new("proxy-train", "0.1.0", &["proxy-train", "--tokens", "96"]);
        write(&p, Schema::get("run_done"), &done(), &prov).unwrap();
        let (back, who): (Done, _) = read(&p, Schema::get("run_done")).unwrap();
        assert_eq!((back, who), (done(), prov));
    }

    #[test]
    fn a_document_of_another_version_is_refused_naming_the_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("done.json");
        write(&p, Schema::get("run_done"), &done(), &Provenance::new("t", "0", &[])).unwrap();
        let text = std::fs::read_to_string(&p).unwrap().replace("\"schema_version\": 1", "\"schema_version\": 99");
        let e = parse::<Done>(&p, &text, Schema::get("run_done")).unwrap_err().to_string();
        assert!(e.contains("version `99` of `run_done`, this build reads version 1"), "{e}");
    }

    #[test]
    fn a_file_without_the_contract_key_is_refused() {
        let p = Path::new("old/done.json");
        let text = serde_json::to_string(&done()).unwrap();
        let e = parse::<Done>(p, &text, Schema::get("run_done")).unwrap_err().to_string();
        assert!(e.contains("old/done.json: metadata key `regmix`: missing"), "{e}");
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("done.json");
        write(&p, Schema::get("run_done"), &done(), &Provenance::new("t", "0", &[])).unwrap();
        let text = std::fs::read_to_string(&p).unwrap().replace("\"steps\": 3", "\"steps\": \"three\"");
        let e = parse::<Done>(&p, &text, Schema::get("run_done")).unwrap_err().to_string();
        assert!(e.contains("column `steps`: expected integer, found a string"), "{e}");
    }
}
