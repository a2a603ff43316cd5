//! tokenize-shard end to end on small generated corpora.

#[path = "../../../tests/support/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regmix_core::schema::Schema;
use regmix_core::shard::TokenShard;
use regmix_core::table::read_parquet;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tokenize-shard"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Three domains of varied English-like text, `n` documents each.
fn corpus(dir: &Path, n: usize) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let words: Vec<&str> = "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if so no will can more out up into do any your what some could them about than other time these two may then first only über naïve 日本".split(' ').collect();
    for (k, d) in ["web", "code", "books"].iter().enumerate() {
        let mut s = String::new();
        for i in 0..n {
            let len = 10 + (i * 7 + k * 3) % 60;
            let text: Vec<&str> = (0..len).map(|j| words[(i * 31 + j * 17 + k) % words.len()]).collect();
            s.push_str(&serde_json::json!({"text": format!("{} {d} doc {i}.\n", text.join(" "))}).to_string());
            s.push('\n');
        }
        std::fs::write(input.join(format!("{d}-0.jsonl")), s).unwrap();
    }
    input
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn shard_files(out: &Path) -> Vec<PathBuf> {
    let t = read_parquet(&out.join("manifest.parquet"), Schema::get("shard_manifest")).unwrap();
    let f = t.str("file").unwrap();
    (0..t.rows()).map(|i| out.join(f.value(i))).collect()
}

#[test]
fn help_matches_golden() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    regmix_core::cli::check_golden(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/help.txt"),
        &String::from_utf8(out.stdout).unwrap(),
    );
}

#[test]
fn shards_decode_back_to_the_documents_and_manifest_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path(), 300);
    let out = dir.path().join("out");
    let o = run(&["--input", s(&input), "--output", s(&out), "--train-bpe", "600", "--valid-fraction", "0.1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = read_parquet(&out.join("manifest.parquet"), Schema::get("shard_manifest")).unwrap();
    assert_eq!(m.metadata["regmix.token_type"], "uint16");
    let docs: u64 = m.u64("documents").unwrap().values().iter().sum();
    assert_eq!(docs, 900);
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let eos: u32 = m.metadata["regmix.eos_id"].parse().unwrap();
    let mut decoded_docs = 0;
    for (i, f) in shard_files(&out).iter().enumerate() {
        let shard = TokenShard::open(f).unwrap();
        let toks = shard.to_vec();
        assert_eq!(toks.len() as u64, m.u64("tokens").unwrap().value(i));
        assert_eq!(*toks.last().unwrap(), eos, "every document ends with EOS");
        for doc in toks.split(|t| *t == eos).filter(|d| !d.is_empty()) {
            let text = tok.decode(doc, false).unwrap();
            assert!(text.contains(" doc "), "{text:?}");
            decoded_docs += 1;
        }
    }
    assert_eq!(decoded_docs, 900);
}

#[test]
fn rerun_skips_finished_inputs_and_redoes_interrupted_ones_identically() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path(), 100);
    let out = dir.path().join("out");
    let args = ["--input", s(&input), "--output", s(&out), "--train-bpe", "400"];
    assert!(run(&args).status.success());
    let before: Vec<Vec<u8>> = shard_files(&out).iter().map(|f| std::fs::read(f).unwrap()).collect();
    let o = run(&args);
    assert!(String::from_utf8_lossy(&o.stderr).contains("3 inputs skipped"), "{}", String::from_utf8_lossy(&o.stderr));
    // An interrupted input: its marker never got written, and a temporary file lies about.
    let done = out.join(".done");
    let marker = std::fs::read_dir(&done).unwrap().next().unwrap().unwrap().path();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    let half = out.join(format!("{}.tmp-999999", m["shards"][0]["file"].as_str().unwrap()));
    std::fs::remove_file(&marker).unwrap();
    std::fs::write(&half, b"half").unwrap();
    let o = run(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 inputs skipped") && err.contains("removed 1 temporary"), "{err}");
    assert!(!half.exists());
    let after: Vec<Vec<u8>> = shard_files(&out).iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(before, after, "redone shards are identical");
}

