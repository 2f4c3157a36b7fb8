//! The group log: a write-ahead log of group commits, so that a group is durable after one
//! `fdatasync` of one file instead of a flush of the store. Each group is a record
//! `[magic u32][payload length u32][group id u64][file nonce u64][crc32 u32][payload]` (little
//! endian; the checksum covers id, nonce and payload); ids increase by one from record to
//! record. Files are named by the id of their first group and retired whole once the store has
//! made every group in them durable on its own.
//!
//! Files are written in place: a new log file is a spare written out to its full size ahead of
//! time, or a retired log file recycled ([`spares`]), so a group's sync is an overwrite, not an
//! append (no journal commit of a new file size). A recycled file still holds its old records
//! after the tail; they carry another nonce, so reading ends there.
//!
//! Reading stops at the first record that is torn, fails its checksum, carries another nonce or
//! breaks the sequence: only the tail of the last write can be damaged by a crash, and no group
//! in it was acknowledged, because acknowledgement waits for the sync.

mod spares;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use spares::Spares;

const MAGIC: u32 = 0x4854_4c32; // "HTL2"
/// Records of the first format (no nonce; files were only ever appended to) still read.
const MAGIC_V1: u32 = 0x4854_4c31; // "HTL1"
const HEADER: usize = 28;
const HEADER_V1: usize = 20;
/// A record larger than this is damage, not data (groups are bounded by the write queue).
const MAX_PAYLOAD: usize = 1 << 30;

/// The open log: appends go to the newest file; older files wait to be retired.
pub struct GroupLog {
    dir: PathBuf,
    /// The file being written (`None` until the first append after opening or rotating).
    current: Option<Current>,
    /// Files no longer appended to: (first group id, path), oldest first.
    older: Vec<(u64, PathBuf)>,
    /// The id the next appended group must have.
    next: u64,
    /// Set after a failed write or sync: the file's state is unknown, so nothing more is
    /// acknowledged from this log.
    failed: bool,
    spares: Spares,
}

struct Current {
    file: File,
    /// The id of its first group (its name).
    first: u64,
    /// Marks this use of the file: records of an earlier use (a recycled file) carry another.
    nonce: u64,
    /// Where the next record goes.
    end: u64,
    /// Written out to this size (writes below it are overwrites); past it, the next group
    /// goes to another file.
    capacity: u64,
}

/// A group read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedGroup {
    pub id: u64,
    pub payload: Vec<u8>,
}

impl GroupLog {
    /// Opens the log in `dir` (created if missing) and reads every intact group, in order.
    /// New groups are numbered from `after + 1` or past the last group read, whichever is
    /// larger, so ids never repeat even when the store is ahead of the log.
    pub fn open(dir: &Path, after: u64) -> io::Result<(Self, Vec<LoggedGroup>)> {
        // Owner-only, like the rest of the data folder: the log holds events.
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let files = log_files(dir)?;
        let mut groups = Vec::new();
        for (i, (first, path)) in files.iter().enumerate() {
            // A file's groups all come before the next file's first: when those are durable
            // in the store, the file need not be read (it may be one whose retirement a crash
            // undid).
            if files.get(i + 1).is_some_and(|(next, _)| *next <= after + 1) {
                continue;
            }
            // A file that does not continue the sequence follows a torn tail: nothing in it
            // was acknowledged.
            if groups.last().is_some_and(|g: &LoggedGroup| g.id + 1 != *first) {
                break;
            }
            read_file(path, *first, &mut groups)?;
        }
        let next = groups.last().map_or(0, |g| g.id).max(after) + 1;
        let spares = Spares::open(dir)?;
        Ok((Self { dir: dir.to_owned(), current: None, older: files, next, failed: false, spares }, groups))
    }

    /// The id the next appended group gets.
    pub fn next_id(&self) -> u64 {
        self.next
    }

