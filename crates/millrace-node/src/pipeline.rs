//! Wiring an agent in code, without a properties file.
//!
//! [`Pipeline`] takes component instances (millrace's own, built from their typed
//! configurations, or your implementations of [`Source`], [`Sink`], [`Interceptor`]
//! and [`Channel`]) and produces the same [`Agent`] that [`Agent::build`] makes from a
//! Flume file: it starts, is supervised, drains on stop and reports its counters the
//! same way.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
//! use millrace_node::Pipeline;
//! use millrace_sinks::logger::{LoggerConfig, LoggerSink};
//! use millrace_sources::seq::{SeqConfig, SeqSource};
//! use std::time::Duration;
//!
//! let memory = MemoryChannelConfig {
//!     capacity: 1000,
//!     transaction_capacity: 100,
//!     keep_alive: Duration::from_secs(3),
//!     byte_capacity: None,
//! };
//! let agent = Pipeline::new("a1")
//!     .channel("c1", MemoryChannel::new("c1", memory))
//!     .source("r1", SeqSource::new(SeqConfig { total_events: 10, batch_size: 10 }), &["c1"])
//!     .sink("k1", LoggerSink::new("k1", LoggerConfig { max_bytes_to_log: 16, batch_size: 1 }), "c1")
//!     .start()
//!     .await?;
//! tokio::time::sleep(Duration::from_secs(1)).await;
//! agent.stop().await;
//! # Ok(())
//! # }
//! ```

use crate::agent::{ChannelPlan, GroupPlan, SourceFactory, SourcePlan};
use crate::runner::{Policy, SinkFactory, SinkSlot};
use crate::{Agent, Extensions, RunningAgent};
use async_trait::async_trait;
use millrace_core::counters::SinkCounters;
use millrace_core::{
    Channel, ChannelProcessor, ChannelSelector, Event, Interceptor, Sink, SinkError, Source,
    SourceContext, SourceError,
};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What is wrong with a pipeline, found by [`Pipeline::build`].
#[derive(Debug)]
pub enum PipelineError {
    /// Two components of one kind share a name.
    DuplicateName { kind: &'static str, name: String },
    /// A source or sink names a channel that was not added.
    UnknownChannel { component: String, channel: String },
    /// An interceptor was added for a source that was not added.
    UnknownSource { name: String },
    /// A source lists no channel.
    NoChannels { source: String },
    /// A source puts, or a sink takes, more events at once than a channel's
    /// transaction holds.
    BatchTooLarge {
        component: String,
        batch: usize,
        channel: String,
        capacity: usize,
    },
    /// The agent did not start (a channel could not open, the monitor port is taken).
    Start(std::io::Error),
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::DuplicateName { kind, name } => {
                write!(f, "two {kind}s are named `{name}`; give each its own name")
            }
            PipelineError::UnknownChannel { component, channel } => write!(
                f,
                "`{component}` names channel `{channel}`, which was not added; add it with Pipeline::channel first"
            ),
            PipelineError::UnknownSource { name } => write!(
                f,
                "an interceptor is added to source `{name}`, which was not added; add the source first"
            ),
            PipelineError::NoChannels { source } => {
                write!(f, "source `{source}` lists no channel; name one or more")
            }
            PipelineError::BatchTooLarge {
                component,
                batch,
                channel,
                capacity,
            } => write!(
                f,
                "`{component}` moves batches of {batch} events but channel `{channel}` has transactionCapacity {capacity}; lower the batch size or raise the channel's transaction capacity"
            ),
            PipelineError::Start(e) => write!(f, "the agent did not start: {e}"),
        }
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PipelineError::Start(e) => Some(e),
            _ => None,
        }
    }
}

struct SourceSpec {
    name: String,
    type_name: String,
    source: Box<dyn Source>,
    interceptors: Vec<Box<dyn Interceptor>>,
    channels: Vec<String>,
}

struct SinkSpec {
    name: String,
    type_name: String,
    sink: Box<dyn Sink>,
    channel: String,
    counters: Arc<SinkCounters>,
}

