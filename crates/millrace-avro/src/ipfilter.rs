//! Flume's `ipFilterRules`: `allow|deny:ip|name:PATTERN`, comma separated, checked in
//! order; the first rule that matches decides, and a connection no rule matches is
//! allowed (as in Flume, whose rules come from Netty's pattern filter). Patterns use
//! `*` for any run of characters and `?` for one. `name:localhost` matches loopback
//! addresses without asking DNS; other `name:` rules match the peer's reverse-DNS name.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    allow: bool,
    by_name: bool,
    pattern: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpFilter {
    rules: Vec<Rule>,
}

impl IpFilter {
    /// Parses Flume's rule syntax; the error names the rule and how to write it.
    pub fn parse(rules: &str) -> Result<IpFilter, String> {
        let mut out = Vec::new();
        for raw in rules.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let parts: Vec<&str> = raw.splitn(3, ':').collect();
            let [action, kind, pattern] = parts[..] else {
                return Err(format!(
                    "ipFilterRules entry `{raw}` is not ACTION:KIND:PATTERN; write e.g. allow:ip:10.* or deny:name:localhost"
                ));
            };
            let allow = match action.trim() {
                "allow" => true,
                "deny" => false,
                a => {
                    return Err(format!(
                        "ipFilterRules entry `{raw}`: `{a}` is neither allow nor deny"
                    ))
                }
            };
            let by_name = match kind.trim() {
                "ip" => false,
                "name" => true,
                k => {
                    return Err(format!(
                        "ipFilterRules entry `{raw}`: `{k}` is neither ip nor name"
                    ))
                }
            };
            let pattern = pattern.trim();
            if pattern.is_empty() {
                return Err(format!("ipFilterRules entry `{raw}` has an empty pattern"));
            }
            out.push(Rule {
                allow,
                by_name,
                pattern: pattern.to_string(),
            });
        }
        if out.is_empty() {
            return Err("ipFilter is true but ipFilterRules has no rule; add e.g. ipFilterRules = allow:ip:127.*,deny:ip:*".into());
        }
        Ok(IpFilter { rules: out })
    }

    /// Whether a peer at `ip` may connect.
    pub async fn allows(&self, ip: IpAddr) -> bool {
        let mut name: Option<Option<String>> = None;
        for r in &self.rules {
            let matched = if !r.by_name {
                glob(&r.pattern, &ip.to_string())
            } else if r.pattern == "localhost" {
                ip.is_loopback()
            } else {
                if name.is_none() {
                    name = Some(reverse_name(ip).await);
                }
                name.as_ref()
                    .and_then(|n| n.as_deref())
                    .is_some_and(|n| glob(&r.pattern, n))
            };
            if matched {
                return r.allow;
            }
        }
        true
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

async fn reverse_name(ip: IpAddr) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        let sa: std::net::SocketAddr = (ip, 0).into();
        let (storage, len) = sockaddr(&sa);
        let mut host = [0 as libc::c_char; 1025];
        // SAFETY: storage holds a valid sockaddr of `len` bytes; host is a writable
        // buffer whose size is passed.
        let rc = unsafe {
            libc::getnameinfo(
                &storage as *const _ as *const libc::sockaddr,
                len,
                host.as_mut_ptr(),
                host.len() as libc::socklen_t,
                std::ptr::null_mut(),
                0,
                libc::NI_NAMEREQD,
            )
        };
        if rc != 0 {
            return None;
        }
        // SAFETY: getnameinfo wrote a NUL-terminated string into host.
        let c = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
        Some(c.to_string_lossy().into_owned())
    })
    .await
    .ok()
    .flatten()
}

fn sockaddr(sa: &std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; the fields set below are those
    // of the family written.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match sa {
        std::net::SocketAddr::V4(a) => {
            let sin = &mut storage as *mut _ as *mut libc::sockaddr_in;
            unsafe {
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            }
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        std::net::SocketAddr::V6(a) => {
            let sin6 = &mut storage as *mut _ as *mut libc::sockaddr_in6;
            unsafe {
                (*sin6).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*sin6).sin6_addr.s6_addr = a.ip().octets();
            }
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_matching_rule_decides_and_no_match_allows() {
        let f = IpFilter::parse("allow:ip:127.*, deny:ip:10.0.*").unwrap();
        assert!(f.allows("127.0.0.1".parse().unwrap()).await);
        assert!(!f.allows("10.0.3.4".parse().unwrap()).await);
        assert!(f.allows("192.168.1.1".parse().unwrap()).await);
        let f = IpFilter::parse("deny:name:localhost,allow:ip:*").unwrap();
        assert!(!f.allows("127.0.0.1".parse().unwrap()).await);
        assert!(f.allows("10.1.1.1".parse().unwrap()).await);
    }

    #[test]
    fn bad_rules_say_how_to_write_them() {
        assert!(IpFilter::parse("allow:127.*")
            .unwrap_err()
            .contains("ACTION:KIND:PATTERN"));
        assert!(IpFilter::parse("permit:ip:*")
            .unwrap_err()
            .contains("neither allow nor deny"));
        assert!(IpFilter::parse("allow:host:*")
            .unwrap_err()
            .contains("neither ip nor name"));
        assert!(IpFilter::parse(" ").is_err());
    }
}
