//! Event blocks and index runs, kept in append-only segment files beside sled; the
//! files are also the store's write-ahead log.
//!
//! sled copies the tree node a key lands in on every write and again when the node
//! splits, and keeps what it wrote in its page cache. Holding the blocks and the runs'
//! index blocks (a few KB each) in sled, the store wrote 1.18 GB through sled for
//! 0.48 GB stored over 1,000,000 events, its peak RSS was 400 MB, and each append's
//! flush waited for sled to write and sync its log (benches/RESULTS.md, "Blocks and
//! runs in segment files"). Both are written once and never changed, so they go to
//! files here, and sled keeps only where they are: each block's summary and each run's
//! header hold a [`Loc`].
//!
//! Event blocks go to the files in `data/`, runs to those in `runs/`, so that the log
//! holds only what it replays and an append's flush syncs only its own blocks. A
//! segment file is `NNNNNNNN.seg`, records one after the other, each a header
//! (payload length u32 LE, [`Kind`] with a magic number u32 LE, CRC-32 of those four
//! bytes and the payload u32 LE) then the payload. A process writes to one file at a
//! time and starts a new one at open and after [`SEGMENT_BYTES`], so a file is only
//! appended to by the process that made it. A file goes when nothing refers to it any
//! more (its blocks and runs were purged), after the sled writes that dropped the
//! references are on disk.
//!
//! The log's next file is made ahead, full length, of zeros, synced, on a thread of
//! its own ([`Segments::making_files_ahead`]). Writing into a file made so changes no
//! metadata, so its sync writes the data alone; a sync that grows a file also commits
//! the file system's journal, and waits for whatever else that commit carries (the
//! runs' writes, sled's). In store_bench the syncs took half as long. A file of
//! zeros holds no record: the zeros after the last record read as its end.
//!
//! An append is durable once its blocks are synced here ([`Segments::sync`]); sled
//! takes the summaries and counters of many appends at once, at a checkpoint that
//! records how far in the files it reaches. At open, the blocks written after the last
//! checkpoint sled kept are read back from the files ([`Segments::records_from`]) and
//! counted again, so a crash loses nothing that was synced. A run's records are synced
//! before the sled write that refers to them.

use crate::StoreError;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// A file is closed to writes once it reaches this size. Retention frees space a file
/// at a time, so this is also how much a store can hold past its limit for a while.
pub const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER: usize = 12;
/// The high bytes of a record's kind word: a header of zeros, or of anything but a
/// record, is never read as one.
const MAGIC: u32 = 0x4d52_5300;

/// What a record holds, which says whether the write-ahead log replays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A block of events an append wrote: replayed.
    Block = 1,
    /// A block a purge or a layout upgrade wrote, with events already counted: never
    /// replayed, since its writer syncs it before sled refers to it.
    Rewritten = 2,
    /// An index block of a run.
    Run = 3,
}

impl Kind {
    fn of(word: u32) -> Option<Kind> {
        match word.checked_sub(MAGIC)? {
            1 => Some(Kind::Block),
            2 => Some(Kind::Rewritten),
            3 => Some(Kind::Run),
            _ => None,
        }
    }
}

/// Where a record is: its file, the offset of its header, its payload's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub file: u32,
    pub offset: u64,
    pub len: u32,
}

impl Loc {
    pub const BYTES: usize = 16;
    /// Bytes of a record's header.
    pub const FRAMED: u64 = HEADER as u64;

