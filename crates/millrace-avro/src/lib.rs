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
//!
//! A server that keeps what it receives, and a client that sends it a batch:
//!
//! ```
//! use millrace_avro::{serve, Client, ClientOptions, Handler, ServerOptions, Status};
//! use millrace_core::{CancellationToken, Event};
//! use std::net::SocketAddr;
//! use std::sync::{Arc, Mutex};
//!
//! #[derive(Default)]
//! struct Keep(Mutex<Vec<Event>>);
//!
//! #[async_trait::async_trait]
//! impl Handler for Keep {
//!     async fn deliver(&self, events: Vec<Event>, _single: bool, _peer: SocketAddr) -> Status {
//!         self.0.lock().unwrap().extend(events);
//!         Status::Ok
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! let kept = Arc::new(Keep::default());
//! let stop = CancellationToken::new();
//! let server = tokio::spawn(serve(
//!     listener,
//!     Arc::new(ServerOptions::default()),
//!     kept.clone(),
//!     None,
//!     None,
//!     stop.clone(),
//! ));
//!
//! let mut client = Client::connect(&addr.to_string(), ClientOptions::default()).await.unwrap();
//! client
//!     .append_batch(&[Event::from_body("hello").with_header("host", "web-1")])
//!     .await
//!     .unwrap();
//! assert_eq!(kept.0.lock().unwrap()[0].body.as_ref(), b"hello");
//!
//! drop(client);
//! stop.cancel();
//! server.await.unwrap();
//! # });
//! ```

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
