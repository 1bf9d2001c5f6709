//! `remove_header`: removes headers named by `withName`, listed in `fromList`
//! (split by the regex `fromListSeparator`), or whose whole name matches `matching`.

use millrace_core::{Event, Interceptor, Props};
use regex::Regex;
use std::collections::HashSet;

pub struct RemoveHeaderInterceptor {
    names: HashSet<String>,
    matching: Option<Regex>,
}

impl RemoveHeaderInterceptor {
    pub fn from_props(p: &Props) -> Option<Self> {
        let mut names = HashSet::new();
        if let Some(n) = p.get("withName") {
            names.insert(n);
        }
        let sep = p.string("fromListSeparator", r"\s*,\s*");
        let sep_re = match Regex::new(&sep) {
            Ok(r) => Some(r),
            Err(_) => {
                p.error_at(
                    "fromListSeparator",
                    format!(
                        "`{}` is not a valid regular expression",
                        p.full_key("fromListSeparator")
                    ),
                );
                None
            }
        };
        if let (Some(list), Some(sep_re)) = (p.get("fromList"), &sep_re) {
            names.extend(
                sep_re
                    .split(&list)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        }
        let matching = p
            .get("matching")
            .and_then(|m| match Regex::new(&format!("^(?:{m})$")) {
                Ok(r) => Some(r),
                Err(_) => {
                    p.error_at(
                        "matching",
                        format!(
                            "`{}` is not a valid regular expression",
                            p.full_key("matching")
                        ),
                    );
                    None
                }
            });
        (!p.has_errors()).then_some(RemoveHeaderInterceptor { names, matching })
    }
}

impl Interceptor for RemoveHeaderInterceptor {
    fn intercept(&self, mut batch: Vec<Event>) -> Vec<Event> {
        for e in &mut batch {
            e.headers.retain(|k, _| {
                !self.names.contains(k) && !self.matching.as_ref().is_some_and(|r| r.is_match(k))
            });
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_by_name_list_and_pattern() {
        let p = Props::from_pairs(&[
            ("withName", "a"),
            ("fromList", "b, c"),
            ("matching", "tmp_.*"),
        ]);
        let i = RemoveHeaderInterceptor::from_props(&p).unwrap();
        let e = Event::default()
            .with_header("a", "1")
            .with_header("b", "2")
            .with_header("c", "3")
            .with_header("tmp_x", "4")
            .with_header("keep_tmp_x", "5");
        let out = i.intercept(vec![e]);
        let keys: Vec<_> = out[0].headers.keys().cloned().collect();
        assert_eq!(keys, ["keep_tmp_x"], "matching must match the whole name");
    }
}
