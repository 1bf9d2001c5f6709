//! Component registry: Flume's `type` values (aliases in any case, or Java class
//! names) to millrace's components. Adding a component means one line in the crate
//! that provides it; this module only asks each crate.

use millrace_core::Props;

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

/// Resolves a type or records an error at `key` in `props` that names the type, says
/// it is not supported and lists what is.
pub fn resolve_or_report(
    kind: ComponentType,
    type_name: &str,
    props: &Props,
    key: &str,
) -> Option<&'static str> {
    let r = resolve(kind, type_name);
    if r.is_none() {
        let list = supported(kind);
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
