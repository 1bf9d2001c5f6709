//! The store through its public API: what is derived at ingest, indexes answering
//! exactly what a scan would, paging, summaries, purge and retention, the lock.

use millrace_core::Event;
use millrace_store::*;
use std::collections::BTreeSet;
use std::time::Duration;

const T0: u64 = 1_764_000_000_000;

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

/// `n` events one second apart from T0, spread over hosts, levels, sources and words.
fn sample(n: u64) -> Vec<Event> {
    let hosts = ["web-1", "web-2", "db-1"];
    let levels = ["INFO", "WARN", "ERROR", "DEBUG"];
    let words = [
        "payment declined",
        "order created",
        "cache warmed",
        "Payment captured",
    ];
    (0..n)
        .map(|i| {
            let mut e = Event::from_body(format!(
                "2026-11-24 08:00:{:02} {} [svc] {} #{i}",
                i % 60,
                levels[(i % 4) as usize],
                words[(i % 7 % 4) as usize]
            ))
            .with_header("timestamp", (T0 + i * 1000).to_string())
            .with_header("host", hosts[(i % 3) as usize])
            .with_header("dc", if i % 2 == 0 { "eu" } else { "us" });
            if i % 5 == 0 {
                e = e.with_header("file", "/var/log/app.log");
            }
            e
        })
        .collect()
}

fn ids(events: &[StoredEvent]) -> Vec<EventId> {
    events.iter().map(|e| e.id).collect()
}

fn all(store: &Store, f: &Filter, order: Order) -> Vec<StoredEvent> {
    let page = Page {
        order,
        limit: 1_000_000,
        cursor: None,
    };
    store.search(f, &page, None).unwrap().events
}

#[test]
fn host_source_and_level_are_derived_at_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids = store
        .append(&[
            Event::from_body("2026-11-24 08:00:11 WARNING disk at 91%")
                .with_header("host", "web-1")
                .with_header("file", "/var/log/app.log")
                .with_header("source", "ignored: file wins"),
            Event::from_body("no level word here").with_header("level", "error"),
            Event::from_body("plain").with_header("source", "tcp:5140"),
        ])
        .unwrap();
    let a = store.get(ids[0]).unwrap().unwrap();
    assert_eq!(a.level.as_deref(), Some("WARN"));
    assert_eq!(a.host.as_deref(), Some("web-1"));
    assert_eq!(a.source.as_deref(), Some("/var/log/app.log"));
    assert_eq!(a.headers.len(), 3, "every header is kept");
    let b = store.get(ids[1]).unwrap().unwrap();
    assert_eq!(
        (b.level.as_deref(), b.host.as_deref()),
        (Some("ERROR"), None)
    );
    let c = store.get(ids[2]).unwrap().unwrap();
    assert_eq!((c.level, c.source.as_deref()), (None, Some("tcp:5140")));
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "ids follow arrival");
    assert_eq!(
        store.values(Field::Level).unwrap(),
        [("ERROR".to_string(), 1), ("WARN".to_string(), 1)]
    );
}

#[test]
fn the_level_regex_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        level_regex: regex::Regex::new(r"severity=(\w+)").unwrap(),
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), opts).unwrap();
    let id = store
        .append(&[Event::from_body("ERROR severity=notice")])
        .unwrap()[0];
    assert_eq!(
        store.get(id).unwrap().unwrap().level.as_deref(),
        Some("NOTICE")
    );
}

