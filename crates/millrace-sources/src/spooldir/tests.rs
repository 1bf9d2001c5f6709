use super::*;
use async_trait::async_trait;
use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
use millrace_core::counters::ChannelCounters;
use millrace_core::{
    CancellationToken, Channel, ChannelError, ChannelProcessor, Event, Props, TakeTxn,
};
use std::sync::Arc;
use std::time::Duration;

fn config(dir: &Path, extra: &[(&str, &str)]) -> SpoolDirConfig {
    let d = dir.to_str().unwrap();
    let mut pairs = vec![("spoolDir", d), ("pollDelay", "20")];
    pairs.extend_from_slice(extra);
    let p = Props::from_pairs(&pairs);
    let c = SpoolDirConfig::from_props(&p);
    assert!(!p.has_errors(), "{:?}", p.finish());
    c.unwrap()
}

fn memory() -> Arc<MemoryChannel> {
    Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: 100_000,
            transaction_capacity: 1000,
            ..Default::default()
        },
    ))
}

fn context(ch: Arc<dyn Channel>) -> SourceContext {
    SourceContext {
        name: "r1".into(),
        processor: Arc::new(ChannelProcessor::single(ch)),
        counters: Default::default(),
        shutdown: CancellationToken::new(),
    }
}

async fn bodies(ch: &MemoryChannel) -> Vec<String> {
    let t = ch.take(100_000, Duration::ZERO).await.unwrap();
    let v = t
        .events()
        .iter()
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect();
    t.commit().await.unwrap();
    v
}

/// Runs the source until `done` holds (or 10 s pass), then stops it.
async fn run_until(cfg: SpoolDirConfig, ctx: &SourceContext, done: impl Fn() -> bool) {
    let mut src = SpoolDirSource::new(cfg);
    let c = ctx.clone();
    let task = tokio::spawn(async move { src.run(&c).await });
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < end, "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ctx.shutdown.cancel();
    task.await.unwrap().unwrap();
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

#[tokio::test]
async fn reads_oldest_first_renames_and_sets_headers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.log"), "b1\nb2\n").unwrap();
    std::fs::write(dir.path().join("a.log"), "a1\n").unwrap();
    std::fs::write(dir.path().join("empty.log"), "").unwrap();
    std::fs::write(dir.path().join("skip.tmp"), "x\n").unwrap();
    set_mtime(&dir.path().join("b.log"), 30);
    set_mtime(&dir.path().join("a.log"), 20);
    set_mtime(&dir.path().join("empty.log"), 10);
    let cfg = config(
        dir.path(),
        &[("basenameHeader", "true"), ("ignorePattern", r"^.*\.tmp$")],
    );
    let ch = memory();
    let ctx = context(ch.clone());
    let d = dir.path().to_path_buf();
    run_until(cfg, &ctx, || d.join("empty.log.COMPLETED").exists()).await;
    let t = ch.take(10, Duration::ZERO).await.unwrap();
    let got: Vec<(String, String)> = t
        .events()
        .iter()
        .map(|e| {
            (
                String::from_utf8_lossy(&e.body).into_owned(),
                e.header("basename").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("b1".into(), "b.log".into()),
            ("b2".into(), "b.log".into()),
            ("a1".into(), "a.log".into())
        ]
    );
    assert!(
        dir.path().join("a.log.COMPLETED").exists() && dir.path().join("b.log.COMPLETED").exists()
    );
    assert!(dir.path().join("skip.tmp").exists(), "ignored files stay");
}

#[tokio::test]
async fn resumes_at_the_committed_position() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    std::fs::write(&f, "one\ntwo\nthree\n").unwrap();
    let cfg = config(dir.path(), &[]);
    std::fs::create_dir_all(&cfg.tracker_dir).unwrap();
    let m = std::fs::metadata(&f).unwrap();
    Tracker {
        file: f.clone(),
        pos: 4,
        size: m.len(),
        mtime: mtime_ns(&m),
    }
    .write(&cfg.tracker_dir)
    .unwrap();
    let ch = memory();
    let ctx = context(ch.clone());
    let d = dir.path().to_path_buf();
    run_until(cfg, &ctx, || d.join("app.log.COMPLETED").exists()).await;
    assert_eq!(bodies(&ch).await, ["two", "three"]);
}

