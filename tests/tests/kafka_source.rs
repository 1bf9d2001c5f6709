//! The Kafka source through the agent binary, against the real broker: records a
//! plain producer wrote (gzip-compressed) arrive with Flume's headers, and killing the agent mid-run
//! loses nothing (offsets are committed only after the channel put); `header.*` copies
//! Kafka record headers to event headers.

mod common;

use common::kafka::*;
use millrace_e2e::*;
use millrace_testkit::Kafka;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::BTreeMap;
use std::time::Duration;

const RECORDS: u64 = 50_000;

#[test]
fn records_arrive_with_flume_headers_and_a_kill_loses_none() {
    let kafka = Kafka::start();
    create_topics(&kafka, &[("in", 2)]);
    // gzip, as Java producers often send: the source reads every codec a Java
    // consumer reads (the sink's test sends zstd).
    let producer: BaseProducer = client(&kafka)
        .set("linger.ms", "5")
        .set("compression.type", "gzip")
        .create()
        .unwrap();
    for n in 0..RECORDS {
        let key = format!("k{}", n % 5);
        let body = n.to_string();
        let mut record = BaseRecord::to("in").key(&key).payload(&body);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = org.apache.flume.source.kafka.KafkaSource\n\
             a1.sources.r1.kafka.bootstrap.servers = {}\na1.sources.r1.kafka.topics = in\n\
             a1.sources.r1.kafka.consumer.group.id = collectors\n\
             a1.sources.r1.kafka.consumer.auto.offset.reset = earliest\n\
             a1.sources.r1.batchSize = 500\na1.sources.r1.batchDurationMillis = 200\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = file\na1.channels.c1.checkpointDir = {d}/ck\n\
             a1.channels.c1.dataDirs = {d}/data\na1.channels.c1.minimumRequiredSpace = 0\n\
             a1.channels.c1.transactionCapacity = 1000\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\n\
             a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.sink.batchSize = 1000\n\
             a1.sinks.k1.sink.serializer = HEADER_AND_TEXT\na1.sinks.k1.channel = c1\n",
            kafka.bootstrap(),
            out.display(),
            d = dir.path().display()
        ),
    )
    .unwrap();
    let mut agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(120), "records flowing", || {
        read_lines(&out).len() >= 10_000
    });
    agent.signal(libc::SIGKILL);
    let _ = agent.child.wait();
    let agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(
        Duration::from_secs(120),
        "every record after the kill",
        || distinct_and_duplicates(&read_lines(&out)).0.len() as u64 == RECORDS,
    );
    let lines = read_lines(&out);
    let (distinct, duplicates) = distinct_and_duplicates(&lines);
    println!(
        "{} records, {} lines out, {duplicates} read twice across the kill",
        distinct.len(),
        lines.len()
    );
    assert_eq!(distinct.len() as u64, RECORDS, "{}", agent.log_text());
    // Flume's headers: topic, partition, offset, key and the record's timestamp.
    for l in lines.iter().take(1000) {
        let body: u64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(l.contains("topic=in"), "{l}");
        assert!(l.contains(&format!("key=k{}", body % 5)), "{l}");
        assert!(l.contains("partition=") && l.contains("offset="), "{l}");
        assert!(
            l.contains("timestamp=1") || l.contains("timestamp=2"),
            "{l}"
        );
    }
}

/// The headers of a HEADER_AND_TEXT line, `{k1=v1, k2=v2} body`, and its body.
fn headers_and_body(line: &str) -> (BTreeMap<String, String>, String) {
    let (headers, body) = line
        .strip_prefix('{')
        .and_then(|l| l.split_once("} "))
        .unwrap_or_else(|| panic!("not HEADER_AND_TEXT: {line}"));
    let headers = headers
        .split(", ")
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (headers, body.to_string())
}

#[test]
fn mapped_record_headers_become_event_headers() {
    let kafka = Kafka::start();
    create_topics(&kafka, &[("hdrs", 1)]);
    const N: u64 = 300;
    let producer: BaseProducer = client(&kafka).create().unwrap();
    for n in 0..N {
        let body = n.to_string();
        let trace = format!("t-{n}");
        let mut h = OwnedHeaders::new()
            .insert(Header {
                key: "trace-id",
                value: Some(&trace),
            })
            .insert(Header {
                key: "unmapped",
                value: Some("x"),
            });
        // Repeated: the last one wins.
        if n.is_multiple_of(3) {
            h = h.insert(Header {
                key: "trace-id",
                value: Some("last"),
            });
        }
        // Mapped to the topic header, which Flume then leaves as it is.
        if n.is_multiple_of(4) {
            h = h.insert(Header {
                key: "origin",
                value: Some("from-header"),
            });
        }
        producer
            .send(BaseRecord::<(), _>::to("hdrs").payload(&body).headers(h))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = org.apache.flume.source.kafka.KafkaSource\n\
             a1.sources.r1.kafka.bootstrap.servers = {}\na1.sources.r1.kafka.topics = hdrs\n\
             a1.sources.r1.kafka.consumer.auto.offset.reset = earliest\n\
             a1.sources.r1.batchDurationMillis = 200\n\
             a1.sources.r1.header.trace = trace-id\na1.sources.r1.header.topic = origin\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\na1.channels.c1.capacity = 10000\n\
             a1.channels.c1.transactionCapacity = 1000\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\n\
             a1.sinks.k1.sink.rollInterval = 0\n\
             a1.sinks.k1.sink.serializer = HEADER_AND_TEXT\na1.sinks.k1.channel = c1\n",
            kafka.bootstrap(),
            out.display(),
        ),
    )
    .unwrap();
    let agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(120), "every record", || {
        read_lines(&out).len() as u64 >= N
    });
    let lines = read_lines(&out);
    assert_eq!(lines.len() as u64, N, "{}", agent.log_text());
    for l in &lines {
        let (h, body) = headers_and_body(l);
        let n: u64 = body.parse().unwrap();
        let trace = if n.is_multiple_of(3) {
            "last".to_string()
        } else {
            format!("t-{n}")
        };
        assert_eq!(h.get("trace"), Some(&trace), "{l}");
        let topic = if n.is_multiple_of(4) {
            "from-header"
        } else {
            "hdrs"
        };
        assert_eq!(h.get("topic").map(String::as_str), Some(topic), "{l}");
        assert!(
            h.contains_key("partition") && h.contains_key("offset"),
            "{l}"
        );
        assert!(
            !h.contains_key("trace-id") && !h.contains_key("unmapped") && !h.contains_key("origin"),
            "{l}"
        );
    }
}
