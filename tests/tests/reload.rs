//! Configuration reload through the real binary: edits are applied by difference,
//! invalid edits are refused, and no committed event is lost.

use millrace_e2e::*;
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Replaces the file in one step, as configuration management tools do, so the agent
/// never reads half a file.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn agent_counter(port: u16, name: &str) -> u64 {
    metrics(port)
        .map(|m| counter(&m, "AGENT.a1", name))
        .unwrap_or(0)
}

#[test]
fn edits_apply_by_difference_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all");
    let tagged = dir.path().join("tagged");
    let (p1, p2, mon) = (free_port(), free_port(), free_port());
    let conf = dir.path().join("agent.conf");
    let base = |sources: &str, source_conf: &str, sinks: &str, extra: &str| {
        format!(
            "a1.sources = {sources}\na1.channels = c1 c2\na1.sinks = {sinks}\n{source_conf}\
             a1.channels.c1.type = memory\na1.channels.c1.capacity = 100000\n\
             a1.channels.c2.type = memory\na1.channels.c2.capacity = 100000\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\na1.sinks.k1.sink.rollInterval = 0\n\
             a1.sinks.k1.channel = c1\n{extra}",
            all.display()
        )
    };
    let k2 = format!(
        "a1.sinks.k2.type = file_roll\na1.sinks.k2.sink.directory = {}\na1.sinks.k2.sink.rollInterval = 0\n\
         a1.sinks.k2.sink.serializer = HEADER_AND_TEXT\na1.sinks.k2.channel = c2\n",
        tagged.display()
    );
    let netcat = |name: &str, port: u16, channels: &str, interceptor: &str| {
        format!(
            "a1.sources.{name}.type = netcat\na1.sources.{name}.bind = 127.0.0.1\na1.sources.{name}.port = {port}\n\
             a1.sources.{name}.channels = {channels}\n{interceptor}"
        )
    };
    // v1: one source, one sink.
    write_atomically(&conf, &base("r1", &netcat("r1", p1, "c1", ""), "k1", ""));
    let mut agent = AgentProcess::start(
        "a1",
        &conf,
        &[
            "-i",
            "1",
            "-Dflume.monitoring.type=http",
            &format!("-Dflume.monitoring.port={mon}"),
        ],
    );
    let port = Arc::new(AtomicU16::new(p1));
    let sender = Sender::start(port.clone());
    wait_for(Duration::from_secs(30), "first lines acknowledged", || {
        sender.acked() >= 300
    });

    // v2: a second sink on a second channel; the source now feeds both.
    write_atomically(
        &conf,
        &base("r1", &netcat("r1", p1, "c1 c2", ""), "k1 k2", &k2),
    );
    wait_for(Duration::from_secs(30), "reload 1", || {
        agent_counter(mon, "ReloadAppliedCount") == 1
    });
    wait_for(Duration::from_secs(30), "lines in the new sink", || {
        !read_lines(&tagged).is_empty()
    });

    // v3: an interceptor on the source.
    let tag = "a1.sources.r1.interceptors = v\na1.sources.r1.interceptors.v.type = static\n\
               a1.sources.r1.interceptors.v.key = version\na1.sources.r1.interceptors.v.value = 3\n";
    write_atomically(
        &conf,
        &base("r1", &netcat("r1", p1, "c1 c2", tag), "k1 k2", &k2),
    );
    wait_for(Duration::from_secs(30), "reload 2", || {
        agent_counter(mon, "ReloadAppliedCount") == 2
    });
    wait_for(Duration::from_secs(30), "tagged lines", || {
        read_lines(&tagged).iter().any(|l| l.contains("version=3"))
    });

    // v4: the source is replaced by one on another port.
    write_atomically(
        &conf,
        &base("r2", &netcat("r2", p2, "c1 c2", ""), "k1 k2", &k2),
    );
    wait_for(Duration::from_secs(30), "reload 3", || {
        agent_counter(mon, "ReloadAppliedCount") == 3
    });
    port.store(p2, Ordering::SeqCst);
    let before = sender.acked();
    wait_for(
        Duration::from_secs(30),
        "lines through the new source",
        || sender.acked() >= before + 300,
    );
    let sent = sender.finish();

    wait_for(
        Duration::from_secs(30),
        "every acknowledged line written",
        || numbers(&read_lines(&all)).is_superset(&sent),
    );
    assert!(agent.terminate(Duration::from_secs(30)).success());
    let tagged_lines = read_lines(&tagged);
    // Lines reach the tagged sink from v2 on; once v3 tags them, v4 (no interceptor)
    // stops tagging: the tagged ones form one run in the middle.
    let first = tagged_lines
        .iter()
        .position(|l| l.contains("version=3"))
        .unwrap();
    let last = tagged_lines
        .iter()
        .rposition(|l| l.contains("version=3"))
        .unwrap();
    assert!(tagged_lines[first..=last]
        .iter()
        .all(|l| l.contains("version=3")));
    assert!(
        last + 1 < tagged_lines.len(),
        "v4 lines without the tag follow"
    );
    assert_eq!(
        agent.log_text().matches("configuration reloaded").count(),
        3,
        "{}",
        agent.log_text()
    );
}

