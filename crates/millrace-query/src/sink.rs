//! The `store` sink: an agent hosted by the query server writes into the server's own
//! store. `deliver` returns once the batch is on disk, so the channel's take commits
//! only then.
//!
//! ```text
//! a1.sinks.k1.type = store
//! a1.sinks.k1.channel = c1
//! a1.sinks.k1.batchSize = 500
//! ```

use crate::ingest::Ingest;
use async_trait::async_trait;
use millrace_core::counters::{inc, SinkCounters};
use millrace_core::{Event, Props, Sink, SinkError};
use std::sync::Arc;

/// The sink type name in configurations.
pub const TYPE: &str = "store";

#[derive(Debug, Clone)]
pub struct StoreSinkConfig {
    /// `batchSize` (default 100, 1 to 10000): events per take, one store write each.
    pub batch_size: usize,
}

impl StoreSinkConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let batch_size = p.u64_in("batchSize", 100, 1, 10_000) as usize;
        (!p.has_errors()).then_some(StoreSinkConfig { batch_size })
    }
}

pub struct StoreSink {
    sender: String,
    cfg: StoreSinkConfig,
    ingest: Ingest,
    counters: Arc<SinkCounters>,
}

impl StoreSink {
    pub fn new(
        agent: &str,
        name: &str,
        cfg: StoreSinkConfig,
        ingest: Ingest,
        counters: Arc<SinkCounters>,
    ) -> Self {
        StoreSink {
            sender: format!("sink {agent}.{name}"),
            cfg,
            ingest,
            counters,
        }
    }

    /// Builds a store sink from its properties (problems are recorded in them).
    pub fn build(
        agent: &str,
        name: &str,
        props: &Props,
        ingest: &Ingest,
        counters: Arc<SinkCounters>,
    ) -> Option<Box<dyn Sink>> {
        StoreSinkConfig::from_props(props).map(|cfg| {
            Box::new(StoreSink::new(agent, name, cfg, ingest.clone(), counters)) as Box<dyn Sink>
        })
    }
}

#[async_trait]
impl Sink for StoreSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        match self
            .ingest
            .append_borrowed(&self.sender, "sink", batch)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                inc(&self.counters.event_write_fail);
                tracing::error!(sink = %self.sender, error = %e, "the store refused a batch; it stays in the channel");
                Err(SinkError::Delivery(e.to_string()))
            }
        }
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }
}
