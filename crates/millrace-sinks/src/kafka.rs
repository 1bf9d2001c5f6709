//! The Kafka sink (`org.apache.flume.sink.kafka.KafkaSink`), on librdkafka.
//!
//! Every event of a batch is handed to the producer at once, and `deliver` returns
//! only when the broker acknowledged each of them at the configured `acks`; if any
//! fails, the whole take rolls back (`RollbackCount`) and is sent again, so delivery
//! is at least once, never at most once.
//!
//! `header.NAME = KAFKA_NAME` copies the event header NAME, when present, to a Kafka
//! record header KAFKA_NAME, as Flume 1.11 does; without such lines no record
//! headers are built.

use async_trait::async_trait;
use millrace_core::counters::{add, inc, SinkCounters};
use millrace_core::kafka::{self, KafkaLog};
use millrace_core::{Event, Props, Sink, SinkError};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Java producer settings that librdkafka spells differently.
const RENAMED: &[(&str, &str)] = &[
    ("max.request.size", "message.max.bytes"),
    ("retries", "message.send.max.retries"),
    ("delivery.timeout.ms", "message.timeout.ms"),
    ("max.in.flight.requests.per.connection", "max.in.flight"),
];

/// Java producer settings with no librdkafka counterpart: accepted, with a warning.
const JAVA_ONLY: &[&str] = &[
    "key.serializer",
    "value.serializer",
    "buffer.memory",
    "max.block.ms",
    "interceptor.classes",
    "partitioner.class",
];

#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    /// `kafka.bootstrap.servers` (required).
    pub bootstrap: String,
    /// `kafka.topic` (default `default-flume-topic`).
    pub topic: String,
    /// `flumeBatchSize` (default 100).
    pub batch_size: usize,
    /// `useFlumeEventFormat` (default false): the value is the Avro `AvroFlumeEvent`,
    /// headers included, instead of the body alone.
    pub flume_format: bool,
    /// `allowTopicOverride` (default true) with `topicHeader` (default `topic`).
    pub topic_header: Option<String>,
    /// `defaultPartitionId` and `partitionIdHeader`.
    pub default_partition: Option<i32>,
    pub partition_header: Option<String>,
    /// `timestampHeader`: a header holding epoch ms to set as the record's timestamp.
    pub timestamp_header: Option<String>,
    /// `header.NAME = KAFKA_NAME` lines as `(NAME, KAFKA_NAME)`: each event header
    /// NAME the event has becomes a Kafka record header KAFKA_NAME holding the
    /// value's UTF-8 bytes. Empty (the default): records carry no headers.
    pub header_map: Vec<(String, String)>,
    /// librdkafka settings from `kafka.producer.*` (after renames), plus the
    /// bootstrap servers.
    pub producer: Vec<(String, String)>,
}

