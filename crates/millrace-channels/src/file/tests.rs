use super::*;
use millrace_core::Props;
use std::path::Path;

/// Removes the log file `gone`; returns the events it held and the error of the
/// channel that must then refuse to open.
fn remove_and_reopen(gone: &Path, c: &FileChannelConfig) -> (u64, String) {
    let held = record_count(gone);
    std::fs::remove_file(gone).unwrap();
    (held, refused("c1", c.clone()))
}

/// The error of a channel that must refuse to open.
fn refused(name: &str, c: FileChannelConfig) -> String {
    FileChannel::new(name, c)
        .open_sync()
        .expect_err("refuses to open")
        .to_string()
}

fn cfg(dir: &Path, extra: &[(&str, &str)]) -> FileChannelConfig {
    let ck = dir.join("checkpoint");
    let data = dir.join("data");
    let mut pairs = vec![
        ("checkpointDir", ck.to_str().unwrap()),
        ("dataDirs", data.to_str().unwrap()),
        ("capacity", "100000"),
        ("transactionCapacity", "1000"),
        ("minimumRequiredSpace", "0"),
    ];
    pairs.extend_from_slice(extra);
    let p = Props::from_pairs(&pairs);
    let c = FileChannelConfig::from_props(&p);
    assert!(p.finish().iter().all(|d| !d.is_error()), "{:?}", p.finish());
    c.unwrap()
}

fn open(c: &FileChannelConfig) -> (FileChannel, ReplayReport) {
    let ch = FileChannel::new("c1", c.clone());
    let r = ch.open_sync().expect("opens");
    (ch, r)
}

fn events(range: std::ops::Range<u32>) -> Vec<Event> {
    range
        .map(|i| Event::from_body(i.to_string()).with_header("n", i.to_string()))
        .collect()
}

async fn drain(ch: &FileChannel) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let t = ch.take(1000, Duration::ZERO).await.unwrap();
        if t.is_empty() {
            return out;
        }
        out.extend(
            t.events()
                .iter()
                .map(|e| String::from_utf8_lossy(&e.body).into_owned()),
        );
        t.commit().await.unwrap();
    }
}

fn nums(r: std::ops::Range<u32>) -> Vec<String> {
    r.map(|i| i.to_string()).collect()
}

fn last_log(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("log-"))
        .collect();
    logs.sort_by_key(|p| {
        p.file_name().unwrap().to_str().unwrap()[4..]
            .parse::<u64>()
            .unwrap()
    });
    logs.pop().unwrap()
}

#[tokio::test]
async fn committed_puts_survive_a_restart_and_committed_takes_stay_taken() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), &[("checkpointOnClose", "false")]);
    let (ch, _) = open(&c);
    ch.put(events(0..10)).await.unwrap();
    let t = ch.take(4, Duration::ZERO).await.unwrap();
    t.commit().await.unwrap();
    // A take that never commits leaves its events in the channel.
    let t = ch.take(2, Duration::ZERO).await.unwrap();
    std::mem::forget(t);
    ch.close().await;
    let (ch, r) = open(&c);
    assert!(!r.from_checkpoint);
    assert_eq!(r.pending, 6);
    let t = ch.take(10, Duration::ZERO).await.unwrap();
    assert_eq!(t.events()[0].header("n"), Some("4"), "headers survive");
    drop(t);
    assert_eq!(drain(&ch).await, nums(4..10));
    ch.close().await;
}

#[tokio::test]
async fn replay_uses_the_checkpoint_and_the_tail_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), &[]);
    let (ch, _) = open(&c);
    ch.put(events(0..100)).await.unwrap();
    ch.take(30, Duration::ZERO)
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    ch.close().await; // checkpoint on close
    let (ch, r) = open(&c);
    assert!(r.from_checkpoint);
    assert_eq!(r.pending, 70);
    // After the checkpoint: more puts and takes, then a stop without a checkpoint.
    ch.put(events(100..150)).await.unwrap();
    ch.take(20, Duration::ZERO)
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    let c2 = FileChannelConfig {
        checkpoint_on_close: false,
        ..c.clone()
    };
    let ch2 = FileChannel {
        inner: ch.inner.clone(),
    };
    drop(ch);
    ch2.close().await;
    let (ch, r) = open(&c2);
    assert!(r.from_checkpoint);
    assert_eq!(drain(&ch).await, nums(50..150));
    ch.close().await;
}

