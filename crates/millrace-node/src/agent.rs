//! Building, running and reconfiguring one agent.

use crate::monitor::{MetricsRegistry, MonitorServer};
use crate::registry::{
    resolve_or_report, resolve_or_report_with, ComponentType, ExtSinkFactory, Extensions,
};
use crate::runner::{GroupRunner, Policy, Processor, SinkFactory, SinkSlot};
use millrace_config::{AgentConfig, SinkGroupConfig};
use millrace_core::counters::{inc, now_millis, AgentCounters, SinkCounters, SourceCounters};
use millrace_core::{
    CancellationToken, Channel, ChannelProcessor, Diagnostic, Interceptor, Props, Source,
    SourceContext,
};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) type SourceFactory = Arc<dyn Fn() -> Option<Box<dyn Source>> + Send + Sync>;

/// What identifies a component's configuration: its properties and, for sources and
/// sinks, the channel instances they use. Equal fingerprints across a reload mean the
/// running component is kept as it is.
pub(crate) type Fingerprint = Vec<(String, String)>;

fn channel_id(ch: &Arc<dyn Channel>) -> String {
    format!("{:p}", Arc::as_ptr(ch) as *const ())
}

#[derive(Clone)]
pub(crate) struct ChannelPlan {
    pub(crate) type_name: String,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) channel: Arc<dyn Channel>,
}

pub(crate) struct SourcePlan {
    pub(crate) name: String,
    pub(crate) type_name: String,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) factory: SourceFactory,
    pub(crate) processor: Arc<ChannelProcessor>,
    pub(crate) counters: Arc<SourceCounters>,
}

pub(crate) struct GroupPlan {
    pub(crate) name: String,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) slots: Vec<SinkSlot>,
    pub(crate) sink_types: Vec<String>,
    pub(crate) policy: Policy,
}

/// An agent built from its configuration (or in code, with [`crate::Pipeline`]), not
/// started yet.
pub struct Agent {
    pub name: String,
    pub(crate) channels: BTreeMap<String, ChannelPlan>,
    pub(crate) sources: Vec<SourcePlan>,
    pub(crate) groups: Vec<GroupPlan>,
    pub(crate) extensions: Extensions,
}

/// Keys under which sinks and sources spell their batch size.
const BATCH_KEYS: &[&str] = &[
    "batchSize",
    "batch-size",
    "sink.batchSize",
    "hdfs.batchSize",
    "flumeBatchSize",
];