    /// Appends groups (ids must continue the sequence) in one write and syncs the data; when
    /// this returns `Ok` they survive a crash.
    pub fn append(&mut self, groups: &[(u64, &[u8])]) -> io::Result<()> {
        let mut records = Records::default();
        for (id, payload) in groups {
            records.push(*id, |buf| buf.extend_from_slice(payload));
        }
        self.append_records(&mut records)
    }

    /// [`GroupLog::append`] for groups whose payloads were written straight into `records`;
    /// `records` is left empty (its buffer kept for the next groups).
    pub fn append_records(&mut self, records: &mut Records) -> io::Result<()> {
        if self.failed {
            records.clear();
            return Err(io::Error::other("the group log failed earlier; restart to recover"));
        }
        let result = self.append_and_sync(records);
        records.clear();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn append_and_sync(&mut self, records: &mut Records) -> io::Result<()> {
        let Some(&(first, _)) = records.starts.first() else { return Ok(()) };
        let len = records.buf.len();
        if self.current.as_ref().is_some_and(|c| c.end > 0 && c.end + len as u64 > c.capacity) {
            // Full before the checkpoint retired it: later files should be larger.
            self.spares.grow();
            self.rotate();
        }
        if self.current.is_none() {
            self.current = Some(self.start_file(first)?);
        }
        let current = self.current.as_mut().expect("opened above");
        for (i, &(id, start)) in records.starts.iter().enumerate() {
            let end = records.starts.get(i + 1).map_or(len, |&(_, next)| next);
            if id != self.next || end - start - HEADER > MAX_PAYLOAD {
                return Err(io::Error::other(format!("group {id} out of sequence (expected {})", self.next)));
            }
            put_header(&mut records.buf[start..end], id, current.nonce);
            self.next += 1;
        }
        current.file.write_all_at(&records.buf, current.end)?;
        current.end += len as u64;
        current.file.sync_data()
    }

    /// The file for groups from `first` on: a spare if one is ready, else a new (appended,
    /// so slower to sync) file. Its name is durable before anything in it is acknowledged.
    fn start_file(&mut self, first: u64) -> io::Result<Current> {
        let path = self.path_of(first);
        // A file of that name holds no group (none was read from it): it is replaced.
        self.older.retain(|(f, _)| *f != first);
        let adopted = self.spares.take().and_then(|spare| match spares::adopt(&spare, &path, &self.dir) {
            Ok(file) => Some(file),
            Err(e) => {
                tracing::warn!(error = %e, "could not use a spare group log file");
                None
            }
        });
        let (file, capacity) = match adopted {
            Some(file) => {
                let written = file.metadata()?.len();
                (file, written)
            }
            None => {
                let file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
                File::open(&self.dir)?.sync_all()?;
                // Appended to: moved off (to a spare) once as large as a spare would be.
                (file, self.spares.capacity())
            }
        };
        let nonce = rand::random::<u64>().max(1);
        Ok(Current { file, first, nonce, end: 0, capacity })
    }

    /// Starts a new file at the next append, so that the current one can be retired later.
    pub fn rotate(&mut self) {
        if let Some(current) = self.current.take() {
            self.older.push((current.first, self.path_of(current.first)));
        }
    }

    /// Retires every older file whose groups all have ids up to `durable` (made durable by the
    /// store): recycled as a spare, or deleted. Returns how many files were retired.
    pub fn retire(&mut self, durable: u64) -> io::Result<usize> {
        self.retire_files(durable, false)
    }

    /// After an erasure: rotates and deletes (never recycles) every file whose groups are
    /// durable in the store, and every spare, so no copy of erased events stays in the log's
    /// files. Returns how many log files were deleted.
    pub fn erase(&mut self, durable: u64) -> io::Result<usize> {
        self.rotate();
        let deleted = self.retire_files(durable, true)?;
        self.spares.discard()?;
        Ok(deleted)
    }

    fn retire_files(&mut self, durable: u64, delete: bool) -> io::Result<usize> {
        let mut retired = 0;
        while let Some((_, path)) = self.older.first() {
            // A file ends where the next one (or the current one, or the next append) begins.
            let end =
                self.older.get(1).map(|(f, _)| *f).or(self.current.as_ref().map(|c| c.first)).unwrap_or(self.next);
            if end - 1 > durable {
                break;
            }
            let retired_file = if delete { spares::remove(path) } else { self.spares.recycle(path) };
            match retired_file {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.older.remove(0);
            retired += 1;
        }
        Ok(retired)
    }

    fn path_of(&self, first: u64) -> PathBuf {
        self.dir.join(format!("{first:020}.log"))
    }
}

/// The log files in `dir`: (first group id, path), oldest first.
fn log_files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let first = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok());
        match first {
            Some(first) if path.extension().is_some_and(|e| e == "log") => files.push((first, path)),
            _ => {}
        }
    }
    files.sort();
    Ok(files)
}

