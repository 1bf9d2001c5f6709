//! Monitoring: the agent's counters over HTTP, in Flume's JSON shape at `/metrics`
//! and in Prometheus text format at `/metrics/prometheus`.
//!
//! Flume's JSON makes every value a string (`"EventReceivedCount": "42"`) and keys
//! components as `SOURCE.r1`, `CHANNEL.c1`, `SINK.k1`; dashboards built on Flume
//! read millrace's output unchanged. As in Flume, TRACE and OPTIONS get 403 and any
//! other path 404.

use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use millrace_core::counters::Metrics;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// The registry the server reads; swapped whole when the agent is reconfigured.
pub type SharedRegistry = Arc<RwLock<Arc<MetricsRegistry>>>;

struct Entry {
    name: String,
    type_name: String,
    metrics: Arc<dyn Metrics>,
}

/// Every component's counters, in start order.
#[derive(Default)]
pub struct MetricsRegistry {
    entries: Vec<Entry>,
}

impl MetricsRegistry {
    pub fn add(&mut self, name: &str, type_name: &str, metrics: Arc<dyn Metrics>) {
        self.entries.push(Entry {
            name: name.to_string(),
            type_name: type_name.to_string(),
            metrics,
        });
    }

    /// Flume's JSON document.
    pub fn json(&self) -> serde_json::Value {
        let mut root = serde_json::Map::new();
        for e in &self.entries {
            let kind = e.metrics.kind().flume_name();
            let mut m = serde_json::Map::new();
            m.insert("Type".into(), kind.into());
            for (k, v) in e.metrics.values() {
                m.insert(k.into(), v.into());
            }
            m.insert(
                "StartTime".into(),
                e.metrics.start_time().to_string().into(),
            );
            m.insert("StopTime".into(), e.metrics.stop_time().to_string().into());
            root.insert(format!("{kind}.{}", e.name), m.into());
        }
        root.into()
    }

    /// Prometheus text exposition: one family per counter,
    /// `millrace_<kind>_<counter>{component="..",type=".."}`.
    pub fn prometheus(&self) -> String {
        let mut families: Vec<(String, Vec<String>)> = Vec::new();
        for e in &self.entries {
            let kind = e.metrics.kind().flume_name().to_ascii_lowercase();
            for (k, v) in e.metrics.values() {
                let fam = format!("millrace_{kind}_{}", snake(k));
                let line = format!(
                    "{fam}{{component=\"{}\",type=\"{}\"}} {v}",
                    escape(&e.name),
                    escape(&e.type_name)
                );
                match families.iter_mut().find(|(f, _)| *f == fam) {
                    Some((_, lines)) => lines.push(line),
                    None => families.push((fam, vec![line])),
                }
            }
        }
        let mut out = String::new();
        for (fam, lines) in families {
            // OpenConnectionCount is a count that goes down as well as up.
            let monotonic = !fam.ends_with("_open_connection_count");
            let kind = if monotonic && (fam.ends_with("_count") || fam.ends_with("_fail")) {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# TYPE {fam} {kind}");
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
        out
    }
}

fn snake(camel: &str) -> String {
    let mut s = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The monitoring HTTP server.
pub struct MonitorServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MonitorServer {
    /// Binds `addr` and serves until [`MonitorServer::stop`].
    pub async fn start(addr: SocketAddr, registry: SharedRegistry) -> std::io::Result<Self> {
        let app = Router::new()
            .route("/metrics", get(json_handler).fallback(fallback))
            .route("/metrics/prometheus", get(prom_handler).fallback(fallback))
            .fallback(fallback)
            .with_state(registry);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "monitoring server stopped");
            }
        });
        tracing::info!(%addr, "monitoring at http://{addr}/metrics");
        Ok(MonitorServer { addr, task })
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

fn current(r: &SharedRegistry) -> Arc<MetricsRegistry> {
    r.read().unwrap_or_else(|e| e.into_inner()).clone()
}

async fn json_handler(State(r): State<SharedRegistry>) -> Response {
    let r = current(&r);
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        r.json().to_string(),
    )
        .into_response()
}

async fn prom_handler(State(r): State<SharedRegistry>) -> Response {
    let r = current(&r);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        r.prometheus(),
    )
        .into_response()
}

async fn fallback(method: Method) -> StatusCode {
    if method == Method::TRACE || method == Method::OPTIONS {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::NOT_FOUND
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_core::counters::{add, ChannelCounters, SourceCounters};

    fn registry() -> MetricsRegistry {
        let mut r = MetricsRegistry::default();
        let s = Arc::new(SourceCounters::default());
        add(&s.event_received, 7);
        r.add("r1", "exec", s);
        r.add(
            "c1",
            "memory",
            Arc::new(ChannelCounters::with_capacity(100)),
        );
        r
    }

    #[test]
    fn json_has_flume_shape_with_string_values() {
        let j = registry().json();
        assert_eq!(j["SOURCE.r1"]["Type"], "SOURCE");
        assert_eq!(j["SOURCE.r1"]["EventReceivedCount"], "7");
        assert_eq!(j["CHANNEL.c1"]["ChannelCapacity"], "100");
        assert_eq!(j["CHANNEL.c1"]["ChannelFillPercentage"], "0.0");
        assert_eq!(j["CHANNEL.c1"]["StopTime"], "0");
        for (_, comp) in j.as_object().unwrap() {
            for (k, v) in comp.as_object().unwrap() {
                assert!(v.is_string(), "{k} is not a string");
            }
        }
    }

    #[test]
    fn prometheus_names_counters_by_component() {
        let p = registry().prometheus();
        assert!(
            p.contains("# TYPE millrace_source_event_received_count counter"),
            "{p}"
        );
        assert!(
            p.contains("millrace_source_event_received_count{component=\"r1\",type=\"exec\"} 7")
        );
        assert!(p.contains("millrace_channel_channel_size{component=\"c1\",type=\"memory\"} 0"));
        // Open connections go down as well as up.
        assert!(
            p.contains("# TYPE millrace_source_open_connection_count gauge"),
            "{p}"
        );
    }
}