#[test]
fn each_filter_finds_exactly_what_a_full_scan_finds() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let events = sample(400);
    for chunk in events.chunks(37) {
        store.append(chunk).unwrap();
    }
    let everything = all(&store, &Filter::default(), Order::Asc);
    assert_eq!(everything.len(), 400);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let filters = vec![
        Filter {
            hosts: s(&["web-1"]),
            ..Default::default()
        },
        Filter {
            hosts: s(&["web-1", "db-1"]),
            ..Default::default()
        },
        Filter {
            levels: s(&["error", "WARN"]),
            ..Default::default()
        },
        Filter {
            sources: s(&["/var/log/app.log"]),
            ..Default::default()
        },
        Filter {
            headers: vec![("dc".into(), "eu".into())],
            ..Default::default()
        },
        Filter {
            q: Some("PAYMENT".into()),
            ..Default::default()
        },
        Filter {
            q: Some("payment declined".into()),
            hosts: s(&["web-2"]),
            ..Default::default()
        },
        Filter {
            q: Some("nothing-like-this".into()),
            ..Default::default()
        },
        Filter {
            from: Some(T0 + 100_000),
            to: Some(T0 + 200_000),
            levels: s(&["INFO"]),
            ..Default::default()
        },
        Filter {
            from: Some(T0 + 390_000),
            ..Default::default()
        },
        Filter {
            headers: vec![("timestamp".into(), (T0 + 5000).to_string())],
            ..Default::default()
        },
    ];
    for f in filters {
        let want: Vec<EventId> = everything
            .iter()
            .filter(|e| f.matches(e))
            .map(|e| e.id)
            .collect();
        let got = ids(&all(&store, &f, Order::Asc));
        assert_eq!(got, want, "{f:?}");
        let mut desc = ids(&all(&store, &f, Order::Desc));
        desc.reverse();
        assert_eq!(desc, want, "{f:?} newest first");
    }
    // Spot checks that the brute force itself is right.
    let q = all(
        &store,
        &Filter {
            q: Some("payment".into()),
            ..Default::default()
        },
        Order::Asc,
    );
    assert!(
        !q.is_empty()
            && q.iter().all(|e| String::from_utf8_lossy(&e.body)
                .to_lowercase()
                .contains("payment"))
    );
    let r = all(
        &store,
        &Filter {
            from: Some(T0 + 10_000),
            to: Some(T0 + 20_000),
            ..Default::default()
        },
        Order::Asc,
    );
    assert_eq!(r.len(), 10, "from is inclusive, to exclusive");
}

#[test]
fn pages_neither_repeat_nor_skip_even_while_events_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append(&sample(250)).unwrap();
    for order in [Order::Asc, Order::Desc] {
        let f = Filter {
            levels: vec!["INFO".into(), "ERROR".into()],
            ..Default::default()
        };
        let want = ids(&all(&store, &f, order));
        let mut got = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let r = store
                .search(
                    &f,
                    &Page {
                        order,
                        limit: 7,
                        cursor,
                    },
                    None,
                )
                .unwrap();
            assert!(r.events.len() <= 7);
            got.extend(ids(&r.events));
            pages += 1;
            // Newer events arriving mid-way do not disturb the pages of older ones.
            if pages == 3 {
                store
                    .append(&[Event::from_body("INFO late")
                        .with_header("timestamp", (T0 + 999_000).to_string())])
                    .unwrap();
            }
            match r.next_cursor {
                Some(c) => {
                    let text = c.to_string();
                    cursor = Some(text.parse().unwrap());
                }
                None => break,
            }
        }
        let unique: BTreeSet<_> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "no event repeated ({order:?})");
        match order {
            Order::Desc => assert_eq!(got, want, "no event skipped ({order:?})"),
            // Ascending pages reach the late event too, at the end.
            Order::Asc => {
                assert_eq!(got[..want.len()], want[..]);
                assert_eq!(got.len(), want.len() + 1);
            }
        }
    }
    assert!("not a cursor".parse::<Cursor>().is_err());
}

#[test]
fn histogram_and_top_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append(&sample(180)).unwrap();
    let h = store.histogram(&Filter::default(), 60_000, None).unwrap();
    assert_eq!(h, [(T0, 60), (T0 + 60_000, 60), (T0 + 120_000, 60)]);
    let errors = Filter {
        levels: vec!["ERROR".into()],
        ..Default::default()
    };
    let h = store.histogram(&errors, 60_000, None).unwrap();
    assert_eq!(h.iter().map(|b| b.1).sum::<u64>(), 45);

    let top = store
        .top(&Field::Host, &Filter::default(), 2, None)
        .unwrap();
    assert_eq!(top.total, 180);
    assert_eq!(
        top.values,
        [("db-1".to_string(), 60), ("web-1".to_string(), 60)]
    );
    let top = store
        .top(&Field::Header("dc".into()), &Filter::default(), 10, None)
        .unwrap();
    assert_eq!(top.values, [("eu".to_string(), 90), ("us".to_string(), 90)]);
    let top = store
        .top(
            &Field::Level,
            &Filter {
                hosts: vec!["web-1".into()],
                ..Default::default()
            },
            10,
            None,
        )
        .unwrap();
    assert_eq!(top.total, 60);
    assert_eq!(top.values.len(), 4);
}