/// An agent assembled from component instances. Components run in the order of a
/// Flume agent: channels open, then sinks start, then sources; [`RunningAgent::stop`]
/// stops the sources, lets the sinks drain the channels and closes them.
///
/// Each source puts into every channel it lists (Flume's replicating selector); each
/// sink takes from one channel, on its own runner.
pub struct Pipeline {
    name: String,
    channels: Vec<(String, String, Arc<dyn Channel>)>,
    sources: Vec<SourceSpec>,
    sinks: Vec<SinkSpec>,
    /// Found while adding; reported by [`Pipeline::build`].
    problem: Option<PipelineError>,
}

/// The last part of a type's path, for the `Type` the metrics show.
fn short_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_string()
}

impl Pipeline {
    /// An empty pipeline for the agent `name` (the name its metrics carry).
    pub fn new(name: impl Into<String>) -> Self {
        Pipeline {
            name: name.into(),
            channels: Vec::new(),
            sources: Vec::new(),
            sinks: Vec::new(),
            problem: None,
        }
    }

    fn fail(&mut self, e: PipelineError) {
        self.problem.get_or_insert(e);
    }

    /// Adds a channel. The channel opens when the agent starts.
    pub fn channel<C: Channel + 'static>(mut self, name: &str, channel: C) -> Self {
        if self.channels.iter().any(|(n, _, _)| n == name) {
            self.fail(PipelineError::DuplicateName {
                kind: "channel",
                name: name.into(),
            });
        }
        self.channels
            .push((name.into(), short_type_name::<C>(), Arc::new(channel)));
        self
    }

    /// Adds a source that puts into each of `channels`.
    pub fn source<S: Source + 'static>(mut self, name: &str, source: S, channels: &[&str]) -> Self {
        if self.sources.iter().any(|s| s.name == name) {
            self.fail(PipelineError::DuplicateName {
                kind: "source",
                name: name.into(),
            });
        }
        self.sources.push(SourceSpec {
            name: name.into(),
            type_name: short_type_name::<S>(),
            source: Box::new(source),
            interceptors: Vec::new(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
        });
        self
    }

    /// Adds an interceptor to the source `source`; interceptors run in the order added.
    pub fn interceptor(mut self, source: &str, interceptor: impl Interceptor + 'static) -> Self {
        match self.sources.iter_mut().find(|s| s.name == source) {
            Some(s) => s.interceptors.push(Box::new(interceptor)),
            None => self.fail(PipelineError::UnknownSource {
                name: source.into(),
            }),
        }
        self
    }

    /// Adds a sink that takes from `channel`. Its batch and drain counters appear in
    /// the agent's metrics under `name`.
    pub fn sink<S: Sink + 'static>(self, name: &str, sink: S, channel: &str) -> Self {
        self.sink_with_counters(name, sink, channel, Arc::default())
    }

    /// [`Pipeline::sink`] for a sink that keeps counters of its own (millrace's sinks
    /// take them at construction, as `KafkaSink::new(name, config, counters)`): pass
    /// the same `counters` here so the metrics show one set for the sink.
    pub fn sink_with_counters<S: Sink + 'static>(
        mut self,
        name: &str,
        sink: S,
        channel: &str,
        counters: Arc<SinkCounters>,
    ) -> Self {
        if self.sinks.iter().any(|s| s.name == name) {
            self.fail(PipelineError::DuplicateName {
                kind: "sink",
                name: name.into(),
            });
        }
        self.sinks.push(SinkSpec {
            name: name.into(),
            type_name: short_type_name::<S>(),
            sink: Box::new(sink),
            channel: channel.into(),
            counters,
        });
        self
    }

    /// Checks the pipeline (every named channel exists, batches fit the channels'
    /// transactions) and makes the agent, not started yet.
    pub fn build(mut self) -> Result<Agent, PipelineError> {
        if let Some(e) = self.problem.take() {
            return Err(e);
        }
        let types: BTreeMap<String, String> = self
            .channels
            .iter()
            .map(|(n, t, _)| (n.clone(), t.clone()))
            .collect();
        let channels: BTreeMap<String, Arc<dyn Channel>> =
            self.channels.into_iter().map(|(n, _, c)| (n, c)).collect();
        let channel = |component: &str, name: &str| {
            channels
                .get(name)
                .cloned()
                .ok_or_else(|| PipelineError::UnknownChannel {
                    component: component.into(),
                    channel: name.into(),
                })
        };
        let fits = |component: &str, batch: usize, ch: &Arc<dyn Channel>| {
            if batch > ch.transaction_capacity() {
                return Err(PipelineError::BatchTooLarge {
                    component: component.into(),
                    batch,
                    channel: ch.name().into(),
                    capacity: ch.transaction_capacity(),
                });
            }
            Ok(())
        };

        let mut sources = Vec::new();
        for s in self.sources {
            if s.channels.is_empty() {
                return Err(PipelineError::NoChannels { source: s.name });
            }
            let chans = s
                .channels
                .iter()
                .map(|c| channel(&s.name, c))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(batch) = s.source.batch_size() {
                for ch in &chans {
                    fits(&s.name, batch, ch)?;
                }
            }
            let selector = ChannelSelector::Replicating {
                required: (0..chans.len()).collect(),
                optional: Vec::new(),
            };
            sources.push(SourcePlan {
                name: s.name,
                type_name: s.type_name,
                fingerprint: Vec::new(),
                factory: lend_source(s.source),
                processor: Arc::new(ChannelProcessor::new(s.interceptors, selector, chans)),
                counters: Arc::default(),
            });
        }

        let mut groups = Vec::new();
        for s in self.sinks {
            let ch = channel(&s.name, &s.channel)?;
            fits(&s.name, s.sink.batch_size(), &ch)?;
            groups.push(GroupPlan {
                name: s.name.clone(),
                fingerprint: Vec::new(),
                slots: vec![SinkSlot {
                    name: s.name,
                    factory: lend_sink(s.sink),
                    channel: ch,
                    counters: s.counters,
                }],
                sink_types: vec![s.type_name],
                policy: Policy::Default,
            });
        }

        let channels = channels
            .into_iter()
            .map(|(name, channel)| {
                let type_name = types.get(&name).cloned().unwrap_or_default();
                (
                    name,
                    ChannelPlan {
                        type_name,
                        fingerprint: Vec::new(),
                        channel,
                    },
                )
            })
            .collect();
        Ok(Agent {
            name: self.name,
            channels,
            sources,
            groups,
            extensions: Extensions::default(),
        })
    }

    /// Builds and starts the agent, without a monitoring server.
    pub async fn start(self) -> Result<RunningAgent, PipelineError> {
        self.start_with_monitor(None).await
    }

    /// Builds and starts the agent; with `monitor`, its counters are served there as
    /// `millrace-agent` serves them (`/metrics`, `/metrics/prometheus`).
    pub async fn start_with_monitor(
        self,
        monitor: Option<SocketAddr>,
    ) -> Result<RunningAgent, PipelineError> {
        self.build()?
            .start(monitor)
            .await
            .map_err(PipelineError::Start)
    }
}

