//! Syslog sources: `syslogtcp`, `multiport_syslogtcp` and `syslogudp` (Flume's names
//! and properties), with RFC 3164 and RFC 5424 parsing (see [`parse`]).
//!
//! Over TCP a message ends at a newline, or is octet-counted (`LEN <PRI>...`, RFC
//! 6587). A message longer than `eventSize` is cut there and marked
//! `flume.syslog.status = Incomplete`; a line that is not syslog is kept whole and
//! marked `Invalid`. Both are delivered, as Flume does, and counted in
//! `EventReadFail`. A bad client never stops the source.
//!
//! With `ssl = true` the TCP sources speak TLS (PEM `sslCertificate` and `sslKey`).
//! Each connection's handshake runs in its own task within a deadline; a client that
//! fails it (plaintext on the TLS port, a bad certificate, silence) is logged, counted
//! in `GenericProcessingFail` and closed, and nobody else notices.

pub mod parse;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use millrace_core::counters::{add, inc};
use millrace_core::{Event, Props, Source, SourceContext, SourceError};
use parse::KeepFields;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Settings shared by the syslog sources.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// `host` (default 0.0.0.0): the address to listen on.
    pub host: String,
    /// `port` (syslogtcp, syslogudp) or `ports` (multiport_syslogtcp, space separated).
    pub ports: Vec<u16>,
    /// `eventSize` (default 2500): the longest message, in bytes.
    pub event_size: usize,
    /// `keepFields` (default none).
    pub keep: KeepFields,
    /// `clientIPHeader`: a header for the sender's IP address.
    pub client_ip_header: Option<String>,
    /// `clientHostnameHeader`: a header for the sender's host name (reverse DNS,
    /// looked up once per connection or sender).
    pub client_hostname_header: Option<String>,
    /// `portHeader` (multiport_syslogtcp): a header for the port a message came in on.
    pub port_header: Option<String>,
    /// `batchSize` (multiport_syslogtcp, default 100): most events per put.
    pub batch_size: usize,
    /// Which source this is: its headers follow that Flume source's parser.
    pub kind: Kind,
    /// `ssl` (TCP sources, default false) with `sslCertificate` and `sslKey` (PEM
    /// files): accept TLS connections only.
    pub tls: Option<Arc<ServerConfig>>,
    /// How long a TLS client has to finish its handshake (not a Flume property:
    /// [`crate::http::HANDSHAKE_TIMEOUT`], as for the http source).
    pub handshake_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    MultiportTcp,
    Udp,
}

