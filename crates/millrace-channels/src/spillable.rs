//! The `SPILLABLEMEMORY` channel: a memory channel that spills to a file channel when
//! it is full, so bursts go to disk instead of being refused.
//!
//! Order is kept across the boundary: once events sit in the overflow, new puts go
//! there too until it is empty, and takes empty memory first. After a crash the
//! events in memory are lost and those in the overflow are replayed, as Flume
//! documents for this channel.

use crate::file::{FileChannel, FileChannelConfig};
use crate::memory::{MemoryChannel, MemoryChannelConfig};
use async_trait::async_trait;
use millrace_core::counters::ChannelCounters;
use millrace_core::{Channel, ChannelError, Event, Props, TakeTxn};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SpillableConfig {
    /// `memoryCapacity` (default 10000), `overflowTimeout` (seconds a put waits for
    /// memory before spilling, default 3), `byteCapacity`,
    /// `byteCapacityBufferPercentage`, and `transactionCapacity` (default 10000, the
    /// file channel's, as Flume configures this channel through the file channel's
    /// settings).
    pub memory: MemoryChannelConfig,
    /// The file channel's properties (`checkpointDir`, `dataDirs`, ...) for the
    /// overflow, holding up to `overflowCapacity` (default 100000000) events; none
    /// when `overflowCapacity = 0`.
    pub overflow: Option<FileChannelConfig>,
}

impl SpillableConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let memory_capacity = p.u64_in("memoryCapacity", 10_000, 0, i64::MAX as u64) as usize;
        let overflow_capacity =
            p.u64_in("overflowCapacity", 100_000_000, 0, i64::MAX as u64) as usize;
        let overflow_timeout = p.seconds("overflowTimeout", 3);
        let tx = p.positive("transactionCapacity", 10_000) as usize;
        let byte_capacity = crate::memory::byte_capacity(p);
        let _ = p.get("avgEventSize");
        // Flume returns puts to memory once this share of it is free; here they return
        // once the overflow is empty, which keeps the order of events.
        let _ = p.get("overflowDeactivationThreshold");
        if memory_capacity == 0 && overflow_capacity == 0 {
            p.error_at(
                "memoryCapacity",
                format!(
                    "`{}` and overflowCapacity are both 0; the channel could hold nothing",
                    p.full_key("memoryCapacity")
                ),
            );
        }
        let overflow = if overflow_capacity > 0 {
            FileChannelConfig::from_props(p).map(|mut c| {
                c.capacity = overflow_capacity;
                c.transaction_capacity = tx;
                // As Flume sets it for its overflow whatever `keep-alive` says: a put
                // has already waited `overflowTimeout` for memory, and a full overflow
                // fails it at once.
                c.keep_alive = Duration::ZERO;
                Some(c)
            })
        } else {
            Some(None)
        };
        if p.has_errors() {
            return None;
        }
        Some(SpillableConfig {
            memory: MemoryChannelConfig {
                capacity: memory_capacity,
                transaction_capacity: tx,
                keep_alive: overflow_timeout,
                byte_capacity,
            },
            overflow: overflow?,
        })
    }
}

pub struct SpillableChannel {
    name: String,
    memory: Arc<MemoryChannel>,
    overflow: Option<Arc<FileChannel>>,
    counters: Arc<ChannelCounters>,
    transaction_capacity: usize,
}

impl SpillableChannel {
    pub fn new(name: &str, cfg: SpillableConfig) -> Self {
        let capacity = cfg.memory.capacity + cfg.overflow.as_ref().map_or(0, |o| o.capacity);
        let transaction_capacity = cfg.memory.transaction_capacity;
        SpillableChannel {
            name: name.to_string(),
            memory: Arc::new(MemoryChannel::new(name, cfg.memory)),
            overflow: cfg.overflow.map(|o| Arc::new(FileChannel::new(name, o))),
            counters: Arc::new(ChannelCounters::with_capacity(capacity as u64)),
            transaction_capacity,
        }
    }

    fn overflow_len(&self) -> usize {
        self.overflow.as_ref().map_or(0, |o| o.len())
    }

    /// Events in memory and in the overflow.
    pub fn lens(&self) -> (usize, usize) {
        (self.memory.len(), self.overflow_len())
    }

    /// The channel's own counters are the sums of its two parts'.
    fn refresh(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let parts: Vec<&Arc<ChannelCounters>> = std::iter::once(self.memory.counters())
            .chain(self.overflow.as_ref().map(|o| o.counters()))
            .collect();
        let sum = |f: fn(&ChannelCounters) -> u64| parts.iter().map(|c| f(c)).sum::<u64>();
        let c = &self.counters;
        c.set_size(sum(ChannelCounters::channel_size));
        c.event_put_attempt
            .store(sum(ChannelCounters::event_put_attempt), Relaxed);
        c.event_put_success
            .store(sum(ChannelCounters::event_put_success), Relaxed);
        c.event_take_attempt
            .store(sum(ChannelCounters::event_take_attempt), Relaxed);
        c.event_take_success
            .store(sum(ChannelCounters::event_take_success), Relaxed);
    }
}

#[async_trait]
impl Channel for SpillableChannel {
    fn name(&self) -> &str {
        &self.name
    }

    async fn open(&self) -> Result<(), ChannelError> {
        if let Some(o) = &self.overflow {
            o.open().await?;
        }
        self.refresh();
        Ok(())
    }

    async fn put(&self, batch: Vec<Event>) -> Result<(), ChannelError> {
        let r = match &self.overflow {
            None => self.memory.put(batch).await,
            Some(o) if o.is_empty() => match self.memory.put(batch.clone()).await {
                Err(e) if e.is_full() => o.put(batch).await,
                r => r,
            },
            Some(o) => o.put(batch).await,
        };
        self.refresh();
        r
    }

