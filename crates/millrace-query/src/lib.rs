//! The query server's HTTP API over a millrace event store: search with paging,
//! single events, ingest in Flume's JSON format, histograms, top values, live tail
//! (SSE), store and sender status, purge. The OpenAPI document is generated from the
//! handlers (`/api-docs/openapi.json`) and Swagger UI serves it at `/docs`.
//!
//! Every error is JSON, `{"error": {"code", "message", "field"}}`, with the status a
//! client acts on. Store work runs on the blocking pool, a bounded number of queries at
//! a time, each within a time limit.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use millrace_query::{AppState, Ingest, QueryConfig};
//! use millrace_store::{Store, StoreOptions};
//! use std::sync::Arc;
//!
//! let store = Arc::new(Store::open("store".as_ref(), StoreOptions::default()).unwrap());
//! let state = AppState::new(Ingest::new(store), QueryConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, millrace_query::router(state)).await
//! # }
//! ```

mod api;
pub mod error;
mod ingest;
pub mod model;
mod params;
pub mod sink;

pub use error::ApiError;
pub use ingest::Ingest;

use axum::http::{header, HeaderMap, StatusCode};
use axum::Router;
use millrace_store::{Retention, Store};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

/// Limits and keys of the API.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Required (as `Authorization: Bearer KEY` or `X-Api-Key: KEY`) on every
    /// `/api/v1` route but health; the admin key is accepted too.
    pub api_key: Option<String>,
    /// Required for purging. Without it, purging needs the API key (or nothing when
    /// no key is set at all).
    pub admin_key: Option<String>,
    /// Largest request body (POST), bytes.
    pub max_body_bytes: usize,
    /// Most events in one POST.
    pub max_batch: usize,
    /// How long one query may run before it is answered with 503.
    pub query_timeout: Duration,
    /// Queries running at once; more get 429.
    pub max_concurrent_queries: usize,
    /// Tail (SSE) clients at once; more get 429.
    pub max_tails: usize,
    /// Retention in force, shown by `GET /api/v1/store`.
    pub retention: Option<Retention>,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            api_key: None,
            admin_key: None,
            max_body_bytes: 10 << 20,
            max_batch: 10_000,
            query_timeout: Duration::from_secs(10),
            max_concurrent_queries: 16,
            max_tails: 64,
            retention: None,
        }
    }
}

/// Flume-shaped counters of a hosted agent, read on each request.
pub type MetricsFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

pub(crate) struct HostedAgentInfo {
    pub name: String,
    pub metrics: MetricsFn,
}

pub(crate) struct Inner {
    pub ingest: Ingest,
    pub cfg: QueryConfig,
    pub queries: Arc<Semaphore>,
    pub tails: Arc<Semaphore>,
    pub started: Instant,
    pub agent: RwLock<Option<HostedAgentInfo>>,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Admin,
}

impl AppState {
    pub fn new(ingest: Ingest, cfg: QueryConfig) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                ingest,
                queries: Arc::new(Semaphore::new(cfg.max_concurrent_queries.max(1))),
                tails: Arc::new(Semaphore::new(cfg.max_tails)),
                cfg,
                started: Instant::now(),
                agent: RwLock::new(None),
            }),
        }
    }

    /// Shows a hosted agent and its counters in `GET /api/v1/agents`.
    pub fn set_hosted_agent(&self, name: &str, metrics: MetricsFn) {
        *self.inner.agent.write().unwrap_or_else(|e| e.into_inner()) = Some(HostedAgentInfo {
            name: name.to_string(),
            metrics,
        });
    }

    pub fn store(&self) -> &Arc<Store> {
        self.inner.ingest.store()
    }

    pub(crate) fn authorize(&self, headers: &HeaderMap, access: Access) -> Result<(), ApiError> {
        let cfg = &self.inner.cfg;
        let accepted: Vec<&str> = match access {
            Access::Read => [&cfg.api_key, &cfg.admin_key]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect(),
            Access::Admin => match (&cfg.admin_key, &cfg.api_key) {
                (Some(a), _) => vec![a.as_str()],
                (None, Some(k)) => vec![k.as_str()],
                (None, None) => vec![],
            },
        };
        if accepted.is_empty() {
            return Ok(());
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
        let what = if access == Access::Admin && cfg.admin_key.is_some() {
            "the admin key"
        } else {
            "an API key"
        };
        match given {
            Some(g)
                if accepted
                    .iter()
                    .any(|k| same(k.as_bytes(), g.trim().as_bytes())) =>
            {
                Ok(())
            }
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("the key given is not accepted here; this needs {what}"),
            )),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("this needs {what}: send `Authorization: Bearer KEY` or `X-Api-Key: KEY`"),
            )),
        }
    }
}

/// The token of `Authorization: Bearer TOKEN`; the scheme's name is
/// case-insensitive (RFC 9110, 11.1).
fn bearer_token(v: &str) -> Option<&str> {
    let (scheme, token) = v.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// Compares keys in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "millrace query API",
        description = "Search, summarise and follow the events a millrace (or Apache Flume) pipeline collected. Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    modifiers(&Security),
    tags(
        (name = "events", description = "Search, fetch, store, follow and purge events"),
        (name = "stats", description = "Histograms, top values, hosts and levels"),
        (name = "server", description = "Store, senders and health"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(
            api::search_events,
            api::post_events,
            api::purge_events
        ))
        .routes(routes!(api::get_event))
        .routes(routes!(api::histogram))
        .routes(routes!(api::top))
        .routes(routes!(api::hosts))
        .routes(routes!(api::levels))
        .routes(routes!(api::tail))
        .routes(routes!(api::agents))
        .routes(routes!(api::store_info))
        .routes(routes!(api::health))
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The whole HTTP service: the API, `/docs` and `/api-docs/openapi.json`.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api_router().split_for_parts();
    api.with_state(state)
        .merge(SwaggerUi::new("/docs").url("/api-docs/openapi.json", doc))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
}
