//! The batch writer: a bounded queue in front of two threads of its own. The *applier* takes
//! everything waiting and writes it into the store as one atomic group; the *flusher* makes
//! groups durable and only then answers every waiting request, so 204 means on disk. While one
//! group is flushed the next is applied, and one flush covers every group applied before it.
//! A full queue is refused at once (the caller answers 503), so memory never grows with load.
//!
//! Why threads and not tasks: a request's wait for 204 is a chain of wake-ups, and on a busy
//! machine each costs a scheduling delay. Here a group costs two (request → applier → flusher)
//! plus the answers, where tokio tasks handing blocking store calls to `spawn_blocking` cost
//! five (see the README's load-run table).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::{Store, WriteOutcome};
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

/// The answer a request waits for.
pub type WriteResult = Result<WriteOutcome, String>;

struct Job {
    batch: StoredBatch,
    done: oneshot::Sender<WriteResult>,
    _budget: OwnedSemaphorePermit,
}

/// Erasure work that must not race a group commit, run by the writer between groups.
enum Maintenance {
    Forget { site: String, visitor: VisitorKey, done: oneshot::Sender<Result<usize, String>> },
    Expire { site: String, before_ms: i64, limit: usize, done: oneshot::Sender<Result<usize, String>> },
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
    tx: mpsc::Sender<Job>,
    maintenance: mpsc::Sender<Maintenance>,
    budget_kib: Arc<Semaphore>,
    max_kib: u32,
}

impl Writer {
    /// Starts the writer's threads; [`WriterTask::finish`] stops them after draining the queue.
    /// Must be called inside a tokio runtime (the threads drive their channels with its handle).
    pub fn spawn(store: Arc<dyn Store>, config: &WriterConfig, metrics: Metrics) -> (Self, WriterTask) {
        let (tx, rx) = mpsc::channel(config.queue_batches.max(1));
        let max_kib = u32::try_from((config.queue_bytes / 1024).max(1)).unwrap_or(u32::MAX);
        let (close, closed) = oneshot::channel();
        let (maintenance, maintenance_rx) = mpsc::channel(MAINTENANCE_QUEUE);
        let queues = Queues { batches: rx, maintenance: maintenance_rx, closed };
        let (applied_tx, applied_rx) = mpsc::channel(GROUPS_AWAITING_FLUSH);
        let (stopped_tx, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Handle::current();
        let (flusher_store, flusher_metrics, flusher_runtime) = (store.clone(), metrics.clone(), runtime.clone());
        let max_group = config.max_group.max(1);
        let flusher = std::thread::Builder::new()
            .name("hushtale-flush".into())
            .spawn(move || flusher_runtime.block_on(flush_groups(flusher_store, applied_rx, flusher_metrics)))
            .expect("spawn the flusher thread");
        std::thread::Builder::new()
            .name("hushtale-write".into())
            .spawn(move || {
                runtime.block_on(apply_groups(store, queues, applied_tx, max_group, metrics));
                // The applier dropped its sender: the flusher answers what is left and stops.
                let _ = flusher.join();
                let _ = stopped_tx.send(());
            })
            .expect("spawn the writer thread");
        let writer = Self { tx, maintenance, budget_kib: Arc::new(Semaphore::new(max_kib as usize)), max_kib };
        (writer, WriterTask { close, stopped })
    }

    /// Queues `batch` (whose decoded size was `bytes`) and returns where its result will arrive.
    pub fn submit(&self, batch: StoredBatch, bytes: usize) -> Result<oneshot::Receiver<WriteResult>, SubmitError> {
        let kib = u32::try_from(bytes / 1024 + 1).unwrap_or(u32::MAX).min(self.max_kib);
        let budget = match self.budget_kib.clone().try_acquire_many_owned(kib) {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(SubmitError::Full),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(SubmitError::Closed),
        };
        let (done, rx) = oneshot::channel();
        let job = Job { batch, done, _budget: budget };
        match self.tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(_)) => Err(SubmitError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Closed),
        }
    }

    /// Erases a visitor's sessions (see [`Store::forget_visitor`]); waits for the writer.
    pub async fn forget(&self, site: &str, visitor: VisitorKey) -> Result<usize, String> {
        let (done, rx) = oneshot::channel();
        self.maintain(Maintenance::Forget { site: site.to_owned(), visitor, done }, rx).await
    }

    /// Deletes up to `limit` sessions anchored before `before_ms` (see [`Store::expire`]).
    pub async fn expire(&self, site: &str, before_ms: i64, limit: usize) -> Result<usize, String> {
        let (done, rx) = oneshot::channel();
        self.maintain(Maintenance::Expire { site: site.to_owned(), before_ms, limit, done }, rx).await
    }

    async fn maintain(&self, job: Maintenance, rx: oneshot::Receiver<Result<usize, String>>) -> Result<usize, String> {
        self.maintenance.send(job).await.map_err(|_| "the writer has stopped".to_owned())?;
        rx.await.map_err(|_| "the writer has stopped".to_owned())?
    }

    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// The running writer; stop it with [`WriterTask::finish`].
