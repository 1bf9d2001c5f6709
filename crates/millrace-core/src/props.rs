//! Typed access to one component's properties, collecting every problem as a
//! [`Diagnostic`] instead of stopping at the first.
//!
//! A component reads its settings through the getters here; each getter returns the
//! default on a bad value and records an error that names the full key, its line and
//! what to write instead. Keys that no getter asked for are reported by
//! [`Props::finish`] as unknown, with a did-you-mean hint.
//!
//! Each getter also records what it knows about its key (its default and the values
//! it takes); [`Props::asked`] lists them. The property reference in `docs/` is made
//! from that record, by building every component from empty properties.

use crate::diag::{did_you_mean, Diagnostic};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropValue {
    pub value: String,
    pub line: usize,
}

/// A key (or, with `prefix`, every key under a prefix) that a getter read, with what
/// the getter knew about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskedKey {
    /// Relative to the root view, e.g. `capacity`, `selector.header`, or for a prefix
    /// `kafka.producer.`.
    pub key: String,
    /// True when every key under `key` was read as a whole ([`Props::with_prefix`]).
    pub prefix: bool,
    /// The default as the getter knows it: a value (`1000`, `true`, empty), `none`
    /// (the component does without it), `required`, or a description such as
    /// `unlimited` or `~/.flume/taildir_position.json`.
    pub default: String,
    /// The values it takes, e.g. `a whole number from 1 to 1000`,
    /// `one of: never, immediate`, `true or false`, `milliseconds`; empty for free text.
    pub kind: String,
}

#[derive(Debug, Default)]
struct Shared {
    /// Every key a getter read, with the order of its first read and what the first
    /// getter to read it knew.
    asked: BTreeMap<String, (usize, AskedKey)>,
    asked_prefixes: BTreeMap<String, usize>,
    reads: usize,
    diags: Vec<Diagnostic>,
}

impl Shared {
    /// Records a read of `key`. The first getter to read a key sets its default: a
    /// getter that wraps another (`millis` around `u64_in`) records before it calls
    /// the inner one. A getter that knows the kind refines an entry that had none, as
    /// when `get` checks for presence and `positive` then reads the number.
    fn note(&mut self, key: String, default: &str, kind: &str) {
        let seq = self.reads;
        match self.asked.entry(key) {
            Entry::Occupied(mut e) => {
                let known = &mut e.get_mut().1;
                if known.kind.is_empty() && !kind.is_empty() {
                    known.kind = kind.to_string();
                }
            }
            Entry::Vacant(e) => {
                let key = e.key().clone();
                e.insert((
                    seq,
                    AskedKey {
                        key,
                        prefix: false,
                        default: default.to_string(),
                        kind: kind.to_string(),
                    },
                ));
                self.reads += 1;
            }
        }
    }
}

/// The properties of one component (keys relative to the component, e.g. `capacity`
/// for `a1.channels.c1.capacity`).
#[derive(Debug, Clone)]
pub struct Props {
    file: Arc<str>,
    /// Full key prefix used in messages, e.g. `a1.channels.c1.`.
    display_prefix: String,
    /// Prefix of this view relative to the root view (empty for the root).
    rel_prefix: String,
    line: usize,
    entries: Arc<BTreeMap<String, PropValue>>,
    shared: Arc<Mutex<Shared>>,
}

impl Props {
    /// `display_prefix` is what precedes keys in messages (`a1.sources.r1.`); `line` is
    /// where problems about the component as a whole are reported.
    pub fn new(
        file: Arc<str>,
        display_prefix: impl Into<String>,
        line: usize,
        entries: BTreeMap<String, PropValue>,
    ) -> Self {
        Props {
            file,
            display_prefix: display_prefix.into(),
            rel_prefix: String::new(),
            line,
            entries: Arc::new(entries),
            shared: Arc::default(),
        }
    }

