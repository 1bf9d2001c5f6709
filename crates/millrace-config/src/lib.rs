//! Flume's properties configuration, read the way Flume reads it, checked the way
//! Flume does not: every problem is reported at once with its `FILE:LINE`.
//!
//! Properties Flume ignores (an empty value, a key that names no agent) are warned
//! about and left out, so that millrace runs what Flume would.
//!
//! This crate knows the shape of an agent (sources, channels, sinks, sink groups,
//! interceptors, selectors) but no concrete component: `type` values and component
//! properties are handed on, as [`millrace_core::Props`], to whoever builds them.
//!
//! ```
//! use std::sync::Arc;
//! let text = "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
//!             a1.sources.r1.type = seq\na1.sources.r1.channels = c1\n\
//!             a1.channels.c1.type = memory\n\
//!             a1.sinks.k1.type = null\na1.sinks.k1.channel = c1\n";
//! let (cfg, diags) = millrace_config::from_text(Arc::from("flume.conf"), text, "a1");
//! assert!(diags.is_empty());
//! let cfg = cfg.unwrap();
//! assert_eq!(cfg.sources[0].channels, ["c1"]);
//! assert_eq!(cfg.sinks[0].component.type_name, "null");
//! ```

mod agent;
mod ignored;
pub mod properties;
pub mod subst;

pub use agent::{
    agent_config, AgentConfig, ComponentConfig, InterceptorConfig, Located, SinkConfig,
    SinkGroupConfig, SourceConfig,
};
pub use properties::{parse, Entry};

use millrace_core::Diagnostic;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The OS error is in the message and not given as the source, so that printing
    /// the chain of causes (`{:#}`) does not say it twice.
    #[error("cannot read configuration file {path}: {error}; check the path given with -f")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Reads one file as text; invalid UTF-8 is replaced (with a warning), never fatal.
