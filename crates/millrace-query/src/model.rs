//! What the API sends and accepts, with the schemas the OpenAPI document shows.

use millrace_store::time::format_rfc3339;
use millrace_store::StoredEvent;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// One stored event.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "1795939211096-17", "time": 1795939211096u64, "timestamp": "2026-11-24T08:00:11.096Z",
    "host": "web-1", "source": "/var/log/app.log", "level": "ERROR",
    "headers": {"host": "web-1", "file": "/var/log/app.log"},
    "body": "2026-11-24 08:00:11,096 ERROR [orders] payment 703679 declined"
}))]
pub struct EventView {
    /// Stable id: `TIME-SEQ`; `GET /api/v1/events/{id}` returns the event.
    pub id: String,
    /// Event time, epoch ms: the `timestamp` header, else when the event arrived.
    pub time: u64,
    /// The same time in RFC 3339 (UTC).
    pub timestamp: String,
    /// The `host` header.
    pub host: Option<String>,
    /// The `file` header, else the `source` header.
    pub source: Option<String>,
    /// The `level` header, else the level word found in the body.
    pub level: Option<String>,
    /// Every header, as received.
    pub headers: BTreeMap<String, String>,
    /// The body as UTF-8 (invalid bytes shown as U+FFFD).
    pub body: String,
}

impl From<&StoredEvent> for EventView {
    fn from(e: &StoredEvent) -> Self {
        EventView {
            id: e.id.to_string(),
            time: e.id.time,
            timestamp: format_rfc3339(e.id.time),
            host: e.host.clone(),
            source: e.source.clone(),
            level: e.level.clone(),
            headers: e.headers.clone(),
            body: String::from_utf8_lossy(&e.body).into_owned(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Milliseconds the query took in the server.
    pub took_ms: u64,
}

/// The filters every query endpoint takes.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FilterParams {
    /// Events at or after this time: RFC 3339 (`2026-11-24T08:00:00Z`) or epoch ms.
    from: Option<String>,
    /// Events before this time: RFC 3339 or epoch ms.
    to: Option<String>,
    /// Host (the `host` header); repeat for any of several.
    host: Option<Vec<String>>,
    /// Source (the `file` or `source` header); repeat for any of several.
    source: Option<Vec<String>>,
    /// Level, any case (ERROR, WARN, INFO, DEBUG, TRACE, ...); repeat for any of several.
    level: Option<Vec<String>>,
    /// `KEY:VALUE`: the header must have this value; repeat for all of several.
    header: Option<Vec<String>>,
    /// Words that must all appear in the body, any case.
    q: Option<String>,
}

/// Paging for `GET /api/v1/events`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// `desc` (newest first, the default) or `asc`.
    order: Option<String>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Filters for `GET /api/v1/tail` (no time range: it follows new events).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TailParams {
    host: Option<Vec<String>>,
    source: Option<Vec<String>>,
    level: Option<Vec<String>>,
    header: Option<Vec<String>>,
    q: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct HistogramParams {
    /// Bucket width, 1m to 1d (default 1h): e.g. `5m`, `1h`.
    interval: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TopParams {
    /// `host`, `level`, `source` or `header:KEY`.
    field: String,
    /// Values to return, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: Option<u32>,
}

/// One event of a `POST /api/v1/events` batch: Flume's HTTP source JSON format.
#[derive(ToSchema)]
#[schema(example = json!({"headers": {"host": "web-1", "level": "ERROR"}, "body": "payment 42 declined"}))]
#[allow(dead_code)]
pub struct NewEvent {
    /// String values only; `timestamp` (epoch ms), `host`, `level` and `file` or
    /// `source` are what the store derives its fields from.
    headers: Option<std::collections::BTreeMap<String, String>>,
    /// The log line or message, as text.
    body: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PurgeParams {
    /// Delete every event older than this: RFC 3339 or epoch ms.
    before: String,
}

#[derive(Serialize, ToSchema)]
pub struct Bucket {
    /// Bucket start, epoch ms.
    pub start: u64,
    /// Bucket start, RFC 3339.
    pub time: String,
    pub count: u64,
}

#[derive(Serialize, ToSchema)]
pub struct HistogramResponse {
    pub interval_ms: u64,
    /// Every bucket from the first to the last (from `from`/`to` when given), empty ones
    /// included.
    pub buckets: Vec<Bucket>,
    pub took_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ValueCount {
    pub value: String,
    pub count: u64,
}

#[derive(Serialize, ToSchema)]
pub struct TopResponse {
    pub field: String,
    /// Most frequent first.
    pub values: Vec<ValueCount>,
    /// Matching events that have the field.
    pub total: u64,
    pub took_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct HostsResponse {
    pub hosts: Vec<ValueCount>,
}

#[derive(Serialize, ToSchema)]
pub struct LevelsResponse {
    pub levels: Vec<ValueCount>,
}

#[derive(Serialize, ToSchema)]
pub struct IngestResponse {
    /// Events stored (and flushed to disk).
    pub accepted: usize,
    /// Their ids, in the order sent.
    pub ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PurgeResponse {
    pub deleted: u64,
    pub took_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct StoreResponse {
    pub directory: String,
    pub events: u64,
    /// Bytes of records and index entries (what `--max-store-bytes` bounds).
    pub stored_bytes: u64,
    /// Bytes of the store's files on disk: the database and the segment files.
    pub disk_bytes: u64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
    /// `--retention`, in seconds, when set.
    pub retention_s: Option<u64>,
    /// `--max-store-bytes`, when set.
    pub max_store_bytes: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`.
    pub status: String,
    pub uptime_s: u64,
    pub events: u64,
}

#[derive(Serialize, ToSchema, Clone)]
pub struct SenderView {
    /// Who sent: `http 127.0.0.1`, `sink a1.k1`, ...
    pub name: String,
    /// How: `http` (POST /api/v1/events) or `sink` (the hosted agent's store sink).
    pub kind: String,
    pub events: u64,
    pub batches: u64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Serialize, ToSchema)]
pub struct HostedAgent {
    pub name: String,
    /// The agent's counters in Flume's JSON shape (`{"SOURCE.r1": {...}}`).
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct AgentsResponse {
    pub senders: Vec<SenderView>,
    /// The agent this server runs (`-f FILE -n NAME`), if any.
    pub agent: Option<HostedAgent>,
}
