//! Mixture files: `mixtures.parquet` (the contract), the paper's mixture CSV
//! (`index,train_the_pile_<d>,…`) and regmix YAML configs (`train: {train_the_pile_<d>: w}`).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use regmix_core::columns::{self, WEIGHT};
use regmix_core::schema::{domains as dom_lists, Schema};
use regmix_core::table::{batch, col, read_parquet, write_parquet};
use regmix_core::{atomic, domain, Error, Provenance, Result};

/// Rows must sum to 1 within this; the paper's CSVs are rounded to 3 decimals, so they are
/// renormalised on import instead.
pub const SUM_TOLERANCE: f64 = 1e-6;

/// A set of mixtures over the same domains.
#[derive(Clone, Debug, PartialEq)]
pub struct Mixtures {
    pub domains: Vec<String>,
    pub ids: Vec<u32>,
    /// One row per mixture, one weight per domain.
    pub weights: Vec<Vec<f64>>,
}

impl Mixtures {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The weights of mixture `id`.
    pub fn get(&self, id: u32) -> Option<&[f64]> {
        self.ids.iter().position(|&i| i == id).map(|r| self.weights[r].as_slice())
    }

    /// Checks ids are unique and each row is a distribution; errors name file, row and field.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let mut seen = HashSet::new();
        for (r, (id, w)) in self.ids.iter().zip(&self.weights).enumerate() {
            if !seen.insert(*id) {
                return Err(Error::value(path, r, "mixture_id", format!("mixture_id {id} appears twice")));
            }
            for (d, x) in self.domains.iter().zip(w) {
                if !(x.is_finite() && (0.0..=1.0).contains(x)) {
                    return Err(Error::value(
                        path,
                        r,
                        &columns::wide(WEIGHT, d),
                        format!("{x} is not in [0, 1] (mixture {id})"),
                    ));
                }
            }
            let s: f64 = w.iter().sum();
            if (s - 1.0).abs() > SUM_TOLERANCE {
                return Err(Error::value(
                    path,
                    r,
                    "weight.*",
                    format!("weights of mixture {id} sum to {s}, not 1 (tolerance {SUM_TOLERANCE})"),
                ));
            }
        }
        Ok(())
    }

    /// Reads and validates `mixtures.parquet`.
    pub fn read_parquet(path: &Path) -> Result<Self> {
        let t = read_parquet(path, Schema::get("mixtures"))?;
        let domains = t.list("domain")?.to_vec();
        let ids = t.u32("mixture_id")?.values().to_vec();
        let weights = t.wide_rows(WEIGHT, &domains)?;
        let m = Mixtures { domains, ids, weights };
        m.validate(path)?;
        Ok(m)
    }

    /// Writes `mixtures.parquet` atomically; `sampler` is the sampler's description (or null
    /// for imported mixtures).
    pub fn write_parquet(&self, path: &Path, sampler: &serde_json::Value, prov: &Provenance) -> Result<()> {
        self.validate(path)?;
        let lists = dom_lists(&self.domains);
        let mut cols = vec![col::u32(self.ids.clone())];
        for j in 0..self.domains.len() {
            cols.push(col::f64(self.weights.iter().map(|w| w[j]).collect()));
        }
        let s = Schema::get("mixtures");
        let b = batch(s, &lists, cols)?;
        write_parquet(path, s, &lists, &b, &[(regmix_core::keys::SAMPLER.into(), sampler.to_string())], prov)
    }

    /// Reads any mixture file by extension: `.parquet`, `.csv` (the paper's), `.yaml`/`.yml`
    /// (one regmix config, its id from its content: [`content_id`]).
    pub fn read_any(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => Mixtures::read_parquet(path),
            Some("csv") => read_paper_csv(path),
            Some("yaml") | Some("yml") => {
                let (domains, w) = read_regmix_yaml(path)?;
                let id = content_id(&domains, &w);
                Ok(Mixtures { domains, ids: vec![id], weights: vec![w] })
            }
            _ => Err(Error::format(path, "mixture", "unknown extension; expected .parquet, .csv, .yaml or .yml")),
        }
    }

    /// Reorders (and fills with 0) the domains to `order`; errors if a weighted domain is missing.
    pub fn align_to(&self, order: &[String], path: &Path) -> Result<Self> {
        for (j, d) in self.domains.iter().enumerate() {
            if !order.contains(d) && self.weights.iter().any(|w| w[j] > 0.0) {
                return Err(Error::Invalid(format!(
                    "{}: domain `{d}` has weight but is not among the shards' domains {order:?}",
                    path.display()
                )));
            }
        }
        let idx: Vec<Option<usize>> = order.iter().map(|d| self.domains.iter().position(|x| x == d)).collect();
        let absent: Vec<&String> = order.iter().zip(&idx).filter(|(_, i)| i.is_none()).map(|(d, _)| d).collect();
        if !absent.is_empty() {
            log::warn!(
                "{}: names no weight for {} of the shards' domains ({}): they are trained at weight 0",
                path.display(),
                absent.len(),
                absent.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        let weights =
            self.weights.iter().map(|w| idx.iter().map(|i| i.map(|i| w[i]).unwrap_or(0.0)).collect()).collect();
        Ok(Mixtures { domains: order.to_vec(), ids: self.ids.clone(), weights })
    }
}

/// The id of a mixture that comes without one (a YAML config): from its content, the first 31
/// bits of the sha256 of its nonzero weights by domain name, so two different mixtures never
/// share a run folder and the same mixture always gets the same one.
pub fn content_id(domains: &[String], weights: &[f64]) -> u32 {
    let mut pairs: Vec<(&String, f64)> =
        domains.iter().zip(weights.iter().copied()).filter(|(_, w)| *w > 0.0).collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let text: String = pairs.iter().map(|(d, w)| format!("{d}={:016x}\n", w.to_bits())).collect();
    u32::from_str_radix(&regmix_core::digest::sha256(text.as_bytes())[..8], 16).expect("hex") & 0x7fff_ffff
}

/// `train_the_pile_pile_cc` → `pile_cc`; `train_web` → `web`.
pub fn domain_from_key(key: &str) -> String {
    let k = key.strip_prefix("train_").or_else(|| key.strip_prefix("valid_")).unwrap_or(key);
    let k = k.strip_prefix("the_pile_").unwrap_or(k);
    domain::normalize(k)
}

/// Reads the paper's mixture CSV: `index` and `train_the_pile_<domain>` columns. Rows are
/// renormalised (the published file is rounded to 3 decimals).
pub fn read_paper_csv(path: &Path) -> Result<Mixtures> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| Error::format(path, "mixture CSV", e))?;
    let headers = rdr.headers().map_err(|e| Error::format(path, "mixture CSV", e))?.clone();
    let idx_col = headers
        .iter()
        .position(|h| h == "index")
        .ok_or_else(|| Error::format(path, "mixture CSV", "no `index` column"))?;
    let cols: Vec<usize> = (0..headers.len()).filter(|&i| headers[i].starts_with("train_")).collect();
    if cols.is_empty() {
        return Err(Error::format(path, "mixture CSV", "no `train_*` columns"));
    }
    let domains: Vec<String> = cols.iter().map(|&i| domain_from_key(&headers[i])).collect();
    let mut ids = Vec::new();
    let mut weights = Vec::new();
    for (r, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| Error::format(path, "mixture CSV", e))?;
        let id: u32 = rec[idx_col]
            .trim()
            .parse()
            .map_err(|e| Error::value(path, r + 1, "index", format!("`{}`: {e}", &rec[idx_col])))?;
        let mut w = Vec::with_capacity(cols.len());
        for &c in &cols {
            let x: f64 = rec[c]
                .trim()
                .parse()
                .map_err(|e| Error::value(path, r + 1, &headers[c], format!("`{}`: {e}", &rec[c])))?;
            w.push(x);
        }
        let s: f64 = w.iter().sum();
        if !(s > 0.0) {
            return Err(Error::value(path, r + 1, "train_*", "weights sum to 0"));
        }
        ids.push(id);
        weights.push(w.iter().map(|x| x / s).collect());
    }
    let m = Mixtures { domains, ids, weights };
    m.validate(path)?;
    Ok(m)
}

