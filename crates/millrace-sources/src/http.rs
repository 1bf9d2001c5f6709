//! The `http` source: events POSTed over HTTP (Flume's HTTPSource).
//!
//! With the default JSON handler a request body is Flume's JSON format,
//! `[{"headers": {"k": "v"}, "body": "text"}, ...]`, and is put as one transaction:
//! 200 once the put committed, 503 when the channel is full (the client retries),
//! 400 with the reason for a malformed body, 413 for a body over `maxBodySize`. The
//! BLOB handler makes the whole body one event, with the request's query parameters
//! as headers.

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use millrace_core::counters::inc;
use millrace_core::{Event, Headers, Props, Source, SourceContext, SourceError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Json,
    Blob,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `bind` (default 0.0.0.0).
    pub bind: String,
    /// `port` (required).
    pub port: u16,
    /// `handler` (default `org.apache.flume.source.http.JSONHandler`; or
    /// `org.apache.flume.sink.solr.morphline.BlobHandler`, or JSON / BLOB).
    pub handler: Handler,
    /// `maxBodySize` (bytes, default 10485760; `handler.maxBlobLength` for BLOB).
    pub max_body: usize,
    /// `enableSSL` with `sslCertificate` and `sslKey` (PEM files): serve HTTPS.
    pub tls: Option<Arc<ServerConfig>>,
}

/// A TLS server configuration from PEM files: the certificate chain and its key.
pub fn load_tls(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(std::io::BufReader::new)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut open(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key = rustls_pemfile::private_key(&mut open(key)?)
        .map_err(|e| format!("{} is not a PEM key file: {e}", key.display()))?
        .ok_or_else(|| format!("{} holds no PEM private key", key.display()))?;
    ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
    .map_err(|e| format!("the certificate and key do not make a TLS configuration: {e}"))
}

impl HttpConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let bind = p.string("bind", "0.0.0.0");
        let port = p.port("port", "set the TCP port to listen on, e.g. 8080");
        let h = p.string("handler", "org.apache.flume.source.http.JSONHandler");
        let handler = match h.to_ascii_lowercase().as_str() {
            "org.apache.flume.source.http.jsonhandler" | "json" => Handler::Json,
            "org.apache.flume.sink.solr.morphline.blobhandler" | "blob" => Handler::Blob,
            _ => {
                p.error_at("handler", format!("handler `{h}` (`{}`) is not supported; use org.apache.flume.source.http.JSONHandler or org.apache.flume.sink.solr.morphline.BlobHandler", p.full_key("handler")));
                Handler::Json
            }
        };
        let blob_max = p
            .sub("handler.")
            .u64_in("maxBlobLength", 100_000_000, 1, 1 << 31) as usize;
        let body_max = p.u64_in("maxBodySize", 10 * 1024 * 1024, 1, 1 << 31) as usize;
        // Flume 1.11 reads `ssl`, and `enableSSL` only when `ssl` is absent.
        let ssl = if p.has("ssl") {
            let _ = p.get("enableSSL");
            p.bool("ssl", false)
        } else {
            p.bool("enableSSL", false)
        };
        let tls = if ssl {
            tls_from_props(p, "HTTPS")
        } else {
            let _ = p.get("keystore");
            None
        };
        read_ignored_tls_keys(p);
        // Jetty's own settings: tokio and hyper serve here.
        for prefix in [
            "QueuedThreadPool.",
            "HttpConfiguration.",
            "ServerConnector.",
            "SslContextFactory.",
        ] {
            let _ = p.with_prefix(prefix);
        }
        if p.has_errors() {
            return None;
        }
        Some(HttpConfig {
            bind,
            port: port?,
            handler,
            max_body: if handler == Handler::Blob {
                blob_max
            } else {
                body_max
            },
            tls,
        })
    }
}

/// Flume's keystore password and type, and its protocol and cipher suite lists,
/// which the Java TLS stack reads: accepted so a Flume file runs, without effect
/// (rustls offers TLS 1.2 and 1.3 with its safe suites).
pub fn read_ignored_tls_keys(p: &Props) {
    for k in [
        "keystore-password",
        "keystore-type",
        "exclude-protocols",
        "include-protocols",
        "exclude-cipher-suites",
        "include-cipher-suites",
        "keystorePassword",
        "keystoreType",
        "excludeProtocols",
    ] {
        let _ = p.get(k);
    }
}

