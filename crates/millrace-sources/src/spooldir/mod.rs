//! The `spooldir` source: reads files dropped into a directory, one at a time, and
//! renames each to `NAME.COMPLETED` (or deletes it) once every event in it is in the
//! channel (Flume's Spooling Directory source). With `trackingPolicy = tracker_dir`
//! the file stays where it is and an empty `NAME.COMPLETED` marker is created in
//! `trackerDir` instead (under the file's path relative to `spoolDir`); a file with a
//! marker is never read again, even if it changes later (that is warned about).
//!
//! Files must be complete and unchanging when they appear (write them elsewhere, or
//! under a hidden name, and rename them in). The position in the file being read is
//! kept in `trackerDir` and moves only after the channel put commits: after a crash
//! the file is read on from the last committed event, so nothing is lost and at most
//! the batch in flight is read twice.
//!
//! Problems with one file (unreadable, changed after pickup, invalid bytes under
//! `decodeErrorPolicy = FAIL`, a `.COMPLETED` name or marker already taken) are
//! logged, counted and leave that file in place; the source goes on with the others.
//!
//! A file left in place after some of its events were delivered is remembered in
//! `trackerDir` with its size and modification time, so that a restart does not
//! deliver them again: while it is unchanged it is not read again, and one that was
//! read to its end but could not be renamed or deleted is completed as soon as that
//! works (its `.COMPLETED` name freed, say). A file that changed since is read as a
//! new file. An unreadable file delivered nothing and is tried again at the next start.

mod config;
mod reader;

pub use config::{
    Charset, ConsumeOrder, DecodeErrorPolicy, Deserializer, SpoolDirConfig, TrackingPolicy,
};

use async_trait::async_trait;
use millrace_core::counters::inc;
use millrace_core::{Headers, Source, SourceContext, SourceError};
use reader::{FileReader, ReadError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const TRACKER_FILE: &str = ".millrace-spooldir.json";
const LEFT_FILE: &str = ".millrace-spooldir-left.json";

/// The reading position of the file in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tracker {
    file: PathBuf,
    pos: u64,
    size: u64,
    mtime: u128,
}

impl Tracker {
    fn read(dir: &Path) -> Option<Tracker> {
        let text = std::fs::read_to_string(dir.join(TRACKER_FILE)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(Tracker {
            file: PathBuf::from(v["file"].as_str()?),
            pos: v["pos"].as_u64()?,
            size: v["size"].as_u64()?,
            mtime: v["mtime"].as_str()?.parse().ok()?,
        })
    }

    /// Written to a temporary file and renamed over the old one, so a crash leaves
    /// one whole position or the other.
    fn write(&self, dir: &Path) -> std::io::Result<()> {
        let v = serde_json::json!({
            "file": self.file.to_string_lossy(),
            "pos": self.pos,
            "size": self.size,
            "mtime": self.mtime.to_string(),
        });
        crate::replace_file(&dir.join(TRACKER_FILE), &v.to_string())
    }

    fn remove(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(TRACKER_FILE));
    }
}

/// A file left in place after some or all of its events were delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Left {
    file: PathBuf,
    size: u64,
    mtime: u128,
    /// Read to its end; only its rename (or deletion) is missing.
    read_whole: bool,
    why: String,
}

impl Left {
    fn read_all(dir: &Path) -> Vec<Left> {
        let Ok(text) = std::fs::read_to_string(dir.join(LEFT_FILE)) else {
            return Vec::new();
        };
        let Ok(serde_json::Value::Array(items)) = serde_json::from_str(&text) else {
            tracing::warn!(file = %dir.join(LEFT_FILE).display(), "cannot parse the list of files left in place; they will be read again");
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|v| {
                Some(Left {
                    file: PathBuf::from(v["file"].as_str()?),
                    size: v["size"].as_u64()?,
                    mtime: v["mtime"].as_str()?.parse().ok()?,
                    read_whole: v["read_whole"].as_bool()?,
                    why: v["why"].as_str().unwrap_or_default().to_string(),
                })
            })
            .collect()
    }

