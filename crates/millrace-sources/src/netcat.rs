//! The `netcat` source: listens on a TCP port; every line a client sends becomes an
//! event, answered like Flume's NetcatSource:
//!
//! - `OK` once the put committed (when `ack-every-event`);
//! - `FAILED: <reason>` when the channel refused the put (full, closed). The line is
//!   dropped, not retried, and the connection goes on with the next line, so the
//!   client learns at once what was not stored. Lines read together are put in one
//!   transaction (at most the channel's `transactionCapacity`), so a refused put
//!   answers `FAILED` for each of its lines; Flume puts one line per transaction.
//! - `FAILED: Event exceeds the maximum length (N chars, including newline)` for a line
//!   longer than `max-line-length`, counted in `EventReadFail`. Flume then closes the
//!   connection; millrace skips the line up to its newline and goes on.
//!
//! Replies come in the order of the lines. `max-line-length` counts characters as
//! Flume does (UTF-16 code units of the decoded line: `é` is one, an emoji two), not
//! bytes.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use millrace_core::counters::inc;
use millrace_core::{Event, Props, Source, SourceContext, SourceError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct NetcatConfig {
    /// `bind` (required): the address to listen on.
    pub bind: String,
    /// `port` (required): the port to listen on.
    pub port: u16,
    /// `max-line-length` (default 512): the longest accepted line in characters,
    /// newline included.
    pub max_line_length: usize,
    /// `ack-every-event` (default true): answer `OK` for every stored line. `FAILED`
    /// is answered either way.
    pub ack_every_event: bool,
}

impl NetcatConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let bind = p.required(
            "bind",
            "set the address to listen on, e.g. 0.0.0.0 or 127.0.0.1",
        );
        let port = p.port("port", "set the TCP port to listen on, e.g. 44444");
        let max_line_length = p.u64_in("max-line-length", 512, 1, 64 * 1024 * 1024) as usize;
        let ack_every_event = p.bool("ack-every-event", true);
        // Flume decodes lines with `encoding` and stores UTF-8. Lines are stored as sent
        // here, which is the same for UTF-8 (the default) and its ASCII subset.
        let encoding = p.string("encoding", "utf-8");
        if !matches!(
            encoding
                .trim()
                .to_ascii_lowercase()
                .replace('_', "-")
                .as_str(),
            "utf-8" | "utf8" | "us-ascii" | "ascii"
        ) {
            p.error_at(
                "encoding",
                format!(
                    "`{}` = {encoding} is not supported; netcat reads UTF-8 (remove the line, or convert the input)",
                    p.full_key("encoding")
                ),
            );
        }
        if p.has_errors() {
            return None;
        }
        Some(NetcatConfig {
            bind: bind?,
            port: port?,
            max_line_length,
            ack_every_event,
        })
    }
}

pub struct NetcatSource {
    cfg: NetcatConfig,
}

impl NetcatSource {
    pub fn new(cfg: NetcatConfig) -> Self {
        NetcatSource { cfg }
    }
}

