//! The `netcat` source: listens on a TCP port; every line a client sends becomes an
//! event, acknowledged with `OK` once the put committed (Flume's NetcatSource).
//!
//! A line longer than `max-line-length` (newline included) is answered with Flume's
//! `FAILED: Event exceeds the maximum length (N chars, including newline)`, counted,
//! and skipped up to its newline; the connection stays open.

use async_trait::async_trait;
use bytes::BytesMut;
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
    /// `max-line-length` (default 512): the longest accepted line, newline included.
    pub max_line_length: usize,
    /// `ack-every-event` (default true): answer `OK` for every line.
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
        let listener = TcpListener::bind(&addr).await.map_err(|e| {
            SourceError::Failed(format!(
                "cannot listen on {addr}: {e}; free the port or change `port`"
            ))
        })?;
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
    let mut replies: Vec<u8> = Vec::new();
    // True while skipping the rest of an over-long line.
    let mut discarding = false;
    loop {
        let n = tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(()),
            r = sock.read_buf(&mut buf) => r?,
        };
        if n == 0 {
            return Ok(());
        }
        let mut batch = Vec::new();
        loop {
            match buf.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    let line = buf.split_to(pos + 1).freeze();
                    if std::mem::take(&mut discarding) {
                        continue;
                    }
                    if pos + 1 > cfg.max_line_length {
                        reject_long_line(ctx, cfg, &mut replies);
                        continue;
                    }
                    batch.push(Event::from_body(line.slice(..pos)));
                }
                None => {
                    if discarding {
                        buf.clear();
                    } else if buf.len() >= cfg.max_line_length {
                        reject_long_line(ctx, cfg, &mut replies);
                        discarding = true;
                        buf.clear();
                    }
                    break;
                }
            }
        }
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(max_batch));
            let n = batch.len();
            if ctx.put(std::mem::replace(&mut batch, rest)).await.is_err() {
                return Ok(());
            }
            if cfg.ack_every_event {
                for _ in 0..n {
                    replies.extend_from_slice(b"OK\n");
                }
            }
        }
        if !replies.is_empty() {
            sock.write_all(&replies).await?;
            replies.clear();
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

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
    use millrace_core::{CancellationToken, Channel, ChannelProcessor};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, BufReader};

    #[tokio::test]
    async fn acks_lines_and_rejects_long_ones() {
        let ch = Arc::new(MemoryChannel::new("c1", MemoryChannelConfig::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let ctx = SourceContext {
            name: "r1".into(),
            processor: Arc::new(ChannelProcessor::single(ch.clone())),
            counters: Default::default(),
            shutdown: CancellationToken::new(),
        };
        let cfg = NetcatConfig {
            bind: "127.0.0.1".into(),
            port,
            max_line_length: 8,
            ack_every_event: true,
        };
        let mut src = NetcatSource::new(cfg);
        let c2 = ctx.clone();
        let task = tokio::spawn(async move { src.run(&c2).await });
        let sock = loop {
            match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let (r, mut w) = sock.into_split();
        w.write_all(b"hello\nthis line is too long\nworld\n")
            .await
            .unwrap();
        let mut r = BufReader::new(r).lines();
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(r.next_line().await.unwrap().unwrap());
        }
        assert_eq!(
            answers,
            [
                "FAILED: Event exceeds the maximum length (8 chars, including newline)",
                "OK",
                "OK"
            ]
        );
        let t = ch.take(10, Duration::ZERO).await.unwrap();
        let bodies: Vec<_> = t.events().iter().map(|e| e.body.clone()).collect();
        assert_eq!(bodies, ["hello", "world"]);
        ctx.shutdown.cancel();
        task.await.unwrap().unwrap();
    }
}
