//! Group commit: one thread writes to the store, taking every batch queued while it was
//! busy into one transaction, and only then starts the pods those batches recorded. The
//! controller loop never waits for the disk, and a pod is on disk before it runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use joblet_api::k8s_openapi::api::core::v1::Pod;
use joblet_runtime::{CommitPacing, Runtime};
use joblet_store::{Batch, Store, Write};

/// Receives every committed write, in commit order (the API server's watch cache).
pub type Feed = Box<dyn Fn(Vec<Write>) + Send>;

/// Told the outcome once a batch is committed (and fed), or failed.
pub(crate) type Ack = Box<dyn FnOnce(Result<(), String>) + Send>;

enum Request {
    Write {
        batch: Batch,
        start: Vec<Pod>,
        acks: Vec<Ack>,
    },
    Barrier(mpsc::Sender<()>),
    Feed(Feed),
}

#[derive(Default)]
struct Shared {
    /// Pods handed over and not started (or dropped) yet.
    pending_starts: AtomicUsize,
    /// After an interrupt, queued pods are recorded but never started.
    cancelled: AtomicBool,
    error: Mutex<Option<String>>,
    /// Woken when a commit fails: the engine must stop, even if nothing else would wake it.
    failed: tokio::sync::Notify,
    /// Woken when the last pending start is done: an engine waiting to settle must look
    /// again, even if the pods it started sent nothing yet (or ended before it looked).
    starts_done: tokio::sync::Notify,
}

pub(crate) struct Writer {
    requests: mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

impl Writer {
    pub fn start(store: Arc<Mutex<Store>>, runtime: Runtime) -> Writer {
        let (requests, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("joblet-writer".to_string())
            .spawn(move || write_forever(&rx, &store, &runtime, &thread_shared))
            .expect("spawning the writer thread");
        Writer { requests, shared }
    }

    /// Queues a batch, pods to start once it is committed, and whom to tell.
    pub fn submit(&self, batch: Batch, start: Vec<Pod>, acks: Vec<Ack>) {
        if batch.is_empty() && start.is_empty() && acks.is_empty() {
            return;
        }
        self.shared
            .pending_starts
            .fetch_add(start.len(), Ordering::SeqCst);
        let _ = self.requests.send(Request::Write { batch, start, acks });
    }

    /// From now on, every committed write also goes to `feed`.
    pub fn feed(&self, feed: Feed) {
        let _ = self.requests.send(Request::Feed(feed));
    }

    /// Waits until everything submitted so far is committed.
    pub fn barrier(&self) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        if self.requests.send(Request::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
        self.error()
    }

    pub fn error(&self) -> Result<(), String> {
        match self.shared.error.lock().expect("writer error").clone() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Resolves once a commit has failed.
    pub async fn failed(&self) {
        self.shared.failed.notified().await;
    }

    /// Resolves once every pod handed over has been started (or dropped).
    pub async fn starts_done(&self) {
        self.shared.starts_done.notified().await;
    }

    pub fn pending_starts(&self) -> usize {
        self.shared.pending_starts.load(Ordering::SeqCst)
    }

    pub fn cancel_starts(&self) {
        self.shared.cancelled.store(true, Ordering::SeqCst);
    }
}

fn write_forever(
    requests: &mpsc::Receiver<Request>,
    store: &Mutex<Store>,
    runtime: &Runtime,
    shared: &Shared,
) {
    let mut feed: Option<Feed> = None;
    let mut pacing = CommitPacing::default();
    while let Ok(first) = requests.recv() {
        let mut batch = Batch::default();
        let mut start = Vec::new();
        let mut barriers = Vec::new();
        let mut acks = Vec::new();
        // Under a stream of writes, what comes meanwhile joins the next commit.
        if let Some(wait) = pacing.wait(Instant::now()) {
            std::thread::sleep(wait);
        }
        for request in std::iter::once(first).chain(requests.try_iter()) {
            match request {
                Request::Write {
                    batch: more,
                    start: pods,
                    acks: more_acks,
                } => {
                    batch.append(more);
                    start.extend(pods);
                    acks.extend(more_acks);
                }
                Request::Barrier(ack) => barriers.push(ack),
                Request::Feed(new) => feed = Some(new),
            }
        }
        let committed = store.lock().expect("store").commit(&batch);
        pacing.committed(Instant::now());
        let started = start.len();
        let cancelled = shared.cancelled.load(Ordering::SeqCst);
        if let Err(error) = &committed {
            // Nothing recorded may run; the engine stops on this error.
            *shared.error.lock().expect("writer error") = Some(error.to_string());
            shared.failed.notify_one();
        }
        if committed.is_ok() && !cancelled {
            runtime.start(start);
        } else {
            for pod in start {
                let meta = &pod.metadata;
                runtime.forget(
                    meta.namespace.as_deref().unwrap_or("default"),
                    meta.name.as_deref().unwrap_or(""),
                );
            }
        }
        // Pods start first: feeding the watch cache is not on their way. Replies come
        // after, so whoever gets one reads the change.
        if let (Ok(()), Some(feed)) = (&committed, &feed) {
            let mut writes = batch.into_writes();
            // Watchers see changes in resourceVersion order.
            writes.sort_by_key(Write::resource_version);
            feed(writes);
        }
        for ack in acks {
            ack(committed.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
        if started > 0 && shared.pending_starts.fetch_sub(started, Ordering::SeqCst) == started {
            shared.starts_done.notify_one();
        }
        for ack in barriers {
            let _ = ack.send(());
        }
    }
}