/// Groups laid out as records for one [`GroupLog::append_records`]: each payload is written
/// straight into the write buffer behind room for its header, which is filled in once the file
/// (and with it the nonce) is known — so a payload is copied once, not encoded into a buffer of
/// its own and then copied into the record.
#[derive(Debug, Default)]
pub struct Records {
    buf: Vec<u8>,
    /// Each record's group id and where its header starts in `buf`.
    starts: Vec<(u64, usize)>,
}

impl Records {
    /// Adds group `id`, whose payload `write` appends to the buffer it is given.
    pub fn push(&mut self, id: u64, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        self.buf.resize(start + HEADER, 0);
        write(&mut self.buf);
        self.starts.push((id, start));
    }

    /// Forgets the records, keeping the buffer's capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.starts.clear();
    }
}

/// Fills in the header at the start of `record` (header and payload).
fn put_header(record: &mut [u8], id: u64, nonce: u64) {
    let (header, payload) = record.split_at_mut(HEADER);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&id.to_le_bytes());
    crc.update(&nonce.to_le_bytes());
    crc.update(payload);
    header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..16].copy_from_slice(&id.to_le_bytes());
    header[16..24].copy_from_slice(&nonce.to_le_bytes());
    header[24..28].copy_from_slice(&crc.finalize().to_le_bytes());
}

/// Reads the intact records of one file, whose first group is `first`, onto `groups`.
fn read_file(path: &Path, first: u64, groups: &mut Vec<LoggedGroup>) -> io::Result<()> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut rest = &bytes[..];
    let mut expected = first;
    let mut file_nonce = None;
    while let Some(record) = decode_record(rest) {
        // The first record's nonce marks this use of the file; an earlier use's records (a
        // recycled file) carry another.
        if record.id != expected || *file_nonce.get_or_insert(record.nonce) != record.nonce {
            break;
        }
        groups.push(LoggedGroup { id: record.id, payload: record.payload.to_vec() });
        expected += 1;
        rest = record.rest;
    }
    Ok(())
}

/// One intact record and the bytes after it.
struct Record<'a> {
    id: u64,
    nonce: u64,
    payload: &'a [u8],
    rest: &'a [u8],
}

