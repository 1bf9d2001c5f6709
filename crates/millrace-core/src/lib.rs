//! The core model of millrace: [`Event`], the component traits ([`Source`],
//! [`Channel`], [`Sink`], [`Interceptor`]), channel transactions, channel selectors,
//! Flume's counters and the configuration diagnostics every component reports through.
//!
//! The guarantees the rest of the workspace builds on:
//! - a put is one transaction: a batch enters a channel whole or not at all;
//! - a take hands out a [`TakeTxn`]; dropping it without [`TakeTxn::commit`] rolls
//!   it back, so an early return or a panic in a sink can never lose an event.
//!
//! ```
//! use millrace_core::Event;
//!
//! let e = Event::from_body("GET /index.html 200").with_header("host", "web-1");
//! assert_eq!(e.header("host"), Some("web-1"));
//! ```

pub mod channel;
pub mod counters;
pub mod diag;
pub mod event;
pub mod interceptor;
pub mod kafka;
pub mod props;
pub mod selector;
pub mod sink;
pub mod source;

pub use channel::{Channel, ChannelError, TakeHandle, TakeTxn};
pub use counters::{ChannelCounters, ComponentKind, Metrics, SinkCounters, SourceCounters};
pub use diag::{Diagnostic, Severity};
pub use event::{Event, Headers};
pub use interceptor::Interceptor;
pub use props::Props;
pub use selector::{ChannelProcessor, ChannelSelector, ProcessError};
pub use sink::{Sink, SinkError};
pub use source::{ShuttingDown, Source, SourceContext, SourceError};
pub use tokio_util::sync::CancellationToken;