#[test]
fn validation_split_does_not_depend_on_file_order_or_names() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path(), 200);
    let tokenizer_run = dir.path().join("t");
    assert!(run(&["--input", s(&input), "--output", s(&tokenizer_run), "--train-bpe", "400"]).status.success());
    let tok = tokenizer_run.join("tokenizer.json");
    // The same documents, shuffled into other files.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let web = std::fs::read_to_string(input.join("web-0.jsonl")).unwrap();
    let mut lines: Vec<&str> = web.lines().collect();
    lines.reverse();
    let (a, b) = lines.split_at(77);
    std::fs::write(other.join("web-1.jsonl"), a.join("\n")).unwrap();
    std::fs::write(other.join("web-2.jsonl"), b.join("\n")).unwrap();
    let count_valid = |inp: &Path, out: &Path| -> u64 {
        assert!(run(&["--input", s(inp), "--output", s(out), "--tokenizer", s(&tok), "--valid-fraction", "0.2"])
            .status
            .success());
        let m = read_parquet(&out.join("manifest.parquet"), Schema::get("shard_manifest")).unwrap();
        let (d, sp, t) = (m.str("domain").unwrap(), m.str("split").unwrap(), m.u64("tokens").unwrap());
        (0..m.rows()).filter(|&i| d.value(i) == "web" && sp.value(i) == "valid").map(|i| t.value(i)).sum()
    };
    let one = count_valid(&input.join("web-0.jsonl"), &dir.path().join("o1"));
    let two = count_valid(&other, &dir.path().join("o2"));
    assert!(one > 0);
    assert_eq!(one, two, "the same documents land in the validation split");
}

