//! One thread per core, each with its own single-threaded Tokio runtime that owns the
//! connections it is handed: a connection's tasks (its HTTP/1 or HTTP/2 driver, its watchdog,
//! its request handlers) never move between threads, and no worker steals or parks for another.
//! The accept loop stays on the caller's runtime and deals accepted sockets out in turn; each
//! core also runs a lane of the batch writer (`store::writer`), so a request's group is
//! gathered, written and answered from its own thread.

use std::future::Future;
use std::pin::Pin;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

/// A connection's whole life, started on the core it is handed to.
pub type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Core {
    handle: Handle,
    work: mpsc::UnboundedSender<Work>,
    stop: oneshot::Sender<()>,
    stopped: oneshot::Receiver<()>,
    thread: JoinHandle<()>,
}

/// The per-core threads; [`Cores::stop`] ends them.
pub struct Cores {
    cores: Vec<Core>,
    next: usize,
}

impl Cores {
    /// Starts one thread per available core (at least one).
    pub fn start() -> std::io::Result<Self> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cores = (0..n).map(start_core).collect::<std::io::Result<_>>()?;
        Ok(Self { cores, next: 0 })
    }

    /// The cores' runtimes, to spawn long-lived tasks on (the writer's lanes).
    pub fn handles(&self) -> Vec<Handle> {
        self.cores.iter().map(|c| c.handle.clone()).collect()
    }

    /// Runs `work` on the next core in turn.
    pub fn spawn(&mut self, work: impl Future<Output = ()> + Send + 'static) {
        let core = &self.cores[self.next];
        self.next = (self.next + 1) % self.cores.len();
        // A core that is gone only goes at `stop`; the work (and its socket) is dropped then.
        let _ = core.work.send(Box::pin(work));
    }

    /// Ends every core: what still runs there is dropped (call after the graceful drain), then
    /// the runtimes shut down on their own threads, never inside this async context.
    pub async fn stop(self) {
        let mut waits = Vec::with_capacity(self.cores.len());
        for core in self.cores {
            drop(core.work);
            let _ = core.stop.send(());
            waits.push((core.stopped, core.thread));
        }
        for (stopped, thread) in waits {
            let _ = stopped.await;
            if thread.join().is_err() {
                tracing::error!("a core thread panicked");
            }
        }
    }
}

fn start_core(i: usize) -> std::io::Result<Core> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (work, mut work_rx) = mpsc::unbounded_channel::<Work>();
    let (stop, mut stop_rx) = oneshot::channel::<()>();
    let (stopped_tx, stopped) = oneshot::channel();
    let handle = runtime.handle().clone();
    let thread = std::thread::Builder::new().name(format!("hushtale-core-{i}")).spawn(move || {
        crate::store::writer::set_lane(i);
        runtime.block_on(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop_rx => break,
                    Some(work) = work_rx.recv() => drop(tokio::spawn(work)),
                }
            }
        });
        // Outside any async context: dropping cancels the tasks left and waits for blocking ones.
        drop(runtime);
        let _ = stopped_tx.send(());
    })?;
    Ok(Core { handle, work, stop, stopped, thread })
}
