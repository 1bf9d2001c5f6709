//! Sink runners and sink processors.
//!
//! One runner drives a sink group (a lone sink is a group of one with the default
//! processor). Each step the processor orders the group's sinks; the runner takes a
//! batch from the first candidate's channel, delivers it, and commits the take only
//! when delivery succeeded. A failed delivery rolls the take back (the events return
//! to the head of the channel) and the next candidate is tried.

use millrace_core::counters::{add, inc, SinkCounters};
use millrace_core::{Channel, Sink};
use rand::seq::SliceRandom;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Builds a fresh sink after a panic.
pub type SinkFactory = Arc<dyn Fn() -> Option<Box<dyn Sink>> + Send + Sync>;

pub struct SinkSlot {
    pub name: String,
    pub factory: SinkFactory,
    pub channel: Arc<dyn Channel>,
    pub counters: Arc<SinkCounters>,
}

/// How a group picks the sink for the next batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// One sink.
    Default,
    /// The live sink with the highest priority; a failed sink sits out a penalty
    /// (1 s doubling per consecutive failure, at most `max_penalty`), after which it
    /// is tried again and, once it succeeds, takes over again.
    Failover {
        priorities: Vec<i64>,
        max_penalty: Duration,
    },
    /// Spread batches over the sinks; with `backoff`, a failed sink is skipped for a
    /// time that doubles per failure up to `max_timeout`.
    LoadBalance {
        random: bool,
        backoff: bool,
        max_timeout: Duration,
    },
}

#[derive(Default, Clone, Copy)]
struct Health {
    failures: u32,
    until: Option<Instant>,
}

/// Chooses the order in which sinks are tried for one batch.
pub struct Processor {
    policy: Policy,
    health: Vec<Health>,
    next: usize,
}

impl Processor {
    pub fn new(policy: Policy, n: usize) -> Self {
        Processor {
            policy,
            health: vec![Health::default(); n],
            next: 0,
        }
    }

    pub fn order(&mut self, now: Instant) -> Vec<usize> {
        let n = self.health.len();
        let ready = |h: &Health| h.until.is_none_or(|t| t <= now);
        match &self.policy {
            Policy::Default => (0..n).collect(),
            Policy::Failover { priorities, .. } => {
                let mut v: Vec<usize> = (0..n).filter(|&i| ready(&self.health[i])).collect();
                // Stable sort: equal priorities keep configuration order.
                v.sort_by_key(|&i| std::cmp::Reverse(priorities[i]));
                v
            }
            Policy::LoadBalance { random, .. } => {
                let mut v: Vec<usize> = if *random {
                    let mut v: Vec<usize> = (0..n).collect();
                    v.shuffle(&mut rand::rng());
                    v
                } else {
                    let start = self.next % n.max(1);
                    self.next = self.next.wrapping_add(1);
                    (0..n).map(|k| (start + k) % n).collect()
                };
                v.retain(|&i| ready(&self.health[i]));
                v
            }
        }
    }

    pub fn succeeded(&mut self, i: usize) {
        self.health[i] = Health::default();
    }

    pub fn failed(&mut self, i: usize, now: Instant) {
        let cap = match &self.policy {
            Policy::Default => return,
            Policy::Failover { max_penalty, .. } => *max_penalty,
            Policy::LoadBalance { backoff: false, .. } => return,
            Policy::LoadBalance { max_timeout, .. } => *max_timeout,
        };
        let h = &mut self.health[i];
        h.failures = h.failures.saturating_add(1);
        let penalty = Duration::from_millis(1000u64.saturating_mul(1 << h.failures.min(20)));
        h.until = Some(now + penalty.min(cap));
    }
}

enum Step {
    Delivered,
    Empty,
    Failed,
}

const TAKE_WAIT: Duration = Duration::from_millis(500);

/// How long a sink may take to close what it has open once the group stops: after
/// the drain, a sink whose service does not answer must not hold the process. The
/// HDFS sink finishes files left open at its next start.
const SINK_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one sink group until `stop` is cancelled, then drains the channels until they
/// are empty or `drain_deadline` passes.
pub struct GroupRunner {
    pub group: String,
    pub slots: Vec<SinkSlot>,
    pub processor: Processor,
}

/// Tells a running group to stop: `Some(d)` drains the channels for up to `d` first
/// (zero stops after the batch in hand).
pub type StopSignal = tokio::sync::watch::Receiver<Option<Duration>>;

