//! The group log: an append-only write-ahead log of group commits, so that a group is durable
//! after one `fdatasync` of one file instead of a flush of the store. Each group is a record
//! `[magic u32][payload length u32][group id u64][crc32 u32][payload]` (little endian; the
//! checksum covers the id and the payload); ids increase by one from record to record. Files
//! are named by the id of their first group and retired whole once the store has made every
//! group in them durable on its own.
//!
//! Reading stops at the first record that is torn, fails its checksum or breaks the sequence:
//! only the tail of the last write can be damaged by a crash, and no group in it was
//! acknowledged, because acknowledgement waits for the sync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0x4854_4c31; // "HTL1"
const HEADER: usize = 20;
/// A record larger than this is damage, not data (groups are bounded by the write queue).
const MAX_PAYLOAD: usize = 1 << 30;

/// The open log: appends go to the newest file; older files wait to be retired.
pub struct GroupLog {
    dir: PathBuf,
    /// The file being appended to and the id of its first group (`None` until the first append
    /// after opening or rotating).
    current: Option<(File, u64)>,
    /// Files no longer appended to: (first group id, path), oldest first.
    older: Vec<(u64, PathBuf)>,
    /// The id the next appended group must have.
    next: u64,
    /// Set after a failed write or sync: the file's state is unknown, so nothing more is
    /// acknowledged from this log.
    failed: bool,
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
        let mut groups = Vec::new();
        for (first, path) in &files {
            // A file that does not continue the sequence follows a torn tail: nothing in it
            // was acknowledged.
            if groups.last().is_some_and(|g: &LoggedGroup| g.id + 1 != *first) {
                break;
            }
            read_file(path, *first, &mut groups)?;
        }
        let next = groups.last().map_or(0, |g| g.id).max(after) + 1;
        Ok((Self { dir: dir.to_owned(), current: None, older: files, next, failed: false }, groups))
    }

    /// The id the next appended group gets.
    pub fn next_id(&self) -> u64 {
        self.next
    }

    /// Appends groups (ids must continue the sequence) in one write and syncs the data; when
    /// this returns `Ok` they survive a crash.
    pub fn append(&mut self, groups: &[(u64, &[u8])]) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("the group log failed earlier; restart to recover"));
        }
        let result = self.append_and_sync(groups);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn append_and_sync(&mut self, groups: &[(u64, &[u8])]) -> io::Result<()> {
        let Some(&(first, _)) = groups.first() else { return Ok(()) };
        let len: usize = groups.iter().map(|(_, p)| HEADER + p.len()).sum();
        let mut buf = Vec::with_capacity(len);
        for (id, payload) in groups {
            if *id != self.next || payload.len() > MAX_PAYLOAD {
                return Err(io::Error::other(format!("group {id} out of sequence (expected {})", self.next)));
            }
            encode_record(&mut buf, *id, payload);
            self.next += 1;
        }
        if self.current.is_none() {
            let path = self.path_of(first);
            let file = OpenOptions::new().create_new(true).append(true).mode(0o600).open(&path)?;
            // The new name must survive a crash too.
            File::open(&self.dir)?.sync_all()?;
            self.current = Some((file, first));
        }
        let (file, _) = self.current.as_mut().expect("opened above");
        file.write_all(&buf)?;
        file.sync_data()
    }

    /// Starts a new file at the next append, so that the current one can be retired later.
    pub fn rotate(&mut self) {
        if let Some((_, first)) = self.current.take() {
            self.older.push((first, self.path_of(first)));
        }
    }

    /// Deletes every older file whose groups all have ids up to `durable` (made durable by the
    /// store). Returns how many files were deleted.
    pub fn retire(&mut self, durable: u64) -> io::Result<usize> {
        let mut retired = 0;
        while let Some((_, path)) = self.older.first() {
            // A file ends where the next one (or the current one, or the next append) begins.
            let end =
                self.older.get(1).map(|(f, _)| *f).or(self.current.as_ref().map(|(_, f)| *f)).unwrap_or(self.next);
            if end - 1 > durable {
                break;
            }
            match fs::remove_file(path) {
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

fn encode_record(buf: &mut Vec<u8>, id: u64, payload: &[u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&id.to_le_bytes());
    crc.update(payload);
    buf.extend_from_slice(&MAGIC.to_le_bytes());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Reads the intact records of one file, whose first group is `first`, onto `groups`.
fn read_file(path: &Path, first: u64, groups: &mut Vec<LoggedGroup>) -> io::Result<()> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut rest = &bytes[..];
    let mut expected = first;
    while let Some((id, payload, after)) = decode_record(rest) {
        if id != expected {
            break;
        }
        groups.push(LoggedGroup { id, payload: payload.to_vec() });
        expected += 1;
        rest = after;
    }
    Ok(())
}

/// One intact record at the start of `bytes`: (id, payload, the bytes after it).
fn decode_record(bytes: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    let header = bytes.get(..HEADER)?;
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    if word(0) != MAGIC {
        return None;
    }
    let len = word(4) as usize;
    let id = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let payload = bytes.get(HEADER..HEADER.checked_add(len)?)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&id.to_le_bytes());
    crc.update(payload);
    (crc.finalize() == word(16)).then(|| (id, payload, &bytes[HEADER + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(groups: &[LoggedGroup]) -> Vec<u64> {
        groups.iter().map(|g| g.id).collect()
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
    fn a_torn_or_corrupt_tail_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = GroupLog::open(dir.path(), 0).unwrap();
        log.append(&[(1, b"kept"), (2, b"also kept")]).unwrap();
        drop(log);
        let path = dir.path().join(format!("{:020}.log", 1));
        let whole = fs::read(&path).unwrap();

        // A crash in the middle of the next write: half a record.
        let mut torn = whole.clone();
        encode_record(&mut torn, 3, b"never acknowledged");
        torn.truncate(whole.len() + 25);
        fs::write(&path, &torn).unwrap();
        assert_eq!(ids(&GroupLog::open(dir.path(), 0).unwrap().1), [1, 2]);

        // A flipped bit in the last record's payload: it and everything after are ignored.
        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 1;
        encode_record(&mut flipped, 3, b"after the damage");
        fs::write(&path, &flipped).unwrap();
        let (log, read) = GroupLog::open(dir.path(), 0).unwrap();
        assert_eq!(ids(&read), [1]);
        assert_eq!(log.next_id(), 2);
    }

    #[test]
    fn out_of_sequence_appends_are_refused_and_poison_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = GroupLog::open(dir.path(), 0).unwrap();
        assert!(log.append(&[(5, b"x")]).is_err());
        assert!(log.append(&[(1, b"x")]).is_err(), "nothing more after a failure");
    }

    #[test]
    fn retiring_deletes_only_files_the_store_has_made_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = GroupLog::open(dir.path(), 0).unwrap();
        log.append(&[(1, b"a"), (2, b"b")]).unwrap();
        log.rotate();
        log.append(&[(3, b"c")]).unwrap();
        log.rotate();
        log.append(&[(4, b"d")]).unwrap();
        assert_eq!(log.retire(1).unwrap(), 0, "group 2 is not durable yet");
        assert_eq!(log.retire(3).unwrap(), 2);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "the current file stays");
        drop(log);
        assert_eq!(ids(&GroupLog::open(dir.path(), 3).unwrap().1), [4]);
    }
}
