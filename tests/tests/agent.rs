//! The agent binary end to end: real processes, real sockets, real files.

use millrace_e2e::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

fn write_conf(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("agent.conf");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn exec_seq_to_file_roll_writes_every_line_in_order_and_metrics_agree() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let port = free_port();
    let conf = write_conf(
        dir.path(),
        &format!(
            "a1.sources = r1\n\
             a1.channels = c1\n\
             a1.sinks = k1\n\
             a1.sources.r1.type = exec\n\
             a1.sources.r1.command = seq 1 200000\n\
             a1.sources.r1.batchSize = 1000\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\n\
             a1.channels.c1.capacity = 10000\n\
             a1.channels.c1.transactionCapacity = 1000\n\
             a1.sinks.k1.type = file_roll\n\
             a1.sinks.k1.sink.directory = {}\n\
             a1.sinks.k1.sink.rollInterval = 0\n\
             a1.sinks.k1.sink.batchSize = 1000\n\
             a1.sinks.k1.channel = c1\n",
            out.display()
        ),
    );
    let mut agent = AgentProcess::start_monitored("a1", &conf, port);
    wait_for(Duration::from_secs(60), "200000 events drained", || {
        metrics(port).is_some_and(|m| counter(&m, "SINK.k1", "EventDrainSuccessCount") == 200_000)
    });
    let m = metrics(port).unwrap();
    assert_eq!(counter(&m, "SOURCE.r1", "EventReceivedCount"), 200_000);
    assert_eq!(counter(&m, "SOURCE.r1", "EventAcceptedCount"), 200_000);
    assert_eq!(counter(&m, "CHANNEL.c1", "EventPutSuccessCount"), 200_000);
    assert_eq!(counter(&m, "CHANNEL.c1", "EventTakeSuccessCount"), 200_000);
    assert_eq!(counter(&m, "CHANNEL.c1", "ChannelSize"), 0);
    assert_eq!(m["SOURCE.r1"]["Type"], "SOURCE");
    assert!(agent.terminate(Duration::from_secs(30)).success());
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 200_000);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l, &(i + 1).to_string(), "line {} out of order", i + 1);
    }
}

#[test]
fn netcat_lines_arrive_in_file_roll_and_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let nc = free_port();
    let conf = write_conf(
        dir.path(),
        &format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = netcat\na1.sources.r1.bind = 127.0.0.1\na1.sources.r1.port = {nc}\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\na1.sinks.k1.channel = c1\n",
            out.display()
        ),
    );
    let mut agent = AgentProcess::start("a1", &conf, &[]);
    let mut sock = None;
    wait_for(Duration::from_secs(30), "netcat port open", || {
        sock = TcpStream::connect(("127.0.0.1", nc)).ok();
        sock.is_some()
    });
    let sock = sock.unwrap();
    let mut w = sock.try_clone().unwrap();
    let mut r = BufReader::new(sock);
    for i in 0..100 {
        writeln!(w, "line {i}").unwrap();
    }
    for _ in 0..100 {
        let mut ack = String::new();
        r.read_line(&mut ack).unwrap();
        assert_eq!(ack, "OK\n");
    }
    wait_for(Duration::from_secs(30), "100 lines in the output", || {
        read_lines(&out).len() == 100
    });
    assert!(agent.terminate(Duration::from_secs(30)).success());
    let expected: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    assert_eq!(read_lines(&out), expected);
}

#[test]
fn multiplexing_routes_by_header_to_two_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors");
    let rest = dir.path().join("rest");
    let input = dir.path().join("app.log");
    let mut text = String::new();
    for i in 0..1000 {
        let level = ["INFO", "ERROR", "WARN", "DEBUG"][i % 4];
        text.push_str(&format!("{level} message {i}\n"));
    }
    std::fs::write(&input, text).unwrap();
    let conf = write_conf(
        dir.path(),
        &format!(
            "a1.sources = r1\na1.channels = c1 c2\na1.sinks = k1 k2\n\
             a1.sources.r1.type = exec\na1.sources.r1.command = cat {}\n\
             a1.sources.r1.channels = c1 c2\n\
             a1.sources.r1.interceptors = lvl\n\
             a1.sources.r1.interceptors.lvl.type = regex_extractor\n\
             a1.sources.r1.interceptors.lvl.regex = ^(\\\\w+)\n\
             a1.sources.r1.interceptors.lvl.serializers = s1\n\
             a1.sources.r1.interceptors.lvl.serializers.s1.name = level\n\
             a1.sources.r1.selector.type = multiplexing\n\
             a1.sources.r1.selector.header = level\n\
             a1.sources.r1.selector.mapping.ERROR = c1\n\
             a1.sources.r1.selector.default = c2\n\
             a1.channels.c1.type = memory\na1.channels.c2.type = memory\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\na1.sinks.k1.channel = c1\n\
             a1.sinks.k2.type = file_roll\na1.sinks.k2.sink.directory = {}\na1.sinks.k2.channel = c2\n",
            input.display(),
            errors.display(),
            rest.display()
        ),
    );
    let mut agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(30), "all 1000 lines routed", || {
        read_lines(&errors).len() + read_lines(&rest).len() == 1000
    });
    assert!(agent.terminate(Duration::from_secs(30)).success());
    let e = read_lines(&errors);
    let r = read_lines(&rest);
    assert_eq!(e.len(), 250);
    assert!(e.iter().all(|l| l.starts_with("ERROR ")), "{e:?}");
    assert_eq!(r.len(), 750);
    assert!(r.iter().all(|l| !l.starts_with("ERROR ")));
}

