//! `docs/reference.md` is generated from the components' configuration code; these
//! tests keep it, `docs/components.md` and the component table of `docs/migrating.md`
//! in step with the code.
//!
//! Regenerate the reference with
//! `MILLRACE_BLESS=1 cargo test -p millrace-node --test reference`.

use millrace_node::reference::{self, REGENERATE};
use std::path::PathBuf;

fn docs(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(docs(name)).unwrap_or_else(|e| panic!("cannot read docs/{name}: {e}"))
}

/// The lines that differ, numbered, at most `max` of them: enough to see what moved.
fn diff(old: &str, new: &str, max: usize) -> String {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let mut out = Vec::new();
    for i in 0..old.len().max(new.len()) {
        let (a, b) = (old.get(i), new.get(i));
        if a != b {
            if let Some(a) = a {
                out.push(format!("{:>5} - {a}", i + 1));
            }
            if let Some(b) = b {
                out.push(format!("{:>5} + {b}", i + 1));
            }
        }
        if out.len() >= max {
            out.push("  ...".into());
            break;
        }
    }
    out.join("\n")
}

#[test]
fn reference_md_matches_the_code() {
    // The committed reference lists the Kafka components; a build without them would
    // rightly produce a shorter one.
    if !cfg!(feature = "kafka") {
        return;
    }
    let text = reference::render(&reference::components(), &read("components.md"));
    let path = docs("reference.md");
    if std::env::var_os("MILLRACE_BLESS").is_some() {
        std::fs::write(&path, &text).expect("write docs/reference.md");
        return;
    }
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        old == text,
        "docs/reference.md is stale: the components' properties or docs/components.md \
         changed since it was generated. Regenerate it with\n\n    {REGENERATE}\n\n\
         and commit it. Differences (- committed, + generated):\n{}",
        diff(&old, &text, 60)
    );
}

#[test]
fn components_md_mentions_every_property_the_code_reads() {
    let missing = reference::undocumented(&reference::components(), &read("components.md"));
    assert!(
        missing.is_empty(),
        "docs/components.md is missing what the code reads; describe each in the \
         component's table (a row `| `key` | default | meaning |`):\n{}",
        missing.join("\n")
    );
}

#[test]
fn migrating_md_marks_every_type_millrace_provides_as_available() {
    use millrace_node::registry::{supported, ComponentType};
    let text = read("migrating.md");
    let mut missing = Vec::new();
    for kind in [
        ComponentType::Source,
        ComponentType::Channel,
        ComponentType::Sink,
        ComponentType::Interceptor,
    ] {
        for alias in supported(kind) {
            let listed = text.lines().any(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                cells.len() > 3
                    && cells[2] == format!("`{alias}`")
                    && (cells[3].starts_with("supported") || cells[3] == "partially")
            });
            if !listed {
                missing.push(format!("{kind:?} `{alias}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/migrating.md has no row marking these as supported or partially supported: {}",
        missing.join(", ")
    );
}
