//! The SPILLABLEMEMORY channel through the real binary: a sink slower than the source
//! forces events to disk, and every event arrives, in order.

use millrace_e2e::*;
use std::time::Duration;

#[test]
fn a_slow_sink_forces_overflow_and_order_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mon = free_port();
    let total = 20_000u64;
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = seq\na1.sources.r1.totalEvents = {total}\na1.sources.r1.batchSize = 100\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = SPILLABLEMEMORY\na1.channels.c1.memoryCapacity = 500\n\
             a1.channels.c1.overflowTimeout = 0\na1.channels.c1.transactionCapacity = 100\n\
             a1.channels.c1.checkpointDir = {d}/ck\na1.channels.c1.dataDirs = {d}/data\n\
             a1.channels.c1.minimumRequiredSpace = 0\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {o}\n\
             a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.sink.batchSize = 1\na1.sinks.k1.channel = c1\n",
            d = dir.path().display(),
            o = out.display()
        ),
    )
    .unwrap();
    let mut agent = AgentProcess::start_monitored("a1", &conf, mon);
    let mut most = 0;
    wait_for(Duration::from_secs(120), "every event delivered", || {
        if let Some(m) = metrics(mon) {
            most = most.max(counter(&m, "CHANNEL.c1", "ChannelSize"));
            counter(&m, "SINK.k1", "EventDrainSuccessCount") == total
        } else {
            false
        }
    });
    assert!(
        most > 500,
        "the channel never held more than memory ({most}); nothing spilled"
    );
    assert!(agent.terminate(Duration::from_secs(30)).success());
    let lines = read_lines(&out);
    let expected: Vec<String> = (0..total).map(|i| i.to_string()).collect();
    assert!(
        lines == expected,
        "{} lines, order kept: {}",
        lines.len(),
        lines
            .windows(2)
            .all(|w| w[0].parse::<u64>().unwrap() < w[1].parse::<u64>().unwrap())
    );
}
