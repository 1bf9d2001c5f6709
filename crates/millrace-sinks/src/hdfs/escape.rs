//! Flume's escape sequences in `hdfs.path` and `hdfs.filePrefix` (Flume's
//! `BucketPath`): `%{header}`, `%[localhost]`, `%[IP]`, `%[FQDN]` and the `%x` date
//! escapes, with optional rounding of the event time and a time zone.
//!
//! A template is parsed once at configuration; rendering an event remembers the last
//! rendering, because consecutive events nearly always share their second and their
//! header values, and formatting a date in a time zone is the expensive part.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use millrace_core::Event;

/// Unit of `hdfs.roundUnit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundUnit {
    Second,
    Minute,
    Hour,
}

/// How the event time is found and turned into date fields.
#[derive(Debug, Clone)]
pub struct TimeSettings {
    /// `hdfs.round` with `hdfs.roundValue` and `hdfs.roundUnit`.
    pub round: Option<(i8, RoundUnit)>,
    /// `hdfs.timeZone`, else the system's.
    pub tz: TimeZone,
    /// `hdfs.useLocalTimeStamp`: the sink's clock instead of the `timestamp` header.
    pub use_local: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Header(String),
    /// A `%x` escape; `%%` is a literal `%` and never reaches here.
    Date(char),
    /// `%[localhost]`, `%[IP]`, `%[FQDN]`, resolved when the template is parsed.
    Static(String),
}

/// The date escapes Flume knows; any other `%x` becomes the empty string, as in Flume.
const DATE_ESCAPES: &str = "aAbBcdeDHIjklmMnpsStyYz";

/// A parsed `hdfs.path` or `hdfs.filePrefix`.
#[derive(Debug, Clone)]
pub struct Template {
    tokens: Vec<Token>,
    needs_time: bool,
    needs_millis: bool,
    headers: Vec<String>,
}

/// Why a template cannot be rendered for an event; the batch is rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscapeError(pub String);

impl Template {
    /// Parses a template. `problems` receives a message for each escape that Flume
    /// would fail on or silently drop, so configtest can report it.
    pub fn parse(text: &str, problems: &mut Vec<String>) -> Template {
        let mut tokens = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            let rest = &text[i + 1..];
            let next = rest.chars().next();
            match next {
                Some('%') => {
                    lit.push('%');
                    chars.next();
                }
                Some('{') => match rest[1..].find('}') {
                    Some(end)
                        if end > 0
                            && rest[1..1 + end]
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) =>
                    {
                        flush(&mut lit, &mut tokens);
                        tokens.push(Token::Header(rest[1..1 + end].to_string()));
                        for _ in 0..end + 2 {
                            chars.next();
                        }
                    }
                    _ => lit.push('%'),
                },
                Some('[') => match rest[1..].find(']') {
                    Some(end)
                        if end > 0
                            && rest[1..1 + end]
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                    {
                        let key = &rest[1..1 + end];
                        flush(&mut lit, &mut tokens);
                        match static_value(key) {
                            Ok(v) => tokens.push(Token::Static(v)),
                            Err(e) => problems.push(e),
                        }
                        for _ in 0..end + 2 {
                            chars.next();
                        }
                    }
                    _ => lit.push('%'),
                },
                Some(x) if x.is_ascii_alphanumeric() || x == '_' => {
                    chars.next();
                    if DATE_ESCAPES.contains(x) {
                        flush(&mut lit, &mut tokens);
                        tokens.push(Token::Date(x));
                    } else {
                        problems.push(format!(
                            "`%{x}` is not one of Flume's escapes and is replaced by nothing; the date escapes are %a %A %b %B %c %d %D %e %H %I %j %k %l %m %M %n %p %s %S %t %y %Y %z, write %% for a literal %"
                        ));
                    }
                }
                _ => lit.push('%'),
            }
        }
        flush(&mut lit, &mut tokens);
        let needs_time = tokens.iter().any(|t| matches!(t, Token::Date(_)));
        let needs_millis = tokens.iter().any(|t| matches!(t, Token::Date('t')));
        let mut headers: Vec<String> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Header(h) => Some(h.clone()),
                _ => None,
            })
            .collect();
        headers.sort();
        headers.dedup();
        Template {
            tokens,
            needs_time,
            needs_millis,
            headers,
        }
    }

    /// True when the template has date escapes, so events need a time.
    pub fn needs_time(&self) -> bool {
        self.needs_time
    }

    /// The text before the first escape: the part of the path every event shares.
    pub fn static_prefix(&self) -> String {
        match self.tokens.first() {
            Some(Token::Literal(s)) => s.clone(),
            _ => String::new(),
        }
    }
}

