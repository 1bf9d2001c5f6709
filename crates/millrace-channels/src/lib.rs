//! millrace's channels. A channel sits between sources and sinks and decouples their
//! speeds; what it guarantees across a crash depends on its type:
//!
//! | type | survives a crash | bounded by |
//! |------|------------------|------------|
//! | `memory` | no | `capacity` events, `byteCapacity` bytes |
//! | `file` | yes: a committed put is on disk (synced) until its take commits | `capacity` events, `minimumRequiredSpace` free disk |
//! | `org.apache.flume.channel.kafka.KafkaChannel` (feature `kafka`) | yes: records stay in the topic until the take's offsets are committed | the topic's retention |
//! | `SPILLABLEMEMORY` | what spilled to disk, not what was in memory | `memoryCapacity` + `overflowCapacity` |
//!
//! ```
//! use millrace_core::{Channel, Event, Props};
//! use std::time::Duration;
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! rt.block_on(async {
//!     let props = Props::from_pairs(&[("capacity", "1000")]);
//!     let ch = millrace_channels::build("memory", "c1", &props).unwrap();
//!     ch.put(vec![Event::from_body("hello")]).await.unwrap();
//!     let txn = ch.take(10, Duration::ZERO).await.unwrap();
//!     assert_eq!(txn.events()[0].body.as_ref(), b"hello");
//!     txn.commit().await.unwrap();
//! });
//! ```

pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
pub mod spillable;

use millrace_core::{Channel, Props};
use std::sync::Arc;

/// Every channel type this crate provides, by alias.
pub const TYPES: &[&str] = &[
    "memory",
    "file",
    "SPILLABLEMEMORY",
    #[cfg(feature = "kafka")]
    "org.apache.flume.channel.kafka.KafkaChannel",
];

/// Resolves a channel type (alias in any case, or Flume's class name) to its alias.
pub fn canonical_type(type_name: &str) -> Option<&'static str> {
    match type_name.to_ascii_lowercase().as_str() {
        "memory" | "org.apache.flume.channel.memorychannel" => Some("memory"),
        "file" | "org.apache.flume.channel.file.filechannel" => Some("file"),
        "spillablememory" | "org.apache.flume.channel.spillablememorychannel" => {
            Some("SPILLABLEMEMORY")
        }
        #[cfg(feature = "kafka")]
        "org.apache.flume.channel.kafka.kafkachannel" => {
            Some("org.apache.flume.channel.kafka.KafkaChannel")
        }
        _ => None,
    }
}

/// Builds a channel; problems are recorded in `props`. None when it cannot be built.
pub fn build(canonical: &str, name: &str, props: &Props) -> Option<Arc<dyn Channel>> {
    match canonical {
        "memory" => {
            let cfg = memory::MemoryChannelConfig::from_props(props)?;
            Some(Arc::new(memory::MemoryChannel::new(name, cfg)))
        }
        "SPILLABLEMEMORY" => {
            let cfg = spillable::SpillableConfig::from_props(props)?;
            Some(Arc::new(spillable::SpillableChannel::new(name, cfg)))
        }
        "file" => {
            let cfg = file::FileChannelConfig::from_props(props)?;
            Some(Arc::new(file::FileChannel::new(name, cfg)))
        }
        #[cfg(feature = "kafka")]
        "org.apache.flume.channel.kafka.KafkaChannel" => {
            let cfg = kafka::KafkaChannelConfig::from_props(props)?;
            Some(Arc::new(kafka::KafkaChannel::new(name, cfg)))
        }
        _ => None,
    }
}
