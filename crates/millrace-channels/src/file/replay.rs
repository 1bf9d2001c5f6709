//! Rebuilding the channel from the checkpoint and the log at start.

use super::checkpoint::Checkpoint;
use super::record::{self, DecodeError, Record};
use super::{log_path, FileChannelConfig, ReplayReport, Slot};
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::path::Path;

pub(super) struct Replayed {
    pub queue: VecDeque<Slot>,
    pub files: BTreeMap<u64, u64>,
    pub next_id: u64,
    pub next_file: u64,
    pub report: ReplayReport,
}

/// The checkpoint to start from: the main one, else the backup, else none (full
/// replay). A damaged one is reported, never trusted.
fn load_checkpoint(cfg: &FileChannelConfig, name: &str) -> Option<Checkpoint> {
    let dirs = std::iter::once(&cfg.checkpoint_dir).chain(cfg.backup_checkpoint_dir.iter());
    for dir in dirs {
        match Checkpoint::read(dir) {
            Ok(Some(c)) => return Some(c),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(channel = name, dir = %dir.display(), error = %e, "checkpoint unreadable; trying the next one")
            }
        }
    }
    None
}

fn log_files(cfg: &FileChannelConfig) -> Result<Vec<u64>, String> {
    let mut v = Vec::new();
    for d in &cfg.data_dirs {
        let rd = std::fs::read_dir(d).map_err(|e| format!("cannot list {}: {e}", d.display()))?;
        for e in rd.flatten() {
            let name = e.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix("log-"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                if log_path(&cfg.data_dirs, n) != e.path() {
                    return Err(format!(
                        "{} is not where this channel's dataDirs put log file {n}; dataDirs must list the same directories in the same order as before",
                        e.path().display()
                    ));
                }
                v.push(n);
            }
        }
    }
    v.sort_unstable();
    Ok(v)
}

fn pending_in(ranges: &[(u64, u32)], id: u64) -> bool {
    let i = ranges.partition_point(|(first, _)| *first <= id);
    i > 0 && {
        let (first, len) = ranges[i - 1];
        id < first + len as u64
    }
}

