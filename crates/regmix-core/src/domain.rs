//! Domain names: `[a-z0-9_]+`, so they can stand in column names and file names unquoted.

use crate::{Error, Result};

/// Checks that `name` is a valid domain name.
pub fn validate(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::Invalid("empty domain name".into()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
        return Err(Error::Invalid(format!(
            "domain name `{name}` has the character {c:?}; domain names use [a-z0-9_] only"
        )));
    }
    Ok(())
}

/// Turns a free-form label (`Pile-CC`, `Ubuntu IRC`, `train_the_pile_arxiv`) into a domain
/// name: lower case, runs of other characters become one `_`.
pub fn normalize(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut pending_sep = false;
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            if pending_sep && !out.is_empty() {
                out.push('_');
            }
            pending_sep = false;
            out.push(c.to_ascii_lowercase());
        } else {
            pending_sep = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_maps_pile_set_names_to_domain_names() {
        assert_eq!(normalize("Pile-CC"), "pile_cc");
        assert_eq!(normalize("Ubuntu IRC"), "ubuntu_irc");
        assert_eq!(normalize("  DM Mathematics "), "dm_mathematics");
        assert_eq!(normalize("Gutenberg (PG-19)"), "gutenberg_pg_19");
    }

    #[test]
    fn validate_rejects_upper_case_and_dots() {
        assert!(validate("pile_cc").is_ok());
        assert!(validate("Pile").is_err());
        assert!(validate("a.b").is_err());
        assert!(validate("").is_err());
    }
}