#[tokio::test]
async fn a_name_already_completed_is_reported_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.log"), "new\n").unwrap();
    std::fs::write(dir.path().join("app.log.COMPLETED"), "old\n").unwrap();
    std::fs::write(dir.path().join("other.log"), "other\n").unwrap();
    let ch = memory();
    let ctx = context(ch.clone());
    let d = dir.path().to_path_buf();
    run_until(config(dir.path(), &[]), &ctx, || {
        d.join("other.log.COMPLETED").exists()
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("app.log.COMPLETED")).unwrap(),
        "old\n",
        "never overwritten"
    );
    assert!(dir.path().join("app.log").exists());
    assert_eq!(ctx.counters.generic_processing_fail(), 1);
}

#[tokio::test]
async fn invalid_utf8_follows_decode_error_policy() {
    for (policy, expect_done, expect) in [
        ("FAIL", false, vec!["ok"]),
        ("REPLACE", true, vec!["ok", "bad \u{fffd}", "after"]),
        ("IGNORE", true, vec!["ok", "bad ", "after"]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.log"), b"ok\nbad \xff\nafter\n").unwrap();
        std::fs::write(dir.path().join("z.log"), "next file\n").unwrap();
        set_mtime(&dir.path().join("data.log"), 10);
        let ch = memory();
        let ctx = context(ch.clone());
        let d = dir.path().to_path_buf();
        run_until(
            config(
                dir.path(),
                &[("decodeErrorPolicy", policy), ("batchSize", "1")],
            ),
            &ctx,
            || d.join("z.log.COMPLETED").exists(),
        )
        .await;
        let mut want: Vec<String> = expect.into_iter().map(String::from).collect();
        want.push("next file".into());
        assert_eq!(bodies(&ch).await, want, "{policy}");
        assert_eq!(
            dir.path().join("data.log.COMPLETED").exists(),
            expect_done,
            "{policy}"
        );
        assert_eq!(
            ctx.counters.event_read_fail(),
            u64::from(!expect_done),
            "{policy}"
        );
    }
}

#[tokio::test]
async fn a_read_error_leaves_the_file_and_the_source_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // A directory opens but cannot be read: the nearest thing to an unreadable file
    // when the tests run as root.
    let not_a_file = dir.path().join("broken.log");
    std::fs::create_dir(&not_a_file).unwrap();
    let mut src = SpoolDirSource::new(config(dir.path(), &[]));
    let ch = memory();
    let ctx = context(ch.clone());
    assert!(matches!(
        src.process(&ctx, not_a_file.clone()).await,
        Outcome::Done
    ));
    assert!(src.failed.contains(&not_a_file));
    assert_eq!(ctx.counters.event_read_fail(), 1);
}

/// A channel that appends to the spooled file whenever it receives events, as a
/// misbehaving writer would.
struct Meddler {
    inner: Arc<MemoryChannel>,
    file: PathBuf,
}

#[async_trait]
impl Channel for Meddler {
    fn name(&self) -> &str {
        "c1"
    }
    async fn put(&self, batch: Vec<Event>) -> Result<(), ChannelError> {
        use std::io::Write;
        let mut f = std::fs::File::options()
            .append(true)
            .open(&self.file)
            .unwrap();
        f.write_all(b"late line\n").unwrap();
        self.inner.put(batch).await
    }
    async fn take(&self, max: usize, wait: Duration) -> Result<TakeTxn, ChannelError> {
        self.inner.take(max, wait).await
    }
    fn transaction_capacity(&self) -> usize {
        1000
    }
    fn counters(&self) -> &Arc<ChannelCounters> {
        self.inner.counters()
    }
}

