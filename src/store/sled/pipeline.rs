//! The sled store's write pipeline. sled cannot apply a batch while it flushes (one global
//! lock), and a flush per group costs a log write plus `sync_file_range`; so durability comes
//! from the [`GroupLog`] instead. Each group goes to two threads at once: the logger appends it
//! to the log and syncs (coalescing whatever queued meanwhile into one sync), the applier
//! applies it to sled without flushing (likewise coalesced into one sled batch). A group is
//! answered when both are done: on disk in the log, visible to reads in sled. The checkpointer
//! flushes sled every [`CHECKPOINT`] and retires the log files sled then holds durably; at
//! start, groups the log holds beyond sled's durable position are applied again
//! ([`recover`]).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::rollup_cache::RollupCache;
use super::{keys, write, Trees};
use crate::model::{Client, EventData, Id128, StoredBatch, VisitorKey};
use crate::store::log::GroupLog;
use crate::store::{PendingWrite, StoreError, WriteOutcome};

/// How often sled is flushed (and the log shortened): what a restart after a crash replays.
pub const CHECKPOINT: Duration = Duration::from_secs(1);

/// What the logger thread is asked to do.
enum ToLogger {
    Append {
        id: u64,
        batches: Arc<[StoredBatch]>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// sled holds every group up to `durable`: start a new file and delete the old ones.
    Checkpoint {
        durable: u64,
        done: Option<mpsc::Sender<()>>,
    },
}

struct ToApplier {
    id: u64,
    batches: Arc<[StoredBatch]>,
    done: oneshot::Sender<Result<Vec<WriteOutcome>, StoreError>>,
}

/// Where new groups enter, in order: id assignment and both sends happen under one lock, so
/// the log and sled see groups in the same order.
struct Entry {
    next: u64,
    logger: Sender<ToLogger>,
    applier: Sender<ToApplier>,
}

/// The running pipeline; dropping it stops and joins its threads.
pub struct Pipeline {
    entry: Mutex<Option<Entry>>,
    db: sled::Db,
    /// The last group applied to sled (made durable by the next flush).
    applied: Arc<AtomicU64>,
    stop: Mutex<Option<Sender<()>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts the threads; `log` must be recovered already ([`recover`]).
    pub fn start(db: sled::Db, trees: Trees, log: GroupLog, last_segment: Arc<AtomicU64>) -> std::io::Result<Self> {
        let next = log.next_id();
        let applied = Arc::new(AtomicU64::new(next - 1));
        let (logger, logger_rx) = mpsc::channel();
        let (applier, applier_rx) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel();
        let spawn = |name: &str| std::thread::Builder::new().name(name.to_owned());
        let threads = vec![
            spawn("hushtale-log").spawn(move || run_logger(log, logger_rx))?,
            spawn("hushtale-apply").spawn({
                let applied = applied.clone();
                move || run_applier(&trees, &last_segment, &applied, applier_rx)
            })?,
            spawn("hushtale-checkpoint").spawn({
                let (db, applied, logger) = (db.clone(), applied.clone(), logger.clone());
                move || run_checkpointer(&db, &applied, &logger, &stop_rx)
            })?,
        ];
        Ok(Self {
            entry: Mutex::new(Some(Entry { next, logger, applier })),
            db,
            applied,
            stop: Mutex::new(Some(stop)),
            threads,
        })
    }

