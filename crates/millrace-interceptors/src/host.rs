//! `host`: sets a header to this machine's IP address or host name.

use millrace_core::{Event, Interceptor, Props};
use std::net::ToSocketAddrs;

/// The host interceptor's settings, read without looking anything up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub use_ip: bool,
    pub header: String,
    pub preserve: bool,
}

impl HostConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let use_ip = p.bool("useIP", true);
        let header = p.string("hostHeader", "host");
        let preserve = p.bool("preserveExisting", false);
        (!p.has_errors()).then_some(HostConfig {
            use_ip,
            header,
            preserve,
        })
    }
}

pub struct HostInterceptor {
    header: String,
    preserve: bool,
    value: String,
}

/// The host name from gethostname(2).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The address the host name resolves to (IPv4 first), as Java's
/// `InetAddress.getLocalHost()` gives it; 127.0.0.1 when it does not resolve.
pub fn host_ip() -> String {
    let addrs: Vec<_> = (hostname().as_str(), 0)
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into())
}

impl HostInterceptor {
    pub fn from_props(p: &Props) -> Option<Self> {
        HostConfig::from_props(p).map(HostInterceptor::new)
    }

    /// Resolves the host once: it does not change while the agent runs.
    pub fn new(cfg: HostConfig) -> Self {
        let value = if cfg.use_ip { host_ip() } else { hostname() };
        HostInterceptor {
            header: cfg.header,
            preserve: cfg.preserve,
            value,
        }
    }
}

impl Interceptor for HostInterceptor {
    fn intercept(&self, mut batch: Vec<Event>) -> Vec<Event> {
        for e in &mut batch {
            super::set_header(e, &self.header, &self.value, self.preserve);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_name_or_ip() {
        let p = Props::from_pairs(&[("useIP", "false"), ("hostHeader", "h")]);
        let out = HostInterceptor::from_props(&p)
            .unwrap()
            .intercept(vec![Event::default()]);
        assert_eq!(out[0].header("h"), Some(hostname().as_str()));
        let out = HostInterceptor::from_props(&Props::from_pairs(&[]))
            .unwrap()
            .intercept(vec![Event::default()]);
        let ip = out[0].header("host").unwrap();
        assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{ip}");
    }
}
