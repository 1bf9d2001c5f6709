//! Checkpoints: which events were pending at a point of the log, so that replay reads
//! the log before that point only for those events' bodies and applies the tail after
//! it in full.
//!
//! `MRCKPT01 [u64 log file][u64 offset][u64 next id][u32 ranges] ranges x ([u64][u32])
//! [u32 CRC-32 of everything after the magic]`, written to a temporary file, synced and
//! renamed over the old one, so a crash leaves the old checkpoint or the new one.

use std::fs::File;
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 8] = b"MRCKPT01";
pub const FILE: &str = "checkpoint";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log position the checkpoint describes: everything before it is reflected.
    pub log_file: u64,
    pub offset: u64,
    pub next_id: u64,
    /// Pending event ids, as sorted runs.
    pub pending: Vec<(u64, u32)>,
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.pending.len() * 12);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.log_file.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.next_id.to_le_bytes());
        out.extend_from_slice(&(self.pending.len() as u32).to_le_bytes());
        for (first, len) in &self.pending {
            out.extend_from_slice(&first.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        let crc = crc32fast::hash(&out[MAGIC.len()..]);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Result<Checkpoint, String> {
        if b.len() < MAGIC.len() + 32 || &b[..MAGIC.len()] != MAGIC {
            return Err("not a millrace checkpoint".into());
        }
        let (body, crc) = b[MAGIC.len()..].split_at(b.len() - MAGIC.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err("checksum mismatch".into());
        }
        let u64_at = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().expect("8 bytes"));
        let n = u32::from_le_bytes(body[24..28].try_into().expect("4 bytes")) as usize;
        if body.len() != 28 + n * 12 {
            return Err("length does not match its range count".into());
        }
        let pending = (0..n)
            .map(|i| {
                let at = 28 + i * 12;
                (
                    u64_at(at),
                    u32::from_le_bytes(body[at + 8..at + 12].try_into().expect("4 bytes")),
                )
            })
            .collect();
        Ok(Checkpoint {
            log_file: u64_at(0),
            offset: u64_at(8),
            next_id: u64_at(16),
            pending,
        })
    }

    /// Writes atomically into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join("checkpoint.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&self.encode())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(FILE))?;
        File::open(dir)?.sync_all()
    }

    /// The checkpoint in `dir`: `Ok(None)` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Checkpoint>, String> {
        match std::fs::read(dir.join(FILE)) {
            Ok(b) => Checkpoint::decode(&b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_detection() {
        let c = Checkpoint {
            log_file: 3,
            offset: 4096,
            next_id: 1000,
            pending: vec![(10, 5), (900, 100)],
        };
        let b = c.encode();
        assert_eq!(Checkpoint::decode(&b).unwrap(), c);
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x10;
            assert!(Checkpoint::decode(&d).is_err(), "byte {i}");
        }
        assert!(Checkpoint::decode(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), None);
        let c = Checkpoint {
            log_file: 1,
            offset: 8,
            next_id: 0,
            pending: vec![],
        };
        c.write(dir.path()).unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), Some(c));
        assert!(!dir.path().join("checkpoint.tmp").exists());
    }
}