#[tokio::test]
async fn a_torn_tail_record_is_cut_off_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), &[("checkpointOnClose", "false")]);
    let (ch, _) = open(&c);
    ch.put(events(0..5)).await.unwrap();
    ch.close().await;
    // A crash in the middle of writing the next record.
    let mut rec = Vec::new();
    record::encode_put(&mut rec, 5, &events(5..8));
    let log = last_log(dir.path());
    let mut f = File::options().append(true).open(&log).unwrap();
    f.write_all(&rec[..rec.len() / 2]).unwrap();
    drop(f);
    let (ch, r) = open(&c);
    assert_eq!(r.torn_records, 1);
    let shown: Vec<(&str, String)> =
        millrace_core::counters::Metrics::values(ch.counters().as_ref());
    assert!(
        shown.contains(&("ReplayTornRecordCount", "1".to_string())),
        "{shown:?}"
    );
    assert!(shown.contains(&("Open", "true".to_string())), "{shown:?}");
    assert_eq!(drain(&ch).await, nums(0..5));
    ch.close().await;
}

#[tokio::test]
async fn a_corrupt_record_before_the_tail_stops_the_channel_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), &[("checkpointOnClose", "false")]);
    let (ch, _) = open(&c);
    ch.put(events(0..5)).await.unwrap();
    ch.put(events(5..10)).await.unwrap();
    ch.close().await;
    // Damage the first record's body; the second record follows it.
    let log = last_log(dir.path());
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[record::MAGIC.len() + 20] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    let ch = FileChannel::new("c1", c.clone());
    let err = ch.open_sync().expect_err("refuses to open").to_string();
    assert!(
        err.contains(&log.display().to_string()) && err.contains("offset 8"),
        "{err}"
    );
    assert!(err.contains("skipCorruptRecords"), "{err}");
    let skip = FileChannelConfig {
        skip_corrupt_records: true,
        ..c
    };
    let (ch, r) = open(&skip);
    assert_eq!(r.skipped_corrupt, 1);
    assert!(ch.is_empty(), "the rest of the damaged file is skipped");
    ch.close().await;
}

#[tokio::test]
async fn without_a_checkpoint_the_whole_log_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), &[]);
    let (ch, _) = open(&c);
    ch.put(events(0..50)).await.unwrap();
    ch.take(10, Duration::ZERO)
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    ch.close().await;
    std::fs::remove_file(dir.path().join("checkpoint").join("checkpoint")).unwrap();
    let (ch, r) = open(&c);
    assert!(!r.from_checkpoint);
    assert_eq!(drain(&ch).await, nums(10..50));
    ch.close().await;
}

#[tokio::test]
async fn a_damaged_checkpoint_falls_back_to_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let c = cfg(
        dir.path(),
        &[
            ("useDualCheckpoints", "true"),
            ("backupCheckpointDir", backup.to_str().unwrap()),
        ],
    );
    let (ch, _) = open(&c);
    ch.put(events(0..20)).await.unwrap();
    ch.take(5, Duration::ZERO)
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    ch.close().await;
    let main = dir.path().join("checkpoint").join("checkpoint");
    let mut b = std::fs::read(&main).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&main, b).unwrap();
    let (ch, r) = open(&c);
    assert!(r.from_checkpoint, "the backup was used");
    assert_eq!(drain(&ch).await, nums(5..20));
    ch.close().await;
}

#[tokio::test]
async fn a_second_agent_on_the_same_directories_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), &[]);
    let (ch, _) = open(&c);
    let other = FileChannel::new("c1", c.clone());
    let err = other.open_sync().expect_err("refused").to_string();
    assert!(err.contains("in use by another agent"), "{err}");
    ch.close().await;
    other.open_sync().expect("free after the first closed");
    other.close().await;
}

