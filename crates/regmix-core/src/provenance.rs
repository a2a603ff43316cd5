//! Provenance: every file records which binary wrote it, its version and its arguments.

use std::collections::HashMap;

/// Who wrote a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    pub producer: String,
    pub version: String,
    pub arguments: Vec<String>,
}

pub const KEY_SCHEMA: &str = crate::keys::SCHEMA;
pub const KEY_SCHEMA_VERSION: &str = crate::keys::SCHEMA_VERSION;
pub const KEY_PRODUCER: &str = crate::keys::PRODUCER;
pub const KEY_PRODUCER_VERSION: &str = crate::keys::PRODUCER_VERSION;
pub const KEY_ARGUMENTS: &str = crate::keys::ARGUMENTS;

/// The keys every file carries, whatever its schema.
pub const COMMON_KEYS: [&str; 5] = [KEY_SCHEMA, KEY_SCHEMA_VERSION, KEY_PRODUCER, KEY_PRODUCER_VERSION, KEY_ARGUMENTS];

impl Provenance {
    /// The provenance of the running binary: its name, the given version, and `std::env::args`.
    pub fn from_env(producer: &str, version: &str) -> Self {
        Provenance {
            producer: producer.to_string(),
            version: version.to_string(),
            arguments: std::env::args().collect(),
        }
    }

    /// For tests and library callers that have no command line.
    pub fn new(producer: &str, version: &str, arguments: &[&str]) -> Self {
        Provenance {
            producer: producer.to_string(),
            version: version.to_string(),
            arguments: arguments.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn to_metadata(&self) -> Vec<(String, String)> {
        vec![
            (KEY_PRODUCER.into(), self.producer.clone()),
            (KEY_PRODUCER_VERSION.into(), self.version.clone()),
            (KEY_ARGUMENTS.into(), serde_json::to_string(&self.arguments).unwrap()),
        ]
    }

    pub fn from_metadata(md: &HashMap<String, String>) -> Option<Self> {
        Some(Provenance {
            producer: md.get(KEY_PRODUCER)?.clone(),
            version: md.get(KEY_PRODUCER_VERSION)?.clone(),
            arguments: serde_json::from_str(md.get(KEY_ARGUMENTS)?).ok()?,
        })
    }
}
