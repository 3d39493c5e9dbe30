//! One run per output directory: `output_dir/train.lock`, held for the whole run, names its
//! holder (pid and host) so that a second run can say who has it.
//!
//! The lock itself is the operating system's advisory file lock on that file (`flock` on Unix,
//! `LockFileEx` on Windows), which the system drops when the holder's process ends however it
//! ends, SIGKILL included. A lock file left by a killed run is therefore free to take: the new
//! run takes it over and says whose it was. Where the file system has no such locks, the pid
//! decides instead: a holder on this host whose process is gone is stale.
//!
//! The file is removed when the run ends (error and Ctrl-C paths included, see
//! [`OutputLock::abandon`] for a process that exits without unwinding).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The lock file's name inside the output directory.
pub const LOCK_FILE: &str = "train.lock";

/// Who holds a lock, as written in the lock file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
}

impl Holder {
    /// This process.
    pub fn me() -> Self {
        Self {
            pid: std::process::id(),
            host: host_name(),
        }
    }

    /// Whether the holder's process still runs, as far as this host can tell (a holder on another
    /// host is taken to be running).
    fn running(&self) -> bool {
        if self.host != host_name() {
            return true;
        }
        if cfg!(target_os = "linux") {
            Path::new("/proc").join(self.pid.to_string()).exists()
        } else {
            true
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on host {}", self.pid, self.host)
    }
}

/// A held lock on an output directory; dropping it releases the lock and removes the file.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    file: File,
}

impl OutputLock {
    /// Takes the lock of `dir` (which must exist). Refuses, naming the holder, when another run
    /// holds it. Returns the lock and, when it took over the lock of a run that is gone, that
    /// run's holder.
    pub fn acquire(dir: &Path) -> Result<(Self, Option<Holder>)> {
        let path = dir.join(LOCK_FILE);
        let io = |e| Error::io(&path, e);
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            let previous = read_holder(&mut file);
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Err(in_use(&path, previous.as_ref())),
                Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                    // No advisory locks here: the recorded pid decides.
                    if let Some(h) = previous.as_ref().filter(|h| h.running()) {
                        return Err(in_use(&path, Some(h)));
                    }
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            // The previous holder may have removed the file between our open and our lock: the
            // lock we hold is then on a file nobody else will open. Start over on the new one.
            if !same_file(&file, &path) {
                continue;
            }
            let previous = read_holder(&mut file);
            let me = Holder::me();
            let text = serde_json::to_string(&me).expect("serializable") + "\n";
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            let stale = previous.filter(|h| *h != me);
            return Ok((Self { path, file }, stale));
        }
    }

    /// Removes `dir`'s lock file if this process holds it: for a process about to exit without
    /// running destructors (a second Ctrl-C). The system lock ends with the process anyway.
    pub fn abandon(dir: &Path) {
        let path = dir.join(LOCK_FILE);
        let holder = File::open(&path).ok().and_then(|mut f| read_holder(&mut f));
        if holder == Some(Holder::me()) {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Remove while still holding the lock, so no other run can have opened it meanwhile and
        // taken it; `file` is closed (and the lock released) after this.
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = self.file.unlock();
    }
}

/// The error of a lock held by another run.
fn in_use(path: &Path, holder: Option<&Holder>) -> Error {
    let who = holder.map_or_else(|| "an unnamed holder".to_string(), Holder::to_string);
    let dir = path.parent().unwrap_or(path);
    Error::Invalid(format!(
        "{} is in use by another run ({who}, see {}); wait for it to end or choose another \
         output_dir",
        dir.display(),
        path.display()
    ))
}

/// The holder recorded in a lock file, if it names one.
fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// Whether the open `file` is still the one at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    let (Ok(a), Ok(b)) = (file.metadata(), std::fs::metadata(path)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        a.len() == b.len() && a.modified().ok() == b.modified().ok()
    }
}

/// This machine's name (for the lock file and its messages).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_the_file_goes_at_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let (lock, stale) = OutputLock::acquire(tmp.path()).unwrap();
        assert_eq!(stale, None);
        let e = OutputLock::acquire(tmp.path()).unwrap_err().to_string();
        let me = Holder::me();
        assert!(
            e.contains(&format!("pid {} on host {}", me.pid, me.host)),
            "{e}"
        );
        assert!(e.contains("train.lock"), "{e}");
        drop(lock);
        assert!(!tmp.path().join(LOCK_FILE).exists());
        let (_again, stale) = OutputLock::acquire(tmp.path()).unwrap();
        assert_eq!(stale, None);
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = Holder {
            pid: u32::MAX - 1,
            host: host_name(),
        };
        let text = serde_json::to_string(&dead).unwrap();
        std::fs::write(tmp.path().join(LOCK_FILE), text).unwrap();
        let (_lock, stale) = OutputLock::acquire(tmp.path()).unwrap();
        assert_eq!(stale, Some(dead));
        let recorded: Holder =
            serde_json::from_str(&std::fs::read_to_string(tmp.path().join(LOCK_FILE)).unwrap())
                .unwrap();
        assert_eq!(recorded, Holder::me());
    }

    #[test]
    fn abandon_removes_only_our_own_lock_file() {
        let tmp = tempfile::tempdir().unwrap();
        let other = Holder {
            pid: u32::MAX - 1,
            host: host_name(),
        };
        std::fs::write(
            tmp.path().join(LOCK_FILE),
            serde_json::to_string(&other).unwrap(),
        )
        .unwrap();
        OutputLock::abandon(tmp.path());
        assert!(tmp.path().join(LOCK_FILE).exists());
        let (lock, _) = OutputLock::acquire(tmp.path()).unwrap();
        OutputLock::abandon(tmp.path());
        assert!(!tmp.path().join(LOCK_FILE).exists());
        drop(lock);
    }
}