#[tokio::test]
async fn fully_taken_log_files_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), &[("maxFileSize", "1048576")]);
    let (ch, _) = open(&c);
    let big = |i: u32| Event::from_body(vec![b'x'; 10_000]).with_header("i", i.to_string());
    for chunk in 0..10 {
        ch.put((0..100).map(|i| big(chunk * 100 + i)).collect())
            .await
            .unwrap();
    }
    let logs = || {
        std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_str()
                    .unwrap()
                    .starts_with("log-")
            })
            .count()
    };
    assert!(logs() >= 5, "{} files for 10 MB at 1 MB each", logs());
    assert_eq!(drain(&ch).await.len(), 1000);
    assert_eq!(
        logs(),
        1,
        "only the file being written remains: {:?}",
        ch.inner.lock().files
    );
    ch.close().await;
}

#[tokio::test]
async fn low_disk_space_refuses_puts_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(
        dir.path(),
        &[("minimumRequiredSpace", "4611686018427387903")],
    );
    let (ch, _) = open(&c);
    let err = ch.put(events(0..1)).await.unwrap_err().to_string();
    assert!(err.contains("minimumRequiredSpace"), "{err}");
    assert!(ch.is_empty());
    ch.close().await;
}

#[tokio::test]
async fn concurrent_puts_share_syncs_and_keep_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), &[]);
    let (ch, _) = open(&c);
    let ch = Arc::new(ch);
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..20u32 {
                let base = t * 10_000 + b * 100;
                ch.put(events(base..base + 100)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ch.len(), 16_000);
    ch.close().await;
    let (ch, r) = open(&c);
    assert_eq!(r.pending, 16_000);
    ch.close().await;
}

fn log_numbers(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .filter_map(|e| {
            e.unwrap().file_name().to_str().unwrap()["log-".len()..]
                .parse()
                .ok()
        })
        .collect();
    v.sort_unstable();
    v
}

/// 400 events of about 100 bytes in log files of 2000 bytes: about 20 files.
async fn fill_small_files(c: &FileChannelConfig) -> FileChannel {
    let (ch, _) = open(c);
    for b in 0..40 {
        ch.put(events(b * 10..b * 10 + 10)).await.unwrap();
    }
    ch
}

fn small_files(dir: &Path, extra: &[(&str, &str)]) -> FileChannelConfig {
    FileChannelConfig {
        max_file_size: 2000,
        ..cfg(dir, extra)
    }
}

#[tokio::test]
async fn a_missing_log_file_stops_the_channel_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_files(dir.path(), &[]);
    let ch = fill_small_files(&c).await;
    ch.close().await; // checkpoint on close
    let logs = log_numbers(dir.path());
    assert!(logs.len() > 5, "{logs:?}");
    let gone = dir.path().join("data").join(format!("log-{}", logs[2]));
    let (held, err) = remove_and_reopen(&gone, &c);
    assert!(
        err.contains(&format!(
            "log file {} is missing, with {held} events the checkpoint lists as pending",
            gone.display()
        )),
        "{err}"
    );
    assert!(err.contains("skipCorruptRecords = true"), "{err}");
    let skip = FileChannelConfig {
        skip_corrupt_records: true,
        ..c
    };
    let (ch, r) = open(&skip);
    assert!(r.from_checkpoint);
    assert_eq!(r.lost_to_missing_files, held);
    assert_eq!(drain(&ch).await.len() as u64, 400 - held);
    ch.close().await;
}

