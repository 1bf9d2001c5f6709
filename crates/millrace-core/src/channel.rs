//! Channels and their transactions.
//!
//! A put is atomic: the whole batch becomes visible or none of it does. A take hands
//! out a [`TakeTxn`] whose events stay owned by the channel until
//! [`TakeTxn::commit`]; dropping the transaction, or calling [`TakeTxn::rollback`],
//! returns them to the head of the channel in their original order.

use crate::counters::ChannelCounters;
use crate::event::Event;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("channel `{channel}` is full ({size} of {capacity} events); the put was refused, retry later or raise `capacity`")]
    Full {
        channel: String,
        size: u64,
        capacity: u64,
    },
    #[error("channel `{channel}` byte capacity is exhausted ({capacity} bytes); retry later or raise `byteCapacity`")]
    BytesFull { channel: String, capacity: u64 },
    #[error("a transaction of {size} events exceeds `transactionCapacity` = {capacity} of channel `{channel}`; lower the batch size or raise `transactionCapacity`")]
    TransactionTooLarge {
        channel: String,
        size: usize,
        capacity: usize,
    },
    #[error("channel `{0}` is closed")]
    Closed(String),
    #[error("channel `{channel}`: {message}")]
    Failed { channel: String, message: String },
}

impl ChannelError {
    /// True when the put may succeed later without anyone changing anything
    /// (the channel was full): callers back off and retry.
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            ChannelError::Full { .. } | ChannelError::BytesFull { .. }
        )
    }
}

/// What a channel does when a take transaction ends.
#[async_trait]
pub trait TakeHandle: Send {
    /// Makes the take permanent.
    async fn commit(self: Box<Self>, events: Vec<Event>) -> Result<(), ChannelError>;
    /// Puts `events` back at the head of the channel, in order. Must not block: it runs
    /// from `Drop`.
    fn rollback(self: Box<Self>, events: Vec<Event>);
}

/// An open take transaction. Rolls back when dropped without a commit.
pub struct TakeTxn {
    events: Vec<Event>,
    handle: Option<Box<dyn TakeHandle>>,
}

impl TakeTxn {
    pub fn new(events: Vec<Event>, handle: Box<dyn TakeHandle>) -> Self {
        TakeTxn {
            events,
            handle: Some(handle),
        }
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub async fn commit(mut self) -> Result<(), ChannelError> {
        let events = std::mem::take(&mut self.events);
        match self.handle.take() {
            Some(h) => h.commit(events).await,
            None => Ok(()),
        }
    }

    pub fn rollback(mut self) {
        self.do_rollback();
    }

    fn do_rollback(&mut self) {
        if let Some(h) = self.handle.take() {
            h.rollback(std::mem::take(&mut self.events));
        }
    }
}

impl Drop for TakeTxn {
    fn drop(&mut self) {
        self.do_rollback();
    }
}

impl std::fmt::Debug for TakeTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TakeTxn")
            .field("events", &self.events.len())
            .finish()
    }
}

#[async_trait]
pub trait Channel: Send + Sync + 'static {
    fn name(&self) -> &str;

    /// Puts a batch as one transaction. Waits up to the channel's keep-alive for room,
    /// then fails with [`ChannelError::Full`].
    async fn put(&self, batch: Vec<Event>) -> Result<(), ChannelError>;

    /// Takes up to `max` events. Returns at once when events are available, otherwise
    /// waits up to `wait` for the first one; an empty transaction means none came.
    async fn take(&self, max: usize, wait: Duration) -> Result<TakeTxn, ChannelError>;

    /// The largest batch one put or take may hold.
    fn transaction_capacity(&self) -> usize;

    fn counters(&self) -> &Arc<ChannelCounters>;

    /// Makes the channel ready (a durable channel locks its directories and replays
    /// its log); called once before any put or take. May block for as long as replay
    /// takes.
    async fn open(&self) -> Result<(), ChannelError> {
        Ok(())
    }

    /// Flushes and releases resources; called once, after every source and sink using
    /// the channel has stopped.
    async fn close(&self) {}

    /// True when the channel keeps events across a restart.
    fn is_durable(&self) -> bool {
        false
    }

    /// Of the events it holds, how many a close loses: all of a memory channel's,
    /// none of a durable one's, those in memory of a channel that keeps only its
    /// overflow on disk.
    fn volatile_len(&self) -> u64 {
        if self.is_durable() {
            0
        } else {
            self.counters().channel_size()
        }
    }
}
