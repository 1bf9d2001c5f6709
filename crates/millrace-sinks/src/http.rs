//! The `http` sink: POSTs each event's body to an HTTP or HTTPS endpoint (Flume's
//! HttpSink).
//!
//! One event per take transaction, as in Flume: what happens to the event depends on
//! the status code, so a batch would have to roll back events the endpoint already
//! accepted. For each status, `rollback.CODE`, `backoff.CODE` and
//! `incrementMetrics.CODE` are looked up as the exact code (`503`), then its class
//! (`5XX`), then `defaultRollback` / `defaultBackoff` / `defaultIncrementMetrics`.
//! A rolled-back event stays in the channel and is sent again; a committed one is gone
//! whatever the status was. A connection failure or timeout always rolls back.
//!
//! The connection is kept open across events and opened again after an error.

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use millrace_core::counters::{inc, SinkCounters};
use millrace_core::{Event, Props, Sink, SinkError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

/// Where events are POSTed, taken apart from `endpoint`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL as configured, for messages.
    pub url: String,
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// The `Host` header: host, and port when the URL gave one.
    pub authority: String,
    /// Path and query, `/` when the URL has none.
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL ({e}); use e.g. http://host:8080/path"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return Err(format!(
                    "`{url}`: the scheme `{other}` is not HTTP; use http:// or https://"
                ))
            }
            None => return Err(format!("`{url}` has no scheme; use http://{url}")),
        };
        let Some(authority) = uri.authority() else {
            return Err(format!("`{url}` has no host"));
        };
        let host = authority.host().trim_matches(['[', ']']).to_string();
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        Ok(Endpoint {
            url: url.to_string(),
            https,
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            authority: authority.as_str().to_string(),
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".to_string()),
            host,
        })
    }
}

/// One of Flume's per-status switches: a default and overrides by exact code or class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusRule {
    pub default: bool,
    /// `"503"` or `"5XX"` to the value.
    pub overrides: BTreeMap<String, bool>,
}

impl StatusRule {
    /// Flume's precedence: the exact code, then its class (`5XX`), then the default.
    pub fn decide(&self, status: u16) -> bool {
        let code = status.to_string();
        let class = format!("{}XX", &code[..1]);
        self.overrides
            .get(&code)
            .or_else(|| self.overrides.get(&class))
            .copied()
            .unwrap_or(self.default)
    }

    fn from_props(p: &Props, prefix: &str, default_key: &str, default: bool) -> Self {
        let mut rule = StatusRule {
            default: p.bool(default_key, default),
            overrides: BTreeMap::new(),
        };
        for (code, _) in p.with_prefix(&format!("{prefix}.")) {
            let key = format!("{prefix}.{code}");
            if !valid_status_key(&code) {
                let hint = match code.to_ascii_uppercase() {
                    up if valid_status_key(&up) => format!("write it `{prefix}.{up}`"),
                    _ => "use a status code such as 503 or a class such as 5XX".to_string(),
                };
                p.error_at(
                    &key,
                    format!(
                        "`{}`: `{code}` is not a status code or class, so Flume would never apply it; {hint}",
                        p.full_key(&key)
                    ),
                );
                continue;
            }
            let v = p.bool(&key, default);
            rule.overrides.insert(code, v);
        }
        rule
    }
}

/// `100` to `599`, or `1XX` to `5XX`: the keys Flume's lookup can match.
fn valid_status_key(k: &str) -> bool {
    let b = k.as_bytes();
    b.len() == 3
        && (b'1'..=b'5').contains(&b[0])
        && (k[1..] == *"XX" || (b[1].is_ascii_digit() && b[2].is_ascii_digit()))
}

