use super::*;
use millrace_core::Props;

fn channel(capacity: usize, tx: usize, keep_alive_ms: u64) -> MemoryChannel {
    MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity,
            transaction_capacity: tx,
            keep_alive: Duration::from_millis(keep_alive_ms),
            byte_capacity: None,
        },
    )
}

fn events(range: std::ops::Range<u32>) -> Vec<Event> {
    range.map(|i| Event::from_body(i.to_string())).collect()
}

fn bodies(txn: &TakeTxn) -> Vec<String> {
    txn.events()
        .iter()
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect()
}

#[tokio::test]
async fn put_then_take_in_order() {
    let ch = channel(10, 10, 0);
    ch.put(events(0..5)).await.unwrap();
    let t = ch.take(3, Duration::ZERO).await.unwrap();
    assert_eq!(bodies(&t), ["0", "1", "2"]);
    t.commit().await.unwrap();
    let t = ch.take(10, Duration::ZERO).await.unwrap();
    assert_eq!(bodies(&t), ["3", "4"]);
}

#[tokio::test]
async fn put_larger_than_transaction_capacity_fails_at_once() {
    let ch = channel(100, 5, 10_000);
    let err = ch.put(events(0..6)).await.unwrap_err();
    assert!(matches!(
        err,
        ChannelError::TransactionTooLarge { size: 6, .. }
    ));
    assert!(ch.is_empty());
}

#[tokio::test(start_paused = true)]
async fn full_channel_refuses_after_keep_alive() {
    let ch = channel(5, 5, 3000);
    ch.put(events(0..5)).await.unwrap();
    let start = Instant::now();
    let err = ch.put(events(5..6)).await.unwrap_err();
    assert!(err.is_full(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(3000));
    assert_eq!(ch.len(), 5, "a refused put adds nothing");
}

#[tokio::test(start_paused = true)]
async fn waiting_put_succeeds_when_a_take_commits() {
    let ch = Arc::new(channel(2, 2, 3000));
    ch.put(events(0..2)).await.unwrap();
    let ch2 = ch.clone();
    let putter = tokio::spawn(async move { ch2.put(events(2..3)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = ch.take(2, Duration::ZERO).await.unwrap();
    t.commit().await.unwrap();
    putter.await.unwrap().unwrap();
    assert_eq!(ch.len(), 1);
}

#[tokio::test]
async fn dropped_take_rolls_back_to_the_head_in_order() {
    let ch = channel(10, 10, 0);
    ch.put(events(0..4)).await.unwrap();
    {
        let t = ch.take(2, Duration::ZERO).await.unwrap();
        assert_eq!(t.len(), 2);
    }
    let t = ch.take(10, Duration::ZERO).await.unwrap();
    assert_eq!(bodies(&t), ["0", "1", "2", "3"]);
    t.rollback();
    assert_eq!(ch.len(), 4);
}

#[tokio::test]
async fn taken_events_keep_their_room_until_commit() {
    let ch = channel(3, 3, 0);
    ch.put(events(0..3)).await.unwrap();
    let t = ch.take(3, Duration::ZERO).await.unwrap();
    assert!(ch.put(events(3..4)).await.unwrap_err().is_full());
    t.commit().await.unwrap();
    ch.put(events(3..4)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn take_waits_for_the_first_event() {
    let ch = Arc::new(channel(10, 10, 0));
    let ch2 = ch.clone();
    let taker = tokio::spawn(async move { ch2.take(10, Duration::from_secs(5)).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    ch.put(events(0..1)).await.unwrap();
    let t = taker.await.unwrap().unwrap();
    assert_eq!(t.len(), 1);
}

#[tokio::test]
async fn empty_take_returns_empty_after_wait() {
    let ch = channel(10, 10, 0);
    let t = ch.take(10, Duration::from_millis(5)).await.unwrap();
    assert!(t.is_empty());
}

#[tokio::test]
async fn counters_follow_puts_and_takes() {
    let ch = channel(10, 10, 0);
    ch.put(events(0..4)).await.unwrap();
    ch.take(3, Duration::ZERO)
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    let c = ch.counters();
    assert_eq!(c.event_put_success(), 4);
    assert_eq!(c.event_take_success(), 3);
    assert_eq!(c.channel_size(), 1);
}

#[tokio::test]
async fn byte_capacity_bounds_bodies() {
    let props = Props::from_pairs(&[
        ("capacity", "100"),
        ("byteCapacity", "100"),
        ("byteCapacityBufferPercentage", "0"),
        ("keep-alive", "0"),
    ]);
    let cfg = MemoryChannelConfig::from_props(&props).unwrap();
    let ch = MemoryChannel::new("c1", cfg);
    ch.put(vec![Event::from_body(vec![b'x'; 60])])
        .await
        .unwrap();
    let err = ch
        .put(vec![Event::from_body(vec![b'x'; 60])])
        .await
        .unwrap_err();
    assert!(matches!(err, ChannelError::BytesFull { .. }), "{err}");
}

#[test]
fn byte_capacity_0_is_no_limit_as_in_flume() {
    let props = Props::from_pairs(&[("byteCapacity", "0")]);
    let cfg = MemoryChannelConfig::from_props(&props).expect("valid");
    assert!(props.finish().is_empty(), "{:?}", props.finish());
    assert_eq!(cfg.byte_capacity, None);
}

#[test]
fn a_byte_capacity_under_one_flume_slot_is_no_limit_with_a_warning() {
    // 120 bytes less the 20% buffer is 96, under Flume's 100-byte slot.
    let props = Props::from_pairs(&[("byteCapacity", "120")]);
    let cfg = MemoryChannelConfig::from_props(&props).expect("valid");
    assert_eq!(cfg.byte_capacity, None);
    let d = props.finish();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].message.contains("no byte limit"), "{}", d[0]);
    let props = Props::from_pairs(&[("byteCapacity", "125")]);
    let cfg = MemoryChannelConfig::from_props(&props).expect("valid");
    assert_eq!(cfg.byte_capacity, Some(100));
}

#[test]
fn transaction_capacity_above_capacity_is_an_error() {
    let props = Props::from_pairs(&[("capacity", "10"), ("transactionCapacity", "20")]);
    assert!(MemoryChannelConfig::from_props(&props).is_none());
    let d = props.finish();
    assert!(d[0].message.contains("larger than"), "{}", d[0]);
}
