//! The `seq` source: emits 0, 1, 2, ... as event bodies, `totalEvents` of them.
//! Used for tests and benchmarks, as Flume's SequenceGeneratorSource is.

use async_trait::async_trait;
use bytes::Bytes;
use millrace_core::{Event, Props, Source, SourceContext, SourceError};

#[derive(Debug, Clone)]
pub struct SeqConfig {
    /// `totalEvents` (default: unbounded): how many events to emit.
    pub total_events: u64,
    /// `batchSize` (default 1): events per put.
    pub batch_size: usize,
}

impl SeqConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let total_events = p.u64_in("totalEvents", i64::MAX as u64, 0, i64::MAX as u64);
        let batch_size = p.u64_in("batchSize", 1, 1, 1_000_000) as usize;
        (!p.has_errors()).then_some(SeqConfig {
            total_events,
            batch_size,
        })
    }
}

pub struct SeqSource {
    cfg: SeqConfig,
    /// The next number to emit; only advanced after a put committed.
    next: u64,
}

impl SeqSource {
    pub fn new(cfg: SeqConfig) -> Self {
        SeqSource { cfg, next: 0 }
    }
}

#[async_trait]
impl Source for SeqSource {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        let mut buf = itoa_buf();
        while self.next < self.cfg.total_events && !ctx.shutdown.is_cancelled() {
            let n = (self.cfg.total_events - self.next).min(self.cfg.batch_size as u64);
            let batch: Vec<Event> = (self.next..self.next + n)
                .map(|i| Event::from_body(Bytes::copy_from_slice(format_u64(&mut buf, i))))
                .collect();
            if ctx.put(batch).await.is_err() {
                return Ok(());
            }
            self.next += n;
        }
        ctx.shutdown.cancelled().await;
        Ok(())
    }

    fn batch_size(&self) -> Option<usize> {
        Some(self.cfg.batch_size)
    }
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Formats without allocating; the body copy is the only allocation per event.
fn format_u64(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        let mut b = itoa_buf();
        assert_eq!(format_u64(&mut b, 0), b"0");
        assert_eq!(format_u64(&mut b, 1234567890), b"1234567890");
        assert_eq!(
            format_u64(&mut b, u64::MAX),
            u64::MAX.to_string().as_bytes()
        );
    }
}
