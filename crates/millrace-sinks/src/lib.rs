//! millrace's sinks. Each module holds one sink: its typed configuration (Flume's
//! property names and defaults) and the running sink.
//!
//! | type | where events go | `deliver` returns once |
//! |------|-----------------|------------------------|
//! | `logger` | the agent's log (INFO) | logged |
//! | `null` | nowhere | at once |
//! | `file_roll` | files in a directory, rolled on an interval | written to the OS |
//! | `org.apache.flume.sink.kafka.KafkaSink` (feature `kafka`) | a Kafka topic | every record acknowledged at `acks` |
//! | `avro` | an avro source over Flume's Avro RPC (Java Flume or millrace) | the source answered OK |
//! | `http` | an HTTP or HTTPS endpoint, one POST per event | the status's `rollback` rule says commit |
//! | `hdfs` (feature `hdfs`) | HDFS files (SequenceFile, DataStream, CompressedStream) | every file it touched is synced to the datanodes |
//!
//! A sink is built from Flume properties and driven by the agent's runner, which
//! commits the channel's take only when `deliver` returns `Ok`. Used on its own:
//!
//! ```
//! use millrace_core::counters::SinkCounters;
//! use millrace_core::{Event, Props};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let props = Props::from_pairs(&[
//!     ("sink.directory", dir.path().to_str().unwrap()),
//!     ("sink.rollInterval", "0"),
//! ]);
//! let counters = Arc::new(SinkCounters::default());
//! let mut sink = millrace_sinks::build("file_roll", "k1", &props, counters)
//!     .expect("valid properties");
//! sink.start().await.unwrap();
//! sink.deliver(&[Event::from_body("hello"), Event::from_body("world")])
//!     .await
//!     .unwrap();
//! sink.stop().await.unwrap();
//! let file = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap();
//! assert_eq!(std::fs::read_to_string(file.path()).unwrap(), "hello\nworld\n");
//! # }
//! ```

pub mod avro;
pub mod file_roll;
#[cfg(feature = "hdfs")]
pub mod hdfs;
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod logger;
pub mod null;
pub mod serializer;
mod tls;

use millrace_core::counters::SinkCounters;
use millrace_core::{Props, Sink};
use std::sync::Arc;

/// Every sink type this crate provides, by alias.
pub const TYPES: &[&str] = &[
    "logger",
    "null",
    "file_roll",
    "avro",
    "http",
    #[cfg(feature = "hdfs")]
    "hdfs",
    #[cfg(feature = "kafka")]
    "org.apache.flume.sink.kafka.KafkaSink",
];

/// Resolves a sink type (alias in any case, or Flume's class name) to its alias.
pub fn canonical_type(type_name: &str) -> Option<&'static str> {
    match type_name.to_ascii_lowercase().as_str() {
        "logger" | "org.apache.flume.sink.loggersink" => Some("logger"),
        "null" | "org.apache.flume.sink.nullsink" => Some("null"),
        "file_roll" | "org.apache.flume.sink.rollingfilesink" => Some("file_roll"),
        "avro" | "org.apache.flume.sink.avrosink" => Some("avro"),
        "http" | "org.apache.flume.sink.http.httpsink" => Some("http"),
        #[cfg(feature = "hdfs")]
        "hdfs" | "org.apache.flume.sink.hdfs.hdfseventsink" => Some("hdfs"),
        #[cfg(feature = "kafka")]
        "org.apache.flume.sink.kafka.kafkasink" => Some("org.apache.flume.sink.kafka.KafkaSink"),
        _ => None,
    }
}

/// Builds a sink; problems are recorded in `props`. None when it cannot be built.
pub fn build(
    canonical: &str,
    name: &str,
    props: &Props,
    counters: Arc<SinkCounters>,
) -> Option<Box<dyn Sink>> {
    match canonical {
        "logger" => logger::LoggerConfig::from_props(props)
            .map(|c| Box::new(logger::LoggerSink::new(name, c)) as _),
        "null" => {
            null::NullConfig::from_props(props).map(|c| Box::new(null::NullSink::new(c)) as _)
        }
        "file_roll" => file_roll::FileRollConfig::from_props(props)
            .map(|c| Box::new(file_roll::FileRollSink::new(name, c, counters)) as _),
        "avro" => avro::AvroSinkConfig::from_props(props)
            .map(|c| Box::new(avro::AvroSink::new(name, c, counters)) as _),
        "http" => http::HttpSinkConfig::from_props(props)
            .map(|c| Box::new(http::HttpSink::new(name, c, counters)) as _),
        #[cfg(feature = "hdfs")]
        "hdfs" => hdfs::HdfsSinkConfig::from_props(props)
            .map(|c| Box::new(hdfs::HdfsSink::new(name, c, counters)) as _),
        #[cfg(feature = "kafka")]
        "org.apache.flume.sink.kafka.KafkaSink" => kafka::KafkaSinkConfig::from_props(props)
            .map(|c| Box::new(kafka::KafkaSink::new(name, c, counters)) as _),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems configtest would print for a sink of type `ty`.
    fn problems(ty: &str, pairs: &[(&str, &str)]) -> Vec<String> {
        let p = Props::from_pairs(pairs);
        let _ = build(ty, "k1", &p, Arc::default());
        p.finish().into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn flume_names_are_read_and_what_is_not_implemented_is_refused() {
        assert!(problems("null", &[("logEveryNEvents", "500")]).is_empty());
        #[cfg(feature = "hdfs")]
        for codec in ["None", "none"] {
            let d = problems(
                "hdfs",
                &[
                    ("hdfs.path", "hdfs://127.0.0.1:8020/logs"),
                    ("hdfs.fileType", "DataStream"),
                    ("hdfs.codeC", codec),
                    ("hdfs.useRawLocalFileSystem", "false"),
                ],
            );
            assert!(d.is_empty(), "{codec}: {d:?}");
        }
        #[cfg(feature = "kafka")]
        {
            let kafka = [
                ("kafka.bootstrap.servers", "127.0.0.1:9092"),
                ("kafka.topic", "t"),
            ];
            let sink = "org.apache.flume.sink.kafka.KafkaSink";
            let d = problems(
                sink,
                &[
                    kafka[0],
                    kafka[1],
                    ("allowTopicOverride", "false"),
                    ("topicHeader", "t"),
                ],
            );
            assert!(d.is_empty(), "{d:?}");
            // Flume 1.11's header mapping is read, not refused.
            let d = problems(sink, &[kafka[0], kafka[1], ("header.trace", "trace-id")]);
            assert!(d.is_empty(), "{d:?}");
        }
    }
}
