//! `regex_extractor`: the first match of `regex` in the body; capture group *i* is
//! written to the header named by serializer *i* (`serializers = s1 s2`,
//! `serializers.s1.name = level`). Events that do not match pass unchanged.
//!
//! Serializer types: the default passes the text through;
//! `org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer` with
//! `serializers.NAME.pattern` (a Joda-Time pattern such as `yyyy-MM-dd HH:mm:ss`)
//! turns a local date-time into epoch milliseconds, as Flume does.

use millrace_core::{Event, Interceptor, Props};
use regex::bytes::Regex;

enum Ser {
    PassThrough,
    Millis(DatePattern),
}

struct Serializer {
    header: String,
    ser: Ser,
}

pub struct RegexExtractorInterceptor {
    regex: Regex,
    serializers: Vec<Serializer>,
}

impl RegexExtractorInterceptor {
    pub fn from_props(p: &Props) -> Option<Self> {
        let pattern = p.required(
            "regex",
            "set the regular expression whose groups become headers",
        );
        let regex = pattern.and_then(|pt| super::regex_filter::compile(p, "regex", &pt));
        let names = p.string("serializers", "");
        let mut serializers = Vec::new();
        for name in names.split_whitespace() {
            let s = p.sub(&format!("serializers.{name}."));
            let header = s.required("name", "set the header this capture group is written to");
            let ty = s.string("type", "default");
            let ser = match ty.to_ascii_lowercase().as_str() {
                "default"
                | "org.apache.flume.interceptor.regexextractorinterceptorpassthroughserializer" => {
                    Ser::PassThrough
                }
                "org.apache.flume.interceptor.regexextractorinterceptormillisserializer" => match s
                    .required("pattern", "set a date pattern such as yyyy-MM-dd HH:mm:ss")
                {
                    Some(pt) => match DatePattern::parse(&pt) {
                        Ok(dp) => Ser::Millis(dp),
                        Err(msg) => {
                            s.error_at("pattern", format!("`{}`: {msg}", s.full_key("pattern")));
                            Ser::PassThrough
                        }
                    },
                    None => Ser::PassThrough,
                },
                _ => {
                    s.error_at(
                        "type",
                        format!(
                            "serializer type `{ty}` (`{}`) is not supported; use default or org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer",
                            s.full_key("type")
                        ),
                    );
                    Ser::PassThrough
                }
            };
            if let Some(header) = header {
                serializers.push(Serializer { header, ser });
            }
        }
        if p.has_errors() {
            return None;
        }
        Some(RegexExtractorInterceptor {
            regex: regex?,
            serializers,
        })
    }
}

impl Interceptor for RegexExtractorInterceptor {
    fn intercept(&self, mut batch: Vec<Event>) -> Vec<Event> {
        // One set of capture slots for the whole batch: `captures` would allocate
        // a new one per event.
        let mut locs = self.regex.capture_locations();
        for e in &mut batch {
            if self.regex.captures_read(&mut locs, &e.body).is_none() {
                continue;
            }
            for (i, s) in self.serializers.iter().enumerate() {
                let Some((start, end)) = locs.get(i + 1) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&e.body[start..end]);
                let value = match &s.ser {
                    Ser::PassThrough => text.into_owned(),
                    Ser::Millis(dp) => match dp.to_millis(&text) {
                        Some(ms) => ms.to_string(),
                        None => continue,
                    },
                };
                e.headers.insert(s.header.clone(), value);
            }
        }
        batch
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(char, usize),
    Lit(char),
}

/// The subset of Joda-Time patterns dates in logs use: `yyyy`, `yy`, `MM`, `MMM` and
/// `MMMM` (English month names, as in `dd/MMM/yyyy:HH:mm:ss Z`, the access log's),
/// `dd`, `HH`, `mm`, `ss`, `SSS`, `Z` (`+0100`, `-07:00` or `Z`), and literal
/// characters (quoted text in `'...'`). Without `Z` the time is local, as in Joda's
/// default zone.
#[derive(Debug, Clone)]
struct DatePattern(Vec<Tok>);