    /// Properties from `(key, value)` pairs, for tests and programmatic use.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let entries = pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    PropValue {
                        value: v.to_string(),
                        line: 0,
                    },
                )
            })
            .collect();
        Props::new("<inline>".into(), "", 0, entries)
    }

    pub fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// The line problems about the whole component are reported at.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The full name of a key as the user wrote it, e.g. `a1.channels.c1.capacity`.
    pub fn full_key(&self, key: &str) -> String {
        format!("{}{}{}", self.display_prefix, self.rel_prefix, key)
    }

    fn rel(&self, key: &str) -> String {
        format!("{}{}", self.rel_prefix, key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A poisoned lock only means another builder panicked; the sets are still valid.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, key: &str) -> Option<&PropValue> {
        self.note(key, "none", "");
        self.entries.get(&self.rel(key))
    }

    /// Records that `key` is read, with its default and kind (see [`AskedKey`]).
    fn note(&self, key: &str, default: &str, kind: &str) {
        self.lock().note(self.rel(key), default, kind);
    }

    /// Every key the getters read so far, through this view or any other view of the
    /// same properties, in the order first read. Building a component from empty
    /// properties and listing this gives the component's properties and defaults.
    pub fn asked(&self) -> Vec<AskedKey> {
        let shared = self.lock();
        let mut out: Vec<(usize, AskedKey)> = shared.asked.values().cloned().collect();
        out.extend(shared.asked_prefixes.iter().map(|(p, &seq)| {
            (
                seq,
                AskedKey {
                    key: p.clone(),
                    prefix: true,
                    default: "none".into(),
                    kind: String::new(),
                },
            )
        }));
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, k)| k).collect()
    }

    /// A view of the keys under `prefix` (e.g. `selector.`), with the prefix removed.
    /// Keys read through the view count as known in this one.
    pub fn sub(&self, prefix: &str) -> Props {
        let mut p = self.clone();
        p.rel_prefix = self.rel(prefix);
        p
    }

    /// Every `(key, value)` in this view, keys relative to it, in key order. Two
    /// components with equal snapshots are configured identically.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        self.entries
            .range(self.rel_prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&self.rel_prefix))
            .map(|(k, v)| (k[self.rel_prefix.len()..].to_string(), v.value.clone()))
            .collect()
    }

    /// True when the key is present.
    pub fn has(&self, key: &str) -> bool {
        self.entries.contains_key(&self.rel(key))
    }

    /// The line of a key, or the component's line when the key is absent.
    pub fn line_of(&self, key: &str) -> usize {
        self.entries
            .get(&self.rel(key))
            .map(|v| v.line)
            .unwrap_or(self.line)
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.entry(key).map(|v| v.value.clone())
    }

    /// [`Props::get`] for a key whose absence the component fills in itself, from
    /// something known only at run time (the home directory) or with no value at all
    /// (no limit). `when_absent` says what happens then, e.g.
    /// `~/.flume/file-channel/checkpoint` or `unlimited`; the reference shows it as the
    /// default.
    pub fn optional(&self, key: &str, when_absent: &str) -> Option<String> {
        self.note(key, when_absent, "");
        self.get(key)
    }

    pub fn string(&self, key: &str, default: &str) -> String {
        self.note(key, default, "");
        self.get(key).unwrap_or_else(|| default.to_string())
    }

    /// A property the component cannot work without; `hint` says what to set.
    pub fn required(&self, key: &str, hint: &str) -> Option<String> {
        self.note(key, "required", "");
        match self.get(key) {
            Some(v) if !v.is_empty() => Some(v),
            _ => {
                self.error(format!(
                    "missing required property `{}`; {hint}",
                    self.full_key(key)
                ));
                None
            }
        }
    }

    /// Parses a value with `FromStr`; `what` names the expected form for the message
    /// ("a whole number", "a number of milliseconds").
    pub fn parse<T: FromStr + Display>(&self, key: &str, default: T, what: &str) -> T {
        self.note(key, &default.to_string(), what);
        let Some(v) = self.entry(key).cloned() else {
            return default;
        };
        match v.value.parse::<T>() {
            Ok(t) => t,
            Err(_) => {
                self.push(Diagnostic::error(
                    &self.file,
                    v.line,
                    format!(
                        "`{}` = `{}` is not valid; use {what}",
                        self.full_key(key),
                        v.value
                    ),
                ));
                default
            }
        }
    }

    /// A whole number within `min..=max`.
    pub fn u64_in(&self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        self.note(key, &number_text(default), &range_text(min, max));
        let Some(v) = self.entry(key).cloned() else {
            return default;
        };
        match v.value.parse::<i128>() {
            Ok(n) if n >= min as i128 && n <= max as i128 => n as u64,
            Ok(n) => {
                self.push(Diagnostic::error(
                    &self.file,
                    v.line,
                    format!(
                        "`{}` = {n} is out of range; use {}",
                        self.full_key(key),
                        range_text(min, max)
                    ),
                ));
                default
            }
            Err(_) => {
                self.push(Diagnostic::error(
                    &self.file,
                    v.line,
                    format!(
                        "`{}` = `{}` is not a number; use {}",
                        self.full_key(key),
                        v.value,
                        range_text(min, max)
                    ),
                ));
                default
            }
        }
    }

    /// A positive whole number (1 and up).
    pub fn positive(&self, key: &str, default: u64) -> u64 {
        self.u64_in(key, default, 1, i64::MAX as u64)
    }

    /// A port the component cannot work without: present, and from 0 to 65535.
    pub fn port(&self, key: &str, hint: &str) -> Option<u16> {
        self.note(key, "required", "a port, 0 to 65535");
        let Some(v) = self.get(key) else {
            self.required(key, hint);
            return None;
        };
        match v.parse::<u16>() {
            Ok(port) => Some(port),
            Err(_) => {
                self.error_at(
                    key,
                    format!(
                        "`{}` = `{v}` is not a port; use a whole number from 0 to 65535",
                        self.full_key(key)
                    ),
                );
                None
            }
        }
    }

    /// A whole number of milliseconds.
    pub fn millis(&self, key: &str, default_ms: u64) -> Duration {
        self.note(key, &number_text(default_ms), "milliseconds");
        Duration::from_millis(self.u64_in(key, default_ms, 0, i64::MAX as u64))
    }

    /// A whole number of seconds.
    pub fn seconds(&self, key: &str, default_s: u64) -> Duration {
        self.note(key, &number_text(default_s), "seconds");
        Duration::from_secs(self.u64_in(key, default_s, 0, u32::MAX as u64))
    }

    /// `true` or `false`, any case. Flume silently reads anything else as false; here
    /// it is an error, because a typo such as `ture` would otherwise turn a feature off.
    pub fn bool(&self, key: &str, default: bool) -> bool {
        self.note(key, if default { "true" } else { "false" }, "true or false");
        let Some(v) = self.entry(key).cloned() else {
            return default;
        };
        match v.value.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                self.push(Diagnostic::error(
                    &self.file,
                    v.line,
                    format!(
                        "`{}` = `{}` is not a boolean; use true or false",
                        self.full_key(key),
                        v.value
                    ),
                ));
                default
            }
        }
    }

    /// One of `choices` (case-insensitive); returns the spelling from `choices`.
    pub fn choice(
        &self,
        key: &str,
        default: &'static str,
        choices: &[&'static str],
    ) -> &'static str {
        self.note(key, default, &format!("one of: {}", choices.join(", ")));
        let Some(v) = self.entry(key).cloned() else {
            return default;
        };
        if let Some(c) = choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(v.value.trim()))
        {
            return c;
        }
        self.push(Diagnostic::error(
            &self.file,
            v.line,
            format!(
                "`{}` = `{}` is not supported; use one of: {}",
                self.full_key(key),
                v.value,
                choices.join(", ")
            ),
        ));
        default
    }

    /// A regular expression; a bad pattern is an error naming the key.
    pub fn regex(&self, key: &str) -> Option<regex::Regex> {
        self.note(key, "none", "a regular expression");
        let v = self.entry(key).cloned()?;
        match regex::Regex::new(&v.value) {
            Ok(r) => Some(r),
            Err(e) => {
                self.push(Diagnostic::error(
                    &self.file,
                    v.line,
                    format!(
                        "`{}` is not a valid regular expression ({}); fix the pattern",
                        self.full_key(key),
                        first_line(&e.to_string())
                    ),
                ));
                None
            }
        }
    }

    /// Every key under `prefix`, with the prefix removed, in key order. All of them
    /// count as known.
    pub fn with_prefix(&self, prefix: &str) -> Vec<(String, PropValue)> {
        let rel = self.rel(prefix);
        {
            let mut shared = self.lock();
            if !shared.asked_prefixes.contains_key(&rel) {
                let seq = shared.reads;
                shared.asked_prefixes.insert(rel.clone(), seq);
                shared.reads += 1;
            }
        }
        self.entries
            .range(rel.clone()..)
            .take_while(|(k, _)| k.starts_with(&rel))
            .map(|(k, v)| (k[rel.len()..].to_string(), v.clone()))
            .collect()
    }

    /// Records an error about the component as a whole.
    pub fn error(&self, message: impl Into<String>) {
        self.push(Diagnostic::error(&self.file, self.line, message));
    }

    /// Records an error at the line of `key`.
    pub fn error_at(&self, key: &str, message: impl Into<String>) {
        self.push(Diagnostic::error(&self.file, self.line_of(key), message));
    }

    /// Records a warning at the line of `key`.
    pub fn warn_at(&self, key: &str, message: impl Into<String>) {
        self.push(Diagnostic::warning(&self.file, self.line_of(key), message));
    }

    /// Records an error at each key under `prefix`: "`KEY`: `why`". For settings a
    /// Flume file may hold that are not implemented and must not be dropped quietly.
    pub fn refuse_prefix(&self, prefix: &str, why: &str) {
        for (k, v) in self.with_prefix(prefix) {
            let key = self.full_key(&format!("{prefix}{k}"));
            self.push(Diagnostic::error(
                &self.file,
                v.line,
                format!("`{key}`: {why}"),
            ));
        }
    }

    pub fn push(&self, d: Diagnostic) {
        self.lock().diags.push(d);
    }

    /// True once any error was recorded.
    pub fn has_errors(&self) -> bool {
        self.lock().diags.iter().any(Diagnostic::is_error)
    }

    /// Everything recorded so far, plus a warning for each key that nothing asked for.
    /// Call on the root view once the component has read all it needs.
    pub fn finish(&self) -> Vec<Diagnostic> {
        let shared = self.lock();
        let mut out = shared.diags.clone();
        for (k, v) in self.entries.iter() {
            if shared.asked.contains_key(k)
                || shared.asked_prefixes.keys().any(|p| k.starts_with(p))
            {
                continue;
            }
            let hint = match did_you_mean(k, shared.asked.keys().map(String::as_str)) {
                Some(s) => format!("did you mean `{}{s}`?", self.display_prefix),
                None => "remove it or check the component reference in docs/".to_string(),
            };
            out.push(Diagnostic::warning(
                &self.file,
                v.line,
                format!(
                    "unknown property `{}{k}` is ignored; {hint}",
                    self.display_prefix
                ),
            ));
        }
        out
    }
}

