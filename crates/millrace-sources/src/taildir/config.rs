use millrace_core::{Headers, Props};
use regex::Regex;
use std::path::PathBuf;
use std::time::Duration;

/// One file group: a directory and a regular expression over file names in it.
#[derive(Debug, Clone)]
pub struct FileGroup {
    pub name: String,
    pub dir: PathBuf,
    pub pattern: Regex,
    /// `headers.NAME.KEY = value`: set on every event of the group.
    pub headers: Headers,
}

/// Settings of the `TAILDIR` source, under Flume's property names.
#[derive(Debug, Clone)]
pub struct TaildirConfig {
    /// `filegroups` and `filegroups.NAME` (an absolute path whose last part is a
    /// regular expression over file names, e.g. `/var/log/app/.*\.log`).
    pub groups: Vec<FileGroup>,
    /// `positionFile` (default `~/.flume/taildir_position.json`), in Flume's format.
    pub position_file: PathBuf,
    /// `byteOffsetHeader` (default false): the line's byte offset in `byteoffset`.
    pub byte_offset_header: bool,
    /// `skipToEnd` (default false): start files with no recorded position at their end.
    pub skip_to_end: bool,
    /// `idleTimeout` (ms, default 120000): a file that no longer matches (rotated away)
    /// is forgotten once read to its end and unchanged this long.
    pub idle_timeout: Duration,
    /// `batchSize` (default 100): lines per put.
    pub batch_size: usize,
    /// `maxBatchCount` (default unlimited): batches read from one file before the
    /// others get their turn.
    pub max_batch_count: u64,
    /// `backoffSleepIncrement` (ms, default 1000) and `maxBackoffSleep` (ms, default
    /// 5000): how the wait grows while no file has new lines.
    pub backoff_increment: Duration,
    pub max_backoff: Duration,
    /// `fileHeader` (default false) and `fileHeaderKey` (default `file`).
    pub file_header: Option<String>,
}

impl TaildirConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let names = p.required(
            "filegroups",
            "list file groups, e.g. `f1`, and set `filegroups.f1 = /var/log/app/.*\\.log`",
        );
        let mut groups = Vec::new();
        for name in names.as_deref().unwrap_or("").split_whitespace() {
            let key = format!("filegroups.{name}");
            let Some(path) = p.required(
                &key,
                "set it to an absolute path whose last part is a regular expression",
            ) else {
                continue;
            };
            let path = PathBuf::from(path);
            let (dir, pattern) = match (path.parent(), path.file_name()) {
                (Some(d), Some(f)) if path.is_absolute() => {
                    (d.to_path_buf(), f.to_string_lossy().into_owned())
                }
                _ => {
                    p.error_at(
                        &key,
                        format!(
                            "`{}` must be an absolute path such as /var/log/app/.*\\.log",
                            p.full_key(&key)
                        ),
                    );
                    continue;
                }
            };
            let pattern = match Regex::new(&format!("^(?:{pattern})$")) {
                Ok(r) => r,
                Err(_) => {
                    p.error_at(
                        &key,
                        format!(
                            "the file name part of `{}` is not a valid regular expression",
                            p.full_key(&key)
                        ),
                    );
                    continue;
                }
            };
            let headers = p
                .with_prefix(&format!("headers.{name}."))
                .into_iter()
                .map(|(k, v)| (k, v.value))
                .collect();
            groups.push(FileGroup {
                name: name.to_string(),
                dir,
                pattern,
                headers,
            });
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let position_file = p
            .optional("positionFile", "~/.flume/taildir_position.json")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".flume/taildir_position.json"));
        let byte_offset_header = p.bool("byteOffsetHeader", false);
        let skip_to_end = p.bool("skipToEnd", false);
        let idle_timeout = p.millis("idleTimeout", 120_000);
        // Positions are written after every committed put, which is at least as often
        // as Flume's writePosInterval asks.
        let _ = p.get("writePosInterval");
        let _ = p.get("cachePatternMatching");
        let batch_size = p.u64_in("batchSize", 100, 1, 1_000_000) as usize;
        let max_batch_count = p.u64_in("maxBatchCount", i64::MAX as u64, 1, i64::MAX as u64);
        let backoff_increment = p
            .millis("backoffSleepIncrement", 1000)
            .max(Duration::from_millis(1));
        let max_backoff = p.millis("maxBackoffSleep", 5000);
        // Read whether or not the header is on, as Flume reads it.
        let file_header = p.bool("fileHeader", false);
        let file_header = file_header.then_some(p.string("fileHeaderKey", "file"));
        if p.has_errors() {
            return None;
        }
        Some(TaildirConfig {
            groups,
            position_file,
            byte_offset_header,
            skip_to_end,
            idle_timeout,
            batch_size,
            max_batch_count,
            backoff_increment,
            max_backoff,
            file_header,
        })
    }
}
