//! Query-string parameters, parsed by hand so that repeated parameters work, unknown
//! ones are refused by name, and each error names the parameter at fault.

use crate::error::ApiError;
use axum::http::StatusCode;
use millrace_store::time::{parse_duration, parse_time};
use millrace_store::{Cursor, Field, Filter, Order, Page};
use std::time::Duration;

/// Longest value of any one parameter.
const MAX_VALUE: usize = 1024;
/// Most values of one repeatable parameter.
const MAX_REPEAT: usize = 32;

pub const FILTER_PARAMS: &[&str] = &["from", "to", "host", "source", "level", "header", "q"];

pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses `raw`, refusing any name not in `allowed`.
    pub fn parse(raw: Option<&str>, allowed: &[&[&str]]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (k, v) in &pairs {
            if !allowed.iter().any(|a| a.contains(&k.as_str())) {
                let known: Vec<&str> = allowed.iter().flat_map(|a| a.iter().copied()).collect();
                let what = if k.is_empty() {
                    format!("a parameter has no name (`={v}`)")
                } else {
                    format!("unknown parameter `{k}`")
                };
                let takes = if known.is_empty() {
                    "this endpoint takes no parameters".to_string()
                } else {
                    format!("this endpoint takes: {}", known.join(", "))
                };
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_parameter",
                    format!("{what}; {takes}"),
                )
                .field(k.clone()));
            }
            if v.len() > MAX_VALUE {
                return Err(ApiError::bad_param(
                    k,
                    format!("`{k}` is longer than {MAX_VALUE} bytes"),
                ));
            }
        }
        Ok(Params { pairs })
    }

    pub fn all(&self, name: &str) -> Result<Vec<&str>, ApiError> {
        let v: Vec<&str> = self
            .pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        if v.len() > MAX_REPEAT {
            return Err(ApiError::bad_param(
                name,
                format!("`{name}` is given {} times; at most {MAX_REPEAT}", v.len()),
            ));
        }
        if v.iter().any(|s| s.trim().is_empty()) {
            return Err(ApiError::bad_param(
                name,
                format!("`{name}` is empty; give a value or leave the parameter out"),
            ));
        }
        Ok(v)
    }

    /// A parameter that may appear once.
    pub fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let v = self.all(name)?;
        match v.len() {
            0 => Ok(None),
            1 => Ok(Some(v[0])),
            _ => Err(ApiError::bad_param(
                name,
                format!("`{name}` may be given once"),
            )),
        }
    }

    pub fn required(&self, name: &str, hint: &str) -> Result<&str, ApiError> {
        self.one(name)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_parameter",
                format!("`{name}` is required; {hint}"),
            )
            .field(name)
        })
    }

    pub fn time(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.one(name)?
            .map(|v| parse_time(v).map_err(|m| ApiError::bad_param(name, format!("`{name}`: {m}"))))
            .transpose()
    }

    pub fn number(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        let Some(v) = self.one(name)? else {
            return Ok(default);
        };
        let problem = match v.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => return Ok(n),
            Ok(_) => "is out of range",
            // A number too large for u64 is still a number.
            Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => "is out of range",
            Err(_) => "is not a whole number",
        };
        Err(ApiError::bad_param(
            name,
            format!("`{name}` = `{v}` {problem}; use a whole number from {min} to {max}"),
        ))
    }
}

/// The filter parameters: `from`, `to`, `host`, `source`, `level`, `header`, `q`.
pub fn filter(p: &Params) -> Result<Filter, ApiError> {
    let from = p.time("from")?;
    let to = p.time("to")?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_range",
                "`from` must be before `to` (from is inclusive, to exclusive)",
            )
            .field("to"));
        }
    }
    let strings = |name: &str| -> Result<Vec<String>, ApiError> {
        Ok(p.all(name)?.into_iter().map(str::to_string).collect())
    };
    let levels = strings("level")?;
    if let Some(l) = levels
        .iter()
        .find(|l| l.len() > 32 || !l.chars().all(|c| c.is_ascii_alphabetic()))
    {
        return Err(ApiError::bad_param(
            "level",
            format!("`level` = `{l}` is not a level name; use e.g. ERROR, WARN, INFO, DEBUG"),
        ));
    }
    let mut headers = Vec::new();
    for h in p.all("header")? {
        match h.split_once(':') {
            Some((k, v)) if !k.is_empty() => headers.push((k.to_string(), v.to_string())),
            _ => {
                return Err(ApiError::bad_param(
                    "header",
                    format!("`header` = `{h}` is not KEY:VALUE; e.g. header=service:checkout"),
                ))
            }
        }
    }
    let q = p.one("q")?.map(str::to_string);
    if let Some(q) = &q {
        if !q.chars().any(char::is_alphanumeric) {
            return Err(ApiError::bad_param(
                "q",
                "`q` has no word to search for; give letters or digits",
            ));
        }
    }
    Ok(Filter {
        from,
        to,
        hosts: strings("host")?,
        sources: strings("source")?,
        levels,
        headers,
        q,
    })
}

pub const PAGE_PARAMS: &[&str] = &["order", "limit", "cursor"];

pub fn page(p: &Params) -> Result<Page, ApiError> {
    let order = match p.one("order")? {
        None => Order::Desc,
        Some(o) if o.eq_ignore_ascii_case("asc") => Order::Asc,
        Some(o) if o.eq_ignore_ascii_case("desc") => Order::Desc,
        Some(o) => {
            return Err(ApiError::bad_param(
                "order",
                format!("`order` = `{o}` is not supported; use asc or desc"),
            ))
        }
    };
    let limit = p.number("limit", 100, 1, 1000)? as usize;
    let cursor = p
        .one("cursor")?
        .map(|c| {
            c.parse::<Cursor>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_cursor",
                    "`cursor` is not one this server gave; pass `next_cursor` from the previous page unchanged",
                )
                .field("cursor")
            })
        })
        .transpose()?;
    Ok(Page {
        order,
        limit,
        cursor,
    })
}

pub fn field(p: &Params) -> Result<Field, ApiError> {
    let f = p.required("field", "use host, level, source or header:KEY")?;
    match f {
        "host" => Ok(Field::Host),
        "level" => Ok(Field::Level),
        "source" => Ok(Field::Source),
        h => match h.strip_prefix("header:") {
            Some(k) if !k.is_empty() => Ok(Field::Header(k.to_string())),
            _ => Err(ApiError::bad_param(
                "field",
                format!("`field` = `{f}` is not supported; use host, level, source or header:KEY"),
            )),
        },
    }
}

/// Histogram intervals: from one minute to one day.
pub fn interval(p: &Params) -> Result<Duration, ApiError> {
    let v = p.one("interval")?.unwrap_or("1h");
    let d = parse_duration(v)
        .map_err(|m| ApiError::bad_param("interval", format!("`interval`: {m}")))?;
    if d < Duration::from_secs(60) || d > Duration::from_secs(86_400) {
        return Err(ApiError::bad_param(
            "interval",
            format!("`interval` = `{v}` is out of range; use 1m to 1d"),
        ));
    }
    Ok(d)
}