impl DatePattern {
    fn parse(p: &str) -> Result<Self, String> {
        let mut toks = Vec::new();
        let chars: Vec<char> = p.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    toks.push(Tok::Lit(chars[i]));
                    i += 1;
                }
                i += 1;
                continue;
            }
            if c.is_ascii_alphabetic() {
                let mut n = 1;
                while i + n < chars.len() && chars[i + n] == c {
                    n += 1;
                }
                if !"yMdHmsSZ".contains(c) {
                    return Err(format!(
                        "pattern letter `{c}` is not supported; use yyyy, MM or MMM, dd, HH, mm, ss, SSS, Z"
                    ));
                }
                toks.push(Tok::Field(c, n));
                i += n;
            } else {
                toks.push(Tok::Lit(c));
                i += 1;
            }
        }
        Ok(DatePattern(toks))
    }

    fn to_millis(&self, s: &str) -> Option<i64> {
        let b = s.as_bytes();
        let mut pos = 0;
        let (mut y, mut mo, mut d, mut h, mut mi, mut se, mut ms) =
            (1970i64, 1i64, 1i64, 0i64, 0i64, 0i64, 0i64);
        let mut offset: Option<i32> = None;
        for t in &self.0 {
            match *t {
                Tok::Field('M', n) if n >= 3 => {
                    let (m, len) = month_name(&s[pos..])?;
                    mo = m;
                    pos += len;
                }
                Tok::Field('Z', _) => {
                    let (secs, len) = zone_offset(&s[pos..])?;
                    offset = Some(secs);
                    pos += len;
                }
                Tok::Lit(c) => {
                    let mut buf = [0u8; 4];
                    let lit = c.encode_utf8(&mut buf).as_bytes();
                    if !b[pos..].starts_with(lit) {
                        return None;
                    }
                    pos += lit.len();
                }
                Tok::Field(c, n) => {
                    // Digits: exactly n, except a 4-letter year may be longer.
                    let max = if c == 'y' && n >= 4 {
                        9
                    } else {
                        n.max(if c == 'S' { 3 } else { 2 })
                    };
                    let start = pos;
                    while pos < b.len() && pos - start < max && b[pos].is_ascii_digit() {
                        pos += 1;
                    }
                    if pos == start {
                        return None;
                    }
                    let v: i64 = s[start..pos].parse().ok()?;
                    match c {
                        'y' => y = if n == 2 { 2000 + v } else { v },
                        'M' => mo = v,
                        'd' => d = v,
                        'H' => h = v,
                        'm' => mi = v,
                        's' => se = v,
                        _ => ms = v,
                    }
                }
            }
        }
        let secs = match offset {
            None => local_to_epoch_millis(y, mo, d, h, mi, se)?,
            Some(off) => {
                let tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::from_seconds(off).ok()?);
                let dt = jiff::civil::DateTime::new(
                    i16::try_from(y).ok()?,
                    i8::try_from(mo).ok()?,
                    i8::try_from(d).ok()?,
                    i8::try_from(h).ok()?,
                    i8::try_from(mi).ok()?,
                    i8::try_from(se.min(59)).ok()?,
                    0,
                )
                .ok()?;
                dt.to_zoned(tz).ok()?.timestamp().as_second()
            }
        };
        Some(secs * 1000 + ms)
    }
}

/// An English month name at the start of `s` (`Jan` or `January`, any case), as
/// Joda's `MMM` reads it: the month and the bytes it took.
fn month_name(s: &str) -> Option<(i64, usize)> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let lower = s.get(..s.len().min(9))?.to_ascii_lowercase();
    NAMES.iter().enumerate().find_map(|(i, full)| {
        if lower.starts_with(full) {
            Some((i as i64 + 1, full.len()))
        } else {
            lower.starts_with(&full[..3]).then_some((i as i64 + 1, 3))
        }
    })
}

/// A zone offset at the start of `s` (`Z`, `+0100`, `-07:00`): its seconds east of
/// UTC and the bytes it took.
fn zone_offset(s: &str) -> Option<(i32, usize)> {
    let b = s.as_bytes();
    match b.first()? {
        b'Z' => Some((0, 1)),
        sign @ (b'+' | b'-') => {
            let digit = |i: usize| {
                b.get(i)
                    .filter(|c| c.is_ascii_digit())
                    .map(|c| (c - b'0') as i32)
            };
            let hh = digit(1)? * 10 + digit(2)?;
            let (at, len) = if b.get(3) == Some(&b':') {
                (4, 6)
            } else {
                (3, 5)
            };
            let mm = digit(at)? * 10 + digit(at + 1)?;
            let secs = (hh * 60 + mm) * 60;
            Some((if *sign == b'-' { -secs } else { secs }, len))
        }
        _ => None,
    }
}