impl SyslogConfig {
    pub fn from_props(p: &Props, kind: Kind) -> Option<Self> {
        let host = p.string("host", "0.0.0.0");
        let ports: Vec<u16> = if kind == Kind::MultiportTcp {
            let list = p
                .required("ports", "list the TCP ports to listen on, space separated")
                .unwrap_or_default();
            list.split_whitespace()
                .filter_map(|s| match s.parse::<u16>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        p.error_at(
                            "ports",
                            format!(
                                "`{}` has `{s}`, which is not a port; use numbers from 1 to 65535",
                                p.full_key("ports")
                            ),
                        );
                        None
                    }
                })
                .collect()
        } else {
            p.port("port", "set the port to listen on, e.g. 5140")
                .into_iter()
                .collect()
        };
        // Flume's UDP source reads no eventSize and keeps datagrams whole (64 KiB);
        // its TCP sources cut at eventSize, 2500 by default.
        let default_size = if kind == Kind::Udp { 65_536 } else { 2500 };
        let event_size = p.u64_in("eventSize", default_size, 16, 64 * 1024 * 1024) as usize;
        // Flume's UDP source has no TLS; its TCP sources take `ssl` and a keystore.
        let tls = if kind != Kind::Udp && p.bool("ssl", false) {
            crate::http::tls_from_props(p, "TLS")
        } else {
            let _ = p.get("keystore");
            None
        };
        crate::http::read_ignored_tls_keys(p);
        let keep = match KeepFields::parse(&p.string("keepFields", "none")) {
            Some(k) => k,
            None => {
                p.error_at(
                    "keepFields",
                    format!(
                        "`{}` must be none, all, or a list of priority version timestamp hostname",
                        p.full_key("keepFields")
                    ),
                );
                KeepFields::default()
            }
        };
        let client_ip_header = p.get("clientIPHeader");
        let client_hostname_header = p.get("clientHostnameHeader");
        let port_header = if kind == Kind::MultiportTcp {
            p.get("portHeader")
        } else {
            None
        };
        let batch_size = p.u64_in("batchSize", 100, 1, 1_000_000) as usize;
        // `readBufferBytes` is the name Flume's code reads, `readBufferSize` its guide's.
        for k in ["readBufferSize", "readBufferBytes", "numProcessors"] {
            let _ = p.get(k);
        }
        for (k, v) in p.with_prefix("charset.") {
            if !v.value.eq_ignore_ascii_case("UTF-8") {
                p.error_at(
                    &format!("charset.{k}"),
                    format!(
                        "`{}` = {}: only UTF-8 is supported",
                        p.full_key(&format!("charset.{k}")),
                        v.value
                    ),
                );
            }
        }
        (!p.has_errors()).then_some(SyslogConfig {
            host,
            ports,
            event_size,
            keep,
            client_ip_header,
            client_hostname_header,
            port_header,
            batch_size,
            kind,
            tls,
            handshake_timeout: crate::http::HANDSHAKE_TIMEOUT,
        })
    }

    fn dialect(&self) -> parse::Dialect {
        match self.kind {
            Kind::MultiportTcp => parse::Dialect::Multiport,
            Kind::Tcp | Kind::Udp => parse::Dialect::SyslogUtils,
        }
    }
}

