//! The batch writer: a bounded queue in front of one task that group-commits everything
//! waiting into the store and answers every waiting request once its group is durable; stores
//! that pipeline (sled) may have several groups in flight. A full queue is refused at once
//! (the caller answers 503), so memory never grows with offered load.
//!
//! With one runtime per core (`server::cores`) there is one such queue and task per core, a
//! *lane*: a request queues on its own core's lane, the lane's task gathers what that core's
//! requests queued, and its answers wake tasks of its own runtime (no wake-up of another
//! thread per request). The lanes share the byte budget and the groups in flight.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::{PendingWrite, Store, StoreError, WriteOutcome};
use crate::model::{StoredBatch, VisitorKey};
use crate::telemetry::Metrics;

/// Queue bounds (see `[limits]` in the config).
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Batches that may wait for the writer.
    pub queue_batches: usize,
    /// Decoded bytes that may wait for the writer, summed over queued batches.
    pub queue_bytes: usize,
    /// Most batches in one group commit.
    pub max_group: usize,
}

/// Why a write or an erasure did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The store failed; every batch of the group gets this error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The writer task stopped before answering.
    #[error("the writer has stopped")]
    Stopped,
}

/// The answer a request waits for.
pub type WriteResult = Result<WriteOutcome, WriteError>;

/// A queued batch's answer, once the writer has written it (or failed to).
pub struct Pending(oneshot::Receiver<WriteResult>);

impl Pending {
    pub async fn outcome(self) -> WriteResult {
        self.0.await.unwrap_or(Err(WriteError::Stopped))
    }
}

struct Job {
    batch: StoredBatch,
    done: oneshot::Sender<WriteResult>,
    _budget: OwnedSemaphorePermit,
}

/// Erasure work that must not race a group commit, run by the writer between groups.
enum Maintenance {
    Forget { site: String, visitor: VisitorKey, done: oneshot::Sender<Result<usize, StoreError>> },
    Expire { site: String, before_ms: i64, limit: usize, done: oneshot::Sender<Result<usize, StoreError>> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the write queue is full")]
    Full,
    #[error("the server is shutting down")]
    Closed,
}

/// Cloneable handle that request handlers submit batches through.
#[derive(Clone)]
pub struct Writer {
    lanes: Arc<[mpsc::Sender<Job>]>,
    maintenance: mpsc::Sender<Maintenance>,
    budget_kib: Arc<Semaphore>,
    max_kib: u32,
}

thread_local! {
    /// The lane of the runtime this thread runs (0 on threads that run none of them).
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// Marks this thread as the one running lane `i`'s runtime (`server::cores` calls it).
pub fn set_lane(i: usize) {
    LANE.with(|l| l.set(i));
}

impl Writer {
    /// Starts one lane on each runtime of `on` (one lane on the current runtime when `on` is
    /// empty); [`WriterTask::finish`] stops them after draining their queues.
    pub fn spawn(store: Arc<dyn Store>, config: &WriterConfig, metrics: Metrics, on: &[Handle]) -> (Self, WriterTask) {
        let current = [Handle::current()];
        let on = if on.is_empty() { &current[..] } else { on };
        let per_lane = config.queue_batches.max(1).div_ceil(on.len());
        let max_kib = u32::try_from((config.queue_bytes / 1024).max(1)).unwrap_or(u32::MAX);
        let (maintenance, maintenance_rx) = mpsc::channel(MAINTENANCE_QUEUE);
        let mut maintenance_rx = Some(maintenance_rx);
        // Shared by the lanes: erasure waits for every lane's groups.
        let in_flight = Arc::new(Semaphore::new(store.groups_in_flight().max(1)));
        let (mut lanes, mut closes, mut handles) = (Vec::new(), Vec::new(), Vec::new());
        for handle in on {
            let (tx, rx) = mpsc::channel(per_lane);
            let (close, closed) = oneshot::channel();
            // Only the first lane takes erasure jobs; the others' channel is closed at once.
            let maintenance = maintenance_rx.take().unwrap_or_else(|| mpsc::channel(1).1);
            let queues = Queues { batches: rx, maintenance, closed };
            let lane = run(store.clone(), queues, config.max_group.max(1), metrics.clone(), in_flight.clone());
            handles.push(handle.spawn(lane));
            lanes.push(tx);
            closes.push(close);
        }
        let budget_kib = Arc::new(Semaphore::new(max_kib as usize));
        let writer = Self { lanes: lanes.into(), maintenance, budget_kib, max_kib };
        (writer, WriterTask { closes, handles, store })
    }

    /// Queues `batch` (whose decoded size was `bytes`) on this thread's lane and returns where
    /// its result will arrive.
    pub fn submit(&self, batch: StoredBatch, bytes: usize) -> Result<Pending, SubmitError> {
        let kib = u32::try_from(bytes / 1024 + 1).unwrap_or(u32::MAX).min(self.max_kib);
        let budget = match self.budget_kib.clone().try_acquire_many_owned(kib) {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(SubmitError::Full),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(SubmitError::Closed),
        };
        let (done, rx) = oneshot::channel();
        let job = Job { batch, done, _budget: budget };
        let tx = &self.lanes[LANE.with(Cell::get) % self.lanes.len()];
        match tx.try_send(job) {
            Ok(()) => Ok(Pending(rx)),
            Err(mpsc::error::TrySendError::Full(_)) => Err(SubmitError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Closed),
        }
    }

    /// Erases a visitor's sessions (see [`Store::forget_visitor`]); waits for the writer.
    pub async fn forget(&self, site: &str, visitor: VisitorKey) -> Result<usize, WriteError> {
        let (done, rx) = oneshot::channel();
        self.maintain(Maintenance::Forget { site: site.to_owned(), visitor, done }, rx).await
    }

    /// Deletes up to `limit` sessions anchored before `before_ms` (see [`Store::expire`]).
    pub async fn expire(&self, site: &str, before_ms: i64, limit: usize) -> Result<usize, WriteError> {
        let (done, rx) = oneshot::channel();
        self.maintain(Maintenance::Expire { site: site.to_owned(), before_ms, limit, done }, rx).await
    }

    async fn maintain(
        &self,
        job: Maintenance,
        rx: oneshot::Receiver<Result<usize, StoreError>>,
    ) -> Result<usize, WriteError> {
        self.maintenance.send(job).await.map_err(|_| WriteError::Stopped)?;
        Ok(rx.await.map_err(|_| WriteError::Stopped)??)
    }

    pub fn depth(&self) -> usize {
        self.lanes.iter().map(|tx| tx.max_capacity() - tx.capacity()).sum()
    }
}

/// The running writer; stop it with [`WriterTask::finish`].
pub struct WriterTask {
    closes: Vec<oneshot::Sender<()>>,
    handles: Vec<JoinHandle<()>>,
    store: Arc<dyn Store>,
}

impl WriterTask {
    /// Refuses new batches, writes everything already queued, flushes, and waits for that.
    pub async fn finish(self) {
        for close in self.closes {
            let _ = close.send(());
        }
        for handle in self.handles {
            if let Err(e) = handle.await {
                tracing::error!(error = %e, "writer task failed");
            }
        }
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "final flush failed");
        }
    }
}

