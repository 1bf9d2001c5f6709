//! Kafka over SASL_SSL through the agent binary, against the real broker's SASL_SSL
//! listener (millrace-testkit's `Kafka::start_secure`), set up as a Flume file sets it
//! up: `security.protocol`, `sasl.mechanism`, a JAAS line and a PEM truststore under
//! `kafka.producer.*` and `kafka.consumer.*`. The same lines also work in Apache
//! Flume 1.11 (its kafka-clients 2.7.2 reads PEM truststores).

mod common;

use common::kafka::*;
use millrace_e2e::*;
use millrace_testkit::{port_open, FlumeAgent, Kafka, KAFKA_USER};
use std::path::Path;
use std::time::Duration;

/// The client settings of a Flume file for the secure listener, under `prefix`.
fn secure(kafka: &Kafka, prefix: &str, mechanism: &str, password: &str) -> String {
    let module = if mechanism == "PLAIN" {
        "org.apache.kafka.common.security.plain.PlainLoginModule"
    } else {
        "org.apache.kafka.common.security.scram.ScramLoginModule"
    };
    format!(
        "{prefix}.security.protocol = SASL_SSL\n\
         {prefix}.sasl.mechanism = {mechanism}\n\
         {prefix}.sasl.jaas.config = {module} required username=\"{}\" password=\"{password}\";\n\
         {prefix}.ssl.truststore.location = {}\n\
         {prefix}.ssl.truststore.type = PEM\n",
        KAFKA_USER.0,
        kafka.ca_pem().display()
    )
}

fn post_numbers(http: u16, numbers: std::ops::Range<u64>) {
    let events: Vec<serde_json::Value> = numbers
        .map(|n| serde_json::json!({"headers": {}, "body": n.to_string()}))
        .collect();
    let (status, body) =
        http_post(http, "/", &serde_json::to_vec(&events).unwrap()).expect("the agent answers");
    assert_eq!(status, 200, "{body}");
}

/// http -> memory -> Kafka sink, on the secure listener.
fn sink_conf(kafka: &Kafka, http: u16, topic: &str, password: &str) -> String {
    format!(
        "a1.sources = web\na1.channels = c1\na1.sinks = out\n\
         a1.sources.web.type = http\na1.sources.web.bind = 127.0.0.1\na1.sources.web.port = {http}\n\
         a1.sources.web.channels = c1\na1.channels.c1.type = memory\n\
         a1.sinks.out.type = org.apache.flume.sink.kafka.KafkaSink\na1.sinks.out.channel = c1\n\
         a1.sinks.out.kafka.bootstrap.servers = {}\na1.sinks.out.kafka.topic = {topic}\n{}",
        kafka.secure_bootstrap(),
        secure(kafka, "a1.sinks.out.kafka.producer", "PLAIN", password)
    )
}

#[test]
fn events_go_out_with_sasl_plain_and_come_back_with_scram_over_tls() {
    let kafka = Kafka::start_secure();
    create_topics(&kafka, &[("secure", 2)]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let http = free_port();
    // One agent, two pipelines: its Kafka sink writes the topic its Kafka source reads.
    let conf = dir.path().join("agent.conf");
    let text = sink_conf(&kafka, http, "secure", KAFKA_USER.1)
        .replace("a1.sources = web", "a1.sources = web in")
        .replace("a1.channels = c1", "a1.channels = c1 c2")
        .replace("a1.sinks = out", "a1.sinks = out roll")
        + &format!(
            "a1.sources.in.type = org.apache.flume.source.kafka.KafkaSource\n\
             a1.sources.in.channels = c2\n\
             a1.sources.in.kafka.bootstrap.servers = {}\na1.sources.in.kafka.topics = secure\n\
             a1.sources.in.kafka.consumer.group.id = secure-readers\n\
             a1.sources.in.kafka.consumer.auto.offset.reset = earliest\n\
             a1.sources.in.batchSize = 100\n{}\
             a1.channels.c2.type = memory\n\
             a1.sinks.roll.type = file_roll\na1.sinks.roll.channel = c2\n\
             a1.sinks.roll.sink.directory = {}\na1.sinks.roll.sink.rollInterval = 0\n",
            kafka.secure_bootstrap(),
            secure(
                &kafka,
                "a1.sources.in.kafka.consumer",
                "SCRAM-SHA-256",
                KAFKA_USER.1
            ),
            out.display()
        );
    std::fs::write(&conf, text).unwrap();
    let agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(30), "the http source", || {
        port_open(http)
    });

    const N: u64 = 2_000;
    // Batches of 100, the memory channel's default transactionCapacity.
    for k in 0..N / 100 {
        post_numbers(http, k * 100..(k + 1) * 100);
    }
    // What the sink wrote, read back over the plaintext listener.
    let written = consume(&kafka, "secure", N as usize);
    let mut numbers: Vec<u64> = written.iter().map(number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..N).collect::<Vec<_>>());
    // What the source read over SASL_SSL.
    wait_for(
        Duration::from_secs(60),
        "every record through the source",
        || numbers_in(&out).len() as u64 == N,
    );
    assert_eq!(numbers_in(&out), (0..N).collect());
    drop(agent);
}