#[tokio::test]
async fn the_oldest_log_file_missing_is_noticed_too() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_files(dir.path(), &[]);
    let ch = fill_small_files(&c).await;
    ch.close().await;
    let gone = dir.path().join("data").join("log-0");
    let (held, err) = remove_and_reopen(&gone, &c);
    assert!(
        err.contains(&format!(
            "{} is missing, with {held} events",
            gone.display()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn without_a_checkpoint_a_gap_in_the_log_files_stops_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_files(dir.path(), &[("checkpointOnClose", "false")]);
    let ch = fill_small_files(&c).await;
    ch.close().await;
    let logs = log_numbers(dir.path());
    let gone = dir.path().join("data").join(format!("log-{}", logs[3]));
    let (held, err) = remove_and_reopen(&gone, &c);
    assert!(
        err.contains(&format!(
            "log file {} is missing, with up to {held} events that no remaining record takes",
            gone.display()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn log_files_deleted_because_all_was_taken_are_not_missing() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_files(dir.path(), &[]);
    let ch = fill_small_files(&c).await;
    // The checkpoint written at close lists all 400 as pending. Takes after it empty
    // the oldest files, which are deleted; then a stop without a checkpoint.
    ch.close().await;
    let no_ckpt = FileChannelConfig {
        checkpoint_on_close: false,
        ..c.clone()
    };
    let (ch, _) = open(&no_ckpt);
    let before = log_numbers(dir.path());
    for _ in 0..10 {
        ch.take(10, Duration::ZERO)
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
    }
    ch.put(events(400..500)).await.unwrap();
    ch.close().await;
    assert!(log_numbers(dir.path())[0] > before[0], "some were deleted");
    let (ch, r) = open(&c);
    assert_eq!(r.pending, 400);
    ch.close().await;
    // The checkpoint lists 100..500; then every file of the checkpoint's time emptied and deleted, its own included.
    let (ch, _) = open(&no_ckpt);
    assert_eq!(drain(&ch).await, nums(100..500));
    ch.put(events(0..10)).await.unwrap();
    ch.close().await;
    let (ch, _) = open(&c);
    assert_eq!(drain(&ch).await, nums(0..10));
    ch.close().await;
}

fn record_count(log: &Path) -> u64 {
    let data = std::fs::read(log).unwrap();
    let mut off = record::MAGIC.len();
    let mut n = 0;
    while off < data.len() {
        let (rec, len) = record::decode(&data[off..]).unwrap();
        if let record::Record::Put { events, .. } = rec {
            n += events.len() as u64;
        }
        off += len;
    }
    n
}

#[tokio::test]
async fn a_flume_max_file_size_below_one_mib_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("checkpoint");
    let data = dir.path().join("data");
    // As in Flume's own tests: smaller than one transaction's record.
    let p = Props::from_pairs(&[
        ("checkpointDir", ck.to_str().unwrap()),
        ("dataDirs", data.to_str().unwrap()),
        ("minimumRequiredSpace", "0"),
        ("maxFileSize", "150"),
    ]);
    let c = FileChannelConfig::from_props(&p).expect("accepted");
    assert!(p.finish().is_empty(), "{:?}", p.finish());
    assert_eq!(c.max_file_size, 150);
    // Flume's floor: 0 (or anything below 1 MiB) keeps 1 MiB free.
    assert_eq!(c.minimum_required_space, 1 << 20);
    let c = FileChannelConfig {
        checkpoint_on_close: false,
        ..c
    };
    let (ch, _) = open(&c);
    for b in 0..10 {
        ch.put(events(b * 5..b * 5 + 5)).await.unwrap();
    }
    ch.close().await;
    assert!(
        log_numbers(dir.path()).len() >= 10,
        "a file per transaction"
    );
    let (ch, r) = open(&c);
    assert_eq!(r.pending, 50);
    assert_eq!(drain(&ch).await, nums(0..50));
    assert_eq!(
        log_numbers(dir.path()).len(),
        1,
        "emptied files are deleted"
    );
    ch.close().await;
}

#[tokio::test]
async fn two_channels_of_one_agent_on_one_directory_are_told_apart_from_another_agent() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), &[]);
    let ch = FileChannel::new("c1", c.clone());
    ch.open_sync().unwrap();
    let ck = dir.path().join("checkpoint");
    // The same checkpoint directory, spelled differently.
    let shared_ck = FileChannelConfig {
        checkpoint_dir: ck.join("."),
        data_dirs: vec![dir.path().join("data2")],
        ..c.clone()
    };
    let err = refused("c2", shared_ck.clone());
    assert!(
        err.contains(&format!(
            "{} is already used by channel c1 of this agent; give each file channel its own checkpointDir and dataDirs",
            ck.join(".").display()
        )),
        "{err}"
    );
    let shared_data = FileChannelConfig {
        checkpoint_dir: dir.path().join("checkpoint2"),
        ..c.clone()
    };
    let err = refused("c2", shared_data);
    assert!(
        err.contains("already used by channel c1 of this agent"),
        "{err}"
    );
    ch.close().await;
    let c2 = FileChannel::new("c2", shared_ck);
    c2.open_sync().expect("free once c1 closed");
    c2.close().await;
}

#[tokio::test]
async fn a_directory_named_twice_in_one_channel_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = FileChannelConfig {
        data_dirs: vec![dir.path().join("checkpoint")],
        ..cfg(dir.path(), &[])
    };
    let err = refused("c1", c);
    assert!(
        err.contains("is named twice among this channel's checkpointDir"),
        "{err}"
    );
}