#[derive(Debug, Clone)]
pub struct HttpSinkConfig {
    /// `endpoint` (required): the http:// or https:// URL to POST to.
    pub endpoint: Endpoint,
    /// `connectTimeout` (ms, default 5000, above 0): to connect (and finish TLS).
    pub connect_timeout: Duration,
    /// `requestTimeout` (ms, default 5000, above 0): for the response to arrive.
    pub request_timeout: Duration,
    /// `contentTypeHeader` (default `text/plain`).
    pub content_type: String,
    /// `acceptHeader` (default `text/plain`).
    pub accept: String,
    /// `defaultRollback` (default true) and `rollback.CODE`.
    pub rollback: StatusRule,
    /// `defaultBackoff` (default true) and `backoff.CODE`.
    pub backoff: StatusRule,
    /// `defaultIncrementMetrics` (default false) and `incrementMetrics.CODE`: whether
    /// the status counts in `EventDrainSuccessCount`.
    pub increment_metrics: StatusRule,
    /// For https endpoints: the system's CA certificates, as Flume trusts the JVM's.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl HttpSinkConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let endpoint = p
            .required(
                "endpoint",
                "set the URL to POST events to, e.g. http://collector:8080/events",
            )
            .and_then(|url| match Endpoint::parse(&url) {
                Ok(e) => Some(e),
                Err(e) => {
                    p.error_at("endpoint", format!("`{}`: {e}", p.full_key("endpoint")));
                    None
                }
            });
        let connect_timeout = Duration::from_millis(p.positive("connectTimeout", 5000));
        let request_timeout = Duration::from_millis(p.positive("requestTimeout", 5000));
        let accept = p.string("acceptHeader", "text/plain");
        let content_type = p.string("contentTypeHeader", "text/plain");
        let backoff = StatusRule::from_props(p, "backoff", "defaultBackoff", true);
        let rollback = StatusRule::from_props(p, "rollback", "defaultRollback", true);
        let increment_metrics =
            StatusRule::from_props(p, "incrementMetrics", "defaultIncrementMetrics", false);
        for (key, value) in [
            ("acceptHeader", &accept),
            ("contentTypeHeader", &content_type),
        ] {
            if hyper::header::HeaderValue::from_str(value).is_err() {
                p.error_at(
                    key,
                    format!(
                        "`{}` = `{value}` is not a valid header value",
                        p.full_key(key)
                    ),
                );
            }
        }
        if rollback.decide(200) {
            p.warn_at(
                "defaultRollback",
                format!(
                    "`{}`: a 200 answer rolls the event back, so every event is sent again forever, as in Flume; set `rollback.200 = false` (or `rollback.2XX = false`)",
                    p.full_key("defaultRollback")
                ),
            );
        }
        let mut tls = None;
        if endpoint.as_ref().is_some_and(|e| e.https) {
            match crate::tls::system_roots().and_then(crate::tls::client_tls) {
                Ok(c) => tls = Some(Arc::new(c)),
                Err(e) => p.error_at(
                    "endpoint",
                    format!("`{}` is https, but {e}; install the system's CA certificates (ca-certificates), or set SSL_CERT_FILE to a PEM file with the endpoint's CA", p.full_key("endpoint")),
                ),
            }
        }
        if p.has_errors() {
            return None;
        }
        Some(HttpSinkConfig {
            endpoint: endpoint?,
            connect_timeout,
            request_timeout,
            content_type,
            accept,
            rollback,
            backoff,
            increment_metrics,
            tls,
        })
    }
}