#[tokio::test]
async fn a_file_changed_after_pickup_is_reported_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("growing.log");
    std::fs::write(&f, "first\n").unwrap();
    let inner = memory();
    let ch = Arc::new(Meddler {
        inner: inner.clone(),
        file: f.clone(),
    });
    let ctx = context(ch);
    let c = ctx.clone();
    run_until(config(dir.path(), &[]), &c, || {
        ctx.counters.generic_processing_fail() == 1
    })
    .await;
    assert!(f.exists() && !dir.path().join("growing.log.COMPLETED").exists());
    assert_eq!(bodies(&inner).await[0], "first");

    // A restart does not deliver its events again while it stays as it was left...
    std::fs::write(dir.path().join("next.log"), "next\n").unwrap();
    let ch = memory();
    let ctx = context(ch.clone());
    let d = dir.path().to_path_buf();
    run_until(config(dir.path(), &[]), &ctx, || {
        d.join("next.log.COMPLETED").exists()
    })
    .await;
    assert_eq!(bodies(&ch).await, ["next"]);
    assert!(f.exists());

    // ...and reads it as a new file once it has changed.
    std::fs::write(&f, "rewritten\n").unwrap();
    set_mtime(&f, 1);
    let ch = memory();
    let ctx = context(ch.clone());
    let d = dir.path().to_path_buf();
    run_until(config(dir.path(), &[]), &ctx, || {
        d.join("growing.log.COMPLETED").exists()
    })
    .await;
    assert_eq!(bodies(&ch).await, ["rewritten"]);
}

#[tokio::test]
async fn a_reused_name_is_completed_once_freed_without_reading_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let (file, done) = (
        dir.path().join("app.log"),
        dir.path().join("app.log.COMPLETED"),
    );
    std::fs::write(&file, "new\n").unwrap();
    std::fs::write(&done, "old\n").unwrap();
    let ch = memory();
    let ctx = context(ch.clone());
    run_until(config(dir.path(), &[]), &ctx, || {
        ctx.counters.generic_processing_fail() == 1
    })
    .await;
    assert_eq!(bodies(&ch).await, ["new"]);

    // After a restart, the file is still skipped while its name is taken...
    std::fs::write(dir.path().join("b.log"), "b\n").unwrap();
    let ch = memory();
    let ctx = context(ch.clone());
    let d = dir.path().to_path_buf();
    run_until(config(dir.path(), &[]), &ctx, || {
        d.join("b.log.COMPLETED").exists()
    })
    .await;
    assert!(file.exists());

    // ...and renamed, not read, as soon as the name is free, within the same run.
    let mut src = SpoolDirSource::new(config(dir.path(), &[]));
    let c = ctx.clone();
    let token = CancellationToken::new();
    let c = SourceContext {
        shutdown: token.clone(),
        ..c
    };
    let task = tokio::spawn(async move { src.run(&c).await });
    std::fs::rename(&done, dir.path().join(".app.log.old")).unwrap();
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while file.exists() {
        assert!(tokio::time::Instant::now() < end, "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    token.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(std::fs::read_to_string(&done).unwrap(), "new\n");
    assert_eq!(bodies(&ch).await, ["b"], "app.log is never delivered twice");
}

#[tokio::test]
async fn delete_policy_immediate_removes_read_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), "x\n").unwrap();
    let ch = memory();
    let ctx = context(ch.clone());
    let d = dir.path().to_path_buf();
    run_until(
        config(dir.path(), &[("deletePolicy", "immediate")]),
        &ctx,
        || !d.join("a.log").exists(),
    )
    .await;
    assert!(!dir.path().join("a.log.COMPLETED").exists());
    assert_eq!(bodies(&ch).await, ["x"]);
}