#[test]
fn a_wrong_password_is_logged_and_the_held_events_go_out_once_it_is_fixed() {
    let kafka = Kafka::start_secure();
    create_topics(&kafka, &[("fixed", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let conf = dir.path().join("agent.conf");
    std::fs::write(&conf, sink_conf(&kafka, http, "fixed", "not-the-password")).unwrap();
    let mut agent = AgentProcess::start("a1", &conf, &["--no-reload-conf"]);
    wait_for(Duration::from_secs(30), "the http source", || {
        port_open(http)
    });
    post_numbers(http, 0..100);
    // librdkafka's own report of the failed login reaches the agent's log.
    wait_for(
        Duration::from_secs(60),
        "the failed login in the log",
        || agent.log_text().contains("Authentication failed"),
    );
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent stays up"
    );

    std::fs::write(&conf, sink_conf(&kafka, http, "fixed", KAFKA_USER.1)).unwrap();
    agent.signal(libc::SIGHUP);
    let got = consume(&kafka, "fixed", 100);
    let mut numbers: Vec<u64> = got.iter().map(number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..100).collect::<Vec<_>>());
    assert!(agent.terminate(Duration::from_secs(30)).success());
}

#[test]
fn java_flume_and_millrace_share_the_same_sasl_ssl_lines() {
    let kafka = Kafka::start_secure();
    create_topics(&kafka, &[("shared", 1)]);
    // One set of lines for both agents; only the component prefix differs.
    let lines = |prefix: &str| secure(&kafka, prefix, "SCRAM-SHA-256", KAFKA_USER.1);
    let http = free_port();
    let mut java = FlumeAgent::start(
        "j1",
        &format!(
            "j1.sources = web\nj1.channels = c1\nj1.sinks = out\n\
             j1.sources.web.type = http\nj1.sources.web.bind = 127.0.0.1\n\
             j1.sources.web.port = {http}\nj1.sources.web.channels = c1\n\
             j1.channels.c1.type = memory\nj1.channels.c1.capacity = 10000\n\
             j1.channels.c1.transactionCapacity = 1000\n\
             j1.sinks.out.type = org.apache.flume.sink.kafka.KafkaSink\n\
             j1.sinks.out.channel = c1\nj1.sinks.out.flumeBatchSize = 100\n\
             j1.sinks.out.kafka.bootstrap.servers = {}\nj1.sinks.out.kafka.topic = shared\n{}",
            kafka.secure_bootstrap(),
            lines("j1.sinks.out.kafka.producer")
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = in\na1.channels = c1\na1.sinks = roll\n\
             a1.sources.in.type = org.apache.flume.source.kafka.KafkaSource\n\
             a1.sources.in.channels = c1\n\
             a1.sources.in.kafka.bootstrap.servers = {}\na1.sources.in.kafka.topics = shared\n\
             a1.sources.in.kafka.consumer.auto.offset.reset = earliest\n\
             a1.sources.in.batchSize = 100\na1.sources.in.batchDurationMillis = 200\n{}\
             a1.channels.c1.type = memory\n\
             a1.sinks.roll.type = file_roll\na1.sinks.roll.channel = c1\n\
             a1.sinks.roll.sink.directory = {}\na1.sinks.roll.sink.rollInterval = 0\n",
            kafka.secure_bootstrap(),
            lines("a1.sources.in.kafka.consumer"),
            out.display()
        ),
    )
    .unwrap();
    let agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(60), "Flume's http source", || {
        port_open(http)
    });

    const N: u64 = 300;
    for k in 0..N / 100 {
        post_numbers(http, k * 100..(k + 1) * 100);
    }
    // On a timeout, show both agents' logs: either side's client may be the one refused.
    let waited = std::panic::catch_unwind(|| {
        wait_for(
            Duration::from_secs(90),
            "every event from Java Flume's sink through millrace's source",
            || numbers_in(&out).len() as u64 == N,
        )
    });
    assert!(
        waited.is_ok(),
        "{} of {N} arrived\n--- Java Flume's log:\n{}\n--- millrace's log:\n{}",
        numbers_in(&out).len(),
        java.service().log_text(),
        agent.log_text()
    );
    assert_eq!(numbers_in(&out), (0..N).collect());
}

/// The numbers in the bodies file_roll wrote, each once.
fn numbers_in(out: &Path) -> std::collections::BTreeSet<u64> {
    numbers(&read_lines(out))
}