pub struct HttpSink {
    name: String,
    cfg: HttpSinkConfig,
    counters: Arc<SinkCounters>,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl HttpSink {
    pub fn new(name: &str, cfg: HttpSinkConfig, counters: Arc<SinkCounters>) -> Self {
        HttpSink {
            name: name.to_string(),
            cfg,
            counters,
            conn: None,
        }
    }

    fn disconnect(&mut self) {
        if self.conn.take().is_some() {
            inc(&self.counters.connection_closed);
        }
    }

    /// POSTs one body; the status, or why there is none (the connection is then
    /// dropped, since the request may be half written).
    async fn post(&mut self, body: Bytes) -> Result<u16, String> {
        // A kept-alive connection the server has closed since is replaced before
        // sending, so that an idle timeout on the server costs no retry.
        if let Some(c) = self.conn.as_mut() {
            if c.is_closed() || c.ready().await.is_err() {
                self.disconnect();
            }
        }
        if self.conn.is_none() {
            self.conn = Some(connect(&self.name, &self.cfg, &self.counters).await?);
        }
        let ep = &self.cfg.endpoint;
        let req = Request::builder()
            .method(Method::POST)
            .uri(ep.path.as_str())
            .header(HOST, ep.authority.as_str())
            .header(CONTENT_TYPE, self.cfg.content_type.as_str())
            .header(ACCEPT, self.cfg.accept.as_str())
            .body(Full::new(body))
            .map_err(|e| format!("{}: cannot build the request: {e}", ep.url))?;
        let sender = self.conn.as_mut().expect("connected above");
        let exchange = async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            // Read the answer to its end so that the connection can carry the next one.
            resp.into_body().collect().await?;
            Ok::<u16, hyper::Error>(status)
        };
        let result = match tokio::time::timeout(self.cfg.request_timeout, exchange).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(format!("{}: {e}", ep.url)),
            Err(_) => Err(format!(
                "{}: no answer within {:?} (requestTimeout)",
                ep.url, self.cfg.request_timeout
            )),
        };
        if result.is_err() {
            self.disconnect();
        }
        result
    }
}

/// Opens a connection to the endpoint, over TLS for https; a free function so that no
/// `&HttpSink` (not `Sync`: it owns a connection) lives across an await.
async fn connect(
    name: &str,
    cfg: &HttpSinkConfig,
    counters: &SinkCounters,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let ep = &cfg.endpoint;
    let attempt = async {
        let addr = (ep.host.as_str(), ep.port);
        let tcp = tokio::time::timeout(cfg.connect_timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| {
                format!(
                    "{}: no connection within {:?} (connectTimeout)",
                    ep.url, cfg.connect_timeout
                )
            })?
            .map_err(|e| format!("{}: {e}", ep.url))?;
        let _ = tcp.set_nodelay(true);
        let handshake_err = |e: hyper::Error| format!("{}: {e}", ep.url);
        match &cfg.tls {
            None => {
                let (sender, conn) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(handshake_err)?;
                tokio::spawn(conn);
                Ok(sender)
            }
            Some(tls) => {
                let server = rustls::pki_types::ServerName::try_from(ep.host.clone())
                    .map_err(|e| format!("{} is not a valid TLS server name: {e}", ep.host))?;
                let s = tokio::time::timeout(
                    cfg.connect_timeout,
                    tokio_rustls::TlsConnector::from(tls.clone()).connect(server, tcp),
                )
                .await
                .map_err(|_| {
                    format!(
                        "{}: TLS handshake did not finish within {:?}",
                        ep.url, cfg.connect_timeout
                    )
                })?
                .map_err(|e| format!("{}: TLS handshake failed: {e}", ep.url))?;
                let (sender, conn) = http1::handshake(TokioIo::new(s))
                    .await
                    .map_err(handshake_err)?;
                tokio::spawn(conn);
                Ok(sender)
            }
        }
    };
    match attempt.await {
        Ok(s) => {
            inc(&counters.connection_created);
            tracing::info!(sink = %name, endpoint = %ep.url, "connected");
            Ok(s)
        }
        Err(e) => {
            inc(&counters.connection_failed);
            Err(e)
        }
    }
}