/// A component instance on loan to the runner. The runner builds a component anew
/// after a failed start or a panic; a pipeline has one instance only, so dropping the
/// loan hands the instance back for the next build instead of losing it.
struct Lent<T: ?Sized> {
    inner: Option<Box<T>>,
    home: Arc<Mutex<Option<Box<T>>>>,
}

impl<T: ?Sized> Drop for Lent<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            // A poisoned lock only means a panic elsewhere; the slot is still valid.
            *self.home.lock().unwrap_or_else(|e| e.into_inner()) = Some(inner);
        }
    }
}

impl<T: ?Sized> Lent<T> {
    fn get(&mut self) -> &mut T {
        // Set at creation and taken only in drop.
        self.inner
            .as_mut()
            .expect("a loan holds its instance until dropped")
    }

    fn get_ref(&self) -> &T {
        self.inner
            .as_ref()
            .expect("a loan holds its instance until dropped")
    }

    fn take_from(home: &Arc<Mutex<Option<Box<T>>>>) -> Option<Self> {
        let inner = home.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        Some(Lent {
            inner: Some(inner),
            home: home.clone(),
        })
    }
}

fn lend_source(source: Box<dyn Source>) -> SourceFactory {
    let home = Arc::new(Mutex::new(Some(source)));
    Arc::new(move || Lent::take_from(&home).map(|l| Box::new(l) as Box<dyn Source>))
}

