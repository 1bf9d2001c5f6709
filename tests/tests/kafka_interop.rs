//! Kafka between millrace and Apache Flume 1.11 with `useFlumeEventFormat = true`:
//! what one side's Kafka sink writes, the other side's Kafka source reads with its
//! headers intact, in both directions, on the real broker.

mod common;

use common::events::*;
use common::kafka::create_topics;
use millrace_e2e::*;
use millrace_testkit::{port_open, FlumeAgent, Kafka};
use std::collections::BTreeMap;
use std::time::Duration;

/// The headers we sent, out of what arrived (the Kafka sources add their own).
fn ours(got: Expected, sent: &Expected) -> Expected {
    got.into_iter()
        .map(|(h, b)| {
            let keys: Vec<&String> = sent[0].0.keys().collect();
            let h: BTreeMap<String, String> =
                h.into_iter().filter(|(k, _)| keys.contains(&k)).collect();
            (h, b)
        })
        .collect()
}

#[test]
fn millrace_kafka_sink_to_java_flume_kafka_source() {
    let kafka = Kafka::start();
    create_topics(&kafka, &[("m2j", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("java-out");
    std::fs::create_dir_all(&out).unwrap();
    let _java = FlumeAgent::start(
        "j1",
        &format!(
            "j1.sources = r1\nj1.channels = c1\nj1.sinks = k1\n\
             j1.sources.r1.type = org.apache.flume.source.kafka.KafkaSource\n\
             j1.sources.r1.kafka.bootstrap.servers = {}\nj1.sources.r1.kafka.topics = m2j\n\
             j1.sources.r1.kafka.consumer.group.id = java\n\
             j1.sources.r1.kafka.consumer.auto.offset.reset = earliest\n\
             j1.sources.r1.useFlumeEventFormat = true\nj1.sources.r1.batchSize = 100\n\
             j1.sources.r1.batchDurationMillis = 200\nj1.sources.r1.channels = c1\n\
             j1.channels.c1.type = memory\nj1.channels.c1.capacity = 10000\n\
             j1.channels.c1.transactionCapacity = 1000\n\
             j1.sinks.k1.type = file_roll\nj1.sinks.k1.sink.directory = {}\n\
             j1.sinks.k1.sink.rollInterval = 0\nj1.sinks.k1.sink.serializer = header_and_text\n\
             j1.sinks.k1.channel = c1\n",
            kafka.bootstrap(),
            out.display()
        ),
    );
    let http = free_port();
    let conf = dir.path().join("millrace.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = http\na1.sources.r1.bind = 127.0.0.1\na1.sources.r1.port = {http}\n\
             a1.sources.r1.channels = c1\na1.channels.c1.type = memory\n\
             a1.channels.c1.capacity = 10000\na1.channels.c1.transactionCapacity = 1000\n\
             a1.sinks.k1.type = org.apache.flume.sink.kafka.KafkaSink\n\
             a1.sinks.k1.kafka.bootstrap.servers = {}\na1.sinks.k1.kafka.topic = m2j\n\
             a1.sinks.k1.useFlumeEventFormat = true\na1.sinks.k1.channel = c1\n",
            kafka.bootstrap()
        ),
    )
    .unwrap();
    let millrace = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(30), "millrace's http source", || {
        port_open(http)
    });
    let sent = events("m2j");
    let (status, body) = http_post(http, "/", &as_json(&sent)).expect("millrace answers");
    assert_eq!(status, 200, "{body}");
    wait_for(
        Duration::from_secs(90),
        "every event in Java Flume's output",
        || read_lines(&out).len() >= EVENTS,
    );
    assert_eq!(ours(received(&out), &sent), sent, "{}", millrace.log_text());
}

#[test]
fn java_flume_kafka_sink_to_millrace_kafka_source() {
    let kafka = Kafka::start();
    create_topics(&kafka, &[("j2m", 1)]);
    let http = free_port();
    let _java = FlumeAgent::start(
        "j1",
        &format!(
            "j1.sources = r1\nj1.channels = c1\nj1.sinks = k1\n\
             j1.sources.r1.type = http\nj1.sources.r1.bind = 127.0.0.1\n\
             j1.sources.r1.port = {http}\nj1.sources.r1.channels = c1\n\
             j1.channels.c1.type = memory\nj1.channels.c1.capacity = 10000\n\
             j1.channels.c1.transactionCapacity = 1000\n\
             j1.sinks.k1.type = org.apache.flume.sink.kafka.KafkaSink\n\
             j1.sinks.k1.kafka.bootstrap.servers = {}\nj1.sinks.k1.kafka.topic = j2m\n\
             j1.sinks.k1.useFlumeEventFormat = true\nj1.sinks.k1.flumeBatchSize = 50\n\
             j1.sinks.k1.channel = c1\n",
            kafka.bootstrap()
        ),
    );
    wait_for(Duration::from_secs(60), "Flume's http source", || {
        port_open(http)
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let conf = dir.path().join("millrace.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = org.apache.flume.source.kafka.KafkaSource\n\
             a1.sources.r1.kafka.bootstrap.servers = {}\na1.sources.r1.kafka.topics = j2m\n\
             a1.sources.r1.kafka.consumer.auto.offset.reset = earliest\n\
             a1.sources.r1.useFlumeEventFormat = true\na1.sources.r1.batchDurationMillis = 200\n\
             a1.sources.r1.channels = c1\na1.channels.c1.type = memory\n\
             a1.channels.c1.capacity = 10000\na1.channels.c1.transactionCapacity = 1000\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\n\
             a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.sink.serializer = HEADER_AND_TEXT\n\
             a1.sinks.k1.channel = c1\n",
            kafka.bootstrap(),
            out.display()
        ),
    )
    .unwrap();
    let millrace = AgentProcess::start("a1", &conf, &[]);
    let sent = events("j2m");
    let (status, body) = http_post(http, "/", &as_json(&sent)).expect("Flume answers");
    assert_eq!(status, 200, "{body}");
    wait_for(
        Duration::from_secs(90),
        "every event in millrace's output",
        || read_lines(&out).len() >= EVENTS,
    );
    assert_eq!(ours(received(&out), &sent), sent, "{}", millrace.log_text());
}
