//! Value substitution and config filters, as Flume 1.10+ applies them to values:
//!
//! - `${env:VAR}`: the environment variable VAR;
//! - `${sys:prop}`: a system property given to the agent as `-Dprop=value`;
//! - `${NAME}`: a system property of that name, else an environment variable;
//! - `${f1['key']}`: the value config filter `f1` gives for `key`, where
//!   `a1.configfilters = f1` and `a1.configfilters.f1.type` is `env` (environment
//!   variables) or `external` (runs `a1.configfilters.f1.command key` and takes what
//!   it prints; Flume's ExternalProcessConfigFilter);
//! - `$${` stands for a literal `${`.
//!
//! A reference that cannot be resolved is an error naming it, at the line of the key
//! that uses it; the value is left as written.

use crate::agent::Located;
use millrace_core::Diagnostic;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long an external filter command may run before it is stopped.
const EXTERNAL_TIMEOUT: Duration = Duration::from_secs(10);

enum Filter {
    Env,
    External {
        command: String,
        cache: HashMap<String, Result<String, String>>,
    },
    Unsupported,
}

/// Resolves `${...}` references in the values of `agent`'s keys, in place.
pub fn substitute(
    entries: &mut [Located],
    agent: &str,
    sys: &BTreeMap<String, String>,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let prefix = format!("{agent}.configfilters");
    let mut filters: HashMap<String, Filter> = HashMap::new();
    let listed: Vec<String> = entries
        .iter()
        .find(|l| l.entry.key == prefix)
        .map(|l| {
            l.entry
                .value
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    for name in &listed {
        let key = |k: &str| format!("{prefix}.{name}.{k}");
        let find = |k: &str| entries.iter().find(|l| l.entry.key == key(k));
        let Some(ty) = find("type") else {
            let at = entries
                .iter()
                .find(|l| l.entry.key == prefix)
                .expect("listed above");
            diags.push(Diagnostic::error(
                &at.file,
                at.entry.line,
                format!(
                    "config filter `{name}` has no type; add `{}` = env or external",
                    key("type")
                ),
            ));
            continue;
        };
        let filter = match ty.entry.value.to_ascii_lowercase().as_str() {
            "env" | "org.apache.flume.configfilter.environmentvariableconfigfilter" => Filter::Env,
            "external" | "org.apache.flume.configfilter.externalprocessconfigfilter" => {
                match find("command")
                    .map(|l| l.entry.value.clone())
                    .filter(|c| !c.is_empty())
                {
                    Some(command) => Filter::External {
                        command,
                        cache: HashMap::new(),
                    },
                    None => {
                        diags.push(Diagnostic::error(
                            &ty.file,
                            ty.entry.line,
                            format!("config filter `{name}` is external but has no command; add `{}` = /path/to/program (it is run with the key as its argument and prints the value)", key("command")),
                        ));
                        Filter::Unsupported
                    }
                }
            }
            "hadoop" | "org.apache.flume.configfilter.hadoopcredentialstoreconfigfilter" => {
                diags.push(Diagnostic::error(
                    &ty.file,
                    ty.entry.line,
                    format!("config filter type `hadoop` (`{}`) is not supported: millrace has no Hadoop credential store; use an `external` filter that prints the secret, or `env`", key("type")),
                ));
                Filter::Unsupported
            }
            other => {
                diags.push(Diagnostic::error(
                    &ty.file,
                    ty.entry.line,
                    format!(
                        "config filter type `{other}` (`{}`) is not supported; use env or external",
                        key("type")
                    ),
                ));
                Filter::Unsupported
            }
        };
        filters.insert(name.clone(), filter);
    }
    let mine = format!("{agent}.");
    for l in entries.iter_mut() {
        if !l.entry.key.starts_with(&mine) || !l.entry.value.contains("${") {
            continue;
        }
        match expand(&l.entry.value, sys, &mut filters) {
            Ok(v) => l.entry.value = v,
            Err(msg) => diags.push(Diagnostic::error(
                &l.file,
                l.entry.line,
                format!("`{}`: {msg}", l.entry.key),
            )),
        }
    }
    diags
}

fn expand(
    value: &str,
    sys: &BTreeMap<String, String>,
    filters: &mut HashMap<String, Filter>,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "`${{` without a closing `}}` in `{value}`; close it or write `$${{` for a literal"
            ));
        };
        out.push_str(&resolve(&after[..end], sys, filters)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(
    reference: &str,
    sys: &BTreeMap<String, String>,
    filters: &mut HashMap<String, Filter>,
) -> Result<String, String> {
    if let Some(var) = reference.strip_prefix("env:") {
        return std::env::var(var)
            .map_err(|_| format!("environment variable `{var}` (from `${{{reference}}}`) is not set; export it before starting the agent"));
    }
    if let Some(prop) = reference.strip_prefix("sys:") {
        return sys
            .get(prop)
            .cloned()
            .ok_or_else(|| format!("system property `{prop}` (from `${{{reference}}}`) is not set; pass -D{prop}=VALUE"));
    }
    if let Some((name, key)) = filter_reference(reference) {
        let filter = filters.get_mut(name).ok_or_else(|| {
            format!("`${{{reference}}}` names config filter `{name}`, which is not listed in `configfilters`; add it there")
        })?;
        return match filter {
            Filter::Env => std::env::var(key).map_err(|_| {
                format!("config filter `{name}`: environment variable `{key}` is not set; export it before starting the agent")
            }),
            Filter::External { command, cache } => cache
                .entry(key.to_string())
                .or_insert_with(|| run_external(command, key))
                .clone()
                .map_err(|e| format!("config filter `{name}`: {e}")),
            Filter::Unsupported => Err(format!("config filter `{name}` could not be set up (see the error at its type)")),
        };
    }
    sys.get(reference)
        .cloned()
        .or_else(|| std::env::var(reference).ok())
        .ok_or_else(|| format!("`${{{reference}}}` is not set: no -D{reference}=VALUE and no environment variable `{reference}`; set one of them"))
}

/// `f1['key']`, `f1["key"]` or `f1[key]`.
fn filter_reference(r: &str) -> Option<(&str, &str)> {
    let (name, rest) = r.split_once('[')?;
    let key = rest.strip_suffix(']')?;
    let key = key
        .strip_prefix('\'')
        .and_then(|k| k.strip_suffix('\''))
        .or_else(|| key.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
        .unwrap_or(key);
    Some((name.trim(), key))
}

/// Runs `command key` and returns what it printed, trimmed.
fn run_external(command: &str, key: &str) -> Result<String, String> {
    let mut parts = command.split_whitespace();
    let prog = parts.next().ok_or("the command is empty")?;
    let mut child = Command::new(prog)
        .args(parts)
        .arg(key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run `{command}`: {e}; check the path and that it is executable")
        })?;
    let deadline = Instant::now() + EXTERNAL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{command} {key}` did not finish within {}s",
                    EXTERNAL_TIMEOUT.as_secs()
                ));
            }
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        return Err(format!(
            "`{command} {key}` failed ({status}){}",
            if err.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", err.trim())
            }
        ));
    }
    Ok(out.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn entries(text: &str) -> Vec<Located> {
        let file: Arc<str> = Arc::from("t.conf");
        crate::parse(text)
            .0
            .into_iter()
            .map(|entry| Located {
                file: file.clone(),
                entry,
            })
            .collect()
    }

    fn value(es: &[Located], key: &str) -> String {
        es.iter()
            .find(|l| l.entry.key == key)
            .map(|l| l.entry.value.clone())
            .unwrap()
    }

    #[test]
    fn env_sys_and_plain_references() {
        std::env::set_var("MILLRACE_TEST_DIR", "/var/log");
        let mut es = entries(
            "a1.sources.r1.command = tail -F ${env:MILLRACE_TEST_DIR}/app.log\n\
             a1.channels.c1.capacity = ${sys:cap}\n\
             a1.sinks.k1.sink.directory = ${MILLRACE_TEST_DIR}/${out}\n\
             a1.sinks.k1.literal = $${not.a.ref}\n",
        );
        let mut sys = BTreeMap::new();
        sys.insert("cap".to_string(), "5000".to_string());
        sys.insert("out".to_string(), "o".to_string());
        let d = substitute(&mut es, "a1", &sys);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            value(&es, "a1.sources.r1.command"),
            "tail -F /var/log/app.log"
        );
        assert_eq!(value(&es, "a1.channels.c1.capacity"), "5000");
        assert_eq!(value(&es, "a1.sinks.k1.sink.directory"), "/var/log/o");
        assert_eq!(value(&es, "a1.sinks.k1.literal"), "${not.a.ref}");
    }

    #[test]
    fn missing_variable_is_an_error_naming_it_at_its_line() {
        let mut es =
            entries("a1.sources = r1\na1.sources.r1.command = ${env:MILLRACE_NOT_SET_ANYWHERE}\n");
        let d = substitute(&mut es, "a1", &BTreeMap::new());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, 2);
        assert!(
            d[0].message.contains("MILLRACE_NOT_SET_ANYWHERE"),
            "{}",
            d[0]
        );
    }

    #[test]
    fn env_and_external_filters() {
        std::env::set_var("MILLRACE_TEST_SECRET", "s3cret");
        let dir = std::env::temp_dir().join(format!("millrace-filter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("lookup.sh");
        std::fs::write(&script, "#!/bin/sh\n[ \"$1\" = db_password ] && echo '  hunter2  ' && exit 0\necho \"no such key $1\" >&2\nexit 3\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let text = format!(
            "a1.configfilters = e x\n\
             a1.configfilters.e.type = env\n\
             a1.configfilters.x.type = external\n\
             a1.configfilters.x.command = {}\n\
             a1.sinks.k1.password = ${{x['db_password']}}\n\
             a1.sinks.k1.token = ${{e[\"MILLRACE_TEST_SECRET\"]}}\n\
             a1.sinks.k1.other = ${{x['missing']}}\n",
            script.display()
        );
        let mut es = entries(&text);
        let d = substitute(&mut es, "a1", &BTreeMap::new());
        assert_eq!(value(&es, "a1.sinks.k1.password"), "hunter2");
        assert_eq!(value(&es, "a1.sinks.k1.token"), "s3cret");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].line, 7);
        assert!(
            d[0].message.contains("failed") && d[0].message.contains("no such key missing"),
            "{}",
            d[0]
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn hadoop_filter_is_reported_unsupported() {
        let mut es = entries("a1.configfilters = h\na1.configfilters.h.type = hadoop\n");
        let d = substitute(&mut es, "a1", &BTreeMap::new());
        assert!(
            d[0].message.contains("not supported") && d[0].line == 2,
            "{d:?}"
        );
    }
}
