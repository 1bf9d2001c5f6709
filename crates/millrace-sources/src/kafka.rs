//! The Kafka source (`org.apache.flume.source.kafka.KafkaSource`), on librdkafka.
//!
//! Records are gathered into a batch (`batchSize` records or `batchDurationMillis`,
//! whichever comes first), put into the channels, and only then are their offsets
//! committed: a crash between the two replays the batch, it never loses it.
//!
//! `header.NAME = KAFKA_NAME` copies the Kafka record header KAFKA_NAME to the event
//! header NAME, as Flume 1.11 does; without such lines record headers are not read.

use async_trait::async_trait;
use millrace_core::counters::inc;
use millrace_core::kafka::{self, KafkaLog};
use millrace_core::{Event, Headers, Props, Source, SourceContext, SourceError};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct KafkaSourceConfig {
    /// `kafka.bootstrap.servers` (required).
    pub bootstrap: String,
    /// `kafka.topics` (comma separated) or `kafka.topics.regex`; one is required.
    pub topics: Vec<String>,
    /// `batchSize` (default 1000) and `batchDurationMillis` (default 1000).
    pub batch_size: usize,
    pub batch_duration: Duration,
    /// `backoffSleepIncrement` (default 50 ms) and `maxBackoffSleep` (default 5000 ms):
    /// the pause after a failed poll grows by the increment up to the maximum.
    pub backoff_increment: Duration,
    pub max_backoff: Duration,
    /// `useFlumeEventFormat` (default false): values are Avro `AvroFlumeEvent`s whose
    /// headers become the event's.
    pub flume_format: bool,
    /// `setTopicHeader` (default true) with `topicHeader` (default `topic`).
    pub topic_header: Option<String>,
    /// `header.NAME = KAFKA_NAME` lines as `(NAME, KAFKA_NAME)`: the value of the
    /// record header KAFKA_NAME (the last one, if repeated) becomes the event header
    /// NAME, decoded as UTF-8 with invalid bytes replaced. Empty (the default): record
    /// headers are not read.
    pub header_map: Vec<(String, String)>,
    /// librdkafka consumer settings: `kafka.consumer.*`, the group id, and what
    /// at-least-once delivery needs.
    pub consumer: Vec<(String, String)>,
}

