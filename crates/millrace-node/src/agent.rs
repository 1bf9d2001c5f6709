//! Building and running one agent.

use crate::monitor::{MetricsRegistry, MonitorServer};
use crate::registry::{resolve_or_report, ComponentType};
use crate::runner::{GroupRunner, Policy, Processor, SinkFactory, SinkSlot};
use millrace_config::{AgentConfig, SinkGroupConfig};
use millrace_core::counters::{inc, SinkCounters, SourceCounters};
use millrace_core::{
    CancellationToken, Channel, ChannelProcessor, Diagnostic, Interceptor, Props, Source,
    SourceContext,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

type SourceFactory = Arc<dyn Fn() -> Option<Box<dyn Source>> + Send + Sync>;

struct SourcePlan {
    name: String,
    factory: SourceFactory,
    processor: Arc<ChannelProcessor>,
    counters: Arc<SourceCounters>,
}

struct GroupPlan {
    name: String,
    slots: Vec<SinkSlot>,
    policy: Policy,
}

/// An agent built from its configuration, not started yet.
pub struct Agent {
    pub name: String,
    channels: Vec<(String, Arc<dyn Channel>)>,
    sources: Vec<SourcePlan>,
    groups: Vec<GroupPlan>,
    registry: Arc<MetricsRegistry>,
}

/// Keys under which sinks and sources spell their batch size.
const BATCH_KEYS: &[&str] = &[
    "batchSize",
    "batch-size",
    "sink.batchSize",
    "hdfs.batchSize",
    "flumeBatchSize",
];

fn batch_line(props: &Props) -> usize {
    BATCH_KEYS
        .iter()
        .find(|k| props.has(k))
        .map(|k| props.line_of(k))
        .unwrap_or(props.line())
}

impl Agent {
    /// Builds every component and checks the agent as a whole. Nothing is started,
    /// bound or created on disk. Returns the agent only when there is no error; the
    /// diagnostics (errors and warnings) come back either way, sorted by line.
    pub fn build(cfg: &AgentConfig) -> (Option<Agent>, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let mut registry = MetricsRegistry::default();
        let mut ok = true;

        let mut channels: HashMap<String, Arc<dyn Channel>> = HashMap::new();
        let mut channel_list = Vec::new();
        for c in &cfg.channels {
            let p = &c.props;
            let built = resolve_or_report(ComponentType::Channel, &c.type_name, p, "type")
                .and_then(|t| millrace_channels::build(t, &c.name, p));
            diags.extend(p.finish());
            match built {
                Some(ch) => {
                    registry.add(&c.name, &c.type_name, ch.counters().clone());
                    channels.insert(c.name.clone(), ch.clone());
                    channel_list.push((c.name.clone(), ch));
                }
                None => ok = false,
            }
        }

        let mut sources = Vec::new();
        for s in &cfg.sources {
            let c = &s.component;
            let p = &c.props;
            let ty = resolve_or_report(ComponentType::Source, &c.type_name, p, "type");
            let source = ty.and_then(|t| millrace_sources::build(t, p));
            let mut interceptors: Vec<Box<dyn Interceptor>> = Vec::new();
            let mut factories_ok = true;
            for i in &s.interceptors {
                let built =
                    resolve_or_report(ComponentType::Interceptor, &i.type_name, &i.props, "type")
                        .and_then(|t| millrace_interceptors::build(t, &i.props));
                match built {
                    Some(b) => interceptors.push(b),
                    None => factories_ok = false,
                }
            }
            let selector = crate::selector::build(&s.selector, &s.channels);
            let chans: Option<Vec<Arc<dyn Channel>>> = s
                .channels
                .iter()
                .map(|n| channels.get(n).cloned())
                .collect();
            if let (Some(src), Some(chans)) = (&source, &chans) {
                if let Some(b) = src.batch_size() {
                    for ch in chans {
                        if b > ch.transaction_capacity() {
                            diags.push(Diagnostic::error(
                                p.file(),
                                batch_line(p),
                                format!(
                                    "source `{}` puts batches of {b} events but channel `{}` has transactionCapacity {}; lower the source's batch size or raise the channel's transactionCapacity",
                                    c.name,
                                    ch.name(),
                                    ch.transaction_capacity()
                                ),
                            ));
                            factories_ok = false;
                        }
                    }
                }
            }
            diags.extend(p.finish());
            match (ty, source, selector, chans, factories_ok) {
                (Some(ty), Some(_), Some(selector), Some(chans), true) => {
                    let props = p.clone();
                    let factory: SourceFactory =
                        Arc::new(move || millrace_sources::build(ty, &props));
                    let counters = Arc::new(SourceCounters::default());
                    registry.add(&c.name, &c.type_name, counters.clone());
                    sources.push(SourcePlan {
                        name: c.name.clone(),
                        factory,
                        processor: Arc::new(ChannelProcessor::new(interceptors, selector, chans)),
                        counters,
                    });
                }
                _ => ok = false,
            }
        }

        // Sinks, by name, ready to be grouped.
        let mut slots: HashMap<String, SinkSlot> = HashMap::new();
        let mut sink_order = Vec::new();
        for s in &cfg.sinks {
            let c = &s.component;
            let p = &c.props;
            let counters = Arc::new(SinkCounters::default());
            let ty = resolve_or_report(ComponentType::Sink, &c.type_name, p, "type");
            let sink = ty.and_then(|t| millrace_sinks::build(t, &c.name, p, counters.clone()));
            let channel = channels.get(&s.channel).cloned();
            if let (Some(sink), Some(ch)) = (&sink, &channel) {
                if sink.batch_size() > ch.transaction_capacity() {
                    diags.push(Diagnostic::error(
                        p.file(),
                        batch_line(p),
                        format!(
                            "sink `{}` takes batches of {} events but channel `{}` has transactionCapacity {}; lower the sink's batch size or raise the channel's transactionCapacity",
                            c.name,
                            sink.batch_size(),
                            ch.name(),
                            ch.transaction_capacity()
                        ),
                    ));
                    ok = false;
                }
            }
            diags.extend(p.finish());
            match (ty, sink, channel) {
                (Some(ty), Some(_), Some(channel)) => {
                    let props = p.clone();
                    let name = c.name.clone();
                    let fc = counters.clone();
                    let factory: SinkFactory =
                        Arc::new(move || millrace_sinks::build(ty, &name, &props, fc.clone()));
                    registry.add(&c.name, &c.type_name, counters.clone());
                    sink_order.push(c.name.clone());
                    slots.insert(
                        c.name.clone(),
                        SinkSlot {
                            name: c.name.clone(),
                            factory,
                            channel,
                            counters,
                        },
                    );
                }
                _ => ok = false,
            }
        }

        let mut groups = Vec::new();
        for g in &cfg.sinkgroups {
            let policy = build_policy(g);
            diags.extend(g.props.finish());
            let members: Vec<SinkSlot> = g.sinks.iter().filter_map(|s| slots.remove(s)).collect();
            match policy {
                Some(policy) if members.len() == g.sinks.len() => {
                    let policy = match policy {
                        PolicySpec::Ready(p) => p,
                        PolicySpec::Failover {
                            priorities,
                            max_penalty,
                        } => Policy::Failover {
                            priorities: g
                                .sinks
                                .iter()
                                .map(|s| priorities.get(s).copied().unwrap_or(0))
                                .collect(),
                            max_penalty,
                        },
                    };
                    groups.push(GroupPlan {
                        name: g.name.clone(),
                        slots: members,
                        policy,
                    });
                }
                _ => ok = false,
            }
        }
        for name in sink_order {
            if let Some(slot) = slots.remove(&name) {
                groups.push(GroupPlan {
                    name: name.clone(),
                    slots: vec![slot],
                    policy: Policy::Default,
                });
            }
        }

        millrace_core::diag::sort(&mut diags);
        if diags.iter().any(Diagnostic::is_error) {
            ok = false;
        }
        let agent = ok.then(|| Agent {
            name: cfg.name.clone(),
            channels: channel_list,
            sources,
            groups,
            registry: Arc::new(registry),
        });
        (agent, diags)
    }

    pub fn metrics(&self) -> Arc<MetricsRegistry> {
        self.registry.clone()
    }

    /// Starts sink runners, then sources, then (when `monitor` is set) the monitoring
    /// server. Channels need no start.
    pub async fn start(self, monitor: Option<SocketAddr>) -> std::io::Result<RunningAgent> {
        for (_, ch) in &self.channels {
            ch.counters().lifecycle.started();
        }
        let sink_stop = CancellationToken::new();
        let mut sink_tasks = Vec::new();
        for g in self.groups {
            let n = g.slots.len();
            let runner = GroupRunner {
                group: g.name,
                slots: g.slots,
                processor: Processor::new(g.policy, n),
            };
            let stop = sink_stop.clone();
            sink_tasks.push(tokio::spawn(runner.run(stop, DRAIN_TIMEOUT)));
        }
        let source_stop = CancellationToken::new();
        let mut source_tasks = Vec::new();
        for s in self.sources {
            source_tasks.push(tokio::spawn(supervise_source(s, source_stop.clone())));
        }
        let monitor = match monitor {
            Some(addr) => Some(MonitorServer::start(addr, self.registry.clone()).await?),
            None => None,
        };
        tracing::info!(agent = %self.name, "agent started");
        Ok(RunningAgent {
            name: self.name,
            channels: self.channels,
            source_stop,
            source_tasks,
            sink_stop,
            sink_tasks,
            monitor,
            registry: self.registry,
        })
    }
}

/// How long sinks keep draining channels at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

enum PolicySpec {
    Ready(Policy),
    Failover {
        priorities: HashMap<String, i64>,
        max_penalty: Duration,
    },
}

fn build_policy(g: &SinkGroupConfig) -> Option<PolicySpec> {
    let p = &g.processor;
    let ty = p.string("type", "default");
    match ty.to_ascii_lowercase().as_str() {
        "default" | "org.apache.flume.sink.defaultsinkprocessor" => {
            if g.sinks.len() > 1 {
                p.error_at(
                    "type",
                    format!(
                        "sink group `{}` has {} sinks but the default processor drives exactly one; set `{}` to failover or load_balance",
                        g.name,
                        g.sinks.len(),
                        p.full_key("type")
                    ),
                );
                return None;
            }
            Some(PolicySpec::Ready(Policy::Default))
        }
        "failover" | "org.apache.flume.sink.failoversinkprocessor" => {
            let mut priorities = HashMap::new();
            for (sink, v) in p.with_prefix("priority.") {
                match v.value.parse::<i64>() {
                    Ok(n) => {
                        priorities.insert(sink, n);
                    }
                    Err(_) => p.error_at(
                        &format!("priority.{sink}"),
                        format!(
                            "`{}` = `{}` is not a number; use a whole number (higher wins)",
                            p.full_key(&format!("priority.{sink}")),
                            v.value
                        ),
                    ),
                }
            }
            let max_penalty = p.millis("maxpenalty", 30_000);
            (!p.has_errors()).then_some(PolicySpec::Failover {
                priorities,
                max_penalty,
            })
        }
        "load_balance" | "org.apache.flume.sink.loadbalancingsinkprocessor" => {
            let backoff = p.bool("backoff", false);
            let sel = p.choice("selector", "round_robin", &["round_robin", "random"]);
            let max_timeout = p.millis("selector.maxTimeOut", 30_000);
            (!p.has_errors()).then_some(PolicySpec::Ready(Policy::LoadBalance {
                random: sel == "random",
                backoff,
                max_timeout,
            }))
        }
        _ => {
            p.error_at(
                "type",
                format!(
                    "sink processor type `{ty}` (`{}`) is not supported; use default, failover or load_balance",
                    p.full_key("type")
                ),
            );
            None
        }
    }
}

async fn supervise_source(plan: SourcePlan, stop: CancellationToken) {
    let ctx = SourceContext {
        name: plan.name.clone(),
        processor: plan.processor.clone(),
        counters: plan.counters.clone(),
        shutdown: stop.clone(),
    };
    let mut backoff = Duration::from_secs(1);
    let mut source: Option<Box<dyn Source>> = None;
    loop {
        let mut src = match source.take().or_else(|| (plan.factory)()) {
            Some(s) => s,
            None => {
                tracing::error!(source = %plan.name, "source could not be built");
                return;
            }
        };
        plan.counters.lifecycle.started();
        let c = ctx.clone();
        let task = tokio::spawn(async move {
            let r = src.run(&c).await;
            (src, r)
        });
        match task.await {
            Ok((_, Ok(()))) => break,
            Ok((src, Err(e))) => {
                tracing::error!(source = %plan.name, error = %e, retry_in = ?backoff, "source failed; restarting");
                inc(&plan.counters.generic_processing_fail);
                source = Some(src);
            }
            Err(e) => {
                tracing::error!(source = %plan.name, error = %e, retry_in = ?backoff, "source panicked; rebuilding it");
                inc(&plan.counters.generic_processing_fail);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    plan.counters.lifecycle.stopped();
}

/// A started agent.
pub struct RunningAgent {
    pub name: String,
    channels: Vec<(String, Arc<dyn Channel>)>,
    source_stop: CancellationToken,
    source_tasks: Vec<JoinHandle<()>>,
    sink_stop: CancellationToken,
    sink_tasks: Vec<JoinHandle<()>>,
    monitor: Option<MonitorServer>,
    registry: Arc<MetricsRegistry>,
}

impl RunningAgent {
    pub fn metrics(&self) -> Arc<MetricsRegistry> {
        self.registry.clone()
    }

    pub fn monitor_addr(&self) -> Option<SocketAddr> {
        self.monitor.as_ref().map(|m| m.addr)
    }

    /// Stops sources, lets sinks drain the channels (up to 30 s), then closes the
    /// channels and the monitoring server.
    pub async fn stop(self) {
        tracing::info!(agent = %self.name, "stopping sources");
        self.source_stop.cancel();
        for t in self.source_tasks {
            let _ = t.await;
        }
        tracing::info!(agent = %self.name, "draining channels into sinks");
        self.sink_stop.cancel();
        for t in self.sink_tasks {
            let _ = t.await;
        }
        for (name, ch) in &self.channels {
            ch.close().await;
            ch.counters().lifecycle.stopped();
            let left = ch.counters().channel_size();
            if left > 0 {
                if ch.is_durable() {
                    tracing::info!(channel = %name, events = left, "events stay in the channel for the next start");
                } else {
                    tracing::warn!(channel = %name, events = left, "events left in a memory channel are lost at exit");
                }
            }
        }
        if let Some(m) = self.monitor {
            m.stop();
        }
        tracing::info!(agent = %self.name, "agent stopped");
    }
}
