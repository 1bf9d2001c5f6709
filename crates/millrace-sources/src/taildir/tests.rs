use super::*;
use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
use millrace_core::{CancellationToken, Channel, ChannelProcessor, Props};
use std::io::Write;

fn config(dir: &Path, pos: &Path, extra: &[(&str, &str)]) -> TaildirConfig {
    let pattern = format!("{}/app.*\\.log", dir.display());
    let mut pairs = vec![
        ("filegroups", "f1"),
        ("filegroups.f1", pattern.as_str()),
        ("positionFile", pos.to_str().unwrap()),
        ("backoffSleepIncrement", "10"),
        ("maxBackoffSleep", "20"),
        ("idleTimeout", "200"),
    ];
    pairs.extend_from_slice(extra);
    let p = Props::from_pairs(&pairs);
    let c = TaildirConfig::from_props(&p);
    assert!(!p.has_errors(), "{:?}", p.finish());
    c.unwrap()
}

struct Running {
    ch: Arc<MemoryChannel>,
    ctx: SourceContext,
    task: tokio::task::JoinHandle<Result<(), SourceError>>,
    got: Vec<Event>,
}

impl Running {
    fn start(cfg: TaildirConfig) -> Running {
        let ch = Arc::new(MemoryChannel::new(
            "c1",
            MemoryChannelConfig {
                capacity: 100_000,
                transaction_capacity: 1000,
                ..Default::default()
            },
        ));
        let ctx = SourceContext {
            name: "r1".into(),
            processor: Arc::new(ChannelProcessor::single(ch.clone())),
            counters: Default::default(),
            shutdown: CancellationToken::new(),
        };
        let c = ctx.clone();
        let task = tokio::spawn(async move { TaildirSource::new(cfg).run(&c).await });
        Running {
            ch,
            ctx,
            task,
            got: Vec::new(),
        }
    }

    /// Waits until `n` events arrived in total; returns their bodies.
    async fn wait_for(&mut self, n: usize) -> Vec<String> {
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.got.len() < n {
            assert!(
                tokio::time::Instant::now() < end,
                "only {} of {n} events",
                self.got.len()
            );
            let t = self.ch.take(1000, Duration::from_millis(20)).await.unwrap();
            self.got.extend(t.events().iter().cloned());
            t.commit().await.unwrap();
        }
        self.got
            .iter()
            .map(|e| String::from_utf8_lossy(&e.body).into_owned())
            .collect()
    }

    async fn stop(self) {
        self.ctx.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn append(path: &Path, text: &str) {
    let mut f = File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::test]
async fn follows_growth_and_holds_back_a_partial_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "one\ntwo\npart");
    let cfg = config(
        dir.path(),
        &dir.path().join("pos.json"),
        &[("byteOffsetHeader", "true"), ("headers.f1.topic", "web")],
    );
    let mut r = Running::start(cfg);
    assert_eq!(r.wait_for(2).await, ["one", "two"]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(r.ch.len(), 0, "the partial line waits for its newline");
    append(&log, "ial\n");
    assert_eq!(r.wait_for(3).await[2], "partial");
    assert_eq!(r.got[1].header("byteoffset"), Some("4"));
    assert_eq!(r.got[1].header("topic"), Some("web"));
    r.stop().await;
}

#[tokio::test]
async fn rotation_by_rename_and_copy_truncate_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "a1\na2\n");
    let mut r = Running::start(config(dir.path(), &dir.path().join("pos.json"), &[]));
    r.wait_for(2).await;
    // Rotation: the old file gets more lines after the rename, then a new file starts.
    std::fs::rename(&log, dir.path().join("rotated.1")).unwrap();
    append(&dir.path().join("rotated.1"), "a3\n");
    append(&log, "b1\n");
    let mut got = r.wait_for(4).await;
    got.sort();
    assert_eq!(got, ["a1", "a2", "a3", "b1"]);
    // Copy-truncate: the file shrinks and is read again from the start.
    std::fs::copy(&log, dir.path().join("copy.bak")).unwrap();
    File::options()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "c1\n");
    assert_eq!(r.wait_for(5).await[4], "c1");
    // A new matching file is picked up.
    append(&dir.path().join("app-2.log"), "d1\n");
    assert_eq!(r.wait_for(6).await[5], "d1");
    r.stop().await;
}

#[tokio::test]
async fn restart_resumes_at_the_saved_position_even_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let pos = dir.path().join("pos.json");
    append(&log, "one\ntwo\n");
    let mut r = Running::start(config(dir.path(), &pos, &[]));
    r.wait_for(2).await;
    r.stop().await;
    // While the agent is down, the file gets a line and is rotated away.
    append(&log, "three\n");
    std::fs::rename(&log, dir.path().join("old.1")).unwrap();
    append(&log, "four\n");
    let mut r = Running::start(config(dir.path(), &pos, &[]));
    let mut got = r.wait_for(2).await;
    got.sort();
    assert_eq!(got, ["four", "three"]);
    r.stop().await;
}