impl KafkaSourceConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let bootstrap = p.required(
            "kafka.bootstrap.servers",
            "set the brokers to read from, e.g. kafka-1:9092,kafka-2:9092",
        );
        let mut topics: Vec<String> = p
            .string("kafka.topics", "")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        if let Some(re) = p.get("kafka.topics.regex") {
            if !topics.is_empty() {
                p.error_at(
                    "kafka.topics.regex",
                    format!(
                        "`{}` and `{}` are both set; keep one",
                        p.full_key("kafka.topics"),
                        p.full_key("kafka.topics.regex")
                    ),
                );
            }
            if let Err(e) = regex::Regex::new(&re) {
                p.error_at(
                    "kafka.topics.regex",
                    format!(
                        "`{}` is not a valid regular expression: {e}",
                        p.full_key("kafka.topics.regex")
                    ),
                );
            }
            // librdkafka subscribes by pattern when a topic starts with `^`.
            topics = vec![if re.starts_with('^') {
                re
            } else {
                format!("^{re}")
            }];
        }
        if topics.is_empty() && !p.has_errors() {
            p.error(format!(
                "set `{}` (comma-separated topics) or `{}`",
                p.full_key("kafka.topics"),
                p.full_key("kafka.topics.regex")
            ));
        }
        for old in ["zookeeperConnect", "topic", "groupId"] {
            if p.get(old).is_some() {
                p.error_at(old, format!("`{}` is Flume 1.6's name; use kafka.bootstrap.servers, kafka.topics and kafka.consumer.group.id", p.full_key(old)));
            }
        }
        if p.bool("migrateZookeeperOffsets", false) {
            p.error_at("migrateZookeeperOffsets", format!("`{}`: offsets kept in ZooKeeper are not read; the group's offsets in Kafka are used", p.full_key("migrateZookeeperOffsets")));
        }
        let batch_size = p.u64_in("batchSize", 1000, 1, 1_000_000) as usize;
        let batch_duration = p.millis("batchDurationMillis", 1000);
        let backoff_increment = p.millis("backoffSleepIncrement", 50);
        let max_backoff = p.millis("maxBackoffSleep", 5000);
        let flume_format = p.bool("useFlumeEventFormat", false);
        // Read whether or not it is used, as Flume reads it.
        let topic_header = p.bool("setTopicHeader", true);
        let topic_header = topic_header.then_some(p.string("topicHeader", "topic"));
        let header_map = kafka::header_map(p);

        let mut consumer: Vec<(String, String)> = vec![
            ("group.id".into(), "flume".into()),
            ("broker.address.family".into(), "v4".into()),
        ];
        for (key, v) in p.with_prefix("kafka.consumer.") {
            let value = v.value.trim().to_string();
            if kafka::is_security_key(&key) {
                continue;
            }
            if [
                "key.deserializer",
                "value.deserializer",
                "interceptor.classes",
            ]
            .contains(&key.as_str())
            {
                p.warn_at(
                    &format!("kafka.consumer.{key}"),
                    format!(
                        "`{}` has no librdkafka counterpart and is ignored",
                        p.full_key(&format!("kafka.consumer.{key}"))
                    ),
                );
                continue;
            }
            if key == "enable.auto.commit" {
                p.warn_at(
                    &format!("kafka.consumer.{key}"),
                    format!(
                        "`{}` is ignored: offsets are committed after each batch is in the channel",
                        p.full_key(&format!("kafka.consumer.{key}"))
                    ),
                );
                continue;
            }
            consumer.retain(|(k, _)| *k != key);
            consumer.push((key, value));
        }
        // Offsets move only when this source commits them.
        consumer.extend(kafka::security_settings(p, "kafka.consumer."));
        consumer.push(("enable.auto.commit".into(), "false".into()));
        consumer.push(("enable.auto.offset.store".into(), "false".into()));
        if let Some(b) = &bootstrap {
            consumer.push(("bootstrap.servers".into(), b.clone()));
        }
        if p.has_errors() {
            return None;
        }
        // librdkafka checks names and values when a client is made; a plain consumer
        // (no runtime needed) reports a typo at configtest time.
        if let Err(e) = client_config(&consumer).create::<rdkafka::consumer::BaseConsumer>() {
            p.error(format!("the Kafka consumer settings are not accepted: {e}"));
            return None;
        }
        Some(KafkaSourceConfig {
            bootstrap: bootstrap?,
            topics,
            batch_size,
            batch_duration,
            backoff_increment,
            max_backoff,
            flume_format,
            topic_header,
            header_map,
            consumer,
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

pub struct KafkaSource {
    cfg: KafkaSourceConfig,
}

impl KafkaSource {
    pub fn new(cfg: KafkaSourceConfig) -> Self {
        KafkaSource { cfg }
    }
}

/// One record as an event with Flume's headers. A record that is not an
/// `AvroFlumeEvent` under `useFlumeEventFormat` is an error the caller counts.
fn to_event(cfg: &KafkaSourceConfig, m: &impl Message) -> Result<Event, String> {
    let payload = m.payload().unwrap_or_default();
    let mut event = if cfg.flume_format {
        millrace_avro::protocol::decode_event(&mut millrace_avro::codec::Reader::new(payload))
            .map_err(|e| format!("not an AvroFlumeEvent ({e}); is useFlumeEventFormat right?"))?
    } else {
        Event::new(Headers::new(), payload.to_vec())
    };
    let h = &mut event.headers;
    let now = m
        .timestamp()
        .to_millis()
        .unwrap_or_else(|| millrace_core::counters::now_millis() as i64);
    h.entry("timestamp".into())
        .or_insert_with(|| now.to_string());
    // Flume's order: the mapped record headers overwrite the Avro headers and the
    // timestamp, and come before topic, partition and offset, which are set only
    // when absent.
    if !cfg.header_map.is_empty() {
        if let Some(kh) = m.headers() {
            copy_record_headers(&cfg.header_map, kh, h);
        }
    }
    if let Some(th) = &cfg.topic_header {
        h.entry(th.clone()).or_insert_with(|| m.topic().to_string());
    }
    h.entry("partition".into())
        .or_insert_with(|| m.partition().to_string());
    h.entry("offset".into())
        .or_insert_with(|| m.offset().to_string());
    if let Some(k) = m.key() {
        h.insert("key".into(), String::from_utf8_lossy(k).into_owned());
    }
    Ok(event)
}

/// Sets the event header NAME of each `(NAME, KAFKA_NAME)` to the value of the last
/// record header KAFKA_NAME. A record header without a value is skipped (Flume's
/// source fails on one); invalid UTF-8 is replaced, as Java's `new String` does.
fn copy_record_headers(
    map: &[(String, String)],
    record: &impl rdkafka::message::Headers,
    h: &mut Headers,
) {
    for (flume, kafka) in map {
        let last = record
            .iter()
            .filter(|rh| rh.key == kafka)
            .filter_map(|rh| rh.value)
            .last();
        if let Some(v) = last {
            h.insert(flume.clone(), String::from_utf8_lossy(v).into_owned());
        }
    }
}

#[async_trait]
impl Source for KafkaSource {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        let consumer: Arc<StreamConsumer<KafkaLog>> = Arc::new(
            client_config(&self.cfg.consumer)
                .create_with_context(KafkaLog::new("source", &ctx.name))
                .map_err(|e| {
                    SourceError::Failed(format!("cannot create the Kafka consumer: {e}"))
                })?,
        );
        let topics: Vec<&str> = self.cfg.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| SourceError::Failed(format!("cannot subscribe to {topics:?}: {e}")))?;
        tracing::info!(source = %ctx.name, bootstrap = %self.cfg.bootstrap, topics = ?self.cfg.topics, "Kafka source subscribed");
        let batch_size = self.cfg.batch_size.min(ctx.processor.max_batch()).max(1);
        let mut backoff = Duration::ZERO;
        loop {
            let mut events = Vec::with_capacity(batch_size);
            // The next offset to commit per partition.
            let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
            let deadline = tokio::time::Instant::now() + self.cfg.batch_duration;
            while events.len() < batch_size {
                let m = tokio::select! {
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep_until(deadline) => break,
                    m = consumer.recv() => m,
                };
                match m {
                    Ok(m) => {
                        backoff = Duration::ZERO;
                        next.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
                        match to_event(&self.cfg, &m) {
                            Ok(e) => events.push(e),
                            Err(e) => {
                                // Skipped (and its offset committed with the batch):
                                // it would fail the same way on every retry.
                                tracing::warn!(source = %ctx.name, topic = m.topic(), partition = m.partition(), offset = m.offset(), error = %e, "record skipped");
                                inc(&ctx.counters.event_read_fail);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(source = %ctx.name, error = %e, "Kafka poll failed");
                        inc(&ctx.counters.generic_processing_fail);
                        backoff = (backoff + self.cfg.backoff_increment).min(self.cfg.max_backoff);
                        tokio::select! {
                            _ = ctx.shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        break;
                    }
                }
            }
            if next.is_empty() {
                continue;
            }
            if !events.is_empty() && ctx.put(events).await.is_err() {
                // Shutting down before the put committed: the offsets stay, and the
                // records are read again next time.
                return Ok(());
            }
            let mut tpl = TopicPartitionList::new();
            for ((topic, partition), offset) in &next {
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset));
            }
            let c = consumer.clone();
            let committed =
                tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync)).await;
            if let Ok(Err(e)) = committed {
                // The batch is in the channel; a failed commit only means it may be
                // read again after a restart or rebalance.
                tracing::warn!(source = %ctx.name, error = %e, "committing offsets failed; those records may be delivered again");
            }
        }
    }

    fn batch_size(&self) -> Option<usize> {
        Some(self.cfg.batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flume_properties_are_read_and_mistakes_reported() {
        let p = Props::from_pairs(&[
            ("kafka.bootstrap.servers", "127.0.0.1:9092"),
            ("kafka.topics", "app, audit"),
            ("kafka.consumer.group.id", "collectors"),
            ("kafka.consumer.auto.offset.reset", "earliest"),
            ("batchSize", "500"),
            ("useFlumeEventFormat", "true"),
        ]);
        let c = KafkaSourceConfig::from_props(&p).expect("valid");
        assert_eq!(c.topics, ["app", "audit"]);
        let get = |k: &str| {
            c.consumer
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("group.id"), Some("collectors"));
        assert_eq!(get("auto.offset.reset"), Some("earliest"));
        assert_eq!(get("enable.auto.commit"), Some("false"));
        assert!(c.flume_format && c.batch_size == 500);

        let p = Props::from_pairs(&[
            ("kafka.bootstrap.servers", "127.0.0.1:9092"),
            ("kafka.topics.regex", "app-.*"),
        ]);
        assert_eq!(
            KafkaSourceConfig::from_props(&p).unwrap().topics,
            ["^app-.*"]
        );

        let p = Props::from_pairs(&[
            ("zookeeperConnect", "zk:2181"),
            ("migrateZookeeperOffsets", "true"),
        ]);
        assert!(KafkaSourceConfig::from_props(&p).is_none());
        let all: Vec<String> = p.finish().iter().map(|d| d.to_string()).collect();
        let all = all.join("\n");
        for needle in [
            "kafka.bootstrap.servers",
            "kafka.topics",
            "Flume 1.6",
            "ZooKeeper",
        ] {
            assert!(all.contains(needle), "{needle} not in:\n{all}");
        }
    }

    #[test]
    fn header_lines_copy_record_headers_in_flumes_order() {
        use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
        let p = Props::from_pairs(&[
            ("kafka.bootstrap.servers", "127.0.0.1:9092"),
            ("kafka.topics", "in"),
            ("header.trace", " trace-id "),
            ("header.timestamp", "sent-at"),
            ("header.topic", "origin"),
            ("header.host", "origin-host"),
        ]);
        let c = KafkaSourceConfig::from_props(&p).expect("valid");
        assert!(p.finish().is_empty(), "header.* is known: {:?}", p.finish());
        assert_eq!(c.header_map.len(), 4);
        assert!(c.header_map.contains(&("trace".into(), "trace-id".into())));

        let add =
            |h: OwnedHeaders, k: &str, v: Option<&[u8]>| h.insert(Header { key: k, value: v });
        let kh = OwnedHeaders::new();
        let kh = add(kh, "trace-id", Some(b"first"));
        let kh = add(kh, "trace-id", Some(b"last"));
        let kh = add(kh, "sent-at", Some(b"1700000000000"));
        let kh = add(kh, "origin", Some(b"caf\xe9"));
        let kh = add(kh, "origin-host", None);
        let kh = add(kh, "unmapped", Some(b"x"));
        let m = OwnedMessage::new(
            Some(b"body".to_vec()),
            Some(b"k1".to_vec()),
            "in".into(),
            Timestamp::CreateTime(1_600_000_000_000),
            3,
            42,
            Some(kh),
        );
        let e = to_event(&c, &m).unwrap();
        let h = |k: &str| e.headers.get(k).map(String::as_str);
        // The last of repeated record headers wins.
        assert_eq!(h("trace"), Some("last"));
        // Mapped headers come after the timestamp (overwriting it) and before the
        // topic (which is then left as mapped), as in Flume.
        assert_eq!(h("timestamp"), Some("1700000000000"));
        assert_eq!(h("topic"), Some("caf\u{fffd}"));
        // A record header without a value is skipped; unmapped ones are not copied.
        assert_eq!(h("host"), None);
        assert_eq!(h("unmapped"), None);
        assert_eq!(
            (h("partition"), h("offset"), h("key")),
            (Some("3"), Some("42"), Some("k1"))
        );

        // Without header.* lines, record headers are not read.
        let p = Props::from_pairs(&[
            ("kafka.bootstrap.servers", "127.0.0.1:9092"),
            ("kafka.topics", "in"),
        ]);
        let c = KafkaSourceConfig::from_props(&p).unwrap();
        let e = to_event(&c, &m).unwrap();
        assert_eq!(e.headers.get("topic").map(String::as_str), Some("in"));
        assert_eq!(e.headers.get("trace"), None);
    }
}
