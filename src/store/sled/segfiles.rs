//! Replay segments on disk, outside sled: append-only files per site and UTC day (rolled by
//! size) under `store/segments/<site hex>/<day>-<roll>.seg`, indexed in sled's main tree (segment
//! id → [`Location`]) next to each file's committed length ([`keys::segment_file`]).
//!
//! Why: sled keeps the values of freshly written segments in its tree nodes far beyond its cache
//! budget and writes large ones as blob files; segments are written once and read rarely, so a
//! plain file and a 21-byte index entry cost less memory and CPU.
//!
//! Crash safety: the drain appends a memtable's segments, `fdatasync`s each file it touched, and
//! only then puts the index entries and new lengths into the same atomic sled batch as the
//! session records pointing at them. So whatever sled recovers, its files hold it; bytes past a
//! file's committed length (a torn tail, or a drain sled lost in a crash that the group log
//! then replays) belong to nothing and are cut off at open ([`SegmentFiles::open`]), so a
//! replayed segment is never there twice and no unindexed copy of an event survives to escape
//! an erasure. Files without a committed length are deleted at open for the same reason.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::keys;
use crate::store::StoreError;

/// A file takes no more segments once it is this large (a segment may take it a little beyond).
pub const FILE_BYTES: u64 = 64 << 20;
/// A UTC day in µs: segment ids are µs since the epoch, and a segment's file is its id's day.
pub const DAY_US: u64 = 86_400_000_000;
/// Open file handles kept before the cache is emptied.
const MAX_HANDLES: usize = 256;

/// One segment file: a site's `roll`-th file of UTC day `day` (days since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub site: String,
    pub day: u32,
    pub roll: u32,
}

/// Where a segment lies: its file (of the site it is indexed under), offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub day: u32,
    pub roll: u32,
    pub offset: u64,
    pub len: u32,
}

impl Location {
    const VERSION: u8 = 1;
    pub const ENCODED: usize = 21;

    pub fn encode(&self) -> [u8; Self::ENCODED] {
        let mut out = [0; Self::ENCODED];
        out[0] = Self::VERSION;
        out[1..5].copy_from_slice(&self.day.to_be_bytes());
        out[5..9].copy_from_slice(&self.roll.to_be_bytes());
        out[9..17].copy_from_slice(&self.offset.to_be_bytes());
        out[17..21].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt("segment index entry".into());
        if b.len() != Self::ENCODED || b[0] != Self::VERSION {
            return Err(corrupt());
        }
        let word = |r: std::ops::Range<usize>| u32::from_be_bytes(b[r].try_into().expect("4 bytes"));
        Ok(Self {
            day: word(1..5),
            roll: word(5..9),
            offset: u64::from_be_bytes(b[9..17].try_into().expect("8 bytes")),
            len: word(17..21),
        })
    }

    pub fn file(&self, site: &str) -> FileKey {
        FileKey { site: site.to_owned(), day: self.day, roll: self.roll }
    }
}

/// What a drain appended: index entries and file lengths for its sled batch, and how to undo
/// the appends if that batch fails.
#[derive(Default)]
pub struct Appended {
    /// `(index key, encoded location)` per segment.
    pub entries: Vec<(Vec<u8>, [u8; Location::ENCODED])>,
    /// `(length key, new length)` per file touched.
    pub lengths: Vec<(Vec<u8>, u64)>,
    /// Each touched file's length before the appends.
    before: HashMap<FileKey, u64>,
}

impl Appended {
    /// Puts the index entries and file lengths into `batch`, the sled batch that commits them.
    pub fn put_into(&self, batch: &mut sled::Batch) {
        for (key, location) in &self.entries {
            batch.insert(key.as_slice(), location.as_slice());
        }
        for (key, len) in &self.lengths {
            batch.insert(key.as_slice(), &len.to_be_bytes());
        }
    }
}

/// The segment files of a store; every use goes through [`SegmentFiles::lock`], so a drain,
/// an erasure and a read never see each other half done.
pub struct SegmentFiles {
    files: Mutex<Files>,
}

/// The files as the lock holder sees them.
pub struct Files {
    dir: PathBuf,
    /// Every file's length (what has been written to it).
    lens: HashMap<FileKey, u64>,
    /// Per site and day: the roll appends go to.
    rolls: HashMap<(String, u32), u32>,
    handles: HashMap<FileKey, File>,
}

