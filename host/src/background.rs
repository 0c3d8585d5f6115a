//! Background work of `wasmpipe run` — the ops listener, the ConfigMap
//! mirror — on one Tokio runtime, stopped together: one cancellation
//! token, one task tracker.

use anyhow::Context as _;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long stopping waits for background tasks to finish.
const STOP_WITHIN: Duration = Duration::from_secs(5);

pub struct Background {
    runtime: Option<tokio::runtime::Runtime>,
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Background {
    pub fn new() -> anyhow::Result<Background> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wasmpipe-background")
            .enable_all()
            .build()
            .context("starting the runtime for the ops listener and the ConfigMap mirror")?;
        Ok(Background {
            runtime: Some(runtime),
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    /// Runs `task` in the background until it ends; the token it is given
    /// is cancelled when the background stops, or when the returned one is.
    pub fn spawn<F>(&self, task: impl FnOnce(CancellationToken) -> F) -> CancellationToken
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = self.token.child_token();
        self.tracker
            .spawn_on(task(token.clone()), self.runtime().handle());
        token
    }

    /// Runs `future` to its end on the background runtime, from a thread
    /// that is not one of its own.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime().block_on(future)
    }

    /// Enters the runtime, for making what needs one (a Tokio listener).
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.runtime().enter()
    }
}

impl Drop for Background {
    /// Cancels every task and waits (boundedly) for them to finish.
    fn drop(&mut self) {
        self.token.cancel();
        self.tracker.close();
        if let Some(runtime) = self.runtime.take() {
            let tracker = self.tracker.clone();
            if runtime
                .block_on(async { tokio::time::timeout(STOP_WITHIN, tracker.wait()).await })
                .is_err()
            {
                tracing::warn!(
                    tasks = self.tracker.len(),
                    "background tasks did not stop within {STOP_WITHIN:?}; leaving them"
                );
            }
            runtime.shutdown_timeout(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn dropping_the_background_stops_every_task_and_waits_for_them() {
        let stopped = Arc::new(AtomicUsize::new(0));
        let background = Background::new().unwrap();
        for _ in 0..3 {
            let stopped = stopped.clone();
            background.spawn(|token| async move {
                token.cancelled().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                stopped.fetch_add(1, Ordering::SeqCst);
            });
        }
        drop(background);
        assert_eq!(stopped.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_task_stops_alone_when_its_own_token_is_cancelled() {
        let background = Background::new().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let token = background.spawn(|token| async move {
            token.cancelled().await;
            let _ = tx.send(());
        });
        token.cancel();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let other = background.spawn(|_| async {});
        assert!(!other.is_cancelled(), "the others go on");
    }
}
