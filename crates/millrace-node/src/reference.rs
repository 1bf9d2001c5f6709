//! The property reference, `docs/reference.md`, made from the code.
//!
//! Each component is built from empty properties (and from a few variations, below)
//! and the keys its configuration read are listed with the defaults its getters know
//! ([`millrace_core::props::AskedKey`]). Building reads properties only: nothing is
//! bound, opened or looked up, as for `configtest`. The Flume class names and the
//! meaning of each property come from `docs/components.md`, the handbook's own
//! description of the components, so neither file can drift from the code:
//! `tests/reference.rs` fails when `docs/reference.md` is stale and when
//! components.md does not mention a property that the code reads.
//!
//! Some properties are read only when another one has a given value (`sslKey` only
//! with `ssl = true`). To find them, every boolean the code read is also tried with
//! its other value and every choice with each of its values; [`SEEDS`] adds the few
//! values that cannot be guessed this way (a file group's name, a serializer type).

use crate::registry::{resolve, ComponentType};
use millrace_config::SinkGroupConfig;
use millrace_core::props::AskedKey;
use millrace_core::Props;
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Arc;

/// The command that rewrites `docs/reference.md`.
pub const REGENERATE: &str = "MILLRACE_BLESS=1 cargo test -p millrace-node --test reference";

/// A kind of component, as the reference groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// What the configuration layer reads for every component of a kind.
    Common,
    Source,
    Channel,
    Sink,
    Interceptor,
    Selector,
    SinkProcessor,
}

impl Kind {
    /// The chapter of components.md (and of the reference) that describes the kind.
    fn chapter(self) -> &'static str {
        match self {
            Kind::Common => "Common properties",
            Kind::Source => "Sources",
            Kind::Channel => "Channels",
            Kind::Sink => "Sinks",
            Kind::Interceptor => "Interceptors",
            Kind::Selector => "Channel selectors",
            Kind::SinkProcessor => "Sink groups",
        }
    }

    fn registry(self) -> Option<ComponentType> {
        match self {
            Kind::Source => Some(ComponentType::Source),
            Kind::Channel => Some(ComponentType::Channel),
            Kind::Sink => Some(ComponentType::Sink),
            Kind::Interceptor => Some(ComponentType::Interceptor),
            _ => None,
        }
    }
}

/// One component type and every property its configuration reads.
#[derive(Debug, Clone)]
pub struct Component {
    pub kind: Kind,
    /// The alias a configuration's `type` names it by (for [`Kind::Common`], which
    /// components the section is about).
    pub alias: String,
    /// Keys in the order the code reads them.
    pub keys: Vec<AskedKey>,
}

/// Channel selectors: alias and Flume class (see `selector.rs`).
const SELECTORS: &[(&str, &str)] = &[
    (
        "replicating",
        "org.apache.flume.channel.ReplicatingChannelSelector",
    ),
    (
        "multiplexing",
        "org.apache.flume.channel.MultiplexingChannelSelector",
    ),
];

/// Sink processors: alias and Flume class (see `build_policy` in `agent.rs`).
const PROCESSORS: &[(&str, &str)] = &[
    ("default", "org.apache.flume.sink.DefaultSinkProcessor"),
    ("failover", "org.apache.flume.sink.FailoverSinkProcessor"),
    (
        "load_balance",
        "org.apache.flume.sink.LoadBalancingSinkProcessor",
    ),
];

/// Properties that open branches no boolean or choice opens: names that other keys
/// are made from (shown in the reference as `NAME`, as components.md writes them),
/// and values of free-text keys. Each entry is tried on its own, besides empty
/// properties.
pub const SEEDS: &[(&str, &[(&str, &str)])] = &[
    (
        "TAILDIR",
        &[
            ("filegroups", "NAME"),
            ("filegroups.NAME", "/var/log/app/.*"),
        ],
    ),
    (
        "regex_extractor",
        &[
            ("serializers", "NAME"),
            (
                "serializers.NAME.type",
                "org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer",
            ),
        ],
    ),
    ("file_roll", &[("sink.serializer", "AVRO_EVENT")]),
];