    pub fn encode(&self) -> [u8; Loc::BYTES] {
        let mut b = [0u8; Loc::BYTES];
        b[..4].copy_from_slice(&self.file.to_be_bytes());
        b[4..12].copy_from_slice(&self.offset.to_be_bytes());
        b[12..].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    pub fn decode(v: &[u8]) -> Option<Loc> {
        let v: &[u8; Loc::BYTES] = v.try_into().ok()?;
        Some(Loc {
            file: u32::from_be_bytes(v[..4].try_into().ok()?),
            offset: u64::from_be_bytes(v[4..12].try_into().ok()?),
            len: u32::from_be_bytes(v[12..].try_into().ok()?),
        })
    }

    /// Bytes the record takes in its file.
    fn size(&self) -> u64 {
        HEADER as u64 + u64::from(self.len)
    }
}

/// Records to write together, with one system call.
#[derive(Debug, Default)]
pub struct Frames {
    buf: Vec<u8>,
    /// Each record's header offset in `buf` and payload length.
    spans: Vec<(usize, u32)>,
}

impl Frames {
    pub fn with_capacity(bytes: usize) -> Frames {
        Frames {
            buf: Vec::with_capacity(bytes),
            spans: Vec::new(),
        }
    }

    /// Adds a record of `kind` whose payload `write` appends to the buffer it is given.
    pub fn push(&mut self, kind: Kind, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; HEADER]);
        write(&mut self.buf);
        let len = (self.buf.len() - start - HEADER) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&(MAGIC + kind as u32).to_le_bytes());
        let crc = checksum(&self.buf[start + 4..start + 8], &self.buf[start + HEADER..]);
        self.buf[start + 8..start + HEADER].copy_from_slice(&crc.to_le_bytes());
        self.spans.push((start, len));
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

fn checksum(kind: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(kind);
    h.update(payload);
    h.finalize()
}

/// The kind and payload length of a record, from its header; None when the header is
/// not a record's or its payload would pass `room`.
fn parse_header(h: &[u8], room: u64) -> Option<(Kind, u32)> {
    let len = u32::from_le_bytes(h.get(..4)?.try_into().ok()?);
    let kind = Kind::of(u32::from_le_bytes(h.get(4..8)?.try_into().ok()?))?;
    (u64::from(len) <= room).then_some((kind, len))
}

/// A record read back: sled's value for blocks and runs of the layout before
/// segment files, else the payload read from its file.
pub enum Value {
    Sled(sled::IVec),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Value::Sled(v) => v,
            Value::Owned(v) => v,
        }
    }
}

/// Where the store's bytes are: sled, and the segment files.
#[derive(Clone, Copy)]
pub struct Disk<'a> {
    pub tree: &'a sled::Tree,
    pub segs: &'a Segments,
}

/// Why a record could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Its file was deleted: whatever referred to it was purged meanwhile.
    Gone,
    /// Its bytes are not the record written: a short file or a wrong checksum.
    Damaged,
    Io(StoreError),
}

struct Active {
    id: u32,
    file: Arc<File>,
    len: u64,
    /// The file was made ahead, [`SEGMENT_BYTES`] of zeros.
    made_ahead: bool,
}

/// Bytes written to a file that was not made ahead (the first after an open) before
/// the next is made; a store that takes less makes none.
const MAKE_AFTER: u64 = 1 << 20;

/// The making of the log's next file: the id it gets and the thread making it.
struct Next {
    id: u32,
    made: std::thread::JoinHandle<Result<File, StoreError>>,
}

/// What the store knows of each file: its length and the bytes of it still referred to.
#[derive(Debug, Default, Clone, Copy)]
struct FileState {
    len: u64,
    live: u64,
}

pub struct Segments {
    dir: PathBuf,
    active: Mutex<Active>,
    files: Mutex<BTreeMap<u32, FileState>>,
    /// Open handles for reading, by file.
    readers: RwLock<HashMap<u32, Arc<File>>>,
    /// Whether the next file is made ahead ([`Segments::making_files_ahead`]).
    ahead: bool,
    next: Mutex<Option<Next>>,
}

fn path_of(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.seg"))
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |error| StoreError::Io {
        path: path.to_path_buf(),
        error,
    }
}

