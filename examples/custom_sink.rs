//! A sink of your own beside a built-in one, wired in code:
//!
//! ```text
//!                 +-> memory c1 -> NumberedFile (OUT_DIR/numbered.txt)
//! seq (COUNT) ----+
//!                 +-> memory c2 -> file_roll (OUT_DIR/rolled/)
//! ```
//!
//! The seq source puts every event into both channels (a source that lists several
//! channels replicates to each). `NumberedFile` writes each event as `N: BODY` on a
//! line of one file and syncs it before the batch counts as delivered, so a take is
//! committed only once its events are on disk.
//!
//! Usage: `custom_sink OUT_DIR COUNT`. Exits once both sinks delivered COUNT events
//! (status 0), or after 60 s (status 1).

use async_trait::async_trait;
use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
use millrace_core::counters::SinkCounters;
use millrace_core::{Event, Sink, SinkError};
use millrace_node::Pipeline;
use millrace_sinks::file_roll::{FileRollConfig, FileRollSink};
use millrace_sinks::serializer::Serializer;
use millrace_sources::seq::{SeqConfig, SeqSource};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Appends `N: BODY` lines to one file, numbering events from 1.
struct NumberedFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    written: Arc<AtomicU64>,
}

#[async_trait]
impl Sink for NumberedFile {
    async fn start(&mut self) -> Result<(), SinkError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.file = Some(file);
        Ok(())
    }

    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| SinkError::Delivery("deliver before start".into()))?;
        let first = self.written.load(Ordering::SeqCst);
        let mut text = Vec::new();
        for (i, e) in batch.iter().enumerate() {
            write!(text, "{}: ", first + i as u64 + 1)?;
            text.extend_from_slice(&e.body);
            text.push(b'\n');
        }
        // One small write and sync per batch. A sink with real volume would hand
        // this to spawn_blocking, since both block the runtime thread.
        file.write_all(&text)?;
        file.sync_data()?;
        self.written.fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), SinkError> {
        self.file = None;
        Ok(())
    }

    fn batch_size(&self) -> usize {
        100
    }
}

fn memory(name: &str) -> MemoryChannel {
    MemoryChannel::new(
        name,
        MemoryChannelConfig {
            capacity: 10_000,
            transaction_capacity: 100,
            keep_alive: Duration::from_secs(3),
            byte_capacity: None,
        },
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out_dir, count] = args.as_slice() else {
        return Err("usage: custom_sink OUT_DIR COUNT".into());
    };
    let count: u64 = count.parse()?;
    let out_dir = PathBuf::from(out_dir);
    std::fs::create_dir_all(&out_dir)?;

    let written = Arc::new(AtomicU64::new(0));
    let numbered = NumberedFile {
        path: out_dir.join("numbered.txt"),
        file: None,
        written: written.clone(),
    };
    let rolled_counters = Arc::new(SinkCounters::default());
    let rolled = FileRollSink::new(
        "k2",
        FileRollConfig {
            directory: out_dir.join("rolled"),
            roll_interval: None,
            prefix: "seq-".into(),
            extension: "txt".into(),
            serializer: Serializer::Text {
                append_newline: true,
            },
            batch_size: 100,
        },
        rolled_counters.clone(),
    );

    let agent = Pipeline::new("custom_sink")
        .channel("c1", memory("c1"))
        .channel("c2", memory("c2"))
        .source(
            "r1",
            SeqSource::new(SeqConfig {
                total_events: count,
                batch_size: 100,
            }),
            &["c1", "c2"],
        )
        .sink("k1", numbered, "c1")
        .sink_with_counters("k2", rolled, "c2", rolled_counters.clone())
        .start()
        .await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let done = || {
        written.load(Ordering::SeqCst) >= count
            && rolled_counters.event_drain_success.load(Ordering::SeqCst) >= count
    };
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let finished = done();
    // Stopping closes the rolled file, so everything is on disk when this exits.
    agent.stop().await;
    println!(
        "numbered.txt: {} events, rolled/: {} events",
        written.load(Ordering::SeqCst),
        rolled_counters.event_drain_success.load(Ordering::SeqCst)
    );
    if !finished {
        return Err(format!("not every one of {count} events arrived within 60 s").into());
    }
    Ok(())
}
