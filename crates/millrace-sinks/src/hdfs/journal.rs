//! The local record of the HDFS files a sink has open, so that a sink killed
//! mid-file recovers and renames them when it starts again. HDFS itself cannot say
//! which `.tmp` files belong to a dead writer and which to another live agent writing
//! into the same directory, so the sink keeps its own list.
//!
//! One file per sink under `~/.flume/hdfs-sink/`, named after the sink and a hash of
//! its namenode and path, holding `IN_USE<TAB>TARGET` lines; rewritten atomically
//! (temporary file and rename) whenever a file opens or closes.

use std::path::{Path, PathBuf};

pub struct Journal {
    path: PathBuf,
}

impl Journal {
    pub fn for_sink(name: &str, url: Option<&str>, path: &str) -> Journal {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let id = fnv1a(format!("{}|{path}", url.unwrap_or("")).as_bytes());
        Journal {
            path: home
                .join(".flume/hdfs-sink")
                .join(format!("{safe}-{id:016x}.open")),
        }
    }

    #[cfg(test)]
    pub fn at(path: PathBuf) -> Journal {
        Journal { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files an earlier run left open; an unreadable journal reads as empty.
    pub fn load(&self) -> Vec<(String, String)> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    pub fn save(&self, entries: &[(String, String)]) -> std::io::Result<()> {
        if entries.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = String::new();
        for (a, b) in entries {
            text.push_str(a);
            text.push('\t');
            text.push_str(b);
            text.push('\n');
        }
        let tmp = self.path.with_extension("open.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// FNV-1a: stable across builds, unlike the standard library's hasher.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal {
            path: dir.path().join("x/k1.open"),
        };
        assert!(j.load().is_empty());
        let e = vec![("/a/F.1.tmp".to_string(), "/a/F.1".to_string())];
        j.save(&e).unwrap();
        assert_eq!(j.load(), e);
        j.save(&[]).unwrap();
        assert!(!j.path().exists());
        j.save(&[]).unwrap();
    }

    #[test]
    fn one_journal_per_sink_and_destination() {
        let a = Journal::for_sink("k1", Some("hdfs://nn:1"), "/x");
        let b = Journal::for_sink("k1", Some("hdfs://nn:2"), "/x");
        let c = Journal::for_sink("k1", Some("hdfs://nn:1"), "/x");
        assert_ne!(a.path(), b.path());
        assert_eq!(a.path(), c.path());
    }
}
