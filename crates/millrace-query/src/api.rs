//! The handlers of `/api/v1`, each with its OpenAPI description.

use crate::error::{ApiError, ErrorBody};
use crate::model::*;
use crate::params::{self, Params, FILTER_PARAMS, PAGE_PARAMS};
use crate::{Access, AppState};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;
use millrace_core::{Event, Headers};
use millrace_store::time::{format_rfc3339, parse_time};
use millrace_store::{Deadline, EventId, Field, Store, StoreError};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::sync::broadcast::error::RecvError;

/// Most buckets one histogram may have.
const MAX_BUCKETS: u64 = 10_000;

fn took(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// Runs a store query on the blocking pool, within the server's concurrency and time
/// limits.
async fn query<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&Store, Deadline) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = s.inner.queries.clone().try_acquire_owned().map_err(|_| {
        ApiError::busy(format!(
            "{} queries are already running; retry shortly",
            s.inner.cfg.max_concurrent_queries
        ))
    })?;
    let store = s.store().clone();
    let deadline = Deadline::after(s.inner.cfg.query_timeout);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f(&store, deadline)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "a query task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the query failed inside the server; the server log has the details",
        )
    })?
    .map_err(ApiError::from)
}

#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    summary = "Search events",
    description = "Events matching every filter, a page at a time. Follow `next_cursor` until it is absent: pages never repeat or skip an event.",
    params(FilterParams, PageParams),
    responses(
        (status = 200, description = "A page of events", body = SearchResponse),
        (status = 400, description = "A parameter is malformed or unknown", body = ErrorBody),
        (status = 401, description = "An API key is required", body = ErrorBody),
        (status = 422, description = "`from` is not before `to`", body = ErrorBody),
        (status = 429, description = "Too many queries at once", body = ErrorBody),
        (status = 503, description = "The query ran past its time limit", body = ErrorBody),
    ),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn search_events(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchResponse>, ApiError> {
    s.authorize(&headers, Access::Read)?;
    let start = Instant::now();
    let p = Params::parse(raw.as_deref(), &[FILTER_PARAMS, PAGE_PARAMS])?;
    let filter = params::filter(&p)?;
    let page = params::page(&p)?;
    let r = query(&s, move |st, d| st.search(&filter, &page, Some(d))).await?;
    Ok(Json(SearchResponse {
        events: r.events.iter().map(EventView::from).collect(),
        next_cursor: r.next_cursor.map(|c| c.to_string()),
        took_ms: took(start),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/events/{id}", tag = "events",
    summary = "Get one event",
    params(("id" = String, Path, description = "An event id (`TIME-SEQ`) from a search")),
    responses(
        (status = 200, body = EventView),
        (status = 400, description = "Not an event id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such event (never stored, or purged)", body = ErrorBody),
    ),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn get_event(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventView>, ApiError> {
    s.authorize(&headers, Access::Read)?;
    Params::parse(raw.as_deref(), &[])?;
    let Path(id) = path.map_err(|e| {
        ApiError::bad_param(
            "id",
            format!("{}; ids look like 1795939211096-17", e.body_text()),
        )
    })?;
    let eid: EventId = id.parse().map_err(|_| {
        ApiError::bad_param(
            "id",
            format!("`{id}` is not an event id; ids look like 1795939211096-17"),
        )
    })?;
    match query(&s, move |st, _| st.get(eid)).await? {
        Some(e) => Ok(Json(EventView::from(&e))),
        None => Err(ApiError::not_found(format!(
            "no event {id}: it was never stored or has been purged"
        ))
        .field("id")),
    }
}

#[utoipa::path(
    post, path = "/api/v1/events", tag = "events",
    summary = "Store events (Flume's HTTP source JSON format)",
    description = "A JSON array of `{\"headers\": {...}, \"body\": \"...\"}`, the format of Flume's HTTP source JSONHandler. The body may be sent with `Content-Encoding: gzip` or `deflate`. The answer comes once the events are on disk.",
    request_body(content = Vec<NewEvent>, content_type = "application/json",
        example = json!([{"headers": {"host": "web-1", "level": "ERROR"}, "body": "payment 42 declined"}])),
    responses(
        (status = 200, body = IngestResponse),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, description = "Body (unpacked) or batch too large", body = ErrorBody),
        (status = 415, description = "A Content-Encoding other than gzip or deflate", body = ErrorBody),
        (status = 422, description = "JSON, but not an array of events", body = ErrorBody),
    ),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn post_events(
    State(s): State<AppState>,
    req: Request,
) -> Result<Json<IngestResponse>, ApiError> {
    s.authorize(req.headers(), Access::Read)?;
    Params::parse(req.uri().query(), &[])?;
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let limit = s.inner.cfg.max_body_bytes;
    let encoding = content_encoding(req.headers())?;
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is over {limit} bytes; send smaller batches"),
            )
        })?;
    let bytes = decode_body(bytes, encoding, limit)?;
    let batch = parse_events(&bytes, s.inner.cfg.max_batch)?;
    let ids = s
        .inner
        .ingest
        .append(&format!("http {peer}"), "http", batch)
        .await?;
    Ok(Json(IngestResponse {
        accepted: ids.len(),
        ids: ids.iter().map(EventId::to_string).collect(),
    }))
}

/// The `Content-Encoding`s a POST body may have: senders such as Fluent Bit's and
/// Vector's HTTP outputs compress their batches.
#[derive(Clone, Copy)]
enum Encoding {
    Identity,
    Gzip,
    /// HTTP's `deflate` is the zlib format (RFC 9110, 8.4.1.2).
    Deflate,
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(v) = headers.get(axum::http::header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let v = v.to_str().unwrap_or("").trim();
    match v.to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!(
                "Content-Encoding `{v}` is not supported; send the body as is, gzip or deflate"
            ),
        )),
    }
}

