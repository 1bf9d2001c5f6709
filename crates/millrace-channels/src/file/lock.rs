//! `in_use.lock` in each of a channel's directories, so that no two channels, of
//! this process or another, write the same checkpoint or log.
//!
//! flock(2) keeps other processes out. Inside this process the lock would only say
//! "pid N", our own, so the channels holding a directory are also listed here, to
//! name the one in the way.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Who holds a directory in this process: a channel instance and its name.
type Holders = HashMap<PathBuf, (u64, String)>;

fn holders() -> std::sync::MutexGuard<'static, Holders> {
    static HOLDERS: OnceLock<Mutex<Holders>> = OnceLock::new();
    // Every update is one insert or remove; a poisoned map is still consistent.
    HOLDERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// A number per channel instance: two agents in one process may both have a
/// channel `c1`.
pub(super) fn instance_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A held directory; dropping it releases the lock.
pub(super) struct DirLock {
    file: Option<File>,
    key: PathBuf,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Unlock before leaving the list, so that a channel that does not find us
        // there can take the lock.
        drop(self.file.take());
        holders().remove(&self.key);
    }
}

/// Takes `dir/in_use.lock` exclusively for channel `name` (instance `id`),
/// creating the directory if needed.
pub(super) fn lock_dir(dir: &Path, id: u64, name: &str) -> Result<DirLock, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Two spellings of one directory must meet in the list.
    let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut held = holders();
    if let Some((other_id, other)) = held.get(&key) {
        return Err(if *other_id == id {
            format!(
                "{} is named twice among this channel's checkpointDir, backupCheckpointDir and dataDirs; give each its own directory",
                dir.display()
            )
        } else if other == name {
            // Channel names are unique within an agent: this is another agent.
            format!(
                "{} is in use by another agent in this process (pid {}, its channel {other}); give each agent its own checkpointDir and dataDirs",
                dir.display(),
                std::process::id()
            )
        } else {
            format!(
                "{} is already used by channel {other} of this agent; give each file channel its own checkpointDir and dataDirs",
                dir.display()
            )
        });
    }
    let path = dir.join("in_use.lock");
    let mut f = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock(2) on a descriptor this function owns.
    let rc = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    if rc != 0 {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        let holder = holder.trim();
        return Err(if holder == std::process::id().to_string() {
            format!(
                "{} is in use by another channel of this process (pid {holder}); give each file channel its own checkpointDir and dataDirs",
                dir.display()
            )
        } else {
            format!(
                "{} is in use by another agent (pid {holder}); give each agent its own checkpointDir and dataDirs",
                dir.display()
            )
        });
    }
    let _ = f.set_len(0);
    let _ = writeln!(f, "{}", std::process::id());
    held.insert(key.clone(), (id, name.to_string()));
    Ok(DirLock { file: Some(f), key })
}
