//! Sink groups driving real memory channels and scripted sinks.

use async_trait::async_trait;
use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
use millrace_core::{Channel, Event, Sink, SinkError};
use millrace_node::testing::{run_group, Policy};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A sink that records what it got and fails while `down` is set.
#[derive(Clone, Default)]
struct Probe {
    got: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

struct ProbeSink(Probe);

#[async_trait]
impl Sink for ProbeSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if self.0.down.load(Ordering::SeqCst) {
            return Err(SinkError::Delivery("down".into()));
        }
        self.0.got.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
    fn batch_size(&self) -> usize {
        10
    }
}

fn channel() -> Arc<dyn Channel> {
    Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: 100_000,
            transaction_capacity: 100,
            keep_alive: Duration::ZERO,
            byte_capacity: None,
        },
    ))
}

async fn fill(ch: &Arc<dyn Channel>, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        ch.put(
            chunk
                .iter()
                .map(|i| Event::from_body(i.to_string()))
                .collect(),
        )
        .await
        .unwrap();
    }
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn failover_moves_to_the_backup_and_returns_after_the_penalty() {
    let ch = channel();
    let primary = Probe::default();
    let backup = Probe::default();
    primary.down.store(true, Ordering::SeqCst);
    let handle = run_group(
        vec![
            (
                ch.clone(),
                Box::new(ProbeSink(primary.clone())) as Box<dyn Sink>,
            ),
            (
                ch.clone(),
                Box::new(ProbeSink(backup.clone())) as Box<dyn Sink>,
            ),
        ],
        Policy::Failover {
            priorities: vec![10, 5],
            max_penalty: Duration::from_millis(300),
        },
    );
    fill(&ch, 500).await;
    wait_until("backup takes everything", || {
        backup.got.load(Ordering::SeqCst) == 500
    })
    .await;
    assert_eq!(primary.got.load(Ordering::SeqCst), 0);
    primary.down.store(false, Ordering::SeqCst);
    // Once its penalty (at most 300 ms) is over, the primary takes over again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    fill(&ch, 500).await;
    wait_until("all delivered", || {
        primary.got.load(Ordering::SeqCst) + backup.got.load(Ordering::SeqCst) == 1000
    })
    .await;
    assert!(
        primary.got.load(Ordering::SeqCst) >= 400,
        "primary got {}",
        primary.got.load(Ordering::SeqCst)
    );
    handle.stop().await;
}

#[tokio::test]
async fn load_balance_spreads_batches_and_loses_nothing_when_one_sink_fails() {
    let ch = channel();
    let a = Probe::default();
    let b = Probe::default();
    let handle = run_group(
        vec![
            (ch.clone(), Box::new(ProbeSink(a.clone())) as Box<dyn Sink>),
            (ch.clone(), Box::new(ProbeSink(b.clone())) as Box<dyn Sink>),
        ],
        Policy::LoadBalance {
            random: false,
            backoff: true,
            max_timeout: Duration::from_secs(1),
        },
    );
    fill(&ch, 1000).await;
    wait_until("1000 delivered", || {
        a.got.load(Ordering::SeqCst) + b.got.load(Ordering::SeqCst) == 1000
    })
    .await;
    let (ga, gb) = (a.got.load(Ordering::SeqCst), b.got.load(Ordering::SeqCst));
    assert!(ga >= 300 && gb >= 300, "uneven spread: {ga} / {gb}");
    b.down.store(true, Ordering::SeqCst);
    fill(&ch, 1000).await;
    wait_until("2000 delivered", || {
        a.got.load(Ordering::SeqCst) + b.got.load(Ordering::SeqCst) == 2000
    })
    .await;
    assert_eq!(
        b.got.load(Ordering::SeqCst),
        gb,
        "the failed sink delivered nothing"
    );
    handle.stop().await;
}

#[tokio::test]
async fn stop_drains_the_channel_first() {
    let ch = channel();
    let p = Probe::default();
    fill(&ch, 5000).await;
    let handle = run_group(
        vec![(ch.clone(), Box::new(ProbeSink(p.clone())) as Box<dyn Sink>)],
        Policy::Default,
    );
    handle.stop().await;
    assert_eq!(p.got.load(Ordering::SeqCst), 5000);
    assert_eq!(ch.counters().channel_size(), 0);
}
