//! Syslog messages (RFC 3164 and RFC 5424) into Flume's event form.
//!
//! Headers, as Flume sets them: `Facility` and `Severity` (numbers from the
//! priority), the priority as sent and the RFC 5424 version (`priority` and `version`
//! for syslogtcp and syslogudp, as SyslogUtils names them, only when the line has a
//! header it recognises; `Priority` and `Version` for multiport_syslogtcp, as its
//! SyslogParser names them), `timestamp` (epoch milliseconds, when the message has one
//! that parses), `host` (the hostname field). By default (`keepFields = none`) the
//! body is the message without priority, version, timestamp and hostname;
//! `keepFields = all` (or `true`) keeps the whole line, and a list such as
//! `timestamp hostname` keeps those parts. A line that does not start with `<PRI>` is
//! kept whole with `flume.syslog.status = Invalid` (and, from syslogtcp and
//! syslogudp, `Facility` and `Severity` 0, as SyslogUtils gives).

use bytes::Bytes;
use millrace_core::{Event, Headers};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepFields {
    pub priority: bool,
    pub version: bool,
    pub timestamp: bool,
    pub hostname: bool,
}

impl KeepFields {
    /// Flume's `keepFields` values: `none`/`false`, `all`/`true`, or a list of
    /// `priority version timestamp hostname`. None when a word is unknown.
    pub fn parse(v: &str) -> Option<KeepFields> {
        let v = v.trim().to_ascii_lowercase();
        match v.as_str() {
            "" | "none" | "false" => return Some(KeepFields::default()),
            "all" | "true" => {
                return Some(KeepFields {
                    priority: true,
                    version: true,
                    timestamp: true,
                    hostname: true,
                })
            }
            _ => {}
        }
        let mut k = KeepFields::default();
        // Flume looks for each field's name anywhere in the value, so `priority,hostname`
        // works there as well as a space separated list.
        for w in v
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| !w.is_empty())
        {
            match w {
                "priority" => k.priority = true,
                "version" => k.version = true,
                "timestamp" => k.timestamp = true,
                "hostname" => k.hostname = true,
                _ => return None,
            }
        }
        Some(k)
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// RFC 5424 / RFC 3339 timestamp to epoch ms: `2026-11-25T03:48:00.123Z`, `...+01:00`.
pub fn rfc3339_millis(t: &str) -> Option<i64> {
    if t.len() < 20 {
        return None;
    }
    let (date, rest) = t.split_once('T')?;
    let mut d = date.split('-');
    let (y, mo, da) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (time, offset_min) =
        if let Some(x) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
            (x, 0)
        } else {
            let i = rest.rfind(['+', '-'])?;
            let (x, off) = rest.split_at(i);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (oh, om) = off[1..].split_once(':')?;
            (x, sign * (num(oh)? * 60 + num(om)?))
        };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut h = hms.split(':');
    let (hh, mm, ss) = (num(h.next()?)?, num(h.next()?)?, num(h.next()?)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let ms = if frac.is_empty() {
        0
    } else {
        let f: String = frac.chars().chain("000".chars()).take(3).collect();
        num(&f)?
    };
    let secs = days_from_civil(y, mo, da) * 86_400 + hh * 3600 + mm * 60 + ss - offset_min * 60;
    Some(secs * 1000 + ms)
}

/// RFC 3164 timestamp (`Nov 25 03:48:00`, `Nov  5 ...`), in local time of the current
/// year (the format carries none; a date more than a month ahead is last year's).
pub fn rfc3164_millis(t: &str) -> Option<i64> {
    let mut parts = t.split_whitespace();
    let month = parts.next()?;
    let mon = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let day = num(parts.next()?)?;
    let mut hms = parts.next()?.split(':');
    let (hh, mm, ss) = (num(hms.next()?)?, num(hms.next()?)?, num(hms.next()?)?);
    let now = millrace_core::counters::now_millis() as i64;
    // SAFETY: localtime_r and mktime read and write the local, zero-initialised tm.
    unsafe {
        let secs = (now / 1000) as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        let mut year = tm.tm_year as i64 + 1900;
        if mon > tm.tm_mon as i64 + 2 {
            year -= 1;
        }
        let mut t: libc::tm = std::mem::zeroed();
        t.tm_year = (year - 1900) as i32;
        t.tm_mon = (mon - 1) as i32;
        t.tm_mday = day as i32;
        t.tm_hour = hh as i32;
        t.tm_min = mm as i32;
        t.tm_sec = ss as i32;
        t.tm_isdst = -1;
        let r = libc::mktime(&mut t);
        (r != -1).then_some(r as i64 * 1000)
    }
}

/// Which of Flume's two syslog parsers a source follows for its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// syslogtcp and syslogudp (Flume's SyslogUtils).
    SyslogUtils,
    /// multiport_syslogtcp (Flume's SyslogParser).
    Multiport,
}