fn range_text(min: u64, max: u64) -> String {
    if max >= i64::MAX as u64 {
        format!("a whole number of at least {min}")
    } else {
        format!("a whole number from {min} to {max}")
    }
}

/// A default as the reference shows it; the largest values stand for "no limit".
fn number_text(n: u64) -> String {
    if n >= i64::MAX as u64 {
        "unlimited".to_string()
    } else {
        n.to_string()
    }
}

fn first_line(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str, usize)]) -> Props {
        let entries = pairs
            .iter()
            .map(|(k, v, l)| {
                (
                    k.to_string(),
                    PropValue {
                        value: v.to_string(),
                        line: *l,
                    },
                )
            })
            .collect();
        Props::new("f.conf".into(), "a1.channels.c1.", 3, entries)
    }

    #[test]
    fn bad_number_names_key_and_line() {
        let p = props(&[("capacity", "lots", 9)]);
        assert_eq!(p.u64_in("capacity", 100, 1, 1000), 100);
        let d = p.finish();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, 9);
        assert!(d[0].message.contains("a1.channels.c1.capacity"), "{}", d[0]);
        assert!(d[0].message.contains("not a number"));
    }

    #[test]
    fn out_of_range_is_an_error() {
        let p = props(&[("capacity", "0", 4)]);
        p.u64_in("capacity", 100, 1, 1000);
        assert!(p.finish()[0].message.contains("out of range"));
    }

    #[test]
    fn unknown_key_warns_with_suggestion() {
        let p = props(&[("capacty", "10", 5)]);
        p.u64_in("capacity", 100, 1, 1000);
        let d = p.finish();
        assert_eq!(d.len(), 1);
        assert!(!d[0].is_error());
        assert!(
            d[0].message
                .contains("did you mean `a1.channels.c1.capacity`"),
            "{}",
            d[0]
        );
    }

    #[test]
    fn sub_views_mark_keys_known() {
        let p = props(&[
            ("selector.type", "replicating", 5),
            ("selector.optional", "c2", 6),
        ]);
        let s = p.sub("selector.");
        assert_eq!(s.get("type").as_deref(), Some("replicating"));
        assert_eq!(s.get("optional").as_deref(), Some("c2"));
        assert!(p.finish().is_empty());
    }

    #[test]
    fn prefix_listing_strips_prefix() {
        let p = props(&[
            ("mapping.CZ", "c1", 5),
            ("mapping.US", "c1 c2", 6),
            ("other", "x", 7),
        ]);
        let m = p.with_prefix("mapping.");
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].0, "US");
        assert_eq!(p.finish().len(), 1);
    }

    #[test]
    fn ports_are_required_and_checked() {
        let p = props(&[("port", "70000", 4)]);
        assert_eq!(p.port("port", "set it"), None);
        assert_eq!(p.port("other", "set the port"), None);
        let d = p.finish();
        assert_eq!(d.len(), 2);
        assert!(
            d[0].message.contains("not a port") && d[0].line == 4,
            "{}",
            d[0]
        );
        assert!(
            d[1].message
                .contains("missing required property `a1.channels.c1.other`"),
            "{}",
            d[1]
        );
        assert_eq!(props(&[("port", "44444", 1)]).port("port", ""), Some(44444));
    }

    #[test]
    fn booleans_reject_typos() {
        let p = props(&[("restart", "ture", 2)]);
        assert!(!p.bool("restart", false));
        assert!(p.has_errors());
    }

    #[test]
    fn getters_record_defaults_and_kinds_in_read_order() {
        let p = props(&[]);
        p.positive("capacity", 100);
        p.millis("keep-alive", 3000);
        p.sub("selector.").choice("type", "a", &["a", "b"]);
        p.required("command", "set it");
        p.u64_in("total", u64::MAX, 0, u64::MAX);
        p.with_prefix("kafka.producer.");
        p.get("shell");
        let asked: Vec<(String, String, String, bool)> = p
            .asked()
            .into_iter()
            .map(|a| (a.key, a.default, a.kind, a.prefix))
            .collect();
        let row = |k: &str, d: &str, kind: &str, prefix: bool| {
            (k.to_string(), d.to_string(), kind.to_string(), prefix)
        };
        assert_eq!(
            asked,
            [
                row("capacity", "100", "a whole number of at least 1", false),
                row("keep-alive", "3000", "milliseconds", false),
                row("selector.type", "a", "one of: a, b", false),
                row("command", "required", "", false),
                row("total", "unlimited", "a whole number of at least 0", false),
                row("kafka.producer.", "none", "", true),
                row("shell", "none", "", false),
            ]
        );
    }

    #[test]
    fn presence_check_keeps_its_default_and_takes_the_later_kind() {
        let p = props(&[]);
        let _ = p.optional("byteCapacity", "unlimited");
        p.positive("byteCapacity", 1);
        let a = &p.asked()[0];
        assert_eq!(a.default, "unlimited");
        assert_eq!(a.kind, "a whole number of at least 1");
        assert!(p.finish().is_empty());
    }
}
