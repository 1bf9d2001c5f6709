//! The `logger` sink: logs each event at INFO, the body cut to `maxBytesToLog` bytes,
//! in Flume's form: `Event: { headers:{k=v} body: 48 65 6C 6C 6F  Hello }`.

use async_trait::async_trait;
use millrace_core::{Event, Props, Sink, SinkError};
use std::fmt::Write;

#[derive(Debug, Clone)]
pub struct LoggerConfig {
    /// `maxBytesToLog` (default 16): how much of each body is shown.
    pub max_bytes_to_log: usize,
    /// `batchSize` (default 1): events per take. Flume's logger sink takes one event
    /// per transaction, so a Flume configuration whose channel has a small
    /// `transactionCapacity` runs unchanged; a larger batch is millrace's own.
    pub batch_size: usize,
}

impl LoggerConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let max_bytes_to_log = p.u64_in("maxBytesToLog", 16, 0, 1 << 30) as usize;
        let batch_size = p.u64_in("batchSize", 1, 1, 10_000) as usize;
        (!p.has_errors()).then_some(LoggerConfig {
            max_bytes_to_log,
            batch_size,
        })
    }
}

pub struct LoggerSink {
    name: String,
    cfg: LoggerConfig,
}

impl LoggerSink {
    pub fn new(name: &str, cfg: LoggerConfig) -> Self {
        LoggerSink {
            name: name.to_string(),
            cfg,
        }
    }
}

/// Renders an event as Flume's EventHelper.dumpEvent does.
pub fn dump_event(e: &Event, max_bytes: usize) -> String {
    let mut s = String::from("Event: { headers:{");
    for (i, (k, v)) in e.headers.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{k}={v}");
    }
    s.push_str("} body: ");
    let body = &e.body[..e.body.len().min(max_bytes)];
    for b in body {
        let _ = write!(s, "{b:02X} ");
    }
    s.push(' ');
    s.extend(body.iter().map(|&b| {
        if b.is_ascii_graphic() || b == b' ' {
            b as char
        } else {
            '.'
        }
    }));
    s.push_str(" }");
    s
}

#[async_trait]
impl Sink for LoggerSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        for e in batch {
            tracing::info!(sink = %self.name, "{}", dump_event(e, self.cfg.max_bytes_to_log));
        }
        Ok(())
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_like_flume() {
        let e = Event::from_body("Hello world, this is long").with_header("host", "a");
        assert_eq!(
            dump_event(&e, 5),
            "Event: { headers:{host=a} body: 48 65 6C 6C 6F  Hello }"
        );
    }
}
