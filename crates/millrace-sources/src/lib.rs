//! millrace's sources. Each module holds one source: its typed configuration (Flume's
//! property names and defaults) and the running source.
//!
//! | type | what it reads | delivery |
//! |------|---------------|----------|
//! | `avro` | Flume's Avro RPC from avro sinks (Java Flume or millrace) | OK after the put commits, FAILED when refused |
//! | `org.apache.flume.source.kafka.KafkaSource` (feature `kafka`) | Kafka topics | offsets committed after the put commits |
//! | `exec` | lines a command prints | none across a restart (as in Flume) |
//! | `netcat` | lines sent over TCP, acknowledged with `OK` | OK after the put commits, FAILED when refused |
//! | `netcatudp` | UDP datagrams | none (UDP) |
//! | `http` | JSON (or whole bodies) POSTed over HTTP | 200 after the put commits, 503 when full |
//! | `syslogtcp`, `multiport_syslogtcp`, `syslogudp` | syslog (RFC 3164, RFC 5424) | TCP: back-pressure through the connection |
//! | `seq` | a counter 0, 1, 2, ... | test and benchmark load |
//! | `spooldir` | complete files dropped into a directory | position kept after each committed put |
//! | `TAILDIR` | growing files, followed through rotation | position file written after each committed put |
//!
//! A source runs until its context's shutdown token is cancelled, putting batches
//! through the context's channel processor:
//!
//! ```
//! use millrace_core::{CancellationToken, ChannelProcessor, Props, SourceContext};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! rt.block_on(async {
//!     let channel = millrace_channels::build("memory", "c1", &Props::from_pairs(&[])).unwrap();
//!     let props = Props::from_pairs(&[("totalEvents", "3"), ("batchSize", "3")]);
//!     let mut source = millrace_sources::build("seq", &props).unwrap();
//!     let ctx = SourceContext {
//!         name: "r1".into(),
//!         processor: Arc::new(ChannelProcessor::single(channel.clone())),
//!         counters: Arc::default(),
//!         shutdown: CancellationToken::new(),
//!     };
//!     let stop = ctx.shutdown.clone();
//!     let running = tokio::spawn(async move { source.run(&ctx).await });
//!     let txn = channel.take(10, Duration::from_secs(10)).await.unwrap();
//!     let bodies: Vec<&[u8]> = txn.events().iter().map(|e| e.body.as_ref()).collect();
//!     assert_eq!(bodies, [b"0", b"1", b"2"]);
//!     txn.commit().await.unwrap();
//!     stop.cancel();
//!     running.await.unwrap().unwrap();
//! });
//! ```

pub mod avro;
pub mod exec;
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod netcat;
pub mod netcatudp;
pub mod seq;
pub mod spooldir;
pub mod syslog;
pub mod taildir;

use millrace_core::{Props, Source, SourceError};

/// Every source type this crate provides, by alias.
pub const TYPES: &[&str] = &[
    "avro",
    "exec",
    "netcat",
    "netcatudp",
    "http",
    "seq",
    "spooldir",
    "TAILDIR",
    "syslogtcp",
    "multiport_syslogtcp",
    "syslogudp",
    #[cfg(feature = "kafka")]
    "org.apache.flume.source.kafka.KafkaSource",
];

/// Resolves a source type (alias in any case, or Flume's class name) to its alias.
pub fn canonical_type(type_name: &str) -> Option<&'static str> {
    match type_name.to_ascii_lowercase().as_str() {
        "avro" | "org.apache.flume.source.avrosource" => Some("avro"),
        "exec" | "org.apache.flume.source.execsource" => Some("exec"),
        "netcat" | "org.apache.flume.source.netcatsource" => Some("netcat"),
        "netcatudp" | "org.apache.flume.source.netcatudpsource" => Some("netcatudp"),
        "http" | "org.apache.flume.source.http.httpsource" => Some("http"),
        "syslogtcp" | "org.apache.flume.source.syslogtcpsource" => Some("syslogtcp"),
        "multiport_syslogtcp" | "org.apache.flume.source.multiportsyslogtcpsource" => {
            Some("multiport_syslogtcp")
        }
        "syslogudp" | "org.apache.flume.source.syslogudpsource" => Some("syslogudp"),
        "seq" | "org.apache.flume.source.sequencegeneratorsource" => Some("seq"),
        #[cfg(feature = "kafka")]
        "org.apache.flume.source.kafka.kafkasource" => {
            Some("org.apache.flume.source.kafka.KafkaSource")
        }
        "spooldir" | "org.apache.flume.source.spooldirectorysource" => Some("spooldir"),
        "taildir" | "org.apache.flume.source.taildir.taildirsource" => Some("TAILDIR"),
        _ => None,
    }
}

