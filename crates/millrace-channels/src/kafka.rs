//! The Kafka channel (`org.apache.flume.channel.kafka.KafkaChannel`): events are kept
//! in a Kafka topic between the put and the take, so they survive the agent and are
//! shared by every agent of the consumer group.
//!
//! - A put returns once the broker acknowledged every record (at `acks`, default
//!   `all`). It is not atomic across records: a put that fails after some records
//!   were written is retried whole, and those records arrive twice.
//! - A take reads records as the consumer group; its commit commits their offsets.
//!   A rollback keeps the events in memory, in order, for the next take, and their
//!   offsets uncommitted, so a crash at any point replays them from Kafka.
//! - One take is open at a time. Offsets in a partition can only be committed in
//!   order, and two takes committing out of order could skip records that were rolled
//!   back; serialising takes keeps every record either committed or replayable.
//! - With `parseAsFlumeEvent = true` (the default) records are Avro `AvroFlumeEvent`s,
//!   headers included, as Flume's Kafka channel writes them; with `false` they are
//!   bodies, for topics other producers read or write.
//!
//! It can run with only a source (an agent that writes to Kafka) or only a sink (an
//! agent that reads from Kafka), as Flume's can.

use async_trait::async_trait;
use millrace_core::kafka::{self, KafkaLog};
use millrace_core::{
    Channel, ChannelCounters, ChannelError, Event, Headers, Props, TakeHandle, TakeTxn,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct KafkaChannelConfig {
    /// `kafka.bootstrap.servers` (required).
    pub bootstrap: String,
    /// `kafka.topic` (default `flume-channel`).
    pub topic: String,
    /// `parseAsFlumeEvent` (default true).
    pub flume_format: bool,
    /// `kafka.pollTimeout`, or `pollTimeout` without it (default 500 ms): the longest
    /// a take waits for records.
    pub poll_timeout: Duration,
    /// `defaultPartitionId` and `partitionIdHeader`.
    pub default_partition: Option<i32>,
    pub partition_header: Option<String>,
    /// `transactionCapacity` (millrace's own, default 1000000): most events per put or
    /// take. Flume's Kafka channel has no such limit; the default is high enough that
    /// no batch size of a Flume file is refused, and nothing is allocated by it.
    pub transaction_capacity: usize,
    pub producer: Vec<(String, String)>,
    pub consumer: Vec<(String, String)>,
}

fn pass_through(p: &Props, prefix: &str, into: &mut Vec<(String, String)>) {
    for (key, v) in p.with_prefix(prefix) {
        let value = v.value.trim().to_string();
        let full = format!("{prefix}{key}");
        if kafka::is_security_key(&key) {
            continue;
        }
        if key.ends_with(".serializer")
            || key.ends_with(".deserializer")
            || key == "enable.auto.commit"
        {
            p.warn_at(
                &full,
                format!(
                    "`{}` is ignored: the channel sets what it needs",
                    p.full_key(&full)
                ),
            );
            continue;
        }
        into.retain(|(k, _)| *k != key);
        into.push((key, value));
    }
    into.extend(kafka::security_settings(p, prefix));
}

impl KafkaChannelConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let bootstrap = p.required(
            "kafka.bootstrap.servers",
            "set the brokers that hold the channel's topic, e.g. kafka-1:9092",
        );
        for old in [
            "brokerList",
            "zookeeperConnect",
            "topic",
            "groupId",
            "readSmallestOffset",
        ] {
            if p.get(old).is_some() {
                p.error_at(old, format!("`{}` is Flume 1.6's name; use kafka.bootstrap.servers, kafka.topic and kafka.consumer.*", p.full_key(old)));
            }
        }
        if p.bool("migrateZookeeperOffsets", false) {
            p.error_at("migrateZookeeperOffsets", format!("`{}`: offsets kept in ZooKeeper are not read; the group's offsets in Kafka are used", p.full_key("migrateZookeeperOffsets")));
        }
        let topic = p.string("kafka.topic", "flume-channel");
        let flume_format = p.bool("parseAsFlumeEvent", true);
        // Flume's code reads `kafka.pollTimeout`, while its user guide names
        // `pollTimeout`; files use either, so both are read and Flume's wins.
        let poll_timeout = if p.has("kafka.pollTimeout") || !p.has("pollTimeout") {
            let t = p.millis("kafka.pollTimeout", 500);
            let _ = p.get("pollTimeout");
            t
        } else {
            p.millis("pollTimeout", 500)
        };
        let default_partition = p
            .get("defaultPartitionId")
            .map(|_| p.u64_in("defaultPartitionId", 0, 0, i32::MAX as u64) as i32);
        let partition_header = p.get("partitionIdHeader");
        let transaction_capacity = p.positive("transactionCapacity", 1_000_000) as usize;
        let _ = p.get("capacity");
        let group = p.string("kafka.consumer.group.id", "flume");
        let mut producer = vec![
            ("acks".to_string(), "all".to_string()),
            ("message.timeout.ms".to_string(), "30000".to_string()),
            ("broker.address.family".to_string(), "v4".to_string()),
        ];
        pass_through(p, "kafka.producer.", &mut producer);
        let mut consumer = vec![
            ("group.id".to_string(), group),
            ("auto.offset.reset".to_string(), "earliest".to_string()),
            ("broker.address.family".to_string(), "v4".to_string()),
        ];
        pass_through(p, "kafka.consumer.", &mut consumer);
        consumer.push(("enable.auto.commit".into(), "false".into()));
        consumer.push(("enable.auto.offset.store".into(), "false".into()));
        if let Some(b) = &bootstrap {
            producer.push(("bootstrap.servers".into(), b.clone()));
            consumer.push(("bootstrap.servers".into(), b.clone()));
        }
        if p.has_errors() {
            return None;
        }
        for (what, settings) in [("producer", &producer), ("consumer", &consumer)] {
            // A plain client checks names and values without a runtime.
            let checked = if what == "producer" {
                config(settings)
                    .create::<rdkafka::producer::BaseProducer>()
                    .map(|_| ())
            } else {
                config(settings)
                    .create::<rdkafka::consumer::BaseConsumer>()
                    .map(|_| ())
            };
            if let Err(e) = checked {
                p.error(format!("the Kafka {what} settings are not accepted: {e}"));
                return None;
            }
        }
        Some(KafkaChannelConfig {
            bootstrap: bootstrap?,
            topic,
            flume_format,
            poll_timeout,
            default_partition,
            partition_header,
            transaction_capacity,
            producer,
            consumer,
        })
    }
}

