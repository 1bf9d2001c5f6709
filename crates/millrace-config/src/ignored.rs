//! Properties Flume reads from the file but then ignores, found the way Flume finds
//! them and removed so that millrace ignores them too.
//!
//! Flume 1.11 builds its configuration from every key of every agent in the file
//! (`FlumeConfiguration.addRawProperty`). A key whose value is empty, or that does not
//! start with `AGENT.`, is recorded as a configuration error that nothing acts on,
//! logged as `Configuration property ignored: KEY = VALUE`, and left out; the agent
//! starts without it. So these are warnings here, whichever agent the key is in, each
//! at its line and saying what to write instead; an ignored property is absent for
//! every later check, so a numeric one takes its default instead of being "not a
//! number".

use crate::agent::Located;
use millrace_core::Diagnostic;
use std::sync::Arc;

/// Removes the entries of one file whose key names no agent: no `.` at all (`foo`,
/// or the first word of `this line has no equals`), or nothing before the first `.`.
/// Checked line by line, before files are merged, so that each such line is reported
/// once whatever else repeats it.
pub(crate) fn drop_agentless(entries: &mut Vec<Located>) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    entries.retain(|l| {
        let agent = l.entry.key.split_once('.').map(|(a, _)| a);
        if agent.is_some_and(|a| !a.is_empty()) {
            return true;
        }
        let key = match l.entry.key.as_str() {
            "" => "an empty key".to_string(),
            k => format!("key `{k}`"),
        };
        let value = match l.entry.value.as_str() {
            "" => "no value".to_string(),
            v => format!("value `{v}`"),
        };
        diags.push(Diagnostic::warning(
            &l.file,
            l.entry.line,
            format!(
                "this line is read as {key} with {value}, which names no agent (a key starts \
                 with the agent's name and a dot, as in `a1.sources = r1`); Flume ignores it: \
                 fix the line, or remove it"
            ),
        ));
        false
    });
    diags
}

/// Removes the merged entries whose value is empty. `replaced[i]` is where the value
/// that `entries[i]` overrode was set, if it overrode one: Flume then has neither
/// value, and the warning says so (it stands for the override warning too).
pub(crate) fn drop_empty(
    entries: &mut Vec<Located>,
    replaced: &mut Vec<Option<(Arc<str>, usize)>>,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut keep = Vec::with_capacity(entries.len());
    let mut kept_replaced = Vec::with_capacity(entries.len());
    for (l, old) in entries.drain(..).zip(replaced.drain(..)) {
        if !l.entry.value.is_empty() {
            keep.push(l);
            kept_replaced.push(old);
            continue;
        }
        let key = &l.entry.key;
        let message = match old {
            Some((file, line)) => format!(
                "`{key}` has no value and overrides {file}:{line}; Flume ignores a property \
                 with an empty value, so neither value is used: give it a value, or remove \
                 this line"
            ),
            None => format!(
                "`{key}` has no value; Flume ignores a property with an empty value: give it \
                 a value, or remove the line"
            ),
        };
        diags.push(Diagnostic::warning(&l.file, l.entry.line, message));
    }
    *entries = keep;
    *replaced = kept_replaced;
    diags
}

#[cfg(test)]
mod tests {
    use crate::from_text;
    use millrace_core::Diagnostic;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    const GOOD: &str = "\
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = seq
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.sinks.k1.type = null
a1.sinks.k1.channel = c1
";

    fn seen(d: &[Diagnostic]) -> Vec<(usize, bool, &str)> {
        d.iter()
            .map(|d| (d.line, d.is_error(), d.message.as_str()))
            .collect()
    }

    #[test]
    fn mistyped_lines_are_warnings_at_their_lines() {
        let t = format!("{GOOD}foo\nthis line has no equals\na1.sinks.k1.batchSize\n");
        let (cfg, d) = from_text(Arc::from("t.conf"), &t, "a1");
        assert_eq!(
            seen(&d),
            [
                (
                    9,
                    false,
                    "this line is read as key `foo` with no value, which names no agent (a key \
                     starts with the agent's name and a dot, as in `a1.sources = r1`); Flume \
                     ignores it: fix the line, or remove it"
                ),
                (
                    10,
                    false,
                    "this line is read as key `this` with value `line has no equals`, which \
                     names no agent (a key starts with the agent's name and a dot, as in \
                     `a1.sources = r1`); Flume ignores it: fix the line, or remove it"
                ),
                (
                    11,
                    false,
                    "`a1.sinks.k1.batchSize` has no value; Flume ignores a property with an \
                     empty value: give it a value, or remove the line"
                ),
            ]
        );
        let cfg = cfg.unwrap();
        assert!(!cfg.sinks[0].component.props.has("batchSize"));
    }