    /// Replaced whole, as the tracker is.
    fn write_all(dir: &Path, all: &[Left]) -> std::io::Result<()> {
        let path = dir.join(LEFT_FILE);
        if all.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|l| {
                serde_json::json!({
                    "file": l.file.to_string_lossy(),
                    "size": l.size,
                    "mtime": l.mtime.to_string(),
                    "read_whole": l.read_whole,
                    "why": l.why,
                })
            })
            .collect();
        crate::replace_file(&path, &serde_json::Value::Array(v).to_string())
    }

    /// Whether the file is still there, as it was when it was left.
    fn unchanged(&self) -> bool {
        matches!(std::fs::metadata(&self.file), Ok(m) if m.len() == self.size && mtime_ns(&m) == self.mtime)
    }
}

/// What became of the events of a file that is left in place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivered {
    /// None: the file is tried again at the next start.
    Nothing,
    /// Some, or all but the rename: remembered, so that a restart does not repeat them.
    Part,
    /// All of them; only the rename or deletion failed.
    All,
}

fn mtime_ns(m: &std::fs::Metadata) -> u128 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub struct SpoolDirSource {
    cfg: SpoolDirConfig,
    /// Files that failed, skipped: until the next start for one that delivered
    /// nothing, for as long as it is unchanged for one in `left`.
    failed: HashSet<PathBuf>,
    /// The files left in place after delivering events, as kept in `trackerDir`.
    left: Vec<Left>,
    /// Files changed after their `tracker_dir` marker was made, already warned about.
    warned_marked: HashSet<PathBuf>,
}

enum Outcome {
    Done,
    Stopped,
}

impl SpoolDirSource {
    pub fn new(cfg: SpoolDirConfig) -> Self {
        SpoolDirSource {
            cfg,
            failed: HashSet::new(),
            left: Vec::new(),
            warned_marked: HashSet::new(),
        }
    }

    fn fail(&mut self, ctx: &SourceContext, path: &Path, what: &str, delivered: Delivered) {
        tracing::error!(source = %ctx.name, file = %path.display(), "{what}; the file is left in place and skipped");
        inc(&ctx.counters.generic_processing_fail);
        self.failed.insert(path.to_path_buf());
        if delivered != Delivered::Nothing {
            if let Ok(m) = std::fs::metadata(path) {
                self.left.retain(|l| l.file != path);
                self.left.push(Left {
                    file: path.to_path_buf(),
                    size: m.len(),
                    mtime: mtime_ns(&m),
                    read_whole: delivered == Delivered::All,
                    why: what.to_string(),
                });
                self.save_left(ctx);
            }
        }
        Tracker::remove(&self.cfg.tracker_dir);
    }

    fn save_left(&self, ctx: &SourceContext) {
        if let Err(e) = Left::write_all(&self.cfg.tracker_dir, &self.left) {
            tracing::warn!(source = %ctx.name, error = %e, "cannot save the list of files left in place; after a restart they would be read again");
        }
    }

    /// At start: the files left in place before it. One that is gone or changed is
    /// forgotten (a changed one is read as a new file); one read to its end is
    /// completed if it now can be; the others stay skipped.
    fn recall_left(&mut self, ctx: &SourceContext) {
        self.left = Left::read_all(&self.cfg.tracker_dir);
        let before = self.left.len();
        self.left.retain(|l| {
            let keep = l.unchanged();
            if !keep && l.file.exists() {
                tracing::info!(source = %ctx.name, file = %l.file.display(), "a file left in place has changed since; reading it as a new file");
            }
            keep
        });
        for l in &self.left {
            self.failed.insert(l.file.clone());
            if !l.read_whole {
                tracing::warn!(source = %ctx.name, file = %l.file.display(), reason = %l.why, "a file left in place before this start is not read again, since some of its events were delivered; move it out of the spool directory");
            }
        }
        if self.left.len() != before {
            self.save_left(ctx);
        }
        self.retry_left(ctx);
    }

