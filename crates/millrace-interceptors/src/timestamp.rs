//! `timestamp`: sets a header to the time the event was intercepted, in epoch ms.

use millrace_core::counters::now_millis;
use millrace_core::{Event, Interceptor, Props};

pub struct TimestampInterceptor {
    /// `headerName` (default `timestamp`), Flume's name for it.
    header: String,
    /// `preserveExisting` (default false): keep a header that is already set.
    preserve: bool,
}

impl TimestampInterceptor {
    pub fn from_props(p: &Props) -> Option<Self> {
        let header = p.string("headerName", "timestamp");
        let preserve = p.bool("preserveExisting", false);
        (!p.has_errors()).then_some(TimestampInterceptor { header, preserve })
    }
}

impl Interceptor for TimestampInterceptor {
    /// Reads the clock once per batch: events of one batch arrived together, and a
    /// clock read per event would cost more than the rest of this interceptor.
    fn intercept(&self, mut batch: Vec<Event>) -> Vec<Event> {
        let now = now_millis().to_string();
        for e in &mut batch {
            super::set_header(e, &self.header, &now, self.preserve);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_preserves() {
        let i = TimestampInterceptor::from_props(&Props::from_pairs(&[])).unwrap();
        let before = now_millis();
        let out = i.intercept(vec![Event::from_body("a").with_header("timestamp", "1")]);
        let ts: u64 = out[0].header("timestamp").unwrap().parse().unwrap();
        assert!(ts >= before, "overwritten by default");
        let p = Props::from_pairs(&[("preserveExisting", "true"), ("headerName", "ts")]);
        let i = TimestampInterceptor::from_props(&p).unwrap();
        let out = i.intercept(vec![
            Event::from_body("a").with_header("ts", "1"),
            Event::from_body("b"),
        ]);
        assert_eq!(out[0].header("ts"), Some("1"));
        assert!(out[1].header("ts").is_some());
    }
}