/// Erasure requests waiting for the writer; more make the caller wait.
const MAINTENANCE_QUEUE: usize = 64;

struct Queues {
    batches: mpsc::Receiver<Job>,
    maintenance: mpsc::Receiver<Maintenance>,
    closed: oneshot::Receiver<()>,
}

async fn run(store: Arc<dyn Store>, mut queues: Queues, max_group: usize, metrics: Metrics, in_flight: Arc<Semaphore>) {
    let depth = store.groups_in_flight().max(1);
    let mut jobs = Vec::with_capacity(max_group);
    let mut closing = false;
    loop {
        let rx = &mut queues.batches;
        let received = tokio::select! {
            n = rx.recv_many(&mut jobs, max_group) => n,
            Some(job) = queues.maintenance.recv(), if !closing => {
                // Erasure must see every group before it applied, and none during it.
                drain(&in_flight, depth).await;
                maintain(store.as_ref(), job).await;
                continue;
            }
            _ = &mut queues.closed, if !closing => {
                // New submissions now fail with `Closed`; what is queued is still written.
                closing = true;
                rx.close();
                queues.maintenance.close();
                continue;
            }
        };
        if received == 0 {
            break;
        }
        if jobs.len() < max_group && !closing {
            gather(rx, &mut jobs, max_group).await;
        }
        // Taken only now: a lane waiting for batches must not hold a place an erasure waits for.
        let slot = in_flight.clone().acquire_owned().await.expect("never closed");
        while jobs.len() < max_group {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        metrics.queue_depth.set(rx.len() as i64);
        let (batches, waiters): (Vec<StoredBatch>, Vec<_>) =
            jobs.drain(..).map(|j| (j.batch, (j.done, j._budget))).unzip();
        metrics.group_batches.observe(batches.len() as f64);
        let events: Vec<u64> = batches.iter().map(|b| b.events.len() as u64).collect();
        let pending = store.clone().begin_write(batches.into());
        tokio::spawn(answer(pending, waiters, events, metrics.clone(), slot));
    }
    drain(&in_flight, depth).await;
    while let Ok(job) = queues.maintenance.try_recv() {
        maintain(store.as_ref(), job).await;
    }
    metrics.queue_depth.set(0);
}

/// Lets the request tasks that are ready on this worker run once, then takes what they queued
/// into the same group. Without it nine groups in ten held one batch at 32 connections (each
/// woke the group log and the applier threads, and each was one more record and answer); the
/// wait is one turn of the scheduler, no timer.
async fn gather(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, max_group: usize) {
    tokio::task::yield_now().await;
    while jobs.len() < max_group {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

/// Waits until no group is in flight.
async fn drain(in_flight: &Semaphore, depth: usize) {
    let all = u32::try_from(depth).unwrap_or(u32::MAX);
    drop(in_flight.acquire_many(all).await.expect("never closed"));
}

/// Waits for one group to be durable and answers its requests, then counts its outcomes;
/// `slot` frees its place in flight once the store is done with the group.
async fn answer(
    pending: PendingWrite,
    waiters: Vec<(oneshot::Sender<WriteResult>, OwnedSemaphorePermit)>,
    events: Vec<u64>,
    metrics: Metrics,
    slot: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let mut waiting = Some(waiters);
    if let Some(durable) = pending.durable {
        // A stored batch and a duplicate get the same answer; which it was is counted below.
        let answer = durable.await.map(|()| WriteOutcome::Stored).map_err(WriteError::Store);
        metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        for (done, _budget) in waiting.take().into_iter().flatten() {
            let _ = done.send(answer.clone());
        }
    }
    let result = pending.outcomes.await;
    drop(slot);
    if let Some(waiters) = waiting {
        metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(outcomes) => {
                for ((done, _budget), outcome) in waiters.into_iter().zip(outcomes) {
                    let _ = done.send(Ok(*outcome));
                }
            }
            Err(e) => {
                for (done, _budget) in waiters {
                    let _ = done.send(Err(WriteError::Store(e.clone())));
                }
            }
        }
    }
    match result {
        Ok(outcomes) => {
            for (outcome, n) in outcomes.into_iter().zip(events) {
                match outcome {
                    WriteOutcome::Stored => {
                        metrics.batches_accepted.inc();
                        metrics.events_accepted.inc_by(n);
                    }
                    WriteOutcome::Duplicate => {
                        metrics.batches_duplicate.inc();
                    }
                }
            }
        }
        Err(e) => tracing::error!(error = %e, batches = events.len(), "group commit failed"),
    }
}

async fn maintain(store: &dyn Store, job: Maintenance) {
    match job {
        Maintenance::Forget { site, visitor, done } => {
            let _ = done.send(store.forget_visitor(&site, visitor).await);
        }
        Maintenance::Expire { site, before_ms, limit, done } => {
            let _ = done.send(store.expire(&site, before_ms, limit).await);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{Client, Event, EventData, Id128};
    use crate::store::sled::SledStore;

    fn batch(n: u8) -> StoredBatch {
        let events = (0..5).map(|i| Event { t: 1_000 + i, data: EventData::Scroll { y: i as f64 } }).collect();
        let client = Client { device: "desktop".into(), browser: "chrome".into() };
        StoredBatch::new("s".into(), VisitorKey([n; 16]), Id128([n; 16]), 0, 1_000, client, events)
    }

    /// Two lanes on two single-threaded runtimes, each driven by its own thread as
    /// `server::cores` drives them: a batch queued from each lane's thread is stored and
    /// answered, and an erasure goes through while both lanes idle on empty queues (a lane that
    /// held its place in flight while idle would keep the erasure waiting for ever).
    #[test]
    fn lanes_answer_their_own_batches_and_erasure_passes_idle_lanes() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path(), 16 << 20).unwrap());
        let (mut handles, mut stops, mut threads) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..2 {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (stop, stopped) = oneshot::channel::<()>();
            handles.push(runtime.handle().clone());
            stops.push(stop);
            threads.push(std::thread::spawn(move || {
                set_lane(i);
                runtime.block_on(async move { drop(stopped.await) });
            }));
        }
        let test = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        test.block_on(async {
            let config = WriterConfig { queue_batches: 8, queue_bytes: 1 << 20, max_group: 16 };
            let (writer, task) = Writer::spawn(store.clone(), &config, Metrics::new().0, &handles);
            for (i, handle) in handles.iter().enumerate() {
                let writer = writer.clone();
                let queued =
                    handle.spawn(async move { writer.submit(batch(i as u8 + 1), 100).unwrap().outcome().await });
                assert!(matches!(queued.await.unwrap(), Ok(WriteOutcome::Stored)));
            }
            let erased = tokio::time::timeout(Duration::from_secs(20), writer.expire("s", 0, 10)).await;
            assert!(matches!(erased, Ok(Ok(0))), "the erasure waited on idle lanes: {erased:?}");
            task.finish().await;
        });
        for stop in stops {
            let _ = stop.send(());
        }
        for thread in threads {
            thread.join().unwrap();
        }
    }
}