/// The `tracker_dir` markers under `tracker`, as paths relative to it, sorted.
fn markers(tracker: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![tracker.to_path_buf()];
    while let Some(d) = dirs.pop() {
        // Not there until the source has started.
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().ends_with(".COMPLETED") {
                let rel = p.strip_prefix(tracker).unwrap();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn tracker_dir_leaves_read_files_in_place_and_a_restart_reads_them_not_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    std::fs::write(d.join("a.log"), "a1\na2\n").unwrap();
    std::fs::write(d.join("b.log"), "b1\n").unwrap();
    set_mtime(&d.join("a.log"), 30);
    set_mtime(&d.join("b.log"), 20);
    let tracking = [("trackingPolicy", "tracker_dir")];
    let tracker = config(&d, &tracking).tracker_dir;
    let ch = memory();
    let ctx = context(ch.clone());
    let t = tracker.clone();
    run_until(config(&d, &tracking), &ctx, || markers(&t).len() == 2).await;
    assert_eq!(bodies(&ch).await, ["a1", "a2", "b1"]);
    assert_eq!(markers(&tracker), ["a.log.COMPLETED", "b.log.COMPLETED"]);
    assert_eq!(
        std::fs::read_to_string(d.join("a.log")).unwrap(),
        "a1\na2\n"
    );
    assert_eq!(std::fs::read_to_string(d.join("b.log")).unwrap(), "b1\n");
    assert!(!d.join("a.log.COMPLETED").exists(), "nothing is renamed");
    assert_eq!(
        std::fs::metadata(tracker.join("a.log.COMPLETED"))
            .unwrap()
            .len(),
        0
    );
    assert!(
        !tracker.join(TRACKER_FILE).exists(),
        "no position is left behind"
    );

    // After a restart only the new file is delivered: the marked ones are older, so
    // they would have come first.
    std::fs::write(d.join("c.log"), "c1\n").unwrap();
    let ch = memory();
    let ctx = context(ch.clone());
    let t = tracker.clone();
    run_until(config(&d, &tracking), &ctx, || markers(&t).len() == 3).await;
    assert_eq!(bodies(&ch).await, ["c1"]);
    assert!(d.join("c.log").exists());
    assert_eq!(ctx.counters.generic_processing_fail(), 0);
}

#[tokio::test]
async fn tracker_dir_marks_files_of_subdirectories_under_their_relative_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
    for (f, age) in [("x.log", 40), ("sub/x.log", 30), ("sub/deeper/y.log", 20)] {
        std::fs::write(d.join(f), format!("{f}\n")).unwrap();
        set_mtime(&d.join(f), age);
    }
    let props = [
        ("trackingPolicy", "tracker_dir"),
        ("recursiveDirectorySearch", "true"),
    ];
    let tracker = config(&d, &props).tracker_dir;
    let ch = memory();
    let ctx = context(ch.clone());
    let t = tracker.clone();
    run_until(config(&d, &props), &ctx, || markers(&t).len() == 3).await;
    assert_eq!(
        bodies(&ch).await,
        ["x.log", "sub/x.log", "sub/deeper/y.log"]
    );
    assert_eq!(
        markers(&tracker),
        [
            "sub/deeper/y.log.COMPLETED",
            "sub/x.log.COMPLETED",
            "x.log.COMPLETED"
        ]
    );

    // A restart reads only the new file, whose name is taken in another directory.
    std::fs::write(d.join("sub/deeper/x.log"), "new\n").unwrap();
    let ch = memory();
    let ctx = context(ch.clone());
    let t = tracker.clone();
    run_until(config(&d, &props), &ctx, || markers(&t).len() == 4).await;
    assert_eq!(bodies(&ch).await, ["new"]);
    assert!(tracker.join("sub/deeper/x.log.COMPLETED").exists());
}

#[tokio::test]
async fn tracker_dir_with_delete_policy_immediate_deletes_and_makes_no_marker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let props = [
        ("trackingPolicy", "tracker_dir"),
        ("deletePolicy", "immediate"),
    ];
    let tracker = config(&d, &props).tracker_dir;
    // A file marked by an earlier run is still skipped, as in Flume.
    std::fs::write(d.join("marked.log"), "old\n").unwrap();
    set_mtime(&d.join("marked.log"), 30);
    std::fs::create_dir_all(&tracker).unwrap();
    std::fs::write(tracker.join("marked.log.COMPLETED"), "").unwrap();
    std::fs::write(d.join("new.log"), "new\n").unwrap();
    let ch = memory();
    let ctx = context(ch.clone());
    run_until(config(&d, &props), &ctx, || !d.join("new.log").exists()).await;
    assert_eq!(bodies(&ch).await, ["new"]);
    assert_eq!(markers(&tracker), ["marked.log.COMPLETED"]);
    assert!(d.join("marked.log").exists());
}