pub fn read_text(path: &Path) -> Result<(Arc<str>, String, Vec<Diagnostic>), ConfigError> {
    let bytes = std::fs::read(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let file: Arc<str> = Arc::from(path.display().to_string());
    let (text, diags) = decode(&file, bytes);
    Ok((file, text, diags))
}

/// Text from bytes; invalid UTF-8 is replaced, with a warning at its line.
pub fn decode(file: &Arc<str>, bytes: Vec<u8>) -> (String, Vec<Diagnostic>) {
    match String::from_utf8(bytes) {
        Ok(t) => (t, Vec::new()),
        Err(e) => {
            let bytes = e.into_bytes();
            let valid = match std::str::from_utf8(&bytes) {
                Ok(_) => bytes.len(),
                Err(u) => u.valid_up_to(),
            };
            let line = bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
            let d = Diagnostic::warning(
                file,
                line,
                "the file is not valid UTF-8; bad bytes were replaced with U+FFFD; save the file as UTF-8",
            );
            (String::from_utf8_lossy(&bytes).into_owned(), vec![d])
        }
    }
}

/// Reads and parses one file.
pub fn read_file(path: &Path) -> Result<(Vec<Located>, Vec<Diagnostic>), ConfigError> {
    let (file, text, diags) = read_text(path)?;
    Ok(parse_located(file, &text, diags))
}

fn parse_located(
    file: Arc<str>,
    text: &str,
    mut diags: Vec<Diagnostic>,
) -> (Vec<Located>, Vec<Diagnostic>) {
    let (entries, issues) = parse(text);
    for i in issues {
        diags.push(Diagnostic::error(&file, i.line, i.message));
    }
    let located = entries
        .into_iter()
        .map(|entry| Located {
            file: file.clone(),
            entry,
        })
        .collect();
    (located, diags)
}

/// Merges files in order: a later key overrides an earlier one, with a warning that
/// names both places (the same for a key repeated within one file).
pub fn merge(files: Vec<Vec<Located>>) -> (Vec<Located>, Vec<Diagnostic>) {
    let merged = merge_tracked(files);
    let mut diags = merged.earlier;
    for (l, old) in merged.entries.iter().zip(&merged.replaced) {
        if let Some(old) = old {
            diags.push(override_warning(l, old));
        }
    }
    (merged.entries, diags)
}

/// Files merged in order, with what each surviving entry overrode.
struct Merged {
    entries: Vec<Located>,
    /// Per entry: where the value it overrode was set, if it overrode one.
    replaced: Vec<Option<(Arc<str>, usize)>>,
    /// Warnings for the overrides that were overridden again in turn.
    earlier: Vec<Diagnostic>,
}

fn merge_tracked(files: Vec<Vec<Located>>) -> Merged {
    let mut m = Merged {
        entries: Vec::new(),
        replaced: Vec::new(),
        earlier: Vec::new(),
    };
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for l in files.into_iter().flatten() {
        match index.get(&l.entry.key) {
            Some(&i) => {
                if let Some(old) = &m.replaced[i] {
                    m.earlier.push(override_warning(&m.entries[i], old));
                }
                let old = &m.entries[i];
                m.replaced[i] = Some((old.file.clone(), old.entry.line));
                m.entries[i] = l;
            }
            None => {
                index.insert(l.entry.key.clone(), m.entries.len());
                m.entries.push(l);
                m.replaced.push(None);
            }
        }
    }
    m
}

fn override_warning(l: &Located, (file, line): &(Arc<str>, usize)) -> Diagnostic {
    Diagnostic::warning(
        &l.file,
        l.entry.line,
        format!(
            "`{}` is set again here and overrides {file}:{line}; remove one of the two",
            l.entry.key
        ),
    )
}

/// Reads, merges and checks `paths` for `agent`. The configuration comes back whenever
/// the agent has any keys, holding the components that could be understood, so that
/// callers can go on checking them; it must not be started when any diagnostic is an
/// error.
pub fn load(
    paths: &[PathBuf],
    agent: &str,
) -> Result<(Option<AgentConfig>, Vec<Diagnostic>), ConfigError> {
    load_with(paths, agent, &BTreeMap::new())
}

/// [`load`], resolving `${sys:...}` and `${NAME}` against `sys` (the agent's `-D`
/// properties) as well as the environment and config filters.
pub fn load_with(
    paths: &[PathBuf],
    agent: &str,
    sys: &BTreeMap<String, String>,
) -> Result<(Option<AgentConfig>, Vec<Diagnostic>), ConfigError> {
    let mut texts = Vec::new();
    let mut diags = Vec::new();
    for p in paths {
        let (file, text, d) = read_text(p)?;
        texts.push((file, text));
        diags.extend(d);
    }
    let (cfg, d) = load_texts(&texts, agent, sys);
    diags.extend(d);
    millrace_core::diag::sort(&mut diags);
    Ok((cfg, diags))
}

/// Parses, merges (in order) and checks configuration texts, each named for its
/// diagnostics (a path or a URI).
pub fn load_texts(
    texts: &[(Arc<str>, String)],
    agent: &str,
    sys: &BTreeMap<String, String>,
) -> (Option<AgentConfig>, Vec<Diagnostic>) {
    let mut all = Vec::new();
    let mut diags = Vec::new();
    for (file, text) in texts {
        let (mut located, d) = parse_located(file.clone(), text, Vec::new());
        diags.extend(d);
        diags.extend(ignored::drop_agentless(&mut located));
        all.push(located);
    }
    let Merged {
        entries: mut merged,
        mut replaced,
        earlier,
    } = merge_tracked(all);
    diags.extend(earlier);
    // Flume drops an empty value after merging, so a later empty value removes an
    // earlier one; an override by an empty value is reported there, once.
    diags.extend(ignored::drop_empty(&mut merged, &mut replaced));
    for (l, old) in merged.iter().zip(&replaced) {
        if let Some(old) = old {
            diags.push(override_warning(l, old));
        }
    }
    diags.extend(subst::substitute(&mut merged, agent, sys));
    let file: Arc<str> = texts
        .first()
        .map(|(f, _)| f.clone())
        .unwrap_or_else(|| Arc::from("<none>"));
    let (cfg, d) = agent_config(&file, &merged, agent);
    diags.extend(d);
    millrace_core::diag::sort(&mut diags);
    (cfg, diags)
}

/// [`load`] for text in memory.
pub fn from_text(
    file: Arc<str>,
    text: &str,
    agent: &str,
) -> (Option<AgentConfig>, Vec<Diagnostic>) {
    load_texts(&[(file, text.to_string())], agent, &BTreeMap::new())
}

/// The agents the files configure, in order of first appearance. Only keys Flume
/// keeps count: an agent whose every key has an empty value is not configured.
pub fn agent_names(paths: &[PathBuf]) -> Result<Vec<String>, ConfigError> {
    let mut files = Vec::new();
    for p in paths {
        let (mut located, _) = read_file(p)?;
        ignored::drop_agentless(&mut located);
        files.push(located);
    }
    let Merged {
        mut entries,
        mut replaced,
        ..
    } = merge_tracked(files);
    ignored::drop_empty(&mut entries, &mut replaced);
    let mut names: Vec<String> = Vec::new();
    for l in entries {
        if let Some((agent, _)) = l.entry.key.split_once('.') {
            if !names.iter().any(|n| n == agent) {
                names.push(agent.to_string());
            }
        }
    }
    Ok(names)
}
