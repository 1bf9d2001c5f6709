//! The `null` sink: takes events and discards them. For tests and benchmarks.

use async_trait::async_trait;
use millrace_core::{Event, Props, Sink, SinkError};

#[derive(Debug, Clone)]
pub struct NullConfig {
    /// `batchSize` (default 100): events per take.
    pub batch_size: usize,
}

impl NullConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let batch_size = p.u64_in("batchSize", 100, 1, 1_000_000) as usize;
        (!p.has_errors()).then_some(NullConfig { batch_size })
    }
}

pub struct NullSink {
    cfg: NullConfig,
}

impl NullSink {
    pub fn new(cfg: NullConfig) -> Self {
        NullSink { cfg }
    }
}

#[async_trait]
impl Sink for NullSink {
    async fn deliver(&mut self, _batch: &[Event]) -> Result<(), SinkError> {
        Ok(())
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }
}