impl GroupRunner {
    pub async fn run(mut self, mut stop: StopSignal) {
        let mut sinks: Vec<Option<Box<dyn Sink>>> = self.slots.iter().map(|_| None).collect();
        let mut backoff = Duration::from_millis(250);
        let mut drain_deadline: Option<Instant> = None;
        // A stop without draining (a reload that keeps the channel) is no timeout.
        let mut drain_asked = false;
        loop {
            if drain_deadline.is_none() {
                if let Some(d) = *stop.borrow() {
                    drain_deadline = Some(Instant::now() + d);
                    drain_asked = !d.is_zero();
                }
            }
            if drain_deadline.is_some_and(|d| Instant::now() >= d) {
                if drain_asked {
                    tracing::warn!(group = %self.group, "drain timeout reached; events left in the channel stay there");
                }
                break;
            }
            let draining = drain_deadline.is_some();
            // A drain's deadline also bounds the batch in hand, even one begun before
            // the stop came: a sink call that hangs (a namenode that does not answer)
            // must not hold the shutdown past it. The batch is then rolled back. A
            // stop without draining lets the batch in hand finish.
            let bounded = {
                let step = self.step(&mut sinks, draining);
                tokio::pin!(step);
                let mut done = None;
                if drain_deadline.is_none() {
                    tokio::select! {
                        r = &mut step => done = Some(r),
                        _ = stop.wait_for(Option::is_some) => {}
                    }
                    if done.is_none() {
                        let d = stop.borrow().unwrap_or_default();
                        drain_deadline = Some(Instant::now() + d);
                        drain_asked = !d.is_zero();
                    }
                }
                match (done, drain_deadline) {
                    (Some(r), _) => Some(r),
                    (None, Some(d)) if drain_asked => {
                        tokio::time::timeout_at(d, &mut step).await.ok()
                    }
                    (None, _) => Some(step.await),
                }
            };
            let Some(outcome) = bounded else {
                tracing::warn!(group = %self.group, "drain timeout reached during a delivery; that batch was rolled back, and events left in the channel stay there");
                break;
            };
            match outcome {
                Step::Delivered => backoff = Duration::from_millis(250),
                Step::Empty if draining => break,
                Step::Empty => {}
                Step::Failed => {
                    let wait = match drain_deadline {
                        Some(d) => backoff.min(d.saturating_duration_since(Instant::now())),
                        None => backoff,
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.wait_for(Option::is_some), if !draining => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        for (i, s) in sinks.iter_mut().enumerate() {
            if let Some(mut s) = s.take() {
                match tokio::time::timeout(SINK_STOP_TIMEOUT, s.stop()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(sink = %self.slots[i].name, error = %e, "sink did not stop cleanly")
                    }
                    Err(_) => tracing::warn!(
                        sink = %self.slots[i].name,
                        timeout = ?SINK_STOP_TIMEOUT,
                        "sink did not stop in time; what it had open is finished at the next start"
                    ),
                }
            }
            self.slots[i].counters.lifecycle.stopped();
        }
    }

    async fn ensure_started(&self, i: usize, sinks: &mut [Option<Box<dyn Sink>>]) -> bool {
        if sinks[i].is_some() {
            return true;
        }
        let slot = &self.slots[i];
        let Some(mut s) = (slot.factory)() else {
            tracing::error!(sink = %slot.name, "sink could not be built");
            return false;
        };
        match s.start().await {
            Ok(()) => {
                slot.counters.lifecycle.started();
                sinks[i] = Some(s);
                true
            }
            Err(e) => {
                tracing::error!(sink = %slot.name, error = %e, "sink failed to start; retrying");
                inc(&slot.counters.connection_failed);
                false
            }
        }
    }

    async fn step(&mut self, sinks: &mut [Option<Box<dyn Sink>>], draining: bool) -> Step {
        let now = Instant::now();
        let order = self.processor.order(now);
        if order.is_empty() {
            return Step::Failed;
        }
        for i in order {
            if !self.ensure_started(i, sinks).await {
                self.processor.failed(i, Instant::now());
                continue;
            }
            let slot = &self.slots[i];
            let sink = sinks[i].as_mut().expect("started above");
            let batch = sink.batch_size().max(1);
            let wait = if draining { Duration::ZERO } else { TAKE_WAIT };
            let txn = match slot.channel.take(batch, wait).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(sink = %slot.name, error = %e, "take from channel failed");
                    inc(&slot.counters.channel_read_fail);
                    return Step::Failed;
                }
            };
            let n = txn.len();
            if n == 0 {
                inc(&slot.counters.batch_empty);
                for (j, s) in sinks.iter_mut().enumerate() {
                    if let Some(s) = s {
                        if let Err(e) = s.idle().await {
                            tracing::warn!(sink = %self.slots[j].name, error = %e, "sink housekeeping failed");
                        }
                    }
                }
                return Step::Empty;
            }
            if n < batch {
                inc(&slot.counters.batch_underflow);
            } else {
                inc(&slot.counters.batch_complete);
            }
            let sink = sinks[i].as_mut().expect("started above");
            let own_counts = sink.counts_drains();
            if !own_counts {
                add(&slot.counters.event_drain_attempt, n as u64);
            }
            match sink.deliver(txn.events()).await {
                Ok(()) => match txn.commit().await {
                    Ok(()) => {
                        if !own_counts {
                            add(&slot.counters.event_drain_success, n as u64);
                        }
                        self.processor.succeeded(i);
                        return Step::Delivered;
                    }
                    Err(e) => {
                        tracing::error!(sink = %slot.name, error = %e, "commit of a delivered batch failed; it may be delivered again");
                        return Step::Failed;
                    }
                },
                Err(e) => {
                    drop(txn);
                    tracing::warn!(sink = %slot.name, group = %self.group, error = %e, events = n, "delivery failed; batch rolled back");
                    self.processor.failed(i, Instant::now());
                }
            }
        }
        Step::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
    use millrace_core::{Event, Sink, SinkError};
    use std::sync::Mutex;

    /// A sink whose deliveries never return, as with a service that accepts the
    /// connection and never answers.
    struct Hanging;

    #[async_trait::async_trait]
    impl Sink for Hanging {
        async fn deliver(&mut self, _batch: &[Event]) -> Result<(), SinkError> {
            std::future::pending().await
        }
        fn batch_size(&self) -> usize {
            10
        }
    }

    // Paused time: the clock moves only when every task waits, so the deadline is
    // checked in the runtime's own time, not against the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn a_hanging_delivery_does_not_hold_the_drain_past_its_deadline() {
        let channel = Arc::new(MemoryChannel::new("c1", MemoryChannelConfig::default()));
        channel.put(vec![Event::from_body("kept")]).await.unwrap();
        let cell = Mutex::new(Some(Box::new(Hanging) as Box<dyn Sink>));
        let counters: Arc<SinkCounters> = Default::default();
        let runner = GroupRunner {
            group: "k1".into(),
            slots: vec![SinkSlot {
                name: "k1".into(),
                factory: Arc::new(move || cell.lock().ok()?.take()),
                channel: channel.clone(),
                counters: counters.clone(),
            }],
            processor: Processor::new(Policy::Default, 1),
        };
        let (stop, rx) = tokio::sync::watch::channel(None);
        let task = tokio::spawn(runner.run(rx));
        // The delivery is in flight before the stop comes.
        let end = Instant::now() + Duration::from_secs(10);
        while counters
            .event_drain_attempt
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            assert!(Instant::now() < end, "the sink never took the event");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let asked = Instant::now();
        let drain = Duration::from_millis(300);
        stop.send(Some(drain)).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the drain ends at its deadline, not when the delivery returns")
            .unwrap();
        assert!(
            asked.elapsed() >= drain,
            "the drain waited for its deadline"
        );
        assert_eq!(channel.len(), 1, "the batch in hand was rolled back");
    }

    #[test]
    fn failover_prefers_highest_priority_and_returns_after_penalty() {
        let mut p = Processor::new(
            Policy::Failover {
                priorities: vec![5, 10],
                max_penalty: Duration::from_secs(3),
            },
            2,
        );
        let t0 = Instant::now();
        assert_eq!(p.order(t0), vec![1, 0]);
        p.failed(1, t0);
        assert_eq!(p.order(t0), vec![0], "the failed sink sits out its penalty");
        assert_eq!(
            p.order(t0 + Duration::from_secs(3)),
            vec![1, 0],
            "back after the penalty"
        );
        // Consecutive failures grow the penalty, but never beyond maxpenalty.
        for _ in 0..10 {
            p.failed(1, t0);
        }
        assert_eq!(p.order(t0 + Duration::from_millis(2999)), vec![0]);
        assert_eq!(p.order(t0 + Duration::from_secs(3)), vec![1, 0]);
        p.succeeded(1);
        assert_eq!(p.order(t0), vec![1, 0]);
    }

    #[test]
    fn round_robin_rotates_the_first_choice() {
        let mut p = Processor::new(
            Policy::LoadBalance {
                random: false,
                backoff: false,
                max_timeout: Duration::from_secs(30),
            },
            3,
        );
        let t = Instant::now();
        let firsts: Vec<usize> = (0..6).map(|_| p.order(t)[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn load_balance_backoff_skips_a_failed_sink() {
        let mut p = Processor::new(
            Policy::LoadBalance {
                random: true,
                backoff: true,
                max_timeout: Duration::from_secs(30),
            },
            2,
        );
        let t = Instant::now();
        p.failed(0, t);
        for _ in 0..20 {
            assert_eq!(p.order(t), vec![1]);
        }
        let mut seen = [false; 2];
        for _ in 0..64 {
            seen[p.order(t + Duration::from_secs(30))[0]] = true;
        }
        assert_eq!(
            seen,
            [true, true],
            "random spreads over both once backoff ends"
        );
    }

    #[test]
    fn load_balance_without_backoff_keeps_trying_every_sink() {
        let mut p = Processor::new(
            Policy::LoadBalance {
                random: false,
                backoff: false,
                max_timeout: Duration::from_secs(30),
            },
            2,
        );
        let t = Instant::now();
        p.failed(0, t);
        assert_eq!(p.order(t).len(), 2);
    }
}