/// Reads the `train:` section of a regmix YAML config; weights are renormalised.
pub fn read_regmix_yaml(path: &Path) -> Result<(Vec<String>, Vec<f64>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| Error::format(path, "regmix YAML", e))?;
    let train = v
        .get("train")
        .and_then(|t| t.as_mapping())
        .ok_or_else(|| Error::format(path, "regmix YAML", "no `train:` mapping"))?;
    let mut domains = Vec::new();
    let mut w = Vec::new();
    for (k, x) in train {
        let k = k.as_str().ok_or_else(|| Error::format(path, "regmix YAML", "a `train:` key is not a string"))?;
        let x = x.as_f64().ok_or_else(|| Error::format(path, "regmix YAML", format!("`train.{k}` is not a number")))?;
        domains.push(domain_from_key(k));
        w.push(x);
    }
    let s: f64 = w.iter().sum();
    if !(s > 0.0) {
        return Err(Error::format(path, "regmix YAML", "train weights sum to 0"));
    }
    Ok((domains, w.iter().map(|x| x / s).collect()))
}

/// One mixture as a regmix YAML config in the paper's layout: `train:` weights under
/// `<prefix><domain>` keys, `valid:` with every domain at 1.0, then `extra` lines.
pub fn regmix_yaml(domains: &[String], weights: &[f64], prefix: &str, extra: &[(String, String)]) -> String {
    let mut s = String::from("train:\n");
    for (d, w) in domains.iter().zip(weights) {
        let v = format!("{w:.6}");
        let v = v.trim_end_matches('0').trim_end_matches('.');
        let v = if v.is_empty() { "0" } else { v };
        writeln!(s, "  {prefix}{d}: {v}").unwrap();
    }
    s.push_str("valid:\n");
    let vprefix = prefix.replacen("train_", "valid_", 1);
    for d in domains {
        writeln!(s, "  {vprefix}{d}: 1.0").unwrap();
    }
    for (k, v) in extra {
        writeln!(s, "{k}: {v}").unwrap();
    }
    s
}