/// The server TLS configuration from `sslCertificate` and `sslKey` (PEM files), as the
/// http and avro sources take it; a Java `keystore` is reported with the commands
/// that convert it. Problems are recorded in `p`.
pub fn tls_from_props(p: &Props, what: &str) -> Option<Arc<ServerConfig>> {
    if p.get("keystore").is_some() {
        p.error_at("keystore", format!("`{}`: Java keystores are not read; convert it to PEM (`openssl pkcs12 -in keystore.p12 -nodes -nokeys -out cert.pem` and `... -nocerts -out key.pem`) and set sslCertificate and sslKey", p.full_key("keystore")));
    }
    let cert = p.required(
        "sslCertificate",
        &format!("set the PEM certificate (chain) file for {what}"),
    );
    let key = p.required(
        "sslKey",
        &format!("set the PEM private key file for {what}"),
    );
    match load_tls(Path::new(&cert?), Path::new(&key?)) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            p.error_at(
                "sslCertificate",
                format!("`{}`: {e}", p.full_key("sslCertificate")),
            );
            None
        }
    }
}

/// Flume's JSON event format into events; the error says what is wrong.
pub fn parse_json(body: &[u8]) -> Result<Vec<Event>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let arr = v.as_array().ok_or(
        "the body must be a JSON array of events, e.g. [{\"headers\": {}, \"body\": \"text\"}]",
    )?;
    arr.iter()
        .enumerate()
        .map(|(i, e)| {
            let obj = e
                .as_object()
                .ok_or(format!("event {i} is not a JSON object"))?;
            let mut headers = Headers::new();
            if let Some(h) = obj.get("headers") {
                let h = h
                    .as_object()
                    .ok_or(format!("event {i}: `headers` must be an object of strings"))?;
                for (k, v) in h {
                    let v = v
                        .as_str()
                        .ok_or(format!("event {i}: header `{k}` must be a string"))?;
                    headers.insert(k.clone(), v.to_string());
                }
            }
            let body = match obj.get("body") {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(_) => return Err(format!("event {i}: `body` must be a string")),
            };
            for k in obj.keys() {
                if k != "headers" && k != "body" {
                    return Err(format!(
                        "event {i}: unknown field `{k}`; events have `headers` and `body`"
                    ));
                }
            }
            Ok(Event::new(headers, body))
        })
        .collect()
}

#[derive(Clone)]
struct AppState {
    ctx: SourceContext,
    handler: Handler,
    max_body: usize,
}

async fn handle(
    State(st): State<AppState>,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
    _headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> impl IntoResponse {
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "POST events to this address\n".to_string(),
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let key = match st.handler {
                Handler::Json => "maxBodySize",
                Handler::Blob => "handler.maxBlobLength",
            };
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is over {} bytes, this source's `{key}`; send smaller batches or raise it\n",
                    st.max_body
                ),
            );
        }
        Err(e) => return (e.status(), format!("{}\n", e.body_text())),
    };
    let events = match st.handler {
        Handler::Json => match parse_json(&body) {
            Ok(e) => e,
            Err(reason) => {
                inc(&st.ctx.counters.event_read_fail);
                return (StatusCode::BAD_REQUEST, format!("{reason}\n"));
            }
        },
        Handler::Blob => vec![Event::new(query.into_iter().collect(), body)],
    };
    let n = events.len();
    millrace_core::counters::add(&st.ctx.counters.append_batch_received, 1);
    if n == 0 {
        return (StatusCode::OK, String::new());
    }
    if n > st.ctx.processor.max_batch() {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "{n} events exceed the channel's transactionCapacity ({}); send smaller batches\n",
                st.ctx.processor.max_batch()
            ),
        );
    }
    match st.ctx.processor.process(events, &st.ctx.counters).await {
        Ok(()) => {
            millrace_core::counters::add(&st.ctx.counters.append_batch_accepted, 1);
            (StatusCode::OK, String::new())
        }
        Err(e) if e.is_full() => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

pub struct HttpSource {
    cfg: HttpConfig,
}

impl HttpSource {
    pub fn new(cfg: HttpConfig) -> Self {
        HttpSource { cfg }
    }
}

#[async_trait]
impl Source for HttpSource {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        let addr = format!("{}:{}", self.cfg.bind, self.cfg.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| crate::cannot_listen(&addr, &e, "bind", "port"))?;
        tracing::info!(source = %ctx.name, %addr, "http source listening");
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(self.cfg.max_body))
            .with_state(AppState {
                ctx: ctx.clone(),
                handler: self.cfg.handler,
                max_body: self.cfg.max_body,
            });
        let stop = ctx.shutdown.clone();
        match &self.cfg.tls {
            None => axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .map_err(SourceError::Io),
            Some(tls) => {
                let tls_listener = TlsListener::start(listener, tls.clone(), ctx.clone())?;
                axum::serve(tls_listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
                    .map_err(SourceError::Io)
            }
        }
    }
}

