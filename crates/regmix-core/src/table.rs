//! Parquet files between stages, written and read through their [`Schema`].
//!
//! [`write_parquet`] checks a batch against the schema, adds the schema identity and the
//! provenance to the key-value metadata, and writes atomically. [`read_parquet`] checks the
//! file against the schema before handing out a single [`RecordBatch`].

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, PrimitiveArray, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::atomic::AtomicFile;
use crate::schema::{identity, Lists, Schema};
use crate::{Error, Provenance, Result};

/// A Parquet file read and checked against its schema.
#[derive(Debug, Clone)]
pub struct Table {
    pub path: PathBuf,
    pub batch: RecordBatch,
    pub metadata: HashMap<String, String>,
    /// Template lists found in the columns (`domain`, `eval_domain`), in column order.
    pub lists: Lists,
}

/// Writes `batch` as a Parquet file of kind `schema` at `path`, atomically.
///
/// `lists` expands the schema's templates; `extra` adds the schema's own metadata keys. The
/// batch's columns must be exactly the schema's, in order, with the schema's types.
pub fn write_parquet(
    path: &Path,
    schema: &Schema,
    lists: &Lists,
    batch: &RecordBatch,
    extra: &[(String, String)],
    prov: &Provenance,
) -> Result<()> {
    let expected = schema.arrow_schema(lists);
    let mut md: Vec<(String, String)> = identity(schema);
    md.extend(prov.to_metadata());
    for (list, names) in lists {
        md.push((format!("regmix.{list}s"), serde_json::to_string(names).unwrap()));
    }
    md.extend(extra.iter().cloned());
    // Later entries win (extra may refine a list key), without duplicate keys in the file.
    let mut dedup: Vec<(String, String)> = Vec::new();
    for (k, v) in md {
        if let Some(e) = dedup.iter_mut().find(|(ek, _)| *ek == k) {
            e.1 = v;
        } else {
            dedup.push((k, v));
        }
    }
    let md_map: HashMap<String, String> = dedup.iter().cloned().collect();
    // The writer is held to the same contract as every reader.
    let found = batch.schema();
    schema.check(path, &found, &md_map)?;
    if found.fields().len() != expected.fields().len() {
        return Err(Error::Invalid(format!(
            "{}: writer produced {} columns, schema `{}` expects {}",
            path.display(),
            found.fields().len(),
            schema.name,
            expected.fields().len()
        )));
    }
    // The metadata also goes on the Arrow schema, so readers that show the Arrow schema's
    // metadata (pyarrow's `schema.metadata`, polars) see it as well as the file's key-value list.
    let expected = Arc::new(expected.as_ref().clone().with_metadata(md_map.clone()));
    let batch = RecordBatch::try_new(expected.clone(), batch.columns().to_vec())
        .map_err(|e| Error::format(path, "parquet", format!("batch does not fit schema `{}`: {e}", schema.name)))?;

    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
        .set_key_value_metadata(Some(dedup.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()))
        .build();
    let file = AtomicFile::create(path)?;
    let mut w = ArrowWriter::try_new(file, expected, Some(props)).map_err(|e| Error::format(path, "parquet", e))?;
    w.write(&batch).map_err(|e| Error::format(path, "parquet", e))?;
    let file = w.into_inner().map_err(|e| Error::format(path, "parquet", e))?;
    file.commit()
}

/// Opens a Parquet file and checks its footer (columns, types, metadata) against `schema`:
/// the reader, ready to read the data, with the template lists and key-value metadata.
fn open_checked(
    path: &Path,
    schema: &Schema,
) -> Result<(ParquetRecordBatchReaderBuilder<File>, Lists, HashMap<String, String>)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    open_checked_file(path, file, schema)
}

fn open_checked_file(
    path: &Path,
    file: File,
    schema: &Schema,
) -> Result<(ParquetRecordBatchReaderBuilder<File>, Lists, HashMap<String, String>)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::format(path, "parquet", e))?;
    let metadata: HashMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().map(|k| (k.key.clone(), k.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    let lists = schema.check(path, builder.schema(), &metadata)?;
    Ok((builder, lists, metadata))
}

/// Checks a Parquet file's footer against `schema` without reading its data: for callers
/// that read the data with another engine (collect's polars scan). Returns the template
/// lists and the key-value metadata.
pub fn check_parquet(path: &Path, schema: &Schema) -> Result<(Lists, HashMap<String, String>)> {
    open_checked(path, schema).map(|(_, lists, metadata)| (lists, metadata))
}

/// Reads the Parquet file at `path` and checks it against `schema`.
pub fn read_parquet(path: &Path, schema: &Schema) -> Result<Table> {
    read_checked(path, open_checked(path, schema)?, schema)
}

/// [`read_parquet`], and the sha256 of exactly the bytes read: the file is opened once, hashed
/// through that descriptor and parsed from it, so a writer that renames a new file over
/// `path` meanwhile changes neither (what a record of "the data this was computed from" needs).
pub fn read_parquet_hashed(path: &Path, schema: &Schema) -> Result<(Table, String)> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek};
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    file.rewind().map_err(|e| Error::io(path, e))?;
    let t = read_checked(path, open_checked_file(path, file, schema)?, schema)?;
    Ok((t, hex::encode(h.finalize())))
}

