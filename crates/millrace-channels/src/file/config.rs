use millrace_core::Props;
use std::path::PathBuf;
use std::time::Duration;

/// Settings of the `file` channel, under Flume's property names.
#[derive(Debug, Clone)]
pub struct FileChannelConfig {
    /// `checkpointDir` (default `~/.flume/file-channel/checkpoint`): where the
    /// checkpoint and the lock live.
    pub checkpoint_dir: PathBuf,
    /// `dataDirs` (comma separated, default `~/.flume/file-channel/data`): where the
    /// log files live; new files rotate over the directories.
    pub data_dirs: Vec<PathBuf>,
    /// `capacity` (default 1000000): most events held.
    pub capacity: usize,
    /// `transactionCapacity` (default 10000): most events per put or take.
    pub transaction_capacity: usize,
    /// `maxFileSize` (bytes, default 2146435071): a log file is closed and a new one
    /// started past this size; a transaction larger than this gets a file of its own.
    pub max_file_size: u64,
    /// `minimumRequiredSpace` (bytes, default 524288000): puts fail while a data
    /// directory's file system has less free space than this.
    pub minimum_required_space: u64,
    /// `keep-alive` (seconds, default 3): how long a put waits for room.
    pub keep_alive: Duration,
    /// `checkpointInterval` (ms, default 30000): how often a checkpoint is written.
    pub checkpoint_interval: Duration,
    /// `useDualCheckpoints` (default false) with `backupCheckpointDir`: also keep a
    /// copy of each checkpoint there, used when the main one is unreadable.
    pub backup_checkpoint_dir: Option<PathBuf>,
    /// `fsyncPerTransaction` (default true): every put and take commit is on disk
    /// before it returns. With false, the log is synced every `fsync_interval` and at
    /// checkpoints, and a machine crash can lose the transactions since the last sync.
    pub fsync_per_transaction: bool,
    /// `fsyncInterval` (seconds, default 5): how often the log is synced when
    /// `fsyncPerTransaction` is false.
    pub fsync_interval: Duration,
    /// `checkpointOnClose` (default true): write a checkpoint when the agent stops.
    pub checkpoint_on_close: bool,
    /// `skipCorruptRecords` (millrace, default false): on replay, skip the rest of a
    /// log file after a corrupt record, and start without the events of a missing
    /// log file, instead of refusing to start.
    pub skip_corrupt_records: bool,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

impl FileChannelConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let base = home().join(".flume/file-channel");
        let checkpoint_dir = p
            .optional("checkpointDir", "~/.flume/file-channel/checkpoint")
            .map(PathBuf::from)
            .unwrap_or_else(|| base.join("checkpoint"));
        let data_dirs: Vec<PathBuf> = match p.optional("dataDirs", "~/.flume/file-channel/data") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            None => vec![base.join("data")],
        };
        if data_dirs.is_empty() {
            p.error_at(
                "dataDirs",
                format!(
                    "`{}` names no directory; list one or more, comma separated",
                    p.full_key("dataDirs")
                ),
            );
        }
        let capacity = p.positive("capacity", 1_000_000) as usize;
        let transaction_capacity = p.positive("transactionCapacity", 10_000) as usize;
        if transaction_capacity > capacity {
            p.error_at(
                "transactionCapacity",
                format!(
                    "`{}` = {transaction_capacity} is larger than `{}` = {capacity}; lower transactionCapacity or raise capacity",
                    p.full_key("transactionCapacity"),
                    p.full_key("capacity")
                ),
            );
        }
        // Flume has no lower bound, and none is needed: a record larger than this
        // gets a log file of its own.
        let max_file_size = p.u64_in("maxFileSize", 2_146_435_071, 0, u64::MAX / 2);
        // Flume raises anything lower to 1 MiB, so that a disk is never filled to the
        // last byte (where even a checkpoint cannot be written).
        let minimum_required_space = p
            .u64_in("minimumRequiredSpace", 524_288_000, 0, u64::MAX / 2)
            .max(1 << 20);
        let keep_alive = p.seconds("keep-alive", 3);
        let checkpoint_interval = p
            .millis("checkpointInterval", 30_000)
            .max(Duration::from_millis(100));
        let dual = p.bool("useDualCheckpoints", false);
        let backup = p.get("backupCheckpointDir").map(PathBuf::from);
        if dual && backup.is_none() {
            p.error_at(
                "useDualCheckpoints",
                format!(
                    "`{}` = true needs `{}`; set it to a directory apart from checkpointDir",
                    p.full_key("useDualCheckpoints"),
                    p.full_key("backupCheckpointDir")
                ),
            );
        }
        if dual && backup.as_ref() == Some(&checkpoint_dir) {
            p.error_at(
                "backupCheckpointDir",
                format!(
                    "`{}` must differ from checkpointDir",
                    p.full_key("backupCheckpointDir")
                ),
            );
        }
        let fsync_per_transaction = p.bool("fsyncPerTransaction", true);
        let fsync_interval = p.seconds("fsyncInterval", 5);
        if !fsync_per_transaction && fsync_interval.is_zero() {
            p.error_at(
                "fsyncInterval",
                format!(
                    "`{}` = 0 with fsyncPerTransaction = false would never sync the log; use 1 second or more",
                    p.full_key("fsyncInterval")
                ),
            );
        }
        let checkpoint_on_close = p.bool("checkpointOnClose", true);
        let skip_corrupt_records = p.bool("skipCorruptRecords", false);
        // Flume's settings that have no meaning here. The last three are not Flume's, but
        // millrace accepted them before, and configurations may carry them.
        const REPLAY: &str = "replay is always from the checkpoint and the log after it";
        for (k, why) in [
            ("use-fast-replay", REPLAY),
            ("use-log-replay-v1", REPLAY),
            (
                "compressBackupCheckpoint",
                "the backup checkpoint is a plain copy, small as the main one",
            ),
            ("useLogReplayV1", REPLAY),
            ("checkpointDirs", "the checkpoint is in checkpointDir"),
            (
                "maxFileSize.preallocate",
                "log files grow as they are written",
            ),
        ] {
            if p.get(k).is_some() {
                p.warn_at(
                    k,
                    format!("`{}` has no effect in millrace ({why})", p.full_key(k)),
                );
            }
        }
        // Accepting these would let someone believe events on disk are encrypted.
        p.refuse_prefix(
            "encryption.",
            "encryption of the file channel is not supported by millrace, and its log would be written unencrypted; remove the encryption.* settings, and encrypt the file system that holds dataDirs if the events must be encrypted at rest",
        );
        if p.has_errors() {
            return None;
        }
        Some(FileChannelConfig {
            checkpoint_dir,
            data_dirs,
            capacity,
            transaction_capacity,
            max_file_size,
            minimum_required_space,
            keep_alive,
            checkpoint_interval,
            backup_checkpoint_dir: if dual { backup } else { None },
            fsync_per_transaction,
            fsync_interval,
            checkpoint_on_close,
            skip_corrupt_records,
        })
    }
}
