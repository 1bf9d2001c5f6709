//! The `avro` sink: sends batches over Flume's Avro RPC to an avro source, Java
//! Flume's or millrace's (Flume's AvroSink).
//!
//! The take commits only after the source answered `OK`; on `FAILED`, a timeout or a
//! broken connection the batch is rolled back, the connection dropped, and the next
//! attempt connects again. `reset-connection-interval` reconnects periodically so that
//! a load balancer in front of several collectors spreads long-lived senders.

use crate::tls;
use async_trait::async_trait;
use millrace_avro::{Client, ClientOptions};
use millrace_core::counters::{inc, SinkCounters};
use millrace_core::{Event, Props, Sink, SinkError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::rustls;

#[derive(Debug, Clone)]
pub struct AvroSinkConfig {
    /// `hostname` and `port` (required): the avro source to send to.
    pub hostname: String,
    pub port: u16,
    /// `batch-size` (default 100).
    pub batch_size: usize,
    /// `connect-timeout`, `request-timeout` (ms, default 20000), `compression-type`
    /// and `compression-level` (default 6).
    pub options: ClientOptions,
    /// `reset-connection-interval` (seconds, default 0 = never).
    pub reset_interval: Option<Duration>,
    /// `ssl` with `truststore` (a PEM file of trusted certificates), or without it the
    /// system's CA certificates, as Flume falls back to the JVM's.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl AvroSinkConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let hostname = p.required("hostname", "set the host of the avro source to send to");
        let port = p.port(
            "port",
            "set the port of the avro source to send to, e.g. 4141",
        );
        let batch_size = p.u64_in("batch-size", 100, 1, 1_000_000) as usize;
        let deflate = p.choice("compression-type", "none", &["none", "deflate"]) == "deflate";
        let level = p.u64_in("compression-level", 6, 0, 9) as u32;
        let options = ClientOptions {
            deflate: deflate.then_some(level),
            connect_timeout: p.millis("connect-timeout", 20_000),
            request_timeout: p.millis("request-timeout", 20_000),
            ..ClientOptions::default()
        };
        let reset = p.u64_in("reset-connection-interval", 0, 0, 1 << 32);
        let mut tls = None;
        if p.bool("ssl", false) {
            if p.bool("trust-all-certs", false) {
                p.error_at("trust-all-certs", format!("`{}`: millrace always verifies the server; give its certificate (or its CA's) as a PEM `truststore`", p.full_key("trust-all-certs")));
            }
            let roots = match p.get("truststore") {
                Some(path) => tls::pem_roots(std::path::Path::new(&path)),
                None => tls::system_roots().map_err(|e| format!("not set, and {e}; set it to a PEM file with the certificate of the avro source (or of its CA), or install the system's CA certificates (ca-certificates)")),
            };
            match roots.and_then(tls::client_tls) {
                Ok(c) => tls = Some(Arc::new(c)),
                Err(e) => p.error_at("truststore", format!("`{}`: {e}", p.full_key("truststore"))),
            }
        }
        // Read by Java's TLS stack and Netty; rustls and tokio do without them.
        for k in [
            "truststore-password",
            "truststore-type",
            "exclude-protocols",
            "include-protocols",
            "exclude-cipher-suites",
            "include-cipher-suites",
            "maxIoWorkers",
        ] {
            let _ = p.get(k);
        }
        if p.has_errors() {
            return None;
        }
        Some(AvroSinkConfig {
            hostname: hostname?,
            port: port?,
            batch_size,
            options,
            reset_interval: (reset > 0).then(|| Duration::from_secs(reset)),
            tls,
        })
    }
}

pub struct AvroSink {
    name: String,
    cfg: AvroSinkConfig,
    counters: Arc<SinkCounters>,
    client: Option<(Client, Instant)>,
}

impl AvroSink {
    pub fn new(name: &str, cfg: AvroSinkConfig, counters: Arc<SinkCounters>) -> Self {
        AvroSink {
            name: name.to_string(),
            cfg,
            counters,
            client: None,
        }
    }

    fn disconnect(&mut self) {
        if self.client.take().is_some() {
            inc(&self.counters.connection_closed);
        }
    }
}