    /// Completes the files that were read to their end but could not be renamed or
    /// deleted, where that now works; the others stay as they are, without a new log
    /// line at each look.
    fn retry_left(&mut self, ctx: &SourceContext) {
        let whole: Vec<Left> = self.left.iter().filter(|l| l.read_whole).cloned().collect();
        let before = self.left.len();
        for l in whole {
            if !l.unchanged() {
                // Changed or gone since: forgotten, so a changed one is read anew.
                self.left.retain(|x| x != &l);
                self.failed.remove(&l.file);
                continue;
            }
            if self.finish(&l.file).is_ok() {
                self.left.retain(|x| x != &l);
                self.failed.remove(&l.file);
                tracing::info!(source = %ctx.name, file = %l.file.display(), "a file read before it was left in place is now completed, without reading it again");
            }
        }
        if self.left.len() != before {
            self.save_left(ctx);
        }
    }

    /// Renames a read file to its `.COMPLETED` name, or marks it in `trackerDir`, or
    /// deletes it, never over an existing file or marker.
    fn finish(&self, path: &Path) -> Result<(), String> {
        // As in Flume, deletePolicy = immediate deletes whatever the trackingPolicy:
        // a deleted file needs no marker.
        if self.cfg.delete_immediately {
            return std::fs::remove_file(path)
                .map_err(|e| format!("cannot delete the read file: {e}"));
        }
        if self.cfg.tracking == TrackingPolicy::TrackerDir {
            let marker = marker_path(&self.cfg, path);
            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            return create_marker(&marker, &self.cfg.tracker_dir, mtime).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    format!("the marker {} already exists, so a file of this name was read before (a file name was reused); the file is not read again", marker.display())
                } else {
                    format!("cannot create the marker {}: {e}", marker.display())
                }
            });
        }
        let mut done = path.as_os_str().to_owned();
        done.push(&self.cfg.file_suffix);
        let done = PathBuf::from(done);
        if done.exists() {
            return Err(format!("{} already exists, so the read file cannot be renamed to it (a file name was reused); rename one of them", done.display()));
        }
        std::fs::rename(path, &done).map_err(|e| format!("cannot rename the read file: {e}"))
    }

    async fn process(&mut self, ctx: &SourceContext, path: PathBuf) -> Outcome {
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(_) => return Outcome::Done,
        };
        let (size, mtime) = (meta.len(), mtime_ns(&meta));
        let pos = match Tracker::read(&self.cfg.tracker_dir) {
            Some(t) if t.file == path && t.size == size && t.mtime == mtime => t.pos,
            Some(t) if t.file == path => {
                self.fail(
                    ctx,
                    &path,
                    "the file changed while it was being read (before the last restart)",
                    Delivered::Part,
                );
                return Outcome::Done;
            }
            _ => 0,
        };
        let cfg = self.cfg.clone();
        let p = path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            FileReader::open(
                &p,
                pos,
                size,
                cfg.deserializer,
                cfg.input_charset,
                cfg.decode_error_policy,
            )
        })
        .await;
        let mut reader = match opened {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                inc(&ctx.counters.event_read_fail);
                self.fail(
                    ctx,
                    &path,
                    &format!("cannot open the file: {e}"),
                    Delivered::Nothing,
                );
                return Outcome::Done;
            }
            Err(e) => {
                self.fail(
                    ctx,
                    &path,
                    &format!("reading task failed: {e}"),
                    Delivered::Nothing,
                );
                return Outcome::Done;
            }
        };
        if pos > 0 {
            tracing::info!(source = %ctx.name, file = %path.display(), pos, "resuming a file after a restart");
        }
        let mut headers = Headers::new();
        if let Some(k) = &self.cfg.file_header {
            headers.insert(k.clone(), path.to_string_lossy().into_owned());
        }
        if let Some(k) = &self.cfg.basename_header {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            headers.insert(k.clone(), name.unwrap_or_default());
        }
        let batch = self.cfg.batch_size.min(ctx.processor.max_batch()).max(1);
        loop {
            let h = headers.clone();
            let (r, result) = match tokio::task::spawn_blocking(move || {
                let res = reader.read_batch(batch, &h);
                (reader, res)
            })
            .await
            {
                Ok(x) => x,
                Err(e) => {
                    self.fail(
                        ctx,
                        &path,
                        &format!("reading task failed: {e}"),
                        Delivered::Part,
                    );
                    return Outcome::Done;
                }
            };
            reader = r;
            match result {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    if ctx.put(events).await.is_err() {
                        return Outcome::Stopped;
                    }
                    let t = Tracker {
                        file: path.clone(),
                        pos: reader.pos,
                        size,
                        mtime,
                    };
                    if let Err(e) = t.write(&self.cfg.tracker_dir) {
                        tracing::warn!(source = %ctx.name, error = %e, "cannot save the reading position; a restart would read this file again from an older position");
                    }
                }
                Err(ReadError::Decode { offset }) => {
                    inc(&ctx.counters.event_read_fail);
                    self.fail(
                        ctx,
                        &path,
                        &format!(
                            "bytes at offset {offset} are not valid {:?} and decodeErrorPolicy is FAIL (set REPLACE or IGNORE to read such files)",
                            self.cfg.input_charset
                        ),
                        Delivered::Part,
                    );
                    return Outcome::Done;
                }
                Err(ReadError::Io(e)) => {
                    inc(&ctx.counters.event_read_fail);
                    self.fail(ctx, &path, &format!("reading failed: {e}"), Delivered::Part);
                    return Outcome::Done;
                }
            }
        }
        self.complete(ctx, &path, size, mtime);
        Outcome::Done
    }

    fn complete(&mut self, ctx: &SourceContext, path: &Path, size: u64, mtime: u128) {
        match std::fs::metadata(path) {
            Ok(m) if m.len() == size && mtime_ns(&m) == mtime => {}
            _ => {
                self.fail(ctx, path, "the file changed after it was picked up (spooled files must not change); its events so far were delivered", Delivered::Part);
                return;
            }
        }
        if let Err(what) = self.finish(path) {
            self.fail(ctx, path, &what, Delivered::All);
            return;
        }
        // After the rename, deletion or marker, never before: a crash in between
        // leaves a position at the file's end, so the next start completes the file
        // without delivering anything again. Were the position dropped first, a crash
        // could leave neither and the file would be read again from its start; that is
        // also why create_marker syncs the marker before it returns.
        Tracker::remove(&self.cfg.tracker_dir);
        tracing::info!(source = %ctx.name, file = %path.display(), "file read completely");
    }
}