#[test]
fn invalid_edit_is_refused_and_the_agent_keeps_delivering() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (nc, mon) = (free_port(), free_port());
    let conf = dir.path().join("agent.conf");
    let good = format!(
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = netcat\na1.sources.r1.bind = 127.0.0.1\na1.sources.r1.port = {nc}\n\
         a1.sources.r1.channels = c1\na1.channels.c1.type = memory\n\
         a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\na1.sinks.k1.channel = c1\n",
        out.display()
    );
    write_atomically(&conf, &good);
    let mut agent = AgentProcess::start(
        "a1",
        &conf,
        &[
            "-i",
            "1",
            "-Dflume.monitoring.type=http",
            &format!("-Dflume.monitoring.port={mon}"),
        ],
    );
    let sender = Sender::start(Arc::new(AtomicU16::new(nc)));
    wait_for(Duration::from_secs(30), "lines acknowledged", || {
        sender.acked() >= 100
    });
    write_atomically(
        &conf,
        &good.replace(
            "a1.sinks.k1.type = file_roll",
            "a1.sinks.k1.type = file_rol",
        ),
    );
    wait_for(Duration::from_secs(30), "the edit refused", || {
        agent_counter(mon, "ReloadRejectedCount") == 1
    });
    let log = agent.log_text();
    assert!(
        log.contains(&format!(
            "{}:9: error: sink type `file_rol`",
            conf.display()
        )),
        "{log}"
    );
    let before = sender.acked();
    wait_for(Duration::from_secs(30), "delivery goes on", || {
        sender.acked() >= before + 200
    });
    let sent = sender.finish();
    wait_for(
        Duration::from_secs(30),
        "every acknowledged line written",
        || numbers(&read_lines(&out)).is_superset(&sent),
    );
    assert_eq!(agent_counter(mon, "ReloadAppliedCount"), 0);
    assert!(agent.terminate(Duration::from_secs(30)).success());
}

#[test]
fn memory_channel_keeps_its_events_across_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "a file where the sink wants a directory").unwrap();
    let out = dir.path().join("out");
    let mon = free_port();
    let conf = dir.path().join("agent.conf");
    let text = |sink_dir: &str| {
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = seq\na1.sources.r1.totalEvents = 1000\na1.sources.r1.batchSize = 100\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\na1.channels.c1.capacity = 10000\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {sink_dir}\na1.sinks.k1.channel = c1\n"
        )
    };
    // The sink cannot create its directory, so every event waits in the channel.
    write_atomically(&conf, &text(&format!("{}/out", blocker.display())));
    // The fixed directory comes from the environment, through substitution; children
    // inherit the variable.
    std::env::set_var("MILLRACE_RELOAD_TEST_OUT", &out);
    let mut agent = AgentProcess::start(
        "a1",
        &conf,
        &[
            "-i",
            "1",
            "-Dflume.monitoring.type=http",
            &format!("-Dflume.monitoring.port={mon}"),
        ],
    );
    wait_for(
        Duration::from_secs(30),
        "1000 events held in the channel",
        || metrics(mon).is_some_and(|m| counter(&m, "CHANNEL.c1", "ChannelSize") == 1000),
    );
    write_atomically(&conf, &text("${env:MILLRACE_RELOAD_TEST_OUT}"));
    wait_for(
        Duration::from_secs(30),
        "the held events written after the reload",
        || read_lines(&out).len() == 1000,
    );
    assert_eq!(agent_counter(mon, "ReloadAppliedCount"), 1);
    assert!(agent.terminate(Duration::from_secs(30)).success());
    let expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    assert_eq!(read_lines(&out), expected);
}

#[test]
fn sighup_reloads_at_once_even_without_watching() {
    let dir = tempfile::tempdir().unwrap();
    let mon = free_port();
    let conf = dir.path().join("agent.conf");
    let text = |total: u32| {
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = seq\na1.sources.r1.totalEvents = {total}\na1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\na1.sinks.k1.type = null\na1.sinks.k1.channel = c1\n"
        )
    };
    write_atomically(&conf, &text(10));
    let mut agent = AgentProcess::start(
        "a1",
        &conf,
        &[
            "--no-reload-conf",
            "-Dflume.monitoring.type=http",
            &format!("-Dflume.monitoring.port={mon}"),
        ],
    );
    wait_for(Duration::from_secs(30), "10 events", || {
        metrics(mon).is_some_and(|m| counter(&m, "SINK.k1", "EventDrainSuccessCount") == 10)
    });
    write_atomically(&conf, &text(20));
    agent.signal(libc::SIGHUP);
    wait_for(
        Duration::from_secs(30),
        "the reload SIGHUP asked for",
        || agent_counter(mon, "ReloadAppliedCount") == 1,
    );
    // The changed source ran again with its new total; the sink was kept.
    wait_for(Duration::from_secs(30), "10 + 20 events", || {
        metrics(mon).is_some_and(|m| counter(&m, "SINK.k1", "EventDrainSuccessCount") == 30)
    });
    assert!(agent.terminate(Duration::from_secs(30)).success());
}