fn lend_sink(sink: Box<dyn Sink>) -> SinkFactory {
    let home = Arc::new(Mutex::new(Some(sink)));
    Arc::new(move || Lent::take_from(&home).map(|l| Box::new(l) as Box<dyn Sink>))
}

#[async_trait]
impl Source for Lent<dyn Source> {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        self.get().run(ctx).await
    }

    fn batch_size(&self) -> Option<usize> {
        self.get_ref().batch_size()
    }
}

#[async_trait]
impl Sink for Lent<dyn Sink> {
    async fn start(&mut self) -> Result<(), SinkError> {
        self.get().start().await
    }

    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        self.get().deliver(batch).await
    }

    async fn idle(&mut self) -> Result<(), SinkError> {
        self.get().idle().await
    }

    async fn stop(&mut self) -> Result<(), SinkError> {
        self.get().stop().await
    }

    fn batch_size(&self) -> usize {
        self.get_ref().batch_size()
    }

    fn counts_drains(&self) -> bool {
        self.get_ref().counts_drains()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
    use millrace_sources::seq::{SeqConfig, SeqSource};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn memory(name: &str, tx: usize) -> MemoryChannel {
        MemoryChannel::new(
            name,
            MemoryChannelConfig {
                capacity: 1000,
                transaction_capacity: tx,
                keep_alive: Duration::from_secs(1),
                byte_capacity: None,
            },
        )
    }

    struct Keep;

    impl Interceptor for Keep {
        fn intercept(&self, batch: Vec<Event>) -> Vec<Event> {
            batch
        }
    }

    /// Counts events; refuses to start the first `refuse` times.
    struct Counting {
        seen: Arc<AtomicUsize>,
        refuse: usize,
    }

    #[async_trait]
    impl Sink for Counting {
        async fn start(&mut self) -> Result<(), SinkError> {
            if self.refuse > 0 {
                self.refuse -= 1;
                return Err(SinkError::Delivery("not yet".into()));
            }
            Ok(())
        }
        async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
            self.seen.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
        fn batch_size(&self) -> usize {
            10
        }
    }

    fn seq(total: u64, batch: usize) -> SeqSource {
        SeqSource::new(SeqConfig {
            total_events: total,
            batch_size: batch,
        })
    }

    #[tokio::test]
    async fn events_reach_a_sink_that_failed_to_start_at_first() {
        let seen = Arc::new(AtomicUsize::new(0));
        let sink = Counting {
            seen: seen.clone(),
            refuse: 2,
        };
        let agent = Pipeline::new("a1")
            .channel("c1", memory("c1", 100))
            .source("r1", seq(50, 10), &["c1"])
            .sink("k1", sink, "c1")
            .start()
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while seen.load(Ordering::SeqCst) < 50 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        agent.stop().await;
        assert_eq!(seen.load(Ordering::SeqCst), 50);
    }

    #[test]
    fn mistakes_are_named() {
        let e = Pipeline::new("a1")
            .channel("c1", memory("c1", 100))
            .source("r1", seq(1, 1), &["c2"])
            .build()
            .err()
            .unwrap();
        assert!(e.to_string().contains("channel `c2`"), "{e}");
        let e = Pipeline::new("a1")
            .channel("c1", memory("c1", 5))
            .source("r1", seq(1, 10), &["c1"])
            .build()
            .err()
            .unwrap();
        assert!(e.to_string().contains("transactionCapacity 5"), "{e}");
        let e = Pipeline::new("a1")
            .interceptor("r9", Keep)
            .build()
            .err()
            .unwrap();
        assert!(e.to_string().contains("source `r9`"), "{e}");
    }
}