#[test]
fn purge_removes_events_index_entries_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append(&sample(100)).unwrap();
    let before = store.stats().unwrap();
    assert_eq!(
        (before.events, before.oldest, before.newest),
        (100, Some(T0), Some(T0 + 99_000))
    );
    assert_eq!(store.purge_before(T0 + 40_000).unwrap(), 40);
    let after = store.stats().unwrap();
    assert_eq!((after.events, after.oldest), (60, Some(T0 + 40_000)));
    assert!(after.stored_bytes < before.stored_bytes);
    let web1 = all(
        &store,
        &Filter {
            hosts: vec!["web-1".into()],
            q: Some("svc".into()),
            ..Default::default()
        },
        Order::Asc,
    );
    assert!(web1.iter().all(|e| e.id.time >= T0 + 40_000));
    assert_eq!(web1.len(), 20);
    let hosts: u64 = store.values(Field::Host).unwrap().iter().map(|v| v.1).sum();
    assert_eq!(hosts, 60);
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        store.stats().unwrap().events,
        60,
        "counters survive a reopen"
    );
    assert_eq!(store.stats().unwrap().stored_bytes, after.stored_bytes);
    // What an append counts is what a purge takes back, on one thread and on two
    // (300 events), with words repeated within a body.
    let mut batch = sample(300);
    for e in &mut batch {
        let body = format!("{0} {0}", String::from_utf8_lossy(&e.body));
        e.body = body.into();
    }
    store.append(&batch).unwrap();
    // The counters an append adds to are those read back at the reopen.
    let hosts: u64 = store.values(Field::Host).unwrap().iter().map(|v| v.1).sum();
    assert_eq!(hosts, 360);
    store.purge_before(u64::MAX).unwrap();
    let empty = store.stats().unwrap();
    assert_eq!((empty.events, empty.stored_bytes), (0, 0));
    for field in [Field::Host, Field::Level, Field::Source] {
        assert_eq!(store.values(field).unwrap(), [], "no value is left counted");
    }
}

#[test]
fn retention_deletes_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append(&sample(200)).unwrap();
    let by_age = Retention {
        max_age: Some(Duration::from_secs(50)),
        max_bytes: None,
        interval: Duration::from_secs(60),
    };
    assert_eq!(store.apply_retention(&by_age, T0 + 150_000).unwrap(), 100);
    assert_eq!(store.stats().unwrap().oldest, Some(T0 + 100_000));
    let half = store.stats().unwrap().stored_bytes / 2;
    let by_size = Retention {
        max_age: None,
        max_bytes: Some(half),
        interval: Duration::from_secs(60),
    };
    let n = store.apply_retention(&by_size, T0).unwrap();
    let s = store.stats().unwrap();
    assert!(s.stored_bytes <= half, "{} > {half}", s.stored_bytes);
    assert!((45..=55).contains(&n), "deleted {n}");
    assert_eq!(s.events, 100 - n);
    assert_eq!(s.oldest, Some(T0 + (100 + n) * 1000), "the oldest go first");
}

#[test]
fn background_retention_runs_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(dir.path()));
    store.append(&sample(10)).unwrap();
    let _task = store.spawn_retention(Retention {
        max_age: Some(Duration::from_secs(3600)),
        max_bytes: None,
        interval: Duration::from_millis(20),
    });
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while store.stats().unwrap().events > 0 {
        assert!(std::time::Instant::now() < end, "retention did not run");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_second_opener_fails_at_once_saying_who_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path());
    let started = std::time::Instant::now();
    let e = Store::open(dir.path(), StoreOptions::default())
        .err()
        .expect("the second open fails");
    assert!(started.elapsed() < Duration::from_secs(5));
    let msg = e.to_string();
    assert!(msg.contains("in use by another process"), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
}

#[test]
fn the_store_directory_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/store");
    let _store = open(&path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_query_past_its_deadline_stops_with_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append(&sample(10)).unwrap();
    let e = store
        .search(
            &Filter::default(),
            &Page::default(),
            Some(Deadline::after(Duration::ZERO)),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::Timeout(_)), "{e}");
}