pub struct WriterTask {
    close: oneshot::Sender<()>,
    stopped: oneshot::Receiver<()>,
}

impl WriterTask {
    /// Refuses new batches, writes everything already queued, flushes, and waits for that.
    pub async fn finish(self) {
        let _ = self.close.send(());
        if self.stopped.await.is_err() {
            tracing::error!("writer thread failed");
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

/// Applied groups that may wait for the flusher; more make the applier wait (backpressure).
const GROUPS_AWAITING_FLUSH: usize = 64;

/// A group applied to the store, waiting for the flush that makes it durable.
struct Applied {
    waiters: Vec<(oneshot::Sender<WriteResult>, OwnedSemaphorePermit)>,
    outcomes: Vec<WriteOutcome>,
    events: Vec<u64>,
    started: Instant,
}

/// The applier thread: takes everything waiting (up to `max_group`), writes it as one group
/// without flushing, hands it to the flusher, and runs erasure work between groups.
async fn apply_groups(
    store: Arc<dyn Store>,
    mut queues: Queues,
    applied: mpsc::Sender<Applied>,
    max_group: usize,
    metrics: Metrics,
) {
    let mut jobs = Vec::with_capacity(max_group);
    let mut closing = false;
    let rx = &mut queues.batches;
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut jobs, max_group) => n,
            Some(job) = queues.maintenance.recv(), if !closing => {
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
        metrics.queue_depth.set(rx.len() as i64);
        let (batches, waiters): (Vec<StoredBatch>, Vec<_>) =
            jobs.drain(..).map(|j| (j.batch, (j.done, j._budget))).unzip();
        let events: Vec<u64> = batches.iter().map(|b| b.events.len() as u64).collect();
        metrics.group_batches.observe(batches.len() as f64);
        let started = Instant::now();
        let written = match store.blocking_writes() {
            Some(local) => local.write_unflushed(&batches),
            None => store.write(batches.into()).await,
        };
        match written {
            Ok(outcomes) => {
                if applied.send(Applied { waiters, outcomes, events, started }).await.is_err() {
                    tracing::error!("the flusher stopped; group left unanswered");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batches = waiters.len(), "group commit failed");
                for (done, _budget) in waiters {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }
    }
    while let Ok(job) = queues.maintenance.try_recv() {
        maintain(store.as_ref(), job).await;
    }
    metrics.queue_depth.set(0);
}

/// The flusher thread: one flush for every group applied so far, then their answers.
async fn flush_groups(store: Arc<dyn Store>, mut applied: mpsc::Receiver<Applied>, metrics: Metrics) {
    let mut groups = Vec::new();
    while applied.recv_many(&mut groups, GROUPS_AWAITING_FLUSH).await > 0 {
        // Stores without a blocking path are durable when `write` returns; `flush` is cheap there.
        let flushed = match store.blocking_writes() {
            Some(local) => local.flush(),
            None => store.flush().await,
        };
        for group in groups.drain(..) {
            answer(group, flushed.as_ref().map_err(|e| e.to_string()), &metrics);
        }
    }
    if let Err(e) = store.flush().await {
        tracing::error!(error = %e, "final flush failed");
    }
}

/// Answers every request of a group once its flush is done: 204 means on disk.
fn answer(applied: Applied, flushed: Result<&(), String>, metrics: &Metrics) {
    metrics.flush_seconds.observe(applied.started.elapsed().as_secs_f64());
    if let Err(e) = flushed {
        tracing::error!(error = %e, batches = applied.waiters.len(), "group flush failed");
        for (done, _budget) in applied.waiters {
            let _ = done.send(Err(e.clone()));
        }
        return;
    }
    for (((done, _budget), outcome), n) in applied.waiters.into_iter().zip(applied.outcomes).zip(applied.events) {
        match outcome {
            WriteOutcome::Stored => {
                metrics.batches_accepted.inc();
                metrics.events_accepted.inc_by(n);
            }
            WriteOutcome::Duplicate => {
                metrics.batches_duplicate.inc();
            }
        }
        let _ = done.send(Ok(outcome));
    }
}

async fn maintain(store: &dyn Store, job: Maintenance) {
    match job {
        Maintenance::Forget { site, visitor, done } => {
            let _ = done.send(store.forget_visitor(&site, visitor).await.map_err(|e| e.to_string()));
        }
        Maintenance::Expire { site, before_ms, limit, done } => {
            let _ = done.send(store.expire(&site, before_ms, limit).await.map_err(|e| e.to_string()));
        }
    }
}