#[tokio::test]
async fn a_directory_locked_by_another_process_names_its_pid() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), &[]);
    let ck = dir.path().join("checkpoint");
    std::fs::create_dir_all(&ck).unwrap();
    // What another agent leaves: its pid in the file, and the lock held.
    let path = ck.join("in_use.lock");
    std::fs::write(&path, "4242\n").unwrap();
    let other = File::open(&path).unwrap();
    // SAFETY: flock(2) on a descriptor this test owns.
    let rc = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&other),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    assert_eq!(rc, 0);
    let err = refused("c1", c.clone());
    assert!(
        err.contains(&format!(
            "{} is in use by another agent (pid 4242)",
            ck.display()
        )),
        "{err}"
    );
    drop(other);
    let (ch, _) = open(&c);
    ch.close().await;
}

#[tokio::test]
async fn without_fsync_per_transaction_the_log_is_synced_every_fsync_interval() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(
        dir.path(),
        &[
            ("fsyncPerTransaction", "false"),
            ("fsyncInterval", "1"),
            ("checkpointInterval", "600000"),
        ],
    );
    assert_eq!(c.fsync_interval, Duration::from_secs(1));
    let (ch, _) = open(&c);
    let syncs = || ch.inner.log_syncs.load(Ordering::Relaxed);
    ch.put(events(0..10)).await.unwrap();
    assert_eq!(syncs(), 0, "the put returned without a sync of its own");
    let deadline = Instant::now() + Duration::from_secs(5);
    while syncs() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        syncs(),
        1,
        "synced within fsyncInterval, long before a checkpoint"
    );
    // Nothing new written: nothing to sync.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(syncs(), 1);
    ch.close().await;
}

#[test]
fn fsync_interval_defaults_to_5_s_and_0_is_refused_without_fsync_per_transaction() {
    assert_eq!(
        FileChannelConfig::from_props(&Props::from_pairs(&[]))
            .unwrap()
            .fsync_interval,
        Duration::from_secs(5)
    );
    let p = Props::from_pairs(&[("fsyncPerTransaction", "false"), ("fsyncInterval", "0")]);
    assert!(FileChannelConfig::from_props(&p).is_none());
    let d = p.finish();
    assert!(d[0].message.contains("fsyncInterval"), "{}", d[0]);
    let p = Props::from_pairs(&[("fsyncInterval", "0")]);
    assert!(FileChannelConfig::from_props(&p).is_some());
}

#[test]
fn encryption_settings_are_refused() {
    let p = Props::from_pairs(&[
        ("encryption.activeKey", "key-0"),
        ("encryption.cipherProvider", "AESCTRNOPADDING"),
        ("encryption.keyProvider", "JCEKSFILE"),
        (
            "encryption.keyProvider.keyStoreFile",
            "/etc/flume/keys.jceks",
        ),
    ]);
    assert!(FileChannelConfig::from_props(&p).is_none());
    let d = p.finish();
    assert_eq!(d.len(), 4, "{d:?}");
    for d in &d {
        assert!(d.is_error(), "{d}");
        assert!(
            d.message
                .contains("encryption of the file channel is not supported"),
            "{d}"
        );
    }
    assert!(d[3].message.contains("encryption.keyProvider.keyStoreFile"));
}

#[test]
fn flumes_replay_and_backup_compression_settings_are_accepted_without_effect() {
    let p = Props::from_pairs(&[
        ("use-log-replay-v1", "false"),
        ("use-fast-replay", "false"),
        ("compressBackupCheckpoint", "true"),
    ]);
    assert!(FileChannelConfig::from_props(&p).is_some());
    let d = p.finish();
    assert_eq!(d.len(), 3, "{d:?}");
    for d in &d {
        assert!(!d.is_error(), "{d}");
        assert!(d.message.contains("has no effect in millrace"), "{d}");
    }
}
