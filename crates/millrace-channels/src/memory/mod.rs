//! The `memory` channel: a bounded in-memory queue with Flume's transaction rules.
//!
//! - A put of more than `transactionCapacity` events fails at once.
//! - A put waits up to `keep-alive` for room, then fails with "full".
//! - Taken events keep their room reserved until the take commits, so a rollback
//!   always fits and puts them back at the head in order.
//! - Events are lost when the process stops; pick a durable channel if that matters.

mod config;

pub(crate) use config::byte_capacity;
pub use config::MemoryChannelConfig;

use async_trait::async_trait;
use millrace_core::counters::{add, ChannelCounters};
use millrace_core::{Channel, ChannelError, Event, TakeHandle, TakeTxn};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

struct State {
    queue: VecDeque<Event>,
    /// Events handed out by takes that have not committed yet.
    in_flight: usize,
    /// Bytes held by queued and in-flight events.
    bytes: usize,
}

struct Inner {
    name: String,
    cfg: MemoryChannelConfig,
    state: Mutex<State>,
    /// Signalled when events arrive.
    items: Notify,
    /// Signalled when room is freed.
    space: Notify,
    counters: Arc<ChannelCounters>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under every panic point (no partial updates), so a
        // poisoned lock can be used as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct MemoryChannel {
    inner: Arc<Inner>,
}

impl MemoryChannel {
    pub fn new(name: &str, cfg: MemoryChannelConfig) -> Self {
        let counters = Arc::new(ChannelCounters::with_capacity(cfg.capacity as u64));
        MemoryChannel {
            inner: Arc::new(Inner {
                name: name.to_string(),
                state: Mutex::new(State {
                    queue: VecDeque::with_capacity(cfg.capacity.min(1 << 16)),
                    in_flight: 0,
                    bytes: 0,
                }),
                cfg,
                items: Notify::new(),
                space: Notify::new(),
                counters,
            }),
        }
    }

    /// Events queued (not counting those held by open takes).
    pub fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Channel for MemoryChannel {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn put(&self, batch: Vec<Event>) -> Result<(), ChannelError> {
        let inner = &self.inner;
        let n = batch.len();
        add(&inner.counters.event_put_attempt, n as u64);
        if n == 0 {
            return Ok(());
        }
        if n > inner.cfg.transaction_capacity {
            return Err(ChannelError::TransactionTooLarge {
                channel: inner.name.clone(),
                size: n,
                capacity: inner.cfg.transaction_capacity,
            });
        }
        let bytes: usize = if inner.cfg.byte_capacity.is_some() {
            batch.iter().map(Event::size_estimate).sum()
        } else {
            0
        };
        let deadline = Instant::now() + inner.cfg.keep_alive;
        let mut batch = Some(batch);
        loop {
            let notified = inner.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = inner.lock();
                let fits = st.queue.len() + st.in_flight + n <= inner.cfg.capacity;
                let bytes_fit = inner
                    .cfg
                    .byte_capacity
                    .is_none_or(|cap| st.bytes + bytes <= cap);
                if fits && bytes_fit {
                    st.queue.extend(batch.take().into_iter().flatten());
                    st.bytes += bytes;
                    inner.counters.set_size(st.queue.len() as u64);
                    drop(st);
                    add(&inner.counters.event_put_success, n as u64);
                    inner.items.notify_waiters();
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(if fits {
                        ChannelError::BytesFull {
                            channel: inner.name.clone(),
                            capacity: inner.cfg.byte_capacity.unwrap_or(0) as u64,
                        }
                    } else {
                        ChannelError::Full {
                            channel: inner.name.clone(),
                            size: (st.queue.len() + st.in_flight) as u64,
                            capacity: inner.cfg.capacity as u64,
                        }
                    });
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    async fn take(&self, max: usize, wait: Duration) -> Result<TakeTxn, ChannelError> {
        let inner = &self.inner;
        let max = max.min(inner.cfg.transaction_capacity).max(1);
        let deadline = Instant::now() + wait;
        loop {
            let notified = inner.items.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = inner.lock();
                if !st.queue.is_empty() || Instant::now() >= deadline {
                    let k = max.min(st.queue.len());
                    let events: Vec<Event> = st.queue.drain(..k).collect();
                    st.in_flight += k;
                    inner.counters.set_size(st.queue.len() as u64);
                    drop(st);
                    add(&inner.counters.event_take_attempt, k.max(1) as u64);
                    let handle = Box::new(MemoryTake {
                        inner: inner.clone(),
                        n: k,
                    });
                    return Ok(TakeTxn::new(events, handle));
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    fn transaction_capacity(&self) -> usize {
        self.inner.cfg.transaction_capacity
    }

    fn counters(&self) -> &Arc<ChannelCounters> {
        &self.inner.counters
    }
}

struct MemoryTake {
    inner: Arc<Inner>,
    n: usize,
}

#[async_trait]
impl TakeHandle for MemoryTake {
    async fn commit(self: Box<Self>, events: Vec<Event>) -> Result<(), ChannelError> {
        let freed: usize = if self.inner.cfg.byte_capacity.is_some() {
            events.iter().map(Event::size_estimate).sum()
        } else {
            0
        };
        {
            let mut st = self.inner.lock();
            st.in_flight -= self.n;
            st.bytes -= freed;
        }
        add(&self.inner.counters.event_take_success, self.n as u64);
        self.inner.space.notify_waiters();
        Ok(())
    }

    fn rollback(self: Box<Self>, events: Vec<Event>) {
        if self.n == 0 {
            return;
        }
        let mut st = self.inner.lock();
        st.in_flight -= self.n;
        for e in events.into_iter().rev() {
            st.queue.push_front(e);
        }
        self.inner.counters.set_size(st.queue.len() as u64);
        drop(st);
        self.inner.items.notify_waiters();
    }
}

#[cfg(test)]
mod tests;