/// Accepts TCP connections and hands on those whose TLS handshake completed. Each
/// handshake runs in its own task with a deadline, so a silent or broken client never
/// holds up the others.
struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

/// How long a TLS client has to finish its handshake (http and syslog TCP sources).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsListener {
    fn start(
        listener: TcpListener,
        tls: Arc<ServerConfig>,
        ctx: SourceContext,
    ) -> Result<TlsListener, SourceError> {
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        tokio::spawn(async move {
            loop {
                let (sock, peer) = tokio::select! {
                    _ = ctx.shutdown.cancelled() => return,
                    r = listener.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(source = %ctx.name, error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx, ctx) = (acceptor.clone(), tx.clone(), ctx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(source = %ctx.name, %peer, error = %e, "TLS handshake failed");
                            inc(&ctx.counters.generic_processing_fail);
                        }
                        Err(_) => {
                            tracing::debug!(source = %ctx.name, %peer, "TLS handshake timed out");
                            inc(&ctx.counters.generic_processing_fail);
                        }
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The acceptor stopped (shutdown): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What configtest would print for these properties: errors and unknown keys.
    fn problems(pairs: &[(&str, &str)]) -> Vec<String> {
        let mut all = vec![("port", "8080")];
        all.extend_from_slice(pairs);
        let p = Props::from_pairs(&all);
        let _ = HttpConfig::from_props(&p);
        p.finish().into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn flume_1_11_tls_names_are_read() {
        // `ssl` asks for TLS (the PEM files are then missing), as `enableSSL` does.
        for on in ["ssl", "enableSSL"] {
            let d = problems(&[(on, "true")]);
            assert!(
                d.iter().any(|m| m.contains("sslCertificate")),
                "{on}: {d:?}"
            );
        }
        // `ssl` wins over the older name.
        assert!(problems(&[("ssl", "false"), ("enableSSL", "true")]).is_empty());
        // TLS off: Flume's keystore and Jetty settings are read without a word.
        let d = problems(&[
            ("keystore", "k.jks"),
            ("keystore-password", "x"),
            ("include-cipher-suites", "TLS_AES_128_GCM_SHA256"),
            ("HttpConfiguration.sendServerVersion", "false"),
        ]);
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn flume_json_format() {
        let e = parse_json(br#"[{"headers": {"a": "1"}, "body": "x"}, {"body": ""}, {}]"#).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].header("a"), Some("1"));
        assert_eq!(e[0].body.as_ref(), b"x");
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        for (body, needle) in [
            (&b"{not json"[..], "not valid JSON"),
            (b"{\"body\": \"x\"}", "JSON array"),
            (
                b"[{\"headers\": {\"a\": 1}}]",
                "header `a` must be a string",
            ),
            (b"[{\"body\": 5}]", "`body` must be a string"),
            (b"[{\"bdy\": \"x\"}]", "unknown field `bdy`"),
        ] {
            let err = parse_json(body).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}
