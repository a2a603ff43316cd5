//! The wide-table column names: `weight.<domain>`, `weight_std.<domain>`,
//! `valid_loss.<domain>`. The templates are declared in `schemas/`; this is the only place the
//! code spells their prefixes (a test checks that every template prefix in `schemas/` is one
//! of these).

pub const WEIGHT: &str = "weight.";
pub const WEIGHT_STD: &str = "weight_std.";
pub const VALID_LOSS: &str = "valid_loss.";

/// Every prefix a schema template may use.
pub const ALL: [&str; 3] = [WEIGHT, WEIGHT_STD, VALID_LOSS];

/// `prefix` + `name`: the column of one domain.
pub fn wide(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

/// The columns of `names` under `prefix`, in order.
pub fn wide_all(prefix: &str, names: &[String]) -> Vec<String> {
    names.iter().map(|n| wide(prefix, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnKind, Schema};

    #[test]
    fn every_template_prefix_in_the_schemas_is_declared_here() {
        for s in Schema::all() {
            for c in &s.columns {
                if let ColumnKind::Template { prefix, .. } = &c.kind {
                    assert!(
                        ALL.contains(&prefix.as_str()),
                        "schema {}: template prefix `{prefix}` is not in columns::ALL",
                        s.name
                    );
                }
            }
        }
    }
}