#[tokio::test]
async fn a_file_truncated_and_regrown_while_the_agent_was_down_is_read_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let pos = dir.path().join("pos.json");
    append(&log, "old-1\nold-2\n");
    let mut r = Running::start(config(dir.path(), &pos, &[]));
    r.wait_for(2).await;
    r.stop().await;
    // copytruncate while the agent is down, then the file grows past the old position.
    File::options()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "new-1\nnew-2\nnew-3\n");
    let mut r = Running::start(config(dir.path(), &pos, &[]));
    assert_eq!(r.wait_for(3).await, ["new-1", "new-2", "new-3"]);
    r.stop().await;
}

#[test]
fn flume_position_files_are_read_and_ours_have_the_same_shape() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("taildir_position.json");
    std::fs::write(
        &p,
        r#"[{"inode":2496001,"pos":1024,"file":"/var/log/app/app.log"},{"inode":2496002,"pos":0,"file":"/var/log/app/other.log"}]"#,
    )
    .unwrap();
    let read = read_positions(&p).unwrap();
    assert_eq!(
        read[0],
        Position {
            inode: 2496001,
            pos: 1024,
            file: "/var/log/app/app.log".into(),
            sig: Vec::new(),
        }
    );
    write_positions(&p, &read).unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    for e in arr {
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["file", "inode", "pos"]);
    }
    assert_eq!(read_positions(&p).unwrap(), read);
}

#[test]
fn a_signature_from_another_position_is_not_used() {
    // A crash between writing the signatures and the positions leaves the signature
    // of a later position beside an older one; checking those bytes at the older
    // offset would take an intact file for a rewritten one and read it all again.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("taildir_position.json");
    let at = |pos: u64, sig: &[u8]| Position {
        inode: 7,
        pos,
        file: "/var/log/app.log".into(),
        sig: sig.to_vec(),
    };
    write_positions(&p, &[at(100, b"line 9\n")]).unwrap();
    assert_eq!(read_positions(&p).unwrap(), [at(100, b"line 9\n")]);
    let older = std::fs::read(&p).unwrap();
    write_positions(&p, &[at(200, b"line 19\n")]).unwrap();
    std::fs::write(&p, older).unwrap();
    assert_eq!(read_positions(&p).unwrap(), [at(100, b"")]);
}

/// Writes a position file as Flume does, without millrace's signatures beside it.
fn flume_position_file(path: &Path, entries: &[(u64, u64, &Path)]) {
    let v: Vec<serde_json::Value> = entries
        .iter()
        .map(|(inode, pos, file)| serde_json::json!({"inode": inode, "pos": pos, "file": file}))
        .collect();
    std::fs::write(path, serde_json::Value::Array(v).to_string()).unwrap();
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

#[tokio::test]
async fn a_position_file_entry_no_group_matches_is_not_tailed_and_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("a.log");
    let log = dir.path().join("app.log");
    let pos = dir.path().join("pos.json");
    append(&other, "a1\na2\n");
    append(&log, "m1\n");
    flume_position_file(&pos, &[(inode(&other), 3, &other)]);
    let pattern = format!("{}/app\\.log.*", dir.path().display());
    let p = Props::from_pairs(&[
        ("filegroups", "g1"),
        ("filegroups.g1", pattern.as_str()),
        ("headers.g1.grp", "one"),
        ("positionFile", pos.to_str().unwrap()),
        ("backoffSleepIncrement", "10"),
        ("maxBackoffSleep", "20"),
    ]);
    let mut r = Running::start(TaildirConfig::from_props(&p).unwrap());
    assert_eq!(r.wait_for(1).await, ["m1"]);
    // a.log grows before app.log: a look that finds m2 would find this line too.
    append(&other, "a3\n");
    append(&log, "m2\n");
    assert_eq!(r.wait_for(2).await, ["m1", "m2"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(r.ch.len(), 0, "nothing from a.log");
    assert!(r.got.iter().all(|e| e.header("grp") == Some("one")));
    // As in Flume, the position file is written back with the followed files only.
    let written = read_positions(&pos).unwrap();
    let files: Vec<&Path> = written.iter().map(|p| p.file.as_path()).collect();
    assert_eq!(files, [log.as_path()]);
    r.stop().await;
}

#[tokio::test]
async fn a_flume_position_for_a_file_rotated_to_an_unmatched_name_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let pos = dir.path().join("pos.json");
    append(&log, "r1\nr2\n");
    flume_position_file(&pos, &[(inode(&log), 3, &log)]);
    // Rotated while the agent was down, to a name the group does not match.
    std::fs::rename(&log, dir.path().join("old.1")).unwrap();
    append(&log, "n1\n");
    let mut r = Running::start(config(dir.path(), &pos, &[("headers.f1.grp", "one")]));
    let mut got = r.wait_for(2).await;
    got.sort();
    assert_eq!(got, ["n1", "r2"]);
    assert!(r.got.iter().all(|e| e.header("grp") == Some("one")));
    r.stop().await;
}
