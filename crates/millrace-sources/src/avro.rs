//! The `avro` source: receives Flume's Avro RPC (`append`, `appendBatch`) from avro
//! sinks and `avro-client`, Java Flume's or millrace's (Flume's AvroSource).
//!
//! A call is answered `OK` only after its events committed to every required channel,
//! and `FAILED` when the channels refuse them, so the sender keeps the batch and
//! retries. A batch larger than the channels' `transactionCapacity` is put in several
//! transactions instead of being refused forever. A peer that breaks the protocol
//! (random bytes, a frame over the size limit, a frame begun and never finished) loses
//! its connection, is counted in `GenericProcessingFail`, and nobody else notices.

use async_trait::async_trait;
use millrace_avro::{IpFilter, ServerOptions, Status};
use millrace_core::counters::inc;
use millrace_core::{Event, Props, Source, SourceContext, SourceError};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct AvroSourceConfig {
    /// `bind` (required) and `port` (required): where to listen.
    pub bind: String,
    pub port: u16,
    /// `compression-type` (`none` or `deflate`, default none): must match the sender's.
    pub deflate: bool,
    /// `ipFilter` and `ipFilterRules`: which peers may connect.
    pub filter: Option<Arc<IpFilter>>,
    /// `ssl` with `sslCertificate` and `sslKey` (PEM files).
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// `maxFrameBytes` (default 64 MiB) and `maxBatchEvents` (default 100000): limits
    /// against broken or hostile peers.
    pub options: ServerOptions,
}

impl AvroSourceConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let bind = p.required(
            "bind",
            "set the address to listen on, e.g. 0.0.0.0 or 127.0.0.1",
        );
        let port = p.port("port", "set the TCP port to listen on, e.g. 4141");
        let deflate = p.choice("compression-type", "none", &["none", "deflate"]) == "deflate";
        let mut filter = None;
        if p.bool("ipFilter", false) {
            match IpFilter::parse(&p.string("ipFilterRules", "")) {
                Ok(f) => filter = Some(Arc::new(f)),
                Err(e) => p.error_at(
                    "ipFilterRules",
                    format!("`{}`: {e}", p.full_key("ipFilterRules")),
                ),
            }
        } else {
            let _ = p.get("ipFilterRules");
        }
        let tls = if p.bool("ssl", false) {
            crate::http::tls_from_props(p, "TLS")
        } else {
            let _ = p.get("keystore");
            None
        };
        crate::http::read_ignored_tls_keys(p);
        let defaults = ServerOptions::default();
        let options = ServerOptions {
            deflate,
            max_frame_bytes: p.u64_in(
                "maxFrameBytes",
                defaults.max_frame_bytes as u64,
                1024,
                1 << 31,
            ) as usize,
            max_batch: p.u64_in("maxBatchEvents", defaults.max_batch as u64, 1, 10_000_000)
                as usize,
            stall_timeout: defaults.stall_timeout,
        };
        // Netty worker threads: tokio's runtime serves every connection.
        let _ = p.u64_in("threads", 0, 0, 100_000);
        if p.has_errors() {
            return None;
        }
        Some(AvroSourceConfig {
            bind: bind?,
            port: port?,
            deflate,
            filter,
            tls,
            options,
        })
    }
}

pub struct AvroSource {
    cfg: AvroSourceConfig,
}

impl AvroSource {
    pub fn new(cfg: AvroSourceConfig) -> Self {
        AvroSource { cfg }
    }
}

struct Deliver {
    ctx: SourceContext,
}

#[async_trait]
impl millrace_avro::Handler for Deliver {
    async fn deliver(&self, events: Vec<Event>, single: bool, _peer: SocketAddr) -> Status {
        let c = &self.ctx.counters;
        inc(if single {
            &c.append_received
        } else {
            &c.append_batch_received
        });
        let max = self.ctx.processor.max_batch().max(1);
        let mut rest = events;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(max));
            if let Err(e) = self.ctx.processor.process(rest, c).await {
                tracing::warn!(source = %self.ctx.name, error = %e, "answering FAILED; the sender keeps the batch and retries");
                return Status::Failed;
            }
            rest = tail;
        }
        inc(if single {
            &c.append_accepted
        } else {
            &c.append_batch_accepted
        });
        Status::Ok
    }

    fn connection(&self, opened: bool) {
        let c = &self.ctx.counters.open_connection;
        if opened {
            c.fetch_add(1, Ordering::Relaxed);
        } else {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn malformed(&self, _peer: SocketAddr, _reason: &str) {
        inc(&self.ctx.counters.generic_processing_fail);
    }
}

#[async_trait]
impl Source for AvroSource {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        let addr = format!("{}:{}", self.cfg.bind, self.cfg.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| crate::cannot_listen(&addr, &e, "bind", "port"))?;
        tracing::info!(source = %ctx.name, %addr, deflate = self.cfg.deflate, tls = self.cfg.tls.is_some(), "avro source listening");
        millrace_avro::serve(
            listener,
            Arc::new(self.cfg.options.clone()),
            Arc::new(Deliver { ctx: ctx.clone() }),
            self.cfg.filter.clone(),
            self.cfg.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            ctx.shutdown.clone(),
        )
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flume_properties_are_read_and_mistakes_reported() {
        let p = Props::from_pairs(&[
            ("bind", "127.0.0.1"),
            ("port", "4141"),
            ("compression-type", "deflate"),
            ("ipFilter", "true"),
            ("ipFilterRules", "allow:ip:127.*,deny:ip:*"),
            ("threads", "8"),
        ]);
        let c = AvroSourceConfig::from_props(&p).expect("valid");
        assert!(c.deflate && c.filter.is_some() && c.tls.is_none());
        assert!(p.finish().is_empty());

        let p = Props::from_pairs(&[
            ("bind", "127.0.0.1"),
            ("port", "4141"),
            ("ipFilter", "true"),
            ("ipFilterRules", "allow:127.*"),
            ("ssl", "true"),
            ("keystore", "/etc/flume/keystore.jks"),
        ]);
        assert!(AvroSourceConfig::from_props(&p).is_none());
        let text: Vec<String> = p.finish().iter().map(|d| d.to_string()).collect();
        let all = text.join("\n");
        assert!(all.contains("ACTION:KIND:PATTERN"), "{all}");
        assert!(all.contains("convert it to PEM"), "{all}");
        assert!(all.contains("sslCertificate"), "{all}");
    }
}
