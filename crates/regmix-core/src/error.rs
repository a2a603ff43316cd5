//! The error type shared by the libraries. Every variant names the file it concerns.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}: not a valid {kind} file: {message}")]
    Format { path: PathBuf, kind: &'static str, message: String },

    #[error("{path}: column `{column}`: expected {expected}, found {found}")]
    Column { path: PathBuf, column: String, expected: String, found: String },

    #[error("{path}: metadata key `{key}`: {message}")]
    Metadata { path: PathBuf, key: String, message: String },

    #[error("{path}: row {row}, field `{field}`: {message}")]
    Value { path: PathBuf, row: usize, field: String, message: String },

    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub fn format(path: impl Into<PathBuf>, kind: &'static str, message: impl ToString) -> Self {
        Error::Format { path: path.into(), kind, message: message.to_string() }
    }

    pub fn metadata(path: impl Into<PathBuf>, key: &str, message: impl ToString) -> Self {
        Error::Metadata { path: path.into(), key: key.to_string(), message: message.to_string() }
    }

    pub fn value(
        path: impl Into<PathBuf>,
        row: usize,
        field: &str,
        message: impl ToString,
    ) -> Self {
        Error::Value { path: path.into(), row, field: field.to_string(), message: message.to_string() }
    }
}
