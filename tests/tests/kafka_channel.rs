//! The Kafka channel on the real broker: one agent with only a source writes into it,
//! another with only a sink reads from it; the reader is killed mid-run and restarted,
//! and every event arrives with its headers.

mod common;

use common::kafka::create_topics;
use millrace_e2e::*;
use millrace_testkit::{port_open, Kafka};
use std::time::Duration;

const EVENTS: u64 = 20_000;

#[test]
fn a_writer_agent_and_a_reader_agent_share_the_channel_and_a_kill_loses_nothing() {
    let kafka = Kafka::start();
    create_topics(&kafka, &[("channel", 2)]);
    let dir = tempfile::tempdir().unwrap();
    let channel = format!(
        "c1.type = org.apache.flume.channel.kafka.KafkaChannel\n\
         a1.channels.c1.kafka.bootstrap.servers = {}\na1.channels.c1.kafka.topic = channel\n\
         a1.channels.c1.kafka.consumer.group.id = readers\n\
         a1.channels.c1.kafka.consumer.session.timeout.ms = 6000\n\
         a1.channels.c1.transactionCapacity = 1000\n",
        kafka.bootstrap()
    );
    let http = free_port();
    let writer = dir.path().join("writer.conf");
    std::fs::write(
        &writer,
        format!(
            "a1.sources = r1\na1.channels = c1\n\
             a1.sources.r1.type = http\na1.sources.r1.bind = 127.0.0.1\na1.sources.r1.port = {http}\n\
             a1.sources.r1.channels = c1\na1.channels.{channel}"
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let reader = dir.path().join("reader.conf");
    std::fs::write(
        &reader,
        format!(
            "a1.channels = c1\na1.sinks = k1\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\n\
             a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.sink.batchSize = 500\n\
             a1.sinks.k1.sink.serializer = HEADER_AND_TEXT\na1.sinks.k1.channel = c1\n\
             a1.channels.{channel}",
            out.display()
        ),
    )
    .unwrap();
    let writer = AgentProcess::start("a1", &writer, &[]);
    wait_for(Duration::from_secs(30), "the writer's http source", || {
        port_open(http)
    });
    let post = |k: u64| {
        let batch: Vec<serde_json::Value> = (k * 1000..(k + 1) * 1000)
            .map(|n| serde_json::json!({"headers": {"n": n.to_string(), "origin": "writer"}, "body": n.to_string()}))
            .collect();
        let (status, body) =
            http_post(http, "/", &serde_json::to_vec(&batch).unwrap()).expect("the writer answers");
        assert_eq!(status, 200, "{body}\n{}", writer.log_text());
    };
    for k in 0..EVENTS / 2000 {
        post(k);
    }
    let mut reader_agent = AgentProcess::start("a1", &reader, &[]);
    wait_for(Duration::from_secs(120), "events at the reader", || {
        read_lines(&out).len() >= 3_000
    });
    reader_agent.signal(libc::SIGKILL);
    let _ = reader_agent.child.wait();
    for k in EVENTS / 2000..EVENTS / 1000 {
        post(k);
    }
    let reader_agent = AgentProcess::start("a1", &reader, &[]);
    let end = std::time::Instant::now() + Duration::from_secs(120);
    while distinct_and_duplicates(&read_lines(&out)).0.len() as u64 != EVENTS {
        assert!(
            std::time::Instant::now() < end,
            "{} of {EVENTS} events after the kill; reader log:\n{}\nwriter log:\n{}",
            distinct_and_duplicates(&read_lines(&out)).0.len(),
            reader_agent.log_text(),
            writer.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = read_lines(&out);
    let (distinct, duplicates) = distinct_and_duplicates(&lines);
    println!(
        "{} events, {duplicates} delivered twice across the kill",
        distinct.len()
    );
    assert_eq!(distinct.len() as u64, EVENTS, "{}", reader_agent.log_text());
    for l in &lines {
        let n = l.rsplit(' ').next().unwrap();
        assert!(
            l.contains(&format!("n={n}")) && l.contains("origin=writer"),
            "headers travel through the channel: {l}"
        );
    }
}
