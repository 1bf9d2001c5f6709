//! Component registry: Flume's `type` values (aliases in any case, or Java class
//! names) to millrace's components. Adding a component means one line in the crate
//! that provides it; this module only asks each crate.

use millrace_core::counters::SinkCounters;
use millrace_core::{Props, Sink};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentType {
    Source,
    Channel,
    Sink,
    Interceptor,
}

impl ComponentType {
    fn word(self) -> &'static str {
        match self {
            ComponentType::Source => "source",
            ComponentType::Channel => "channel",
            ComponentType::Sink => "sink",
            ComponentType::Interceptor => "interceptor",
        }
    }
}

/// The aliases millrace supports for a kind of component.
pub fn supported(kind: ComponentType) -> &'static [&'static str] {
    match kind {
        ComponentType::Source => millrace_sources::TYPES,
        ComponentType::Channel => millrace_channels::TYPES,
        ComponentType::Sink => millrace_sinks::TYPES,
        ComponentType::Interceptor => millrace_interceptors::TYPES,
    }
}

/// Resolves a `type` value to millrace's alias for it.
pub fn resolve(kind: ComponentType, type_name: &str) -> Option<&'static str> {
    let t = type_name.trim();
    match kind {
        ComponentType::Source => millrace_sources::canonical_type(t),
        ComponentType::Channel => millrace_channels::canonical_type(t),
        ComponentType::Sink => millrace_sinks::canonical_type(t),
        ComponentType::Interceptor => millrace_interceptors::canonical_type(t),
    }
}

/// Builds a sink of an extension type from its name, its properties and its counters;
/// problems go into the properties as diagnostics, and None means it cannot be built.
pub type ExtSinkFactory =
    Arc<dyn Fn(&str, &Props, Arc<SinkCounters>) -> Option<Box<dyn Sink>> + Send + Sync>;

/// Component types added by the process that hosts an agent (the query server adds a
/// `store` sink that writes into its own store). Names match in any case; an extension
/// name wins over a built-in type of the same name.
#[derive(Clone, Default)]
pub struct Extensions {
    sinks: BTreeMap<String, ExtSinkFactory>,
}

impl Extensions {
    pub fn new() -> Self {
        Extensions::default()
    }

    /// Adds a sink type.
    pub fn with_sink(mut self, type_name: &str, factory: ExtSinkFactory) -> Self {
        self.sinks.insert(type_name.to_ascii_lowercase(), factory);
        self
    }

    /// The sink type names added, lower case.
    pub fn sink_types(&self) -> impl Iterator<Item = &str> {
        self.sinks.keys().map(String::as_str)
    }

    /// The factory of a sink type, when an extension provides it.
    pub fn sink(&self, type_name: &str) -> Option<&ExtSinkFactory> {
        self.sinks.get(&type_name.trim().to_ascii_lowercase())
    }
}

/// Resolves a type or records an error at `key` in `props` that names the type, says
/// it is not supported and lists what is.
pub fn resolve_or_report(
    kind: ComponentType,
    type_name: &str,
    props: &Props,
    key: &str,
) -> Option<&'static str> {
    resolve_or_report_with(kind, type_name, props, key, &[])
}

/// [`resolve_or_report`] for a process that also accepts the types in `extra` (its
/// [`Extensions`]): those are listed among the supported ones in the error. Returns None
/// for an extra type too; the caller looks those up first.
pub fn resolve_or_report_with(
    kind: ComponentType,
    type_name: &str,
    props: &Props,
    key: &str,
    extra: &[&str],
) -> Option<&'static str> {
    let r = resolve(kind, type_name);
    if r.is_none() {
        let mut list: Vec<&str> = supported(kind).to_vec();
        list.extend(extra.iter().copied());
        let hint = match millrace_core::diag::did_you_mean(type_name, list.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? "),
            None => String::new(),
        };
        props.error_at(
            key,
            format!(
                "{} type `{type_name}` (`{}`) is not supported; {hint}supported {} types: {} (or their Flume class names)",
                kind.word(),
                props.full_key(key),
                kind.word(),
                list.join(", ")
            ),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_aliases_any_case_and_class_names() {
        assert_eq!(resolve(ComponentType::Source, "EXEC"), Some("exec"));
        assert_eq!(
            resolve(ComponentType::Source, "org.apache.flume.source.ExecSource"),
            Some("exec")
        );
        assert_eq!(resolve(ComponentType::Channel, "Memory"), Some("memory"));
        assert_eq!(
            resolve(ComponentType::Sink, "org.apache.flume.sink.RollingFileSink"),
            Some("file_roll")
        );
        assert_eq!(
            resolve(
                ComponentType::Interceptor,
                "org.apache.flume.interceptor.TimestampInterceptor$Builder"
            ),
            Some("timestamp")
        );
    }

    #[test]
    fn unknown_type_names_the_type() {
        let p = Props::from_pairs(&[("type", "spooldirr")]);
        assert!(resolve_or_report(ComponentType::Source, "spooldirr", &p, "type").is_none());
        let d = p.finish();
        assert!(d[0].message.contains("`spooldirr`"), "{}", d[0]);
        assert!(d[0].message.contains("not supported"), "{}", d[0]);
    }
}
