//! Flume's component counters, under Flume's names.
//!
//! Each counter set renders itself as `(name, value)` pairs; the monitoring server
//! turns those into Flume's JSON shape (every value a string) and Prometheus text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentKind {
    Source,
    Channel,
    Sink,
    /// The agent itself (configuration reloads).
    Agent,
}

impl ComponentKind {
    /// Flume's word for the kind, used in `/metrics` keys (`SOURCE.r1`).
    pub fn flume_name(self) -> &'static str {
        match self {
            ComponentKind::Source => "SOURCE",
            ComponentKind::Channel => "CHANNEL",
            ComponentKind::Sink => "SINK",
            ComponentKind::Agent => "AGENT",
        }
    }
}

pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Something that reports counters for `/metrics`.
pub trait Metrics: Send + Sync {
    fn kind(&self) -> ComponentKind;
    /// Counters in Flume's order, without `Type`, `StartTime` and `StopTime`.
    fn values(&self) -> Vec<(&'static str, String)>;
    fn start_time(&self) -> u64;
    fn stop_time(&self) -> u64;
}

/// Start and stop times in epoch milliseconds; stop is 0 while running.
#[derive(Debug, Default)]
pub struct Lifecycle {
    start: AtomicU64,
    stop: AtomicU64,
}

impl Lifecycle {
    pub fn started(&self) {
        self.start.store(now_millis(), Ordering::Relaxed);
        self.stop.store(0, Ordering::Relaxed);
    }
    pub fn stopped(&self) {
        self.stop.store(now_millis(), Ordering::Relaxed);
    }
}

macro_rules! counter_set {
    ($(#[$m:meta])* $name:ident, $kind:expr, { $($field:ident => $flume:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name {
            pub lifecycle: Lifecycle,
            $(#[doc = $flume] pub $field: AtomicU64,)*
        }

        impl $name {
            $(
                pub fn $field(&self) -> u64 { self.$field.load(Ordering::Relaxed) }
            )*
        }

        impl $name {
            fn base_values(&self) -> Vec<(&'static str, String)> {
                vec![$(($flume, self.$field.load(Ordering::Relaxed).to_string()),)*]
            }
        }

        impl Metrics for $name {
            fn kind(&self) -> ComponentKind { $kind }
            fn values(&self) -> Vec<(&'static str, String)> { self.render() }
            fn start_time(&self) -> u64 { self.lifecycle.start.load(Ordering::Relaxed) }
            fn stop_time(&self) -> u64 { self.lifecycle.stop.load(Ordering::Relaxed) }
        }
    };
}

/// Adds `n` to a counter.
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Adds one to a counter.
#[inline]
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

counter_set!(
    /// A source's counters (Flume's SourceCounter).
    SourceCounters, ComponentKind::Source, {
    event_received => "EventReceivedCount",
    event_accepted => "EventAcceptedCount",
    append_received => "AppendReceivedCount",
    append_accepted => "AppendAcceptedCount",
    append_batch_received => "AppendBatchReceivedCount",
    append_batch_accepted => "AppendBatchAcceptedCount",
    open_connection => "OpenConnectionCount",
    event_read_fail => "EventReadFail",
    channel_write_fail => "ChannelWriteFail",
    generic_processing_fail => "GenericProcessingFail",
});

impl SourceCounters {
    fn render(&self) -> Vec<(&'static str, String)> {
        self.base_values()
    }
}

counter_set!(
    /// A channel's counters (Flume's ChannelCounter). `ChannelSize` and
    /// `ChannelCapacity` are kept by the channel; `ChannelFillPercentage` is derived.
    ChannelCounters, ComponentKind::Channel, {
    channel_size => "ChannelSize",
    channel_capacity => "ChannelCapacity",
    event_put_attempt => "EventPutAttemptCount",
    event_put_success => "EventPutSuccessCount",
    event_take_attempt => "EventTakeAttemptCount",
    event_take_success => "EventTakeSuccessCount",
    durable => "durable",
    open => "Open",
    unhealthy => "Unhealthy",
    event_put_error => "EventPutErrorCount",
    event_take_error => "EventTakeErrorCount",
    checkpoint_write_error => "CheckpointWriteErrorCount",
    checkpoint_backup_write_error => "CheckpointBackupWriteErrorCount",
    replay_torn_records => "ReplayTornRecordCount",
});

/// Counters after this index exist for durable channels only (Flume's file channel
/// adds them); `durable` itself is a flag, never shown.
const CHANNEL_COMMON: usize = 6;

impl ChannelCounters {
    pub fn with_capacity(capacity: u64) -> Self {
        let c = ChannelCounters::default();
        c.channel_capacity.store(capacity, Ordering::Relaxed);
        c
    }

    pub fn set_size(&self, size: u64) {
        self.channel_size.store(size, Ordering::Relaxed);
    }

    /// Marks the channel durable, so the file channel's extra counters are shown.
    pub fn set_durable(&self) {
        self.durable.store(1, Ordering::Relaxed);
    }

    fn render(&self) -> Vec<(&'static str, String)> {
        let mut v = self.base_values();
        if self.durable() == 1 {
            v.remove(CHANNEL_COMMON);
            // Open/Unhealthy read as Flume writes them.
            for (k, val) in v.iter_mut() {
                if *k == "Open" || *k == "Unhealthy" {
                    *val = (val == "1").to_string();
                }
            }
        } else {
            v.truncate(CHANNEL_COMMON);
        }
        let cap = self.channel_capacity();
        let fill = if cap == 0 {
            0.0
        } else {
            self.channel_size() as f64 * 100.0 / cap as f64
        };
        v.insert(2, ("ChannelFillPercentage", format!("{fill:?}")));
        v
    }
}

counter_set!(
    /// A sink's counters (Flume's SinkCounter).
    SinkCounters, ComponentKind::Sink, {
    connection_created => "ConnectionCreatedCount",
    connection_closed => "ConnectionClosedCount",
    connection_failed => "ConnectionFailedCount",
    batch_empty => "BatchEmptyCount",
    batch_underflow => "BatchUnderflowCount",
    batch_complete => "BatchCompleteCount",
    event_drain_attempt => "EventDrainAttemptCount",
    event_drain_success => "EventDrainSuccessCount",
    event_write_fail => "EventWriteFail",
    channel_read_fail => "ChannelReadFail",
    kafka => "kafka",
    kafka_event_send_timer => "KafkaEventSendTimer",
    rollback_count => "RollbackCount",
});

/// Counters after this index exist for Kafka sinks only (Flume's KafkaSinkCounter adds
/// them); `kafka` itself is a flag, never shown.
const SINK_COMMON: usize = 10;

impl SinkCounters {
    /// Marks the sink as a Kafka sink, so `KafkaEventSendTimer` (ms spent sending) and
    /// `RollbackCount` are shown.
    pub fn set_kafka(&self) {
        self.kafka.store(1, Ordering::Relaxed);
    }

    fn render(&self) -> Vec<(&'static str, String)> {
        let mut v = self.base_values();
        if self.kafka() == 1 {
            v.remove(SINK_COMMON);
        } else {
            v.truncate(SINK_COMMON);
        }
        v
    }
}

counter_set!(
    /// The agent's own counters: configuration reloads. `LastReloadTime` is epoch ms,
    /// 0 before the first reload.
    AgentCounters, ComponentKind::Agent, {
    reload_applied => "ReloadAppliedCount",
    reload_rejected => "ReloadRejectedCount",
    last_reload_time => "LastReloadTime",
});

impl AgentCounters {
    fn render(&self) -> Vec<(&'static str, String)> {
        self.base_values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_percentage_is_size_over_capacity() {
        let c = ChannelCounters::with_capacity(200);
        c.set_size(50);
        let v = c.values();
        let fill = v
            .iter()
            .find(|(k, _)| *k == "ChannelFillPercentage")
            .unwrap();
        assert_eq!(fill.1, "25.0");
    }

    #[test]
    fn durable_counters_show_for_durable_channels_only() {
        let c = ChannelCounters::with_capacity(10);
        let names: Vec<&str> = c.values().iter().map(|(k, _)| *k).collect();
        assert_eq!(names.len(), 7);
        assert!(!names.contains(&"Open") && !names.contains(&"durable"));
        c.set_durable();
        let names: Vec<&str> = c.values().iter().map(|(k, _)| *k).collect();
        assert!(names.contains(&"CheckpointWriteErrorCount") && !names.contains(&"durable"));
    }

    #[test]
    fn kafka_counters_show_for_kafka_sinks_only() {
        let c = SinkCounters::default();
        let names: Vec<&str> = c.values().iter().map(|(k, _)| *k).collect();
        assert!(!names.contains(&"RollbackCount") && !names.contains(&"kafka"));
        c.set_kafka();
        let names: Vec<&str> = c.values().iter().map(|(k, _)| *k).collect();
        assert!(names.contains(&"KafkaEventSendTimer") && names.contains(&"RollbackCount"));
        assert!(!names.contains(&"kafka"));
    }

    #[test]
    fn source_counters_use_flume_names() {
        let c = SourceCounters::default();
        add(&c.event_received, 3);
        let v = c.values();
        assert_eq!(v[0], ("EventReceivedCount", "3".to_string()));
        assert_eq!(v.len(), 10);
    }
}