impl KafkaSinkConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let bootstrap = p.required(
            "kafka.bootstrap.servers",
            "set the brokers to send to, e.g. kafka-1:9092,kafka-2:9092",
        );
        // Flume 1.6 names, still common in old files.
        for (old, new) in [
            ("brokerList", "kafka.bootstrap.servers"),
            ("topic", "kafka.topic"),
            ("batchSize", "flumeBatchSize"),
            ("requiredAcks", "kafka.producer.acks"),
        ] {
            if p.get(old).is_some() {
                p.error_at(
                    old,
                    format!("`{}` is Flume 1.6's name; use `{new}`", p.full_key(old)),
                );
            }
        }
        let topic = p.string("kafka.topic", "default-flume-topic");
        let batch_size = p.u64_in("flumeBatchSize", 100, 1, 1_000_000) as usize;
        let flume_format = p.bool("useFlumeEventFormat", false);
        // Read whether or not it is used, as Flume reads it.
        let topic_header = p.bool("allowTopicOverride", true);
        let topic_header = topic_header.then_some(p.string("topicHeader", "topic"));
        let header_map = kafka::header_map(p);
        let default_partition = p
            .get("defaultPartitionId")
            .map(|_| p.u64_in("defaultPartitionId", 0, 0, i32::MAX as u64) as i32);
        let partition_header = p.get("partitionIdHeader");
        let timestamp_header = p.get("timestampHeader");

        // Defaults as Flume's sink sets them, then the user's settings.
        let mut producer: Vec<(String, String)> = vec![
            ("acks".into(), "1".into()),
            // librdkafka waits 5 minutes by default before failing a message; a
            // batch that cannot be delivered rolls back and is retried sooner.
            ("message.timeout.ms".into(), "30000".into()),
            ("broker.address.family".into(), "v4".into()),
        ];
        for (key, v) in p.with_prefix("kafka.producer.") {
            let value = v.value.trim().to_string();
            if JAVA_ONLY.contains(&key.as_str()) {
                p.warn_at(
                    &format!("kafka.producer.{key}"),
                    format!(
                        "`{}` has no librdkafka counterpart and is ignored",
                        p.full_key(&format!("kafka.producer.{key}"))
                    ),
                );
                continue;
            }
            if kafka::is_security_key(&key) {
                continue;
            }
            let key = RENAMED
                .iter()
                .find(|(java, _)| *java == key)
                .map(|(_, rd)| rd.to_string())
                .unwrap_or(key);
            producer.retain(|(k, _)| *k != key);
            producer.push((key, value));
        }
        producer.extend(kafka::security_settings(p, "kafka.producer."));
        if let Some(b) = &bootstrap {
            producer.push(("bootstrap.servers".into(), b.clone()));
        }
        if p.has_errors() {
            return None;
        }
        // librdkafka validates names and values when the producer is created; doing
        // it here reports a typo at configtest time with its line.
        if let Err(e) = client_config(&producer).create::<FutureProducer>() {
            p.error(format!("the Kafka producer settings are not accepted: {e}"));
            return None;
        }
        Some(KafkaSinkConfig {
            bootstrap: bootstrap?,
            topic,
            batch_size,
            flume_format,
            topic_header,
            default_partition,
            partition_header,
            timestamp_header,
            header_map,
            producer,
        })
    }
}

fn client_config(settings: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in settings {
        c.set(k, v);
    }
    c
}

pub struct KafkaSink {
    name: String,
    cfg: KafkaSinkConfig,
    counters: Arc<SinkCounters>,
    producer: Option<FutureProducer<KafkaLog>>,
}

impl KafkaSink {
    pub fn new(name: &str, cfg: KafkaSinkConfig, counters: Arc<SinkCounters>) -> Self {
        counters.set_kafka();
        KafkaSink {
            name: name.to_string(),
            cfg,
            counters,
            producer: None,
        }
    }
}

struct Prepared {
    topic: String,
    key: Option<String>,
    partition: Option<i32>,
    timestamp: Option<i64>,
    /// The record headers from `header.*`; `None` when no mapped header is present.
    headers: Option<OwnedHeaders>,
    payload: Vec<u8>,
}

fn prepare(cfg: &KafkaSinkConfig, e: &Event) -> Prepared {
    let topic = cfg
        .topic_header
        .as_deref()
        .and_then(|h| e.headers.get(h))
        .filter(|t| !t.is_empty())
        .cloned()
        .unwrap_or_else(|| cfg.topic.clone());
    let partition = cfg
        .partition_header
        .as_deref()
        .and_then(|h| e.headers.get(h))
        .and_then(|v| v.trim().parse().ok())
        .or(cfg.default_partition);
    let timestamp = cfg
        .timestamp_header
        .as_deref()
        .and_then(|h| e.headers.get(h))
        .and_then(|v| v.trim().parse().ok());
    let headers = record_headers(&cfg.header_map, e);
    let payload = if cfg.flume_format {
        let mut out = Vec::with_capacity(e.body.len() + 64);
        millrace_avro::protocol::encode_event(&mut out, e);
        out
    } else {
        e.body.to_vec()
    };
    Prepared {
        topic,
        key: e.headers.get("key").cloned(),
        partition,
        timestamp,
        headers,
        payload,
    }
}

/// The Kafka record headers for `e` under `header.*`, as Flume's sink builds them:
/// one per mapping whose event header is present, none at all when none is (so the
/// common case, no `header.*` lines, allocates nothing).
fn record_headers(map: &[(String, String)], e: &Event) -> Option<OwnedHeaders> {
    let mut out: Option<OwnedHeaders> = None;
    for (flume, kafka) in map {
        if let Some(v) = e.headers.get(flume) {
            let h = out.unwrap_or_else(|| OwnedHeaders::new_with_capacity(map.len()));
            out = Some(h.insert(Header {
                key: kafka,
                value: Some(v.as_bytes()),
            }));
        }
    }
    out
}

