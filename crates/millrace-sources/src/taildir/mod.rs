//! The `TAILDIR` source: follows files matching per-group patterns, line by line, as
//! they grow (Flume's Taildir source).
//!
//! - Files are tracked by inode. A file renamed away by rotation is read to its end
//!   through the handle already open, then the new file under the old name is read
//!   from its start. A file that shrinks (copy-truncate) is read again from 0. New
//!   matching files are picked up on the next look; deleted files are dropped.
//! - Only complete lines are read: a line still being written (no newline yet) waits.
//! - Positions move only after the channel put commits, and the position file (in
//!   Flume's JSON format, `[{"inode":N,"pos":N,"file":"PATH"}]`) is rewritten after
//!   each such put, so after a crash reading resumes at the committed byte. A Flume
//!   position file is read as is; as in Flume, its entries for files that no group
//!   matches are ignored and left out when it is written back.

mod config;

pub use config::{FileGroup, TaildirConfig};

use async_trait::async_trait;
use bytes::Bytes;
use millrace_core::{Event, Headers, Source, SourceContext, SourceError};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest read from one file at a time; a line longer than this is emitted in pieces.
const CHUNK: usize = 4 * 1024 * 1024;

struct Tail {
    path: PathBuf,
    group: usize,
    pos: u64,
    file: Arc<File>,
    matched: bool,
    last_size: u64,
    last_change: Instant,
    /// The bytes just before `pos` when it was last moved: if they change, the file
    /// was truncated and rewritten past `pos` between two looks.
    sig: Vec<u8>,
}

/// What the position file records for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub inode: u64,
    pub pos: u64,
    pub file: PathBuf,
    /// The bytes just before `pos`, kept beside the position file (Flume's format has
    /// no room for them) so that a file truncated and rewritten while the agent was
    /// down is read again from its start.
    pub sig: Vec<u8>,
}

/// Where the signatures beside a position file live.
fn sig_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".millrace-sig");
    PathBuf::from(p)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    s.len()
        .is_multiple_of(2)
        .then(|| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
                .collect()
        })
        .flatten()
}

/// Reads a position file (Flume's or millrace's); a missing file is empty.
pub fn read_positions(path: &Path) -> Result<Vec<Position>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read position file {}: {e}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "position file {} is not valid JSON ({e}); fix or remove it",
            path.display()
        )
    })?;
    let arr = v
        .as_array()
        .ok_or_else(|| format!("position file {} is not a JSON array", path.display()))?;
    let sigs: serde_json::Map<String, serde_json::Value> = std::fs::read_to_string(sig_path(path))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok(arr
        .iter()
        .filter_map(|e| {
            Some(Position {
                inode: e["inode"].as_u64()?,
                pos: e["pos"].as_u64()?,
                file: PathBuf::from(e["file"].as_str()?),
                sig: Vec::new(),
            })
        })
        .map(|mut p| {
            // A signature counts only for the position it was taken at: a crash
            // between the two writes leaves them apart, and comparing bytes at the
            // wrong offset would mistake an intact file for a rewritten one.
            let entry = sigs.get(&p.inode.to_string());
            if entry.and_then(|e| e["pos"].as_u64()) == Some(p.pos) {
                if let Some(s) = entry.and_then(|e| e["sig"].as_str()).and_then(unhex) {
                    p.sig = s;
                }
            }
            p
        })
        .collect())
}

/// Writes the position file atomically (temporary file, then rename).
pub fn write_positions(path: &Path, positions: &[Position]) -> std::io::Result<()> {
    let v: Vec<serde_json::Value> = positions
        .iter()
        .map(|p| serde_json::json!({"inode": p.inode, "pos": p.pos, "file": p.file.to_string_lossy()}))
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Each signature carries the position it belongs to, so that a crash between
    // the two writes below is recognised when they are read back.
    let sigs: serde_json::Map<String, serde_json::Value> = positions
        .iter()
        .map(|p| {
            (
                p.inode.to_string(),
                serde_json::json!({"pos": p.pos, "sig": hex(&p.sig)}),
            )
        })
        .collect();
    crate::replace_file(
        &sig_path(path),
        &serde_json::Value::Object(sigs).to_string(),
    )?;
    crate::replace_file(path, &serde_json::Value::Array(v).to_string())
}