    /// Starts a group; the future resolves once it is in the log on disk and applied to sled.
    pub fn submit(&self, batches: Arc<[StoredBatch]>) -> PendingWrite {
        let (logged, logged_rx) = oneshot::channel();
        let (applied, applied_rx) = oneshot::channel();
        let sent = {
            let mut entry = self.entry.lock().unwrap_or_else(|e| e.into_inner());
            match entry.as_mut() {
                Some(e) => {
                    let id = e.next;
                    e.next += 1;
                    let to_log = ToLogger::Append { id, batches: batches.clone(), done: logged };
                    e.logger.send(to_log).is_ok() && e.applier.send(ToApplier { id, batches, done: applied }).is_ok()
                }
                None => false,
            }
        };
        Box::pin(async move {
            let stopped = || StoreError::Backend("the write pipeline has stopped".into());
            if !sent {
                return Err(stopped());
            }
            let outcomes = applied_rx.await.map_err(|_| stopped())?;
            logged_rx.await.map_err(|_| stopped())?.map_err(|e| StoreError::Backend(format!("group log: {e}")))?;
            outcomes
        })
    }

    /// Flushes sled and retires the log files it made redundant; blocks until done. Call only
    /// when no group is in flight to have the log emptied entirely.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let logger = self.entry.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|e| e.logger.clone());
        let durable = self.applied.load(Ordering::Acquire);
        self.db.flush()?;
        if let Some(logger) = logger {
            let (done, wait) = mpsc::channel();
            if logger.send(ToLogger::Checkpoint { durable, done: Some(done) }).is_ok() {
                let _ = wait.recv();
            }
        }
        Ok(())
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.entry.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn run_logger(mut log: GroupLog, rx: Receiver<ToLogger>) {
    while let Ok(first) = rx.recv() {
        let mut appends = Vec::new();
        let mut checkpoints = Vec::new();
        for message in std::iter::once(first).chain(rx.try_iter()) {
            match message {
                ToLogger::Append { id, batches, done } => appends.push((id, encode_group(&batches), done)),
                ToLogger::Checkpoint { durable, done } => checkpoints.push((durable, done)),
            }
        }
        let records: Vec<(u64, &[u8])> = appends.iter().map(|(id, payload, _)| (*id, payload.as_slice())).collect();
        let result = log.append(&records).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, groups = appends.len(), "group log append failed");
        }
        for (_, _, done) in appends {
            let _ = done.send(result.clone());
        }
        for (durable, done) in checkpoints {
            log.rotate();
            if let Err(e) = log.retire(durable) {
                tracing::warn!(error = %e, "could not delete a group log file");
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
    }
}

/// Most groups the applier merges into one sled batch.
const MAX_COALESCED: usize = 64;

fn run_applier(trees: &Trees, last_segment: &AtomicU64, applied: &AtomicU64, rx: Receiver<ToApplier>) {
    let mut rollups = RollupCache::default();
    while let Ok(first) = rx.recv() {
        let jobs: Vec<ToApplier> = std::iter::once(first).chain(rx.try_iter().take(MAX_COALESCED - 1)).collect();
        let last = jobs.last().expect("one at least").id;
        let batches: Vec<&StoredBatch> = jobs.iter().flat_map(|j| j.batches.iter()).collect();
        match write::write_group(trees, &|| super::next_segment_id(last_segment), &batches, last, &mut rollups) {
            Ok(outcomes) => {
                applied.store(last, Ordering::Release);
                let mut outcomes = outcomes.into_iter();
                for job in jobs {
                    let _ = job.done.send(Ok(outcomes.by_ref().take(job.batches.len()).collect()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, groups = jobs.len(), "applying a group to sled failed");
                for job in jobs {
                    let _ = job.done.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
    }
}

fn run_checkpointer(db: &sled::Db, applied: &AtomicU64, logger: &Sender<ToLogger>, stop: &Receiver<()>) {
    let mut last = applied.load(Ordering::Acquire);
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT) {
        let durable = applied.load(Ordering::Acquire);
        if durable == last {
            continue;
        }
        match db.flush() {
            Ok(_) => {
                last = durable;
                let _ = logger.send(ToLogger::Checkpoint { durable, done: None });
            }
            Err(e) => tracing::error!(error = %e, "sled checkpoint flush failed"),
        }
    }
}

/// Applies the groups the log holds beyond sled's durable position (a crash lost them from
/// sled, or never let sled write them), flushes, and empties the log. Re-applying a group sled
/// already has is harmless: its batches are `Duplicate`s. Returns how many batches were applied.
pub fn recover(
    dir: &std::path::Path,
    db: &sled::Db,
    trees: &Trees,
    last_segment: &AtomicU64,
) -> Result<(GroupLog, usize), StoreError> {
    let io = |e: std::io::Error| StoreError::Backend(format!("group log {}: {e}", dir.display()));
    let durable = applied_position(&trees.main)?;
    let (mut log, groups) = GroupLog::open(dir, durable).map_err(io)?;
    let mut replayed = 0;
    let mut rollups = RollupCache::default();
    for group in groups.iter().filter(|g| g.id > durable) {
        let batches = decode_group(&group.payload)?;
        let refs: Vec<&StoredBatch> = batches.iter().collect();
        write::write_group(trees, &|| super::next_segment_id(last_segment), &refs, group.id, &mut rollups)?;
        replayed += batches.len();
    }
    db.flush()?;
    log.retire(log.next_id() - 1).map_err(io)?;
    Ok((log, replayed))
}

/// The id of the last group sled holds (0 before the first).
pub fn applied_position(main: &sled::Tree) -> Result<u64, StoreError> {
    match main.get(keys::LOG_APPLIED)? {
        Some(v) => {
            Ok(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt("log position".into()))?))
        }
        None => Ok(0),
    }
}

/// One batch as the log holds it: what [`write::write_group`] needs, events as stored.
#[derive(Serialize, Deserialize)]
struct LoggedBatch<'a> {
    #[serde(borrow)]
    site: Cow<'a, str>,
    #[serde(with = "serde_bytes")]
    visitor: Cow<'a, [u8]>,
    #[serde(with = "serde_bytes")]
    sid: Cow<'a, [u8]>,
    seq: u32,
    received: i64,
    #[serde(borrow)]
    device: Cow<'a, str>,
    #[serde(borrow)]
    browser: Cow<'a, str>,
    #[serde(with = "serde_bytes")]
    events: Cow<'a, [u8]>,
}

fn encode_group(batches: &[StoredBatch]) -> Vec<u8> {
    let logged: Vec<LoggedBatch> = batches
        .iter()
        .map(|b| LoggedBatch {
            site: Cow::Borrowed(&b.site),
            visitor: Cow::Borrowed(&b.visitor.0),
            sid: Cow::Borrowed(&b.sid.0),
            seq: b.seq,
            received: b.received,
            device: Cow::Borrowed(&b.client.device),
            browser: Cow::Borrowed(&b.client.browser),
            events: Cow::Borrowed(&b.encoded),
        })
        .collect();
    rmp_serde::to_vec(&logged).expect("logged batches always serialise")
}

fn decode_group(payload: &[u8]) -> Result<Vec<StoredBatch>, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("group log record: {e}"));
    let logged: Vec<LoggedBatch> = rmp_serde::from_slice(payload).map_err(|e| corrupt(&e))?;
    logged
        .into_iter()
        .map(|b| {
            let id = |bytes: &[u8]| <[u8; 16]>::try_from(bytes).map_err(|e| corrupt(&e));
            let mut events: Vec<crate::model::Event> = serde_json::from_slice(&b.events).map_err(|e| corrupt(&e))?;
            // As on the request path: nothing after the queue reads a snapshot's tree.
            for event in &mut events {
                if let EventData::Snap { d } | EventData::Mut { d } = &mut event.data {
                    *d = serde_json::Value::Null;
                }
            }
            Ok(StoredBatch {
                site: b.site.into_owned(),
                visitor: VisitorKey(id(&b.visitor)?),
                sid: Id128(id(&b.sid)?),
                seq: b.seq,
                received: b.received,
                client: Client { device: b.device.into_owned(), browser: b.browser.into_owned() },
                events,
                encoded: bytes::Bytes::from(b.events.into_owned()),
            })
        })
        .collect()
}