/// Waits for one record's acknowledgement; the error names the record's topic and
/// partition, since a wrong `partitionIdHeader` value or topic header is the usual
/// cause of a record that can never be delivered.
async fn acknowledged((f, at): (DeliveryFuture, String)) -> Result<(), String> {
    match f.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(format!("{e} (record for {at})")),
        Err(_) => Err("the producer was dropped before the broker answered".into()),
    }
}

fn describe(p: &Prepared) -> String {
    match p.partition {
        Some(n) => format!("topic `{}` partition {n}", p.topic),
        None => format!("topic `{}`", p.topic),
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn start(&mut self) -> Result<(), SinkError> {
        let producer: FutureProducer<KafkaLog> = client_config(&self.cfg.producer)
            .create_with_context(KafkaLog::new("sink", &self.name))
            .map_err(|e| SinkError::Delivery(format!("cannot create the Kafka producer: {e}")))?;
        // Ask for metadata once, so that an unreachable bootstrap list is reported
        // by name at start instead of as a delivery timeout later.
        let probe = producer.clone();
        let topic = self.cfg.topic.clone();
        let reached = tokio::task::spawn_blocking(move || {
            probe
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .map(|_| ())
        })
        .await
        .map_err(|e| SinkError::Delivery(e.to_string()))?;
        if let Err(e) = reached {
            return Err(SinkError::Delivery(format!(
                "cannot reach Kafka at {}: {e}; check kafka.bootstrap.servers (retrying)",
                self.cfg.bootstrap
            )));
        }
        tracing::info!(sink = %self.name, bootstrap = %self.cfg.bootstrap, topic = %self.cfg.topic, "Kafka sink connected");
        inc(&self.counters.connection_created);
        self.producer = Some(producer);
        Ok(())
    }

    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        let Some(producer) = &self.producer else {
            return Err(SinkError::Delivery(
                "the Kafka producer is not started".into(),
            ));
        };
        let started = Instant::now();
        let mut pending: VecDeque<(DeliveryFuture, String)> = VecDeque::with_capacity(batch.len());
        let mut failure = None;
        'events: for e in batch {
            let mut p = prepare(&self.cfg, e);
            let headers = p.headers.take();
            let mut record = FutureRecord::to(&p.topic).payload(&p.payload);
            if let Some(k) = &p.key {
                record = record.key(k);
            }
            if let Some(part) = p.partition {
                record = record.partition(part);
            }
            if let Some(ts) = p.timestamp {
                record = record.timestamp(ts);
            }
            if let Some(h) = headers {
                record = record.headers(h);
            }
            loop {
                match producer.send_result(record) {
                    Ok(f) => {
                        pending.push_back((f, describe(&p)));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue is full: wait for the oldest record first,
                        // then send the same record again.
                        record = back;
                        match pending.pop_front() {
                            Some(f) => {
                                if let Err(err) = acknowledged(f).await {
                                    failure = Some(err);
                                    break 'events;
                                }
                            }
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((err, _)) => {
                        failure = Some(format!("{err} (record for {})", describe(&p)));
                        break 'events;
                    }
                }
            }
        }
        for f in pending {
            if let Err(err) = acknowledged(f).await {
                failure.get_or_insert(err);
            }
        }
        add(
            &self.counters.kafka_event_send_timer,
            started.elapsed().as_millis() as u64,
        );
        match failure {
            None => Ok(()),
            Some(err) => {
                inc(&self.counters.rollback_count);
                Err(SinkError::Delivery(format!(
                    "Kafka at {} did not acknowledge the batch: {err}",
                    self.cfg.bootstrap
                )))
            }
        }
    }

    async fn stop(&mut self) -> Result<(), SinkError> {
        if let Some(p) = self.producer.take() {
            let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(10))).await;
            inc(&self.counters.connection_closed);
        }
        Ok(())
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flume_properties_map_to_librdkafka() {
        let p = Props::from_pairs(&[
            ("kafka.bootstrap.servers", "127.0.0.1:9092"),
            ("kafka.topic", "logs"),
            ("flumeBatchSize", "500"),
            ("kafka.producer.acks", "all"),
            ("kafka.producer.linger.ms", "5"),
            ("kafka.producer.compression.type", "lz4"),
            ("kafka.producer.max.request.size", "2097152"),
            (
                "kafka.producer.key.serializer",
                "org.apache.kafka.common.serialization.StringSerializer",
            ),
            ("useFlumeEventFormat", "true"),
            ("partitionIdHeader", "p"),
        ]);
        let c = KafkaSinkConfig::from_props(&p).expect("valid");
        let get = |k: &str| {
            c.producer
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("acks"), Some("all"));
        assert_eq!(get("linger.ms"), Some("5"));
        assert_eq!(get("message.max.bytes"), Some("2097152"));
        assert_eq!(get("key.serializer"), None);
        assert_eq!(c.batch_size, 500);
        assert!(c.flume_format);
        let d = p.finish();
        assert!(
            d.iter().any(|d| d.to_string().contains("key.serializer")),
            "{d:?}"
        );
    }

    #[test]
    fn mistakes_are_reported_with_what_to_write() {
        let p = Props::from_pairs(&[
            ("brokerList", "old:9092"),
            ("kafka.producer.security.protocol", "SASL_SSL"),
            ("kafka.producer.no.such.setting", "1"),
        ]);
        assert!(KafkaSinkConfig::from_props(&p).is_none());
        let all: Vec<String> = p.finish().iter().map(|d| d.to_string()).collect();
        let all = all.join("\n");
        for needle in ["kafka.bootstrap.servers", "Flume 1.6", "GSSAPI"] {
            assert!(all.contains(needle), "{needle} not in:\n{all}");
        }
        let p = Props::from_pairs(&[
            ("kafka.bootstrap.servers", "127.0.0.1:9092"),
            ("kafka.producer.no.such.setting", "1"),
        ]);
        assert!(KafkaSinkConfig::from_props(&p).is_none());
        let all: Vec<String> = p.finish().iter().map(|d| d.to_string()).collect();
        assert!(all.join("\n").contains("no.such.setting"), "{all:?}");
    }

    #[test]
    fn topic_key_partition_and_format_come_from_headers() {
        let p = Props::from_pairs(&[
            ("kafka.bootstrap.servers", "127.0.0.1:9092"),
            ("partitionIdHeader", "p"),
            ("timestampHeader", "timestamp"),
            ("useFlumeEventFormat", "true"),
        ]);
        let c = KafkaSinkConfig::from_props(&p).unwrap();
        let e = Event::from_body("b")
            .with_header("topic", "audit")
            .with_header("key", "user-7")
            .with_header("p", "2")
            .with_header("timestamp", "1700000000000");
        let r = prepare(&c, &e);
        assert_eq!(
            (r.topic.as_str(), r.key.as_deref()),
            ("audit", Some("user-7"))
        );
        assert_eq!(
            (r.partition, r.timestamp),
            (Some(2), Some(1_700_000_000_000))
        );
        let back = millrace_avro::protocol::decode_event(&mut millrace_avro::codec::Reader::new(
            &r.payload,
        ))
        .unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn header_lines_map_present_event_headers_to_record_headers() {
        use rdkafka::message::Headers;
        let p = Props::from_pairs(&[
            ("kafka.bootstrap.servers", "127.0.0.1:9092"),
            ("header.trace", "trace-id"),
            ("header.host", " origin-host "),
            ("header.absent", "never"),
        ]);
        let c = KafkaSinkConfig::from_props(&p).expect("valid");
        assert!(p.finish().is_empty(), "header.* is known: {:?}", p.finish());
        assert_eq!(
            c.header_map,
            [
                ("absent".to_string(), "never".to_string()),
                ("host".into(), "origin-host".into()),
                ("trace".into(), "trace-id".into()),
            ]
        );
        let e = Event::from_body("b")
            .with_header("trace", "7f3a")
            .with_header("host", "größe-1")
            .with_header("unmapped", "x");
        let h = prepare(&c, &e).headers.expect("record headers");
        let got: Vec<(&str, Option<&[u8]>)> = h.iter().map(|h| (h.key, h.value)).collect();
        assert_eq!(
            got,
            [
                ("origin-host", Some("größe-1".as_bytes())),
                ("trace-id", Some(&b"7f3a"[..])),
            ]
        );
        // None of the mapped headers present: no record headers at all, as in Flume.
        assert!(
            prepare(&c, &Event::from_body("b").with_header("unmapped", "x"))
                .headers
                .is_none()
        );
        // Without header.* lines nothing is built.
        let p = Props::from_pairs(&[("kafka.bootstrap.servers", "127.0.0.1:9092")]);
        let c = KafkaSinkConfig::from_props(&p).unwrap();
        assert!(c.header_map.is_empty());
        assert!(prepare(&c, &e).headers.is_none());
    }
}
