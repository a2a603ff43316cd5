//! Tidy checks over the workspace's own sources, run by `cargo test`: the modules of every
//! crate import each other one way. A module that names another through a `crate::` path
//! (`use crate::model::Model`, `crate::horizon::value(..)`, `use crate::{a, b::C}`, a name the
//! crate root re-exports) depends on it; a circle of such dependencies is a failure that
//! names the modules and the lines that close it. Comments and string literals do not count;
//! test modules inside a file count as the file. `main.rs` and `src/bin/` are crate roots of
//! their own and are left out.
//!
//! The crate root (`lib.rs`) is not in the graph: it declares every module, so it is above
//! them all, and what it defines for all of them (a crate's `Error`, a stage's `Args`) is
//! theirs to use. The circles checked are those among the modules below it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate's modules: module path ("" for the root, `a::b` for `src/a/b.rs` or
/// `src/a/b/mod.rs`) → its source file, relative to `src/`, and its text.
type Sources = BTreeMap<String, (String, String)>;

/// A dependency of one module on another: the target and where the reference is (`file:line`).
type Edges = BTreeMap<String, BTreeMap<String, String>>;

/// The text with comments and the contents of string and char literals blanked (newlines kept,
/// so line numbers stay right).
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (c.get(i + 1) == Some(&'"') || c.get(i + 1) == Some(&'#'))
            && (i == 0 || !ident_char(c[i - 1]))
        {
            // A raw string r"…" or r#"…"#: ends at a quote followed by as many #.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            out.extend(std::iter::repeat_n(' ', j + 1 - i));
            i = j + 1;
            while i < c.len() && !(c[i] == '"' && (1..=hashes).all(|h| c.get(i + h) == Some(&'#'))) {
                out.push(blank(c[i]));
                i += 1;
            }
            out.extend(std::iter::repeat_n(' ', (hashes + 1).min(c.len() - i)));
            i += hashes + 1;
        } else if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' && i + 1 < c.len() {
                    out.push(' ');
                    i += 1;
                }
                out.push(blank(c[i]));
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c[i] == '\'' && (c.get(i + 1) == Some(&'\\') || c.get(i + 2) == Some(&'\'')) {
            // A char literal ('x', '\n', '\''); a lifetime ('a) has no closing quote.
            out.push(' ');
            i += 1;
            if c.get(i) == Some(&'\\') {
                out.push(' ');
                i += 1;
            }
            while i < c.len() && c[i] != '\'' {
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn ident_char(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// The paths of a use tree starting at `s` (after `crate::` or `use `): `a::b::C` is one,
/// `a::{b, c::D as E, self}` three. Each path is its segments and the name it binds.
fn use_tree(s: &str) -> Vec<(Vec<String>, String)> {
    fn parse(s: &[char], i: &mut usize, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
        let mut segs = prefix.to_vec();
        loop {
            while *i < s.len() && s[*i].is_whitespace() {
                *i += 1;
            }
            if *i < s.len() && s[*i] == '{' {
                *i += 1;
                loop {
                    parse(s, i, &segs, out);
                    while *i < s.len() && s[*i].is_whitespace() {
                        *i += 1;
                    }
                    match s.get(*i) {
                        Some(',') => *i += 1,
                        Some('}') => {
                            *i += 1;
                            return;
                        }
                        _ => return,
                    }
                    while *i < s.len() && s[*i].is_whitespace() {
                        *i += 1;
                    }
                    if s.get(*i) == Some(&'}') {
                        *i += 1;
                        return;
                    }
                }
            }
            let start = *i;
            while *i < s.len() && (ident_char(s[*i]) || s[*i] == '*') {
                *i += 1;
            }
            if *i == start {
                break;
            }
            segs.push(s[start..*i].iter().collect());
            while *i < s.len() && s[*i].is_whitespace() {
                *i += 1;
            }
            if s.get(*i) == Some(&':') && s.get(*i + 1) == Some(&':') {
                *i += 2;
            } else {
                break;
            }
        }
        let mut name = segs.last().cloned().unwrap_or_default();
        let rest: String = s[*i..s.len().min(*i + 64)].iter().collect();
        if let Some(alias) = rest.strip_prefix(" as ").or_else(|| rest.trim_start().strip_prefix("as ")) {
            let alias: String = alias.trim_start().chars().take_while(|&ch| ident_char(ch)).collect();
            *i += rest.find(&alias).unwrap_or(0) + alias.len();
            name = alias;
        }
        if segs.len() > prefix.len() {
            out.push((segs, name));
        }
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    parse(&chars, &mut 0, &[], &mut out);
    out
}

/// The module a path names: its longest prefix that is a module, else the module a name the
/// root re-exports comes from, else the root.
fn resolve(segs: &[String], modules: &BTreeSet<String>, reexports: &BTreeMap<String, String>) -> String {
    for k in (1..=segs.len()).rev() {
        let m = segs[..k].join("::");
        if modules.contains(&m) {
            return m;
        }
    }
    segs.first().and_then(|s| reexports.get(s)).cloned().unwrap_or_default()
}

/// Every module's `crate::` dependencies on the other modules of its crate.
fn edges(sources: &Sources) -> Edges {
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let stripped: BTreeMap<&String, String> = sources.iter().map(|(m, (_, text))| (m, strip(text))).collect();
    // Names the root re-exports (`pub use cv::{fit_cv, Fitted};`) → the module they come from.
    let mut reexports = BTreeMap::new();
    if let Some(root) = stripped.get(&String::new()) {
        for (pos, _) in root.match_indices("pub use ") {
            for (segs, name) in use_tree(&root[pos + "pub use ".len()..]) {
                let segs: Vec<String> = segs.into_iter().skip_while(|s| s == "crate" || s == "self").collect();
                let m = resolve(&segs, &modules, &BTreeMap::new());
                if !m.is_empty() && name != "self" && name != "*" {
                    reexports.insert(name, m);
                }
            }
        }
    }
    let mut out = Edges::new();
    for (module, text) in stripped.iter().filter(|(m, _)| !m.is_empty()) {
        let file = &sources[*module].0;
        for (pos, _) in text.match_indices("crate::") {
            let before = text[..pos].chars().next_back();
            if before.is_some_and(|ch| ident_char(ch) || ch == '$') {
                continue;
            }
            let line = text[..pos].matches('\n').count() + 1;
            for (segs, _) in use_tree(&text[pos + "crate::".len()..]) {
                let target = resolve(&segs, &modules, &reexports);
                if !target.is_empty() && &target != *module {
                    out.entry((*module).clone()).or_default().entry(target).or_insert_with(|| format!("{file}:{line}"));
                }
            }
        }
    }
    out
}

/// Every circle among the modules: per strongly connected component of more than one module,
/// one shortest circle through its first module, each step with the line that makes it.
fn circles(edges: &Edges) -> Vec<String> {
    let nodes: BTreeSet<&String> = edges.keys().chain(edges.values().flat_map(|t| t.keys())).collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for t in edges.get(&n).into_iter().flat_map(|t| t.keys()) {
                if seen.insert(t.clone()) {
                    stack.push(t.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> = nodes.iter().map(|&n| (n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for &n in &nodes {
        if done.contains(n) || !reachable[n].contains(n) {
            continue;
        }
        let component: BTreeSet<&String> =
            nodes.iter().copied().filter(|&m| reachable[n].contains(m) && reachable[m].contains(n)).collect();
        done.extend(component.iter().map(|m| (*m).clone()));
        // Breadth-first from n back to n inside the component.
        let mut parent: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([n.clone()]);
        'search: while let Some(m) = queue.pop_front() {
            for t in edges.get(&m).into_iter().flat_map(|t| t.keys()) {
                if !component.contains(t) {
                    continue;
                }
                if t == n {
                    parent.insert(String::from("\0end"), m.clone());
                    break 'search;
                }
                if !parent.contains_key(t) {
                    parent.insert(t.clone(), m.clone());
                    queue.push_back(t.clone());
                }
            }
        }
        let mut path = vec![n.clone()];
        let mut at = parent["\0end"].clone();
        while &at != n {
            path.push(at.clone());
            at = parent[&at].clone();
        }
        path[1..].reverse();
        path.push(n.clone());
        let steps: Vec<String> =
            path.windows(2).map(|w| format!("{} → {} ({})", w[0], w[1], edges[&w[0]][&w[1]])).collect();
        let members: Vec<&str> = component.iter().map(|m| m.as_str()).collect();
        out.push(format!("modules {{{}}} import each other in a circle: {}", members.join(", "), steps.join(", ")));
    }
    out
}

/// The library modules of the crate at `dir`: every `.rs` under `src/` but `main.rs` and `bin/`.
fn sources(dir: &Path) -> Sources {
    fn walk(src: &Path, d: &Path, out: &mut Sources) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(src).unwrap().to_str().unwrap().to_string();
            if p.is_dir() {
                if rel != "bin" {
                    walk(src, &p, out);
                }
            } else if rel.ends_with(".rs") && rel != "main.rs" {
                let stem = rel.trim_end_matches(".rs");
                let module = match stem {
                    "lib" => String::new(),
                    s => s.trim_end_matches("/mod").replace('/', "::"),
                };
                out.insert(module, (rel.clone(), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = Sources::new();
    let src = dir.join("src");
    if src.is_dir() {
        walk(&src, &src, &mut out);
    }
    out
}

#[test]
fn no_crate_imports_its_own_modules_in_a_circle() {
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    crates.sort();
    let mut failures = Vec::new();
    let mut modules = 0;
    for dir in &crates {
        let s = sources(dir);
        modules += s.len();
        let name = dir.file_name().unwrap().to_str().unwrap();
        failures.extend(circles(&edges(&s)).into_iter().map(|c| format!("{name}: {c}")));
    }
    // Not a pass by finding nothing: the workspace has about twenty crates, some eighty modules.
    assert!(
        crates.len() >= 15 && modules >= 60,
        "{} crates, {modules} modules read under {}",
        crates.len(),
        root.display()
    );
    assert!(
        failures.is_empty(),
        "import circles (move what both sides need into a module below them):\n{}",
        failures.join("\n")
    );
}

fn crate_of(files: &[(&str, &str)]) -> Sources {
    files
        .iter()
        .map(|(m, text)| {
            (
                m.to_string(),
                (if m.is_empty() { "lib.rs".into() } else { format!("{}.rs", m.replace("::", "/")) }, text.to_string()),
            )
        })
        .collect()
}

#[test]
fn the_checker_finds_a_circle_however_the_path_is_written() {
    let lib = "pub mod a; pub mod b; pub mod c;\npub use c::Gadget;";
    // a → b through a grouped use, b → c through an inline path, c → a through a re-export.
    let circle = crate_of(&[
        ("", lib),
        ("a", "//! Uses b.\nuse crate::{b::{self, Thing}, wide};\n"),
        ("b", "fn f() -> u32 {\n    crate::c::g()\n}\n"),
        ("c", "pub struct Gadget;\nfn h() { let _ = crate::Gadget; }\nuse crate::a as other;\n"),
    ]);
    let found = circles(&edges(&circle));
    assert_eq!(
        found,
        vec!["modules {a, b, c} import each other in a circle: a → b (a.rs:2), b → c (b.rs:2), c → a (c.rs:3)"]
    );
    // The same references in comments, strings, char literals and `$crate::` are not imports,
    // nor is a use of what the root itself defines (a crate's `Error`).
    let quiet = crate_of(&[
        ("", "pub mod a; pub mod b;\npub enum Error {}"),
        ("a", "use crate::b::Thing;\nuse crate::Error;\n"),
        ("b", "// crate::a::x\n/* crate::a::y */\nconst S: &str = \"crate::a::z\";\nconst R: &str = r#\"crate::a\"#;\nconst Q: char = '\"'; macro_rules! m { () => { $crate::a::q } }\nfn e() -> crate::Error { todo!() }\n"),
    ]);
    assert_eq!(circles(&edges(&quiet)), Vec::<String>::new());
}
