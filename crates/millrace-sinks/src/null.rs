//! The `null` sink: takes events and discards them. For tests and benchmarks.

use async_trait::async_trait;
use millrace_core::{Event, Props, Sink, SinkError};

#[derive(Debug, Clone)]
pub struct NullConfig {
    /// `batchSize` (default 100): events per take.
    pub batch_size: usize,
    /// `logEveryNEvents` (default 10000): log the running count at INFO each time it
    /// passes a multiple of this, as Flume's NullSink does; 0 logs nothing.
    pub log_every: u64,
}

impl NullConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let batch_size = p.u64_in("batchSize", 100, 1, 1_000_000) as usize;
        let log_every = p.u64_in("logEveryNEvents", 10_000, 0, u64::MAX);
        (!p.has_errors()).then_some(NullConfig {
            batch_size,
            log_every,
        })
    }
}

pub struct NullSink {
    cfg: NullConfig,
    consumed: u64,
}

impl NullSink {
    pub fn new(cfg: NullConfig) -> Self {
        NullSink { cfg, consumed: 0 }
    }
}

#[async_trait]
impl Sink for NullSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        let before = self.consumed;
        self.consumed += batch.len() as u64;
        let n = self.cfg.log_every;
        if n > 0 && self.consumed / n > before / n {
            tracing::info!(events = self.consumed, "null sink: events consumed");
        }
        Ok(())
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }
}