/// Writes one YAML per mixture into `dir` as `n<mixture_id>.yaml` (the paper's naming).
pub fn write_yaml_dir(m: &Mixtures, dir: &Path, prefix: &str, extra: &[(String, String)]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (id, w) in m.ids.iter().zip(&m.weights) {
        let p = dir.join(format!("n{id}.yaml"));
        atomic::write_bytes(&p, regmix_yaml(&m.domains, w, prefix, extra).as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yaml_mixtures_id_comes_from_its_weights() {
        let d: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let id = content_id(&d, &[0.5, 0.5, 0.0]);
        assert_eq!(
            id,
            content_id(&["b".into(), "a".into()], &[0.5, 0.5]),
            "zero weights and domain order do not matter"
        );
        assert_ne!(id, content_id(&d, &[0.4, 0.6, 0.0]));
        assert!(id < 1 << 31);
    }

    fn two() -> Mixtures {
        Mixtures {
            domains: vec!["web".into(), "code".into()],
            ids: vec![0, 1],
            weights: vec![vec![0.5, 0.5], vec![1.0, 0.0]],
        }
    }

    #[test]
    fn parquet_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.parquet");
        let m = two();
        m.write_parquet(&p, &serde_json::Value::Null, &Provenance::new("t", "0", &[])).unwrap();
        assert_eq!(Mixtures::read_parquet(&p).unwrap(), m);
    }

    #[test]
    fn weights_that_do_not_sum_to_one_are_refused_naming_row_and_mixture() {
        let mut m = two();
        m.weights[1] = vec![0.7, 0.2];
        let e = m.validate(Path::new("bad.parquet")).unwrap_err().to_string();
        assert!(e.contains("bad.parquet") && e.contains("row 1") && e.contains("mixture 1"), "{e}");
    }

    #[test]
    fn yaml_round_trip_in_the_papers_layout() {
        let dir = tempfile::tempdir().unwrap();
        let m = two();
        write_yaml_dir(&m, dir.path(), "train_the_pile_", &[("seed".into(), "42".into())]).unwrap();
        let text = std::fs::read_to_string(dir.path().join("n0.yaml")).unwrap();
        assert!(text.starts_with("train:\n  train_the_pile_web: 0.5\n"), "{text}");
        assert!(text.contains("valid_the_pile_code: 1.0"));
        let (d, w) = read_regmix_yaml(&dir.path().join("n0.yaml")).unwrap();
        assert_eq!(d, m.domains);
        assert_eq!(w, vec![0.5, 0.5]);
    }

    #[test]
    fn domain_keys_of_the_paper_map_to_domain_names() {
        assert_eq!(domain_from_key("train_the_pile_pile_cc"), "pile_cc");
        assert_eq!(domain_from_key("train_the_pile_gutenberg_pg_19"), "gutenberg_pg_19");
        assert_eq!(domain_from_key("train_web"), "web");
    }

    #[test]
    fn align_to_fills_missing_domains_and_refuses_unknown_weighted_ones() {
        let m = two();
        let a = m.align_to(&["code".into(), "books".into(), "web".into()], Path::new("m")).unwrap();
        assert_eq!(a.weights[0], vec![0.5, 0.0, 0.5]);
        assert!(m.align_to(&["web".into()], Path::new("m")).is_err());
    }
}
