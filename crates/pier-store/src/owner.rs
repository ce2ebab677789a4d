//! The owner of every task and thread a store starts: the group-commit writers (tasks on
//! PostgreSQL and on an in-memory SQLite database; on a SQLite file, the lane's writer thread
//! and its checkpointer thread), PostgreSQL's batched readers and its stand-in for autovacuum's
//! analyses (`pg_stats`). Each is started through here and counted until it ends (a guard
//! counts it out, so one that panics is counted out too); `shutdown` tells them to stop and
//! joins them, within a deadline.
//!
//! How each one stops: the writers when their queue is closed (`Writer::close`) and drained;
//! the readers and the analyze loop when `stopping()` turns true (the readers answer what is
//! queued first). A store dropped without a shutdown stops them too: the writers' and
//! readers' queues close with it and the analyze loop sees its stop sender gone.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Cheap to clone (one `Arc`); every clone of a store shares it.
#[derive(Clone, Debug)]
pub(crate) struct Owner(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    count: Arc<Count>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<(&'static str, tokio::task::JoinHandle<()>)>>,
    threads: Mutex<Vec<(&'static str, std::thread::JoinHandle<()>)>>,
}

#[derive(Debug, Default)]
struct Count {
    live: AtomicUsize,
    ended: Notify,
}

/// Counts one task or thread out when it ends (or unwinds).
struct Live(Arc<Count>);

impl Live {
    fn new(count: &Arc<Count>) -> Self {
        count.live.fetch_add(1, Ordering::AcqRel);
        Self(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.ended.notify_waiters();
        }
    }
}

/// What `shutdown` could not join before its deadline (named by what they are).
#[derive(Debug, PartialEq, Eq)]
pub struct Unjoined(pub Vec<&'static str>);

impl std::fmt::Display for Unjoined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store tasks still running: {}", self.0.join(", "))
    }
}

impl std::error::Error for Unjoined {}

impl Default for Owner {
    fn default() -> Self {
        Self(Arc::new(Inner {
            count: Arc::default(),
            stop: watch::Sender::new(false),
            tasks: Mutex::default(),
            threads: Mutex::default(),
        }))
    }
}

impl Owner {
    /// Starts `fut` on the current runtime as one of the store's tasks.
    pub(crate) fn spawn(&self, name: &'static str, fut: impl Future<Output = ()> + Send + 'static) {
        let live = Live::new(&self.0.count);
        let handle = tokio::spawn(async move {
            let _live = live;
            fut.await
        });
        lock(&self.0.tasks).push((name, handle));
    }

    /// Starts `f` on an OS thread of its own as one of the store's threads.
    pub(crate) fn spawn_thread(
        &self,
        name: &'static str,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        // Under the list's lock, so that `shutdown` (which sets `stop`, then takes the list)
        // either finds this thread in the list or it is never started.
        let mut threads = lock(&self.0.threads);
        if *self.0.stop.borrow() {
            return Err(std::io::Error::other("the store is shutting down"));
        }
        let live = Live::new(&self.0.count);
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _live = live;
                f()
            })?;
        threads.push((name, handle));
        Ok(())
    }

    /// Turns true when the store shuts down (or is dropped: then `changed` fails).
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.0.stop.subscribe()
    }

    /// Tasks and threads started here that have not ended.
    pub(crate) fn live(&self) -> usize {
        self.0.count.live.load(Ordering::Acquire)
    }

    /// Tells the tasks that wait for it to stop, waits until every task and thread has ended
    /// (at most `within`), and joins them. The writers must have been closed first. A task
    /// still running at the deadline is aborted (a thread cannot be) and named in the error.
    pub(crate) async fn shutdown(&self, within: Duration) -> Result<(), Unjoined> {
        self.0.stop.send_replace(true);
        let _ = tokio::time::timeout(within, self.ended()).await;
        let ended_at = tokio::time::Instant::now();
        let mut unjoined = Vec::new();
        let tasks = std::mem::take(&mut *lock(&self.0.tasks));
        for (name, handle) in tasks {
            if handle.is_finished() {
                let _ = handle.await;
            } else {
                handle.abort();
                unjoined.push(name);
            }
        }
        let threads = std::mem::take(&mut *lock(&self.0.threads));
        for (name, handle) in threads {
            // Counted out means its closure returned: the thread is exiting. Waits a little for
            // that, never past a short grace (a join must not block the runtime's thread).
            while !handle.is_finished() && ended_at.elapsed() < THREAD_EXIT_GRACE {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                unjoined.push(name);
                lock(&self.0.threads).push((name, handle));
            }
        }
        if unjoined.is_empty() {
            Ok(())
        } else {
            Err(Unjoined(unjoined))
        }
    }

    /// Waits until nothing started here is running.
    async fn ended(&self) {
        loop {
            let ended = self.0.count.ended.notified();
            tokio::pin!(ended);
            // Registered before the check, so an end between the check and the wait is seen.
            ended.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            ended.await;
        }
    }
}

/// How long a thread that counted itself out may take to exit (microseconds, in practice).
const THREAD_EXIT_GRACE: Duration = Duration::from_millis(100);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
