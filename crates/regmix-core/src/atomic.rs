//! Atomic output: write under a temporary name in the same folder, rename when complete; a
//! folder of several files is staged whole and swapped in at once ([`OutputDir`]).
//!
//! **Invariant:** a file under its final name is always complete, and a folder written through
//! [`OutputDir`] holds the files of one run of its writer, never a mix of two. Temporary names
//! are the writer's own, `<name>.tmp-<pid>-<random>`; a writer that fails (at write, flush, sync
//! or rename) removes its temporary, one that is killed leaves it, and the next writer removes
//! only names of that exact form whose process is gone ([`clean_stale`]), never a user's file
//! that merely contains `.tmp-`. Nothing but a regular file (or, for [`OutputDir`], a folder
//! that is empty or holds its writer's own output) is ever replaced: a symlink, FIFO or device
//! at an output path is an error, and so is an output that is, holds or lies in one of the
//! stage's inputs ([`refuse_overlap`]).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A file being written. [`AtomicFile::commit`] renames it to its final name; dropping it
/// without committing removes the temporary file.
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        refuse_non_regular(&dest)?;
        if let Some(dir) = dest.parent() {
            if !dir.as_os_str().is_empty() {
                fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
        }
        remove_dead_temporaries(&dest)?;
        let tmp = tmp_path(&dest);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(AtomicFile { tmp, dest, file: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    pub fn path(&self) -> &Path {
        &self.dest
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes, syncs and renames the file to its final name. If any of the three fails the
    /// temporary is removed: a failed commit leaves nothing behind.
    pub fn commit(mut self) -> Result<()> {
        let w = self.file.take().expect("committed twice");
        // Errors name the final path: the temporary is gone once this returns.
        let done = w
            .into_inner()
            .map_err(|e| Error::io(&self.dest, e.into_error()))
            .and_then(|f| f.sync_all().map_err(|e| Error::io(&self.dest, e)))
            .and_then(|()| fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e)));
        if done.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        done
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("write after commit").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("flush after commit").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// What a file that is not a regular file is, for an error that names it ("a FIFO").
pub fn kind_of(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// An error unless `dest` is absent or a regular file: a writer renames over what is there,
/// which would replace a device, a FIFO or a symlink (and what it points to would not get the
/// output). Give the real path instead of a link.
pub fn refuse_non_regular(dest: &Path) -> Result<()> {
    let Ok(md) = fs::symlink_metadata(dest) else { return Ok(()) };
    let t = md.file_type();
    if t.is_file() {
        return Ok(());
    }
    let what = if t.is_symlink() { "a symbolic link (give the path it points to)" } else { kind_of(&t) };
    Err(Error::Invalid(format!("{}: refusing to replace it with an output: it is {what}", dest.display())))
}

/// Removes `<name>.tmp-<pid>-<random>` files beside `dest` whose writer is no longer running:
/// what a killed writer of the same output left.
fn remove_dead_temporaries(dest: &Path) -> Result<()> {
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else { return Ok(()) };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(rd) = fs::read_dir(dir) else { return Ok(()) };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if stale_temporary_of(&n).is_some_and(|stem| stem == name.to_string_lossy())
            && e.file_type().is_ok_and(|t| t.is_file())
        {
            fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}

/// The temporary name of `dest`: `<name>.tmp-<pid>-<random>` in the same folder (the pid says
/// whose it is, the random part keeps two temporaries of one process apart).
pub fn tmp_path(dest: &Path) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{:08x}", std::process::id(), h.finish() as u32));
    dest.with_file_name(name)
}

/// If `name` is a temporary of this module's form (`<stem>.tmp-<pid>-<8 hex digits>`, or the
/// older `<stem>.tmp-<pid>`) whose process is no longer running, its stem. Anything else (a
/// user's `notes.tmp-draft`, a live writer's temporary) is `None`: it is not ours to remove.
pub fn stale_temporary_of(name: &str) -> Option<&str> {
    let (stem, tail) = name.rsplit_once(".tmp-")?;
    let pid = match tail.split_once('-') {
        Some((pid, rand)) if rand.len() == 8 && rand.bytes().all(|b| b.is_ascii_hexdigit()) => pid,
        Some(_) => return None,
        None => tail,
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid: u32 = pid.parse().ok()?;
    let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
    (!alive && !stem.is_empty()).then_some(stem)
}

/// Writes `bytes` to `dest` atomically.
pub fn write_bytes(dest: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes).map_err(|e| Error::io(f.tmp_path().to_path_buf(), e))?;
    f.commit()
}

/// A folder written as a unit: files go into a staging folder beside it
/// (`<name>.tmp-<pid>-<random>`), and [`OutputDir::commit`] swaps the staging folder for the old one in
/// one `renameat2(RENAME_EXCHANGE)` (or renames it into place when there is none), then removes
/// the old. A reader sees the old folder or the new one, never half of each; a writer killed
/// before the swap leaves only the staging folder, which the next writer removes.
pub struct OutputDir {
    dest: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl OutputDir {
    /// [`OutputDir::create`] for a writer that owns what it replaces: `dest`, if it exists,
    /// must be an empty folder or one that `is_ours` recognises as this writer's output (`what`
    /// names it in the error, e.g. "a fit"). A folder of other files is never replaced.
    pub fn create_owned(dest: &Path, what: &str, is_ours: impl Fn(&Path) -> bool) -> Result<OutputDir> {
        if fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
            let empty = fs::read_dir(dest).map_err(|e| Error::io(dest, e))?.next().is_none();
            if !empty && !is_ours(dest) {
                return Err(Error::Invalid(format!(
                    "{}: refusing to replace this folder with {what}: it is not empty and is not {what} (give a new or empty folder)",
                    dest.display()
                )));
            }
        }
        OutputDir::create(dest)
    }

    /// Starts writing `dest`: removes staging folders that earlier, killed writers left beside
    /// it and creates this one's. Replaces whatever folder is at `dest` when committed: a
    /// writer should use [`OutputDir::create_owned`].
    pub fn create(dest: &Path) -> Result<OutputDir> {
        if let Ok(md) = fs::symlink_metadata(dest) {
            if !md.is_dir() {
                return Err(Error::Invalid(format!(
                    "{}: refusing to replace it with an output folder: it is not a folder",
                    dest.display()
                )));
            }
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let name = dest
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{}: not a folder name", dest.display())))?
            .to_string_lossy()
            .into_owned();
        for e in fs::read_dir(&parent).map_err(|e| Error::io(&parent, e))?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if stale_temporary_of(&n) == Some(name.as_str()) && e.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
                log::info!("removed {}, left by a writer that was killed", e.path().display());
            }
        }
        let staging = tmp_path(dest);
        fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        Ok(OutputDir { dest: dest.to_path_buf(), staging, committed: false })
    }

    /// Where the files go until [`OutputDir::commit`].
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The folder's final name.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Swaps the staged folder in.
    pub fn commit(mut self) -> Result<()> {
        if fs::symlink_metadata(&self.dest).is_ok() {
            exchange(&self.staging, &self.dest)?;
            // The staging name now holds the old folder.
            fs::remove_dir_all(&self.staging).map_err(|e| Error::io(&self.staging, e))?;
        } else {
            fs::rename(&self.staging, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// Exchanges two paths atomically (Linux `renameat2` with `RENAME_EXCHANGE`).
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{}: NUL in path", a.display())))?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{}: NUL in path", b.display())))?;
    // SAFETY: both are valid NUL-terminated paths that live across the call; renameat2 reads
    // them and touches no other memory.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE) };
    if r != 0 {
        return Err(Error::io(b, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Removes temporary files left in `dir` (not recursive) by writers that were killed: only
/// names of [`tmp_path`]'s form whose process is gone ([`stale_temporary_of`]). Returns how
/// many were removed.
pub fn clean_stale(dir: &Path) -> Result<usize> {
    let mut n = 0;
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        if stale_temporary_of(&name.to_string_lossy()).is_some() && entry.file_type().is_ok_and(|t| t.is_file()) {
            fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// [`clean_stale`] in `dir` and every folder below it.
pub fn clean_stale_recursive(dir: &Path) -> Result<usize> {
    let mut n = clean_stale(dir)?;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                n += clean_stale_recursive(&e.path())?;
            }
        }
    }
    Ok(n)
}

/// `path` made absolute with its symbolic links resolved, for the part of it that exists (an
/// output often does not exist yet).
fn resolved(path: &Path) -> PathBuf {
    let abs =
        if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(path) };
    let mut head = abs.clone();
    let mut tail: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(c) = fs::canonicalize(&head) {
            return tail.iter().rev().fold(c, |p, n| p.join(n));
        }
        match (head.file_name().map(|n| n.to_os_string()), head.parent()) {
            (Some(n), Some(p)) => {
                tail.push(n);
                head = p.to_path_buf();
            }
            _ => return abs,
        }
    }
}

/// An error if the output `output` is one of the stage's inputs, lies inside one, or holds
/// one: replacing it, or a folder around it, would destroy what the stage reads. `inputs`
/// pairs each input's flag (`--dataset`) with its path.
pub fn refuse_overlap(output: &Path, output_flag: &str, inputs: &[(&str, &Path)]) -> Result<()> {
    let out = resolved(output);
    for (flag, input) in inputs {
        let inp = resolved(input);
        let how = if out == inp {
            "is"
        } else if inp.starts_with(&out) {
            "holds"
        } else if out.starts_with(&inp) {
            "lies inside"
        } else {
            continue;
        };
        return Err(Error::Invalid(format!(
            "{output_flag} {}: the output {how} the input {flag} {}; writing it would replace what this stage reads: give another {output_flag}",
            output.display(),
            input.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"half").unwrap();
        }
        assert!(!dest.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn committed_file_appears_whole_under_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.bin");
        write_bytes(&dest, b"whole").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"whole");
        assert_eq!(fs::read_dir(dest.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_fifo_a_symlink_or_a_folder_at_the_output_path_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let real = dir.path().join("real");
        fs::write(&real, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        for (p, what) in [(&fifo, "a FIFO"), (&link, "a symbolic link"), (&dir.path().to_path_buf(), "a folder")] {
            let e = write_bytes(p, b"x").unwrap_err().to_string();
            assert!(e.contains(&format!("refusing to replace it with an output: it is {what}")), "{e}");
        }
        assert_eq!(fs::read(&real).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }

    #[test]
    fn an_output_folder_is_swapped_in_whole_and_a_killed_writers_staging_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("fit");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("model.json"), b"old").unwrap();
        fs::write(out.join("report.parquet"), b"old").unwrap();
        // A writer killed before its swap left this behind.
        fs::create_dir_all(dir.path().join("fit.tmp-999999-0badcafe")).unwrap();
        let o = OutputDir::create_owned(&out, "a fit", |d| d.join("model.json").exists()).unwrap();
        assert!(!dir.path().join("fit.tmp-999999-0badcafe").exists());
        fs::write(o.path().join("model.json"), b"new").unwrap();
        // Until the commit, readers see the old folder whole.
        assert_eq!(fs::read(out.join("model.json")).unwrap(), b"old");
        o.commit().unwrap();
        assert_eq!(fs::read(out.join("model.json")).unwrap(), b"new");
        assert!(!out.join("report.parquet").exists(), "nothing of the old folder is left");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_killed_writers_temporary_is_removed_by_the_next_writer_of_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dataset.parquet");
        fs::write(dir.path().join("dataset.parquet.tmp-999999-0badcafe"), b"half").unwrap();
        fs::write(dir.path().join("other.parquet.tmp-999999-0badcafe"), b"not ours").unwrap();
        write_bytes(&dest, b"whole").unwrap();
        assert!(!dir.path().join("dataset.parquet.tmp-999999-0badcafe").exists());
        assert!(dir.path().join("other.parquet.tmp-999999-0badcafe").exists());
    }

    #[test]
    fn clean_stale_removes_only_dead_writers_temporaries_not_users_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.parquet"), b"x").unwrap();
        fs::write(dir.path().join("b.parquet.tmp-999999-0123abcd"), b"x").unwrap();
        fs::write(dir.path().join("c.parquet.tmp-999999"), b"x").unwrap();
        fs::write(dir.path().join("notes.tmp-draft.txt"), b"user's").unwrap();
        fs::write(dir.path().join("mine.tmp-1-2"), b"user's").unwrap();
        let live = dir.path().join(format!("d.parquet.tmp-{}-0123abcd", std::process::id()));
        fs::write(&live, b"a live writer's").unwrap();
        assert_eq!(clean_stale(dir.path()).unwrap(), 2);
        assert!(dir.path().join("a.parquet").exists() && dir.path().join("notes.tmp-draft.txt").exists());
        assert!(dir.path().join("mine.tmp-1-2").exists() && live.exists());
    }

    #[test]
    fn temporaries_carry_the_pid_and_a_random_part() {
        let (a, b) = (tmp_path(Path::new("/d/x.parquet")), tmp_path(Path::new("/d/x.parquet")));
        let n = a.file_name().unwrap().to_str().unwrap().to_string();
        assert!(n.starts_with(&format!("x.parquet.tmp-{}-", std::process::id())), "{n}");
        assert_ne!(a, b);
    }

    #[test]
    fn a_failed_commit_removes_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // The rename fails: a folder holds the final name.
        let dest = dir.path().join("out");
        let f = AtomicFile::create(&dest).unwrap();
        fs::create_dir_all(dest.join("x")).unwrap();
        let tmp = f.tmp_path().to_path_buf();
        assert!(f.commit().is_err());
        assert!(!tmp.exists(), "the temporary of a failed commit is left behind");
    }

    #[test]
    fn a_folder_of_other_files_is_never_replaced_by_an_output_folder() {
        let dir = tempfile::tempdir().unwrap();
        let proj = dir.path().join("proj");
        fs::create_dir_all(&proj).unwrap();
        fs::write(proj.join("notes.md"), b"keep").unwrap();
        let e = OutputDir::create_owned(&proj, "a fit", |d| d.join("model.json").exists()).err().unwrap().to_string();
        assert!(e.contains("refusing to replace this folder with a fit: it is not empty and is not a fit"), "{e}");
        assert_eq!(fs::read(proj.join("notes.md")).unwrap(), b"keep");
        let empty = dir.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        OutputDir::create_owned(&empty, "a fit", |_| false).unwrap().commit().unwrap();
    }

    #[test]
    fn an_output_that_is_holds_or_lies_in_an_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dir.path().join("proj/dataset.parquet");
        fs::create_dir_all(ds.parent().unwrap()).unwrap();
        fs::write(&ds, b"x").unwrap();
        let inputs = [("--dataset", ds.as_path())];
        let e = |o: &Path| refuse_overlap(o, "--output", &inputs).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e(&ds).contains("the output is the input --dataset"), "{}", e(&ds));
        assert!(e(&dir.path().join("proj")).contains("the output holds the input --dataset"));
        assert!(e(&ds.join("fit")).contains("the output lies inside the input --dataset"));
        refuse_overlap(&dir.path().join("fit"), "--output", &inputs).unwrap();
        // Through a relative path or a link, the same file.
        std::os::unix::fs::symlink(dir.path().join("proj"), dir.path().join("link")).unwrap();
        assert!(e(&dir.path().join("link/dataset.parquet")).contains("the output is the input"));
    }
}