/// The intact record at the start of `bytes`, if there is one.
fn decode_record(bytes: &[u8]) -> Option<Record<'_>> {
    let word = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let long = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let (header, nonce, crc) = match word(0)? {
        MAGIC => (HEADER, long(16)?, word(24)?),
        MAGIC_V1 => (HEADER_V1, 0, word(16)?),
        _ => return None,
    };
    let len = word(4)? as usize;
    let id = long(8)?;
    let payload = bytes.get(header..header.checked_add(len)?)?;
    let mut sum = crc32fast::Hasher::new();
    sum.update(&id.to_le_bytes());
    if header == HEADER {
        sum.update(&nonce.to_le_bytes());
    }
    sum.update(payload);
    (sum.finalize() == crc).then(|| Record { id, nonce, payload, rest: &bytes[header + len..] })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One whole record, as [`GroupLog::append`] writes it.
    fn encode_record(buf: &mut Vec<u8>, id: u64, nonce: u64, payload: &[u8]) {
        let start = buf.len();
        buf.resize(start + HEADER, 0);
        buf.extend_from_slice(payload);
        put_header(&mut buf[start..], id, nonce);
    }

    fn ids(groups: &[LoggedGroup]) -> Vec<u64> {
        groups.iter().map(|g| g.id).collect()
    }

    fn log_names(dir: &Path) -> Vec<u64> {
        log_files(dir).unwrap().into_iter().map(|(first, _)| first).collect()
    }

    /// The nonce of the file's first record.
    fn nonce_of(file: &[u8]) -> u64 {
        u64::from_le_bytes(file[16..24].try_into().unwrap())
    }

    #[test]
    fn groups_read_back_in_order_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, read) = GroupLog::open(dir.path(), 0).unwrap();
        assert!(read.is_empty());
        log.append(&[(1, b"one"), (2, b"two")]).unwrap();
        log.rotate();
        log.append(&[(3, b"three")]).unwrap();
        drop(log);
        let (log, read) = GroupLog::open(dir.path(), 0).unwrap();
        assert_eq!(ids(&read), [1, 2, 3]);
        assert_eq!(read[2].payload, b"three");
        assert_eq!(log.next_id(), 4);
        // The store may be ahead of the log (everything retired): ids continue past it.
        assert_eq!(GroupLog::open(dir.path(), 9).unwrap().0.next_id(), 10);
    }

    #[test]
    fn a_new_file_takes_groups_until_it_is_as_large_as_a_spare() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = GroupLog::open(dir.path(), 0).unwrap();
        for id in 1..=5 {
            log.append(&[(id, b"group")]).unwrap();
        }
        assert_eq!(log_names(dir.path()), [1]);
    }

    #[test]
    fn a_torn_or_corrupt_tail_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = GroupLog::open(dir.path(), 0).unwrap();
        log.append(&[(1, b"kept"), (2, b"also kept")]).unwrap();
        drop(log);
        let path = dir.path().join(format!("{:020}.log", 1));
        let whole = fs::read(&path).unwrap();
        let nonce = nonce_of(&whole);

        // A crash in the middle of the next write: half a record.
        let mut torn = whole.clone();
        encode_record(&mut torn, 3, nonce, b"never acknowledged");
        torn.truncate(whole.len() + 25);
        fs::write(&path, &torn).unwrap();
        assert_eq!(ids(&GroupLog::open(dir.path(), 0).unwrap().1), [1, 2]);

        // A flipped bit in the last record's payload: it and everything after are ignored.
        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 1;
        encode_record(&mut flipped, 3, nonce, b"after the damage");
        fs::write(&path, &flipped).unwrap();
        let (log, read) = GroupLog::open(dir.path(), 0).unwrap();
        assert_eq!(ids(&read), [1]);
        assert_eq!(log.next_id(), 2);
    }

    #[test]
    fn stale_records_after_the_tail_of_a_recycled_file_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        // A retired file's old records, which happen to continue the sequence a new log starts
        // (ids 1, 2, 3), left in a spare.
        let old_nonce = 77;
        let mut stale = Vec::new();
        for (id, payload) in [(1, b"old one"), (2, b"old two"), (3, b"old 3rd")] {
            encode_record(&mut stale, id, old_nonce, payload);
        }
        fs::write(dir.path().join(format!("{:020}.spare", 0)), &stale).unwrap();

        let (mut log, read) = GroupLog::open(dir.path(), 0).unwrap();
        assert!(read.is_empty(), "a spare is not read as log");
        log.spares.wait_ready();
        // Exactly as long as the old first record: the old second one starts right at the tail.
        log.append(&[(1, b"new one")]).unwrap();
        drop(log);
        let path = dir.path().join(format!("{:020}.log", 1));
        let bytes = fs::read(&path).unwrap();
        assert!(bytes.len() as u64 >= spares::START_CAPACITY, "the spare, written out, became the log file");
        assert_eq!(&bytes[HEADER + 7..2 * (HEADER + 7)], &stale[HEADER + 7..2 * (HEADER + 7)], "old record 2 follows");

        let (log, read) = GroupLog::open(dir.path(), 0).unwrap();
        assert_eq!(ids(&read), [1], "the old records carry another nonce");
        assert_eq!(read[0].payload, b"new one");
        assert_eq!(log.next_id(), 2);
    }

    #[test]
    fn retired_files_are_recycled_and_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = GroupLog::open(dir.path(), 0).unwrap();
        let mut id = 0;
        for _ in 0..6 {
            for _ in 0..3 {
                id += 1;
                log.append(&[(id, format!("group {id}").as_bytes())]).unwrap();
            }
            log.rotate();
            // The store made all but the last three groups durable.
            log.retire(id - 3).unwrap();
            log.spares.wait_ready();
        }
        drop(log);
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert!(files <= 1 + spares::KEPT, "retired files are reused, not accumulated: {files}");
        let newest = dir.path().join(format!("{:020}.log", 16));
        assert!(fs::metadata(newest).unwrap().len() >= spares::START_CAPACITY, "written in place");
        let (_, read) = GroupLog::open(dir.path(), id - 3).unwrap();
        assert_eq!(ids(&read), [16, 17, 18]);
    }

    #[test]
    fn erasing_leaves_no_old_record_in_any_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = GroupLog::open(dir.path(), 0).unwrap();
        log.append(&[(1, b"erased event"), (2, b"erased event")]).unwrap();
        log.rotate();
        log.retire(2).unwrap();
        log.spares.wait_ready();
        log.append(&[(3, b"erased event")]).unwrap();
        assert_eq!(log.erase(3).unwrap(), 1);
        let holding = |dir: &Path| {
            let files = fs::read_dir(dir).unwrap().map(|e| fs::read(e.unwrap().path()).unwrap());
            files.filter(|bytes| bytes.windows(12).any(|w| w == b"erased event")).count()
        };
        for _ in 0..200 {
            if holding(dir.path()) == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(holding(dir.path()), 0, "neither the log nor a spare keeps erased events");
        assert!(log_names(dir.path()).is_empty());
        log.append(&[(4, b"later")]).unwrap();
    }

    #[test]
    fn out_of_sequence_appends_are_refused_and_poison_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = GroupLog::open(dir.path(), 0).unwrap();
        assert!(log.append(&[(5, b"x")]).is_err());
        assert!(log.append(&[(1, b"x")]).is_err(), "nothing more after a failure");
    }

    #[test]
    fn retiring_keeps_only_files_the_store_has_not_made_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = GroupLog::open(dir.path(), 0).unwrap();
        log.append(&[(1, b"a"), (2, b"b")]).unwrap();
        log.rotate();
        log.append(&[(3, b"c")]).unwrap();
        log.rotate();
        log.append(&[(4, b"d")]).unwrap();
        assert_eq!(log.retire(1).unwrap(), 0, "group 2 is not durable yet");
        assert_eq!(log.retire(3).unwrap(), 2);
        assert_eq!(log_names(dir.path()), [4], "the current file stays");
        drop(log);
        assert_eq!(ids(&GroupLog::open(dir.path(), 3).unwrap().1), [4]);
    }

    #[test]
    fn files_the_store_holds_durably_are_skipped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = GroupLog::open(dir.path(), 0).unwrap();
        log.append(&[(1, b"a"), (2, b"b")]).unwrap();
        log.rotate();
        log.append(&[(3, b"c"), (4, b"d")]).unwrap();
        log.rotate();
        log.append(&[(5, b"e")]).unwrap();
        let old = dir.path().join(format!("{:020}.log", 1));
        let old_bytes = fs::read(&old).unwrap();
        assert_eq!(log.retire(4).unwrap(), 2);
        drop(log);
        // A crash undid the first retirement but not the second: a gap from 2 to 5.
        fs::write(&old, old_bytes).unwrap();
        let (_, read) = GroupLog::open(dir.path(), 4).unwrap();
        assert_eq!(ids(&read), [5], "group 5 is read past the stale file");
    }
}