/// At most this many property sets are tried per component; far more than any needs.
const MAX_PROBES: usize = 256;

type Pairs = Vec<(String, String)>;

/// Reads a component's properties the way the agent does, ignoring the result.
type Reader<'a> = &'a dyn Fn(&Props);

/// Every component type millrace builds, with the properties each reads.
pub fn components() -> Vec<Component> {
    let mut out = common();
    let seeds_of = |alias: &str| -> Vec<Pairs> {
        let mut v: Vec<Pairs> = vec![Vec::new()];
        v.extend(
            SEEDS
                .iter()
                .filter(|(a, _)| *a == alias)
                .map(|(_, pairs)| owned(pairs)),
        );
        v
    };
    let mut add = |kind: Kind, alias: &str, seeds: Vec<Pairs>, read: Reader<'_>| {
        out.push(Component {
            kind,
            alias: alias.to_string(),
            keys: explore(&seeds, read),
        });
    };
    for &alias in millrace_sources::TYPES {
        add(Kind::Source, alias, seeds_of(alias), &|p| {
            let _ = millrace_sources::build(alias, p);
        });
    }
    for &alias in millrace_channels::TYPES {
        add(Kind::Channel, alias, seeds_of(alias), &|p| {
            let _ = millrace_channels::build(alias, "c1", p);
        });
    }
    for &alias in millrace_sinks::TYPES {
        add(Kind::Sink, alias, seeds_of(alias), &|p| {
            let _ = millrace_sinks::build(alias, "k1", p, Arc::default());
        });
    }
    for &alias in millrace_interceptors::TYPES {
        add(Kind::Interceptor, alias, seeds_of(alias), &|p| {
            millrace_interceptors::check(alias, p);
        });
    }
    for &(alias, _) in SELECTORS {
        add(
            Kind::Selector,
            alias,
            vec![owned(&[("selector.type", alias)])],
            &|p| {
                let _ = crate::selector::build(&p.sub("selector."), &["c1".to_string()]);
            },
        );
    }
    for &(alias, _) in PROCESSORS {
        add(
            Kind::SinkProcessor,
            alias,
            vec![owned(&[("processor.type", alias)])],
            &|p| {
                crate::agent::check_processor(&sink_group(p));
            },
        );
    }
    out
}

fn owned(pairs: &[(&str, &str)]) -> Pairs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sink_group(p: &Props) -> SinkGroupConfig {
    SinkGroupConfig {
        name: "g1".into(),
        sinks: vec!["k1".into()],
        line: 0,
        props: p.clone(),
        processor: p.sub("processor."),
    }
}

/// What the configuration layer reads for every source, channel, sink and sink
/// group, from the smallest agent that has one of each.
fn common() -> Vec<Component> {
    let text = "a.sources = r\na.channels = c\na.sinks = k\na.sinkgroups = g\n\
                a.sources.r.type = seq\na.sources.r.channels = c\n\
                a.channels.c.type = memory\n\
                a.sinks.k.type = null\na.sinks.k.channel = c\n\
                a.sinkgroups.g.sinks = k\n";
    let (cfg, _) = millrace_config::from_text(Arc::from("reference"), text, "a");
    let Some(cfg) = cfg else {
        return Vec::new();
    };
    let section = |alias: &str, props: Option<&Props>| Component {
        kind: Kind::Common,
        alias: alias.to_string(),
        keys: props.map(Props::asked).unwrap_or_default(),
    };
    vec![
        section(
            "every source",
            cfg.sources.first().map(|s| &s.component.props),
        ),
        section("every channel", cfg.channels.first().map(|c| &c.props)),
        section("every sink", cfg.sinks.first().map(|s| &s.component.props)),
        section("every sink group", cfg.sinkgroups.first().map(|g| &g.props)),
    ]
}