    async fn take(&self, max: usize, wait: Duration) -> Result<TakeTxn, ChannelError> {
        let r = if !self.memory.is_empty() {
            self.memory.take(max, Duration::ZERO).await
        } else {
            match &self.overflow {
                Some(o) if !o.is_empty() => o.take(max, Duration::ZERO).await,
                _ => self.memory.take(max, wait).await,
            }
        };
        self.refresh();
        r
    }

    fn transaction_capacity(&self) -> usize {
        self.transaction_capacity
    }

    fn counters(&self) -> &Arc<ChannelCounters> {
        self.refresh();
        &self.counters
    }

    async fn close(&self) {
        if let Some(o) = &self.overflow {
            o.close().await;
        }
        self.refresh();
    }

    fn volatile_len(&self) -> u64 {
        self.memory.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(dir: &std::path::Path, memory: &str) -> SpillableChannel {
        let ck = dir.join("ck");
        let data = dir.join("data");
        let p = Props::from_pairs(&[
            ("memoryCapacity", memory),
            ("overflowTimeout", "0"),
            ("transactionCapacity", "10"),
            ("checkpointDir", ck.to_str().unwrap()),
            ("dataDirs", data.to_str().unwrap()),
            ("minimumRequiredSpace", "0"),
        ]);
        let cfg = SpillableConfig::from_props(&p).expect("valid");
        SpillableChannel::new("c1", cfg)
    }

    async fn put_range(ch: &SpillableChannel, from: u32, to: u32) {
        for start in (from..to).step_by(10) {
            ch.put(
                (start..(start + 10).min(to))
                    .map(|i| Event::from_body(i.to_string()))
                    .collect(),
            )
            .await
            .unwrap();
        }
    }

    /// `extra` with an overflow in a fresh directory, kept as long as the TempDir is.
    fn with_dirs(extra: &[(&str, &str)]) -> (tempfile::TempDir, Props) {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("ck");
        let data = dir.path().join("data");
        let mut pairs = vec![
            ("checkpointDir", ck.to_str().unwrap()),
            ("dataDirs", data.to_str().unwrap()),
        ];
        pairs.extend_from_slice(extra);
        let p = Props::from_pairs(&pairs);
        (dir, p)
    }

    async fn take_all(ch: &SpillableChannel, n: usize) -> Vec<u32> {
        let mut out = Vec::new();
        while out.len() < n {
            let t = ch.take(10, Duration::ZERO).await.unwrap();
            out.extend(t.events().iter().map(|e| {
                std::str::from_utf8(&e.body)
                    .unwrap()
                    .parse::<u32>()
                    .unwrap()
            }));
            t.commit().await.unwrap();
        }
        out
    }

    #[test]
    fn transaction_capacity_defaults_to_flumes_10000() {
        let (_dir, p) = with_dirs(&[]);
        let cfg = SpillableConfig::from_props(&p).expect("valid");
        assert_eq!(cfg.memory.transaction_capacity, 10_000);
        assert_eq!(cfg.overflow.unwrap().transaction_capacity, 10_000);
    }

    #[test]
    fn the_overflow_does_not_wait_for_room_whatever_keep_alive_says() {
        let (_dir, p) = with_dirs(&[("keep-alive", "10"), ("overflowTimeout", "2")]);
        let cfg = SpillableConfig::from_props(&p).expect("valid");
        assert!(p.finish().is_empty(), "{:?}", p.finish());
        assert_eq!(cfg.memory.keep_alive, Duration::from_secs(2));
        assert_eq!(cfg.overflow.unwrap().keep_alive, Duration::ZERO);
    }

    #[test]
    fn overflow_deactivation_threshold_is_accepted() {
        let (_dir, p) = with_dirs(&[("overflowDeactivationThreshold", "10")]);
        assert!(SpillableConfig::from_props(&p).is_some());
        assert!(p.finish().is_empty(), "{:?}", p.finish());
    }

    #[test]
    fn byte_capacity_0_is_no_limit_as_in_flume() {
        let (_dir, p) = with_dirs(&[("byteCapacity", "0")]);
        let cfg = SpillableConfig::from_props(&p).expect("valid");
        assert!(p.finish().is_empty(), "{:?}", p.finish());
        assert_eq!(cfg.memory.byte_capacity, None);
    }

    #[tokio::test]
    async fn spills_when_memory_is_full_and_keeps_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let ch = channel(dir.path(), "20");
        ch.open().await.unwrap();
        put_range(&ch, 0, 100).await;
        assert_eq!(ch.lens(), (20, 80));
        // Memory has room again, but new events queue behind the overflow.
        assert_eq!(take_all(&ch, 20).await, (0..20).collect::<Vec<_>>());
        put_range(&ch, 100, 110).await;
        assert_eq!(ch.lens(), (0, 90));
        assert_eq!(take_all(&ch, 90).await, (20..110).collect::<Vec<_>>());
        assert_eq!(ch.counters().event_take_success(), 110);
        ch.close().await;
    }

    #[tokio::test]
    async fn the_overflow_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ch = channel(dir.path(), "20");
        ch.open().await.unwrap();
        put_range(&ch, 0, 50).await;
        ch.close().await;
        let ch = channel(dir.path(), "20");
        ch.open().await.unwrap();
        assert_eq!(
            ch.lens(),
            (0, 30),
            "memory events are gone, the overflow's are back"
        );
        assert_eq!(take_all(&ch, 30).await, (20..50).collect::<Vec<_>>());
        ch.close().await;
    }
}