pub(super) fn replay(cfg: &FileChannelConfig, name: &str) -> Result<Replayed, String> {
    let ckpt = load_checkpoint(cfg, name);
    let files = log_files(cfg)?;
    let mut report = ReplayReport {
        from_checkpoint: ckpt.is_some(),
        files: files.len(),
        ..Default::default()
    };
    let mut events: BTreeMap<u64, Slot> = BTreeMap::new();
    let mut max_id: Option<u64> = None;
    let mut buf = Vec::new();
    let mut seen = Seen::default();
    // Only a gap in the numbering can hide a file; without one, the take ranges
    // before the checkpoint are not needed.
    let gaps = files.windows(2).any(|w| w[1] > w[0] + 1);
    for (i, &file_no) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        let path = log_path(&cfg.data_dirs, file_no);
        let data = read_all(&path, &mut buf)?;
        if data.len() < record::MAGIC.len() || &data[..record::MAGIC.len()] != record::MAGIC {
            if last && data.len() < record::MAGIC.len() {
                // Created by a crash before its header was synced: nothing in it.
                report.torn_records += 1;
                tracing::warn!(channel = name, file = %path.display(), "empty log file left by a crash; removed");
                let _ = std::fs::remove_file(&path);
                continue;
            }
            return Err(format!(
                "{} is not a millrace log file (bad header)",
                path.display()
            ));
        }
        let mut off = record::MAGIC.len();
        while off < data.len() {
            let before = ckpt
                .as_ref()
                .is_some_and(|c| (file_no, off as u64) < (c.log_file, c.offset));
            match record::decode(&data[off..]) {
                Ok((rec, n)) => {
                    match rec {
                        Record::Put {
                            first_id,
                            events: evs,
                        } => {
                            seen.put(file_no, first_id, evs.len() as u64);
                            for (k, event) in evs.into_iter().enumerate() {
                                let id = first_id + k as u64;
                                max_id = Some(max_id.map_or(id, |m| m.max(id)));
                                let keep = match (&ckpt, before) {
                                    (Some(c), true) => pending_in(&c.pending, id),
                                    _ => true,
                                };
                                if keep && before {
                                    seen.found(id);
                                }
                                if keep {
                                    events.insert(
                                        id,
                                        Slot {
                                            id,
                                            file: file_no,
                                            event,
                                        },
                                    );
                                }
                            }
                        }
                        Record::Take { ranges } => {
                            if !before || gaps {
                                seen.taken(&ranges);
                            }
                            if !before {
                                for (first, len) in ranges {
                                    for id in first..first + len as u64 {
                                        events.remove(&id);
                                    }
                                }
                            }
                        }
                    }
                    off += n;
                }
                Err(e) => {
                    let at_tail = match &e {
                        DecodeError::Incomplete => true,
                        DecodeError::Corrupt(_) => {
                            let len =
                                u32::from_le_bytes(data[off..off + 4].try_into().expect("4 bytes"))
                                    as usize;
                            off + 8 + len >= data.len()
                        }
                    };
                    let reason = match &e {
                        DecodeError::Incomplete => "incomplete record".to_string(),
                        DecodeError::Corrupt(m) => m.clone(),
                    };
                    if last && at_tail {
                        tracing::warn!(channel = name, file = %path.display(), offset = off, reason, "torn record at the end of the log (a crash mid-write); cut off");
                        report.torn_records += 1;
                        truncate(&path, off as u64)?;
                        break;
                    }
                    if cfg.skip_corrupt_records {
                        tracing::error!(channel = name, file = %path.display(), offset = off, reason, "corrupt record; skipping the rest of this file as skipCorruptRecords asks");
                        report.skipped_corrupt += 1;
                        break;
                    }
                    return Err(format!(
                        "corrupt record in {} at offset {off} ({reason}); the events after it in that file cannot be read. Restore the file, or set skipCorruptRecords = true to start without them",
                        path.display()
                    ));
                }
            }
        }
    }
    let lost = seen.lost(ckpt.as_ref(), &files);
    if lost.events > 0 {
        let message = lost.message(&cfg.data_dirs);
        if !cfg.skip_corrupt_records {
            return Err(format!(
                "{message}. Restore the file, or set skipCorruptRecords = true to start without those events"
            ));
        }
        tracing::error!(
            channel = name,
            "{message}; starting without those events as skipCorruptRecords asks"
        );
        report.lost_to_missing_files = lost.events;
    }
    let next_id = max_id
        .map(|m| m + 1)
        .unwrap_or(0)
        .max(ckpt.as_ref().map_or(0, |c| c.next_id));
    let mut counts: BTreeMap<u64, u64> = files
        .iter()
        .filter(|f| log_path(&cfg.data_dirs, **f).exists())
        .map(|&f| (f, 0))
        .collect();
    for s in events.values() {
        *counts.entry(s.file).or_insert(0) += 1;
    }
    // Files before the oldest live one hold nothing pending any more.
    while let Some((&f, &live)) = counts.iter().next() {
        if live > 0 {
            break;
        }
        counts.remove(&f);
        let _ = std::fs::remove_file(log_path(&cfg.data_dirs, f));
    }
    let queue: VecDeque<Slot> = events.into_values().collect();
    report.pending = queue.len() as u64;
    Ok(Replayed {
        queue,
        files: counts,
        next_id,
        // Never reuse a number the checkpoint may name, or its position would cover
        // new records.
        next_file: files
            .last()
            .map_or(0, |f| f + 1)
            .max(ckpt.as_ref().map_or(0, |c| c.log_file + 1)),
        report,
    })
}

fn read_all<'a>(path: &Path, buf: &'a mut Vec<u8>) -> Result<&'a [u8], String> {
    buf.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(buf))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(buf)
}

fn truncate(path: &Path, len: u64) -> Result<(), String> {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {} to cut its torn tail: {e}", path.display()))?;
    f.set_len(len)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot cut the torn tail of {}: {e}", path.display()))
}

/// Sorted, disjoint, non-adjacent half-open id intervals.
type Ids = Vec<(u64, u64)>;

