//! The spooldir source through the real binary: killed at random moments while files
//! keep arriving, it loses no line.

use millrace_e2e::*;
use std::time::Duration;

const FILES: u64 = 40;
const LINES_PER_FILE: u64 = 5000;
const SOURCE_BATCH: u64 = 500;
const SINK_BATCH: u64 = 1000;
const KILLS: u64 = 3;

#[test]
fn killed_three_times_mid_stream_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&spool).unwrap();
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = spooldir\na1.sources.r1.spoolDir = {spool}\n\
             a1.sources.r1.batchSize = {SOURCE_BATCH}\na1.sources.r1.pollDelay = 50\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = file\na1.channels.c1.checkpointDir = {d}/ck\n\
             a1.channels.c1.dataDirs = {d}/data\na1.channels.c1.minimumRequiredSpace = 0\n\
             a1.channels.c1.transactionCapacity = 1000\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {out}\n\
             a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.sink.batchSize = {SINK_BATCH}\n\
             a1.sinks.k1.channel = c1\n",
            spool = spool.display(),
            d = dir.path().display(),
            out = out.display()
        ),
    )
    .unwrap();
    let mut rng = Rng::from_clock();

    // Files appear one by one, written under a hidden name and renamed in, as a log
    // shipper must do for a spooling directory.
    let writer_dir = spool.clone();
    let writer = std::thread::spawn(move || {
        for f in 0..FILES {
            let mut text = String::with_capacity((LINES_PER_FILE * 40) as usize);
            for i in 0..LINES_PER_FILE {
                text.push_str(&format!("spooled line {}\n", f * LINES_PER_FILE + i));
            }
            let tmp = writer_dir.join(format!(".part-{f:03}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, writer_dir.join(format!("part-{f:03}.log"))).unwrap();
            std::thread::sleep(Duration::from_millis(25));
        }
    });

    let total = FILES * LINES_PER_FILE;
    let agent = AgentProcess::start("a1", &conf, &[]);
    let mut agent = kill_repeatedly(
        agent,
        "a1",
        &conf,
        KILLS,
        &mut rng,
        (10_000, 30_000, total - 1),
        "lines out",
        || read_lines(&out).len() as u64,
    );
    writer.join().unwrap();
    wait_for(Duration::from_secs(120), "every line written", || {
        numbers(&read_lines(&out)).len() as u64 == total
    });
    wait_for(Duration::from_secs(30), "every file completed", || {
        std::fs::read_dir(&spool)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".COMPLETED"))
            .count() as u64
            == FILES
    });
    assert!(
        agent.terminate(Duration::from_secs(30)).success(),
        "{}",
        agent.log_text()
    );
    let (seen, duplicates) = distinct_and_duplicates(&read_lines(&out));
    println!(
        "{total} lines spooled, {} distinct in the output, {duplicates} duplicates",
        seen.len()
    );
    assert_eq!(seen.len() as u64, total);
    assert!(
        duplicates <= KILLS * (SOURCE_BATCH + SINK_BATCH),
        "{duplicates} duplicates is more than the batches in flight at {KILLS} kills"
    );
}