/// Reverse DNS of `ip`, or the address itself when it has no name.
pub fn hostname_of(ip: IpAddr) -> String {
    let sa: SocketAddr = (ip, 0).into();
    let (storage, len) = sockaddr(&sa);
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: storage holds a valid sockaddr of `len` bytes; host is a writable buffer
    // of the length passed.
    let rc = unsafe {
        libc::getnameinfo(
            &storage as *const libc::sockaddr_storage as *const libc::sockaddr,
            len,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            0,
        )
    };
    if rc != 0 {
        return ip.to_string();
    }
    // SAFETY: getnameinfo wrote a NUL-terminated string on success.
    unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn sockaddr(sa: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_storage is valid; the family-specific views below write
    // within it.
    unsafe {
        let mut st: libc::sockaddr_storage = std::mem::zeroed();
        match sa {
            SocketAddr::V4(a) => {
                let p = &mut st as *mut libc::sockaddr_storage as *mut libc::sockaddr_in;
                (*p).sin_family = libc::AF_INET as libc::sa_family_t;
                (*p).sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                (
                    st,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            SocketAddr::V6(a) => {
                let p = &mut st as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6;
                (*p).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*p).sin6_addr.s6_addr = a.ip().octets();
                (
                    st,
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    }
}

fn finish(
    mut e: Event,
    cfg: &SyslogConfig,
    client: Option<(&str, &str)>,
    port: u16,
    incomplete: bool,
) -> Event {
    // A line that is not syslog stays `Invalid` even when cut, as in Flume.
    if incomplete && !e.headers.contains_key("flume.syslog.status") {
        e.headers
            .insert("flume.syslog.status".into(), "Incomplete".into());
    }
    if let Some((ip, name)) = client {
        if let Some(h) = &cfg.client_ip_header {
            e.headers.insert(h.clone(), ip.to_string());
        }
        if let Some(h) = &cfg.client_hostname_header {
            e.headers.insert(h.clone(), name.to_string());
        }
    }
    if let Some(h) = &cfg.port_header {
        e.headers.insert(h.clone(), port.to_string());
    }
    e
}

/// The next complete message in `buf`: (message, cut at eventSize). None until more
/// bytes are needed.
fn next_frame(buf: &mut BytesMut, max: usize) -> Option<(bytes::Bytes, bool)> {
    // Octet counting: digits, a space, then that many bytes.
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > 0 && digits <= 9 && buf.len() > digits && buf[digits] == b' ' {
        let n: usize = std::str::from_utf8(&buf[..digits]).ok()?.parse().ok()?;
        if buf.len() < digits + 1 + n.min(max) {
            return None;
        }
        buf.advance(digits + 1);
        if n > max {
            let msg = buf.split_to(max).freeze();
            // The rest of an over-long frame is skipped as it arrives.
            let skip = (n - max).min(buf.len());
            buf.advance(skip);
            return Some((msg, true));
        }
        return Some((buf.split_to(n).freeze(), false));
    }
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i <= max => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            Some((line.freeze(), false))
        }
        _ if buf.len() > max => Some((buf.split_to(max).freeze(), true)),
        _ => None,
    }
}

pub struct SyslogTcpSource {
    cfg: SyslogConfig,
}

impl SyslogTcpSource {
    pub fn new(cfg: SyslogConfig) -> Self {
        SyslogTcpSource { cfg }
    }
}

/// One accepted connection, after a TLS handshake when the source has `ssl`. A
/// handshake that fails or outlasts `handshake_timeout` closes this connection only.
async fn serve_tcp(
    sock: TcpStream,
    peer: SocketAddr,
    port: u16,
    ctx: SourceContext,
    cfg: SyslogConfig,
    tls: Option<TlsAcceptor>,
) {
    let Some(acceptor) = tls else {
        return serve_stream(sock, peer, port, ctx, cfg).await;
    };
    let shake = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        r = tokio::time::timeout(cfg.handshake_timeout, acceptor.accept(sock)) => r,
    };
    let reason = match shake {
        Ok(Ok(stream)) => return serve_stream(stream, peer, port, ctx, cfg).await,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no handshake within {:?}", cfg.handshake_timeout),
    };
    tracing::warn!(source = %ctx.name, %peer, %reason, "TLS handshake failed, closing the connection (a plaintext client on the TLS port?)");
    inc(&ctx.counters.generic_processing_fail);
}

/// Reads messages from one connection, plain TCP or TLS, until it closes.
async fn serve_stream<S: AsyncRead + Unpin>(
    mut sock: S,
    peer: SocketAddr,
    port: u16,
    ctx: SourceContext,
    cfg: SyslogConfig,
) {
    let ip = peer.ip().to_string();
    let name = match &cfg.client_hostname_header {
        Some(_) => tokio::task::spawn_blocking(move || hostname_of(peer.ip()))
            .await
            .unwrap_or_default(),
        None => String::new(),
    };
    inc(&ctx.counters.open_connection);
    let max_batch = cfg.batch_size.min(ctx.processor.max_batch()).max(1);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        let n = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            r = sock.read_buf(&mut buf) => match r { Ok(n) => n, Err(_) => break },
        };
        let mut batch = Vec::new();
        while let Some((msg, cut)) = next_frame(&mut buf, cfg.event_size) {
            if msg.is_empty() && !cut {
                continue;
            }
            let e = finish(
                parse::to_event(&msg, cfg.keep, cfg.dialect()),
                &cfg,
                Some((&ip, &name)),
                port,
                cut,
            );
            if cut || e.header("flume.syslog.status").is_some() {
                inc(&ctx.counters.event_read_fail);
            }
            batch.push(e);
        }
        if n == 0 && !buf.is_empty() {
            // The connection closed on a message without newline: it is complete.
            let msg = buf.split().freeze();
            batch.push(finish(
                parse::to_event(&msg, cfg.keep, cfg.dialect()),
                &cfg,
                Some((&ip, &name)),
                port,
                false,
            ));
        }
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(max_batch));
            if ctx.put(std::mem::replace(&mut batch, rest)).await.is_err() {
                return;
            }
        }
        if n == 0 {
            break;
        }
    }
    ctx.counters
        .open_connection
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

