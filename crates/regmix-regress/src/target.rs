//! Target expressions: a column (`valid_loss.pile_cc`), a weighted sum
//! (`0.7*valid_loss.web + 0.3*valid_loss.code`), or the mean of columns matching a pattern
//! (`mean(valid_loss.*)`).

use anyhow::{bail, Result};

/// A parsed target: terms (coefficient, column) summed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub expr: String,
    pub terms: Vec<(f64, String)>,
}

fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post),
    }
}

impl Target {
    /// Parses `expr` against the available `columns`.
    pub fn parse(expr: &str, columns: &[String]) -> Result<Target> {
        let e = expr.trim();
        let mut terms = Vec::new();
        if let Some(inner) = e.strip_prefix("mean(").and_then(|s| s.strip_suffix(')')) {
            let cols: Vec<&String> = columns.iter().filter(|c| glob_match(inner.trim(), c)).collect();
            if cols.is_empty() {
                bail!("target `{expr}`: no column matches `{inner}`");
            }
            let w = 1.0 / cols.len() as f64;
            terms.extend(cols.into_iter().map(|c| (w, c.clone())));
        } else {
            for part in e.split('+') {
                let part = part.trim();
                let (coef, col) = match part.split_once('*') {
                    Some((a, b)) => (
                        a.trim()
                            .parse::<f64>()
                            .map_err(|_| anyhow::anyhow!("target `{expr}`: `{a}` is not a number"))?,
                        b.trim(),
                    ),
                    None => (1.0, part),
                };
                if !columns.iter().any(|c| c == col) {
                    bail!("target `{expr}`: no column `{col}` (have: {})", columns.join(", "));
                }
                terms.push((coef, col.to_string()));
            }
        }
        Ok(Target { expr: expr.to_string(), terms })
    }

    /// Parses `expr` against a table's columns, each given with whether it is floating-point:
    /// a target is a blend of loss columns, so a term on any other column (`steps`,
    /// `mixture_id`) is refused with its name.
    pub fn parse_floats(expr: &str, columns: &[(String, bool)]) -> Result<Target> {
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        let t = Target::parse(expr, &names)?;
        for (_, col) in &t.terms {
            if !columns.iter().any(|(n, float)| n == col && *float) {
                bail!("target `{expr}`: column `{col}` is not floating-point; a target is built from loss columns such as valid_loss.<domain>");
            }
        }
        Ok(t)
    }

    /// Evaluates the target on each row, given a column lookup.
    pub fn eval(&self, rows: usize, col: impl Fn(&str) -> Result<Vec<f64>>) -> Result<Vec<f64>> {
        let mut y = vec![0.0; rows];
        for (c, name) in &self.terms {
            for (yi, v) in y.iter_mut().zip(col(name)?) {
                *yi += c * v;
            }
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<String> {
        vec!["valid_loss.a".into(), "valid_loss.b".into(), "weight.a".into()]
    }

    #[test]
    fn parses_a_column_a_sum_and_a_mean() {
        assert_eq!(Target::parse("valid_loss.a", &cols()).unwrap().terms, vec![(1.0, "valid_loss.a".into())]);
        let t = Target::parse("0.25*valid_loss.a + 0.75 * valid_loss.b", &cols()).unwrap();
        assert_eq!(t.terms[1], (0.75, "valid_loss.b".into()));
        let m = Target::parse("mean(valid_loss.*)", &cols()).unwrap();
        assert_eq!(m.terms.len(), 2);
        let y = m.eval(1, |c| Ok(if c.ends_with('a') { vec![2.0] } else { vec![4.0] })).unwrap();
        assert_eq!(y, vec![3.0]);
    }

    #[test]
    fn a_target_on_an_integer_column_is_refused_naming_it() {
        let cols = vec![("valid_loss.a".to_string(), true), ("steps".to_string(), false)];
        assert!(Target::parse_floats("valid_loss.a", &cols).is_ok());
        let e = Target::parse_floats("steps", &cols).unwrap_err().to_string();
        assert!(e.starts_with("target `steps`: column `steps` is not floating-point"), "{e}");
    }

    #[test]
    fn unknown_column_is_named() {
        let e = Target::parse("valid_loss.zz", &cols()).unwrap_err().to_string();
        assert!(e.contains("valid_loss.zz"));
    }
}