#[test]
fn sigterm_drains_what_the_channel_holds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let port = free_port();
    let total = 50_000u64;
    let conf = write_conf(
        dir.path(),
        &format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = seq\na1.sources.r1.totalEvents = {total}\na1.sources.r1.batchSize = 1000\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\na1.channels.c1.capacity = {total}\na1.channels.c1.transactionCapacity = 1000\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\na1.sinks.k1.sink.batchSize = 1\n\
             a1.sinks.k1.channel = c1\n",
            out.display()
        ),
    );
    let mut agent = AgentProcess::start_monitored("a1", &conf, port);
    let mut drained_at_signal = 0;
    wait_for(
        Duration::from_secs(60),
        "the source to put every event",
        || {
            metrics(port).is_some_and(|m| {
                drained_at_signal = counter(&m, "SINK.k1", "EventDrainSuccessCount");
                counter(&m, "SOURCE.r1", "EventAcceptedCount") == total
            })
        },
    );
    assert!(
        drained_at_signal < total,
        "the sink had already drained everything; the test would not exercise the drain"
    );
    assert!(
        agent.terminate(Duration::from_secs(60)).success(),
        "{}",
        agent.log_text()
    );
    let lines = read_lines(&out);
    assert_eq!(
        lines.len() as u64,
        total,
        "events were left in the channel at exit"
    );
}

#[test]
fn metrics_server_speaks_flume_http() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = write_conf(
        dir.path(),
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = seq\na1.sources.r1.totalEvents = 10\na1.sources.r1.channels = c1\n\
         a1.channels.c1.type = memory\n\
         a1.sinks.k1.type = null\na1.sinks.k1.channel = c1\n",
    );
    let _agent = AgentProcess::start_monitored("a1", &conf, port);
    wait_for(
        Duration::from_secs(30),
        "10 events through the null sink",
        || metrics(port).is_some_and(|m| counter(&m, "SINK.k1", "EventDrainSuccessCount") == 10),
    );
    let (status, prom) = http_get(port, "/metrics/prometheus").unwrap();
    assert_eq!(status, 200);
    assert!(
        prom.contains("millrace_sink_event_drain_success_count{component=\"k1\",type=\"null\"} 10"),
        "{prom}"
    );
    assert_eq!(http_request(port, "TRACE", "/metrics").unwrap().0, 403);
    assert_eq!(http_request(port, "OPTIONS", "/metrics").unwrap().0, 403);
    assert_eq!(http_get(port, "/nothing").unwrap().0, 404);
}

#[test]
fn flume_opts_in_the_conf_dir_supplies_system_properties() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("flume.opts"),
        format!("# monitoring for this agent\n-Dflume.monitoring.type=http -Dflume.monitoring.port={port}\n-Dseq.total=25\n"),
    )
    .unwrap();
    let conf = write_conf(
        dir.path(),
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = seq\na1.sources.r1.totalEvents = ${sys:seq.total}\na1.sources.r1.channels = c1\n\
         a1.channels.c1.type = memory\n\
         a1.sinks.k1.type = null\na1.sinks.k1.channel = c1\n",
    );
    let conf_dir = dir.path().to_str().unwrap().to_string();
    let _agent = AgentProcess::start("a1", &conf, &["-c", &conf_dir]);
    wait_for(
        Duration::from_secs(30),
        "25 events, counted at the port flume.opts set",
        || metrics(port).is_some_and(|m| counter(&m, "SINK.k1", "EventDrainSuccessCount") == 25),
    );
}

#[test]
fn a_second_sigterm_stops_without_waiting_for_the_drain() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Nothing listens there: the sink cannot deliver, so a drain would take its 30 s.
    let dead = free_port();
    let conf = write_conf(
        dir.path(),
        &format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = seq\na1.sources.r1.totalEvents = 100\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\n\
             a1.sinks.k1.type = avro\na1.sinks.k1.hostname = 127.0.0.1\na1.sinks.k1.port = {dead}\n\
             a1.sinks.k1.channel = c1\n"
        ),
    );
    let mut agent = AgentProcess::start_monitored("a1", &conf, port);
    wait_for(
        Duration::from_secs(30),
        "the source to put its events",
        || metrics(port).is_some_and(|m| counter(&m, "SOURCE.r1", "EventAcceptedCount") == 100),
    );
    agent.signal(libc::SIGTERM);
    wait_for(
        Duration::from_secs(10),
        "the first signal to be seen",
        || agent.log_text().contains("shutdown requested"),
    );
    // Well inside the 30 s drain the first signal started.
    let status = agent.terminate(Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "{}", agent.log_text());
    assert!(
        agent.log_text().contains("second stop signal"),
        "{}",
        agent.log_text()
    );
}