#[async_trait]
impl Source for SyslogTcpSource {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        let mut listeners = Vec::new();
        for &port in &self.cfg.ports {
            let addr = format!("{}:{port}", self.cfg.host);
            let l = TcpListener::bind(&addr).await.map_err(|e| {
                let port_key = if self.cfg.kind == Kind::MultiportTcp {
                    "ports"
                } else {
                    "port"
                };
                crate::cannot_listen(&addr, &e, "host", port_key)
            })?;
            tracing::info!(source = %ctx.name, %addr, tls = self.cfg.tls.is_some(), "syslog TCP source listening");
            listeners.push((port, l));
        }
        let acceptor = self.cfg.tls.clone().map(TlsAcceptor::from);
        let mut tasks = tokio::task::JoinSet::new();
        for (port, l) in listeners {
            let ctx = ctx.clone();
            let cfg = self.cfg.clone();
            let acceptor = acceptor.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = ctx.shutdown.cancelled() => return,
                        r = l.accept() => match r {
                            Ok((sock, peer)) => {
                                tokio::spawn(serve_tcp(sock, peer, port, ctx.clone(), cfg.clone(), acceptor.clone()));
                            }
                            Err(e) => {
                                tracing::warn!(source = %ctx.name, error = %e, "accept failed");
                                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            }
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

pub struct SyslogUdpSource {
    cfg: SyslogConfig,
}

impl SyslogUdpSource {
    pub fn new(cfg: SyslogConfig) -> Self {
        SyslogUdpSource { cfg }
    }
}

/// Receives datagrams and puts them in batches of what arrived together, each turned
/// into an event by `make`, given its first `max_len` bytes and whether it had more.
pub(crate) async fn udp_loop(
    sock: UdpSocket,
    ctx: &SourceContext,
    max_len: usize,
    mut make: impl FnMut(&[u8], bool, SocketAddr) -> Event,
) -> Result<(), SourceError> {
    let max_batch = ctx.processor.max_batch().clamp(1, 1000);
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(()),
            r = sock.recv_from(&mut buf) => r?,
        };
        let mut batch = vec![make(&buf[..n.min(max_len)], n > max_len, peer)];
        while batch.len() < max_batch {
            match sock.try_recv_from(&mut buf) {
                Ok((n, peer)) => batch.push(make(&buf[..n.min(max_len)], n > max_len, peer)),
                Err(_) => break,
            }
        }
        add(&ctx.counters.append_batch_received, 1);
        if ctx.put(batch).await.is_err() {
            return Ok(());
        }
    }
}

#[async_trait]
impl Source for SyslogUdpSource {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        let addr = format!(
            "{}:{}",
            self.cfg.host,
            self.cfg.ports.first().copied().unwrap_or(0)
        );
        let sock = UdpSocket::bind(&addr)
            .await
            .map_err(|e| crate::cannot_listen(&addr, &e, "host", "port"))?;
        tracing::info!(source = %ctx.name, %addr, "syslog UDP source listening");
        let cfg = self.cfg.clone();
        let port = cfg.ports.first().copied().unwrap_or(0);
        let mut names: std::collections::HashMap<IpAddr, String> = Default::default();
        let counters = ctx.counters.clone();
        udp_loop(sock, ctx, cfg.event_size, |msg, cut, peer| {
            let mut msg = msg;
            while let Some(m) = msg.strip_suffix(b"\n").or_else(|| msg.strip_suffix(b"\r")) {
                msg = m;
            }
            let ip = peer.ip().to_string();
            let name = if cfg.client_hostname_header.is_some() {
                names
                    .entry(peer.ip())
                    .or_insert_with(|| hostname_of(peer.ip()))
                    .clone()
            } else {
                String::new()
            };
            let e = finish(
                parse::to_event(msg, cfg.keep, cfg.dialect()),
                &cfg,
                Some((&ip, &name)),
                port,
                cut,
            );
            if e.header("flume.syslog.status").is_some() {
                inc(&counters.event_read_fail);
            }
            e
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_keeps_datagrams_whole_and_tcp_is_plain_by_default() {
        let p = Props::from_pairs(&[("port", "5140")]);
        let udp = SyslogConfig::from_props(&p, Kind::Udp).unwrap();
        assert_eq!(udp.event_size, 65_536);
        let tcp = SyslogConfig::from_props(&p, Kind::Tcp).unwrap();
        assert_eq!(tcp.event_size, 2500);
        assert!(tcp.tls.is_none());
        let p = Props::from_pairs(&[("port", "5140"), ("keepFields", "priority,hostname")]);
        assert!(
            SyslogConfig::from_props(&p, Kind::Tcp)
                .unwrap()
                .keep
                .hostname
        );
    }

    /// What configtest would print for these properties.
    fn problems(kind: Kind, pairs: &[(&str, &str)]) -> Vec<String> {
        let p = Props::from_pairs(pairs);
        assert!(SyslogConfig::from_props(&p, kind).is_none());
        p.finish().into_iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn ssl_without_pem_files_names_them() {
        let d = problems(Kind::Tcp, &[("port", "5140"), ("ssl", "true")]);
        let all = d.join("\n");
        assert!(
            all.contains("sslCertificate") && all.contains("sslKey"),
            "{all}"
        );
        let d = problems(
            Kind::MultiportTcp,
            &[
                ("ports", "5140 5141"),
                ("ssl", "true"),
                ("keystore", "k.jks"),
            ],
        );
        let all = d.join("\n");
        assert!(all.contains("convert it to PEM"), "{all}");
        assert!(all.contains("sslCertificate"), "{all}");
        let d = problems(
            Kind::Tcp,
            &[
                ("port", "5140"),
                ("ssl", "true"),
                ("sslCertificate", "/nonexistent/cert.pem"),
                ("sslKey", "/nonexistent/key.pem"),
            ],
        );
        assert!(d.join("\n").contains("/nonexistent/cert.pem"), "{d:?}");
    }

    #[test]
    fn frames_by_newline_and_by_octet_count() {
        let mut b = BytesMut::from(&b"<1>a\r\n9 <2>b\nmore<3>c\n"[..]);
        assert_eq!(
            next_frame(&mut b, 100),
            Some((bytes::Bytes::from_static(b"<1>a"), false))
        );
        assert_eq!(
            next_frame(&mut b, 100),
            Some((bytes::Bytes::from_static(b"<2>b\nmore"), false))
        );
        assert_eq!(
            next_frame(&mut b, 100),
            Some((bytes::Bytes::from_static(b"<3>c"), false))
        );
        assert_eq!(next_frame(&mut b, 100), None);
    }

    #[test]
    fn over_long_messages_are_cut_and_flagged() {
        let mut b = BytesMut::from(&b"0123456789abcdef\n"[..]);
        assert_eq!(
            next_frame(&mut b, 8),
            Some((bytes::Bytes::from_static(b"01234567"), true))
        );
        let mut b = BytesMut::from(&b"12 <1>xxxxxxxxx<2>ok\n"[..]);
        assert_eq!(
            next_frame(&mut b, 8),
            Some((bytes::Bytes::from_static(b"<1>xxxxx"), true))
        );
        assert_eq!(
            next_frame(&mut b, 8),
            Some((bytes::Bytes::from_static(b"<2>ok"), false))
        );
    }

    #[test]
    fn an_incomplete_frame_waits() {
        let mut b = BytesMut::from(&b"20 <1>short"[..]);
        assert_eq!(next_frame(&mut b, 100), None);
        let mut b = BytesMut::from(&b"<1>no newline yet"[..]);
        assert_eq!(next_frame(&mut b, 100), None);
    }
}
