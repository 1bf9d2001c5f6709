//! The `netcatudp` source: every UDP datagram becomes an event (a trailing newline is
//! dropped), as Flume's NetcatUdpSource does.

use async_trait::async_trait;
use bytes::Bytes;
use millrace_core::{Event, Props, Source, SourceContext, SourceError};
use tokio::net::UdpSocket;

#[derive(Debug, Clone)]
pub struct NetcatUdpConfig {
    /// `bind` (required): the address to listen on.
    pub bind: String,
    /// `port` (required).
    pub port: u16,
    /// `remoteAddressHeader`: a header for the sender's address (`IP:PORT`).
    pub remote_address_header: Option<String>,
}

impl NetcatUdpConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let bind = p.required("bind", "set the address to listen on, e.g. 0.0.0.0");
        let port = p.port("port", "set the UDP port to listen on");
        let remote_address_header = p.get("remoteAddressHeader");
        if p.has_errors() {
            return None;
        }
        Some(NetcatUdpConfig {
            bind: bind?,
            port: port?,
            remote_address_header,
        })
    }
}

pub struct NetcatUdpSource {
    cfg: NetcatUdpConfig,
}

impl NetcatUdpSource {
    pub fn new(cfg: NetcatUdpConfig) -> Self {
        NetcatUdpSource { cfg }
    }
}

#[async_trait]
impl Source for NetcatUdpSource {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        let addr = format!("{}:{}", self.cfg.bind, self.cfg.port);
        let sock = UdpSocket::bind(&addr)
            .await
            .map_err(|e| crate::cannot_listen(&addr, &e, "bind", "port"))?;
        tracing::info!(source = %ctx.name, %addr, "netcat UDP source listening");
        let header = self.cfg.remote_address_header.clone();
        crate::syslog::udp_loop(sock, ctx, 65_536, |msg, _cut, peer| {
            let msg = msg.strip_suffix(b"\n").unwrap_or(msg);
            let msg = msg.strip_suffix(b"\r").unwrap_or(msg);
            let mut e = Event::from_body(Bytes::copy_from_slice(msg));
            if let Some(h) = &header {
                e.headers.insert(h.clone(), peer.to_string());
            }
            e
        })
        .await
    }
}