/// The body as sent, uncompressed; what it unpacks to is bounded by `limit` as a
/// plain body is, so a small compressed body cannot fill the memory.
fn decode_body(
    bytes: bytes::Bytes,
    encoding: Encoding,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    use std::io::Read;
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => return Ok(bytes),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&bytes[..])),
        Encoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(&bytes[..])),
    };
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_encoding",
                format!("the body is not valid for its Content-Encoding ({e})"),
            )
        })?;
    if out.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body unpacks to over {limit} bytes; send smaller batches"),
        ));
    }
    Ok(out.into())
}

fn invalid_event(field: String, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", message).field(field)
}

/// Flume's JSON: `[{"headers": {"k": "v"}, "body": "text"}]`; `headers` may be left out.
fn parse_events(bytes: &[u8], max_batch: usize) -> Result<Vec<Event>, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not JSON ({e}); send an array of {{\"headers\": {{...}}, \"body\": \"...\"}}"),
        )
    })?;
    let serde_json::Value::Array(items) = v else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
            "the body must be a JSON array of events: [{\"headers\": {...}, \"body\": \"...\"}]",
        ));
    };
    if items.len() > max_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} events in one request; send at most {max_batch}",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let serde_json::Value::Object(obj) = item else {
            return Err(invalid_event(
                format!("[{i}]"),
                format!("event [{i}] must be an object with `headers` and `body`"),
            ));
        };
        let mut headers = Headers::new();
        let mut body = None;
        for (k, v) in obj {
            match (k.as_str(), v) {
                ("body", serde_json::Value::String(b)) => body = Some(b),
                ("body", _) => {
                    return Err(invalid_event(
                        format!("[{i}].body"),
                        format!("event [{i}]: `body` must be a string"),
                    ))
                }
                ("headers", serde_json::Value::Object(h)) => {
                    for (hk, hv) in h {
                        let serde_json::Value::String(hv) = hv else {
                            return Err(invalid_event(
                                format!("[{i}].headers.{hk}"),
                                format!("event [{i}]: header `{hk}` must be a string"),
                            ));
                        };
                        headers.insert(hk, hv);
                    }
                }
                ("headers", _) => {
                    return Err(invalid_event(
                        format!("[{i}].headers"),
                        format!("event [{i}]: `headers` must be an object of strings"),
                    ))
                }
                (other, _) => {
                    return Err(invalid_event(
                        format!("[{i}].{other}"),
                        format!(
                        "event [{i}]: unknown field `{other}`; an event has `headers` and `body`"
                    ),
                    ))
                }
            }
        }
        let Some(body) = body else {
            return Err(invalid_event(
                format!("[{i}].body"),
                format!("event [{i}] has no `body`"),
            ));
        };
        out.push(Event::new(headers, body));
    }
    Ok(out)
}

