//! The file channel through the real binary: kill -9 at random moments loses no
//! acknowledged event, and two agents cannot share its directories.

use millrace_e2e::*;
use std::sync::atomic::AtomicU16;
use std::sync::Arc;
use std::time::Duration;

fn conf(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let p = dir.join(format!("agent-{port}.conf"));
    std::fs::write(
        &p,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = netcat\na1.sources.r1.bind = 127.0.0.1\na1.sources.r1.port = {port}\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = file\n\
             a1.channels.c1.checkpointDir = {d}/checkpoint\n\
             a1.channels.c1.dataDirs = {d}/data1,{d}/data2\n\
             a1.channels.c1.maxFileSize = 1048576\n\
             a1.channels.c1.checkpointInterval = 500\n\
             a1.channels.c1.minimumRequiredSpace = 0\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {d}/out\n\
             a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.sink.batchSize = 50\na1.sinks.k1.channel = c1\n",
            d = dir.display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn killed_five_times_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = conf(dir.path(), port);
    let mut rng = Rng::from_clock();
    let agent = AgentProcess::start("a1", &conf, &[]);
    let sender = Sender::start(Arc::new(AtomicU16::new(port)));
    let mut agent = kill_repeatedly(
        agent,
        "a1",
        &conf,
        5,
        &mut rng,
        (100, 600, u64::MAX),
        "lines acknowledged",
        || sender.acked(),
    );
    let target = sender.acked() + 300;
    wait_for(
        Duration::from_secs(60),
        "lines after the last restart",
        || sender.acked() >= target,
    );
    let sent = sender.finish();
    let out = dir.path().join("out");
    wait_for(
        Duration::from_secs(60),
        "every acknowledged line in the output",
        || numbers(&read_lines(&out)).is_superset(&sent),
    );
    assert!(
        agent.terminate(Duration::from_secs(30)).success(),
        "{}",
        agent.log_text()
    );
    let (seen, duplicates) = distinct_and_duplicates(&read_lines(&out));
    println!(
        "{} lines acknowledged, {} distinct in the output, {duplicates} duplicates",
        sent.len(),
        seen.len()
    );
    assert!(sent.is_subset(&seen));
}

#[test]
fn a_second_agent_on_the_same_directories_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = conf(dir.path(), free_port());
    let second = conf(dir.path(), free_port());
    let agent = AgentProcess::start("a1", &first, &[]);
    wait_for(Duration::from_secs(30), "the first agent to start", || {
        agent.log_text().contains("agent started")
    });
    let out = std::process::Command::new(bin("millrace-agent"))
        .args(["agent", "-n", "a1", "-f"])
        .arg(&second)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another agent"), "{err}");
}