#[tokio::test]
async fn subscribers_see_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rx = store.subscribe();
    store.append(&[Event::from_body("ERROR live")]).unwrap();
    store.flush().await.unwrap();
    let e = rx.recv().await.unwrap();
    assert_eq!(&e.body[..], b"ERROR live");
    // A batch large enough for two threads: each event as it is stored, in order.
    let batch: Vec<Event> = (0..300)
        .map(|i| {
            let mut e = Event::from_body(format!("WARN line {i}"));
            e.headers.insert("host".into(), format!("web-{}", i % 3));
            e.headers.insert("file".into(), "/var/log/app.log".into());
            e
        })
        .collect();
    let ids = store.append(&batch).unwrap();
    for id in ids {
        let live = rx.recv().await.unwrap();
        assert_eq!(Some(&*live), store.get(id).unwrap().as_ref());
        assert_eq!(live.level.as_deref(), Some("WARN"));
        assert_eq!(live.source.as_deref(), Some("/var/log/app.log"));
    }
}

/// The index is written in runs of events, the newest events indexed in memory:
/// appends whose times overlap each other, spread over hours or arrive out of order
/// still give exactly what a full scan gives, in order both ways and page by page,
/// before and after purges and across a reopen, whether the events are in runs (of 64
/// here), in memory or both.
#[test]
fn the_index_answers_exactly_with_overlapping_wide_and_unordered_appends() {
    for run_events in [64, 100_000] {
        index_answers_exactly(run_events);
    }
}

fn index_answers_exactly(run_events: usize) {
    let dir = tempfile::tempdir().unwrap();
    let opts = || StoreOptions {
        run_events,
        ..StoreOptions::default()
    };
    let mut store = Store::open(dir.path(), opts()).unwrap();
    let mut events = sample(600);
    // Times spread over 5 hours (wider than a list may span), not in append order.
    let mut x = 7u64;
    for e in events.iter_mut() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let t = T0 + (x >> 33) % (5 * 3_600_000);
        e.headers.insert("timestamp".into(), t.to_string());
    }
    // Some appends hold one event, some many (300 takes the two-thread path); a few
    // repeat a time exactly.
    events[10]
        .headers
        .insert("timestamp".into(), T0.to_string());
    events[11]
        .headers
        .insert("timestamp".into(), T0.to_string());
    let mut at = 0;
    for (i, n) in [1usize, 50, 3, 120, 1, 300, 26, 99].into_iter().enumerate() {
        store.append(&events[at..at + n]).unwrap();
        at += n;
        if i == 3 {
            // A purge between appends: later appends bring older times back.
            store.purge_before(T0 + 3_600_000).unwrap();
        }
    }
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let filters = vec![
        Filter {
            hosts: s(&["web-1"]),
            ..Default::default()
        },
        Filter {
            hosts: s(&["web-1", "db-1"]),
            levels: s(&["INFO", "error"]),
            ..Default::default()
        },
        Filter {
            headers: vec![("dc".into(), "us".into())],
            ..Default::default()
        },
        Filter {
            q: Some("payment".into()),
            ..Default::default()
        },
        Filter {
            q: Some("order created".into()),
            from: Some(T0 + 3_000_000),
            to: Some(T0 + 9_000_000),
            ..Default::default()
        },
        Filter {
            sources: s(&["/var/log/app.log"]),
            to: Some(T0 + 15_000_000),
            ..Default::default()
        },
    ];
    let check = |store: &Store, when: &str| {
        let everything = all(store, &Filter::default(), Order::Asc);
        assert_eq!(everything.len() as u64, store.stats().unwrap().events);
        for f in &filters {
            let want: Vec<EventId> = everything
                .iter()
                .filter(|e| f.matches(e))
                .map(|e| e.id)
                .collect();
            if when == "after appends" {
                assert!(!want.is_empty(), "{f:?} matches something");
            }
            assert_eq!(
                ids(&all(store, f, Order::Asc)),
                want,
                "{when}: {f:?} (runs of {run_events})"
            );
            let mut desc = ids(&all(store, f, Order::Desc));
            desc.reverse();
            assert_eq!(desc, want, "{when}: {f:?} newest first");
            for order in [Order::Asc, Order::Desc] {
                let mut paged = Vec::new();
                let mut cursor = None;
                loop {
                    let page = Page {
                        order,
                        limit: 7,
                        cursor,
                    };
                    let r = store.search(f, &page, None).unwrap();
                    paged.extend(ids(&r.events));
                    match r.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                if order == Order::Desc {
                    paged.reverse();
                }
                assert_eq!(paged, want, "{when}: {f:?} paged {order:?}");
            }
        }
        let top = store
            .top(&Field::Header("dc".into()), &Filter::default(), 10, None)
            .unwrap();
        let eu = everything
            .iter()
            .filter(|e| e.headers.get("dc").map(String::as_str) == Some("eu"))
            .count() as u64;
        assert_eq!(top.total, everything.len() as u64, "{when}");
        assert!(top.values.contains(&("eu".to_string(), eu)), "{when}");
    };
    check(&store, "after appends");
    let before = store.stats().unwrap().events;
    let n = store.purge_before(T0 + 2 * 3_600_000).unwrap();
    assert!(n > 0 && n < before);
    check(&store, "after a purge");
    drop(store);
    store = Store::open(dir.path(), opts()).unwrap();
    check(&store, "after a reopen");
    store
        .purge_to_size(store.stats().unwrap().stored_bytes / 2)
        .unwrap();
    check(&store, "after a purge by size");
}