fn config(settings: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in settings {
        c.set(k, v);
    }
    c
}

async fn acknowledged(f: rdkafka::producer::DeliveryFuture) -> Result<(), String> {
    match f.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.to_string()),
        Err(_) => Err("the producer was dropped before the broker answered".into()),
    }
}

/// A taken event and where it came from.
struct Taken {
    event: Event,
    partition: i32,
    offset: i64,
}

struct Clients {
    producer: FutureProducer<KafkaLog>,
    /// Made by the first take: an agent that only puts (no sink) must not join the
    /// consumer group, or the group would assign it partitions it never reads.
    consumer: tokio::sync::OnceCell<Arc<StreamConsumer<KafkaLog>>>,
}

pub struct KafkaChannel {
    name: String,
    cfg: KafkaChannelConfig,
    counters: Arc<ChannelCounters>,
    clients: OnceLock<Clients>,
    /// Events of rolled-back takes, handed out again first.
    redo: Arc<Mutex<VecDeque<Taken>>>,
    /// Held by the open take, if any.
    take_lock: Arc<tokio::sync::Mutex<()>>,
}

impl KafkaChannel {
    pub fn new(name: &str, cfg: KafkaChannelConfig) -> Self {
        let counters = Arc::new(ChannelCounters::with_capacity(0));
        counters.set_durable();
        KafkaChannel {
            name: name.to_string(),
            cfg,
            counters,
            clients: OnceLock::new(),
            redo: Arc::default(),
            take_lock: Arc::default(),
        }
    }