fn read_checked(
    path: &Path,
    opened: (ParquetRecordBatchReaderBuilder<File>, Lists, HashMap<String, String>),
    schema: &Schema,
) -> Result<Table> {
    let (builder, lists, metadata) = opened;
    let arrow_schema = builder.schema().clone();
    let reader = builder.build().map_err(|e| Error::format(path, "parquet", e))?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| Error::format(path, "parquet", e))?);
    }
    let batch =
        arrow::compute::concat_batches(&arrow_schema, &batches).map_err(|e| Error::format(path, "parquet", e))?;
    // Nulls where the contract has none.
    let expected = schema.arrow_schema(&lists);
    for f in expected.fields().iter() {
        // A column added after the file's version is absent: Schema::check allowed that.
        let Some(col) = batch.column_by_name(f.name()) else { continue };
        if !f.is_nullable() && col.null_count() > 0 {
            let row = (0..col.len()).find(|&r| col.is_null(r)).unwrap_or(0);
            return Err(Error::value(path, row, f.name(), "null in a column that allows none"));
        }
    }
    Ok(Table { path: path.to_path_buf(), batch, metadata, lists })
}

impl Table {
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn column(&self, name: &str) -> Result<&ArrayRef> {
        self.batch.column_by_name(name).ok_or_else(|| Error::Column {
            path: self.path.clone(),
            column: name.into(),
            expected: "a column of that name".into(),
            found: "none".into(),
        })
    }

    fn typed<T: arrow_array::ArrowPrimitiveType>(&self, name: &str) -> Result<&PrimitiveArray<T>> {
        let c = self.column(name)?;
        c.as_primitive_opt::<T>().ok_or_else(|| Error::Column {
            path: self.path.clone(),
            column: name.into(),
            expected: format!("{}", T::DATA_TYPE),
            found: format!("{}", c.data_type()),
        })
    }

    pub fn f64(&self, name: &str) -> Result<&PrimitiveArray<Float64Type>> {
        self.typed::<Float64Type>(name)
    }
    pub fn u32(&self, name: &str) -> Result<&PrimitiveArray<UInt32Type>> {
        self.typed::<UInt32Type>(name)
    }
    pub fn u64(&self, name: &str) -> Result<&PrimitiveArray<UInt64Type>> {
        self.typed::<UInt64Type>(name)
    }
    pub fn i32(&self, name: &str) -> Result<&PrimitiveArray<Int32Type>> {
        self.typed::<Int32Type>(name)
    }
    pub fn str(&self, name: &str) -> Result<&StringArray> {
        let c = self.column(name)?;
        c.as_string_opt::<i32>().ok_or_else(|| Error::Column {
            path: self.path.clone(),
            column: name.into(),
            expected: "utf8".into(),
            found: format!("{}", c.data_type()),
        })
    }

    /// The values of a float64 column, nulls as NaN.
    pub fn f64_values(&self, name: &str) -> Result<Vec<f64>> {
        let a = self.f64(name)?;
        Ok((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) }).collect())
    }

    /// The values of a nullable float64 column, nulls as None.
    pub fn f64_opt_values(&self, name: &str) -> Result<Vec<Option<f64>>> {
        let a = self.f64(name)?;
        Ok((0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i))).collect())
    }

    /// The float64 columns `prefix` + name for each of `names` (e.g. [`crate::columns::WEIGHT`]
    /// over the domains), nulls as NaN: one vector per name, in `names` order.
    pub fn wide_f64(&self, prefix: &str, names: &[String]) -> Result<Vec<Vec<f64>>> {
        names.iter().map(|n| self.f64_values(&crate::columns::wide(prefix, n))).collect()
    }

    /// [`Table::wide_f64`] by row: row r is the values of `names` in row r.
    pub fn wide_rows(&self, prefix: &str, names: &[String]) -> Result<Vec<Vec<f64>>> {
        let cols = self.wide_f64(prefix, names)?;
        Ok((0..self.rows()).map(|r| cols.iter().map(|c| c[r]).collect()).collect())
    }

    /// The template list `list` (e.g. `domain`), or an error naming the file.
    pub fn list(&self, list: &str) -> Result<&[String]> {
        self.lists
            .get(list)
            .map(|v| v.as_slice())
            .ok_or_else(|| Error::Invalid(format!("{}: no `{list}` columns", self.path.display())))
    }

    /// A metadata value parsed as JSON, or an error naming file and key.
    pub fn json_metadata<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        let text = self.metadata.get(key).ok_or_else(|| Error::metadata(&self.path, key, "missing"))?;
        serde_json::from_str(text).map_err(|e| Error::metadata(&self.path, key, e))
    }
}