fn flush(lit: &mut String, tokens: &mut Vec<Token>) {
    if !lit.is_empty() {
        tokens.push(Token::Literal(std::mem::take(lit)));
    }
}

fn static_value(key: &str) -> Result<String, String> {
    let host = hostname();
    match key.to_ascii_lowercase().as_str() {
        "localhost" => Ok(host),
        "ip" => Ok(ip_of(&host).unwrap_or_else(|| "127.0.0.1".to_string())),
        "fqdn" => Ok(fqdn_of(&host).unwrap_or(host)),
        _ => Err(format!(
            "`%[{key}]` is not a static escape; use %[localhost], %[IP] or %[FQDN]"
        )),
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // or truncates, and the last byte is kept 0.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn ip_of(host: &str) -> Option<String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = (host, 0).to_socket_addrs().ok()?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip().to_string())
}

fn fqdn_of(host: &str) -> Option<String> {
    let c_host = std::ffi::CString::new(host).ok()?;
    // SAFETY: getaddrinfo with a valid NUL-terminated name and zeroed hints; the result
    // list is read only while it is alive and freed once.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) != 0 {
            return None;
        }
        let name = if res.is_null() || (*res).ai_canonname.is_null() {
            None
        } else {
            Some(
                std::ffi::CStr::from_ptr((*res).ai_canonname)
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        libc::freeaddrinfo(res);
        name
    }
}

/// Renders one template for events, remembering the last result.
#[derive(Debug, Clone)]
pub struct Renderer {
    template: Template,
    last_key: Option<(i64, Vec<Option<String>>)>,
    last: String,
}

impl Renderer {
    pub fn new(template: Template) -> Self {
        Renderer {
            template,
            last_key: None,
            last: String::new(),
        }
    }

    /// The template's text for this event, with `now_ms` as the time when
    /// `useLocalTimeStamp` is set.
    pub fn render(
        &mut self,
        event: &Event,
        time: &TimeSettings,
        now_ms: i64,
    ) -> Result<&str, EscapeError> {
        let ts = if self.template.needs_time {
            Some(event_time(event, time, now_ms)?)
        } else {
            None
        };
        let key_time = match ts {
            Some(ms) if self.template.needs_millis => ms,
            Some(ms) => ms.div_euclid(1000),
            None => 0,
        };
        let values: Vec<Option<String>> = self
            .template
            .headers
            .iter()
            .map(|h| event.headers.get(h).cloned())
            .collect();
        if self
            .last_key
            .as_ref()
            .is_some_and(|(t, v)| *t == key_time && *v == values)
        {
            return Ok(&self.last);
        }
        let mut out = String::new();
        let fields = ts.map(|ms| DateFields::new(ms, time));
        for t in &self.template.tokens {
            match t {
                Token::Literal(s) | Token::Static(s) => out.push_str(s),
                Token::Header(h) => {
                    if let Some(v) = event.headers.get(h) {
                        out.push_str(v);
                    }
                }
                Token::Date(c) => {
                    if let Some(f) = &fields {
                        f.push(*c, &mut out);
                    }
                }
            }
        }
        self.last_key = Some((key_time, values));
        self.last = out;
        Ok(&self.last)
    }
}

/// The event's time in ms: the `timestamp` header, or `now_ms` with useLocalTimeStamp.
pub fn event_time(event: &Event, time: &TimeSettings, now_ms: i64) -> Result<i64, EscapeError> {
    if time.use_local {
        return Ok(now_ms);
    }
    match event.headers.get("timestamp") {
        Some(v) => v.trim().parse::<i64>().map_err(|_| {
            EscapeError(format!(
                "the event's `timestamp` header `{v}` is not a number of milliseconds; the path's date escapes need it (set it with the timestamp interceptor, or set hdfs.useLocalTimeStamp = true)"
            ))
        }),
        None => Err(EscapeError(
            "an event has no `timestamp` header, which the path's date escapes need; add a timestamp interceptor to the source or set hdfs.useLocalTimeStamp = true".to_string(),
        )),
    }
}

/// The raw time plus its date fields in the zone, after rounding.
struct DateFields {
    raw_ms: i64,
    rounded_ms: i64,
    zoned: jiff::Zoned,
}

const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl DateFields {
    fn new(ms: i64, time: &TimeSettings) -> Self {
        let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
        let zoned = ts.to_zoned(time.tz.clone());
        let zoned = match time.round {
            Some((value, unit)) => round_down(&zoned, value, unit),
            None => zoned,
        };
        DateFields {
            raw_ms: ms,
            rounded_ms: zoned.timestamp().as_millisecond(),
            zoned,
        }
    }

    fn push(&self, c: char, out: &mut String) {
        use std::fmt::Write;
        let z = &self.zoned;
        let dow = DAYS[z.weekday().to_monday_zero_offset() as usize];
        let month = MONTHS[(z.month() - 1) as usize];
        let h12 = match z.hour() % 12 {
            0 => 12,
            h => h,
        };
        let _ = match c {
            'a' => write!(out, "{}", &dow[..3]),
            'A' => write!(out, "{dow}"),
            'b' => write!(out, "{}", &month[..3]),
            'B' => write!(out, "{month}"),
            'c' => write!(
                out,
                "{} {} {} {:02}:{:02}:{:02} {:04}",
                &dow[..3],
                &month[..3],
                z.day(),
                z.hour(),
                z.minute(),
                z.second(),
                z.year()
            ),
            'd' => write!(out, "{:02}", z.day()),
            'e' => write!(out, "{}", z.day()),
            'D' => write!(
                out,
                "{:02}/{:02}/{:02}",
                z.month(),
                z.day(),
                z.year().rem_euclid(100)
            ),
            'H' => write!(out, "{:02}", z.hour()),
            'I' => write!(out, "{h12:02}"),
            'j' => write!(out, "{:03}", z.day_of_year()),
            'k' => write!(out, "{}", z.hour()),
            'l' => write!(out, "{h12}"),
            'm' => write!(out, "{:02}", z.month()),
            'M' => write!(out, "{:02}", z.minute()),
            'n' => write!(out, "{}", z.month()),
            'p' => write!(out, "{}", if z.hour() < 12 { "AM" } else { "PM" }),
            's' => write!(out, "{}", self.rounded_ms.div_euclid(1000)),
            'S' => write!(out, "{:02}", z.second()),
            // Flume inserts the header's own value here, unrounded.
            't' => write!(out, "{}", self.raw_ms),
            'y' => write!(out, "{:02}", z.year().rem_euclid(100)),
            'Y' => write!(out, "{:04}", z.year()),
            'z' => {
                let secs = z.offset().seconds();
                let sign = if secs < 0 { '-' } else { '+' };
                let a = secs.unsigned_abs();
                write!(out, "{sign}{:02}{:02}", a / 3600, (a % 3600) / 60)
            }
            _ => Ok(()),
        };
    }
}

/// Flume's TimestampRoundDownUtil: the field of the unit down to a multiple of
/// `value`, the smaller fields to zero, in the sink's time zone.
fn round_down(z: &jiff::Zoned, value: i8, unit: RoundUnit) -> jiff::Zoned {
    let v = value.max(1);
    let b = z.with().subsec_nanosecond(0);
    let b = match unit {
        RoundUnit::Second => b.second(z.second() / v * v),
        RoundUnit::Minute => b.second(0).minute(z.minute() / v * v),
        RoundUnit::Hour => b.second(0).minute(0).hour(z.hour() / v * v),
    };
    b.build().unwrap_or_else(|_| z.clone())
}

/// Parses `hdfs.timeZone`: an IANA name (`America/Los_Angeles`, `UTC`) or a Java
/// custom id (`GMT+08:00`, `GMT-5`).
pub fn parse_time_zone(name: &str) -> Result<TimeZone, String> {
    let n = name.trim();
    if let Some(rest) = n.strip_prefix("GMT").or_else(|| n.strip_prefix("UTC")) {
        if rest.is_empty() {
            return Ok(TimeZone::UTC);
        }
        if let Some(tz) = custom_offset(rest) {
            return Ok(tz);
        }
    }
    TimeZone::get(n).map_err(|e| {
        format!("time zone `{n}` is unknown ({e}); use an IANA name such as UTC or America/New_York, or GMT+hh:mm")
    })
}

fn custom_offset(rest: &str) -> Option<TimeZone> {
    let (sign, digits) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let (h, m) = match digits.split_once(':') {
        Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
        None if digits.len() <= 2 => (digits.parse::<i32>().ok()?, 0),
        None if digits.len() == 4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        None => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    let offset = jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()?;
    Some(TimeZone::fixed(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> TimeSettings {
        TimeSettings {
            round: None,
            tz: TimeZone::UTC,
            use_local: false,
        }
    }

    fn render(t: &str, e: &Event, time: &TimeSettings) -> Result<String, EscapeError> {
        let mut problems = Vec::new();
        let mut r = Renderer::new(Template::parse(t, &mut problems));
        assert!(problems.is_empty(), "{problems:?}");
        r.render(e, time, 0).map(str::to_string)
    }

    // 2005-03-03 23:05:25.123 UTC, a Thursday.
    const TS: i64 = 1_109_891_125_123;

    #[test]
    fn date_escapes_match_flume_formats() {
        let e = Event::from_body("x").with_header("timestamp", TS.to_string());
        let got = render(
            "%a|%A|%b|%B|%c|%d|%e|%D|%H|%I|%j|%k|%l|%m|%M|%n|%p|%s|%S|%t|%y|%Y|%z|%%",
            &e,
            &utc(),
        )
        .unwrap();
        assert_eq!(
            got,
            "Thu|Thursday|Mar|March|Thu Mar 3 23:05:25 2005|03|3|03/03/05|23|11|062|23|11|03|05|3|PM|1109891125|25|1109891125123|05|2005|+0000|%"
        );
    }

    #[test]
    fn headers_and_missing_headers() {
        let e = Event::from_body("x").with_header("topic", "web");
        assert_eq!(
            render("/logs/%{topic}/%{absent}/x", &e, &utc()).unwrap(),
            "/logs/web//x"
        );
    }

    #[test]
    fn rounding_down_to_ten_minutes_as_in_flumes_guide() {
        // 11:54:34 with roundValue 10 minute gives 1150.
        let ms = jiff::civil::date(2012, 6, 12)
            .at(11, 54, 34, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_millisecond();
        let e = Event::from_body("x").with_header("timestamp", ms.to_string());
        let mut t = utc();
        t.round = Some((10, RoundUnit::Minute));
        assert_eq!(render("%H%M%S", &e, &t).unwrap(), "115000");
        t.round = Some((4, RoundUnit::Hour));
        assert_eq!(render("%H%M", &e, &t).unwrap(), "0800");
        t.round = Some((15, RoundUnit::Second));
        assert_eq!(render("%M%S", &e, &t).unwrap(), "5430");
    }

    #[test]
    fn time_zone_moves_the_date() {
        let e = Event::from_body("x").with_header("timestamp", TS.to_string());
        let mut t = utc();
        t.tz = parse_time_zone("GMT+08:00").unwrap();
        assert_eq!(
            render("%Y-%m-%d %H %z", &e, &t).unwrap(),
            "2005-03-04 07 +0800"
        );
        t.tz = parse_time_zone("GMT-0530").unwrap();
        assert_eq!(render("%H:%M %z", &e, &t).unwrap(), "17:35 -0530");
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn missing_or_bad_timestamp_is_an_error_that_says_what_to_do() {
        let e = Event::from_body("x");
        let err = render("/logs/%Y", &e, &utc()).unwrap_err();
        assert!(err.0.contains("useLocalTimeStamp"), "{}", err.0);
        let e = Event::from_body("x").with_header("timestamp", "yesterday");
        assert!(render("/logs/%Y", &e, &utc()).is_err());
        // Without date escapes no time is needed.
        assert_eq!(
            render("/logs/x", &Event::from_body("x"), &utc()).unwrap(),
            "/logs/x"
        );
    }

    #[test]
    fn local_timestamp_uses_the_clock() {
        let mut t = utc();
        t.use_local = true;
        let mut problems = Vec::new();
        let mut r = Renderer::new(Template::parse("%Y%m%d", &mut problems));
        assert_eq!(
            r.render(&Event::from_body("x"), &t, TS).unwrap(),
            "20050303"
        );
    }

    #[test]
    fn unknown_escapes_are_reported() {
        let mut problems = Vec::new();
        Template::parse("/a/%Q/%[nowhere]", &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        let mut problems = Vec::new();
        let t = Template::parse("/a/%[localhost]/100%% %{", &mut problems);
        assert!(problems.is_empty());
        let mut r = Renderer::new(t);
        let got = r
            .render(&Event::from_body("x"), &utc(), 0)
            .unwrap()
            .to_string();
        assert!(got.starts_with("/a/") && got.ends_with("/100% %{"), "{got}");
    }

    #[test]
    fn cached_rendering_follows_header_and_time_changes() {
        let mut problems = Vec::new();
        let mut r = Renderer::new(Template::parse("%{h}/%S", &mut problems));
        let t = utc();
        let e = |h: &str, ms: i64| {
            Event::from_body("x")
                .with_header("h", h)
                .with_header("timestamp", ms.to_string())
        };
        assert_eq!(r.render(&e("a", 1000), &t, 0).unwrap(), "a/01");
        assert_eq!(r.render(&e("a", 1999), &t, 0).unwrap(), "a/01");
        assert_eq!(r.render(&e("b", 1999), &t, 0).unwrap(), "b/01");
        assert_eq!(r.render(&e("b", 2000), &t, 0).unwrap(), "b/02");
    }
}