impl SegmentFiles {
    /// Opens the files under `dir`, cutting each back to the length `main` holds for it and
    /// deleting those it holds none for (see the module docs).
    pub fn open(dir: &Path, main: &sled::Tree) -> Result<Self, StoreError> {
        let io = |e: io::Error| StoreError::Backend(format!("segment files {}: {e}", dir.display()));
        create_private_dir(dir).map_err(io)?;
        let mut files =
            Files { dir: dir.to_owned(), lens: HashMap::new(), rolls: HashMap::new(), handles: HashMap::new() };
        for (key, path) in list(dir).map_err(io)? {
            let committed = match main.get(keys::segment_file(&key.site, key.day, key.roll))? {
                Some(v) => {
                    u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt("file length".into()))?)
                }
                None => {
                    std::fs::remove_file(&path).map_err(io)?;
                    continue;
                }
            };
            let file = OpenOptions::new().read(true).write(true).open(&path).map_err(io)?;
            let on_disk = file.metadata().map_err(io)?.len();
            if on_disk > committed {
                file.set_len(committed).map_err(io)?;
                file.sync_all().map_err(io)?;
            } else if on_disk < committed {
                tracing::error!(file = %path.display(), on_disk, committed, "a segment file is shorter than sled says");
            }
            files.note(key, committed);
        }
        Ok(Self { files: Mutex::new(files) })
    }

    pub fn lock(&self) -> MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every `(file, path)` under `dir`; names that are not ours are left alone.
fn list(dir: &Path) -> io::Result<Vec<(FileKey, PathBuf)>> {
    let mut out = Vec::new();
    for site_dir in std::fs::read_dir(dir)? {
        let site_dir = site_dir?.path();
        let Some(site) = site_dir.file_name().and_then(|n| hex::decode(n.to_str()?).ok()) else { continue };
        let Ok(site) = String::from_utf8(site) else { continue };
        if !site_dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&site_dir)? {
            let path = file?.path();
            let name = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".seg"));
            let parsed =
                name.and_then(|n| n.split_once('-')).and_then(|(d, r)| Some((d.parse().ok()?, r.parse().ok()?)));
            if let Some((day, roll)) = parsed {
                out.push((FileKey { site: site.clone(), day, roll }, path));
            }
        }
    }
    Ok(out)
}

impl Files {
    fn note(&mut self, key: FileKey, len: u64) {
        let roll = self.rolls.entry((key.site.clone(), key.day)).or_insert(key.roll);
        *roll = (*roll).max(key.roll);
        self.lens.insert(key, len);
    }

    fn path_of(&self, key: &FileKey) -> PathBuf {
        self.dir.join(hex::encode(&key.site)).join(format!("{}-{}.seg", key.day, key.roll))
    }

