//! The channel processor with real memory channels: selectors, optional channels,
//! defaults, and Flume's counters on the source side.

use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
use millrace_core::counters::SourceCounters;
use millrace_core::{Channel, ChannelProcessor, ChannelSelector, Event, Interceptor};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn channel(name: &str, capacity: usize) -> Arc<MemoryChannel> {
    Arc::new(MemoryChannel::new(
        name,
        MemoryChannelConfig {
            capacity,
            transaction_capacity: capacity,
            keep_alive: Duration::ZERO,
            byte_capacity: None,
        },
    ))
}

async fn bodies(ch: &MemoryChannel) -> Vec<String> {
    let t = ch.take(1000, Duration::ZERO).await.unwrap();
    t.events()
        .iter()
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect()
}

#[tokio::test]
async fn a_full_optional_channel_does_not_fail_the_put() {
    let required = channel("c1", 100);
    let optional = channel("c2", 1);
    optional
        .put(vec![Event::from_body("filler")])
        .await
        .unwrap();
    let p = ChannelProcessor::new(
        Vec::new(),
        ChannelSelector::Replicating {
            required: vec![0],
            optional: vec![1],
        },
        vec![required.clone() as Arc<dyn Channel>, optional.clone()],
    );
    let counters = SourceCounters::default();
    p.process(
        vec![Event::from_body("a"), Event::from_body("b")],
        &counters,
    )
    .await
    .expect("optional failures are ignored");
    assert_eq!(bodies(&required).await, ["a", "b"]);
    assert_eq!(counters.event_accepted(), 2);
}

#[tokio::test]
async fn a_full_required_channel_fails_the_put_and_counts_it() {
    let full = channel("c1", 1);
    full.put(vec![Event::from_body("filler")]).await.unwrap();
    let p = ChannelProcessor::single(full.clone());
    let counters = SourceCounters::default();
    let err = p
        .process(vec![Event::from_body("a")], &counters)
        .await
        .unwrap_err();
    assert!(err.is_full());
    assert_eq!(counters.channel_write_fail(), 1);
    assert_eq!(counters.event_received(), 1);
    assert_eq!(counters.event_accepted(), 0);
}

#[tokio::test]
async fn multiplexing_routes_by_header_with_default_and_optional() {
    let (c1, c2, c3) = (channel("c1", 100), channel("c2", 100), channel("c3", 100));
    let mut mapping = HashMap::new();
    mapping.insert("ERROR".to_string(), vec![0]);
    mapping.insert("WARN".to_string(), vec![0, 1]);
    let mut optional = HashMap::new();
    optional.insert("ERROR".to_string(), vec![2]);
    optional.insert("WARN".to_string(), vec![1, 2]);
    let p = ChannelProcessor::new(
        Vec::new(),
        ChannelSelector::Multiplexing {
            header: "level".into(),
            mapping,
            optional,
            default: vec![1],
        },
        vec![c1.clone() as Arc<dyn Channel>, c2.clone(), c3.clone()],
    );
    let e = |body: &str, level: Option<&str>| {
        let ev = Event::from_body(body.to_string());
        match level {
            Some(l) => ev.with_header("level", l),
            None => ev,
        }
    };
    p.process(
        vec![
            e("boom", Some("ERROR")),
            e("fine", Some("INFO")),
            e("bare", None),
            e("hmm", Some("WARN")),
        ],
        &SourceCounters::default(),
    )
    .await
    .unwrap();
    assert_eq!(bodies(&c1).await, ["boom", "hmm"]);
    assert_eq!(
        bodies(&c2).await,
        ["fine", "bare", "hmm"],
        "unmapped and missing values go to the default; a channel both required and optional gets the event once"
    );
    assert_eq!(
        bodies(&c3).await,
        ["boom", "hmm"],
        "optional channels for ERROR and WARN"
    );
}

struct DropOdd;

impl Interceptor for DropOdd {
    fn intercept(&self, mut batch: Vec<Event>) -> Vec<Event> {
        batch.retain(|e| e.body.len() % 2 == 0);
        batch
    }
}

#[tokio::test]
async fn received_counts_before_interceptors_and_accepted_after() {
    let c1 = channel("c1", 100);
    let p = ChannelProcessor::new(
        vec![Box::new(DropOdd)],
        ChannelSelector::replicating_all(1),
        vec![c1.clone() as Arc<dyn Channel>],
    );
    let counters = SourceCounters::default();
    p.process(
        vec![Event::from_body("ab"), Event::from_body("abc")],
        &counters,
    )
    .await
    .unwrap();
    assert_eq!(counters.event_received(), 2);
    assert_eq!(counters.event_accepted(), 1);
    assert_eq!(bodies(&c1).await, ["ab"]);
}