/// Reads a component from each seed, then again with each boolean and choice it
/// read set to its other values, until no new key turns up. Keys come back in the
/// order the code reads them: a key found under a variation is placed after the key
/// read just before it.
fn explore(seeds: &[Pairs], read: Reader<'_>) -> Vec<AskedKey> {
    let mut known: Vec<AskedKey> = Vec::new();
    let mut tried: Vec<Pairs> = Vec::new();
    let mut queue: VecDeque<(Pairs, bool)> = seeds.iter().map(|s| (s.clone(), true)).collect();
    while let Some((set, seed)) = queue.pop_front() {
        let mut sorted = set.clone();
        sorted.sort();
        if tried.contains(&sorted) || tried.len() >= MAX_PROBES {
            continue;
        }
        tried.push(sorted);
        let pairs: Vec<(&str, &str)> = set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let props = Props::from_pairs(&pairs);
        read(&props);
        let asked = props.asked();
        let new = merge(&mut known, &asked);
        // A seed varies every key it read; a variation only the keys it found, so the
        // search stays small and still reaches branches inside branches.
        for a in asked.iter().filter(|a| seed || new.contains(&a.key)) {
            if a.prefix || set.iter().any(|(k, _)| *k == a.key) {
                continue;
            }
            for value in other_values(a) {
                let mut next = set.clone();
                next.push((a.key.clone(), value));
                queue.push_back((next, false));
            }
        }
    }
    known
}

/// Adds the keys of `asked` that `known` lacks; returns them.
fn merge(known: &mut Vec<AskedKey>, asked: &[AskedKey]) -> Vec<String> {
    let mut new = Vec::new();
    let mut at = 0;
    for a in asked {
        match known
            .iter()
            .position(|k| k.key == a.key && k.prefix == a.prefix)
        {
            Some(i) => at = i + 1,
            None => {
                known.insert(at, a.clone());
                new.push(a.key.clone());
                at += 1;
            }
        }
    }
    new
}

/// The values of a boolean or a choice other than its default.
fn other_values(a: &AskedKey) -> Vec<String> {
    if a.kind == "true or false" {
        let other = if a.default == "true" { "false" } else { "true" };
        return vec![other.to_string()];
    }
    match a.kind.strip_prefix("one of: ") {
        Some(list) => list
            .split(", ")
            .filter(|c| !c.eq_ignore_ascii_case(&a.default))
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    }
}

/// A `## chapter` of components.md and its `### sections`.
struct Chapter<'a> {
    title: &'a str,
    /// Everything in the chapter, sections included.
    text: String,
    sections: Vec<(&'a str, String)>,
}

fn chapters(md: &str) -> Vec<Chapter<'_>> {
    let mut out: Vec<Chapter<'_>> = Vec::new();
    for line in md.lines() {
        if let Some(t) = line.strip_prefix("## ") {
            out.push(Chapter {
                title: t.trim(),
                text: String::new(),
                sections: Vec::new(),
            });
            continue;
        }
        let Some(ch) = out.last_mut() else { continue };
        if let Some(t) = line.strip_prefix("### ") {
            ch.sections.push((t.trim(), String::new()));
        }
        ch.text.push_str(line);
        ch.text.push('\n');
        if let Some((_, s)) = ch.sections.last_mut() {
            s.push_str(line);
            s.push('\n');
        }
    }
    out
}

