//! A plain rdkafka client for checking what reached the real broker.

use millrace_e2e::wait_for;
use millrace_testkit::Kafka;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message};
use std::time::Duration;

pub fn client(kafka: &Kafka) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", kafka.bootstrap())
        .set("broker.address.family", "v4");
    c
}

pub fn create_topics(kafka: &Kafka, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = client(kafka).create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let made = rt
        .block_on(admin.create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .unwrap();
    for r in made {
        assert!(r.is_ok(), "{r:?}");
    }
}

pub struct Record {
    pub partition: i32,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// The record headers in order, values as sent (`None` for a header without one).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    /// The value of the last record header `key`, as text.
    pub fn header(&self, key: &str) -> Option<String> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned())
    }
}

/// Reads `topic` from the beginning until `done` holds for what arrived (or the
/// deadline passes).
pub fn consume_until(
    kafka: &Kafka,
    topic: &str,
    what: &str,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: BaseConsumer = client(kafka)
        .set("group.id", format!("check-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    wait_for(Duration::from_secs(120), what, || {
        while let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("a record");
            got.push(Record {
                partition: m.partition(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers: m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        done(&got)
    });
    got
}

pub fn consume(kafka: &Kafka, topic: &str, n: usize) -> Vec<Record> {
    let got = consume_until(kafka, topic, &format!("{n} records in {topic}"), |r| {
        r.len() >= n
    });
    assert_eq!(got.len(), n, "more records in {topic} than sent");
    got
}

pub fn number(r: &Record) -> u64 {
    String::from_utf8_lossy(&r.payload).parse().unwrap()
}