    #[test]
    fn an_empty_number_takes_its_default_with_one_warning() {
        let t = format!("{GOOD}a1.channels.c1.capacity =\n");
        let (cfg, d) = from_text(Arc::from("t.conf"), &t, "a1");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].line, d[0].is_error()), (9, false));
        let cfg = cfg.unwrap();
        let props = &cfg.channels[0].props;
        assert_eq!(props.positive("capacity", 100), 100);
        assert!(props.finish().is_empty());
    }

    #[test]
    fn an_empty_value_that_overrides_is_one_warning_naming_both_lines() {
        let t = format!("{GOOD}a1.channels.c1.capacity = 5000\na1.channels.c1.capacity = \n");
        let (cfg, d) = from_text(Arc::from("t.conf"), &t, "a1");
        assert_eq!(
            seen(&d),
            [(
                10,
                false,
                "`a1.channels.c1.capacity` has no value and overrides t.conf:9; Flume ignores \
                 a property with an empty value, so neither value is used: give it a value, \
                 or remove this line"
            )]
        );
        assert!(!cfg.unwrap().channels[0].props.has("capacity"));
    }

    #[test]
    fn an_empty_value_overridden_later_is_only_an_override() {
        let t = format!("{GOOD}a1.channels.c1.capacity =\na1.channels.c1.capacity = 5000\n");
        let (cfg, d) = from_text(Arc::from("t.conf"), &t, "a1");
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].message.contains("overrides t.conf:9"), "{d:?}");
        assert_eq!(
            cfg.unwrap().channels[0].props.get("capacity").as_deref(),
            Some("5000")
        );
    }

    #[test]
    fn other_agents_empty_values_warn_as_flume_logs_them() {
        let t = format!("{GOOD}a2.sinks.k1.batchSize =\na2.sinks.k1.channel = c1\n");
        let (_, d) = from_text(Arc::from("t.conf"), &t, "a1");
        assert_eq!(
            seen(&d),
            [(
                9,
                false,
                "`a2.sinks.k1.batchSize` has no value; Flume ignores a property with an empty \
                 value: give it a value, or remove the line"
            )]
        );
    }

    #[test]
    fn an_empty_key_and_an_empty_agent_name_name_no_agent() {
        let t = format!("{GOOD}= 5\n.sinks = k1\n");
        let (_, d) = from_text(Arc::from("t.conf"), &t, "a1");
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].line == 9 && !d[0].is_error());
        assert!(d[0]
            .message
            .starts_with("this line is read as an empty key with value `5`, which names no agent"));
        assert!(d[1].line == 10 && !d[1].is_error());
        assert!(d[1].message.starts_with(
            "this line is read as key `.sinks` with value `k1`, which names no agent"
        ));
    }

    #[test]
    fn each_of_several_files_reports_its_own_lines() {
        let texts = [
            (Arc::from("base.conf"), format!("{GOOD}oops\n")),
            (
                Arc::from("site.conf"),
                "oops\na1.sinks.k1.batchSize =\n".into(),
            ),
        ];
        let (_, d) = crate::load_texts(&texts, "a1", &BTreeMap::new());
        let at: Vec<(&str, usize, bool)> = d
            .iter()
            .map(|d| (d.file.as_ref(), d.line, d.is_error()))
            .collect();
        assert_eq!(
            at,
            [
                ("base.conf", 9, false),
                ("site.conf", 1, false),
                ("site.conf", 2, false)
            ]
        );
    }

    #[test]
    fn an_agent_with_only_empty_values_is_not_configured() {
        let dir = std::env::temp_dir().join(format!("millrace-ignored-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.conf");
        std::fs::write(&path, format!("{GOOD}a2.sinks.k9.type =\nfoo\n")).unwrap();
        let names = crate::agent_names(std::slice::from_ref(&path));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(names.unwrap(), ["a1"]);
    }
}