/// Local date-time to epoch seconds through mktime(3), which applies the machine's
/// time zone and DST as Joda's default zone does.
fn local_to_epoch_millis(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // SAFETY: tm is fully initialised (zeroed, then set) before mktime reads it.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = (y - 1900) as i32;
        tm.tm_mon = (mo - 1) as i32;
        tm.tm_mday = d as i32;
        tm.tm_hour = h as i32;
        tm.tm_min = mi as i32;
        tm.tm_sec = s as i32;
        tm.tm_isdst = -1;
        let t = libc::mktime(&mut tm);
        (t != -1).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_log_date_with_month_name_and_offset() {
        let p = DatePattern::parse("dd/MMM/yyyy:HH:mm:ss Z").unwrap();
        // 2000-10-10 20:55:36 UTC.
        assert_eq!(
            p.to_millis("10/Oct/2000:13:55:36 -0700"),
            Some(971_211_336_000)
        );
        assert_eq!(
            p.to_millis("10/oct/2000:20:55:36 +00:00"),
            Some(971_211_336_000)
        );
        assert_eq!(p.to_millis("10/Okt/2000:13:55:36 -0700"), None);
        let full = DatePattern::parse("MMMM d, yyyy HH:mm:ssZ").unwrap();
        assert_eq!(
            full.to_millis("October 10, 2000 20:55:36Z"),
            Some(971_211_336_000)
        );
    }

    #[test]
    fn two_groups_into_two_headers() {
        let p = Props::from_pairs(&[
            ("regex", r"^(\w+) \[(\w+)\]"),
            ("serializers", "s1 s2"),
            ("serializers.s1.name", "level"),
            ("serializers.s2.name", "service"),
        ]);
        let i = RegexExtractorInterceptor::from_props(&p).unwrap();
        let out = i.intercept(vec![
            Event::from_body("ERROR [orders] boom"),
            Event::from_body("no match"),
        ]);
        assert_eq!(out[0].header("level"), Some("ERROR"));
        assert_eq!(out[0].header("service"), Some("orders"));
        assert!(out[1].headers.is_empty(), "no match passes unchanged");
        assert!(p.finish().is_empty());
    }

    #[test]
    fn millis_serializer_turns_a_date_into_epoch_millis() {
        let p = Props::from_pairs(&[
            ("regex", r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"),
            ("serializers", "ts"),
            ("serializers.ts.name", "timestamp"),
            (
                "serializers.ts.type",
                "org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer",
            ),
            ("serializers.ts.pattern", "yyyy-MM-dd HH:mm:ss,SSS"),
        ]);
        let i = RegexExtractorInterceptor::from_props(&p).unwrap();
        let out = i.intercept(vec![Event::from_body("2026-11-24 08:00:11,096 INFO x")]);
        let got: i64 = out[0].header("timestamp").unwrap().parse().unwrap();
        let expected = local_to_epoch_millis(2026, 11, 24, 8, 0, 11).unwrap() * 1000 + 96;
        assert_eq!(got, expected);
        // One day later is 86,400,000 ms later, whatever the zone (no DST change here).
        let next = DatePattern::parse("yyyy-MM-dd HH:mm:ss,SSS")
            .unwrap()
            .to_millis("2026-11-25 08:00:11,096")
            .unwrap();
        assert_eq!(next - got, 86_400_000);
    }

    #[test]
    fn missing_regex_and_name_are_reported() {
        let p = Props::from_pairs(&[("serializers", "s1")]);
        assert!(RegexExtractorInterceptor::from_props(&p).is_none());
        let d = p.finish();
        assert!(d.iter().any(|d| d.message.contains("regex")));
        assert!(d.iter().any(|d| d.message.contains("serializers.s1.name")));
    }
}
