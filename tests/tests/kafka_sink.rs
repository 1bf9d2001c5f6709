//! The Kafka sink through the agent binary, against the real broker millrace-testkit
//! starts: what a plain rdkafka consumer reads back is what was sent, a broker outage
//! loses nothing, and a wrong address is reported while the agent keeps trying.

mod common;

use common::kafka::*;
use millrace_e2e::*;
use millrace_testkit::{port_open, Kafka};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

fn agent_conf(dir: &std::path::Path, http: u16, sink: &str) -> PathBuf {
    let conf = dir.join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = http\na1.sources.r1.bind = 127.0.0.1\na1.sources.r1.port = {http}\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\na1.channels.c1.capacity = 200000\n\
             a1.channels.c1.transactionCapacity = 1000\n\
             a1.sinks.k1.type = org.apache.flume.sink.kafka.KafkaSink\na1.sinks.k1.channel = c1\n{sink}"
        ),
    )
    .unwrap();
    conf
}

fn post(http: u16, events: &[serde_json::Value]) {
    let (status, body) =
        http_post(http, "/", &serde_json::to_vec(events).unwrap()).expect("the agent answers");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn events_reach_kafka_with_keys_partitions_topics_and_flume_format() {
    let kafka = Kafka::start();
    create_topics(&kafka, &[("logs", 3), ("audit", 1), ("wrapped", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let conf = agent_conf(
        dir.path(),
        http,
        &format!(
            "a1.sinks.k1.kafka.bootstrap.servers = {}\na1.sinks.k1.kafka.topic = logs\n\
             a1.sinks.k1.flumeBatchSize = 1000\na1.sinks.k1.kafka.producer.acks = all\n\
             a1.sinks.k1.kafka.producer.linger.ms = 5\na1.sinks.k1.partitionIdHeader = p\n\
             a1.sinks.k1.kafka.producer.compression.type = zstd\n",
            kafka.bootstrap()
        ),
    );
    let agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(30), "the http source", || {
        port_open(http)
    });

    // 100,000 events: partition and key from headers; every 100th goes to `audit`
    // through the topic header.
    const N: u64 = 100_000;
    for k in 0..N / 1000 {
        let batch: Vec<serde_json::Value> = (k * 1000..(k + 1) * 1000)
            .map(|n| {
                let mut h = serde_json::json!({"key": format!("user-{}", n % 7)});
                if n % 100 == 0 {
                    h["topic"] = "audit".into();
                } else {
                    h["p"] = (n % 3).to_string().into();
                }
                serde_json::json!({"headers": h, "body": n.to_string()})
            })
            .collect();
        post(http, &batch);
    }
    let logs = consume(&kafka, "logs", (N - N / 100) as usize);
    let audit = consume(&kafka, "audit", (N / 100) as usize);
    assert_eq!(logs.len() as u64, N - N / 100);
    assert_eq!(audit.len() as u64, N / 100);
    let mut last: BTreeMap<i32, u64> = BTreeMap::new();
    for r in &logs {
        let n = number(r);
        assert_eq!(r.partition as u64, n % 3, "record {n}");
        assert_eq!(r.key.as_deref(), Some(format!("user-{}", n % 7).as_str()));
        // Order within a partition is the order sent.
        if let Some(prev) = last.insert(r.partition, n) {
            assert!(n > prev, "partition {}: {n} after {prev}", r.partition);
        }
    }
    assert!(audit.iter().all(|r| number(r).is_multiple_of(100)));
    drop(agent);

    // useFlumeEventFormat: headers travel inside the value.
    let http = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = agent_conf(
        dir.path(),
        http,
        &format!(
            "a1.sinks.k1.kafka.bootstrap.servers = {}\na1.sinks.k1.kafka.topic = wrapped\n\
             a1.sinks.k1.useFlumeEventFormat = true\na1.sinks.k1.allowTopicOverride = false\n",
            kafka.bootstrap()
        ),
    );
    let _agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(30), "the http source", || {
        port_open(http)
    });
    let sent: Vec<serde_json::Value> = (0..50)
        .map(|n| serde_json::json!({"headers": {"n": n.to_string(), "topic": "ignored", "größe": "日本"}, "body": if n % 10 == 0 { String::new() } else { format!("body {n}") }}))
        .collect();
    post(http, &sent);
    let got = consume(&kafka, "wrapped", 50);
    for (r, s) in got.iter().zip(&sent) {
        let e = millrace_avro::protocol::decode_event(&mut millrace_avro::codec::Reader::new(
            &r.payload,
        ))
        .expect("an AvroFlumeEvent");
        assert_eq!(
            e.headers.get("n").map(String::as_str),
            s["headers"]["n"].as_str()
        );
        assert_eq!(e.headers.get("größe").map(String::as_str), Some("日本"));
        assert_eq!(e.headers.get("topic").map(String::as_str), Some("ignored"));
        assert_eq!(&e.body[..], s["body"].as_str().unwrap().as_bytes());
    }
}

#[test]
fn mapped_event_headers_become_kafka_record_headers() {
    let kafka = Kafka::start();
    create_topics(&kafka, &[("tagged", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let conf = agent_conf(
        dir.path(),
        http,
        &format!(
            "a1.sinks.k1.kafka.bootstrap.servers = {}\na1.sinks.k1.kafka.topic = tagged\n\
             a1.sinks.k1.header.trace = trace-id\na1.sinks.k1.header.host = origin-host\n",
            kafka.bootstrap()
        ),
    );
    let agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(30), "the http source", || {
        port_open(http)
    });
    // Every event has an unmapped header; every 2nd lacks `host`, every 5th has
    // neither mapped header.
    const N: u64 = 300;
    let sent: Vec<serde_json::Value> = (0..N)
        .map(|n| {
            let mut h = serde_json::json!({"secret": "s"});
            if !n.is_multiple_of(5) {
                h["trace"] = format!("t-{n}").into();
            }
            if n % 2 == 1 {
                h["host"] = "größe-1".into();
            }
            serde_json::json!({"headers": h, "body": n.to_string()})
        })
        .collect();
    post(http, &sent);
    let got = consume(&kafka, "tagged", N as usize);
    for r in &got {
        let n = number(r);
        let mut want = Vec::new();
        if n % 2 == 1 {
            want.push((
                "origin-host".to_string(),
                Some("größe-1".as_bytes().to_vec()),
            ));
        }
        if !n.is_multiple_of(5) {
            want.push(("trace-id".to_string(), Some(format!("t-{n}").into_bytes())));
        }
        let mut have = r.headers.clone();
        have.sort();
        assert_eq!(have, want, "record {n}: {}", agent.log_text());
    }
}

#[test]
fn a_broker_outage_loses_nothing() {
    let mut kafka = Kafka::start();
    create_topics(&kafka, &[("outage", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let conf = agent_conf(
        dir.path(),
        http,
        &format!(
            "a1.sinks.k1.kafka.bootstrap.servers = {}\na1.sinks.k1.kafka.topic = outage\n\
             a1.sinks.k1.flumeBatchSize = 500\na1.sinks.k1.kafka.producer.acks = all\n\
             a1.sinks.k1.kafka.producer.message.timeout.ms = 5000\n",
            kafka.bootstrap()
        ),
    );
    let agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(30), "the http source", || {
        port_open(http)
    });
    let batch = |k: u64| -> Vec<serde_json::Value> {
        (k * 1000..(k + 1) * 1000)
            .map(|n| serde_json::json!({"headers": {}, "body": n.to_string()}))
            .collect()
    };
    for k in 0..10 {
        post(http, &batch(k));
    }
    // Down for a few seconds while more events arrive; they wait in the channel.
    kafka.restart_after(Duration::from_secs(3));
    for k in 10..20 {
        post(http, &batch(k));
    }
    // At least once: a batch that timed out during the outage may have reached the
    // broker too, so duplicates are allowed and gaps are not.
    let distinct = |r: &[Record]| {
        r.iter()
            .map(number)
            .collect::<std::collections::BTreeSet<u64>>()
    };
    let got = consume_until(&kafka, "outage", "every event after the outage", |r| {
        distinct(r).len() == 20_000
    });
    let d = distinct(&got);
    println!(
        "{} records for {} events across the outage",
        got.len(),
        d.len()
    );
    assert_eq!(d.len(), 20_000, "{}", agent.log_text());
    assert_eq!(d.last(), Some(&19_999));
}

#[test]
fn a_wrong_bootstrap_address_is_reported_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let nothing = free_port();
    let conf = agent_conf(
        dir.path(),
        http,
        &format!(
            "a1.sinks.k1.kafka.bootstrap.servers = 127.0.0.1:{nothing}\na1.sinks.k1.kafka.topic = t\n"
        ),
    );
    let mut agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(60), "the error in the log", || {
        agent
            .log_text()
            .matches(&format!("cannot reach Kafka at 127.0.0.1:{nothing}"))
            .count()
            >= 2
    });
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent keeps running"
    );
    assert!(port_open(http), "the rest of the agent serves on");
}

#[test]
fn taildir_kafka_template_ships_the_sample_logs() {
    // The template runs in a scratch copy of the repository layout, pointed at the
    // testkit's broker.
    let kafka = Kafka::start();
    create_topics(&kafka, &[("logs", 1)]);
    let work = tempfile::tempdir().unwrap();
    let expected = copy_sample_logs(work.path());
    let conf = work.path().join("shipper.conf");
    std::fs::write(
        &conf,
        std::fs::read_to_string(repo_path("configs/taildir-kafka.conf"))
            .unwrap()
            .replace("127.0.0.1:9092", &kafka.bootstrap()),
    )
    .unwrap();
    let _agent = AgentProcess::start_in(work.path(), "shipper", &conf, &[]);
    let got = consume(&kafka, "logs", expected);
    assert!(
        got.iter()
            .all(|r| r.key.as_deref().is_some_and(|k| k.ends_with(".log"))),
        "every record is keyed by its file"
    );
}