fn normalized(mut v: Ids) -> Ids {
    v.sort_unstable();
    let mut out: Ids = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some((_, last)) if s <= *last => *last = (*last).max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn minus(a: &[(u64, u64)], b: &[(u64, u64)]) -> Ids {
    let mut out = Vec::new();
    let mut j = 0;
    for &(mut s, e) in a {
        while j < b.len() && b[j].1 <= s {
            j += 1;
        }
        let mut k = j;
        while s < e && k < b.len() && b[k].0 < e {
            if b[k].0 > s {
                out.push((s, b[k].0));
            }
            s = s.max(b[k].1);
            k += 1;
        }
        if s < e {
            out.push((s, e));
        }
    }
    out
}

fn count(v: &[(u64, u64)]) -> u64 {
    v.iter().map(|(s, e)| e - s).sum()
}

/// What replay read, to tell a log file that is missing from one deleted because
/// everything in it was taken. Files are deleted oldest first, so a deleted file
/// never leaves a gap below a file that still exists.
#[derive(Default)]
struct Seen {
    /// Per log file, the ids its PUT records hold (first, end).
    spans: BTreeMap<u64, (u64, u64)>,
    /// Ids the checkpoint lists as pending that were read before its position.
    found: Ids,
    taken: Ids,
}

/// Events that were in log files no longer there.
struct Lost {
    events: u64,
    /// Absent file numbers the events were in.
    files: Vec<u64>,
    /// The events lie below every file present, so older absent files may hold
    /// some as well.
    older: bool,
    /// Of `events`, those the checkpoint lists as pending; the others are ids put
    /// after it that no remaining record takes (they may have been taken by a record
    /// in the missing file).
    pending: u64,
}

impl Seen {
    fn put(&mut self, file: u64, first: u64, n: u64) {
        let span = self.spans.entry(file).or_insert((first, first + n));
        span.0 = span.0.min(first);
        span.1 = span.1.max(first + n);
    }

    fn found(&mut self, id: u64) {
        match self.found.last_mut() {
            Some((_, end)) if *end == id => *end += 1,
            _ => self.found.push((id, id + 1)),
        }
    }

    fn taken(&mut self, ranges: &[(u64, u32)]) {
        self.taken
            .extend(ranges.iter().map(|&(f, n)| (f, f + n as u64)));
    }

    fn lost(self, ckpt: Option<&Checkpoint>, files: &[u64]) -> Lost {
        let taken = normalized(self.taken);
        let mut lost = Lost {
            events: 0,
            files: Vec::new(),
            older: false,
            pending: 0,
        };
        let present = |f: u64| files.binary_search(&f).is_ok();
        let newest = files
            .last()
            .copied()
            .max(ckpt.map(|c| c.log_file))
            .unwrap_or(0);
        // Events pending at the checkpoint were put before it and are in its file or
        // older ones. When every present file is newer, all of those were deleted,
        // which the channel does once their events are taken, possibly by records in
        // the deleted files themselves: nothing to check against.
        if let Some(c) = ckpt.filter(|c| files.first().is_none_or(|&f| f <= c.log_file)) {
            let pending = normalized(c.pending.iter().map(|&(f, n)| (f, f + n as u64)).collect());
            let missing = minus(&minus(&pending, &normalized(self.found)), &taken);
            lost.pending = count(&missing);
            lost.events = lost.pending;
            for &(s, _) in &missing {
                let prev = self.spans.iter().rev().find(|(_, span)| span.0 <= s);
                let next = self.spans.iter().find(|(_, span)| span.0 > s);
                let lo = prev.map_or(0, |(f, _)| f + 1);
                let hi = next.map_or(newest + 1, |(f, _)| *f);
                let absent: Vec<u64> = (lo..hi).filter(|&f| !present(f)).collect();
                match (prev, absent.last()) {
                    (None, Some(&f)) => {
                        lost.older |= f > 0;
                        lost.files.push(f);
                    }
                    _ => lost.files.extend(absent),
                }
            }
        }
        // Ids put after the checkpoint: those between the files on either side of a
        // gap that no remaining record takes.
        let floor = ckpt.map_or(0, |c| c.next_id);
        for w in files.windows(2) {
            let (a, b) = (w[0], w[1]);
            if b == a + 1 {
                continue;
            }
            let below = self.spans.range(..=a).map(|(_, s)| s.1).max();
            let above = self.spans.range(b..).next().map(|(_, s)| s.0);
            if let (Some(lo), Some(hi)) = (below, above) {
                let hole = [(lo.max(floor), hi)];
                if hole[0].0 < hole[0].1 {
                    let n = count(&minus(&hole, &taken));
                    if n > 0 {
                        lost.events += n;
                        lost.files.extend(a + 1..b);
                    }
                }
            }
        }
        lost.files.sort_unstable();
        lost.files.dedup();
        lost
    }
}

impl Lost {
    fn message(&self, dirs: &[std::path::PathBuf]) -> String {
        let unsure = self.events - self.pending;
        let what = match (self.pending, unsure) {
            (p, 0) => format!("{p} events the checkpoint lists as pending"),
            (0, u) => format!("up to {u} events that no remaining record takes"),
            (p, u) => format!(
                "{p} events the checkpoint lists as pending and up to {u} more that no remaining record takes"
            ),
        };
        let names: Vec<String> = self
            .files
            .iter()
            .map(|&f| log_path(dirs, f).display().to_string())
            .collect();
        let older = if self.older {
            " (and maybe older log files)"
        } else {
            ""
        };
        match names.len() {
            0 => format!("{what} are in no log file: a log file was removed or cut short"),
            1 => format!("log file {}{older} is missing, with {what}", names[0]),
            _ => format!(
                "log files {}{older} are missing, with {what}",
                names.join(", ")
            ),
        }
    }
}