/// Inline code spans (`like this`) of a piece of markdown.
fn code_spans(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// The Flume class names a section gives on its `Class:` (or `Classes:`) lines.
fn classes(section: &str) -> Vec<&str> {
    section
        .split("\n\n")
        .filter(|para| para.contains("Class: ") || para.contains("Classes: "))
        .flat_map(code_spans)
        .filter(|s| s.contains('.'))
        .collect()
}

/// What components.md says about one component: its section and its Flume class.
struct Described {
    text: String,
    class: Option<String>,
}

fn describe(chapters: &[Chapter<'_>], c: &Component) -> Option<Described> {
    let chapter = chapters.iter().find(|ch| ch.title == c.kind.chapter())?;
    let own_class = |list: &[(&str, &str)]| {
        list.iter()
            .find(|(a, _)| *a == c.alias)
            .map(|(_, class)| class.to_string())
    };
    let Some(ty) = c.kind.registry() else {
        let class = match c.kind {
            Kind::Selector => own_class(SELECTORS),
            Kind::SinkProcessor => own_class(PROCESSORS),
            _ => None,
        };
        return Some(Described {
            text: chapter.text.clone(),
            class,
        });
    };
    chapter.sections.iter().find_map(|(title, text)| {
        let class = classes(text)
            .into_iter()
            .find(|cl| resolve(ty, cl) == Some(c.alias.as_str()))
            .map(str::to_string);
        let named = title
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(&c.alias));
        (named || class.is_some()).then(|| Described {
            text: text.clone(),
            class,
        })
    })
}

/// How a key is written in the docs: a prefix read as a whole ends in `*`.
fn shown(k: &AskedKey) -> String {
    if k.prefix {
        format!("{}*", k.key)
    } else {
        k.key.clone()
    }
}

fn mentioned(section: &str, k: &AskedKey) -> bool {
    if k.prefix {
        section.contains(&format!("`{}", k.key))
    } else {
        section.contains(&format!("`{}`", k.key))
    }
}

/// Splits a table row into cells; `\|` inside a cell is not a separator.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if chars.peek() == Some(&'|') => {
                if let Some(c) = out.last_mut() {
                    c.push_str("\\|");
                }
                chars.next();
            }
            '|' => out.push(String::new()),
            _ => {
                if let Some(c) = out.last_mut() {
                    c.push(ch);
                }
            }
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The meaning components.md gives a key: the last cell of the first table row whose
/// first cell names it. A prefix is named as `kafka.consumer.*` or, failing that, by
/// a name under it, as `headers.NAME.KEY` for `headers.NAME.`.
fn meaning(section: &str, k: &AskedKey) -> Option<String> {
    let rows: Vec<Vec<String>> = section
        .lines()
        .filter(|l| l.trim_start().starts_with('|') && !l.contains("---"))
        .map(cells)
        .filter(|c| c.len() >= 3)
        .collect();
    let row = |names: &dyn Fn(&str) -> bool| {
        rows.iter()
            .find(|c| code_spans(&c[0]).into_iter().any(names))
            .and_then(|c| c.last().cloned())
    };
    if k.prefix {
        row(&|name| name == shown(k)).or_else(|| row(&|name| name.starts_with(&k.key)))
    } else {
        row(&|name| name == k.key)
    }
}

fn default_text(k: &AskedKey) -> String {
    // A choice's default is always one of its values, even when that value is `none`.
    let value = k.kind.starts_with("one of: ");
    match k.default.as_str() {
        "" => "empty".to_string(),
        "none" | "required" | "unlimited" if !value => k.default.clone(),
        d => format!("`{}`", d.replace('|', "\\|")),
    }
}

/// Every property read by the code that components.md does not mention in the
/// component's section, and every component it has no section for; one line each.
pub fn undocumented(components: &[Component], components_md: &str) -> Vec<String> {
    let chapters = chapters(components_md);
    let mut out = Vec::new();
    for c in components {
        let Some(d) = describe(&chapters, c) else {
            if c.kind.registry().is_none() {
                out.push(format!(
                    "{} `{}`: docs/components.md has no `## {}` chapter with a table of these properties",
                    c.kind.chapter(),
                    c.alias,
                    c.kind.chapter()
                ));
                continue;
            }
            out.push(format!(
                "{} `{}`: no section in docs/components.md; add `### {}` under `## {}` with a `Class:` line naming its Flume class and a table of its properties",
                c.kind.chapter(),
                c.alias,
                c.alias,
                c.kind.chapter()
            ));
            continue;
        };
        if c.kind.registry().is_some() && d.class.is_none() {
            out.push(format!(
                "{} `{}`: its section in docs/components.md has no `Class:` line naming a Flume class that millrace resolves to `{}`",
                c.kind.chapter(),
                c.alias,
                c.alias
            ));
        }
        for k in c.keys.iter().filter(|k| !mentioned(&d.text, k)) {
            out.push(format!(
                "{} `{}`: property `{}` is read by the code but not mentioned in its section of docs/components.md",
                c.kind.chapter(),
                c.alias,
                shown(k)
            ));
        }
    }
    out
}

