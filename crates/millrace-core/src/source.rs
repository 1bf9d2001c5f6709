//! Sources bring events in and hand them to their channel processor.

use crate::counters::SourceCounters;
use crate::event::Event;
use crate::selector::ChannelProcessor;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Failed(String),
}

/// Returned by [`SourceContext::put`] when the agent is stopping before the batch
/// could be put: the caller must not advance past the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShuttingDown;

/// What a running source is given: where to send events, its counters and the signal
/// to stop.
#[derive(Clone)]
pub struct SourceContext {
    pub name: String,
    pub processor: Arc<ChannelProcessor>,
    pub counters: Arc<SourceCounters>,
    pub shutdown: CancellationToken,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl SourceContext {
    /// Puts a batch through the channel processor, retrying with backoff (50 ms
    /// doubling up to 5 s) while the channels refuse it, so a full channel slows the
    /// source down instead of losing events. Gives up only when the agent stops.
    pub async fn put(&self, batch: Vec<Event>) -> Result<(), ShuttingDown> {
        let mut backoff = FIRST_BACKOFF;
        let mut warned = false;
        // Received once, however many times the put is tried.
        crate::counters::add(&self.counters.event_received, batch.len() as u64);
        loop {
            match self
                .processor
                .process_received(batch.clone(), &self.counters)
                .await
            {
                Ok(()) => {
                    if warned {
                        tracing::info!(source = %self.name, "channel accepts events again");
                    }
                    return Ok(());
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(source = %self.name, error = %e, "put failed; retrying with backoff");
                        warned = true;
                    }
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return Err(ShuttingDown),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// A source runs until `ctx.shutdown` is cancelled. Returning an error makes the
/// supervisor count it, log it and call [`Source::run`] again after a backoff, so a
/// source keeps whatever state it needs to resume in `self`.
#[async_trait]
pub trait Source: Send {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError>;

    /// Events per put, when the source batches; checked against the channels'
    /// `transactionCapacity` at start.
    fn batch_size(&self) -> Option<usize> {
        None
    }
}
