//! The storage worker: one thread that owns the serving hub's writing
//! [`Hub`] and runs every piece of storage work `serve` has, so the network
//! thread never waits on SQLite, a signature check or an fsync.
//!
//! Work arrives in three bounded lanes, served in turn (one job from each
//! non-empty lane, round and round), so no lane starves another:
//! - [`Lane::Nodes`]: node requests, one turn of one peer each, fed by the
//!   serving loop's round-robin ([`super::fair`]), which keeps at most a
//!   couple in the lane;
//! - [`Lane::Api`]: the HTTP side's writes (operator exchanges, settlement
//!   runs, the expiry job): the hub has one writer;
//! - [`Lane::Chores`]: admission look-ups, link bookkeeping, the minute's
//!   economy and shard ticks.
//!
//! A full lane refuses the job at once ([`Busy`]); the caller answers
//! "busy" rather than queueing without bound.

use crate::Hub;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

/// A piece of work for the hub's writer.
pub type Job = Box<dyn FnOnce(&mut Hub) + Send>;

/// Where a job queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Node requests (one peer's turn each).
    Nodes,
    /// HTTP writes.
    Api,
    /// The serving loop's own bookkeeping.
    Chores,
}

const LANES: [Lane; 3] = [Lane::Nodes, Lane::Api, Lane::Chores];

impl Lane {
    fn index(self) -> usize {
        match self {
            Lane::Nodes => 0,
            Lane::Api => 1,
            Lane::Chores => 2,
        }
    }
}

/// A lane was full: the job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the hub is busy ({0:?} queue full); try again shortly")]
pub struct Busy(pub Lane);

/// How many jobs each lane holds at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneCaps {
    /// Node turns.
    pub nodes: usize,
    /// HTTP writes.
    pub api: usize,
    /// Bookkeeping.
    pub chores: usize,
}

impl Default for LaneCaps {
    fn default() -> Self {
        LaneCaps {
            nodes: 4,
            api: 64,
            chores: 1024,
        }
    }
}

struct State {
    lanes: [VecDeque<Job>; 3],
    caps: [usize; 3],
    /// The lane to look at first next time.
    next: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
}

/// Submits jobs to the worker; cheap to clone.
#[derive(Clone)]
pub struct WorkerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerHandle(..)")
    }
}

/// The worker thread and its hub.
pub struct Worker {
    handle: WorkerHandle,
    thread: Option<JoinHandle<Hub>>,
}

impl Worker {
    /// Starts the worker thread with the hub it will own.
    pub fn start(hub: Hub, caps: LaneCaps) -> std::io::Result<Worker> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                lanes: Default::default(),
                caps: [caps.nodes.max(1), caps.api.max(1), caps.chores.max(1)],
                next: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("hub-writer".into())
            .spawn(move || run(hub, &worker))?;
        Ok(Worker {
            handle: WorkerHandle { shared },
            thread: Some(thread),
        })
    }

    /// A handle to submit jobs.
    pub fn handle(&self) -> WorkerHandle {
        self.handle.clone()
    }

    /// Refuses new jobs, finishes the queued ones, and returns the hub.
    pub fn stop(mut self) -> Option<Hub> {
        self.close();
        self.thread.take().and_then(|t| t.join().ok())
    }

    fn close(&self) {
        let mut st = self.handle.lock();
        st.closed = true;
        self.handle.shared.ready.notify_all();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl WorkerHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` in `lane`, or refuses it if the lane is full or the
    /// worker stopped.
    pub fn submit(&self, lane: Lane, job: Job) -> Result<(), Busy> {
        let mut st = self.lock();
        let i = lane.index();
        if st.closed || st.lanes[i].len() >= st.caps[i] {
            return Err(Busy(lane));
        }
        st.lanes[i].push_back(job);
        drop(st);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Runs `f` on the writer in `lane` and awaits its result.
    pub async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce(&mut Hub) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(
            lane,
            Box::new(move |hub| {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(hub)));
                let _ = tx.send(r);
            }),
        )?;
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            // A panic in `f` panics the caller too (the HTTP server's panic
            // guard answers a generic 500); the writer goes on.
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            // The worker stopped before running it.
            Err(_) => Err(Busy(lane)),
        }
    }

    /// Jobs queued per lane now (nodes, api, chores).
    pub fn queued(&self) -> [usize; 3] {
        let st = self.lock();
        [st.lanes[0].len(), st.lanes[1].len(), st.lanes[2].len()]
    }
}

fn run(mut hub: Hub, shared: &Shared) -> Hub {
    loop {
        let job = {
            let mut st = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                let start = st.next;
                let found = (0..LANES.len())
                    .map(|k| (start + k) % LANES.len())
                    .find(|&i| !st.lanes[i].is_empty());
                if let Some(i) = found {
                    st.next = (i + 1) % LANES.len();
                    break st.lanes[i].pop_front();
                }
                if st.closed {
                    return hub;
                }
                st = shared
                    .ready
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        if let Some(job) = job {
            // A job that panics must not take the writer down: its answer
            // channel is dropped, and every store operation is a transaction
            // rolled back on drop.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut hub)));
            if outcome.is_err() {
                tracing::error!("a storage job panicked; the hub goes on with the next one");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::HubKey;
    use std::sync::mpsc;

    fn hub() -> Hub {
        Hub::in_memory(HubKey::from_secret_bytes(&[5; 32])).unwrap()
    }

    #[test]
    fn lanes_take_turns_and_refuse_when_full() {
        let w = Worker::start(
            hub(),
            LaneCaps {
                nodes: 3,
                api: 3,
                chores: 3,
            },
        )
        .unwrap();
        let h = w.handle();
        // Hold the worker on a first job while the lanes fill.
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (log_tx, log_rx) = mpsc::channel::<&'static str>();
        h.submit(
            Lane::Chores,
            Box::new(move |_| {
                let _ = go_rx.recv();
            }),
        )
        .unwrap();
        while h.queued() != [0, 0, 0] {
            std::thread::yield_now();
        }
        for (lane, name) in [
            (Lane::Nodes, "n"),
            (Lane::Nodes, "n"),
            (Lane::Nodes, "n"),
            (Lane::Api, "a"),
        ] {
            let log = log_tx.clone();
            h.submit(lane, Box::new(move |_| log.send(name).unwrap()))
                .unwrap();
        }
        assert_eq!(
            h.submit(Lane::Nodes, Box::new(|_| {})),
            Err(Busy(Lane::Nodes))
        );
        go_tx.send(()).unwrap();
        let order: Vec<&str> = (0..4).map(|_| log_rx.recv().unwrap()).collect();
        // The API job waits for at most one node turn.
        assert_eq!(order, ["n", "a", "n", "n"]);
        assert!(w.stop().is_some());
    }

    #[test]
    fn a_panicking_job_leaves_the_writer_serving() {
        let w = Worker::start(hub(), LaneCaps::default()).unwrap();
        let h = w.handle();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(h.run(Lane::Api, |_| -> () { panic!("boom") }))
        }));
        assert!(r.is_err(), "the caller sees the panic");
        let id = rt.block_on(h.run(Lane::Api, |hub| hub.hub_id())).unwrap();
        assert_eq!(id, HubKey::from_secret_bytes(&[5; 32]).id());
    }
}
