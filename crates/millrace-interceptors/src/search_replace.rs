//! `search_replace`: replaces every match of `searchPattern` in the body with
//! `replaceString`, where `$1` refers to a capture group as in Java.

use bytes::Bytes;
use millrace_core::{Event, Interceptor, Props};
use regex::bytes::Regex;

pub struct SearchReplaceInterceptor {
    regex: Regex,
    replacement: Vec<u8>,
}

/// Java's replacement syntax (`$1`, `\$` for a literal dollar) in Rust's (`${1}`,
/// `$$`). Java reads `$1a` as group 1 then `a`; Rust would read a group named `1a`.
fn java_replacement(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(o) => out.push(o),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl SearchReplaceInterceptor {
    pub fn from_props(p: &Props) -> Option<Self> {
        let pattern = p.required("searchPattern", "set the regular expression to replace");
        let replace = p.string("replaceString", "");
        let charset = p.string("charset", "UTF-8");
        if !charset.eq_ignore_ascii_case("UTF-8") && !charset.eq_ignore_ascii_case("UTF8") {
            p.error_at(
                "charset",
                format!(
                    "`{}` = {charset}: only UTF-8 bodies are supported; remove it",
                    p.full_key("charset")
                ),
            );
        }
        let regex = pattern.and_then(|pt| super::regex_filter::compile(p, "searchPattern", &pt));
        if p.has_errors() {
            return None;
        }
        Some(SearchReplaceInterceptor {
            regex: regex?,
            replacement: java_replacement(&replace).into_bytes(),
        })
    }
}

impl Interceptor for SearchReplaceInterceptor {
    fn intercept(&self, mut batch: Vec<Event>) -> Vec<Event> {
        for e in &mut batch {
            if let std::borrow::Cow::Owned(v) =
                self.regex.replace_all(&e.body, self.replacement.as_slice())
            {
                e.body = Bytes::from(v);
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_with_group_references() {
        let p = Props::from_pairs(&[
            ("searchPattern", r"card=(\d{4})\d+"),
            ("replaceString", "card=$1a****"),
        ]);
        let i = SearchReplaceInterceptor::from_props(&p).unwrap();
        let out = i.intercept(vec![Event::from_body(
            "pay card=1234567890 ok card=9999000",
        )]);
        assert_eq!(
            out[0].body.as_ref(),
            b"pay card=1234a**** ok card=9999a****"
        );
    }

    #[test]
    fn default_replacement_deletes() {
        let p = Props::from_pairs(&[("searchPattern", r"^\S+ ")]);
        let out = SearchReplaceInterceptor::from_props(&p)
            .unwrap()
            .intercept(vec![Event::from_body("2026 body")]);
        assert_eq!(out[0].body.as_ref(), b"body");
    }

    #[test]
    fn java_replacement_syntax() {
        assert_eq!(java_replacement(r"\$1 costs $2"), "$$1 costs ${2}");
    }
}