/// One syslog message (without its framing) as an event.
pub fn to_event(msg: &[u8], keep: KeepFields, dialect: Dialect) -> Event {
    let invalid = || {
        let mut h = Headers::new();
        if dialect == Dialect::SyslogUtils {
            h.insert("Facility".into(), "0".into());
            h.insert("Severity".into(), "0".into());
        }
        h.insert("flume.syslog.status".into(), "Invalid".into());
        Event::new(h, Bytes::copy_from_slice(msg))
    };
    let text = String::from_utf8_lossy(msg);
    let Some(rest) = text.strip_prefix('<') else {
        return invalid();
    };
    let Some(close) = rest.find('>').filter(|&i| (1..=3).contains(&i)) else {
        return invalid();
    };
    let Some(pri) = num(&rest[..close]).filter(|p| *p <= 191) else {
        return invalid();
    };
    let after_pri = &rest[close + 1..];
    let mut headers = Headers::new();
    headers.insert("Facility".into(), (pri / 8).to_string());
    headers.insert("Severity".into(), (pri % 8).to_string());
    let sent_pri = &rest[..close];
    if dialect == Dialect::Multiport {
        headers.insert("Priority".into(), sent_pri.to_string());
        if after_pri.starts_with("1 ") {
            headers.insert("Version".into(), "1".into());
        }
    }
    let mut body = String::new();
    if keep.priority {
        body.push_str(&text[..close + 2]);
    }
    // RFC 5424: a version digit, then a space.
    let v5424 = after_pri
        .split_once(' ')
        .filter(|(v, _)| num(v).is_some_and(|v| v >= 1));
    if let Some((version, rest)) = v5424 {
        if dialect == Dialect::SyslogUtils {
            headers.insert("priority".into(), sent_pri.to_string());
            headers.insert("version".into(), version.to_string());
        }
        let mut f = rest.splitn(2, ' ');
        let ts = f.next().unwrap_or("");
        let after_ts = f.next().unwrap_or("");
        let (host, msg) = after_ts.split_once(' ').unwrap_or((after_ts, ""));
        if let Some(ms) = rfc3339_millis(ts) {
            headers.insert("timestamp".into(), ms.to_string());
        }
        if host != "-" && !host.is_empty() {
            headers.insert("host".into(), host.to_string());
        }
        if keep.version {
            body.push_str(version);
            body.push(' ');
        }
        if keep.timestamp {
            body.push_str(ts);
            body.push(' ');
        }
        if keep.hostname {
            body.push_str(host);
            body.push(' ');
        }
        body.push_str(msg);
    } else if after_pri.len() >= 16 && rfc3164_millis(&after_pri[..15]).is_some() {
        if dialect == Dialect::SyslogUtils {
            headers.insert("priority".into(), sent_pri.to_string());
        }
        let ts = &after_pri[..15];
        let after_ts = after_pri[15..].trim_start_matches(' ');
        let (host, msg) = after_ts.split_once(' ').unwrap_or((after_ts, ""));
        if let Some(ms) = rfc3164_millis(ts) {
            headers.insert("timestamp".into(), ms.to_string());
        }
        headers.insert("host".into(), host.to_string());
        if keep.timestamp {
            body.push_str(ts);
            body.push(' ');
        }
        if keep.hostname {
            body.push_str(host);
            body.push(' ');
        }
        body.push_str(msg);
    } else {
        // A priority but no recognisable header: the rest is the message.
        body.push_str(after_pri);
    }
    Event::new(headers, Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(e: &Event) -> &str {
        std::str::from_utf8(&e.body).unwrap()
    }

    #[test]
    fn rfc5424_headers_and_body() {
        let e = to_event(
            b"<165>1 2026-11-25T03:48:00.123Z web-1 app 42 ID47 - payment failed",
            KeepFields::default(),
            Dialect::SyslogUtils,
        );
        assert_eq!(e.header("Facility"), Some("20"));
        assert_eq!(e.header("Severity"), Some("5"));
        assert_eq!(e.header("host"), Some("web-1"));
        assert_eq!(e.header("timestamp"), Some("1795578480123"));
        assert_eq!(e.header("priority"), Some("165"));
        assert_eq!(e.header("version"), Some("1"));
        assert_eq!(body(&e), "app 42 ID47 - payment failed");
    }

    #[test]
    fn multiport_names_priority_and_version_as_its_parser_does() {
        let e = to_event(
            b"<165>1 2026-11-25T03:48:00.123Z web-1 app - - - ok",
            KeepFields::default(),
            Dialect::Multiport,
        );
        assert_eq!(e.header("Priority"), Some("165"));
        assert_eq!(e.header("Version"), Some("1"));
        assert_eq!(e.header("priority"), None);
        let e = to_event(
            b"<34>Oct 11 22:14:15 mymachine su: failed",
            KeepFields::default(),
            Dialect::Multiport,
        );
        assert_eq!(e.header("Priority"), Some("34"));
        assert_eq!(e.header("Version"), None);
        let e = to_event(b"not syslog", KeepFields::default(), Dialect::Multiport);
        assert_eq!(e.header("Facility"), None);
    }

    #[test]
    fn rfc5424_offsets() {
        assert_eq!(
            rfc3339_millis("2026-11-25T04:48:00+01:00"),
            Some(1795578480000)
        );
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_millis("garbage-and-more-text"), None);
    }

    #[test]
    fn rfc3164_headers_and_body() {
        let e = to_event(
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
            KeepFields::default(),
            Dialect::SyslogUtils,
        );
        assert_eq!(e.header("Facility"), Some("4"));
        assert_eq!(e.header("Severity"), Some("2"));
        assert_eq!(e.header("host"), Some("mymachine"));
        assert!(e.header("timestamp").is_some());
        assert_eq!(e.header("priority"), Some("34"));
        assert_eq!(e.header("version"), None);
        assert_eq!(body(&e), "su: 'su root' failed");
    }

    #[test]
    fn keep_fields_all_keeps_the_line() {
        let line = "<34>Oct 11 22:14:15 mymachine su: failed";
        let e = to_event(
            line.as_bytes(),
            KeepFields::parse("all").unwrap(),
            Dialect::SyslogUtils,
        );
        assert_eq!(body(&e), line);
        let e = to_event(
            line.as_bytes(),
            KeepFields::parse("hostname").unwrap(),
            Dialect::SyslogUtils,
        );
        assert_eq!(body(&e), "mymachine su: failed");
        assert!(KeepFields::parse("bogus").is_none());
        assert_eq!(
            KeepFields::parse("priority,hostname"),
            KeepFields::parse("priority hostname")
        );
        assert!(KeepFields::parse("priority,hostname").unwrap().hostname);
    }

    #[test]
    fn garbage_is_kept_whole_and_marked_invalid() {
        for g in [&b"no priority here"[..], b"<999>bad", b"<>x", b"<12", b""] {
            let e = to_event(g, KeepFields::default(), Dialect::SyslogUtils);
            assert_eq!(e.header("flume.syslog.status"), Some("Invalid"), "{:?}", g);
            assert_eq!(e.header("Facility"), Some("0"));
            assert_eq!(e.header("Severity"), Some("0"));
            assert_eq!(e.header("priority"), None);
            assert_eq!(e.body.as_ref(), g);
        }
    }
}
