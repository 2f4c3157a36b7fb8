//! Spare log files: written out to their full size ahead of time (or recycled from retired
//! log files), so that appending a group overwrites blocks the file already has. ext4's
//! `fdatasync` of an overwrite only writes the data; of an append it also commits the file's
//! new size through the journal — about four times the latency. A background thread keeps a
//! few spares ready at the current file capacity, off the logger's path.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Spares kept ready (beyond them, retired files are deleted rather than recycled).
const READY: usize = 2;
pub const KEPT: usize = 4;
/// File capacity at start; it grows (up to [`MAX_CAPACITY`]) while files fill up before the
/// checkpoint retires them, so an idle store keeps small files and a busy one large ones.
pub const START_CAPACITY: u64 = 4 << 20;
pub const MAX_CAPACITY: u64 = 64 << 20;
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The pool of spare files and the thread that prepares them.
pub struct Spares {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Written out to at least the capacity they were prepared for: ready to use.
    ready: Vec<PathBuf>,
    /// Recycled files waiting to be topped up.
    pending: Vec<PathBuf>,
    capacity: u64,
    /// Numbers the next new spare's name.
    counter: u64,
    /// Only once a log has been written to are spares worth preparing.
    wanted: bool,
    stop: bool,
}

impl State {
    fn spares(&self) -> usize {
        self.ready.len() + self.pending.len()
    }
}

impl Spares {
    /// Adopts the spares `dir` holds (`*.spare`) and starts the preparing thread.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let mut state = State { capacity: START_CAPACITY, ..State::default() };
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "spare") {
                let n = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok());
                state.counter = state.counter.max(n.unwrap_or(0) + 1);
                state.pending.push(path);
            }
        }
        let shared = Arc::new(Shared { dir: dir.to_owned(), state: Mutex::new(state), wake: Condvar::new() });
        let thread = std::thread::Builder::new().name("hushtale-logprep".into()).spawn({
            let shared = shared.clone();
            move || prepare(&shared)
        })?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// A ready spare, if there is one (never waits), and asks for another to be prepared.
    pub fn take(&self) -> Option<PathBuf> {
        let mut state = self.shared.lock();
        state.wanted = true;
        let taken = state.ready.pop();
        self.shared.wake.notify_one();
        taken
    }

    /// The size spares are written out to now.
    pub fn capacity(&self) -> u64 {
        self.shared.lock().capacity
    }

    /// A log file filled up before it was retired: prepare larger ones.
    pub fn grow(&self) {
        let mut state = self.shared.lock();
        state.capacity = (state.capacity * 4).min(MAX_CAPACITY);
        // Ready spares are topped up to the new capacity before they are handed out again.
        let ready = std::mem::take(&mut state.ready);
        state.pending.extend(ready);
        self.shared.wake.notify_one();
    }

    /// Turns a retired log file (every group in it durable elsewhere) into a spare, or deletes
    /// it when enough spares are kept. The old records stay in it until overwritten; readers
    /// tell them from new ones by the file's nonce.
    pub fn recycle(&self, path: &Path) -> io::Result<()> {
        let mut state = self.shared.lock();
        if state.spares() >= KEPT {
            drop(state);
            return remove(path);
        }
        let spare = self.shared.dir.join(format!("{:020}.spare", state.counter));
        state.counter += 1;
        fs::rename(path, &spare)?;
        state.pending.push(spare);
        self.shared.wake.notify_one();
        Ok(())
    }
}

#[cfg(test)]
impl Spares {
    /// Waits until every spare known is ready.
    pub fn wait_ready(&self) {
        while !self.shared.lock().pending.is_empty() || self.shared.lock().ready.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the preparing thread does next: top up a recycled file, or write a new one.
enum Work {
    TopUp(PathBuf),
    Create(PathBuf),
}

fn prepare(shared: &Shared) {
    loop {
        let (work, capacity) = {
            let mut state = shared.lock();
            loop {
                if state.stop {
                    return;
                }
                if let Some(path) = state.pending.pop() {
                    break (Work::TopUp(path), state.capacity);
                }
                if state.wanted && state.ready.len() < READY {
                    let path = shared.dir.join(format!("{:020}.spare", state.counter));
                    state.counter += 1;
                    break (Work::Create(path), state.capacity);
                }
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let path = match &work {
            Work::TopUp(p) | Work::Create(p) => p.clone(),
        };
        match write_out(&path, capacity, matches!(work, Work::Create(_))) {
            Ok(()) => shared.lock().ready.push(path),
            Err(e) => {
                tracing::warn!(error = %e, file = %path.display(), "could not prepare a spare group log file");
                let _ = remove(&path);
                // Try again later rather than spin on a full disk.
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

/// Extends `path` with zeros to `capacity` bytes and makes blocks and size durable.
fn write_out(path: &Path, capacity: u64, create: bool) -> io::Result<()> {
    let file = if create {
        OpenOptions::new().create_new(true).write(true).mode(0o600).open(path)?
    } else {
        OpenOptions::new().write(true).open(path)?
    };
    let mut at = file.metadata()?.len();
    if at >= capacity {
        return Ok(());
    }
    while at < capacity {
        let n = ZEROS.len().min((capacity - at) as usize);
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    file.sync_all()
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Opens a spare for writing under its new log file name; the rename is made durable (with
/// the directory) before anything written to it is acknowledged.
pub fn adopt(spare: &Path, name: &Path, dir: &Path) -> io::Result<File> {
    let file = OpenOptions::new().write(true).open(spare)?;
    fs::rename(spare, name)?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}
