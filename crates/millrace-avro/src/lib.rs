//! Flume's Avro RPC: the `AvroSourceProtocol` that Flume's avro sink, avro source and
//! `avro-client` speak, over Avro IPC's Netty framing, with optional deflate and TLS.
//! A millrace agent and a Java Flume agent can send to each other in either direction.
//!
//! - [`client::Client`] sends batches and waits for each answer.
//! - [`server::serve`] accepts connections and hands each call's events to a
//!   [`server::Handler`], answering `OK` only when the handler says they are safe.
//!
//! Nothing from the wire is trusted: frame sizes, buffer counts, string lengths and
//! batch sizes are checked before anything is allocated, and a peer that breaks the
//! protocol loses its connection without disturbing the others.

pub mod client;
pub mod codec;
pub mod frame;
pub mod ipfilter;
pub mod protocol;
pub mod server;
pub mod transport;

pub use client::{Client, ClientError, ClientOptions};
pub use ipfilter::IpFilter;
pub use protocol::Status;
pub use server::{serve, serve_connection, Handler, ServerOptions};
