//! The owner of every task the server spawns: the jobs, the listeners, and the attempts the
//! engine detaches from a request (a PG call must finish and be recorded even when the client
//! goes away). `Pier::shutdown` stops the jobs, then waits here until the last task has ended,
//! and only then closes the store for writes, so no detached attempt meets a closed writer.
//! `live()` is what a test reads to see that shutdown joined them all.
//!
//! What a spawn costs beyond `tokio::spawn` (it runs once per charge, refund and window return):
//! one atomic add and one `Arc` clone, and their reverse when the task ends. No lock and no map:
//! `Notify::notify_waiters` (which takes `Notify`'s own mutex) runs only when the count reaches
//! zero, and while the server runs it never does (the jobs and the listeners are tasks here).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Counts the tasks it spawned that have not ended; cheap to clone (one `Arc`).
#[derive(Clone, Default)]
pub struct Tasks(Arc<Inner>);

#[derive(Default)]
struct Inner {
    live: AtomicUsize,
    ended: Notify,
}

/// Decrements on drop, so a task that panics or is aborted is counted out too.
struct Live(Arc<Inner>);

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.ended.notify_waiters();
        }
    }
}

impl Tasks {
    /// Spawns `fut` on the current runtime as one of ours.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.live.fetch_add(1, Ordering::AcqRel);
        let live = Live(self.0.clone());
        tokio::spawn(async move {
            let _live = live;
            fut.await
        })
    }

    /// Tasks spawned here that have not ended yet.
    pub fn live(&self) -> usize {
        self.0.live.load(Ordering::Acquire)
    }

    /// Waits until every task spawned here has ended.
    pub async fn joined(&self) {
        loop {
            let ended = self.0.ended.notified();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn joined_waits_for_every_task() {
        let tasks = Tasks::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            let _ = rx.await;
        });
        tasks.spawn(async {});
        assert!(tasks.live() >= 1);
        tx.send(()).unwrap();
        tasks.joined().await;
        assert_eq!(tasks.live(), 0);
    }

    #[tokio::test]
    async fn a_panicking_task_is_counted_out() {
        let tasks = Tasks::default();
        let h = tasks.spawn(async { panic!("boom") });
        assert!(h.await.is_err());
        tasks.joined().await;
        assert_eq!(tasks.live(), 0);
    }
}
