//! `regex_filter`: keeps events whose body matches `regex` (anywhere in the body), or
//! drops them with `excludeEvents = true`.

use millrace_core::{Event, Interceptor, Props};
use regex::bytes::Regex;

pub struct RegexFilterInterceptor {
    regex: Regex,
    exclude: bool,
}

impl RegexFilterInterceptor {
    pub fn from_props(p: &Props) -> Option<Self> {
        let pattern = p.string("regex", ".*");
        let exclude = p.bool("excludeEvents", false);
        let regex = compile(p, "regex", &pattern)?;
        (!p.has_errors()).then_some(RegexFilterInterceptor { regex, exclude })
    }
}

/// Compiles a pattern, recording a diagnostic at `key` when it is invalid.
pub(crate) fn compile(p: &Props, key: &str, pattern: &str) -> Option<Regex> {
    match Regex::new(pattern) {
        Ok(r) => Some(r),
        Err(e) => {
            let detail = e.to_string();
            let detail = detail.lines().last().unwrap_or("").trim().to_string();
            p.error_at(
                key,
                format!(
                    "`{}` is not a valid regular expression ({detail}); fix the pattern",
                    p.full_key(key)
                ),
            );
            None
        }
    }
}

impl Interceptor for RegexFilterInterceptor {
    fn intercept(&self, mut batch: Vec<Event>) -> Vec<Event> {
        batch.retain(|e| self.regex.is_match(&e.body) != self.exclude);
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(v: &[Event]) -> Vec<&[u8]> {
        v.iter().map(|e| e.body.as_ref()).collect()
    }

    #[test]
    fn includes_or_excludes() {
        let input = || vec![Event::from_body("ERROR x"), Event::from_body("INFO y")];
        let p = Props::from_pairs(&[("regex", "ERROR")]);
        let out = RegexFilterInterceptor::from_props(&p)
            .unwrap()
            .intercept(input());
        assert_eq!(bodies(&out), [b"ERROR x"]);
        let p = Props::from_pairs(&[("regex", "ERROR"), ("excludeEvents", "true")]);
        let out = RegexFilterInterceptor::from_props(&p)
            .unwrap()
            .intercept(input());
        assert_eq!(bodies(&out), [b"INFO y"]);
        let out = RegexFilterInterceptor::from_props(&Props::from_pairs(&[]))
            .unwrap()
            .intercept(input());
        assert_eq!(out.len(), 2, "the default .* keeps everything");
    }

    #[test]
    fn bad_regex_is_reported_at_its_line() {
        let mut entries = std::collections::BTreeMap::new();
        entries.insert(
            "regex".to_string(),
            millrace_core::props::PropValue {
                value: "([a-z".into(),
                line: 12,
            },
        );
        let p = Props::new(
            "f.conf".into(),
            "a1.sources.r1.interceptors.i1.",
            10,
            entries,
        );
        assert!(RegexFilterInterceptor::from_props(&p).is_none());
        let d = p.finish();
        assert_eq!(d[0].line, 12);
        assert!(
            d[0].message.contains("a1.sources.r1.interceptors.i1.regex"),
            "{}",
            d[0]
        );
    }
}
