//! Follows `*.log` files in a directory and sends their lines to Kafka, with a custom
//! interceptor in between, wired in code:
//!
//! ```text
//! TAILDIR (LOG_DIR/.*\.log) -> LevelRouter -> memory channel -> Kafka sink (TOPIC)
//! ```
//!
//! `LevelRouter` reads the level word of each line (`... INFO ...`): DEBUG lines are
//! dropped, every other line gets its level as the record key, and ERROR lines go to
//! `TOPIC-errors` instead of `TOPIC` through the `topic` header the Kafka sink obeys.
//!
//! Usage: `taildir_kafka LOG_DIR POSITION_FILE BOOTSTRAP_SERVERS TOPIC`. Runs until
//! SIGINT or SIGTERM, then stops the way an agent does: the source first, then the
//! sink drains the channel.

use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
use millrace_core::{Event, Interceptor, Props};
use millrace_node::Pipeline;
use millrace_sinks::kafka::{KafkaSink, KafkaSinkConfig};
use millrace_sources::taildir::{FileGroup, TaildirConfig, TaildirSource};
use regex::bytes::Regex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Drops DEBUG lines, keys every other line by its level and sends ERROR lines to a
/// topic of their own. It runs on the source's task for every batch, so it does no
/// I/O and allocates only the headers it sets.
struct LevelRouter {
    level: Regex,
    errors_topic: String,
}

impl LevelRouter {
    fn new(errors_topic: String) -> Self {
        LevelRouter {
            level: Regex::new(r"\b(TRACE|DEBUG|INFO|WARN|ERROR)\b").expect("a valid pattern"),
            errors_topic,
        }
    }
}

impl Interceptor for LevelRouter {
    fn intercept(&self, batch: Vec<Event>) -> Vec<Event> {
        batch
            .into_iter()
            .filter_map(|mut e| {
                let Some(level) = self.level.captures(&e.body).and_then(|c| c.get(1)) else {
                    return Some(e);
                };
                let level = String::from_utf8_lossy(level.as_bytes()).into_owned();
                match level.as_str() {
                    "TRACE" | "DEBUG" => return None,
                    "ERROR" => {
                        e.headers.insert("topic".into(), self.errors_topic.clone());
                    }
                    _ => {}
                }
                // The Kafka sink makes the `key` header the record key.
                e.headers.insert("key".into(), level);
                Some(e)
            })
            .collect()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [log_dir, position_file, bootstrap, topic] = args.as_slice() else {
        return Err("usage: taildir_kafka LOG_DIR POSITION_FILE BOOTSTRAP_SERVERS TOPIC".into());
    };

    let source = TaildirSource::new(TaildirConfig {
        groups: vec![FileGroup {
            name: "logs".into(),
            dir: PathBuf::from(log_dir),
            pattern: regex::Regex::new(r"^.*\.log$")?,
            headers: Default::default(),
        }],
        position_file: PathBuf::from(position_file),
        byte_offset_header: false,
        skip_to_end: false,
        idle_timeout: Duration::from_secs(120),
        batch_size: 100,
        max_batch_count: u64::MAX,
        backoff_increment: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        file_header: Some("file".into()),
    });

    let channel = MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: 10_000,
            transaction_capacity: 1000,
            keep_alive: Duration::from_secs(3),
            byte_capacity: None,
        },
    );

    // The Kafka sink's settings are read under Flume's names: that is where Flume's
    // producer defaults are mapped onto librdkafka's and checked, as configtest does.
    let props = Props::from_pairs(&[
        ("kafka.bootstrap.servers", bootstrap),
        ("kafka.topic", topic),
        ("flumeBatchSize", "100"),
        ("kafka.producer.linger.ms", "5"),
    ]);
    let Some(sink_config) = KafkaSinkConfig::from_props(&props) else {
        let problems: Vec<String> = props.finish().iter().map(|d| d.to_string()).collect();
        return Err(problems.join("\n").into());
    };
    let counters = Arc::default();
    let sink = KafkaSink::new("k1", sink_config, Arc::clone(&counters));

    let agent = Pipeline::new("taildir_kafka")
        .channel("c1", channel)
        .source("r1", source, &["c1"])
        .interceptor("r1", LevelRouter::new(format!("{topic}-errors")))
        .sink_with_counters("k1", sink, "c1", counters)
        .start()
        .await?;

    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    agent.stop().await;
    Ok(())
}
