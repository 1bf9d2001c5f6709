//! The `spooldir` source: reads files dropped into a directory, one at a time, and
//! renames each to `NAME.COMPLETED` (or deletes it) once every event in it is in the
//! channel (Flume's Spooling Directory source).
//!
//! Files must be complete and unchanging when they appear (write them elsewhere, or
//! under a hidden name, and rename them in). The position in the file being read is
//! kept in `trackerDir` and moves only after the channel put commits: after a crash
//! the file is read on from the last committed event, so nothing is lost and at most
//! the batch in flight is read twice.
//!
//! Problems with one file (unreadable, changed after pickup, invalid bytes under
//! `decodeErrorPolicy = FAIL`, a `.COMPLETED` name already taken) are logged, counted
//! and leave that file in place; the source goes on with the others.

mod config;
mod reader;

pub use config::{Charset, ConsumeOrder, DecodeErrorPolicy, Deserializer, SpoolDirConfig};

use async_trait::async_trait;
use millrace_core::counters::inc;
use millrace_core::{Headers, Source, SourceContext, SourceError};
use reader::{FileReader, ReadError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const TRACKER_FILE: &str = ".millrace-spooldir.json";

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
        let tmp = dir.join(".millrace-spooldir.json.tmp");
        std::fs::write(&tmp, v.to_string())?;
        std::fs::rename(tmp, dir.join(TRACKER_FILE))
    }

    fn remove(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(TRACKER_FILE));
    }
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
    /// Files that failed in this run; skipped until the agent restarts.
    failed: HashSet<PathBuf>,
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
        }
    }

    fn fail(&mut self, ctx: &SourceContext, path: &Path, what: &str) {
        tracing::error!(source = %ctx.name, file = %path.display(), "{what}; the file is left in place and skipped");
        inc(&ctx.counters.generic_processing_fail);
        self.failed.insert(path.to_path_buf());
        Tracker::remove(&self.cfg.tracker_dir);
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
                self.fail(ctx, &path, &format!("cannot open the file: {e}"));
                return Outcome::Done;
            }
            Err(e) => {
                self.fail(ctx, &path, &format!("reading task failed: {e}"));
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
                    self.fail(ctx, &path, &format!("reading task failed: {e}"));
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
                    );
                    return Outcome::Done;
                }
                Err(ReadError::Io(e)) => {
                    inc(&ctx.counters.event_read_fail);
                    self.fail(ctx, &path, &format!("reading failed: {e}"));
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
                self.fail(ctx, path, "the file changed after it was picked up (spooled files must not change); its events so far were delivered");
                return;
            }
        }
        if self.cfg.delete_immediately {
            if let Err(e) = std::fs::remove_file(path) {
                self.fail(ctx, path, &format!("cannot delete the read file: {e}"));
                return;
            }
        } else {
            let mut done = path.as_os_str().to_owned();
            done.push(&self.cfg.file_suffix);
            let done = PathBuf::from(done);
            if done.exists() {
                self.fail(
                    ctx,
                    path,
                    &format!("{} already exists, so the read file cannot be renamed to it (a file name was reused); rename one of them", done.display()),
                );
                return;
            }
            if let Err(e) = std::fs::rename(path, &done) {
                self.fail(ctx, path, &format!("cannot rename the read file: {e}"));
                return;
            }
        }
        Tracker::remove(&self.cfg.tracker_dir);
        tracing::info!(source = %ctx.name, file = %path.display(), "file read completely");
    }
}

/// The next file to read: the one a tracker names first (a file interrupted by a
/// restart), then by `consumeOrder`.
fn pick(cfg: &SpoolDirConfig, failed: &HashSet<PathBuf>) -> std::io::Result<Option<PathBuf>> {
    let mut found: Vec<(u128, PathBuf)> = Vec::new();
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
                if cfg.recursive {
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
            found.push((mtime_ns(&meta), path));
        }
    }
    if let Some(t) = Tracker::read(&cfg.tracker_dir) {
        if found.iter().any(|(_, p)| *p == t.file) {
            return Ok(Some(t.file));
        }
    }
    Ok(match cfg.consume_order {
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
        loop {
            if ctx.shutdown.is_cancelled() {
                return Ok(());
            }
            let cfg = self.cfg.clone();
            let failed = self.failed.clone();
            let next = tokio::task::spawn_blocking(move || pick(&cfg, &failed))
                .await
                .map_err(|e| SourceError::Failed(e.to_string()))?
                .map_err(|e| {
                    SourceError::Failed(format!(
                        "cannot list {}: {e}; check spoolDir and its permissions",
                        self.cfg.spool_dir.display()
                    ))
                })?;
            match next {
                Some(path) => {
                    if let Outcome::Stopped = self.process(ctx, path).await {
                        return Ok(());
                    }
                }
                None => {
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
