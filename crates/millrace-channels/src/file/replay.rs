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
                            for (k, event) in evs.into_iter().enumerate() {
                                let id = first_id + k as u64;
                                max_id = Some(max_id.map_or(id, |m| m.max(id)));
                                let keep = match (&ckpt, before) {
                                    (Some(c), true) => pending_in(&c.pending, id),
                                    _ => true,
                                };
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
