//! The error type shared by the libraries. Every variant names the file it concerns.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// ENOSPC, however it reached us (a bare `io::Error`, or one wrapped by the Arrow or
    /// Parquet writer): said as what it is, with the path, never as a malformed file.
    #[error("{path}: the disk is full (no space left on device): free space there or write elsewhere")]
    DiskFull { path: PathBuf },

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
        if source.raw_os_error() == Some(libc::ENOSPC) {
            return Error::DiskFull { path: path.into() };
        }
        Error::Io { path: path.into(), source }
    }

    /// A file that is not what it should be. The Arrow and Parquet writers report their I/O
    /// failures through here too; a full disk among them is [`Error::DiskFull`].
    pub fn format(path: impl Into<PathBuf>, kind: &'static str, message: impl ToString) -> Self {
        let message = message.to_string();
        if is_disk_full(&message) {
            return Error::DiskFull { path: path.into() };
        }
        Error::Format { path: path.into(), kind, message }
    }

    pub fn metadata(path: impl Into<PathBuf>, key: &str, message: impl ToString) -> Self {
        Error::Metadata { path: path.into(), key: key.to_string(), message: message.to_string() }
    }

    pub fn value(path: impl Into<PathBuf>, row: usize, field: &str, message: impl ToString) -> Self {
        Error::Value { path: path.into(), row, field: field.to_string(), message: message.to_string() }
    }
}

/// Whether an error's text is ENOSPC's (`No space left on device (os error 28)`): what a
/// wrapped `io::Error` leaves of itself once a library has turned it into a string.
pub fn is_disk_full(message: &str) -> bool {
    message.contains(&format!("(os error {})", libc::ENOSPC)) || message.contains("No space left on device")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_a_full_disk_with_its_path_whether_bare_or_wrapped_by_a_writer() {
        let bare = Error::io("/data/x.parquet", std::io::Error::from_raw_os_error(libc::ENOSPC)).to_string();
        assert_eq!(
            bare,
            "/data/x.parquet: the disk is full (no space left on device): free space there or write elsewhere"
        );
        let wrapped = std::io::Error::from_raw_os_error(libc::ENOSPC).to_string();
        let e = Error::format("/data/s.arrow", "arrow ipc", format!("Io error: {wrapped}")).to_string();
        assert!(e.starts_with("/data/s.arrow: the disk is full"), "{e}");
        assert!(Error::format("/data/s.arrow", "arrow ipc", "bad magic")
            .to_string()
            .contains("not a valid arrow ipc file"));
    }
}