#[tokio::test]
async fn tracker_dir_a_marked_file_changed_later_is_warned_about_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let tracking = [("trackingPolicy", "tracker_dir")];
    let tracker = config(&d, &tracking).tracker_dir;
    std::fs::write(d.join("a.log"), "a1\n").unwrap();
    set_mtime(&d.join("a.log"), 60);
    let ch = memory();
    let ctx = context(ch.clone());
    let t = tracker.clone();
    run_until(config(&d, &tracking), &ctx, || markers(&t).len() == 1).await;
    assert_eq!(bodies(&ch).await, ["a1"]);
    assert_eq!(
        std::fs::metadata(tracker.join("a.log.COMPLETED"))
            .unwrap()
            .modified()
            .unwrap(),
        std::fs::metadata(d.join("a.log"))
            .unwrap()
            .modified()
            .unwrap(),
        "the marker carries the file's time"
    );

    // Appended to: not read again (its first line would be delivered twice), but
    // warned about and counted, once.
    use std::io::Write;
    let mut f = std::fs::File::options()
        .append(true)
        .open(d.join("a.log"))
        .unwrap();
    f.write_all(b"a2\n").unwrap();
    drop(f);
    set_mtime(&d.join("a.log"), 30);
    std::fs::write(d.join("b.log"), "b1\n").unwrap();
    let ch = memory();
    let ctx = context(ch.clone());
    let t = tracker.clone();
    run_until(config(&d, &tracking), &ctx, || markers(&t).len() == 2).await;
    assert_eq!(bodies(&ch).await, ["b1"]);
    assert_eq!(ctx.counters.generic_processing_fail(), 1);
}

#[tokio::test]
async fn tracker_dir_a_marker_made_meanwhile_is_reported_and_the_file_left() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let cfg = config(&d, &[("trackingPolicy", "tracker_dir")]);
    let f = d.join("app.log");
    std::fs::write(&f, "line\n").unwrap();
    std::fs::create_dir_all(&cfg.tracker_dir).unwrap();
    std::fs::write(cfg.tracker_dir.join("app.log.COMPLETED"), "").unwrap();
    let mut src = SpoolDirSource::new(cfg);
    let ch = memory();
    let ctx = context(ch.clone());
    // Called directly: a listing would have skipped the marked file.
    assert!(matches!(src.process(&ctx, f.clone()).await, Outcome::Done));
    assert_eq!(bodies(&ch).await, ["line"]);
    assert_eq!(ctx.counters.generic_processing_fail(), 1);
    assert!(f.exists() && src.failed.contains(&f));
}

#[tokio::test]
async fn patterns_match_whole_names_and_ignored_subdirectories_are_not_entered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    std::fs::create_dir_all(d.join("archive")).unwrap();
    std::fs::create_dir_all(d.join("sub")).unwrap();
    let files = [
        ("a.log", 40),
        ("a.log.1", 35),
        ("skipme.log", 30),
        ("keep_skip.log", 25),
        ("archive/old.log", 20),
        ("sub/new.log", 15),
        ("sub/archive.log", 10),
    ];
    for (f, age) in files {
        std::fs::write(d.join(f), format!("{f}\n")).unwrap();
        set_mtime(&d.join(f), age);
    }
    let props = [
        ("includePattern", r".*\.log"),
        ("ignorePattern", "archive|skip.*"),
        ("recursiveDirectorySearch", "true"),
    ];
    let read = ["a.log", "keep_skip.log", "sub/new.log", "sub/archive.log"];
    let ch = memory();
    let ctx = context(ch.clone());
    let completed = |f: &str| d.join(format!("{f}.COMPLETED")).exists();
    run_until(config(&d, &props), &ctx, || {
        read.iter().all(|f| completed(f))
    })
    .await;
    // As Flume's Matcher.matches: `.*\.log` is not found inside `a.log.1`, `skip.*`
    // does not match `keep_skip.log`, and `archive` names the directory, not
    // `archive.log`.
    assert_eq!(bodies(&ch).await, read);
    for f in ["a.log.1", "skipme.log", "archive/old.log"] {
        assert!(d.join(f).exists() && !completed(f), "{f} was read");
    }
}
