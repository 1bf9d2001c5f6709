//! Flume's interceptors: small transformations applied to every batch a source
//! produces, before channel selection. Each module holds one interceptor with its
//! typed configuration under Flume's property names and defaults.
//!
//! ```
//! use millrace_core::{Event, Props};
//!
//! let props = Props::from_pairs(&[("key", "datacenter"), ("value", "eu-1")]);
//! let i = millrace_interceptors::build("static", &props).unwrap();
//! let out = i.intercept(vec![Event::from_body("hello")]);
//! assert_eq!(out[0].header("datacenter"), Some("eu-1"));
//! ```

pub mod host;
pub mod regex_extractor;
pub mod regex_filter;
pub mod remove_header;
pub mod search_replace;
pub mod static_header;
pub mod timestamp;
pub mod uuid;

use millrace_core::{Interceptor, Props};

/// Every interceptor type this crate provides, by alias.
pub const TYPES: &[&str] = &[
    "timestamp",
    "host",
    "static",
    "regex_filter",
    "regex_extractor",
    "search_replace",
    "remove_header",
    "uuid",
];

/// Resolves an interceptor type (alias in any case, or Flume's builder class name) to
/// its alias.
pub fn canonical_type(type_name: &str) -> Option<&'static str> {
    let t = type_name.trim().to_ascii_lowercase();
    let t = t.strip_suffix("$builder").unwrap_or(&t);
    Some(match t {
        "timestamp" | "org.apache.flume.interceptor.timestampinterceptor" => "timestamp",
        "host" | "org.apache.flume.interceptor.hostinterceptor" => "host",
        "static" | "org.apache.flume.interceptor.staticinterceptor" => "static",
        "regex_filter" | "org.apache.flume.interceptor.regexfilteringinterceptor" => "regex_filter",
        "regex_extractor" | "org.apache.flume.interceptor.regexextractorinterceptor" => {
            "regex_extractor"
        }
        "search_replace" | "org.apache.flume.interceptor.searchandreplaceinterceptor" => {
            "search_replace"
        }
        "remove_header" | "org.apache.flume.interceptor.removeheaderinterceptor" => "remove_header",
        "uuid" | "org.apache.flume.sink.solr.morphline.uuidinterceptor" => "uuid",
        _ => return None,
    })
}

/// Builds an interceptor; problems are recorded in `props` with their lines. None
/// when it cannot be built.
pub fn build(canonical: &str, props: &Props) -> Option<Box<dyn Interceptor>> {
    fn boxed<T: Interceptor + 'static>(t: Option<T>) -> Option<Box<dyn Interceptor>> {
        t.map(|t| Box::new(t) as Box<dyn Interceptor>)
    }
    match canonical {
        "timestamp" => boxed(timestamp::TimestampInterceptor::from_props(props)),
        "host" => boxed(host::HostInterceptor::from_props(props)),
        "static" => boxed(static_header::StaticInterceptor::from_props(props)),
        "regex_filter" => boxed(regex_filter::RegexFilterInterceptor::from_props(props)),
        "regex_extractor" => boxed(regex_extractor::RegexExtractorInterceptor::from_props(
            props,
        )),
        "search_replace" => boxed(search_replace::SearchReplaceInterceptor::from_props(props)),
        "remove_header" => boxed(remove_header::RemoveHeaderInterceptor::from_props(props)),
        "uuid" => boxed(uuid::UuidInterceptor::from_props(props)),
        _ => None,
    }
}

/// Reads an interceptor's properties as [`build`] does, recording the same problems,
/// without building it: nothing is looked up (the host interceptor resolves the
/// machine's name only when built). The property reference calls this with empty
/// properties. False when the properties are not valid.
pub fn check(canonical: &str, props: &Props) -> bool {
    match canonical {
        "host" => host::HostConfig::from_props(props).is_some(),
        _ => build(canonical, props).is_some(),
    }
}

/// Sets `key` unless `preserve` is set and the header exists.
fn set_header(e: &mut millrace_core::Event, key: &str, value: &str, preserve: bool) {
    if preserve && e.headers.contains_key(key) {
        return;
    }
    e.headers.insert(key.to_string(), value.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_builder_class_names() {
        assert_eq!(
            canonical_type("org.apache.flume.interceptor.TimestampInterceptor$Builder"),
            Some("timestamp")
        );
        assert_eq!(
            canonical_type("org.apache.flume.sink.solr.morphline.UUIDInterceptor$Builder"),
            Some("uuid")
        );
        assert_eq!(canonical_type("REGEX_FILTER"), Some("regex_filter"));
        assert_eq!(canonical_type("nope"), None);
    }
}