/// Builds a source; problems are recorded in `props`. None when it cannot be built.
pub fn build(canonical: &str, props: &Props) -> Option<Box<dyn Source>> {
    match canonical {
        "avro" => avro::AvroSourceConfig::from_props(props)
            .map(|c| Box::new(avro::AvroSource::new(c)) as _),
        "exec" => {
            exec::ExecConfig::from_props(props).map(|c| Box::new(exec::ExecSource::new(c)) as _)
        }
        "netcat" => netcat::NetcatConfig::from_props(props)
            .map(|c| Box::new(netcat::NetcatSource::new(c)) as _),
        "seq" => seq::SeqConfig::from_props(props).map(|c| Box::new(seq::SeqSource::new(c)) as _),
        "spooldir" => spooldir::SpoolDirConfig::from_props(props)
            .map(|c| Box::new(spooldir::SpoolDirSource::new(c)) as _),
        "http" => {
            http::HttpConfig::from_props(props).map(|c| Box::new(http::HttpSource::new(c)) as _)
        }
        "netcatudp" => netcatudp::NetcatUdpConfig::from_props(props)
            .map(|c| Box::new(netcatudp::NetcatUdpSource::new(c)) as _),
        "syslogtcp" => syslog::SyslogConfig::from_props(props, syslog::Kind::Tcp)
            .map(|c| Box::new(syslog::SyslogTcpSource::new(c)) as _),
        "multiport_syslogtcp" => {
            syslog::SyslogConfig::from_props(props, syslog::Kind::MultiportTcp)
                .map(|c| Box::new(syslog::SyslogTcpSource::new(c)) as _)
        }
        "syslogudp" => syslog::SyslogConfig::from_props(props, syslog::Kind::Udp)
            .map(|c| Box::new(syslog::SyslogUdpSource::new(c)) as _),
        "TAILDIR" => taildir::TaildirConfig::from_props(props)
            .map(|c| Box::new(taildir::TaildirSource::new(c)) as _),
        #[cfg(feature = "kafka")]
        "org.apache.flume.source.kafka.KafkaSource" => kafka::KafkaSourceConfig::from_props(props)
            .map(|c| Box::new(kafka::KafkaSource::new(c)) as _),
        _ => None,
    }
}

/// Writes `contents` to `path` through `PATH.tmp` and a rename, so that a crash
/// leaves the old contents or the new, never a torn file (positions, trackers).
pub(crate) fn replace_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(tmp, path)
}

/// The error of a source that cannot listen on `addr`, with the fix its cause calls
/// for: `host_key` and `port_key` are the source's own property names.
pub(crate) fn cannot_listen(
    addr: &str,
    e: &std::io::Error,
    host_key: &str,
    port_key: &str,
) -> SourceError {
    use std::io::ErrorKind::{AddrInUse, AddrNotAvailable, PermissionDenied};
    let fix = match e.kind() {
        AddrInUse => format!("free the port or change `{port_key}`"),
        PermissionDenied => {
            format!("ports below 1024 need privileges; use a higher `{port_key}`")
        }
        AddrNotAvailable => {
            format!("`{host_key}` must be an address of this machine (or 0.0.0.0 for all of them)")
        }
        // A name that does not resolve ("Name or service not known") has no kind of its own.
        _ => format!(
            "check `{host_key}` (an address or name of this machine, or 0.0.0.0) and `{port_key}`"
        ),
    };
    SourceError::Failed(format!("cannot listen on {addr}: {e}; {fix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(addr: &str) -> String {
        let e = std::net::TcpListener::bind(addr).unwrap_err();
        cannot_listen(addr, &e, "bind", "port").to_string()
    }

    /// The problems configtest would print for a source of type `ty`.
    fn problems(ty: &str, pairs: &[(&str, &str)]) -> Vec<String> {
        let p = Props::from_pairs(pairs);
        let _ = build(ty, &p);
        p.finish().into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn flume_names_are_read_and_what_is_not_implemented_is_refused() {
        let spool = [("spoolDir", "/tmp/in")];
        // Read as Flume reads them, whether or not their header is on.
        let d = problems("spooldir", &[spool[0], ("fileHeaderKey", "f")]);
        assert!(d.is_empty(), "{d:?}");
        let p = Props::from_pairs(&[spool[0], ("trackingPolicy", "TRACKER_DIR")]);
        let c = spooldir::SpoolDirConfig::from_props(&p).unwrap();
        assert!(p.finish().is_empty());
        assert_eq!(c.tracking, spooldir::TrackingPolicy::TrackerDir);
        let p = Props::from_pairs(&[spool[0], ("bufferMaxLineLength", "100")]);
        let c = spooldir::SpoolDirConfig::from_props(&p).unwrap();
        assert!(matches!(
            c.deserializer,
            spooldir::Deserializer::Line {
                max_line_length: 100
            }
        ));
        let d = problems(
            "TAILDIR",
            &[
                ("filegroups", "f1"),
                ("filegroups.f1", "/tmp/a.log"),
                ("fileHeaderKey", "f"),
            ],
        );
        assert!(d.is_empty(), "{d:?}");
        let net = [("bind", "127.0.0.1"), ("port", "4444")];
        assert!(problems("netcat", &[net[0], net[1], ("encoding", "UTF-8")]).is_empty());
        let d = problems("netcat", &[net[0], net[1], ("encoding", "ISO-8859-1")]);
        assert!(d.iter().any(|m| m.contains("is not supported")), "{d:?}");
        #[cfg(feature = "kafka")]
        {
            let kafka = [
                ("kafka.bootstrap.servers", "127.0.0.1:9092"),
                ("kafka.topics", "t"),
            ];
            let d = problems(
                "org.apache.flume.source.kafka.KafkaSource",
                &[
                    kafka[0],
                    kafka[1],
                    ("setTopicHeader", "false"),
                    ("topicHeader", "t"),
                ],
            );
            assert!(d.is_empty(), "{d:?}");
            let d = problems(
                "org.apache.flume.source.kafka.KafkaSource",
                &[kafka[0], kafka[1], ("header.trace", "trace-id")],
            );
            // Flume 1.11's header mapping is read, not refused.
            assert!(d.is_empty(), "{d:?}");
        }
    }

    #[test]
    fn a_listen_error_names_the_property_to_fix() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        assert!(listen(&addr).ends_with("free the port or change `port`"));
        // TEST-NET-1: never an address of this machine.
        assert!(listen("192.0.2.55:0")
            .ends_with("`bind` must be an address of this machine (or 0.0.0.0 for all of them)"));
        assert!(listen("no-such-host.invalid:0").contains("check `bind`"));
    }
}
