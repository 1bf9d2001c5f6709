//! The client side, as Flume's avro sink and `avro-client` use it: one connection,
//! one call at a time, each call answered before the next.

use crate::codec::Reader;
use crate::frame;
use crate::protocol::{self, HandshakeRequest, Match, Status};
use crate::transport::{self, BoxRead, BoxWrite};
use millrace_core::Event;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deflate requests and inflate responses at this level (0-9).
    pub deflate: Option<u32>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_frame_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            deflate: None,
            connect_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(20),
            max_frame_bytes: 64 << 20,
        }
    }
}

#[derive(Debug)]
pub enum ClientError {
    Connect(String),
    Timeout(Duration),
    Io(std::io::Error),
    /// The server answered, but not OK (its channel was full, for instance).
    Status(Status),
    /// The server answered with an Avro error.
    Remote(String),
    /// The server's answer was not Flume's protocol.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "cannot connect: {e}"),
            ClientError::Timeout(d) => write!(f, "no answer within {d:?}"),
            ClientError::Io(e) => write!(f, "connection failed: {e}"),
            ClientError::Status(s) => write!(f, "the server answered {s:?}"),
            ClientError::Remote(m) => write!(f, "the server reported an error: {m}"),
            ClientError::Protocol(m) => {
                write!(f, "the server does not speak Flume's protocol: {m}")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// One connection to an avro source. After any error it should be dropped: the
/// stream may be mid-frame.
pub struct Client {
    r: BoxRead,
    w: BoxWrite,
    serial: i32,
    handshaken: bool,
    opts: ClientOptions,
}

impl Client {
    /// Connects over TCP to `addr` (`host:port`).
    pub async fn connect(addr: &str, opts: ClientOptions) -> Result<Client, ClientError> {
        let stream =
            tokio::time::timeout(opts.connect_timeout, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| {
                    ClientError::Connect(format!(
                        "{addr}: no answer within {:?}",
                        opts.connect_timeout
                    ))
                })?
                .map_err(|e| ClientError::Connect(format!("{addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(Client::over(stream, opts))
    }

    /// Speaks the protocol over an established stream (a TLS session, for instance).
    pub fn over<S>(stream: S, opts: ClientOptions) -> Client
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = transport::split(stream, opts.deflate);
        Client {
            r,
            w,
            serial: 0,
            handshaken: false,
            opts,
        }
    }

    /// Sends one `appendBatch` and waits for its answer; `Ok` only on `Status::OK`.
    pub async fn append_batch(&mut self, events: &[Event]) -> Result<(), ClientError> {
        let timeout = self.opts.request_timeout;
        tokio::time::timeout(timeout, self.call(events))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    async fn call(&mut self, events: &[Event]) -> Result<(), ClientError> {
        let mut msg =
            Vec::with_capacity(64 + events.iter().map(|e| e.body.len() + 32).sum::<usize>());
        if !self.handshaken {
            // The protocol text goes with the first request, so the server never has
            // to ask for it.
            protocol::encode_handshake_request(
                &mut msg,
                &HandshakeRequest {
                    client_hash: protocol::PROTOCOL_MD5,
                    client_protocol: Some(protocol::PROTOCOL_JSON.into()),
                    server_hash: protocol::FLUME_PROTOCOL_MD5,
                },
            );
        }
        protocol::encode_append_batch(&mut msg, events);
        self.serial = self.serial.wrapping_add(1);
        transport::send(&mut self.w, &frame::encode(self.serial, &msg))
            .await
            .map_err(ClientError::Io)?;
        let f = match frame::read(
            &mut self.r,
            self.opts.max_frame_bytes,
            self.opts.request_timeout,
        )
        .await
        {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(ClientError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )))
            }
            Err(frame::FrameError::Io(e)) => return Err(ClientError::Io(e)),
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        };
        let mut r = Reader::new(&f.message);
        if !self.handshaken {
            let h = protocol::decode_handshake_response(&mut r)
                .map_err(|e| ClientError::Protocol(format!("bad handshake: {e}")))?;
            if h.matched == Match::None {
                return Err(ClientError::Protocol(
                    "the server did not accept AvroSourceProtocol".into(),
                ));
            }
            self.handshaken = true;
        }
        match protocol::decode_response(&mut r).map_err(|e| ClientError::Protocol(e.to_string()))? {
            Ok(Status::Ok) => Ok(()),
            Ok(s) => Err(ClientError::Status(s)),
            Err(m) => Err(ClientError::Remote(m)),
        }
    }
}
