//! Sources bring events in and hand them to their channel processor.

use crate::counters::SourceCounters;
use crate::selector::ChannelProcessor;
use async_trait::async_trait;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Failed(String),
}

/// What a running source is given: where to send events, its counters and the signal
/// to stop.
#[derive(Clone)]
pub struct SourceContext {
    pub name: String,
    pub processor: Arc<ChannelProcessor>,
    pub counters: Arc<SourceCounters>,
    pub shutdown: CancellationToken,
}

/// A source runs until `ctx.shutdown` is cancelled. Returning an error makes the
/// supervisor count it, log it and call [`Source::run`] again after a backoff, so a
/// source keeps whatever state it needs to resume in `self`.
#[async_trait]
pub trait Source: Send {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError>;
}