    /// The open handle of `key`'s file, created (and its name made durable) if need be.
    fn handle(&mut self, key: &FileKey) -> io::Result<&File> {
        if !self.handles.contains_key(key) {
            if self.handles.len() >= MAX_HANDLES {
                self.handles.clear();
            }
            let path = self.path_of(key);
            let file = match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => create(&path)?,
                Err(e) => return Err(e),
            };
            self.handles.insert(key.clone(), file);
        }
        Ok(&self.handles[key])
    }

    /// Appends each `(site, id, bytes)` segment to its file and syncs every file touched.
    pub fn append<'a>(&mut self, segments: impl Iterator<Item = (&'a str, u64, &'a [u8])>) -> io::Result<Appended> {
        let mut appended = Appended::default();
        let result = self.append_unsynced(segments, &mut appended);
        let result = result.and_then(|()| appended.before.keys().try_for_each(|k| self.handles[k].sync_data()));
        match result {
            Ok(()) => Ok(appended),
            Err(e) => {
                self.undo(&appended);
                Err(e)
            }
        }
    }

    fn append_unsynced<'a>(
        &mut self,
        segments: impl Iterator<Item = (&'a str, u64, &'a [u8])>,
        out: &mut Appended,
    ) -> io::Result<()> {
        for (site, id, bytes) in segments {
            let day = (id / DAY_US) as u32;
            let mut roll = self.rolls.get(&(site.to_owned(), day)).copied().unwrap_or(0);
            let mut key = FileKey { site: site.to_owned(), day, roll };
            let mut len = self.lens.get(&key).copied().unwrap_or(0);
            if len > 0 && len + bytes.len() as u64 > FILE_BYTES {
                roll += 1;
                key.roll = roll;
                len = self.lens.get(&key).copied().unwrap_or(0);
            }
            out.before.entry(key.clone()).or_insert(len);
            self.handle(&key)?.write_all_at(bytes, len)?;
            let location = Location { day, roll, offset: len, len: bytes.len() as u32 };
            out.entries.push((keys::segment(site, id), location.encode()));
            self.note(key, len + bytes.len() as u64);
        }
        out.lengths = out.before.keys().map(|k| (keys::segment_file(&k.site, k.day, k.roll), self.lens[k])).collect();
        Ok(())
    }

    /// Cuts the files an [`Appended`] touched back to their lengths before it (its sled batch
    /// failed: nothing may point at the bytes, so none may stay).
    pub fn undo(&mut self, appended: &Appended) {
        for (key, len) in &appended.before {
            let undone = self.handle(key).and_then(|f| f.set_len(*len).and_then(|()| f.sync_all()));
            match undone {
                Ok(()) => {
                    self.lens.insert(key.clone(), *len);
                }
                Err(e) => tracing::error!(error = %e, "could not cut back a segment file after a failed drain"),
            }
        }
    }

    /// The bytes `range` of the segment at `at` (of `site`).
    pub fn read(&mut self, site: &str, at: &Location, range: std::ops::Range<usize>) -> Result<Vec<u8>, StoreError> {
        if range.end > at.len as usize {
            return Err(StoreError::Corrupt("reference outside segment".into()));
        }
        let mut buf = vec![0; range.len()];
        let file = self.handle(&at.file(site)).map_err(|e| StoreError::Backend(format!("segment file: {e}")))?;
        file.read_exact_at(&mut buf, at.offset + range.start as u64)
            .map_err(|e| StoreError::Corrupt(format!("segment file: {e}")))?;
        Ok(buf)
    }

    /// Overwrites `ranges` of the segment at `at` with `fill` (not synced: see [`Files::sync`]);
    /// returns its file.
    pub fn overwrite(
        &mut self,
        site: &str,
        at: &Location,
        ranges: &[std::ops::Range<usize>],
        fill: u8,
    ) -> Result<FileKey, StoreError> {
        let key = at.file(site);
        let io = |e: io::Error| StoreError::Backend(format!("segment file: {e}"));
        let file = self.handle(&key).map_err(io)?;
        for r in ranges.iter().filter(|r| r.end <= at.len as usize) {
            file.write_all_at(&vec![fill; r.len()], at.offset + r.start as u64).map_err(io)?;
        }
        Ok(key)
    }

    /// `fdatasync`s each of `files`.
    pub fn sync(&mut self, files: &HashSet<FileKey>) -> Result<(), StoreError> {
        let io = |e: io::Error| StoreError::Backend(format!("segment file: {e}"));
        for key in files {
            self.handle(key).and_then(File::sync_data).map_err(io)?;
        }
        Ok(())
    }

    /// The files of `site` whose every segment is older than `cutoff_us` (a segment id).
    pub fn older_than(&self, site: &str, cutoff_us: u64) -> Vec<FileKey> {
        self.lens.keys().filter(|k| k.site == site && (u64::from(k.day) + 1) * DAY_US <= cutoff_us).cloned().collect()
    }

    /// Deletes `key`'s file (its index entries and length are gone from sled already).
    pub fn delete(&mut self, key: &FileKey) -> Result<(), StoreError> {
        self.handles.remove(key);
        self.lens.remove(key);
        let path = self.path_of(key);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Backend(format!("deleting {}: {e}", path.display()))),
        }
        if let Some(parent) = path.parent() {
            File::open(parent).and_then(|d| d.sync_all()).map_err(|e| StoreError::Backend(e.to_string()))?;
        }
        Ok(())
    }
}

/// Creates `dir` (and its missing parents) owner-only, like the rest of the data folder.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates a segment file readable by the owner only, its name durable.
fn create(path: &Path) -> io::Result<File> {
    let parent = path.parent().expect("segment files live in a site folder");
    if !parent.exists() {
        create_private_dir(parent)?;
        File::open(parent.parent().expect("site folders live in the segments folder"))?.sync_all()?;
    }
    let file = OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(path)?;
    File::open(parent)?.sync_all()?;
    Ok(file)
}