    fn clients(&self) -> Result<&Clients, ChannelError> {
        self.clients.get().ok_or_else(|| ChannelError::Failed {
            channel: self.name.clone(),
            message: "the channel is not open".into(),
        })
    }

    fn failed(&self, message: String) -> ChannelError {
        ChannelError::Failed {
            channel: self.name.clone(),
            message,
        }
    }

    fn decode(&self, payload: &[u8]) -> Result<Event, String> {
        if self.cfg.flume_format {
            millrace_avro::protocol::decode_event(&mut millrace_avro::codec::Reader::new(payload))
                .map_err(|e| format!("not an AvroFlumeEvent ({e}); set parseAsFlumeEvent = false for plain records"))
        } else {
            Ok(Event::new(Headers::new(), payload.to_vec()))
        }
    }
}

struct KafkaTake {
    consumer: Arc<StreamConsumer<KafkaLog>>,
    topic: String,
    positions: Vec<(i32, i64)>,
    skipped: Vec<(i32, i64)>,
    redo: Arc<Mutex<VecDeque<Taken>>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
    counters: Arc<ChannelCounters>,
}

#[async_trait]
impl TakeHandle for KafkaTake {
    async fn commit(self: Box<Self>, events: Vec<Event>) -> Result<(), ChannelError> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for (partition, offset) in self.positions.iter().chain(&self.skipped) {
            let e = next.entry(*partition).or_insert(offset + 1);
            *e = (*e).max(offset + 1);
        }
        if !next.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (partition, offset) in &next {
                let _ = tpl.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset));
            }
            let consumer = self.consumer.clone();
            let committed =
                tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await;
            if let Ok(Err(e)) = committed {
                // The sink has delivered these events; an uncommitted offset only
                // means they may be delivered again after a restart.
                tracing::warn!(topic = %self.topic, error = %e, "committing the channel's offsets failed; these events may be delivered again");
            }
        }
        millrace_core::counters::add(&self.counters.event_take_success, events.len() as u64);
        Ok(())
    }

    fn rollback(self: Box<Self>, events: Vec<Event>) {
        let mut redo = self.redo.lock().unwrap_or_else(|e| e.into_inner());
        for (event, (partition, offset)) in events.into_iter().zip(self.positions.iter()).rev() {
            redo.push_front(Taken {
                event,
                partition: *partition,
                offset: *offset,
            });
        }
    }
}

#[async_trait]
impl Channel for KafkaChannel {
    fn name(&self) -> &str {
        &self.name
    }

