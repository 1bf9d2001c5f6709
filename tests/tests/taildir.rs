//! The TAILDIR source through the real binary: rotations by rename, a copy-truncate,
//! and three kills at random moments lose no line.
//!
//! The pattern matches the rotated names too (`app\.log.*`), as production setups
//! should: a renamed file keeps its inode, so it is known and never read twice, and a
//! file rotated while the agent was down is still found.

use millrace_e2e::*;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

const LINES: u64 = 200_000;
const SOURCE_BATCH: u64 = 500;
const SINK_BATCH: u64 = 1000;
const KILLS: u64 = 3;

fn distinct_out(out: &Path) -> u64 {
    numbers(&read_lines(out)).len() as u64
}

#[test]
fn rotations_copy_truncate_and_kills_lose_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&logs).unwrap();
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = TAILDIR\na1.sources.r1.filegroups = f1\n\
             a1.sources.r1.filegroups.f1 = {logs}/app\\\\.log.*\n\
             a1.sources.r1.positionFile = {d}/taildir_position.json\n\
             a1.sources.r1.batchSize = {SOURCE_BATCH}\n\
             a1.sources.r1.backoffSleepIncrement = 20\na1.sources.r1.maxBackoffSleep = 100\n\
             a1.sources.r1.idleTimeout = 2000\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = file\na1.channels.c1.checkpointDir = {d}/ck\n\
             a1.channels.c1.dataDirs = {d}/data\na1.channels.c1.minimumRequiredSpace = 0\n\
             a1.channels.c1.transactionCapacity = 1000\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {out}\n\
             a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.sink.batchSize = {SINK_BATCH}\n\
             a1.sinks.k1.channel = c1\n",
            logs = logs.display(),
            d = dir.path().display(),
            out = out.display()
        ),
    )
    .unwrap();
    let mut rng = Rng::from_clock();

    let wlogs = logs.clone();
    let wout = out.clone();
    let writer = std::thread::spawn(move || {
        let log = wlogs.join("app.log");
        let mut rotations = 0;
        let mut n = 0u64;
        while n < LINES {
            let mut f = std::fs::File::options()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            let mut chunk = String::new();
            for _ in 0..1000 {
                chunk.push_str(&format!("tailed line {n}\n"));
                n += 1;
            }
            f.write_all(chunk.as_bytes()).unwrap();
            drop(f);
            if n.is_multiple_of(50_000) && n < LINES {
                rotations += 1;
                std::fs::rename(&log, wlogs.join(format!("app.log.{rotations}"))).unwrap();
            }
            if n == 175_000 {
                // copytruncate the way logrotate does it, once the agent has read what
                // is there (what it had not read would be lost by any tailer).
                let caught_up = std::time::Instant::now() + Duration::from_secs(120);
                while distinct_out(&wout) < n {
                    assert!(
                        std::time::Instant::now() < caught_up,
                        "agent did not catch up"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                std::fs::copy(&log, wlogs.join("copy-of-app.log")).unwrap();
                std::fs::File::options()
                    .write(true)
                    .open(&log)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        rotations
    });

    let agent = AgentProcess::start("a1", &conf, &[]);
    let mut agent = kill_repeatedly(
        agent,
        "a1",
        &conf,
        KILLS,
        &mut rng,
        (10_000, 30_000, LINES - 1),
        "distinct lines out",
        || distinct_out(&out),
    );
    let rotations = writer.join().unwrap();
    assert_eq!(rotations, 3);
    wait_for(Duration::from_secs(120), "every line written", || {
        distinct_out(&out) == LINES
    });
    assert!(
        agent.terminate(Duration::from_secs(30)).success(),
        "{}",
        agent.log_text()
    );
    let (seen, duplicates) = distinct_and_duplicates(&read_lines(&out));
    println!("{LINES} lines written with {rotations} rotations and a copy-truncate; {} distinct in the output, {duplicates} duplicates", seen.len());
    assert_eq!(seen.len() as u64, LINES);
    assert!(
        duplicates <= KILLS * (SOURCE_BATCH + SINK_BATCH),
        "{duplicates} duplicates is more than the batches in flight at {KILLS} kills"
    );
}
