//! One writer per output: an advisory lock (`flock`) on a lock file beside the output, holding
//! the pid and host of the process that has it. A second writer gets an error naming the
//! holder instead of interleaving its files with the first's. The kernel releases the lock
//! when its holder dies, however it dies, so a stale lock file (one whose holder is gone)
//! is simply taken over: there is nothing to break by hand.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

/// The lock file of an output: `<parent>/.<name>.lock` for a file or a folder that is replaced
/// as a whole, so the lock outlives the output's own renames.
pub fn path_for(output: &Path) -> PathBuf {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    output.with_file_name(format!(".{name}.lock"))
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "this host".into())
}

impl Lock {
    /// Takes the lock of `output` (see [`path_for`]); `what` says in the error what is locked.
    pub fn output(output: &Path, what: &str) -> Result<Lock> {
        // A device, FIFO or link at the output path is refused before anything is created
        // beside it (a lock file next to /dev/null would be one in /dev).
        if std::fs::symlink_metadata(output).is_ok_and(|m| !m.is_dir()) {
            crate::atomic::refuse_non_regular(output)?;
        }
        Lock::at(&path_for(output), what)
    }

    /// Takes the lock file `path` itself (e.g. `runs/<id>/.lock`).
    pub fn at(path: &Path, what: &str) -> Result<Lock> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| unwritable(dir, path, e))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| unwritable(dir, path, e))?;
        // SAFETY: flock on a descriptor this function owns; LOCK_NB makes it return at once.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Invalid(format!(
                    "{what} is being written by another process ({}; lock {}): wait for it to end, or stop it",
                    if holder.is_empty() { "holder unknown" } else { holder },
                    path.display()
                )));
            }
            return Err(Error::io(path, err));
        }
        let me = format!("pid {} on {}", std::process::id(), host());
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(me.as_bytes()))
            .map_err(|e| Error::io(path, e))?;
        Ok(Lock { file, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The error of a lock file that cannot be created: a folder the process may not write to
/// says so, since the lock (and the output) need it writable.
fn unwritable(dir: &Path, lock: &Path, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM | libc::EROFS) => Error::Invalid(format!(
            "{}: cannot create the lock file {} ({e}): the folder must be writable, since the output and its lock are written there",
            dir.display(),
            lock.display()
        )),
        _ => Error::io(lock, e),
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // The file stays (removing it would race with a process that has just opened it);
        // the lock goes with the descriptor.
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_naming_the_holder_and_gets_the_lock_once_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("fit");
        let first = Lock::output(&out, "fit output").unwrap();
        assert_eq!(first.path(), dir.path().join(".fit.lock"));
        let e = Lock::output(&out, "fit output").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("fit output is being written by another process (pid {} on ", std::process::id())),
            "{e}"
        );
        drop(first);
        Lock::output(&out, "fit output").unwrap();
    }
}
