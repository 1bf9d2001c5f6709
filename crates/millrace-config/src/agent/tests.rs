use crate::from_text;
use millrace_core::Diagnostic;
use std::sync::Arc;

fn check(text: &str) -> (Option<crate::AgentConfig>, Vec<Diagnostic>) {
    from_text(Arc::from("t.conf"), text, "a1")
}

fn has(diags: &[Diagnostic], line: usize, error: bool, needle: &str) -> bool {
    diags
        .iter()
        .any(|d| d.line == line && d.is_error() == error && d.message.contains(needle))
}

const GOOD: &str = "\
a1.sources = r1
a1.sinks = k1
a1.channels = c1
a1.sources.r1.type = netcat
a1.sources.r1.bind = localhost
a1.sources.r1.port = 44444
a1.sinks.k1.type = logger
a1.channels.c1.type = memory
a1.channels.c1.capacity = 1000
a1.channels.c1.transactionCapacity = 100
a1.sources.r1.channels = c1
a1.sinks.k1.channel = c1
";

#[test]
fn flume_single_node_example_is_clean() {
    let (cfg, d) = check(GOOD);
    assert!(d.is_empty(), "{d:?}");
    let cfg = cfg.unwrap();
    assert_eq!(cfg.sources.len(), 1);
    assert_eq!(cfg.sources[0].component.type_name, "netcat");
    assert_eq!(cfg.sources[0].component.type_line, 4);
    assert_eq!(
        cfg.channels[0].props.get("capacity").as_deref(),
        Some("1000")
    );
    assert_eq!(cfg.sinks[0].channel, "c1");
}

#[test]
fn unknown_agent_names_the_defined_ones() {
    let (cfg, d) = from_text(Arc::from("t.conf"), GOOD, "agent7");
    assert!(cfg.is_none());
    assert!(
        d[0].message.contains("this file defines agents: a1"),
        "{}",
        d[0]
    );
}

#[test]
fn listed_but_not_configured_is_an_error_at_the_list() {
    let t = GOOD.replace("a1.sinks = k1", "a1.sinks = k1 k2");
    let (_, d) = check(&t);
    assert!(has(&d, 2, true, "sink `k2` is listed"), "{d:?}");
}

#[test]
fn configured_but_not_listed_is_a_warning() {
    let t = format!("{GOOD}a1.sinks.k9.type = null\na1.sinks.k9.channel = c1\n");
    let (cfg, d) = check(&t);
    assert!(has(&d, 13, false, "not listed"), "{d:?}");
    assert_eq!(cfg.unwrap().sinks.len(), 1);
}

#[test]
fn missing_type_is_an_error() {
    let t = GOOD.replace("a1.channels.c1.type = memory\n", "");
    let (_, d) = check(&t);
    assert!(has(&d, 8, true, "channel `c1` has no `type`"), "{d:?}");
}

#[test]
fn source_without_channels_and_sink_without_channel() {
    let t = GOOD
        .replace("a1.sources.r1.channels = c1\n", "")
        .replace("a1.sinks.k1.channel = c1\n", "");
    let (cfg, d) = check(&t);
    assert!(has(&d, 4, true, "source `r1` has no channels"), "{d:?}");
    assert!(has(&d, 7, true, "sink `k1` has no channel"), "{d:?}");
    // Both are kept, so that the node still checks their own properties, with no
    // channel to run on.
    let cfg = cfg.unwrap();
    assert!(cfg.sources[0].channels.is_empty());
    assert_eq!(cfg.sinks[0].channel, "");
}

#[test]
fn undefined_channel_reference_suggests_the_close_one() {
    let t = GOOD.replace("a1.sinks.k1.channel = c1", "a1.sinks.k1.channel = c2");
    let (_, d) = check(&t);
    assert!(
        has(
            &d,
            12,
            true,
            "channel `c2`, which is not defined; did you mean `c1`?"
        ),
        "{d:?}"
    );
}

#[test]
fn undefined_channel_keeps_the_component_for_the_node_to_check() {
    // The reported case: a bad capacity and an undefined channel. Both components
    // come back so that the node checks their properties too (it finds the capacity
    // error); the undefined channel is this crate's only diagnostic.
    let t = "\
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = seq
a1.sources.r1.channels = c1 spare
a1.channels.c1.type = memory
a1.channels.c1.capacity = notanumber
a1.sinks.k1.type = logger
a1.sinks.k1.channel = c2
";
    let (cfg, d) = check(t);
    let seen: Vec<(usize, bool, &str)> = d
        .iter()
        .map(|d| (d.line, d.is_error(), d.message.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                5,
                true,
                "`a1.sources.r1.channels` names channel `spare`, which is not defined; defined channels: c1"
            ),
            (
                9,
                true,
                "`a1.sinks.k1.channel` names channel `c2`, which is not defined; did you mean `c1`?"
            ),
        ]
    );
    let cfg = cfg.unwrap();
    assert_eq!(cfg.sources[0].channels, ["c1", "spare"]);
    assert_eq!(cfg.sinks[0].channel, "c2");
    assert_eq!(
        cfg.channels[0].props.get("capacity").as_deref(),
        Some("notanumber")
    );
}

