//! `SourceContext::put` against a full channel: the batch waits, nothing is lost, and
//! the counters count each event once however many times the put is tried.

use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
use millrace_core::{CancellationToken, Channel, ChannelProcessor, Event, SourceContext};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_put_counts_its_events_received_once() {
    let ch = Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: 5,
            transaction_capacity: 5,
            keep_alive: Duration::ZERO,
            ..Default::default()
        },
    ));
    let ctx = SourceContext {
        name: "r1".into(),
        processor: Arc::new(ChannelProcessor::single(ch.clone())),
        counters: Default::default(),
        shutdown: CancellationToken::new(),
    };
    let batch = |tag: &str| -> Vec<Event> {
        (0..5)
            .map(|i| Event::from_body(format!("{tag}{i}")))
            .collect()
    };
    ctx.put(batch("a")).await.unwrap();
    // The channel is full: the second put is refused until room is made.
    let second = tokio::spawn({
        let ctx = ctx.clone();
        let b = batch("b");
        async move { ctx.put(b).await }
    });
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(&ctx.counters.channel_write_fail) < 2 {
        assert!(
            tokio::time::Instant::now() < end,
            "the put was never refused twice"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = ch.take(5, Duration::ZERO).await.unwrap();
    assert_eq!(t.events().len(), 5);
    t.commit().await.unwrap();
    second.await.unwrap().unwrap();
    let t = ch.take(5, Duration::ZERO).await.unwrap();
    let bodies: Vec<_> = t.events().iter().map(|e| e.body.clone()).collect();
    assert_eq!(
        bodies,
        batch("b").into_iter().map(|e| e.body).collect::<Vec<_>>()
    );
    assert_eq!(get(&ctx.counters.event_received), 10);
    assert_eq!(get(&ctx.counters.event_accepted), 10);
}