#[async_trait]
impl Sink for HttpSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        // batch_size is 1; a longer batch would only come from a caller outside the
        // runner, and is sent event by event.
        for event in batch {
            if event.body.is_empty() {
                // Flume commits an empty event without sending it or counting it.
                tracing::warn!(sink = %self.name, "empty event dropped");
                continue;
            }
            inc(&self.counters.event_drain_attempt);
            let status = match self.post(event.body.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    inc(&self.counters.event_write_fail);
                    return Err(SinkError::Delivery(e));
                }
            };
            let rollback = self.cfg.rollback.decide(status);
            let backoff = self.cfg.backoff.decide(status);
            if self.cfg.increment_metrics.decide(status) {
                inc(&self.counters.event_drain_success);
            }
            if rollback {
                tracing::info!(sink = %self.name, status, backoff, "event rolled back for retry");
                return Err(SinkError::Delivery(format!(
                    "{}: status {status}; event rolled back",
                    self.cfg.endpoint.url
                )));
            }
            if !(200..300).contains(&status) {
                tracing::warn!(sink = %self.name, status, "event committed without retry (rollback is false for this status)");
            }
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), SinkError> {
        self.disconnect();
        Ok(())
    }

    fn batch_size(&self) -> usize {
        1
    }

    fn counts_drains(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> (Option<HttpSinkConfig>, Vec<String>) {
        let p = Props::from_pairs(pairs);
        let c = HttpSinkConfig::from_props(&p);
        (c, p.finish().iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn flume_properties_and_defaults_are_read() {
        let (c, d) = config(&[
            ("endpoint", "http://collector:8080/in?x=1"),
            ("rollback.2XX", "false"),
        ]);
        let c = c.expect("valid");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(c.endpoint.host, "collector");
        assert_eq!(c.endpoint.port, 8080);
        assert_eq!(c.endpoint.authority, "collector:8080");
        assert_eq!(c.endpoint.path, "/in?x=1");
        assert_eq!(c.connect_timeout, Duration::from_millis(5000));
        assert_eq!(c.request_timeout, Duration::from_millis(5000));
        assert_eq!(c.content_type, "text/plain");
        assert_eq!(c.accept, "text/plain");
        assert!(c.backoff.default && c.rollback.default && !c.increment_metrics.default);

        let (c, d) = config(&[
            ("endpoint", "http://127.0.0.1"),
            ("connectTimeout", "250"),
            ("requestTimeout", "750"),
            ("contentTypeHeader", "application/json"),
            ("acceptHeader", "application/json"),
            ("rollback.200", "false"),
        ]);
        let c = c.expect("valid");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!((c.endpoint.port, c.endpoint.path.as_str()), (80, "/"));
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
        assert_eq!(c.request_timeout, Duration::from_millis(750));
        assert_eq!(c.content_type, "application/json");
    }

    #[test]
    fn mistakes_are_reported_as_flume_refuses_them_or_would_ignore_them() {
        for (pairs, needle) in [
            (vec![], "endpoint"),
            (vec![("endpoint", "invalid url")], "not a URL"),
            (vec![("endpoint", "ftp://host/x")], "not HTTP"),
            (
                vec![("endpoint", "http://h/"), ("connectTimeout", "0")],
                "connectTimeout",
            ),
            (
                vec![("endpoint", "http://h/"), ("requestTimeout", "-1000")],
                "requestTimeout",
            ),
            (
                vec![("endpoint", "http://h/"), ("rollback.5xx", "false")],
                "rollback.5XX",
            ),
            (
                vec![("endpoint", "http://h/"), ("backoff.abc", "false")],
                "503",
            ),
            (
                vec![("endpoint", "http://h/"), ("defaultBackoff", "yes")],
                "boolean",
            ),
        ] {
            let (c, d) = config(&pairs);
            assert!(c.is_none(), "{pairs:?} accepted");
            let all = d.join("\n");
            assert!(all.contains(needle), "{needle} not in:\n{all}");
        }
    }

    #[test]
    fn a_200_that_rolls_back_is_warned_about() {
        let (c, d) = config(&[("endpoint", "http://h/")]);
        assert!(c.is_some());
        assert!(d.join("\n").contains("rollback.200 = false"), "{d:?}");
    }

    #[test]
    fn exact_code_beats_class_beats_default() {
        let (c, _) = config(&[
            ("endpoint", "http://h/"),
            ("defaultRollback", "true"),
            ("rollback.2XX", "false"),
            ("rollback.4XX", "false"),
            ("rollback.429", "true"),
            ("backoff.200", "false"),
            ("incrementMetrics.2XX", "true"),
            ("incrementMetrics.201", "false"),
        ]);
        let c = c.expect("valid");
        assert!(!c.rollback.decide(200) && !c.rollback.decide(204));
        assert!(!c.rollback.decide(404) && c.rollback.decide(429));
        assert!(c.rollback.decide(503) && c.rollback.decide(302));
        assert!(!c.backoff.decide(200) && c.backoff.decide(201));
        assert!(c.increment_metrics.decide(200) && !c.increment_metrics.decide(201));
        assert!(!c.increment_metrics.decide(500));
    }

    /// A server answering `statuses` in turn on one kept-alive connection, recording
    /// the requests it read.
    async fn server(statuses: Vec<u16>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/in", l.local_addr().unwrap());
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = Vec::new();
            for status in statuses {
                let req = loop {
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let req = String::from_utf8_lossy(&buf[..end + 4 + len]).to_string();
                            buf.drain(..end + 4 + len);
                            break req;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "client closed the connection");
                    buf.extend_from_slice(&chunk[..n]);
                };
                seen.push(req);
                let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                s.write_all(resp.as_bytes()).await.unwrap();
            }
            seen
        });
        (url, h)
    }

    #[tokio::test]
    async fn statuses_commit_roll_back_and_count_as_configured_on_one_connection() {
        let (url, server) = server(vec![503, 200, 404]).await;
        let p = Props::from_pairs(&[
            ("endpoint", &url),
            ("contentTypeHeader", "application/json"),
            ("rollback.2XX", "false"),
            ("rollback.4XX", "false"),
            ("incrementMetrics.2XX", "true"),
        ]);
        let counters = Arc::new(SinkCounters::default());
        let cfg = HttpSinkConfig::from_props(&p).expect("valid");
        let mut sink = HttpSink::new("k1", cfg, counters.clone());
        let e = Event::from_body("{\"n\":1}");
        assert!(
            sink.deliver(std::slice::from_ref(&e)).await.is_err(),
            "503 rolls back"
        );
        sink.deliver(std::slice::from_ref(&e))
            .await
            .expect("200 commits");
        sink.deliver(&[Event::from_body("bad")])
            .await
            .expect("404 with rollback.4XX = false commits (drops)");
        sink.deliver(&[Event::from_body("")])
            .await
            .expect("empty is committed");
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen[0].starts_with("POST /in HTTP/1.1\r\n"), "{}", seen[0]);
        assert!(seen[0]
            .to_ascii_lowercase()
            .contains("content-type: application/json"));
        assert!(seen[0].to_ascii_lowercase().contains("accept: text/plain"));
        assert!(seen[1].ends_with("{\"n\":1}"));
        assert_eq!(counters.event_drain_attempt(), 3);
        assert_eq!(counters.event_drain_success(), 1, "only the 2XX counts");
        assert_eq!(
            counters.connection_created(),
            1,
            "one kept-alive connection"
        );
        assert_eq!(counters.event_write_fail(), 0);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_without_losing_the_event() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        // Answers one request per connection, then closes it without saying so.
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = Vec::new();
                while !buf.ends_with(b"x") {
                    let mut chunk = [0u8; 1024];
                    let n = s.read(&mut chunk).await.unwrap();
                    assert!(n > 0);
                    buf.extend_from_slice(&chunk[..n]);
                }
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await
                    .unwrap();
            }
        });
        let p = Props::from_pairs(&[("endpoint", &url), ("rollback.200", "false")]);
        let counters = Arc::new(SinkCounters::default());
        let cfg = HttpSinkConfig::from_props(&p).unwrap();
        let mut sink = HttpSink::new("k1", cfg, counters.clone());
        sink.deliver(&[Event::from_body("x")]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        sink.deliver(&[Event::from_body("x")]).await.unwrap();
        server.await.unwrap();
        assert_eq!(counters.connection_created(), 2);
        assert_eq!(counters.event_write_fail(), 0);
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_rolls_back_and_counts_a_write_failure() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        let p = Props::from_pairs(&[("endpoint", &url), ("rollback.200", "false")]);
        let counters = Arc::new(SinkCounters::default());
        let mut sink = HttpSink::new(
            "k1",
            HttpSinkConfig::from_props(&p).unwrap(),
            counters.clone(),
        );
        assert!(sink.deliver(&[Event::from_body("x")]).await.is_err());
        assert_eq!(counters.event_write_fail(), 1);
        assert_eq!(counters.connection_failed(), 1);
    }
}
