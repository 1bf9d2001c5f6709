//! The agent model and its structural checks.

use crate::properties::Entry;
use millrace_core::diag::did_you_mean;
use millrace_core::props::PropValue;
use millrace_core::{Diagnostic, Props};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// An entry and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: Arc<str>,
    pub entry: Entry,
}

/// One agent's components, in the order of their lists.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub name: String,
    pub sources: Vec<SourceConfig>,
    pub channels: Vec<ComponentConfig>,
    pub sinks: Vec<SinkConfig>,
    pub sinkgroups: Vec<SinkGroupConfig>,
}

#[derive(Debug, Clone)]
pub struct ComponentConfig {
    pub name: String,
    /// `type` as written; the node resolves aliases and class names.
    pub type_name: String,
    pub type_line: usize,
    /// Every key under `AGENT.KIND.NAME.`, prefix removed. Call `finish()` on it once
    /// the component is built to collect its diagnostics and unknown keys.
    pub props: Props,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub component: ComponentConfig,
    pub channels: Vec<String>,
    /// The `selector.` view of the source's properties.
    pub selector: Props,
    pub interceptors: Vec<InterceptorConfig>,
}

#[derive(Debug, Clone)]
pub struct InterceptorConfig {
    pub name: String,
    pub type_name: String,
    pub line: usize,
    /// The `interceptors.NAME.` view of the source's properties.
    pub props: Props,
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub component: ComponentConfig,
    pub channel: String,
}

#[derive(Debug, Clone)]
pub struct SinkGroupConfig {
    pub name: String,
    pub sinks: Vec<String>,
    pub line: usize,
    /// Every key under `AGENT.sinkgroups.NAME.`; `finish()` it after building.
    pub props: Props,
    /// The `processor.` view of `props`.
    pub processor: Props,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Source,
    Channel,
    Sink,
    SinkGroup,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Source, Kind::Channel, Kind::Sink, Kind::SinkGroup];

    fn list_key(self) -> &'static str {
        match self {
            Kind::Source => "sources",
            Kind::Channel => "channels",
            Kind::Sink => "sinks",
            Kind::SinkGroup => "sinkgroups",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Channel => "channel",
            Kind::Sink => "sink",
            Kind::SinkGroup => "sink group",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

struct List<'a> {
    names: Vec<String>,
    at: &'a Located,
}

/// Everything configured for one component, before it is checked.
#[derive(Default)]
struct Raw<'a> {
    keys: BTreeMap<String, &'a Located>,
    first: Option<&'a Located>,
}

fn split_list(v: &str) -> Vec<String> {
    v.split_whitespace().map(str::to_string).collect()
}

