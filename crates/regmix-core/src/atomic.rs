//! Atomic output: write under a temporary name in the same folder, rename when complete; a
//! folder of several files is staged whole and swapped in at once ([`OutputDir`]).
//!
//! **Invariant:** a file under its final name is always complete, and a folder written through
//! [`OutputDir`] holds the files of one run of its writer, never a mix of two. A writer that
//! fails or is killed leaves at most `*.tmp-<pid>` files and folders, which [`clean_stale`]
//! removes on the next run. Nothing but a regular file (or, for [`OutputDir`], a folder) is
//! ever replaced: a symlink, FIFO or device at an output path is an error.

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

    /// Flushes, syncs and renames the file to its final name.
    pub fn commit(mut self) -> Result<()> {
        let w = self.file.take().expect("committed twice");
        let f = w.into_inner().map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        drop(f);
        fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        Ok(())
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

/// An error unless `dest` is absent or a regular file: a writer renames over what is there,
/// which would replace a device, a FIFO or a symlink (and what it points to would not get the
/// output). Give the real path instead of a link.
pub fn refuse_non_regular(dest: &Path) -> Result<()> {
    let Ok(md) = fs::symlink_metadata(dest) else { return Ok(()) };
    let t = md.file_type();
    if t.is_file() {
        return Ok(());
    }
    use std::os::unix::fs::FileTypeExt;
    let what = if t.is_symlink() {
        "a symbolic link (give the path it points to)"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(Error::Invalid(format!("{}: refusing to replace it with an output: it is {what}", dest.display())))
}

/// Removes `<name>.tmp-<pid>` files beside `dest` whose writer is no longer running: what a
/// killed writer of the same output left.
fn remove_dead_temporaries(dest: &Path) -> Result<()> {
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else { return Ok(()) };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!("{}.tmp-", name.to_string_lossy());
    let Ok(rd) = fs::read_dir(dir) else { return Ok(()) };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = n.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() && e.file_type().is_ok_and(|t| t.is_file()) {
            fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}

/// The temporary name of `dest`: `<name>.tmp-<pid>` in the same folder.
pub fn tmp_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    dest.with_file_name(name)
}

/// Writes `bytes` to `dest` atomically.
pub fn write_bytes(dest: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes).map_err(|e| Error::io(f.tmp_path().to_path_buf(), e))?;
    f.commit()
}

/// A folder written as a unit: files go into a staging folder beside it
/// (`<name>.tmp-<pid>`), and [`OutputDir::commit`] swaps the staging folder for the old one in
/// one `renameat2(RENAME_EXCHANGE)` (or renames it into place when there is none), then removes
/// the old. A reader sees the old folder or the new one, never half of each; a writer killed
/// before the swap leaves only the staging folder, which the next writer removes.
pub struct OutputDir {
    dest: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl OutputDir {
    /// Starts writing `dest`: removes staging folders that earlier, killed writers left beside
    /// it and creates this one's.
    pub fn create(dest: &Path) -> Result<OutputDir> {
        if let Ok(md) = fs::symlink_metadata(dest) {
            if !md.is_dir() {
                return Err(Error::Invalid(format!("{}: refusing to replace it with an output folder: it is not a folder", dest.display())));
            }
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let name = dest.file_name().ok_or_else(|| Error::Invalid(format!("{}: not a folder name", dest.display())))?.to_string_lossy().into_owned();
        for e in fs::read_dir(&parent).map_err(|e| Error::io(&parent, e))?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&format!("{name}.tmp-")) && e.file_type().is_ok_and(|t| t.is_dir()) {
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
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes()).map_err(|_| Error::Invalid(format!("{}: NUL in path", a.display())))?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes()).map_err(|_| Error::Invalid(format!("{}: NUL in path", b.display())))?;
    // SAFETY: both are valid NUL-terminated paths that live across the call; renameat2 reads
    // them and touches no other memory.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE) };
    if r != 0 {
        return Err(Error::io(b, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Removes temporary files left in `dir` (not recursive) by writers that were killed.
/// Returns how many were removed.
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
        if name.to_string_lossy().contains(".tmp-") && entry.file_type().is_ok_and(|t| t.is_file()) {
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
        fs::create_dir_all(dir.path().join("fit.tmp-999999")).unwrap();
        let o = OutputDir::create(&out).unwrap();
        assert!(!dir.path().join("fit.tmp-999999").exists());
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
        fs::write(dir.path().join("dataset.parquet.tmp-999999"), b"half").unwrap();
        fs::write(dir.path().join("other.parquet.tmp-999999"), b"not ours").unwrap();
        write_bytes(&dest, b"whole").unwrap();
        assert!(!dir.path().join("dataset.parquet.tmp-999999").exists());
        assert!(dir.path().join("other.parquet.tmp-999999").exists());
    }

    #[test]
    fn clean_stale_removes_only_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.parquet"), b"x").unwrap();
        fs::write(dir.path().join("b.parquet.tmp-123"), b"x").unwrap();
        assert_eq!(clean_stale(dir.path()).unwrap(), 1);
        assert!(dir.path().join("a.parquet").exists());
    }
}
