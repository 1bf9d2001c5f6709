//! Put+take throughput of the memory and file channels, the disk's fsync rate, and
//! file channel replay time.
//!
//!     cargo bench -p millrace-channels --bench channel_throughput [-- EVENTS]
//!
//! Four producers put batches while one consumer takes and commits them, so the file
//! channel's group commit has concurrent transactions to share syncs between.

use millrace_channels::file::{FileChannel, FileChannelConfig};
use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
use millrace_core::{Channel, Event, Props};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PRODUCERS: usize = 4;

/// Appends of `bytes` each followed by fdatasync, per second: what the disk allows
/// for one put of that size.
fn fsyncs_per_second(dir: &std::path::Path, bytes: usize) -> f64 {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).unwrap();
    let buf = vec![b'x'; bytes];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let _ = std::fs::remove_file(path);
    n as f64 / start.elapsed().as_secs_f64()
}

fn file_config(dir: &std::path::Path, tx: usize) -> FileChannelConfig {
    let ck = dir.join("ck");
    let data = dir.join("data");
    let tx = tx.to_string();
    let p = Props::from_pairs(&[
        ("checkpointDir", ck.to_str().unwrap()),
        ("dataDirs", data.to_str().unwrap()),
        ("capacity", "2000000"),
        ("transactionCapacity", &tx),
        ("minimumRequiredSpace", "0"),
    ]);
    FileChannelConfig::from_props(&p).expect("valid")
}

async fn run(ch: Arc<dyn Channel>, events: usize, size: usize, batch: usize) -> f64 {
    let body = vec![b'x'; size];
    let per = events / PRODUCERS / batch;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let ch = ch.clone();
        let body = bytes::Bytes::from(body.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let b: Vec<Event> = (0..batch).map(|_| Event::from_body(body.clone())).collect();
                ch.put(b).await.expect("put");
            }
        }));
    }
    let total = per * PRODUCERS * batch;
    let consumer = {
        let ch = ch.clone();
        tokio::spawn(async move {
            let mut got = 0;
            while got < total {
                let t = ch
                    .take(batch, Duration::from_millis(100))
                    .await
                    .expect("take");
                got += t.len();
                t.commit().await.expect("commit");
            }
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    consumer.await.unwrap();
    total as f64 / start.elapsed().as_secs_f64()
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() {
    let events: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(400_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    println!(
        "disk: {:.0} fdatasync/s after 100-byte appends, under {}",
        fsyncs_per_second(dir.path(), 100),
        dir.path().display()
    );
    println!();
    println!("| channel | event bytes | batch | events/s | disk limit: batch x syncs/s of one batch-sized append | target: min(limit, memory) / 2 |");
    println!("|---|---|---|---|---|---|");
    for size in [100usize, 1000] {
        for batch in [100usize, 1000] {
            let mem: Arc<dyn Channel> = Arc::new(MemoryChannel::new(
                "m",
                MemoryChannelConfig {
                    capacity: 2_000_000,
                    transaction_capacity: batch,
                    keep_alive: Duration::from_secs(3),
                    byte_capacity: None,
                },
            ));
            let m = rt.block_on(run(mem, events, size, batch));
            println!("| memory | {size} | {batch} | {m:.0} | | |");
            // A record is the event plus about 12 bytes of framing.
            let limit = batch as f64 * fsyncs_per_second(dir.path(), batch * (size + 12));
            let d = tempfile::tempdir_in(dir.path()).unwrap();
            let fc = FileChannel::new("f", file_config(d.path(), batch));
            fc.open_sync().unwrap();
            let fc: Arc<dyn Channel> = Arc::new(fc);
            let f = rt.block_on(run(fc.clone(), events, size, batch));
            rt.block_on(fc.close());
            let target = limit.min(m) / 2.0;
            println!("| file (fsyncPerTransaction) | {size} | {batch} | {f:.0} | {limit:.0} | {target:.0} |");
        }
    }
    // Replay: 1,000,000 pending 100-byte events, from a checkpoint and from the log alone.
    let d = tempfile::tempdir_in(dir.path()).unwrap();
    let cfg = file_config(d.path(), 1000);
    let fc = FileChannel::new("f", cfg.clone());
    fc.open_sync().unwrap();
    rt.block_on(async {
        let body = bytes::Bytes::from(vec![b'x'; 100]);
        for _ in 0..1000 {
            fc.put((0..1000).map(|_| Event::from_body(body.clone())).collect())
                .await
                .unwrap();
        }
        fc.close().await;
    });
    drop(fc);
    println!();
    for (label, remove) in [
        ("from checkpoint", false),
        ("log only (no checkpoint)", true),
    ] {
        if remove {
            std::fs::remove_file(d.path().join("ck").join("checkpoint")).unwrap();
        }
        let start = Instant::now();
        let fc = FileChannel::new("f", cfg.clone());
        let r = fc.open_sync().unwrap();
        let took = start.elapsed();
        assert_eq!(r.pending, 1_000_000);
        println!(
            "replay of {} pending events {label}: {:.2} s",
            r.pending,
            took.as_secs_f64()
        );
        rt.block_on(fc.close());
    }
    println!("peak RSS of this benchmark process: {:.0} MB", rss_mb());
}