/// Builds the named agent's configuration from merged entries, checking its structure.
/// `file` is used for problems about the file as a whole (line 0, printed without a
/// line).
///
/// A source or sink whose channels are wrong (undefined, missing, or several for a
/// sink) is an error here but is still returned, so that the node builds it and
/// reports its own problems too. It cannot run: an undefined channel keeps its name as
/// written, a source with no channels has an empty list, and a sink with none or
/// several has the empty name; the node finds no channel for either. An interceptor
/// with no `type` is kept with an empty type, which the node skips, refusing the source.
pub fn agent_config(
    file: &Arc<str>,
    entries: &[Located],
    agent: &str,
) -> (Option<AgentConfig>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let prefix = format!("{agent}.");
    let mine: Vec<&Located> = entries
        .iter()
        .filter(|l| l.entry.key.starts_with(&prefix))
        .collect();
    if mine.is_empty() {
        let mut others: Vec<&str> = Vec::new();
        for l in entries {
            if let Some((a, _)) = l.entry.key.split_once('.') {
                if !others.contains(&a) {
                    others.push(a);
                }
            }
        }
        let msg = if others.is_empty() {
            format!("no configuration for agent `{agent}`: the file defines no agent; add keys such as `{agent}.sources = r1`")
        } else {
            format!(
                "no configuration for agent `{agent}`; this file defines agents: {}; pass -n with one of them",
                others.join(", ")
            )
        };
        diags.push(Diagnostic::error(file, 0, msg));
        return (None, diags);
    }

    let mut lists: [Option<List>; 4] = [None, None, None, None];
    let mut raws: [BTreeMap<String, Raw>; 4] = Default::default();
    for l in mine {
        let rest = &l.entry.key[prefix.len()..];
        // Config filters were applied by the substitution pass.
        if rest == "configfilters" || rest.starts_with("configfilters.") {
            continue;
        }
        let kind = Kind::ALL
            .into_iter()
            .find(|k| rest == k.list_key() || rest.starts_with(&format!("{}.", k.list_key())));
        let Some(kind) = kind else {
            let hint = match did_you_mean(
                rest.split('.').next().unwrap_or(rest),
                Kind::ALL.iter().map(|k| k.list_key()),
            ) {
                Some(s) => format!("did you mean `{agent}.{s}`?"),
                None => format!(
                    "keys under `{agent}.` start with sources, channels, sinks or sinkgroups"
                ),
            };
            diags.push(Diagnostic::warning(
                &l.file,
                l.entry.line,
                format!("unknown key `{}` is ignored; {hint}", l.entry.key),
            ));
            continue;
        };
        if rest == kind.list_key() {
            lists[kind.index()] = Some(List {
                names: split_list(&l.entry.value),
                at: l,
            });
            continue;
        }
        let sub = &rest[kind.list_key().len() + 1..];
        match sub.split_once('.') {
            Some((name, key)) if !name.is_empty() && !key.is_empty() => {
                let raw = raws[kind.index()].entry(name.to_string()).or_default();
                if raw.first.is_none() {
                    raw.first = Some(l);
                }
                raw.keys.insert(key.to_string(), l);
            }
            _ => diags.push(Diagnostic::warning(
                &l.file,
                l.entry.line,
                format!(
                    "key `{}` names no property and is ignored; write `{agent}.{}.NAME.PROPERTY = value`",
                    l.entry.key,
                    kind.list_key()
                ),
            )),
        }
    }

    // Which components exist: listed and configured.
    let mut defined: [Vec<String>; 4] = Default::default();
    for kind in Kind::ALL {
        let raw = &raws[kind.index()];
        let mut seen = HashSet::new();
        if let Some(list) = &lists[kind.index()] {
            for name in &list.names {
                if !seen.insert(name.clone()) {
                    diags.push(Diagnostic::warning(
                        &list.at.file,
                        list.at.entry.line,
                        format!(
                            "{} `{name}` is listed twice in `{}`; list it once",
                            kind.word(),
                            list.at.entry.key
                        ),
                    ));
                    continue;
                }
                if raw.contains_key(name) {
                    defined[kind.index()].push(name.clone());
                } else {
                    let hint = match did_you_mean(name, raw.keys().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`, which is configured? "),
                        None => String::new(),
                    };
                    diags.push(Diagnostic::error(
                        &list.at.file,
                        list.at.entry.line,
                        format!(
                            "{} `{name}` is listed in `{}` but has no properties; {hint}add `{agent}.{}.{name}.type = ...` or remove it from the list",
                            kind.word(),
                            list.at.entry.key,
                            kind.list_key()
                        ),
                    ));
                }
            }
        }
        for (name, r) in raw {
            if !seen.contains(name) {
                let first = r.first.expect("a raw component has at least one key");
                diags.push(Diagnostic::warning(
                    &first.file,
                    first.entry.line,
                    format!(
                        "{} `{name}` is configured but not listed in `{agent}.{}`, so it is ignored; add it to that list to use it",
                        kind.word(),
                        kind.list_key()
                    ),
                ));
            }
        }
    }

    let props_of = |kind: Kind, name: &str| -> Props {
        let r = &raws[kind.index()][name];
        let anchor = r.keys.get("type").copied().or(r.first).expect("has keys");
        let entries = r
            .keys
            .iter()
            .map(|(k, l)| {
                (
                    k.clone(),
                    PropValue {
                        value: l.entry.value.clone(),
                        line: l.entry.line,
                    },
                )
            })
            .collect();
        Props::new(
            anchor.file.clone(),
            format!("{agent}.{}.{name}.", kind.list_key()),
            anchor.entry.line,
            entries,
        )
    };

    let component =
        |kind: Kind, name: &str, diags: &mut Vec<Diagnostic>| -> Option<ComponentConfig> {
            let props = props_of(kind, name);
            let type_name = props.optional("type", "required").unwrap_or_default();
            if type_name.is_empty() {
                diags.push(Diagnostic::error(
                    props.file(),
                    props.line(),
                    format!(
                        "{} `{name}` has no `type`; add `{agent}.{}.{name}.type = ...`",
                        kind.word(),
                        kind.list_key()
                    ),
                ));
                return None;
            }
            Some(ComponentConfig {
                name: name.to_string(),
                type_line: props.line_of("type"),
                type_name,
                props,
            })
        };

    let channel_names = &defined[Kind::Channel.index()];
    let check_channel = |props: &Props, key: &str, name: &str, diags: &mut Vec<Diagnostic>| {
        if channel_names.iter().any(|c| c == name) {
            return;
        }
        let hint = match did_you_mean(name, channel_names.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "defined channels: {}",
                if channel_names.is_empty() {
                    "none".to_string()
                } else {
                    channel_names.join(", ")
                }
            ),
        };
        diags.push(Diagnostic::error(
            props.file(),
            props.line_of(key),
            format!(
                "`{}` names channel `{name}`, which is not defined; {hint}",
                props.full_key(key)
            ),
        ));
    };

    let mut channels = Vec::new();
    for name in &defined[Kind::Channel.index()] {
        if let Some(c) = component(Kind::Channel, name, &mut diags) {
            channels.push(c);
        }
    }

    let mut sources = Vec::new();
    for name in &defined[Kind::Source.index()] {
        let Some(c) = component(Kind::Source, name, &mut diags) else {
            continue;
        };
        let p = c.props.clone();
        let chans = p
            .optional("channels", "required")
            .map(|v| split_list(&v))
            .unwrap_or_default();
        // A source with no channels, or an undefined one, is kept: see `agent_config`'s
        // doc.
        if chans.is_empty() {
            diags.push(Diagnostic::error(
                p.file(),
                p.line_of("channels"),
                format!(
                    "source `{name}` has no channels; add `{}` = CHANNEL (space separated for several)",
                    p.full_key("channels")
                ),
            ));
        }
        for ch in &chans {
            check_channel(&p, "channels", ch, &mut diags);
        }
        let selector = p.sub("selector.");
        let listed = p
            .get("interceptors")
            .map(|v| split_list(&v))
            .unwrap_or_default();
        let mut interceptors = Vec::new();
        for i in &listed {
            let ip = p.sub(&format!("interceptors.{i}."));
            let type_name = ip.get("type").unwrap_or_default();
            if type_name.is_empty() {
                diags.push(Diagnostic::error(
                    p.file(),
                    p.line_of("interceptors"),
                    format!(
                        "interceptor `{i}` of source `{name}` has no `type`; add `{}type = ...`",
                        p.full_key(&format!("interceptors.{i}."))
                    ),
                ));
                // Kept with no type, as a source with no channels is: the node skips
                // it, and still checks the source. Its keys are not also unknown ones.
                ip.with_prefix("");
            }
            interceptors.push(InterceptorConfig {
                name: i.clone(),
                line: ip.line_of("type"),
                type_name,
                props: ip,
            });
        }
        // Keys of interceptors that are not listed are ignored, as Flume ignores them;
        // only theirs are marked as read, so that a listed interceptor's unknown keys
        // are still reported by the node.
        let mut unlisted: Vec<String> = Vec::new();
        for (k, _) in p.sub("interceptors.").snapshot() {
            let iname = k.split('.').next().unwrap_or_default().to_string();
            if !listed.contains(&iname) && !unlisted.contains(&iname) {
                let line = p
                    .with_prefix(&format!("interceptors.{iname}."))
                    .first()
                    .map_or(p.line_of("interceptors"), |(_, v)| v.line);
                diags.push(Diagnostic::warning(
                    p.file(),
                    line,
                    format!(
                        "interceptor `{iname}` is configured but not listed in `{}`, so it is ignored; add it to that list to use it",
                        p.full_key("interceptors")
                    ),
                ));
                unlisted.push(iname);
            }
        }
        sources.push(SourceConfig {
            component: c,
            channels: chans,
            selector,
            interceptors,
        });
    }

    let mut sinks = Vec::new();
    for name in &defined[Kind::Sink.index()] {
        let Some(c) = component(Kind::Sink, name, &mut diags) else {
            continue;
        };
        let p = c.props.clone();
        let chans = p
            .optional("channel", "required")
            .map(|v| split_list(&v))
            .unwrap_or_default();
        // Kept whatever its channels: see `agent_config`'s doc.
        let channel = match chans.as_slice() {
            [] => {
                diags.push(Diagnostic::error(
                    p.file(),
                    p.line_of("channel"),
                    format!(
                        "sink `{name}` has no channel; add `{}` = CHANNEL",
                        p.full_key("channel")
                    ),
                ));
                String::new()
            }
            [one] => {
                check_channel(&p, "channel", one, &mut diags);
                one.clone()
            }
            many => {
                diags.push(Diagnostic::error(
                    p.file(),
                    p.line_of("channel"),
                    format!(
                        "sink `{name}` names {} channels but a sink reads exactly one; keep one in `{}` (use a source selector to fan out)",
                        many.len(),
                        p.full_key("channel")
                    ),
                ));
                String::new()
            }
        };
        sinks.push(SinkConfig {
            component: c,
            channel,
        });
    }

    let mut sinkgroups = Vec::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    let sink_names = &defined[Kind::Sink.index()];
    for name in &defined[Kind::SinkGroup.index()] {
        let props = props_of(Kind::SinkGroup, name);
        let members = props
            .optional("sinks", "required")
            .map(|v| split_list(&v))
            .unwrap_or_default();
        let line = props.line_of("sinks");
        let mut ok = true;
        if members.is_empty() {
            diags.push(Diagnostic::error(
                props.file(),
                line,
                format!(
                    "sink group `{name}` has no sinks; add `{}` = SINK SINK",
                    props.full_key("sinks")
                ),
            ));
            ok = false;
        }
        for s in &members {
            if !sink_names.contains(s) {
                let hint = match did_you_mean(s, sink_names.iter().map(String::as_str)) {
                    Some(d) => format!("did you mean `{d}`?"),
                    None => "list it in the agent's `sinks` and configure it".to_string(),
                };
                diags.push(Diagnostic::error(
                    props.file(),
                    line,
                    format!("sink group `{name}` names sink `{s}`, which is not defined; {hint}"),
                ));
                ok = false;
            } else if let Some(other) = owner.get(s) {
                diags.push(Diagnostic::error(
                    props.file(),
                    line,
                    format!("sink `{s}` is already in sink group `{other}`; a sink may belong to one group only"),
                ));
                ok = false;
            } else {
                owner.insert(s.clone(), name.clone());
            }
        }
        let processor = props.sub("processor.");
        if ok {
            sinkgroups.push(SinkGroupConfig {
                name: name.clone(),
                sinks: members,
                line,
                props,
                processor,
            });
        }
    }

    let anchor = |kind: Kind| -> (Arc<str>, usize) {
        lists[kind.index()]
            .as_ref()
            .map(|l| (l.at.file.clone(), l.at.entry.line))
            .unwrap_or_else(|| (file.clone(), 0))
    };
    if defined[Kind::Channel.index()].is_empty() {
        let (f, line) = anchor(Kind::Channel);
        diags.push(Diagnostic::error(
            &f,
            line,
            format!("agent `{agent}` has no channels; add `{agent}.channels = c1` and configure `{agent}.channels.c1.type`"),
        ));
    }
    if defined[Kind::Source.index()].is_empty() && defined[Kind::Sink.index()].is_empty() {
        let (f, line) = anchor(Kind::Source);
        diags.push(Diagnostic::error(
            &f,
            line,
            format!("agent `{agent}` has neither sources nor sinks; add `{agent}.sources` and `{agent}.sinks`"),
        ));
    }

    (
        Some(AgentConfig {
            name: agent.to_string(),
            sources,
            channels,
            sinks,
            sinkgroups,
        }),
        diags,
    )
}

#[cfg(test)]
mod tests;