impl Segments {
    /// Opens the segment files in `dir` (created owner-only) and starts a new one to
    /// write to. Every file starts with nothing referred to: the store then counts its
    /// references with [`Segments::refer`] and calls [`Segments::remove_dead`].
    pub fn open(dir: &Path) -> Result<Segments, StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_at(dir))?;
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
            let entry = entry.map_err(io_at(dir))?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let len = entry.metadata().map_err(io_at(&entry.path()))?.len();
            files.insert(id, FileState { len, live: 0 });
        }
        let id = files.keys().next_back().map_or(1, |last| last + 1);
        let file = Self::create(dir, id)?;
        files.insert(id, FileState::default());
        Ok(Segments {
            dir: dir.to_path_buf(),
            active: Mutex::new(Active {
                id,
                file: Arc::new(file),
                len: 0,
                made_ahead: false,
            }),
            files: Mutex::new(files),
            readers: RwLock::new(HashMap::new()),
            ahead: false,
            next: Mutex::new(None),
        })
    }

    /// Makes each next file ahead, for the log, whose syncs an append waits for.
    pub fn making_files_ahead(mut self) -> Segments {
        self.ahead = true;
        self
    }

    /// File `id`, [`SEGMENT_BYTES`] of zeros, synced; removed again if that fails.
    fn make_zeroed(dir: &Path, id: u32) -> Result<File, StoreError> {
        let file = Self::create(dir, id)?;
        let zeros = vec![0u8; 1 << 20];
        let mut at = 0;
        let written = (|| {
            while at < SEGMENT_BYTES {
                file.write_all_at(&zeros, at)?;
                at += zeros.len() as u64;
            }
            file.sync_all()
        })();
        let path = path_of(dir, id);
        if let Err(error) = written {
            let _ = std::fs::remove_file(&path);
            return Err(StoreError::Io { path, error });
        }
        Ok(file)
    }

    /// The file to write after the active one, `id`: the one made ahead if there is
    /// one (waiting for it if it is still being made), else a new empty one. Called
    /// holding `active`.
    fn next_file(&self, id: u32) -> Result<(File, bool), StoreError> {
        let next = self.next.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(next) = next.filter(|n| n.id == id) {
            match next.made.join() {
                Ok(Ok(file)) => return Ok((file, true)),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the log's next file could not be made ahead; writing to a new empty one")
                }
                Err(_) => tracing::warn!(
                    "making the log's next file ahead panicked; writing to a new empty one"
                ),
            }
            // What a failed making left.
            let _ = std::fs::remove_file(path_of(&self.dir, id));
        }
        Ok((Self::create(&self.dir, id)?, false))
    }

    /// Starts making the file after the active one, if it is time to.
    fn make_next(&self, a: &Active) {
        let due = if a.made_ahead {
            a.len >= SEGMENT_BYTES / 2
        } else {
            a.len >= MAKE_AFTER
        };
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        if !self.ahead || !due || next.is_some() {
            return;
        }
        let (dir, id) = (self.dir.clone(), a.id + 1);
        let made = std::thread::Builder::new()
            .name("store-log-next".into())
            .spawn(move || Self::make_zeroed(&dir, id));
        match made {
            Ok(made) => *next = Some(Next { id, made }),
            Err(e) => tracing::warn!(error = %e, "cannot start making the log's next file"),
        }
    }

    fn create(dir: &Path, id: u32) -> Result<File, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = path_of(dir, id);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_at(&path))?;
        // The new name must survive a crash as well as what is written under it.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(dir))?;
        Ok(file)
    }

    /// Writes `frames` at the end of the file being written, all in that one file;
    /// returns where each record is. The records count as referred to from now on.
    pub fn write(&self, frames: &Frames) -> Result<Vec<Loc>, StoreError> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        let mut a = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = frames.buf.len() as u64;
        let full = a.len > 0 && a.len + bytes > SEGMENT_BYTES;
        // A file not made ahead is left as soon as the next one is made.
        let made = !a.made_ahead
            && a.len > 0
            && self
                .next
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_some_and(|n| n.made.is_finished());
        if full || made {
            // The file closed to writes is synced now, so one sync of the file being
            // written covers everything written before it.
            a.file
                .sync_data()
                .map_err(io_at(&path_of(&self.dir, a.id)))?;
            let id = a.id + 1;
            let (file, made_ahead) = self.next_file(id)?;
            *a = Active {
                id,
                file: Arc::new(file),
                len: 0,
                made_ahead,
            };
            let len = if made_ahead { SEGMENT_BYTES } else { 0 };
            self.lock_files().insert(id, FileState { len, live: 0 });
        }
        a.file
            .write_all_at(&frames.buf, a.len)
            .map_err(io_at(&path_of(&self.dir, a.id)))?;
        let base = a.len;
        a.len += bytes;
        let locs: Vec<Loc> = frames
            .spans
            .iter()
            .map(|&(at, len)| Loc {
                file: a.id,
                offset: base + at as u64,
                len,
            })
            .collect();
        {
            let mut files = self.lock_files();
            let f = files.entry(a.id).or_default();
            f.len = f.len.max(a.len);
            f.live += bytes;
        }
        self.make_next(&a);
        Ok(locs)
    }

    /// Waits until everything written so far is on disk.
    pub fn sync(&self) -> Result<(), StoreError> {
        let (id, file) = {
            let a = self.active.lock().unwrap_or_else(|e| e.into_inner());
            (a.id, a.file.clone())
        };
        file.sync_data().map_err(io_at(&path_of(&self.dir, id)))
    }

    fn reader(&self, id: u32) -> Result<Arc<File>, ReadError> {
        if let Some(f) = self
            .readers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(f.clone());
        }
        if !self.lock_files().contains_key(&id) {
            return Err(ReadError::Gone);
        }
        let path = path_of(&self.dir, id);
        let file = match File::open(&path) {
            Ok(f) => Arc::new(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::Gone),
            Err(error) => return Err(ReadError::Io(StoreError::Io { path, error })),
        };
        self.readers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, file.clone());
        Ok(file)
    }

    /// The payload of the record at `loc`, checked against its header.
    pub fn read(&self, loc: Loc) -> Result<Vec<u8>, ReadError> {
        let file = self.reader(loc.file)?;
        let mut buf = vec![0u8; loc.size() as usize];
        match file.read_exact_at(&mut buf, loc.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ReadError::Damaged),
            Err(error) => {
                return Err(ReadError::Io(StoreError::Io {
                    path: path_of(&self.dir, loc.file),
                    error,
                }))
            }
        }
        let crc = u32::from_le_bytes(buf[8..HEADER].try_into().unwrap_or_default());
        let header = parse_header(&buf, u64::from(loc.len));
        if header.map(|h| h.1) != Some(loc.len) || checksum(&buf[4..8], &buf[HEADER..]) != crc {
            return Err(ReadError::Damaged);
        }
        buf.drain(..HEADER);
        Ok(buf)
    }

    /// Where the next record will be written: what a checkpoint reaches.
    pub fn end(&self) -> Loc {
        let a = self.active.lock().unwrap_or_else(|e| e.into_inner());
        Loc {
            file: a.id,
            offset: a.len,
            len: 0,
        }
    }

    /// The records from `from` on, in the order written: the rest of its file, then
    /// every later file. Each file is read up to its first record that is cut short or
    /// fails its checksum, which is where a crash interrupted its writing.
    pub fn records_from(&self, from: Loc) -> Result<Vec<(Loc, Kind, Vec<u8>)>, StoreError> {
        let files: Vec<u32> = self
            .lock_files()
            .range(from.file..)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in files {
            let path = path_of(&self.dir, id);
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at(&path)(e)),
            };
            let len = file.metadata().map_err(io_at(&path))?.len();
            // Read a record at a time from the checkpoint on, not the whole file: a
            // file made ahead is mostly zeros past its last record.
            let mut at = if id == from.file { from.offset } else { 0 };
            let mut header = [0u8; HEADER];
            let cut = loop {
                let rest = len.saturating_sub(at);
                let h = &mut header[..rest.min(HEADER as u64) as usize];
                file.read_exact_at(h, at).map_err(io_at(&path))?;
                // Zeros, or nothing, after the last record: the file's end.
                if h.iter().all(|&b| b == 0) {
                    break false;
                }
                if h.len() < HEADER {
                    break true;
                }
                let Some((kind, n)) = parse_header(h, rest - HEADER as u64) else {
                    break true;
                };
                let mut payload = vec![0u8; n as usize];
                file.read_exact_at(&mut payload, at + HEADER as u64)
                    .map_err(io_at(&path))?;
                let crc = u32::from_le_bytes(header[8..].try_into().unwrap_or_default());
                if checksum(&header[4..8], &payload) != crc {
                    break true;
                }
                let loc = Loc {
                    file: id,
                    offset: at,
                    len: n,
                };
                out.push((loc, kind, payload));
                at += loc.size();
            };
            if cut {
                tracing::warn!(
                    file = %path.display(),
                    offset = at,
                    "a segment file ends in a record cut short by a crash; what follows is not read"
                );
            }
        }
        Ok(out)
    }

    /// Whether the file of `loc` holds all of its record, by length only: what
    /// [`crate::Store::open`] checks of every reference before it trusts it.
    pub fn holds(&self, loc: Loc) -> bool {
        self.lock_files()
            .get(&loc.file)
            .is_some_and(|f| loc.offset + loc.size() <= f.len)
    }

    /// Counts a reference to `loc` found at open.
    pub fn refer(&self, loc: Loc) {
        if let Some(f) = self.lock_files().get_mut(&loc.file) {
            f.live += loc.size();
        }
    }

    /// Drops a reference to `loc`: its block or run was deleted or never stored.
    pub fn release(&self, loc: Loc) {
        if let Some(f) = self.lock_files().get_mut(&loc.file) {
            f.live = f.live.saturating_sub(loc.size());
        }
    }

    /// Whether some file other than the one being written has nothing referring to it.
    pub fn has_dead(&self) -> bool {
        !self.dead().is_empty()
    }

    /// The files, but the one being written, that nothing refers to.
    fn dead(&self) -> Vec<u32> {
        let active = self.active_id();
        self.lock_files()
            .iter()
            .filter(|(id, f)| **id != active && f.live == 0)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Deletes the files, but the one being written, that nothing refers to. Call it
    /// only once the writes that dropped their references are on disk.
    pub fn remove_dead(&self) -> Result<usize, StoreError> {
        let dead = self.dead();
        for id in &dead {
            self.lock_files().remove(id);
            self.readers
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
            let path = path_of(&self.dir, *id);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&path)(e)),
                _ => {}
            }
        }
        Ok(dead.len())
    }

    /// Bytes the segment files take.
    pub fn disk_bytes(&self) -> u64 {
        self.lock_files().values().map(|f| f.len).sum()
    }

    fn active_id(&self) -> u32 {
        self.active.lock().unwrap_or_else(|e| e.into_inner()).id
    }

    fn lock_files(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, FileState>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Segments {
    /// A file made ahead and never written is removed rather than left for the next
    /// open to find empty.
    fn drop(&mut self) {
        let next = self
            .next
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(Next { id, made }) = next {
            if let Ok(Ok(file)) = made.join() {
                drop(file);
                let _ = std::fs::remove_file(path_of(&self.dir, id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Frames {
        let mut f = Frames::default();
        for p in payloads {
            f.push(Kind::Block, |out| out.extend_from_slice(p));
        }
        f
    }

    #[test]
    fn records_are_read_back_and_damage_is_told_apart_from_a_deleted_file() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Segments::open(dir.path()).unwrap();
        let locs = segs
            .write(&frames(&[b"first", b"", b"third record"]))
            .unwrap();
        assert_eq!(locs.len(), 3);
        assert_eq!(segs.read(locs[0]).unwrap(), b"first");
        assert_eq!(segs.read(locs[1]).unwrap(), b"");
        assert_eq!(segs.read(locs[2]).unwrap(), b"third record");
        assert!(locs.iter().all(|l| segs.holds(*l)));
        assert_eq!(Loc::decode(&locs[2].encode()), Some(locs[2]));

        // A flipped byte in a payload is caught by its checksum.
        let path = path_of(dir.path(), locs[0].file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[locs[2].offset as usize + HEADER] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(segs.read(locs[2]), Err(ReadError::Damaged)));
        assert_eq!(segs.read(locs[0]).unwrap(), b"first");

        // A reference past the end of the file.
        let past = Loc {
            offset: bytes.len() as u64,
            ..locs[0]
        };
        assert!(!segs.holds(past));
        assert!(matches!(segs.read(past), Err(ReadError::Damaged)));
        assert!(matches!(
            segs.read(Loc {
                file: 99,
                ..locs[0]
            }),
            Err(ReadError::Gone)
        ));
    }

    /// Waits, up to 10 s, until the log's next file is made.
    fn wait_made(segs: &Segments) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let next = segs.next.lock().unwrap();
            if next.as_ref().is_some_and(|n| n.made.is_finished()) {
                return;
            }
            drop(next);
            assert!(
                std::time::Instant::now() < deadline,
                "the next file was not made in 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// A log in `dir` whose first file took one record of [`MAKE_AFTER`] bytes (where
    /// it is, and its payload), with the next file made.
    fn log_with_next_made(dir: &Path) -> (Segments, Loc, Vec<u8>) {
        let segs = Segments::open(dir).unwrap().making_files_ahead();
        let big = vec![7u8; MAKE_AFTER as usize];
        let first = segs.write(&frames(&[&big])).unwrap()[0];
        wait_made(&segs);
        (segs, first, big)
    }

    #[test]
    fn the_log_moves_to_a_file_made_ahead_and_its_zeros_are_not_read_as_records() {
        let dir = tempfile::tempdir().unwrap();
        let (segs, first, big) = log_with_next_made(dir.path());
        let ahead = segs.write(&frames(&[b"in the file made ahead"])).unwrap()[0];
        assert_eq!(ahead.file, first.file + 1);
        let path = path_of(dir.path(), ahead.file);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SEGMENT_BYTES);
        let later = segs.write(&frames(&[b"and after it"])).unwrap()[0];
        segs.sync().unwrap();
        assert_eq!(segs.read(ahead).unwrap(), b"in the file made ahead");
        assert!(segs.disk_bytes() >= SEGMENT_BYTES + MAKE_AFTER);
        let payloads = |segs: &Segments| -> Vec<Vec<u8>> {
            let from = Loc {
                file: first.file,
                offset: 0,
                len: 0,
            };
            let records = segs.records_from(from).unwrap();
            records.into_iter().map(|(_, _, p)| p).collect()
        };
        let written = vec![
            big.clone(),
            b"in the file made ahead".to_vec(),
            b"and after it".to_vec(),
        ];
        assert_eq!(payloads(&segs), written);
        drop(segs);

        // After a crash, the log is read back up to the zeros, and a reopen writes
        // to a new file after the one made ahead.
        let segs = Segments::open(dir.path()).unwrap().making_files_ahead();
        assert_eq!(payloads(&segs), written);
        let new = segs.write(&frames(&[b"new"])).unwrap()[0];
        assert_eq!(new.file, later.file + 1);
    }

    #[test]
    fn a_file_made_ahead_and_never_written_is_removed_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let (segs, first, big) = log_with_next_made(dir.path());
        let made = path_of(dir.path(), first.file + 1);
        assert!(made.exists());
        drop(segs);
        assert!(!made.exists(), "the unused file made ahead was left");
        assert!(path_of(dir.path(), first.file).exists());
        // Without making ahead (the runs' files), nothing is made.
        let segs = Segments::open(dir.path()).unwrap();
        let at = segs.write(&frames(&[&big, &big])).unwrap()[0];
        assert!(segs.next.lock().unwrap().is_none());
        assert!(!path_of(dir.path(), at.file + 1).exists());
    }

    #[test]
    fn a_file_goes_once_nothing_refers_to_it_and_a_reopen_starts_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Segments::open(dir.path()).unwrap();
        let kept = segs.write(&frames(&[b"kept"])).unwrap()[0];
        let gone = segs.write(&frames(&[b"gone"])).unwrap()[0];
        assert_eq!(kept.file, gone.file);
        segs.sync().unwrap();
        drop(segs);

        let segs = Segments::open(dir.path()).unwrap();
        segs.refer(kept);
        let new = segs.write(&frames(&[b"new"])).unwrap()[0];
        assert_eq!(
            new.file,
            kept.file + 1,
            "a reopened store writes a new file"
        );
        assert!(!segs.has_dead());
        assert_eq!(segs.remove_dead().unwrap(), 0);
        assert_eq!(segs.read(kept).unwrap(), b"kept");

        segs.release(kept);
        assert!(segs.has_dead());
        assert_eq!(segs.remove_dead().unwrap(), 1);
        assert!(!path_of(dir.path(), kept.file).exists());
        assert!(matches!(segs.read(kept), Err(ReadError::Gone)));
        // The file being written stays even with nothing in it referred to.
        segs.release(new);
        assert_eq!(segs.remove_dead().unwrap(), 0);
        assert_eq!(segs.read(new).unwrap(), b"new");
    }

    #[test]
    fn the_log_is_read_back_in_order_up_to_a_record_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Segments::open(dir.path()).unwrap();
        let mut f = Frames::default();
        f.push(Kind::Block, |out| out.extend_from_slice(b"b1"));
        f.push(Kind::Run, |out| out.extend_from_slice(b"r1"));
        let first = segs.write(&f).unwrap();
        let mid = segs.end();
        let mut f = Frames::default();
        f.push(Kind::Rewritten, |out| out.extend_from_slice(b"w1"));
        f.push(Kind::Block, |out| out.extend_from_slice(b"b2"));
        let second = segs.write(&f).unwrap();
        segs.sync().unwrap();
        drop(segs);
        // A crash in the middle of the next write: a header and part of a payload.
        let path = path_of(dir.path(), first[0].file);
        let mut torn = Frames::default();
        torn.push(Kind::Block, |out| out.extend_from_slice(&[9; 100]));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&torn.buf[..60]);
        std::fs::write(&path, &bytes).unwrap();

        let segs = Segments::open(dir.path()).unwrap();
        let mut f = Frames::default();
        f.push(Kind::Block, |out| out.extend_from_slice(b"b3"));
        let third = segs.write(&f).unwrap();
        let got: Vec<(Loc, Kind, Vec<u8>)> = segs
            .records_from(Loc {
                file: first[0].file,
                offset: 0,
                len: 0,
            })
            .unwrap();
        let expect = vec![
            (first[0], Kind::Block, b"b1".to_vec()),
            (first[1], Kind::Run, b"r1".to_vec()),
            (second[0], Kind::Rewritten, b"w1".to_vec()),
            (second[1], Kind::Block, b"b2".to_vec()),
            (third[0], Kind::Block, b"b3".to_vec()),
        ];
        assert_eq!(got, expect);
        assert_eq!(segs.records_from(mid).unwrap(), expect[2..]);
        // Zeros where a header should be are not a record.
        assert_eq!(parse_header(&[0; HEADER], 1 << 20), None);
    }

    #[test]
    fn a_full_file_is_closed_and_a_write_never_spans_two() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Segments::open(dir.path()).unwrap();
        let big = vec![7u8; (SEGMENT_BYTES / 3) as usize];
        let mut locs = Vec::new();
        for _ in 0..4 {
            locs.extend(segs.write(&frames(&[&big, b"tail"])).unwrap());
        }
        let files: Vec<u32> = locs.iter().map(|l| l.file).collect();
        assert_eq!(files, [1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(segs.read(locs[7]).unwrap(), b"tail");
        assert_eq!(
            segs.disk_bytes(),
            4 * (big.len() as u64 + 4 + 2 * HEADER as u64)
        );
    }
}
