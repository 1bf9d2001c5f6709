//! millrace's sources. Each module holds one source: its typed configuration (Flume's
//! property names and defaults) and the running source.
//!
//! | type | what it reads | delivery |
//! |------|---------------|----------|
//! | `exec` | lines a command prints | none across a restart (as in Flume) |
//! | `netcat` | lines sent over TCP, acknowledged with `OK` | acked after the put commits |
//! | `seq` | a counter 0, 1, 2, ... | test and benchmark load |
//! | `spooldir` | complete files dropped into a directory | position kept after each committed put |
//! | `TAILDIR` | growing files, followed through rotation | position file written after each committed put |

pub mod exec;
pub mod netcat;
pub mod seq;
pub mod spooldir;
pub mod taildir;

use millrace_core::{Props, Source};

/// Every source type this crate provides, by alias.
pub const TYPES: &[&str] = &["exec", "netcat", "seq", "spooldir", "TAILDIR"];

/// Resolves a source type (alias in any case, or Flume's class name) to its alias.
pub fn canonical_type(type_name: &str) -> Option<&'static str> {
    match type_name.to_ascii_lowercase().as_str() {
        "exec" | "org.apache.flume.source.execsource" => Some("exec"),
        "netcat" | "org.apache.flume.source.netcatsource" => Some("netcat"),
        "seq" | "org.apache.flume.source.sequencegeneratorsource" => Some("seq"),
        "spooldir" | "org.apache.flume.source.spooldirectorysource" => Some("spooldir"),
        "taildir" | "org.apache.flume.source.taildir.taildirsource" => Some("TAILDIR"),
        _ => None,
    }
}

/// Builds a source; problems are recorded in `props`. None when it cannot be built.
pub fn build(canonical: &str, props: &Props) -> Option<Box<dyn Source>> {
    match canonical {
        "exec" => {
            exec::ExecConfig::from_props(props).map(|c| Box::new(exec::ExecSource::new(c)) as _)
        }
        "netcat" => netcat::NetcatConfig::from_props(props)
            .map(|c| Box::new(netcat::NetcatSource::new(c)) as _),
        "seq" => seq::SeqConfig::from_props(props).map(|c| Box::new(seq::SeqSource::new(c)) as _),
        "spooldir" => spooldir::SpoolDirConfig::from_props(props)
            .map(|c| Box::new(spooldir::SpoolDirSource::new(c)) as _),
        "TAILDIR" => taildir::TaildirConfig::from_props(props)
            .map(|c| Box::new(taildir::TaildirSource::new(c)) as _),
        _ => None,
    }
}
