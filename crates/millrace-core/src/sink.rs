//! Sinks hand batches on to their destination.

use crate::event::Event;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The batch could not be delivered now (destination down, disk full); the runner
    /// rolls the take back and retries with backoff.
    #[error("{0}")]
    Delivery(String),
}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError::Delivery(e.to_string())
    }
}

/// A sink. The runner takes a batch from the channel, calls [`Sink::deliver`], and
/// commits the take only when it returns `Ok`: a sink returns `Ok` only once the batch
/// is durably handed on (written and flushed, acknowledged by the peer).
#[async_trait]
pub trait Sink: Send {
    async fn start(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError>;

    /// Called when the channel had nothing to give, so time-based work (rolling a file
    /// on an interval) happens without traffic.
    async fn idle(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Events per take transaction (`batchSize` and its per-sink spellings).
    fn batch_size(&self) -> usize;

    /// True when the sink keeps `EventDrainAttemptCount` and `EventDrainSuccessCount`
    /// itself instead of the runner counting every taken and committed event, as
    /// Flume's HTTP sink counts a success by status code rather than by commit.
    fn counts_drains(&self) -> bool {
        false
    }
}