    async fn open(&self) -> Result<(), ChannelError> {
        if self.clients.get().is_some() {
            return Ok(());
        }
        let producer: FutureProducer<KafkaLog> = config(&self.cfg.producer)
            .create_with_context(KafkaLog::new("channel", &self.name))
            .map_err(|e| self.failed(format!("cannot create the Kafka producer: {e}")))?;
        tracing::info!(channel = %self.name, bootstrap = %self.cfg.bootstrap, topic = %self.cfg.topic, "Kafka channel open");
        let _ = self.clients.set(Clients {
            producer,
            consumer: tokio::sync::OnceCell::new(),
        });
        self.counters
            .open
            .store(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn put(&self, batch: Vec<Event>) -> Result<(), ChannelError> {
        millrace_core::counters::add(&self.counters.event_put_attempt, batch.len() as u64);
        if batch.len() > self.cfg.transaction_capacity {
            return Err(ChannelError::TransactionTooLarge {
                channel: self.name.clone(),
                size: batch.len(),
                capacity: self.cfg.transaction_capacity,
            });
        }
        let clients = self.clients()?;
        let prepared: Vec<(Vec<u8>, Option<String>, Option<i32>)> = batch
            .iter()
            .map(|e| {
                let payload = if self.cfg.flume_format {
                    let mut out = Vec::with_capacity(e.body.len() + 64);
                    millrace_avro::protocol::encode_event(&mut out, e);
                    out
                } else {
                    e.body.to_vec()
                };
                let partition = self
                    .cfg
                    .partition_header
                    .as_deref()
                    .and_then(|h| e.headers.get(h))
                    .and_then(|v| v.trim().parse().ok())
                    .or(self.cfg.default_partition);
                (payload, e.headers.get("key").cloned(), partition)
            })
            .collect();
        // Every record is queued at once and acknowledged together; when librdkafka's
        // queue is full, the oldest acknowledgement is awaited first.
        let mut pending: VecDeque<rdkafka::producer::DeliveryFuture> = VecDeque::new();
        let mut failure = None;
        'records: for (payload, key, partition) in &prepared {
            loop {
                let mut record = FutureRecord::to(&self.cfg.topic).payload(payload);
                if let Some(k) = key {
                    record = record.key(k);
                }
                if let Some(p) = partition {
                    record = record.partition(*p);
                }
                match clients.producer.send_result(record) {
                    Ok(f) => {
                        pending.push_back(f);
                        break;
                    }
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        _,
                    )) => match pending.pop_front() {
                        Some(f) => {
                            if let Err(e) = acknowledged(f).await {
                                failure = Some(e);
                                break 'records;
                            }
                        }
                        None => tokio::time::sleep(Duration::from_millis(5)).await,
                    },
                    Err((e, _)) => {
                        failure = Some(e.to_string());
                        break 'records;
                    }
                }
            }
        }
        for f in pending {
            if let Err(e) = acknowledged(f).await {
                failure.get_or_insert(e);
            }
        }
        if let Some(e) = failure {
            millrace_core::counters::inc(&self.counters.event_put_error);
            return Err(self.failed(format!(
                "Kafka at {} did not acknowledge the put: {e}",
                self.cfg.bootstrap
            )));
        }
        millrace_core::counters::add(&self.counters.event_put_success, batch.len() as u64);
        Ok(())
    }

    async fn take(&self, max: usize, wait: Duration) -> Result<TakeTxn, ChannelError> {
        let clients = self.clients()?;
        let consumer = clients
            .consumer
            .get_or_try_init(|| async {
                let c: StreamConsumer<KafkaLog> = config(&self.cfg.consumer)
                    .create_with_context(KafkaLog::new("channel", &self.name))
                    .map_err(|e| self.failed(format!("cannot create the Kafka consumer: {e}")))?;
                c.subscribe(&[&self.cfg.topic]).map_err(|e| {
                    self.failed(format!("cannot subscribe to {}: {e}", self.cfg.topic))
                })?;
                Ok::<_, ChannelError>(Arc::new(c))
            })
            .await?
            .clone();
        let guard = self.take_lock.clone().lock_owned().await;
        millrace_core::counters::inc(&self.counters.event_take_attempt);
        let max = max.min(self.cfg.transaction_capacity).max(1);
        let mut events = Vec::new();
        let mut positions = Vec::new();
        {
            let mut redo = self.redo.lock().unwrap_or_else(|e| e.into_inner());
            while events.len() < max {
                let Some(t) = redo.pop_front() else { break };
                positions.push((t.partition, t.offset));
                events.push(t.event);
            }
        }
        // Records skipped as undecodable: committed with the take, never handed out.
        let mut skipped = Vec::new();
        let deadline = tokio::time::Instant::now() + wait.min(self.cfg.poll_timeout);
        while events.len() < max {
            // Wait for the first record; after it, take only what is already there.
            let limit = if events.is_empty() && skipped.is_empty() {
                deadline
            } else {
                tokio::time::Instant::now() + Duration::from_millis(5)
            };
            let m = match tokio::time::timeout_at(limit, consumer.recv()).await {
                Err(_) => break,
                Ok(Ok(m)) => m,
                Ok(Err(e)) => {
                    millrace_core::counters::inc(&self.counters.event_take_error);
                    tracing::warn!(channel = %self.name, error = %e, "reading the channel's topic failed");
                    break;
                }
            };
            match self.decode(m.payload().unwrap_or_default()) {
                Ok(e) => {
                    positions.push((m.partition(), m.offset()));
                    events.push(e);
                }
                Err(e) => {
                    // It would fail the same way on every read.
                    tracing::warn!(channel = %self.name, partition = m.partition(), offset = m.offset(), error = %e, "record skipped");
                    millrace_core::counters::inc(&self.counters.event_take_error);
                    skipped.push((m.partition(), m.offset()));
                }
            }
        }
        let handle = KafkaTake {
            consumer,
            topic: self.cfg.topic.clone(),
            positions,
            skipped,
            redo: self.redo.clone(),
            _guard: guard,
            counters: self.counters.clone(),
        };
        Ok(TakeTxn::new(events, Box::new(handle)))
    }

    fn transaction_capacity(&self) -> usize {
        self.cfg.transaction_capacity
    }

    fn counters(&self) -> &Arc<ChannelCounters> {
        &self.counters
    }

    async fn close(&self) {
        self.counters
            .open
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_durable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flume_properties_are_read_and_mistakes_reported() {
        let p = Props::from_pairs(&[
            ("kafka.bootstrap.servers", "127.0.0.1:9092"),
            ("kafka.topic", "events"),
            ("kafka.consumer.group.id", "collectors"),
            ("kafka.producer.linger.ms", "5"),
            ("parseAsFlumeEvent", "false"),
        ]);
        let c = KafkaChannelConfig::from_props(&p).expect("valid");
        let get = |v: &[(String, String)], k: &str| {
            v.iter().rev().find(|(n, _)| n == k).map(|(_, x)| x.clone())
        };
        assert_eq!(get(&c.consumer, "group.id").as_deref(), Some("collectors"));
        assert_eq!(
            get(&c.consumer, "enable.auto.commit").as_deref(),
            Some("false")
        );
        assert_eq!(get(&c.producer, "linger.ms").as_deref(), Some("5"));
        assert_eq!(get(&c.producer, "acks").as_deref(), Some("all"));
        assert!(!c.flume_format);

        let p = Props::from_pairs(&[
            ("brokerList", "old:9092"),
            ("kafka.consumer.security.protocol", "SASL_SSL"),
        ]);
        assert!(KafkaChannelConfig::from_props(&p).is_none());
        let all: Vec<String> = p.finish().iter().map(|d| d.to_string()).collect();
        let all = all.join("\n");
        for needle in ["kafka.bootstrap.servers", "Flume 1.6", "GSSAPI"] {
            assert!(all.contains(needle), "{needle} not in:\n{all}");
        }
    }

    fn brokers_and(extra: &[(&'static str, &'static str)]) -> Props {
        let mut pairs = vec![("kafka.bootstrap.servers", "127.0.0.1:9092")];
        pairs.extend_from_slice(extra);
        Props::from_pairs(&pairs)
    }

    #[test]
    fn no_flume_batch_size_is_refused_by_default() {
        // Flume's Kafka channel has no transaction limit: a sink with
        // flumeBatchSize = 5000 runs on it.
        let c = KafkaChannelConfig::from_props(&brokers_and(&[])).expect("valid");
        assert_eq!(c.transaction_capacity, 1_000_000);
        let p = brokers_and(&[("transactionCapacity", "5000000")]);
        let c = KafkaChannelConfig::from_props(&p).expect("valid");
        assert_eq!(c.transaction_capacity, 5_000_000);
    }

    #[test]
    fn poll_timeout_is_read_under_both_names_and_flumes_wins() {
        let cases: [(&[(&str, &str)], u64); 4] = [
            (&[], 500),
            (&[("kafka.pollTimeout", "1500")], 1500),
            (&[("pollTimeout", "200")], 200),
            (
                &[("kafka.pollTimeout", "1500"), ("pollTimeout", "200")],
                1500,
            ),
        ];
        for (extra, ms) in cases {
            let p = brokers_and(extra);
            let c = KafkaChannelConfig::from_props(&p).expect("valid");
            assert_eq!(c.poll_timeout, Duration::from_millis(ms), "{extra:?}");
            assert!(p.finish().is_empty(), "{extra:?}: {:?}", p.finish());
        }
    }
}
