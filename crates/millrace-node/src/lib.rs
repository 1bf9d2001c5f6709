//! Builds a running millrace agent from a Flume configuration.
//!
//! - [`registry`] turns each configured component's `type` (a Flume alias or class
//!   name) into the component, collecting every problem as a diagnostic;
//! - [`Agent::build`] (or [`Agent::build_with`], for a hosting process that adds
//!   component types through [`Extensions`]) checks the agent as a whole (batch sizes against channel
//!   transaction capacities, selectors, sink groups) without starting anything;
//!   [`Agent::build_checked`] takes a configuration as loaded, with its diagnostics,
//!   and checks the components even when the configuration has errors, so that
//!   every problem is listed together;
//! - [`Agent::start`] starts channels, then sink runners, then sources, then the
//!   monitoring server; [`RunningAgent::stop`] stops sources first, lets sinks drain
//!   what the channels hold (bounded by a timeout), then closes the channels.
//!
//! A source or sink that fails is restarted with backoff; the failure is logged and
//! counted, and the rest of the agent keeps running.
//!
//! [`Pipeline`] assembles the same [`Agent`] from component instances in code, for a
//! program that embeds a pipeline without a properties file;
//! [`reference`](mod@reference) lists every property each component reads (it makes
//! `docs/reference.md`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! let text = "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
//!             a1.sources.r1.type = netcat\na1.sources.r1.bind = 127.0.0.1\n\
//!             a1.sources.r1.port = 44444\na1.sources.r1.channels = c1\n\
//!             a1.channels.c1.type = memory\n\
//!             a1.sinks.k1.type = logger\na1.sinks.k1.channel = c1\n";
//! let (cfg, _) = millrace_config::from_text(Arc::from("flume.conf"), text, "a1");
//! let (agent, diagnostics) = millrace_node::Agent::build(&cfg.expect("parsed"));
//! for d in &diagnostics {
//!     eprintln!("{d}");
//! }
//! let running = agent.expect("no errors").start(None).await?;
//! // ... lines sent to 127.0.0.1:44444 are logged ...
//! running.stop().await;
//! # Ok(())
//! # }
//! ```

mod agent;
pub mod monitor;
pub mod pipeline;
pub mod reference;
pub mod registry;
mod runner;
mod selector;

pub use agent::{Agent, RunningAgent};
pub use monitor::{MetricsRegistry, MonitorServer};
pub use pipeline::{Pipeline, PipelineError};
pub use registry::{ExtSinkFactory, Extensions};

/// Runs sink groups outside a full agent, for tests of processors and sinks.
pub mod testing {
    pub use crate::runner::Policy;
    use crate::runner::{GroupRunner, Processor, SinkSlot};
    use millrace_core::{Channel, Sink};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    pub struct GroupHandle {
        stop: tokio::sync::watch::Sender<Option<Duration>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl GroupHandle {
        /// Stops the group after it drained its channels (up to 30 s).
        pub async fn stop(self) {
            let _ = self.stop.send(Some(Duration::from_secs(30)));
            let _ = self.task.await;
        }
    }

    /// Starts one runner over `sinks`, each reading its own channel.
    pub fn run_group(sinks: Vec<(Arc<dyn Channel>, Box<dyn Sink>)>, policy: Policy) -> GroupHandle {
        let n = sinks.len();
        let slots = sinks
            .into_iter()
            .enumerate()
            .map(|(i, (channel, sink))| {
                let cell = Mutex::new(Some(sink));
                SinkSlot {
                    name: format!("k{}", i + 1),
                    factory: Arc::new(move || cell.lock().ok()?.take()),
                    channel,
                    counters: Default::default(),
                }
            })
            .collect();
        let runner = GroupRunner {
            group: "g1".into(),
            slots,
            processor: Processor::new(policy, n),
        };
        let (stop, rx) = tokio::sync::watch::channel(None);
        let task = tokio::spawn(runner.run(rx));
        GroupHandle { stop, task }
    }
}