pub struct TaildirSource {
    cfg: TaildirConfig,
    tails: BTreeMap<u64, Tail>,
    /// Positions from the position file, used when a file is first seen.
    recorded: Option<HashMap<u64, Position>>,
}

impl TaildirSource {
    pub fn new(cfg: TaildirConfig) -> Self {
        TaildirSource {
            cfg,
            tails: BTreeMap::new(),
            recorded: None,
        }
    }

    fn positions(&self) -> Vec<Position> {
        self.tails
            .iter()
            .map(|(&inode, t)| Position {
                inode,
                pos: t.pos,
                file: t.path.clone(),
                sig: t.sig.clone(),
            })
            .collect()
    }
}

/// Matching files of every group: (inode, path, group).
fn scan(cfg: &TaildirConfig) -> Vec<(u64, PathBuf, usize)> {
    let mut out = Vec::new();
    for (g, group) in cfg.groups.iter().enumerate() {
        let Ok(rd) = std::fs::read_dir(&group.dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !group.pattern.is_match(&name) {
                continue;
            }
            if let Ok(m) = std::fs::metadata(e.path()) {
                if m.is_file() {
                    out.push((m.ino(), e.path(), g));
                }
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// The first group whose directory and pattern match `path`.
fn group_of(cfg: &TaildirConfig, path: &Path) -> Option<usize> {
    let (dir, name) = (path.parent()?, path.file_name()?.to_string_lossy());
    cfg.groups
        .iter()
        .position(|g| g.dir == dir && g.pattern.is_match(&name))
}

/// Finds the file with `inode` in the groups' directories, whatever its name (a file
/// rotated away while the agent was down).
fn find_inode(cfg: &TaildirConfig, inode: u64) -> Option<PathBuf> {
    for group in &cfg.groups {
        let Ok(rd) = std::fs::read_dir(&group.dir) else {
            continue;
        };
        for e in rd.flatten() {
            if e.metadata().is_ok_and(|m| m.is_file() && m.ino() == inode) {
                return Some(e.path());
            }
        }
    }
    None
}

/// Brings the tracked files up to date with the directories. Blocking.
fn refresh(
    cfg: &TaildirConfig,
    tails: &mut BTreeMap<u64, Tail>,
    recorded: &mut HashMap<u64, Position>,
    name: &str,
) {
    let now = Instant::now();
    let matches = scan(cfg);
    for t in tails.values_mut() {
        t.matched = false;
    }
    // Files rotated away while the agent was down are resumed once, by inode, under
    // the group that matched them when they were recorded. As in Flume, an entry
    // for a file no group matches is ignored, and so leaves the position file.
    if !recorded.is_empty() {
        let seen: std::collections::HashSet<u64> = matches.iter().map(|m| m.0).collect();
        for (inode, p) in recorded.clone() {
            if seen.contains(&inode) {
                continue;
            }
            let Some(g) = group_of(cfg, &p.file) else {
                tracing::info!(source = name, file = %p.file.display(), inode, "position file names a file no file group matches; ignoring it");
                recorded.remove(&inode);
                continue;
            };
            if let Some(path) = find_inode(cfg, inode) {
                if let Ok(f) = File::open(&path) {
                    tracing::info!(source = name, file = %path.display(), pos = p.pos, "resuming a rotated file");
                    tails.insert(
                        inode,
                        Tail {
                            path,
                            group: g,
                            pos: p.pos,
                            file: Arc::new(f),
                            matched: false,
                            last_size: 0,
                            last_change: now,
                            sig: p.sig.clone(),
                        },
                    );
                }
            }
            recorded.remove(&inode);
        }
    }
    for (inode, path, g) in matches {
        match tails.get_mut(&inode) {
            Some(t) => {
                t.matched = true;
                t.path = path;
            }
            None => {
                let Ok(f) = File::open(&path) else { continue };
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                let (pos, sig) = match recorded.remove(&inode) {
                    Some(p) => (p.pos, p.sig),
                    None if cfg.skip_to_end => (size, Vec::new()),
                    None => (0, Vec::new()),
                };
                tracing::info!(source = name, file = %path.display(), pos, "following file");
                tails.insert(
                    inode,
                    Tail {
                        path,
                        group: g,
                        pos,
                        file: Arc::new(f),
                        matched: true,
                        last_size: size,
                        last_change: now,
                        sig,
                    },
                );
            }
        }
    }
    let mut gone = Vec::new();
    for (&inode, t) in tails.iter_mut() {
        let Ok(m) = t.file.metadata() else {
            gone.push(inode);
            continue;
        };
        let size = m.len();
        let rewritten = size >= t.pos && !t.sig.is_empty() && {
            let mut now_bytes = vec![0u8; t.sig.len()];
            t.file
                .read_exact_at(&mut now_bytes, t.pos - t.sig.len() as u64)
                .is_err()
                || now_bytes != t.sig
        };
        if size < t.pos || rewritten {
            tracing::warn!(source = name, file = %t.path.display(), "file was truncated (copy-truncate); reading it again from the start");
            t.pos = 0;
            t.sig.clear();
        }
        if size != t.last_size {
            t.last_size = size;
            t.last_change = now;
        }
        let at_end = t.pos >= size;
        let deleted = m.nlink() == 0;
        let idle = now.duration_since(t.last_change) >= cfg.idle_timeout;
        if at_end && !t.matched && (deleted || idle) {
            gone.push(inode);
        }
    }
    for inode in gone {
        if let Some(t) = tails.remove(&inode) {
            tracing::info!(source = name, file = %t.path.display(), "no longer following file");
        }
    }
}

/// Lines read from one position: the lines with their byte offsets, the position
/// after the last one, and the bytes just before that position.
type Lines = (Vec<(u64, Bytes)>, u64, Vec<u8>);

/// Complete lines from `pos`, at most `max`. Blocking.
///
/// Reads what `max` lines of a typical length need (at least 64 KiB), doubling the
/// read while it holds no complete line, up to [`CHUNK`]; a line longer than that is
/// emitted in pieces rather than stall the file.
fn read_lines(file: &File, pos: u64, max: usize) -> std::io::Result<Lines> {
    let size = file.metadata()?.len();
    if pos >= size {
        return Ok((Vec::new(), pos, Vec::new()));
    }
    let avail = (size - pos) as usize;
    let mut want = avail.min((max * 256).clamp(64 * 1024, CHUNK));
    loop {
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            let n = file.read_at(&mut buf[filled..], pos + filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        let has_line = buf.contains(&b'\n');
        if !has_line && filled == want && want < avail.min(CHUNK) {
            want = (want * 2).min(avail.min(CHUNK));
            continue;
        }
        let buf = Bytes::from(buf);
        let mut out = Vec::new();
        let mut start = 0;
        while out.len() < max {
            let Some(i) = buf[start..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let end = start + i;
            let line_end = if end > start && buf[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            out.push((pos + start as u64, buf.slice(start..line_end)));
            start = end + 1;
        }
        if out.is_empty() && filled == CHUNK {
            out.push((pos, buf.clone()));
            start = filled;
        }
        let sig = buf[start.saturating_sub(16)..start].to_vec();
        return Ok((out, pos + start as u64, sig));
    }
}

#[async_trait]
impl Source for TaildirSource {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        if self.recorded.is_none() {
            let path = self.cfg.position_file.clone();
            let recorded = tokio::task::spawn_blocking(move || read_positions(&path))
                .await
                .map_err(|e| SourceError::Failed(e.to_string()))?
                .map_err(SourceError::Failed)?;
            self.recorded = Some(recorded.into_iter().map(|p| (p.inode, p)).collect());
        }
        let batch = self.cfg.batch_size.min(ctx.processor.max_batch()).max(1);
        let mut backoff = Duration::ZERO;
        loop {
            if ctx.shutdown.is_cancelled() {
                return Ok(());
            }
            let cfg = self.cfg.clone();
            let before: Vec<u64> = self.tails.keys().copied().collect();
            let mut tails = std::mem::take(&mut self.tails);
            let mut recorded = self.recorded.take().unwrap_or_default();
            let name = ctx.name.clone();
            let (tails, recorded) = tokio::task::spawn_blocking(move || {
                refresh(&cfg, &mut tails, &mut recorded, &name);
                (tails, recorded)
            })
            .await
            .map_err(|e| SourceError::Failed(e.to_string()))?;
            self.tails = tails;
            self.recorded = Some(recorded);
            // A newly found file goes into the position file at once: if it is
            // rotated away while the agent is down, the restart still finds it.
            if !self.tails.keys().copied().eq(before.iter().copied()) {
                let positions = self.positions();
                let path = self.cfg.position_file.clone();
                let _ =
                    tokio::task::spawn_blocking(move || write_positions(&path, &positions)).await;
            }
            let mut progressed = false;
            let inodes: Vec<u64> = self.tails.keys().copied().collect();
            for inode in inodes {
                for _ in 0..self.cfg.max_batch_count {
                    let Some(t) = self.tails.get(&inode) else {
                        break;
                    };
                    let (file, pos) = (t.file.clone(), t.pos);
                    let lines = tokio::task::spawn_blocking(move || read_lines(&file, pos, batch))
                        .await
                        .map_err(|e| SourceError::Failed(e.to_string()))?;
                    let (lines, new_pos, sig) = match lines {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(source = %ctx.name, file = %t.path.display(), error = %e, "reading failed");
                            millrace_core::counters::inc(&ctx.counters.event_read_fail);
                            break;
                        }
                    };
                    if lines.is_empty() {
                        break;
                    }
                    let mut headers: Headers = self.cfg.groups[t.group].headers.clone();
                    if let Some(k) = &self.cfg.file_header {
                        headers.insert(k.clone(), t.path.to_string_lossy().into_owned());
                    }
                    let events = lines
                        .into_iter()
                        .map(|(offset, body)| {
                            let mut h = headers.clone();
                            if self.cfg.byte_offset_header {
                                h.insert("byteoffset".into(), offset.to_string());
                            }
                            Event { headers: h, body }
                        })
                        .collect();
                    if ctx.put(events).await.is_err() {
                        return Ok(());
                    }
                    progressed = true;
                    if let Some(t) = self.tails.get_mut(&inode) {
                        t.pos = new_pos;
                        t.sig = sig;
                    }
                    let positions = self.positions();
                    let path = self.cfg.position_file.clone();
                    let saved =
                        tokio::task::spawn_blocking(move || write_positions(&path, &positions))
                            .await;
                    if let Ok(Err(e)) = saved {
                        tracing::warn!(source = %ctx.name, error = %e, "cannot write the position file; a restart would read from older positions");
                    }
                }
            }
            if progressed {
                backoff = Duration::ZERO;
                continue;
            }
            backoff = (backoff + self.cfg.backoff_increment)
                .min(self.cfg.max_backoff.max(self.cfg.backoff_increment));
            tokio::select! {
                _ = ctx.shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            // Forgotten files leave the position file too.
            let positions = self.positions();
            let path = self.cfg.position_file.clone();
            let _ = tokio::task::spawn_blocking(move || write_positions(&path, &positions)).await;
        }
    }

    fn batch_size(&self) -> Option<usize> {
        Some(self.cfg.batch_size)
    }
}

#[cfg(test)]
mod tests;