/// A component's diagnostics. When its type is unknown, its other properties cannot
/// be judged, so only errors are kept (no "unknown property" noise).
fn finish(props: &Props, type_known: bool) -> Vec<Diagnostic> {
    let mut d = props.finish();
    if !type_known {
        d.retain(Diagnostic::is_error);
    }
    d
}

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
        Agent::build_with(cfg, &Extensions::default())
    }

    /// [`Agent::build`] where the configuration may also use the component types of
    /// `extensions`; a reload of the started agent keeps accepting them.
    pub fn build_with(
        cfg: &AgentConfig,
        extensions: &Extensions,
    ) -> (Option<Agent>, Vec<Diagnostic>) {
        Agent::build_reusing(cfg, &BTreeMap::new(), extensions)
    }

    /// Builds a configuration as [`millrace_config::load`] returned it, together with
    /// its diagnostics, so that every problem is reported at once: the components are
    /// built and checked even when the configuration has structural errors (a sink
    /// naming an undefined channel, say), and the agent comes back only when no
    /// diagnostic at all is an error. The diagnostics come back sorted by line.
    pub fn build_checked(
        cfg: Option<&AgentConfig>,
        mut diags: Vec<Diagnostic>,
        extensions: &Extensions,
    ) -> (Option<Agent>, Vec<Diagnostic>) {
        let agent = cfg.and_then(|cfg| {
            let (agent, more) = Agent::build_with(cfg, extensions);
            diags.extend(more);
            agent
        });
        millrace_core::diag::sort(&mut diags);
        let agent = agent.filter(|_| !diags.iter().any(Diagnostic::is_error));
        (agent, diags)
    }

    /// [`Agent::build`], keeping each channel of `running` whose name, type and
    /// properties are unchanged, with its contents.
    fn build_reusing(
        cfg: &AgentConfig,
        running: &BTreeMap<String, ChannelPlan>,
        extensions: &Extensions,
    ) -> (Option<Agent>, Vec<Diagnostic>) {
        let ext_sink_types: Vec<&str> = extensions.sink_types().collect();
        let mut diags = Vec::new();
        let mut ok = true;

        let mut channels: BTreeMap<String, ChannelPlan> = BTreeMap::new();
        for c in &cfg.channels {
            let p = &c.props;
            let ty = resolve_or_report(ComponentType::Channel, &c.type_name, p, "type");
            let built = ty.and_then(|t| millrace_channels::build(t, &c.name, p));
            diags.extend(finish(p, ty.is_some()));
            let Some(ch) = built else {
                ok = false;
                continue;
            };
            let fingerprint = p.snapshot();
            let channel = match running.get(&c.name) {
                Some(old) if old.fingerprint == fingerprint => old.channel.clone(),
                _ => ch,
            };
            channels.insert(
                c.name.clone(),
                ChannelPlan {
                    type_name: c.type_name.clone(),
                    fingerprint,
                    channel,
                },
            );
        }

        let mut sources = Vec::new();
        for s in &cfg.sources {
            let c = &s.component;
            let p = &c.props;
            let ty = resolve_or_report(ComponentType::Source, &c.type_name, p, "type");
            let source = ty.and_then(|t| millrace_sources::build(t, p));
            let mut interceptors: Vec<Box<dyn Interceptor>> = Vec::new();
            let mut parts_ok = true;
            for i in &s.interceptors {
                if i.type_name.is_empty() {
                    // Reported with the configuration's structure.
                    parts_ok = false;
                    continue;
                }
                let ty =
                    resolve_or_report(ComponentType::Interceptor, &i.type_name, &i.props, "type");
                if ty.is_none() {
                    // An unknown type is the one mistake: its keys are not also unknown.
                    i.props.with_prefix("");
                }
                let built = ty.and_then(|t| millrace_interceptors::build(t, &i.props));
                match built {
                    Some(b) => interceptors.push(b),
                    None => parts_ok = false,
                }
            }
            let selector = crate::selector::build(&s.selector, &s.channels);
            // No channel at all, or one that is not defined, was reported with the
            // configuration's structure; such a source is built only for its own checks.
            let chans: Option<Vec<Arc<dyn Channel>>> = s
                .channels
                .iter()
                .map(|n| channels.get(n).map(|c| c.channel.clone()))
                .collect::<Option<Vec<_>>>()
                .filter(|c| !c.is_empty());
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
                            parts_ok = false;
                        }
                    }
                }
            }
            diags.extend(finish(p, ty.is_some()));
            match (ty, source, selector, chans, parts_ok) {
                (Some(ty), Some(_), Some(selector), Some(chans), true) => {
                    let mut fingerprint = p.snapshot();
                    fingerprint.extend(
                        chans
                            .iter()
                            .map(|c| ("@channel".to_string(), channel_id(c))),
                    );
                    let props = p.clone();
                    let factory: SourceFactory =
                        Arc::new(move || millrace_sources::build(ty, &props));
                    sources.push(SourcePlan {
                        name: c.name.clone(),
                        type_name: c.type_name.clone(),
                        fingerprint,
                        factory,
                        processor: Arc::new(ChannelProcessor::new(interceptors, selector, chans)),
                        counters: Arc::new(SourceCounters::default()),
                    });
                }
                _ => ok = false,
            }
        }

        // Sinks, by name, ready to be grouped.
        struct BuiltSink {
            slot: SinkSlot,
            type_name: String,
            fingerprint: Fingerprint,
        }
        let mut built: HashMap<String, BuiltSink> = HashMap::new();
        let mut sink_order = Vec::new();
        for s in &cfg.sinks {
            let c = &s.component;
            let p = &c.props;
            let counters = Arc::new(SinkCounters::default());
            let ty: Option<ExtSinkFactory> = match extensions.sink(&c.type_name) {
                Some(f) => Some(f.clone()),
                None => resolve_or_report_with(
                    ComponentType::Sink,
                    &c.type_name,
                    p,
                    "type",
                    &ext_sink_types,
                )
                .map(|t| -> ExtSinkFactory {
                    Arc::new(move |name: &str, props: &Props, counters| {
                        millrace_sinks::build(t, name, props, counters)
                    })
                }),
            };
            let sink = ty.as_ref().and_then(|b| b(&c.name, p, counters.clone()));
            let channel = channels.get(&s.channel).map(|c| c.channel.clone());
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
            diags.extend(finish(p, ty.is_some()));
            match (ty, sink, channel) {
                (Some(build), Some(_), Some(channel)) => {
                    let props = p.clone();
                    let name = c.name.clone();
                    let fc = counters.clone();
                    let factory: SinkFactory = Arc::new(move || build(&name, &props, fc.clone()));
                    let mut fingerprint: Fingerprint = p
                        .snapshot()
                        .into_iter()
                        .map(|(k, v)| (format!("{}.{k}", c.name), v))
                        .collect();
                    fingerprint.push(("@channel".into(), channel_id(&channel)));
                    sink_order.push(c.name.clone());
                    built.insert(
                        c.name.clone(),
                        BuiltSink {
                            slot: SinkSlot {
                                name: c.name.clone(),
                                factory,
                                channel,
                                counters,
                            },
                            type_name: c.type_name.clone(),
                            fingerprint,
                        },
                    );
                }
                _ => ok = false,
            }
        }

        let mut groups = Vec::new();
        let mut take_group = |name: String,
                              policy: Policy,
                              members: Vec<BuiltSink>,
                              mut fingerprint: Fingerprint| {
            let mut slots = Vec::new();
            let mut sink_types = Vec::new();
            for m in members {
                fingerprint.extend(m.fingerprint);
                sink_types.push(m.type_name);
                slots.push(m.slot);
            }
            groups.push(GroupPlan {
                name,
                fingerprint,
                slots,
                sink_types,
                policy,
            });
        };
        for g in &cfg.sinkgroups {
            let policy = build_policy(g);
            diags.extend(g.props.finish());
            let members: Vec<BuiltSink> = g.sinks.iter().filter_map(|s| built.remove(s)).collect();
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
                    take_group(g.name.clone(), policy, members, g.props.snapshot());
                }
                _ => ok = false,
            }
        }
        for name in sink_order {
            if let Some(b) = built.remove(&name) {
                take_group(name, Policy::Default, vec![b], Vec::new());
            }
        }

        millrace_core::diag::sort(&mut diags);
        if diags.iter().any(Diagnostic::is_error) {
            ok = false;
        }
        let agent = ok.then(|| Agent {
            name: cfg.name.clone(),
            channels,
            sources,
            groups,
            extensions: extensions.clone(),
        });
        (agent, diags)
    }

    /// Starts (when `monitor` is set) the monitoring server, then sink runners, then
    /// sources. Channels need no start.
    pub async fn start(self, monitor: Option<SocketAddr>) -> std::io::Result<RunningAgent> {
        let mut running = RunningAgent {
            name: self.name.clone(),
            channels: BTreeMap::new(),
            sources: BTreeMap::new(),
            groups: BTreeMap::new(),
            monitor: None,
            registry: Arc::new(RwLock::new(Arc::new(MetricsRegistry::default()))),
            counters: Arc::new(AgentCounters::default()),
            extensions: self.extensions.clone(),
        };
        // The monitoring port is bound first: when it is taken, nothing has started
        // (no source listening, no event accepted) and the error names it.
        if let Some(addr) = monitor {
            let server = MonitorServer::start(addr, running.registry.clone())
                .await
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "cannot serve monitoring on {addr}: {e}; free the port or change flume.monitoring.port"
                        ),
                    )
                })?;
            running.monitor = Some(server);
        }
        running.counters.lifecycle.started();
        let errors = running.apply(self).await;
        if !errors.is_empty() {
            running.stop().await;
            return Err(std::io::Error::other(errors.join("; ")));
        }
        tracing::info!(agent = %running.name, "agent started");
        Ok(running)
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