/// The text of `docs/reference.md`.
pub fn render(components: &[Component], components_md: &str) -> String {
    let chapters = chapters(components_md);
    let mut s = String::new();
    let _ = write!(
        s,
        "# Property reference\n\n\
         <!-- Generated from the components' configuration code and docs/components.md by\n\
         `{REGENERATE}`; edit those, not this file. -->\n\n\
         Every property each component reads, with the default its code uses, generated\n\
         from the code itself. The meanings are those of [components.md](components.md),\n\
         which also says how each component behaves. A default of `required` means the\n\
         component cannot start without the property; `none` means it does without. A\n\
         name ending in `*` stands for any key under that prefix; `NAME` is a name you\n\
         choose (a file group, a serializer).\n"
    );
    let mut chapter = None;
    for c in components {
        if chapter != Some(c.kind) {
            chapter = Some(c.kind);
            let _ = write!(s, "\n## {}\n", c.kind.chapter());
        }
        let described = describe(&chapters, c);
        let _ = write!(s, "\n### {}\n\n", c.alias);
        if let Some(class) = described.as_ref().and_then(|d| d.class.as_ref()) {
            let _ = writeln!(s, "Flume class: `{class}`\n");
        }
        if c.keys.is_empty() {
            s.push_str("No properties.\n");
            continue;
        }
        s.push_str("| property | default | values | meaning |\n|---|---|---|---|\n");
        for k in &c.keys {
            let meaning = described
                .as_ref()
                .and_then(|d| meaning(&d.text, k))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} |",
                shown(k),
                default_text(k),
                k.kind.replace('|', "\\|"),
                meaning
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &Component) -> Vec<String> {
        c.keys.iter().map(shown).collect()
    }

    fn find(all: &[Component], kind: Kind, alias: &str) -> Component {
        all.iter()
            .find(|c| c.kind == kind && c.alias == alias)
            .cloned()
            .unwrap_or_else(|| panic!("no {alias}"))
    }

    #[test]
    fn branches_behind_booleans_choices_and_seeds_are_found_in_code_order() {
        let all = components();
        let spool = keys(&find(&all, Kind::Source, "spooldir"));
        let at = |k: &str| spool.iter().position(|x| x == k).unwrap_or(usize::MAX);
        assert_eq!(at("fileHeaderKey"), at("fileHeader") + 1, "{spool:?}");
        assert!(spool.contains(&"deserializer.maxBlobLength".to_string()));
        let taildir = keys(&find(&all, Kind::Source, "TAILDIR"));
        assert!(
            taildir.contains(&"filegroups.NAME".to_string()),
            "{taildir:?}"
        );
        assert!(
            taildir.contains(&"headers.NAME.*".to_string()),
            "{taildir:?}"
        );
        let avro = keys(&find(&all, Kind::Source, "avro"));
        assert!(avro.contains(&"sslKey".to_string()), "{avro:?}");
        let failover = keys(&find(&all, Kind::SinkProcessor, "failover"));
        assert_eq!(
            failover,
            [
                "processor.type",
                "processor.priority.*",
                "processor.maxpenalty"
            ]
        );
    }

    #[test]
    fn selector_and_processor_class_names_read_the_same_keys() {
        for (kind, list) in [
            (Kind::Selector, SELECTORS),
            (Kind::SinkProcessor, PROCESSORS),
        ] {
            for (alias, class) in list {
                let key = if kind == Kind::Selector {
                    "selector.type"
                } else {
                    "processor.type"
                };
                let read = |ty: &str| {
                    let p = Props::from_pairs(&[(key, ty)]);
                    let ok = if kind == Kind::Selector {
                        crate::selector::build(&p.sub("selector."), &["c1".to_string()]).is_some()
                    } else {
                        crate::agent::check_processor(&sink_group(&p))
                    };
                    (ok, p.asked())
                };
                assert_eq!(read(alias), read(class), "{class}");
                assert!(read(class).0, "{class} is not accepted");
            }
        }
    }

    #[test]
    fn rows_split_on_unescaped_bars_only() {
        assert_eq!(
            cells("| `a` / `b` | x | allow\\|deny: y |"),
            ["`a` / `b`", "x", "allow\\|deny: y"]
        );
    }
}