#[utoipa::path(
    delete, path = "/api/v1/events", tag = "events",
    summary = "Purge old events (admin key)",
    params(PurgeParams),
    responses(
        (status = 200, body = PurgeResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "The admin key is required", body = ErrorBody),
    ),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn purge_events(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<PurgeResponse>, ApiError> {
    s.authorize(&headers, Access::Admin)?;
    let start = Instant::now();
    let p = Params::parse(raw.as_deref(), &[&["before"]])?;
    let before = p.required("before", "e.g. before=2026-11-24T00:00:00Z or epoch ms")?;
    let before =
        parse_time(before).map_err(|m| ApiError::bad_param("before", format!("`before`: {m}")))?;
    let store = s.store().clone();
    // Purging works in steps and is not bound by the query time limit.
    let deleted = tokio::task::spawn_blocking(move || store.purge_before(before))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the purge failed inside the server",
            )
        })??;
    Ok(Json(PurgeResponse {
        deleted,
        took_ms: took(start),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/stats/histogram", tag = "stats",
    summary = "Count matching events per time interval",
    params(HistogramParams, FilterParams),
    responses(
        (status = 200, body = HistogramResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn histogram(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<HistogramResponse>, ApiError> {
    s.authorize(&headers, Access::Read)?;
    let start = Instant::now();
    let p = Params::parse(raw.as_deref(), &[FILTER_PARAMS, &["interval"]])?;
    let filter = params::filter(&p)?;
    let interval = params::interval(&p)?.as_millis() as u64;
    let align = |t: u64| t - t % interval;
    if let (Some(f), Some(t)) = (filter.from, filter.to) {
        if (align(t - 1) - align(f)) / interval + 1 > MAX_BUCKETS {
            return Err(too_many_buckets(None));
        }
    }
    let (from, to) = (filter.from, filter.to);
    let sparse = query(&s, move |st, d| st.histogram(&filter, interval, Some(d))).await?;
    let first = from.map(align).or(sparse.first().map(|b| b.0));
    let last = to.map(|t| align(t - 1)).or(sparse.last().map(|b| b.0));
    let mut buckets = Vec::new();
    if let (Some(first), Some(last)) = (first, last) {
        if (last.saturating_sub(first)) / interval + 1 > MAX_BUCKETS {
            // Without from/to the span is the matching events' own, which one event
            // with a wrong timestamp (seconds sent as milliseconds) can stretch.
            let span = (from.is_none() || to.is_none()).then_some((first, last + interval));
            return Err(too_many_buckets(span));
        }
        let mut it = sparse.into_iter().peekable();
        let mut t = first;
        while t <= last {
            let count = match it.peek() {
                Some(&(b, c)) if b == t => {
                    it.next();
                    c
                }
                _ => 0,
            };
            buckets.push(Bucket {
                start: t,
                time: format_rfc3339(t),
                count,
            });
            t += interval;
        }
    }
    Ok(Json(HistogramResponse {
        interval_ms: interval,
        buckets,
        took_ms: took(start),
    }))
}

fn too_many_buckets(events_span: Option<(u64, u64)>) -> ApiError {
    let span = match events_span {
        Some((first, end)) => format!(
            " (the matching events run from {} to {})",
            format_rfc3339(first),
            format_rfc3339(end)
        ),
        None => String::new(),
    };
    ApiError::bad_param(
        "interval",
        format!(
            "more than {MAX_BUCKETS} buckets{span}; use a larger interval or a narrower from/to"
        ),
    )
}

#[utoipa::path(
    get, path = "/api/v1/stats/top", tag = "stats",
    summary = "Most frequent values of a field among matching events",
    params(TopParams, FilterParams),
    responses(
        (status = 200, body = TopResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn top(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<TopResponse>, ApiError> {
    s.authorize(&headers, Access::Read)?;
    let start = Instant::now();
    let p = Params::parse(raw.as_deref(), &[FILTER_PARAMS, &["field", "limit"]])?;
    let filter = params::filter(&p)?;
    let field = params::field(&p)?;
    let limit = p.number("limit", 10, 1, 100)? as usize;
    let name = match &field {
        Field::Host => "host".to_string(),
        Field::Level => "level".to_string(),
        Field::Source => "source".to_string(),
        Field::Header(k) => format!("header:{k}"),
    };
    let t = query(&s, move |st, d| st.top(&field, &filter, limit, Some(d))).await?;
    Ok(Json(TopResponse {
        field: name,
        values: t
            .values
            .into_iter()
            .map(|(value, count)| ValueCount { value, count })
            .collect(),
        total: t.total,
        took_ms: took(start),
    }))
}

async fn values(s: &AppState, field: Field) -> Result<Vec<ValueCount>, ApiError> {
    let v = query(s, move |st, _| st.values(field)).await?;
    Ok(v.into_iter()
        .map(|(value, count)| ValueCount { value, count })
        .collect())
}

#[utoipa::path(
    get, path = "/api/v1/hosts", tag = "stats",
    summary = "Every host with its number of stored events",
    responses((status = 200, body = HostsResponse), (status = 401, body = ErrorBody)),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn hosts(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<HostsResponse>, ApiError> {
    s.authorize(&headers, Access::Read)?;
    Params::parse(raw.as_deref(), &[])?;
    Ok(Json(HostsResponse {
        hosts: values(&s, Field::Host).await?,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/levels", tag = "stats",
    summary = "Every level with its number of stored events",
    responses((status = 200, body = LevelsResponse), (status = 401, body = ErrorBody)),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn levels(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<LevelsResponse>, ApiError> {
    s.authorize(&headers, Access::Read)?;
    Params::parse(raw.as_deref(), &[])?;
    Ok(Json(LevelsResponse {
        levels: values(&s, Field::Level).await?,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/tail", tag = "events",
    summary = "Follow new matching events (Server-Sent Events)",
    description = "Each new event that matches is sent as an SSE `event: event` whose data is the event's JSON and whose id is the event id. A client that falls behind gets `event: lagged` with the number missed.",
    params(TailParams),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, description = "Too many tail clients", body = ErrorBody),
    ),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn tail(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    s.authorize(&headers, Access::Read)?;
    let p = Params::parse(
        raw.as_deref(),
        &[&["host", "source", "level", "header", "q"]],
    )?;
    let filter = params::filter(&p)?;
    let permit = s.inner.tails.clone().try_acquire_owned().map_err(|_| {
        ApiError::busy(format!(
            "{} tail clients are connected, the most this server allows (--max-tail-clients)",
            s.inner.cfg.max_tails
        ))
    })?;
    let rx = s.store().subscribe();
    let hello = SseEvent::default().comment("tailing");
    let events = futures_util::stream::unfold(
        (rx, filter, permit),
        |(mut rx, filter, permit)| async move {
            loop {
                match rx.recv().await {
                    Ok(e) if filter.matches(&e) => {
                        let ev = SseEvent::default()
                            .event("event")
                            .id(e.id.to_string())
                            .json_data(EventView::from(&*e))
                            .unwrap_or_else(|_| SseEvent::default().comment("unencodable event"));
                        return Some((Ok(ev), (rx, filter, permit)));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        let ev = SseEvent::default()
                            .event("lagged")
                            .data(format!("{{\"missed\":{n}}}"));
                        return Some((Ok(ev), (rx, filter, permit)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    use futures_util::StreamExt;
    let stream = futures_util::stream::once(async { Ok(hello) }).chain(events);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[utoipa::path(
    get, path = "/api/v1/agents", tag = "server",
    summary = "Who sends events, and the hosted agent's counters",
    responses((status = 200, body = AgentsResponse), (status = 401, body = ErrorBody)),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn agents(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<AgentsResponse>, ApiError> {
    s.authorize(&headers, Access::Read)?;
    Params::parse(raw.as_deref(), &[])?;
    let agent = s
        .inner
        .agent
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|a| HostedAgent {
            name: a.name.clone(),
            metrics: (a.metrics)(),
        });
    Ok(Json(AgentsResponse {
        senders: s.inner.ingest.senders(),
        agent,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/store", tag = "server",
    summary = "Size and time span of the store",
    responses((status = 200, body = StoreResponse), (status = 401, body = ErrorBody)),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn store_info(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<StoreResponse>, ApiError> {
    s.authorize(&headers, Access::Read)?;
    Params::parse(raw.as_deref(), &[])?;
    let st = query(&s, |st, _| st.stats()).await?;
    let r = &s.inner.cfg.retention;
    Ok(Json(StoreResponse {
        directory: s.store().dir().display().to_string(),
        events: st.events,
        stored_bytes: st.stored_bytes,
        disk_bytes: st.disk_bytes,
        oldest: st.oldest.map(format_rfc3339),
        newest: st.newest.map(format_rfc3339),
        retention_s: r.as_ref().and_then(|r| r.max_age).map(|d| d.as_secs()),
        max_store_bytes: r.as_ref().and_then(|r| r.max_bytes),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/health", tag = "server",
    summary = "Whether the server can answer (no key needed)",
    responses((status = 200, body = HealthResponse), (status = 503, body = ErrorBody))
)]
pub async fn health(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<HealthResponse>, ApiError> {
    Params::parse(raw.as_deref(), &[])?;
    let st = query(&s, |st, _| st.stats()).await?;
    Ok(Json(HealthResponse {
        status: "ok".into(),
        uptime_s: s.inner.started.elapsed().as_secs(),
        events: st.events,
    }))
}

pub async fn not_found(req: Request<Body>) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}; the API is described at /docs and /api-docs/openapi.json",
        req.method(),
        req.uri().path()
    ))
}

pub async fn method_not_allowed(req: Request<Body>) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; see /docs for the methods it takes",
            req.method(),
            req.uri().path()
        ),
    )
}
