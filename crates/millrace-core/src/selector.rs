//! Channel selectors and the channel processor: the path from a source's batch,
//! through its interceptors, into each chosen channel.
//!
//! As in Flume, every required channel gets a transaction of its own: a failure after
//! one channel committed fails the batch, and the source's retry can then duplicate
//! events in the channels that already had them. Optional channels' failures are
//! logged and ignored.

use crate::channel::{Channel, ChannelError};
use crate::counters::{add, inc, SourceCounters};
use crate::event::Event;
use crate::interceptor::Interceptor;
use std::collections::HashMap;
use std::sync::Arc;

/// Which channels an event goes to. Indexes refer to the processor's channel list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelSelector {
    /// Every channel; failures of the `optional` ones are ignored.
    Replicating {
        required: Vec<usize>,
        optional: Vec<usize>,
    },
    /// The value of `header` picks the channels; unmapped or missing values go to
    /// `default`.
    Multiplexing {
        header: String,
        mapping: HashMap<String, Vec<usize>>,
        optional: HashMap<String, Vec<usize>>,
        default: Vec<usize>,
    },
}

impl ChannelSelector {
    pub fn replicating_all(n: usize) -> Self {
        ChannelSelector::Replicating {
            required: (0..n).collect(),
            optional: Vec::new(),
        }
    }

    fn select(&self, e: &Event) -> (&[usize], &[usize]) {
        match self {
            ChannelSelector::Replicating { required, optional } => (required, optional),
            ChannelSelector::Multiplexing {
                header,
                mapping,
                optional,
                default,
            } => {
                let value = e.header(header);
                let req = value
                    .and_then(|v| mapping.get(v))
                    .map(Vec::as_slice)
                    .unwrap_or(default);
                let opt = value
                    .and_then(|v| optional.get(v))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                (req, opt)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

impl ProcessError {
    pub fn is_full(&self) -> bool {
        matches!(self, ProcessError::Channel(e) if e.is_full())
    }
}

/// Interceptors, then selector, then puts.
pub struct ChannelProcessor {
    interceptors: Vec<Box<dyn Interceptor>>,
    selector: ChannelSelector,
    channels: Vec<Arc<dyn Channel>>,
}

impl ChannelProcessor {
    pub fn new(
        interceptors: Vec<Box<dyn Interceptor>>,
        selector: ChannelSelector,
        channels: Vec<Arc<dyn Channel>>,
    ) -> Self {
        ChannelProcessor {
            interceptors,
            selector,
            channels,
        }
    }

    /// A processor that puts every event into one channel, with no interceptors.
    pub fn single(channel: Arc<dyn Channel>) -> Self {
        ChannelProcessor::new(
            Vec::new(),
            ChannelSelector::replicating_all(1),
            vec![channel],
        )
    }

    /// The smallest `transactionCapacity` among the channels: a source's batch must fit
    /// in every channel it may go to.
    pub fn max_batch(&self) -> usize {
        self.channels
            .iter()
            .map(|c| c.transaction_capacity())
            .min()
            .unwrap_or(usize::MAX)
    }

    /// Runs the interceptors and puts the batch into the selected channels. Counts
    /// `EventReceivedCount` before and `EventAcceptedCount` after, and
    /// `ChannelWriteFail` when a required put fails.
    pub async fn process(
        &self,
        batch: Vec<Event>,
        counters: &SourceCounters,
    ) -> Result<(), ProcessError> {
        add(&counters.event_received, batch.len() as u64);
        self.process_received(batch, counters).await
    }

    /// [`ChannelProcessor::process`] for a batch already counted in
    /// `EventReceivedCount`: a retry of a refused put is the same events again.
    pub async fn process_received(
        &self,
        batch: Vec<Event>,
        counters: &SourceCounters,
    ) -> Result<(), ProcessError> {
        let batch = self.interceptors.iter().fold(batch, |b, i| i.intercept(b));
        let accepted = batch.len() as u64;
        if batch.is_empty() {
            return Ok(());
        }
        match self.put_selected(batch).await {
            Ok(()) => {
                add(&counters.event_accepted, accepted);
                Ok(())
            }
            Err(e) => {
                inc(&counters.channel_write_fail);
                Err(e)
            }
        }
    }

    async fn put_selected(&self, batch: Vec<Event>) -> Result<(), ProcessError> {
        let n = self.channels.len();
        // The common case, one channel or plain replication, needs no per-event routing.
        if let ChannelSelector::Replicating { required, optional } = &self.selector {
            for (i, &idx) in required.iter().enumerate() {
                let b = if i + 1 == required.len() && optional.is_empty() {
                    return Ok(self.channels[idx].put(batch).await?);
                } else {
                    batch.clone()
                };
                self.channels[idx].put(b).await?;
            }
            self.put_optional(optional.iter().map(|&i| (i, batch.clone())))
                .await;
            return Ok(());
        }
        let mut req: Vec<Vec<Event>> = vec![Vec::new(); n];
        let mut opt: Vec<Vec<Event>> = vec![Vec::new(); n];
        for e in batch {
            let (r, o) = self.selector.select(&e);
            // The event moves into its last destination and is cloned only for the
            // others: a clone allocates a copy of every header.
            let mut dests = r
                .iter()
                .map(|&i| (false, i))
                .chain(o.iter().filter(|i| !r.contains(i)).map(|&i| (true, i)))
                .peekable();
            let mut e = Some(e);
            while let Some((optional, i)) = dests.next() {
                let copy = if dests.peek().is_some() {
                    e.clone()
                } else {
                    e.take()
                };
                if optional { &mut opt[i] } else { &mut req[i] }.extend(copy);
            }
        }
        for (i, b) in req.into_iter().enumerate() {
            if !b.is_empty() {
                self.channels[i].put(b).await?;
            }
        }
        self.put_optional(opt.into_iter().enumerate().filter(|(_, b)| !b.is_empty()))
            .await;
        Ok(())
    }

    async fn put_optional(&self, batches: impl Iterator<Item = (usize, Vec<Event>)>) {
        for (i, b) in batches {
            if let Err(e) = self.channels[i].put(b).await {
                tracing::debug!(channel = self.channels[i].name(), error = %e, "put into optional channel failed; ignored");
            }
        }
    }
}