#[test]
fn unknown_agent_is_printed_without_a_line_number() {
    let (_, d) = from_text(Arc::from("bad.conf"), GOOD, "zz");
    let text: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        ["bad.conf: error: no configuration for agent `zz`; this file defines agents: a1; pass -n with one of them"]
    );
    let (_, d) = from_text(Arc::from("empty.conf"), "# nothing\n", "a1");
    assert!(d[0]
        .to_string()
        .starts_with("empty.conf: error: no configuration for agent `a1`"));
}

#[test]
fn sink_with_two_channels_is_an_error() {
    let t = GOOD.replace("a1.sinks.k1.channel = c1", "a1.sinks.k1.channel = c1 c1");
    let (_, d) = check(&t);
    assert!(has(&d, 12, true, "exactly one"), "{d:?}");
}

#[test]
fn sink_in_two_groups_is_an_error_at_the_second() {
    let t = format!(
        "{GOOD}a1.sinkgroups = g1 g2\na1.sinkgroups.g1.sinks = k1\na1.sinkgroups.g2.sinks = k1\n"
    );
    let (cfg, d) = check(&t);
    assert!(has(&d, 15, true, "already in sink group `g1`"), "{d:?}");
    assert_eq!(cfg.unwrap().sinkgroups.len(), 1);
}

#[test]
fn sink_group_with_undefined_sink() {
    let t = format!("{GOOD}a1.sinkgroups = g1\na1.sinkgroups.g1.sinks = k1 k3\n");
    let (_, d) = check(&t);
    assert!(
        has(&d, 14, true, "sink `k3`, which is not defined"),
        "{d:?}"
    );
}

#[test]
fn no_channels_and_no_sources_or_sinks() {
    let (_, d) = check("a1.sources = \na1.foo = 1\n");
    assert!(
        d.iter()
            .any(|d| d.is_error() && d.message.contains("has no channels")),
        "{d:?}"
    );
    assert!(d
        .iter()
        .any(|d| d.is_error() && d.message.contains("neither sources nor sinks")));
    assert!(has(&d, 2, false, "unknown key `a1.foo`"));
}

#[test]
fn interceptors_and_selector_are_views_of_the_source() {
    let t = format!(
        "{GOOD}a1.sources.r1.interceptors = i1\na1.sources.r1.interceptors.i1.type = timestamp\n\
         a1.sources.r1.interceptors.i1.preserveExisting = true\na1.sources.r1.selector.type = replicating\n\
         a1.sources.r1.interceptors.i2.type = host\n"
    );
    let (cfg, d) = check(&t);
    assert!(
        has(
            &d,
            17,
            false,
            "interceptor `i2` is configured but not listed"
        ),
        "{d:?}"
    );
    let cfg = cfg.unwrap();
    let s = &cfg.sources[0];
    assert_eq!(s.interceptors[0].type_name, "timestamp");
    assert_eq!(
        s.interceptors[0].props.get("preserveExisting").as_deref(),
        Some("true")
    );
    assert_eq!(s.selector.get("type").as_deref(), Some("replicating"));
    // Keys read through the views count as known on the source's root props.
    s.component.props.get("bind");
    s.component.props.get("port");
    let unknown: Vec<_> = s.component.props.finish();
    assert!(unknown.is_empty(), "{unknown:?}");
}

#[test]
fn duplicate_key_warns_and_the_later_wins() {
    let t = format!("{GOOD}a1.channels.c1.capacity = 5000\n");
    let (cfg, d) = check(&t);
    assert!(has(&d, 13, false, "overrides t.conf:9"), "{d:?}");
    assert_eq!(
        cfg.unwrap().channels[0].props.get("capacity").as_deref(),
        Some("5000")
    );
}

#[test]
fn five_mistakes_are_all_reported() {
    let t = "\
a1.sources = r1 r2
a1.channels = c1
a1.sinks = k1
a1.sources.r1.channels = c1
a1.sources.r1.type = exec
a1.channels.c1.type = memory
a1.sinks.k1.type = null
a1.sinks.k1.channel = c7
a1.sinks.k2.type = null
a1.sources.r1.interceptors = i1
";
    let (_, d) = check(t);
    assert!(has(&d, 1, true, "source `r2` is listed"), "{d:?}");
    assert!(has(&d, 8, true, "channel `c7`"), "{d:?}");
    assert!(
        has(&d, 9, false, "sink `k2` is configured but not listed"),
        "{d:?}"
    );
    assert!(
        has(
            &d,
            10,
            true,
            "interceptor `i1` of source `r1` has no `type`"
        ),
        "{d:?}"
    );
    assert_eq!(
        d.len(),
        4 + d.iter().filter(|x| x.line == 0).count(),
        "{d:?}"
    );
    let (_, d2) = check(&format!("{t}a1.bogus = 1\n"));
    assert!(has(&d2, 11, false, "unknown key `a1.bogus`"), "{d2:?}");
    assert_eq!(d2.len(), 5, "{d2:?}");
}