/// Builders of columns, so writers need not name Arrow array types.
pub mod col {
    use super::*;
    use arrow_array::{BooleanArray, Float64Array, Int32Array, UInt32Array, UInt64Array};

    pub fn f64(v: Vec<f64>) -> ArrayRef {
        Arc::new(Float64Array::from(v))
    }
    pub fn f64_opt(v: Vec<Option<f64>>) -> ArrayRef {
        Arc::new(Float64Array::from(v))
    }
    pub fn u32(v: Vec<u32>) -> ArrayRef {
        Arc::new(UInt32Array::from(v))
    }
    pub fn u64(v: Vec<u64>) -> ArrayRef {
        Arc::new(UInt64Array::from(v))
    }
    pub fn i32(v: Vec<i32>) -> ArrayRef {
        Arc::new(Int32Array::from(v))
    }
    pub fn bool(v: Vec<bool>) -> ArrayRef {
        Arc::new(BooleanArray::from(v))
    }
    pub fn str<S: AsRef<str>>(v: &[S]) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(v.iter().map(|s| s.as_ref())))
    }
}

/// Makes a batch from columns in schema order (the writer re-checks names and types).
pub fn batch(schema: &Schema, lists: &Lists, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let s = schema.arrow_schema(lists);
    RecordBatch::try_new(s, columns).map_err(|e| Error::Invalid(format!("building a `{}` batch: {e}", schema.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::domains;

    fn mixtures_batch(d: &[String], w: Vec<Vec<f64>>) -> RecordBatch {
        let s = Schema::get("mixtures");
        let mut cols = vec![col::u32((0..w[0].len() as u32).collect())];
        for c in w {
            cols.push(col::f64(c));
        }
        batch(s, &domains(d), cols).unwrap()
    }

    #[test]
    fn parquet_round_trip_keeps_columns_and_provenance() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.parquet");
        let d: Vec<String> = vec!["web".into(), "code".into()];
        let b = mixtures_batch(&d, vec![vec![0.25, 1.0], vec![0.75, 0.0]]);
        let prov = Provenance::new("test", "0.0.0", &["test", "--flag"]);
        write_parquet(
            &p,
            Schema::get("mixtures"),
            &domains(&d),
            &b,
            &[(crate::keys::SAMPLER.into(), "{}".into())],
            &prov,
        )
        .unwrap();
        let t = read_parquet(&p, Schema::get("mixtures")).unwrap();
        assert_eq!(t.rows(), 2);
        assert_eq!(t.list("domain").unwrap(), d.as_slice());
        assert_eq!(t.f64_values("weight.code").unwrap(), vec![0.75, 0.0]);
        assert_eq!(Provenance::from_metadata(&t.metadata).unwrap(), prov);
    }

    #[test]
    fn reading_with_the_wrong_schema_names_the_file_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.parquet");
        let d: Vec<String> = vec!["web".into()];
        let b = mixtures_batch(&d, vec![vec![1.0]]);
        let prov = Provenance::new("test", "0.0.0", &[]);
        write_parquet(
            &p,
            Schema::get("mixtures"),
            &domains(&d),
            &b,
            &[(crate::keys::SAMPLER.into(), "{}".into())],
            &prov,
        )
        .unwrap();
        let e = read_parquet(&p, Schema::get("dataset")).unwrap_err().to_string();
        assert!(e.contains("m.parquet") && e.contains("expected a `dataset` file"), "{e}");
    }

    #[test]
    fn truncated_parquet_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.parquet");
        let d: Vec<String> = vec!["web".into()];
        let b = mixtures_batch(&d, vec![vec![1.0]]);
        let prov = Provenance::new("test", "0.0.0", &[]);
        write_parquet(
            &p,
            Schema::get("mixtures"),
            &domains(&d),
            &b,
            &[(crate::keys::SAMPLER.into(), "{}".into())],
            &prov,
        )
        .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_parquet(&p, Schema::get("mixtures")).unwrap_err().to_string();
        assert!(e.contains("m.parquet") && e.contains("not a valid parquet file"), "{e}");
    }
}