/// The segment files of a store, by name, with their lengths.
fn segment_files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A segment file cut short (by hand, or by a disk that lost synced data) leaves block
/// summaries in sled that point past its end. Emulated by cutting the file back to its
/// length at an earlier flush: the store opens with exactly the events still in the
/// file, counted right, and goes on.
#[tokio::test]
async fn blocks_missing_from_a_cut_file_are_removed_and_the_store_counted_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let flushed = store.append(&sample(90)).unwrap();
    store.flush().await.unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let (name, synced_len) = files[0].clone();
    let mut late = sample(60);
    for e in &mut late {
        e.headers.insert("host".into(), "late-host".into());
    }
    let lost = store.append(&late).unwrap();
    // Closing checkpoints: sled has every summary.
    drop(store);
    let path = dir.path().join("data").join(&name);
    assert!(std::fs::metadata(&path).unwrap().len() > synced_len);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(synced_len)
        .unwrap();

    let store = open(dir.path());
    let stats = store.stats().unwrap();
    assert_eq!(stats.events, 90);
    let hosts = store.values(Field::Host).unwrap();
    assert_eq!(
        hosts,
        [
            ("db-1".into(), 30),
            ("web-1".into(), 30),
            ("web-2".into(), 30)
        ]
    );
    assert!(store.get(lost[0]).unwrap().is_none());
    assert_eq!(
        ids(&all(&store, &Filter::default(), Order::Asc)),
        flushed,
        "every flushed event, and nothing else"
    );
    let late_host = Filter {
        hosts: vec!["late-host".into()],
        ..Default::default()
    };
    assert!(all(&store, &late_host, Order::Asc).is_empty());
    // The store goes on: new events, and a purge of everything.
    store.append(&late).unwrap();
    assert_eq!(all(&store, &late_host, Order::Desc).len(), 60);
    assert_eq!(store.stats().unwrap().events, 150);
    assert_eq!(store.purge_before(u64::MAX).unwrap(), 150);
    let empty = store.stats().unwrap();
    assert_eq!((empty.events, empty.stored_bytes), (0, 0));
}

/// A segment file goes once a purge deleted everything in it; the one being written
/// stays. Each open starts a new file, so two opens make two files here.
#[test]
fn a_purge_deletes_the_segment_files_it_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append(&sample(200)).unwrap();
    drop(store);
    let store = open(dir.path());
    let newer: Vec<Event> = sample(100)
        .into_iter()
        .map(|mut e| {
            e.headers
                .insert("timestamp".into(), (T0 + 1_000_000).to_string());
            e
        })
        .collect();
    let kept = store.append(&newer).unwrap();
    let before = segment_files(dir.path());
    assert_eq!(before.len(), 2, "{before:?}");
    assert_eq!(store.purge_before(T0 + 1_000_000).unwrap(), 200);
    let after = segment_files(dir.path());
    assert_eq!(after, before[1..], "the first file is deleted");
    assert!(store.stats().unwrap().disk_bytes > 0);
    let got = ids(&all(&store, &Filter::default(), Order::Asc));
    assert_eq!(got, kept);
    drop(store);
    let store = open(dir.path());
    assert_eq!(ids(&all(&store, &Filter::default(), Order::Asc)), kept);
}