/// The `tracker_dir` marker of a spooled file: its path relative to `spoolDir`, in
/// `trackerDir`, with `fileSuffix` appended.
fn marker_path(cfg: &SpoolDirConfig, path: &Path) -> PathBuf {
    // Spooled paths are found under spoolDir, so the prefix is there; the file name
    // alone keeps the marker inside trackerDir should it not be.
    let rel = path
        .strip_prefix(&cfg.spool_dir)
        .ok()
        .or_else(|| path.file_name().map(Path::new))
        .unwrap_or(path);
    let mut name = cfg.tracker_dir.join(rel).into_os_string();
    name.push(&cfg.file_suffix);
    PathBuf::from(name)
}

/// Creates the empty marker (never over an existing one) and syncs it, and the
/// directory entries leading to it, to disk: the position record is dropped right
/// after, and a marker lost in a power failure would have the file read again.
///
/// The marker gets the file's modification time, so that a later change to the file
/// shows as a newer time than its marker's (Flume's markers, made after the file,
/// compare the same way).
fn create_marker(
    marker: &Path,
    tracker_dir: &Path,
    mtime: Option<SystemTime>,
) -> std::io::Result<()> {
    let dir = marker.parent().unwrap_or(tracker_dir);
    // The directories created here need their own entries synced as well.
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    let f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(marker)?;
    if let Some(t) = mtime {
        // Only the warning about changed files depends on it.
        let _ = f.set_modified(t);
    }
    let synced = f.sync_all().and_then(|_| {
        #[cfg(unix)]
        for d in dir.ancestors() {
            std::fs::File::open(d)?.sync_all()?;
            if d == existing {
                break;
            }
        }
        Ok(())
    });
    if synced.is_err() {
        // Removed, so that the retry of a file left in place makes it anew instead of
        // finding it there.
        let _ = std::fs::remove_file(marker);
    }
    synced
}

/// What a look at the spool directory found.
struct Picked {
    /// The next file to read.
    next: Option<PathBuf>,
    /// Files skipped for their `tracker_dir` marker but modified after it was made
    /// (appended to, or replaced under the same name).
    changed_since_marked: Vec<PathBuf>,
}

