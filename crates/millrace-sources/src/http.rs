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
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use millrace_core::counters::inc;
use millrace_core::{Event, Headers, Props, Source, SourceContext, SourceError};
use std::collections::HashMap;

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
}

impl HttpConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let bind = p.string("bind", "0.0.0.0");
        let port = p.has("port").then(|| p.u64_in("port", 0, 0, 65535) as u16);
        if port.is_none() {
            p.required("port", "set the TCP port to listen on, e.g. 8080");
        }
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
        if p.bool("enableSSL", false) {
            p.error_at("enableSSL", format!("`{}` = true is not supported yet; terminate TLS in front of the agent (a reverse proxy) and send plain HTTP to it on 127.0.0.1", p.full_key("enableSSL")));
        }
        for k in [
            "keystore",
            "keystorePassword",
            "keystoreType",
            "excludeProtocols",
            "QueuedThreadPool.MaxThreads",
        ] {
            let _ = p.get(k);
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
        })
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
}

async fn handle(
    State(st): State<AppState>,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
    _headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "POST events to this address\n".to_string(),
        );
    }
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
        let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
            SourceError::Failed(format!(
                "cannot listen on {addr}: {e}; free the port or change `port`"
            ))
        })?;
        tracing::info!(source = %ctx.name, %addr, "http source listening");
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(self.cfg.max_body))
            .with_state(AppState {
                ctx: ctx.clone(),
                handler: self.cfg.handler,
            });
        let stop = ctx.shutdown.clone();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .map_err(SourceError::Io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