#[async_trait]
impl Source for NetcatSource {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        let addr = format!("{}:{}", self.cfg.bind, self.cfg.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| crate::cannot_listen(&addr, &e, "bind", "port"))?;
        tracing::info!(source = %ctx.name, %addr, "netcat source listening");
        loop {
            tokio::select! {
                _ = ctx.shutdown.cancelled() => return Ok(()),
                r = listener.accept() => match r {
                    Ok((sock, peer)) => {
                        let ctx = ctx.clone();
                        let cfg = self.cfg.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve(sock, &ctx, &cfg).await {
                                tracing::debug!(source = %ctx.name, %peer, error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(source = %ctx.name, error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
}

async fn serve(
    mut sock: TcpStream,
    ctx: &SourceContext,
    cfg: &NetcatConfig,
) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let max_batch = ctx.processor.max_batch().max(1);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut lines = LineSplitter::new(cfg.max_line_length);
    let mut batch: Vec<Event> = Vec::new();
    let mut replies: Vec<u8> = Vec::new();
    loop {
        let n = tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(()),
            r = sock.read_buf(&mut buf) => r?,
        };
        if n == 0 {
            return Ok(());
        }
        while let Some(line) = lines.next_line(&mut buf) {
            match line {
                Line::Body(body) => {
                    batch.push(Event::from_body(body));
                    if batch.len() >= max_batch {
                        put_lines(ctx, cfg, &mut batch, &mut replies).await;
                    }
                }
                Line::TooLong => {
                    // The lines before it are answered first: replies follow the lines.
                    put_lines(ctx, cfg, &mut batch, &mut replies).await;
                    reject_long_line(ctx, cfg, &mut replies);
                }
            }
        }
        put_lines(ctx, cfg, &mut batch, &mut replies).await;
        if !replies.is_empty() {
            sock.write_all(&replies).await?;
            replies.clear();
        }
    }
}

/// Puts `batch` once and appends one reply per line. A refused put is answered
/// `FAILED` and dropped, as Flume does, so `EventReceivedCount` counts each line once.
async fn put_lines(
    ctx: &SourceContext,
    cfg: &NetcatConfig,
    batch: &mut Vec<Event>,
    replies: &mut Vec<u8>,
) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len();
    match ctx
        .processor
        .process(std::mem::take(batch), &ctx.counters)
        .await
    {
        Ok(()) => {
            if cfg.ack_every_event {
                for _ in 0..n {
                    replies.extend_from_slice(b"OK\n");
                }
            }
        }
        Err(e) => {
            tracing::warn!(source = %ctx.name, lines = n, error = %e, "put refused; the lines were answered FAILED and dropped");
            // One reply per line: a newline inside the reason would read as two.
            let reply = format!("FAILED: {}\n", e.to_string().replace(['\r', '\n'], " "));
            for _ in 0..n {
                replies.extend_from_slice(reply.as_bytes());
            }
        }
    }
}

fn reject_long_line(ctx: &SourceContext, cfg: &NetcatConfig, replies: &mut Vec<u8>) {
    tracing::warn!(source = %ctx.name, max = cfg.max_line_length, "client sent a line longer than max-line-length; skipped");
    inc(&ctx.counters.event_read_fail);
    replies.extend_from_slice(
        format!(
            "FAILED: Event exceeds the maximum length ({} chars, including newline)\n",
            cfg.max_line_length
        )
        .as_bytes(),
    );
}

/// What [`LineSplitter::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line within the limit, without its newline.
    Body(Bytes),
    /// A line over the limit; what was buffered of it is gone, the rest is skipped.
    TooLong,
}

/// Cuts complete lines off the front of the read buffer and enforces
/// `max-line-length` in characters, remembering across reads how far the unfinished
/// line at the front was already searched and counted.
struct LineSplitter {
    max: usize,
    /// Bytes at the front of the buffer known to hold no newline.
    searched: usize,
    /// Of those, how many were counted into `units`: only done once the line is
    /// `max` bytes long, since before that it cannot be `max` characters.
    counted: usize,
    units: usize,
    /// True while skipping the rest of an over-long line.
    discarding: bool,
}

impl LineSplitter {
    fn new(max: usize) -> Self {
        LineSplitter {
            max,
            searched: 0,
            counted: 0,
            units: 0,
            discarding: false,
        }
    }

    fn next_line(&mut self, buf: &mut BytesMut) -> Option<Line> {
        loop {
            match buf[self.searched..].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let pos = self.searched + i;
                    let line = buf.split_to(pos + 1).freeze();
                    self.searched = 0;
                    self.counted = 0;
                    self.units = 0;
                    if std::mem::take(&mut self.discarding) {
                        continue;
                    }
                    if too_long(&line, self.max) {
                        return Some(Line::TooLong);
                    }
                    return Some(Line::Body(line.slice(..pos)));
                }
                None if self.discarding => {
                    buf.clear();
                    self.searched = 0;
                    return None;
                }
                None => {
                    self.searched = buf.len();
                    if buf.len() < self.max {
                        return None;
                    }
                    self.units += utf16_units(&buf[self.counted..]);
                    self.counted = buf.len();
                    // With its newline still to come, the line is over the limit once
                    // it holds `max` characters (or bytes no valid text of `max`
                    // characters needs: this bounds the buffer on garbage input).
                    if self.units >= self.max || buf.len() >= self.max.saturating_mul(3) {
                        buf.clear();
                        self.searched = 0;
                        self.counted = 0;
                        self.units = 0;
                        self.discarding = true;
                        return Some(Line::TooLong);
                    }
                    return None;
                }
            }
        }
    }
}

/// Whether a complete `line` (newline included) exceeds `max` characters. A line
/// within `max` bytes is within `max` characters, so ASCII traffic is never counted.
fn too_long(line: &[u8], max: usize) -> bool {
    line.len() > max && (line.len() > max.saturating_mul(3) || utf16_units(line) > max)
}

/// The length of UTF-8 `bytes` in UTF-16 code units, what Flume's `CharBuffer` holds:
/// every byte that starts a character counts one, and a 4-byte character (outside the
/// Basic Multilingual Plane) one more. Stray continuation bytes of invalid input count
/// nothing; callers also bound a line's bytes, so such input cannot grow the buffer.
fn utf16_units(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .map(|&b| usize::from((b as i8) >= -0x40) + usize::from(b >= 0xF0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
    use millrace_core::{CancellationToken, Channel, ChannelProcessor};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, BufReader, Lines};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::task::JoinHandle;

    /// Long enough for a loaded CI machine; a source that never answers fails here
    /// instead of hanging the test.
    const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

    struct Running {
        ctx: SourceContext,
        task: JoinHandle<Result<(), SourceError>>,
        port: u16,
    }

    impl Running {
        async fn stop(self) {
            self.ctx.shutdown.cancel();
            self.task.await.unwrap().unwrap();
        }
    }

    fn memory(capacity: usize, keep_alive: Duration) -> Arc<MemoryChannel> {
        Arc::new(MemoryChannel::new(
            "c1",
            MemoryChannelConfig {
                capacity,
                transaction_capacity: capacity,
                keep_alive,
                byte_capacity: None,
            },
        ))
    }

    fn start(ch: Arc<MemoryChannel>, max_line_length: usize, ack_every_event: bool) -> Running {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let ctx = SourceContext {
            name: "r1".into(),
            processor: Arc::new(ChannelProcessor::single(ch)),
            counters: Default::default(),
            shutdown: CancellationToken::new(),
        };
        let mut src = NetcatSource::new(NetcatConfig {
            bind: "127.0.0.1".into(),
            port,
            max_line_length,
            ack_every_event,
        });
        let c2 = ctx.clone();
        let task = tokio::spawn(async move { src.run(&c2).await });
        Running { ctx, task, port }
    }

    async fn connect(port: u16) -> (Lines<BufReader<OwnedReadHalf>>, OwnedWriteHalf) {
        let sock = tokio::time::timeout(ANSWER_DEADLINE, async {
            loop {
                match TcpStream::connect(("127.0.0.1", port)).await {
                    Ok(s) => break s,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await
        .expect("the source listens");
        let (r, w) = sock.into_split();
        (BufReader::new(r).lines(), w)
    }

    /// The next `n` answers, or a panic naming what arrived before the deadline.
    async fn answers(r: &mut Lines<BufReader<OwnedReadHalf>>, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        let read = tokio::time::timeout(ANSWER_DEADLINE, async {
            while got.len() < n {
                match r.next_line().await.unwrap() {
                    Some(line) => got.push(line),
                    None => break,
                }
            }
        })
        .await;
        assert!(
            read.is_ok() && got.len() == n,
            "expected {n} answers within {ANSWER_DEADLINE:?}, got {got:?}"
        );
        got
    }

    async fn bodies(ch: &MemoryChannel) -> Vec<Bytes> {
        let t = ch.take(100, Duration::ZERO).await.unwrap();
        let bodies = t.events().iter().map(|e| e.body.clone()).collect();
        t.commit().await.unwrap();
        bodies
    }

    fn too_long_reply(max: usize) -> String {
        format!("FAILED: Event exceeds the maximum length ({max} chars, including newline)")
    }

    #[tokio::test]
    async fn over_long_line_is_answered_in_its_place() {
        let ch = memory(100, Duration::from_secs(3));
        let src = start(ch.clone(), 20, true);
        let (mut r, mut w) = connect(src.port).await;
        let mut write = b"a1\n".to_vec();
        write.extend_from_slice(&[b'x'; 40]);
        write.extend_from_slice(b"\nb2\n");
        w.write_all(&write).await.unwrap();
        assert_eq!(answers(&mut r, 3).await, ["OK", &too_long_reply(20), "OK"]);

        // The same lines with the long one cut before its newline: it is refused
        // while unfinished, and its rest is skipped when it arrives.
        let mut write = b"a3\n".to_vec();
        write.extend_from_slice(&[b'x'; 40]);
        w.write_all(&write).await.unwrap();
        assert_eq!(answers(&mut r, 2).await, ["OK", &too_long_reply(20)]);
        w.write_all(b"xxxx\nb4\n").await.unwrap();
        assert_eq!(answers(&mut r, 1).await, ["OK"]);

        assert_eq!(bodies(&ch).await, ["a1", "b2", "a3", "b4"]);
        assert_eq!(src.ctx.counters.event_read_fail.load(Ordering::Relaxed), 2);
        assert_eq!(src.ctx.counters.event_received.load(Ordering::Relaxed), 4);
        src.stop().await;
    }

    #[tokio::test]
    async fn max_line_length_counts_characters_not_bytes() {
        let ch = memory(100, Duration::from_secs(3));
        let src = start(ch.clone(), 20, true);
        let (mut r, mut w) = connect(src.port).await;
        // 10 and 19 characters plus the newline fit; 20 plus the newline do not.
        let lines = ["é".repeat(10), "é".repeat(19), "é".repeat(20), "ok".into()];
        w.write_all(format!("{}\n", lines.join("\n")).as_bytes())
            .await
            .unwrap();
        assert_eq!(
            answers(&mut r, 4).await,
            ["OK", "OK", &too_long_reply(20), "OK"]
        );
        let got = bodies(&ch).await;
        assert_eq!(got, [lines[0].as_str(), lines[1].as_str(), "ok"]);
        src.stop().await;
    }

    #[tokio::test]
    async fn full_channel_answers_failed_per_line_and_goes_on() {
        let ch = memory(10, Duration::from_millis(50));
        ch.put((0..10).map(|i| Event::from_body(format!("f{i}"))).collect())
            .await
            .unwrap();
        let src = start(ch.clone(), 512, true);
        let (mut r, mut w) = connect(src.port).await;
        w.write_all(b"n1\nn2\nn3\n").await.unwrap();
        for answer in answers(&mut r, 3).await {
            assert!(
                answer.starts_with("FAILED: channel `c1` is full"),
                "{answer}"
            );
        }
        let counters = &src.ctx.counters;
        assert_eq!(counters.event_received.load(Ordering::Relaxed), 3);
        assert_eq!(counters.event_accepted.load(Ordering::Relaxed), 0);
        assert!(counters.channel_write_fail.load(Ordering::Relaxed) >= 1);

        // Refused lines are dropped, as in Flume; once there is room the same
        // connection is served again.
        assert_eq!(bodies(&ch).await.len(), 10);
        w.write_all(b"n4\n").await.unwrap();
        assert_eq!(answers(&mut r, 1).await, ["OK"]);
        assert_eq!(bodies(&ch).await, ["n4"]);
        assert_eq!(counters.event_received.load(Ordering::Relaxed), 4);
        assert_eq!(counters.event_accepted.load(Ordering::Relaxed), 1);
        src.stop().await;
    }

    #[tokio::test]
    async fn without_ack_every_event_only_failures_are_answered() {
        let ch = memory(100, Duration::from_secs(3));
        let src = start(ch.clone(), 8, false);
        let (mut r, mut w) = connect(src.port).await;
        w.write_all(b"hello\nthis line is too long\nworld\nanother long line\n")
            .await
            .unwrap();
        // Two FAILED in a row: no OK was written between them.
        assert_eq!(
            answers(&mut r, 2).await,
            [too_long_reply(8), too_long_reply(8)]
        );
        assert_eq!(bodies(&ch).await, ["hello", "world"]);
        src.stop().await;
    }

    #[test]
    fn utf16_units_count_like_a_java_char_buffer() {
        assert_eq!(utf16_units(b"plain ascii\n"), 12);
        assert_eq!(utf16_units("é".as_bytes()), 1);
        assert_eq!(utf16_units("€".as_bytes()), 1);
        assert_eq!(utf16_units("😀".as_bytes()), 2);
        assert!(!too_long(format!("{}\n", "é".repeat(10)).as_bytes(), 20));
        assert!(too_long(format!("{}\n", "😀".repeat(10)).as_bytes(), 20));
    }

    #[test]
    fn an_unfinished_line_is_counted_across_reads() {
        let mut lines = LineSplitter::new(5);
        let mut buf = BytesMut::new();
        // "éééé" arrives a byte at a time: 8 bytes but 4 characters, then the newline.
        for &b in "éééé".as_bytes() {
            buf.extend_from_slice(&[b]);
            assert_eq!(lines.next_line(&mut buf), None);
        }
        buf.extend_from_slice(b"\n");
        assert_eq!(
            lines.next_line(&mut buf),
            Some(Line::Body(Bytes::from("éééé")))
        );
        // A fifth character without a newline can no longer fit.
        buf.extend_from_slice("ééééé".as_bytes());
        assert_eq!(lines.next_line(&mut buf), Some(Line::TooLong));
        buf.extend_from_slice(b"rest\nnext\n");
        assert_eq!(
            lines.next_line(&mut buf),
            Some(Line::Body(Bytes::from("next")))
        );
        // Bytes that are no text at all are refused once they pass three per character.
        buf.extend_from_slice(&[0x80; 15]);
        assert_eq!(lines.next_line(&mut buf), Some(Line::TooLong));
    }
}