#[test]
fn a_bad_record_names_file_and_line_and_leaves_no_shard() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path(), 50);
    let web = input.join("web-0.jsonl");
    let mut text = std::fs::read_to_string(&web).unwrap();
    text.push_str("{\"text\": broken\n");
    std::fs::write(&web, text).unwrap();
    let out = dir.path().join("out");
    let o = run(&["--input", s(&web), "--output", s(&out), "--train-bpe", "300"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("web-0.jsonl:51") && err.contains("malformed JSON"), "{err}");
    assert!(!out.join("web/train/").read_dir().map(|mut d| d.next().is_some()).unwrap_or(false));
    // With --skip-bad-records the record is counted in the manifest.
    let o = run(&["--input", s(&web), "--output", s(&out), "--train-bpe", "300", "--skip-bad-records"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = read_parquet(&out.join("manifest.parquet"), Schema::get("shard_manifest")).unwrap();
    assert!(m.u64("bad_records").unwrap().values().iter().all(|&b| b == 1));
}

#[test]
fn an_input_without_a_domain_prefix_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("-0.jsonl");
    std::fs::write(&f, "{\"text\": \"x\"}\n").unwrap();
    let o = run(&["--input", s(&f), "--output", s(&dir.path().join("o")), "--train-bpe", "300"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty domain"));
}

/// Every output opens in pyarrow (REGMIX_PYTHON names a Python with pyarrow; `make test` sets it).
#[test]
fn outputs_open_in_pyarrow() {
    let Some(py) = std::env::var_os("REGMIX_PYTHON") else {
        skip::skip_required("REGMIX_PYTHON, a Python with pyarrow: not set (make test sets it to its venv)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path(), 50);
    let out = dir.path().join("out");
    assert!(run(&["--input", s(&input), "--output", s(&out), "--train-bpe", "300"]).status.success());
    let script = r#"
import sys, pyarrow.parquet as pq, pyarrow.ipc as ipc, pyarrow as pa
out = sys.argv[1]
m = pq.read_table(out + "/manifest.parquet")
assert m.schema.metadata[b"regmix.schema"] == b"shard_manifest"
assert pq.read_metadata(out + "/manifest.parquet").metadata[b"regmix.producer"] == b"tokenize-shard"
for f in m.column("file").to_pylist():
    with pa.memory_map(out + "/" + f) as src:
        t = ipc.open_file(src).read_all()
        assert t.schema.field("tokens").type == pa.uint16(), t.schema
        assert t.num_rows > 0
print("ok", m.num_rows)
"#;
    let o = Command::new(py).arg("-c").arg(script).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Five inputs over three domains, for the array tests.
fn corpus5(dir: &Path) -> PathBuf {
    let input = corpus(dir, 120);
    for (d, from) in [("web-1.jsonl", "code-0.jsonl"), ("books-1.jsonl", "web-0.jsonl")] {
        let text = std::fs::read_to_string(input.join(from)).unwrap();
        let lines: Vec<String> = text.lines().take(70).map(|l| l.replace(" doc ", " other doc ")).collect();
        std::fs::write(input.join(d), lines.join("\n") + "\n").unwrap();
    }
    input
}

/// The manifest's rows (metadata aside) and every shard's tokens, in the manifest's order.
fn rows_and_tokens(out: &Path) -> (Vec<String>, Vec<Vec<u32>>) {
    let m = read_parquet(&out.join("manifest.parquet"), Schema::get("shard_manifest")).unwrap();
    let (d, sp, f, src) =
        (m.str("domain").unwrap(), m.str("split").unwrap(), m.str("file").unwrap(), m.str("source").unwrap());
    let (docs, toks, bytes, bad) =
        (m.u64("documents").unwrap(), m.u64("tokens").unwrap(), m.u64("bytes").unwrap(), m.u64("bad_records").unwrap());
    let rows = (0..m.rows())
        .map(|i| {
            format!(
                "{} {} {} {} {} {} {} {}",
                d.value(i),
                sp.value(i),
                f.value(i),
                src.value(i),
                docs.value(i),
                toks.value(i),
                bytes.value(i),
                bad.value(i)
            )
        })
        .collect();
    let tokens = shard_files(out).iter().map(|f| TokenShard::open(f).unwrap().to_vec()).collect();
    (rows, tokens)
}

#[test]
fn array_tasks_then_merge_equal_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus5(dir.path());
    let t = dir.path().join("t");
    let o = run(&["--input", s(&input), "--output", s(&t), "--train-bpe", "500", "--train-only"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!t.join("manifest.parquet").exists(), "--train-only writes only the tokenizer");
    let tok = t.join("tokenizer.json");
    let one = dir.path().join("one");
    assert!(run(&["--input", s(&input), "--output", s(&one), "--tokenizer", s(&tok), "--valid-fraction", "0.1"])
        .status
        .success());
    let expected = rows_and_tokens(&one);
    for k in 1..=3usize {
        let out = dir.path().join(format!("k{k}"));
        // The tasks run at once, as an array's do, into one folder.
        let tasks: Vec<_> = (0..k)
            .map(|i| {
                bin()
                    .args([
                        "--input",
                        s(&input),
                        "--output",
                        s(&out),
                        "--tokenizer",
                        s(&tok),
                        "--valid-fraction",
                        "0.1",
                    ])
                    .args(["--array-index", &i.to_string(), "--array-count", &k.to_string()])
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in tasks {
            assert!(c.wait().unwrap().success());
        }
        assert!(!out.join("manifest.parquet").exists(), "tasks write no manifest");
        let o = run(&[
            "--input",
            s(&input),
            "--output",
            s(&out),
            "--tokenizer",
            s(&tok),
            "--valid-fraction",
            "0.1",
            "--merge",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(rows_and_tokens(&out), expected, "K = {k}");
    }
}

#[test]
fn merge_names_each_input_whose_task_has_not_run_and_its_task() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus5(dir.path());
    let t = dir.path().join("t");
    assert!(run(&["--input", s(&input), "--output", s(&t), "--train-bpe", "400", "--train-only"]).status.success());
    let tok = t.join("tokenizer.json");
    let out = dir.path().join("out");
    let task = |i: &str| {
        run(&[
            "--input",
            s(&input),
            "--output",
            s(&out),
            "--tokenizer",
            s(&tok),
            "--array-index",
            i,
            "--array-count",
            "2",
        ])
    };
    assert!(task("0").status.success());
    let o = run(&["--input", s(&input), "--output", s(&out), "--tokenizer", s(&tok), "--merge", "--array-count", "2"]);
    assert_eq!(o.status.code(), Some(2));
    // Sorted inputs: books-0, books-1, code-0, web-0, web-1; task 1 of 2 owns books-1 and web-0.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("2 input files have no completion marker made with these settings (tokenizer, --valid-fraction, --text-field, --domain-from, the file's size and time): {} (array task 1 of 2), {} (array task 1 of 2)", input.join("books-1.jsonl").display(), input.join("web-0.jsonl").display())),
        "{err}"
    );
}

#[test]
fn a_rerun_task_redoes_only_its_own_share() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus5(dir.path());
    let t = dir.path().join("t");
    assert!(run(&["--input", s(&input), "--output", s(&t), "--train-bpe", "400", "--train-only"]).status.success());
    let tok = t.join("tokenizer.json");
    let out = dir.path().join("out");
    let task = |i: &str| {
        run(&[
            "--input",
            s(&input),
            "--output",
            s(&out),
            "--tokenizer",
            s(&tok),
            "--array-index",
            i,
            "--array-count",
            "2",
        ])
    };
    assert!(task("0").status.success() && task("1").status.success());
    // Task 1 died before its markers were written: remove them; task 0's stay.
    for m in std::fs::read_dir(out.join(".done")).unwrap() {
        let p = m.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        if n.starts_with("books-1-") || n.starts_with("web-0-") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let err = String::from_utf8_lossy(&task("1").stderr).into_owned();
    assert!(
        err.contains("array task 1 of 2 done") && err.contains("0 inputs skipped as done") && !err.contains("code-0"),
        "{err}"
    );
}

#[test]
fn a_failed_retokenization_leaves_no_manifest_over_replaced_shards() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path(), 60);
    let out = dir.path().join("out");
    let args = ["--input", s(&input), "--output", s(&out), "--train-bpe", "300"];
    assert!(run(&args).status.success());
    // code-0 changes (its shards are rewritten), then web-0 fails on a bad line.
    let code = input.join("code-0.jsonl");
    std::fs::write(
        &code,
        std::fs::read_to_string(&code).unwrap().lines().take(30).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let web = input.join("web-0.jsonl");
    std::fs::write(&web, std::fs::read_to_string(&web).unwrap() + "{\"text\": broken\n").unwrap();
    assert_eq!(run(&args).status.code(), Some(2));
    assert!(!out.join("manifest.parquet").exists());
}

#[test]
fn a_users_file_with_tmp_in_its_name_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path(), 40);
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("web/train")).unwrap();
    std::fs::write(out.join("web/train/notes.tmp-1"), b"mine").unwrap();
    std::fs::write(out.join("draft.tmp-2.txt"), b"mine").unwrap();
    assert!(run(&["--input", s(&input), "--output", s(&out), "--train-bpe", "300"]).status.success());
    assert!(out.join("web/train/notes.tmp-1").exists() && out.join("draft.tmp-2.txt").exists());
}

#[test]
fn a_line_over_max_record_bytes_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path(), 30);
    let web = input.join("web-0.jsonl");
    std::fs::write(&web, std::fs::read_to_string(&web).unwrap() + &format!("{{\"text\": \"{}\"}}\n", "z".repeat(3000)))
        .unwrap();
    let o = run(&[
        "--input",
        s(&web),
        "--output",
        s(&dir.path().join("o")),
        "--train-bpe",
        "300",
        "--max-record-bytes",
        "2000",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:31: a record of more than 2000 bytes", web.display())), "{err}");
}

#[test]
fn the_same_corpus_at_another_path_gets_the_same_shard_names_and_bytes() {
    // Shard names (and so the shards' identity that runs record) derive from each input's path
    // inside its --input folder, not from where the folder lies: a corpus copied to another
    // machine or folder tokenizes to the same files.
    let dir = tempfile::tempdir().unwrap();
    let here = corpus(dir.path(), 40);
    let elsewhere = dir.path().join("a/b/in");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for e in std::fs::read_dir(&here).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), elsewhere.join(e.file_name())).unwrap();
    }
    let (out1, out2) = (dir.path().join("out1"), dir.path().join("out2"));
    let o = run(&["--input", s(&here), "--output", s(&out1), "--train-bpe", "400", "--valid-fraction", "0.1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tok = out1.join("tokenizer.json");
    let o = run(&["--input", s(&elsewhere), "--output", s(&out2), "--tokenizer", s(&tok), "--valid-fraction", "0.1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names = |out: &Path| -> Vec<String> {
        shard_files(out).iter().map(|f| f.strip_prefix(out).unwrap().display().to_string()).collect()
    };
    assert_eq!(names(&out1), names(&out2));
    for (a, b) in shard_files(&out1).iter().zip(shard_files(&out2)) {
        assert_eq!(TokenShard::open(a).unwrap().to_vec(), TokenShard::open(&b).unwrap().to_vec(), "{}", a.display());
    }
}

#[test]
fn two_inputs_at_the_same_relative_path_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let a = corpus(&dir.path().join("a"), 5);
    let b = corpus(&dir.path().join("b"), 5);
    let out = dir.path().join("out");
    let o = run(&["--input", s(&a), "--input", s(&b), "--output", s(&out), "--train-bpe", "300"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("the same shard names") && err.contains("books-0.jsonl"), "{err}");
}