/// Reads a sink group's `processor.*` properties as an agent build does, recording the
/// same problems; false when they are not valid. For the property reference.
pub(crate) fn check_processor(g: &SinkGroupConfig) -> bool {
    build_policy(g).is_some()
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

struct RunningSource {
    fingerprint: Fingerprint,
    type_name: String,
    counters: Arc<SourceCounters>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

struct RunningGroup {
    fingerprint: Fingerprint,
    channels: Vec<String>,
    sinks: Vec<(String, String, Arc<SinkCounters>)>,
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
}

/// A started agent. [`RunningAgent::reload`] moves it to a new configuration by
/// difference.
pub struct RunningAgent {
    pub name: String,
    channels: BTreeMap<String, ChannelPlan>,
    sources: BTreeMap<String, RunningSource>,
    groups: BTreeMap<String, RunningGroup>,
    monitor: Option<MonitorServer>,
    registry: Arc<RwLock<Arc<MetricsRegistry>>>,
    counters: Arc<AgentCounters>,
    extensions: Extensions,
}

impl RunningAgent {
    /// The counters of every running component.
    pub fn metrics(&self) -> Arc<MetricsRegistry> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn monitor_addr(&self) -> Option<SocketAddr> {
        self.monitor.as_ref().map(|m| m.addr)
    }

    /// Moves the agent to `cfg`. An invalid configuration changes nothing and comes
    /// back as its diagnostics. A valid one is applied by difference: components whose
    /// configuration did not change keep running; a channel whose name, type and
    /// properties are unchanged is kept with its contents, and one whose properties
    /// changed hands its events to its replacement; removed and changed sources stop
    /// first; sinks of removed channels drain them (up to 30 s) before they go.
    /// Returns the warnings of the new configuration.
    pub async fn reload(&mut self, cfg: &AgentConfig) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
        let (plan, diags) = Agent::build_reusing(cfg, &self.channels, &self.extensions);
        let Some(plan) = plan else {
            inc(&self.counters.reload_rejected);
            return Err(diags);
        };
        for e in self.apply(plan).await {
            tracing::error!("after the reload: {e}");
        }
        inc(&self.counters.reload_applied);
        self.counters
            .last_reload_time
            .store(now_millis(), Ordering::Relaxed);
        Ok(diags)
    }

    /// Counts a reload refused before it reached [`RunningAgent::reload`] (the file
    /// could not be read or did not parse).
    pub fn count_rejected_reload(&self) {
        inc(&self.counters.reload_rejected);
    }

    /// Returns what could not be started (channels that did not open).
    async fn apply(&mut self, plan: Agent) -> Vec<String> {
        let Agent {
            channels: new_channels,
            sources: new_sources,
            groups: new_groups,
            ..
        } = plan;

        // 1. Sources that are gone or changed stop first, so nothing new enters a
        //    channel that is about to change.
        let keep_source = |name: &str, fp: &Fingerprint| {
            new_sources
                .iter()
                .any(|s| s.name == name && &s.fingerprint == fp)
        };
        let stopping: Vec<String> = self
            .sources
            .iter()
            .filter(|(n, s)| !keep_source(n, &s.fingerprint))
            .map(|(n, _)| n.clone())
            .collect();
        let mut stopped = Vec::new();
        for n in stopping {
            if let Some(s) = self.sources.remove(&n) {
                tracing::info!(source = %n, "stopping source");
                s.stop.cancel();
                stopped.push(s.task);
            }
        }
        for t in stopped {
            let _ = t.await;
        }

        // 2. Sink groups that are gone or changed stop; those reading a channel that
        //    goes away drain it first.
        let keep_group = |name: &str, fp: &Fingerprint| {
            new_groups
                .iter()
                .any(|g| g.name == name && &g.fingerprint == fp)
        };
        let stopping: Vec<String> = self
            .groups
            .iter()
            .filter(|(n, g)| !keep_group(n, &g.fingerprint))
            .map(|(n, _)| n.clone())
            .collect();
        let mut stopped = Vec::new();
        for n in stopping {
            if let Some(g) = self.groups.remove(&n) {
                let drains = g.channels.iter().any(|c| !new_channels.contains_key(c));
                let drain = if drains {
                    DRAIN_TIMEOUT
                } else {
                    Duration::ZERO
                };
                tracing::info!(group = %n, drain = ?drain, "stopping sinks");
                let _ = g.stop.send(Some(drain));
                stopped.push(g.task);
            }
        }
        for t in stopped {
            let _ = t.await;
        }

        // 3. Channels that are gone are closed. A replaced memory channel hands its
        //    events over once the new sinks run; a replaced durable channel is closed
        //    first and its replacement replays the same log. New channels open.
        let mut transfers = Vec::new();
        let mut kept = std::collections::HashSet::new();
        let old_channels = std::mem::take(&mut self.channels);
        for (name, old) in old_channels {
            match new_channels.get(&name) {
                Some(new) if Arc::ptr_eq(&new.channel, &old.channel) => {
                    kept.insert(name);
                }
                Some(_) if old.channel.is_durable() => close_channel(&name, &old.channel).await,
                Some(new) => transfers.push((name, old.channel, new.channel.clone())),
                None => close_channel(&name, &old.channel).await,
            }
        }
        let mut errors = Vec::new();
        for (name, plan) in &new_channels {
            if kept.contains(name) {
                continue;
            }
            match plan.channel.open().await {
                Ok(()) => plan.channel.counters().lifecycle.started(),
                Err(e) => {
                    tracing::error!(channel = %name, error = %e, "channel cannot open");
                    errors.push(e.to_string());
                }
            }
        }
        self.channels = new_channels;
        // At the first start nothing runs yet: a channel that cannot open (a file
        // channel another agent holds) fails the start at once, before any sink waits
        // on it or any source accepts an event it could not keep.
        if !errors.is_empty() && self.groups.is_empty() && self.sources.is_empty() {
            return errors;
        }

        // 4. New and changed sink groups start, then replaced channels move their
        //    events, then new and changed sources start.
        for g in new_groups {
            if self.groups.contains_key(&g.name) {
                continue;
            }
            let n = g.slots.len();
            let channels = g
                .slots
                .iter()
                .map(|s| s.channel.name().to_string())
                .collect();
            let sinks = g
                .slots
                .iter()
                .zip(g.sink_types)
                .map(|(s, t)| (s.name.clone(), t, s.counters.clone()))
                .collect();
            let runner = GroupRunner {
                group: g.name.clone(),
                slots: g.slots,
                processor: Processor::new(g.policy, n),
            };
            let (stop, rx) = watch::channel(None);
            let task = tokio::spawn(runner.run(rx));
            self.groups.insert(
                g.name,
                RunningGroup {
                    fingerprint: g.fingerprint,
                    channels,
                    sinks,
                    stop,
                    task,
                },
            );
        }
        for (name, from, to) in transfers {
            transfer(&name, &from, &to).await;
            close_channel(&name, &from).await;
        }
        for s in new_sources {
            if self.sources.contains_key(&s.name) {
                continue;
            }
            let stop = CancellationToken::new();
            let name = s.name.clone();
            let running = RunningSource {
                fingerprint: s.fingerprint.clone(),
                type_name: s.type_name.clone(),
                counters: s.counters.clone(),
                stop: stop.clone(),
                task: tokio::spawn(supervise_source(s, stop)),
            };
            self.sources.insert(name, running);
        }
        self.publish_metrics();
        errors
    }

    fn publish_metrics(&self) {
        let mut r = MetricsRegistry::default();
        r.add(&self.name, "agent", self.counters.clone());
        for (name, s) in &self.sources {
            r.add(name, &s.type_name, s.counters.clone());
        }
        for (name, c) in &self.channels {
            r.add(name, &c.type_name, c.channel.counters().clone());
        }
        for g in self.groups.values() {
            for (name, ty, counters) in &g.sinks {
                r.add(name, ty, counters.clone());
            }
        }
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(r);
    }

    /// Stops sources, lets sinks drain the channels (up to 30 s), then closes the
    /// channels and the monitoring server.
    pub async fn stop(mut self) {
        tracing::info!(agent = %self.name, "stopping sources");
        for s in self.sources.values() {
            s.stop.cancel();
        }
        for (_, s) in std::mem::take(&mut self.sources) {
            let _ = s.task.await;
        }
        tracing::info!(agent = %self.name, "draining channels into sinks");
        for g in self.groups.values() {
            let _ = g.stop.send(Some(DRAIN_TIMEOUT));
        }
        for (_, g) in std::mem::take(&mut self.groups) {
            let _ = g.task.await;
        }
        for (name, c) in &self.channels {
            close_channel(name, &c.channel).await;
        }
        if let Some(m) = self.monitor.take() {
            m.stop();
        }
        self.counters.lifecycle.stopped();
        tracing::info!(agent = %self.name, "agent stopped");
    }
}

async fn close_channel(name: &str, ch: &Arc<dyn Channel>) {
    ch.close().await;
    ch.counters().lifecycle.stopped();
    let left = ch.counters().channel_size();
    let lost = ch.volatile_len().min(left);
    if lost > 0 {
        tracing::warn!(channel = %name, events = lost, "events left in memory are lost when the channel closes");
    }
    if left > lost {
        tracing::info!(channel = %name, events = left - lost, "events stay on disk for the next start");
    }
}

/// Moves every event of a replaced channel into its replacement, in order, one
/// transaction at a time: each batch is committed out of `from` only after `to`
/// accepted it, so a failure leaves it in `from` rather than losing it.
async fn transfer(name: &str, from: &Arc<dyn Channel>, to: &Arc<dyn Channel>) {
    let batch = from
        .transaction_capacity()
        .min(to.transaction_capacity())
        .max(1);
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    let mut moved = 0u64;
    loop {
        let txn = match from.take(batch, Duration::ZERO).await {
            Ok(t) if t.is_empty() => break,
            Ok(t) => t,
            Err(e) => {
                tracing::error!(channel = %name, error = %e, "reading the old channel failed");
                break;
            }
        };
        match to.put(txn.events().to_vec()).await {
            Ok(()) => {
                moved += txn.len() as u64;
                if let Err(e) = txn.commit().await {
                    tracing::error!(channel = %name, error = %e, "commit on the old channel failed; events may be duplicated");
                }
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(channel = %name, error = %e, "the new channel refused events; retrying");
                txn.rollback();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                tracing::error!(channel = %name, error = %e, "the new channel kept refusing events; the rest stay in the old one");
                txn.rollback();
                break;
            }
        }
    }
    if moved > 0 {
        tracing::info!(channel = %name, events = moved, "events moved to the reconfigured channel");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `configtest` prints for `text`: each diagnostic, and whether an agent came back.
    fn check(text: &str) -> (bool, Vec<String>) {
        let (cfg, diags) = millrace_config::from_text(Arc::from("t.conf"), text, "a1");
        let (agent, diags) = Agent::build_checked(cfg.as_ref(), diags, &Extensions::default());
        (
            agent.is_some(),
            diags.iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn undefined_channel_does_not_hide_the_other_problems() {
        let text = "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
                    a1.sources.r1.type = seq\na1.sources.r1.channels = c1\n\
                    a1.channels.c1.type = memory\na1.channels.c1.capacity = notanumber\n\
                    a1.sinks.k1.type = logger\na1.sinks.k1.channel = c2\n";
        let (started, lines) = check(text);
        assert!(!started);
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(
            lines[0].starts_with("t.conf:7: error: `a1.channels.c1.capacity` = `notanumber`"),
            "{lines:#?}"
        );
        assert!(
            lines[1].starts_with("t.conf:9: error: `a1.sinks.k1.channel` names channel `c2`"),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_component_naming_an_undefined_channel_still_has_its_properties_checked() {
        let text = "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
                    a1.sources.r1.type = netcat\na1.sources.r1.bind = 127.0.0.1\n\
                    a1.sources.r1.port = notaport\na1.sources.r1.channels = c1 c2\n\
                    a1.channels.c1.type = memory\n\
                    a1.sinks.k1.type = logger\na1.sinks.k1.maxBytesToLog = lots\n\
                    a1.sinks.k1.bogus = 1\na1.sinks.k1.channel = c3\n";
        let (started, lines) = check(text);
        assert!(!started);
        // `FILE:LINE: severity: message`, without the message.
        let located: Vec<Vec<&str>> = lines
            .iter()
            .map(|l| l.splitn(3, ": ").take(2).collect())
            .collect();
        assert_eq!(
            located,
            [
                ["t.conf:6", "error"],    // port is not a number
                ["t.conf:7", "error"],    // c2 is not defined
                ["t.conf:10", "error"],   // maxBytesToLog is not a number
                ["t.conf:11", "warning"], // unknown property
                ["t.conf:12", "error"],   // c3 is not defined
            ],
            "{lines:#?}"
        );
    }

    #[test]
    fn a_logger_sink_runs_on_a_small_transaction_capacity_as_in_flume() {
        let base = "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
                    a1.sources.r1.type = seq\na1.sources.r1.channels = c1\n\
                    a1.sources.r1.batchSize = 5\n\
                    a1.channels.c1.type = memory\na1.channels.c1.transactionCapacity = 5\n\
                    a1.sinks.k1.type = logger\na1.sinks.k1.channel = c1\n";
        // Flume's logger sink takes one event per transaction: no batchSize needed.
        let (started, lines) = check(base);
        assert!(started, "{lines:#?}");
        // A batchSize it is given is the one it takes, and checked.
        let (started, lines) = check(&format!("{base}a1.sinks.k1.batchSize = 50\n"));
        assert!(!started);
        assert!(
            lines.len() == 1 && lines[0].contains("takes batches of 50 events"),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_clean_configuration_builds() {
        let text = "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
                    a1.sources.r1.type = seq\na1.sources.r1.channels = c1\n\
                    a1.channels.c1.type = memory\n\
                    a1.sinks.k1.type = logger\na1.sinks.k1.channel = c1\n";
        let (started, lines) = check(text);
        assert!(started, "{lines:#?}");
        assert!(lines.is_empty(), "{lines:#?}");
    }
}
