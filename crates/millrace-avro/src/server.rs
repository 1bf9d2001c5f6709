//! The server side: answers Flume's avro sinks (Java or millrace) on one connection,
//! and an accept loop with an IP filter.

use crate::codec::Reader;
use crate::frame::{self, FrameError};
use crate::ipfilter::IpFilter;
use crate::protocol::{self, Call, HandshakeResponse, Match, Status};
use crate::transport::{self, BoxWrite};
use millrace_core::{CancellationToken, Event};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// Limits and options of a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Inflate requests and deflate responses (`compression-type = deflate`); both
    /// sides must agree.
    pub deflate: bool,
    /// Largest frame accepted; a larger one closes the connection.
    pub max_frame_bytes: usize,
    /// Most events one `appendBatch` may carry.
    pub max_batch: usize,
    /// Time a begun frame has to arrive whole.
    pub stall_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            deflate: false,
            max_frame_bytes: 64 << 20,
            max_batch: 100_000,
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// What a server does with the calls it receives.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Delivers the events of one `append` (`single`) or `appendBatch` call. The
    /// answer goes back to the sender: `Ok` only once the events are safe, so that on
    /// anything else the sender keeps them and retries.
    async fn deliver(&self, events: Vec<Event>, single: bool, peer: SocketAddr) -> Status;

    /// A connection opened (`true`) or closed.
    fn connection(&self, _opened: bool) {}

    /// A peer sent something that is not Flume's protocol; its connection is closed.
    fn malformed(&self, _peer: SocketAddr, _reason: &str) {}
}

fn known_client(h: &protocol::HandshakeRequest) -> bool {
    h.client_hash == protocol::PROTOCOL_MD5
        || h.client_hash == protocol::FLUME_PROTOCOL_MD5
        || h.client_protocol
            .as_deref()
            .is_some_and(|p| p.contains("\"AvroSourceProtocol\""))
}

/// A read error while inflating that the socket did not give (a socket gives kinds
/// such as ConnectionReset or UnexpectedEof) is the zlib decoder refusing the bytes:
/// the peer does not deflate, which is the peer's mistake to report, not a disconnect.
fn undeflatable(e: FrameError, deflate: bool) -> FrameError {
    use std::io::ErrorKind::{InvalidData, InvalidInput, Other};
    match e {
        FrameError::Io(io) if deflate && matches!(io.kind(), InvalidData | InvalidInput | Other) => {
            FrameError::Malformed(format!(
                "cannot inflate what the peer sent ({io}); with compression-type = deflate, its sender must deflate too"
            ))
        }
        e => e,
    }
}

/// Serves one connection until the peer closes it, it misbehaves, or `shutdown`.
pub async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    opts: &ServerOptions,
    handler: &dyn Handler,
    shutdown: &CancellationToken,
) -> Result<(), FrameError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut r, mut w) = transport::split(stream, opts.deflate.then_some(6));
    let mut handshaken = false;
    loop {
        let f = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            f = frame::read(&mut r, opts.max_frame_bytes, opts.stall_timeout) => {
                f.map_err(|e| undeflatable(e, opts.deflate))?
            }
        };
        let Some(f) = f else { return Ok(()) };
        let mut reader = Reader::new(&f.message);
        let mut out = Vec::new();
        if !handshaken {
            let h = protocol::decode_handshake_request(&mut reader)
                .map_err(|e| FrameError::Malformed(format!("bad handshake: {e}")))?;
            let matched = if !known_client(&h) {
                Match::None
            } else if h.server_hash == protocol::PROTOCOL_MD5
                || h.server_hash == protocol::FLUME_PROTOCOL_MD5
            {
                Match::Both
            } else {
                Match::Client
            };
            let resp = HandshakeResponse {
                matched,
                server_protocol: (matched != Match::Both).then(|| protocol::PROTOCOL_JSON.into()),
                server_hash: (matched != Match::Both).then_some(protocol::PROTOCOL_MD5),
            };
            protocol::encode_handshake_response(&mut out, &resp);
            if matched == Match::None {
                // The client resends with its protocol; nothing else is answered.
                reply(&mut w, f.serial, &out).await?;
                continue;
            }
            handshaken = true;
        }
        let call = protocol::decode_call(&mut reader, opts.max_batch)
            .map_err(|e| FrameError::Malformed(e.to_string()))?;
        match call {
            Call::Ping => {}
            Call::Append(e) => {
                let s = handler.deliver(vec![e], true, peer).await;
                protocol::encode_response(&mut out, Ok(s));
            }
            Call::AppendBatch(events) => {
                let s = handler.deliver(events, false, peer).await;
                protocol::encode_response(&mut out, Ok(s));
            }
            Call::Other(name) => {
                protocol::encode_response(
                    &mut out,
                    Err(&format!("AvroSourceProtocol has no message `{name}`")),
                );
            }
        }
        reply(&mut w, f.serial, &out).await?;
    }
}

async fn reply(w: &mut BoxWrite, serial: i32, message: &[u8]) -> Result<(), FrameError> {
    transport::send(w, &frame::encode(serial, message))
        .await
        .map_err(FrameError::Io)
}

/// Accepts connections until `shutdown`, serving each in its own task. Connections
/// the filter denies are closed at once. Returns once every connection has ended.
pub async fn serve(
    listener: TcpListener,
    opts: Arc<ServerOptions>,
    handler: Arc<dyn Handler>,
    filter: Option<Arc<IpFilter>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while tasks.try_join_next().is_some() {}
        if let Some(f) = &filter {
            if !f.allows(peer.ip()).await {
                tracing::info!(%peer, "connection refused by ipFilterRules");
                continue;
            }
        }
        let _ = stream.set_nodelay(true);
        let (opts, handler, shutdown, tls) =
            (opts.clone(), handler.clone(), shutdown.clone(), tls.clone());
        tasks.spawn(async move {
            handler.connection(true);
            let result = match tls {
                None => serve_connection(stream, peer, &opts, &*handler, &shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(opts.stall_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve_connection(s, peer, &opts, &*handler, &shutdown).await,
                        Ok(Err(e)) => Err(FrameError::Malformed(format!("TLS handshake failed: {e}"))),
                        Err(_) => Err(FrameError::Stalled(opts.stall_timeout)),
                    }
                }
            };
            match result {
                Ok(()) => {}
                Err(FrameError::Io(e)) => tracing::debug!(%peer, error = %e, "connection ended"),
                Err(e) => {
                    tracing::warn!(%peer, reason = %e, "closing a connection that broke the protocol");
                    handler.malformed(peer, &e.to_string());
                }
            }
            handler.connection(false);
        });
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}
