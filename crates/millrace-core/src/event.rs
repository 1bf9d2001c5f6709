//! The unit of data: headers and a body.

use bytes::Bytes;
use std::collections::BTreeMap;

/// Event headers. Ordered so that every serializer writes them in a stable order.
pub type Headers = BTreeMap<String, String>;

/// One log record moving through a pipeline. Cloning shares the body (`Bytes` is
/// reference counted), so fan-out to several channels never copies payloads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub headers: Headers,
    pub body: Bytes,
}

impl Event {
    pub fn new(headers: Headers, body: impl Into<Bytes>) -> Self {
        Event {
            headers,
            body: body.into(),
        }
    }

    pub fn from_body(body: impl Into<Bytes>) -> Self {
        Event {
            headers: Headers::new(),
            body: body.into(),
        }
    }

    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.get(key).map(String::as_str)
    }

    /// Bytes this event occupies for byte-capacity accounting: body plus header text,
    /// the measure Flume's memory channel uses (it counts body bytes only; headers are
    /// included here because they cost memory just the same).
    pub fn size_estimate(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}