/// The next file to read: the one a tracker names first (a file interrupted by a
/// restart), then by `consumeOrder`.
fn pick(cfg: &SpoolDirConfig, failed: &HashSet<PathBuf>) -> std::io::Result<Picked> {
    let mut found: Vec<(u128, PathBuf)> = Vec::new();
    let mut changed_since_marked = Vec::new();
    let mut dirs = vec![cfg.spool_dir.clone()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir)? {
            let Ok(e) = e else { continue };
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || path == cfg.tracker_dir {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                // As Flume: a subdirectory whose name ignorePattern matches is not entered.
                if cfg.recursive && !cfg.ignore.is_match(&name) {
                    dirs.push(path);
                }
                continue;
            }
            if !meta.is_file()
                || name.ends_with(&cfg.file_suffix)
                || cfg.ignore.is_match(&name)
                || !cfg.include.is_match(&name)
                || failed.contains(&path)
            {
                continue;
            }
            if cfg.tracking == TrackingPolicy::TrackerDir {
                if let Ok(m) = std::fs::metadata(marker_path(cfg, &path)) {
                    // In whole seconds: trackerDir may be on a file system that keeps
                    // coarser times than spoolDir's.
                    let secs = |t: u128| t / 1_000_000_000;
                    if secs(mtime_ns(&meta)) > secs(mtime_ns(&m)) {
                        changed_since_marked.push(path);
                    }
                    continue;
                }
            }
            found.push((mtime_ns(&meta), path));
        }
    }
    if let Some(t) = Tracker::read(&cfg.tracker_dir) {
        if found.iter().any(|(_, p)| *p == t.file) {
            return Ok(Picked {
                next: Some(t.file),
                changed_since_marked,
            });
        }
    }
    let next = match cfg.consume_order {
        ConsumeOrder::Oldest => found.into_iter().min().map(|(_, p)| p),
        ConsumeOrder::Youngest => found.into_iter().max().map(|(_, p)| p),
        ConsumeOrder::Random => {
            if found.is_empty() {
                None
            } else {
                let i = rand_index(found.len());
                Some(found.swap_remove(i).1)
            }
        }
    };
    Ok(Picked {
        next,
        changed_since_marked,
    })
}

fn rand_index(n: usize) -> usize {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0);
    nanos % n
}

#[async_trait]
impl Source for SpoolDirSource {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        std::fs::create_dir_all(&self.cfg.tracker_dir).map_err(|e| {
            SourceError::Failed(format!(
                "cannot create the tracker directory {}: {e}",
                self.cfg.tracker_dir.display()
            ))
        })?;
        self.recall_left(ctx);
        loop {
            if ctx.shutdown.is_cancelled() {
                return Ok(());
            }
            let cfg = self.cfg.clone();
            let failed = self.failed.clone();
            let picked = tokio::task::spawn_blocking(move || pick(&cfg, &failed))
                .await
                .map_err(|e| SourceError::Failed(e.to_string()))?
                .map_err(|e| {
                    SourceError::Failed(format!(
                        "cannot list {}: {e}; check spoolDir and its permissions",
                        self.cfg.spool_dir.display()
                    ))
                })?;
            for path in picked.changed_since_marked {
                if !self.warned_marked.contains(&path) {
                    tracing::warn!(source = %ctx.name, file = %path.display(), marker = %marker_path(&self.cfg, &path).display(), "a file already read has been modified since (appended to, or replaced under the same name); it is not read again: give new files new names, or delete the marker to have it read again from its start");
                    inc(&ctx.counters.generic_processing_fail);
                    self.warned_marked.insert(path);
                }
            }
            match picked.next {
                Some(path) => {
                    if let Outcome::Stopped = self.process(ctx, path).await {
                        return Ok(());
                    }
                }
                None => {
                    self.retry_left(ctx);
                    tokio::select! {
                        _ = ctx.shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(self.cfg.poll_delay) => {}
                    }
                }
            }
        }
    }

    fn batch_size(&self) -> Option<usize> {
        Some(self.cfg.batch_size)
    }
}

#[cfg(test)]
mod tests;