/// Connects as `cfg` says; a free function so that no `&AvroSink` (which is not
/// `Sync`: it owns a connection) lives across an await.
async fn connect(
    name: &str,
    cfg: &AvroSinkConfig,
    counters: &SinkCounters,
) -> Result<Client, SinkError> {
    {
        let addr = format!("{}:{}", cfg.hostname, cfg.port);
        let opts = cfg.options.clone();
        let result = match &cfg.tls {
            None => Client::connect(&addr, opts)
                .await
                .map_err(|e| e.to_string()),
            Some(tls) => {
                async {
                    let tcp = tokio::time::timeout(
                        opts.connect_timeout,
                        tokio::net::TcpStream::connect(&addr),
                    )
                    .await
                    .map_err(|_| format!("{addr}: no answer within {:?}", opts.connect_timeout))?
                    .map_err(|e| format!("{addr}: {e}"))?;
                    let _ = tcp.set_nodelay(true);
                    let server = rustls::pki_types::ServerName::try_from(cfg.hostname.clone())
                        .map_err(|e| {
                            format!("{} is not a valid TLS server name: {e}", cfg.hostname)
                        })?;
                    let s = tokio::time::timeout(
                        opts.connect_timeout,
                        tokio_rustls::TlsConnector::from(tls.clone()).connect(server, tcp),
                    )
                    .await
                    .map_err(|_| {
                        format!(
                            "{addr}: TLS handshake did not finish within {:?}",
                            opts.connect_timeout
                        )
                    })?
                    .map_err(|e| format!("{addr}: TLS handshake failed: {e}"))?;
                    Ok(Client::over(s, opts))
                }
                .await
            }
        };
        match result {
            Ok(c) => {
                inc(&counters.connection_created);
                tracing::info!(sink = %name, %addr, "connected");
                Ok(c)
            }
            Err(e) => {
                inc(&counters.connection_failed);
                Err(SinkError::Delivery(e))
            }
        }
    }
}

#[async_trait]
impl Sink for AvroSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if let (Some((_, since)), Some(every)) = (&self.client, self.cfg.reset_interval) {
            if since.elapsed() >= every {
                self.disconnect();
            }
        }
        if self.client.is_none() {
            let c = connect(&self.name, &self.cfg, &self.counters).await?;
            self.client = Some((c, Instant::now()));
        }
        let (client, _) = self.client.as_mut().expect("connected above");
        match client.append_batch(batch).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.disconnect();
                Err(SinkError::Delivery(format!(
                    "{}:{}: {e}",
                    self.cfg.hostname, self.cfg.port
                )))
            }
        }
    }

    async fn stop(&mut self) -> Result<(), SinkError> {
        self.disconnect();
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
    fn flume_properties_are_read_and_mistakes_reported() {
        let p = Props::from_pairs(&[
            ("hostname", "collector-1"),
            ("port", "4141"),
            ("batch-size", "500"),
            ("compression-type", "deflate"),
            ("compression-level", "9"),
            ("request-timeout", "5000"),
            ("reset-connection-interval", "60"),
            ("maxIoWorkers", "4"),
        ]);
        let c = AvroSinkConfig::from_props(&p).expect("valid");
        assert_eq!(c.batch_size, 500);
        assert_eq!(c.options.deflate, Some(9));
        assert_eq!(c.options.request_timeout, Duration::from_secs(5));
        assert_eq!(c.reset_interval, Some(Duration::from_secs(60)));
        assert!(p.finish().is_empty());

        let p = Props::from_pairs(&[
            ("hostname", "collector-1"),
            ("compression-type", "gzip"),
            ("ssl", "true"),
            ("trust-all-certs", "true"),
        ]);
        assert!(AvroSinkConfig::from_props(&p).is_none());
        let all: Vec<String> = p.finish().iter().map(|d| d.to_string()).collect();
        let all = all.join("\n");
        for needle in ["port", "gzip", "trust-all-certs", "truststore"] {
            assert!(all.contains(needle), "{needle} not in:\n{all}");
        }
    }
}
