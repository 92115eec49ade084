//! Keeps the stores' writer tasks alive. A panic in one batch of a writer's work is caught,
//! logged loudly and counted, and the writer goes on with the next batch: without this, one bad
//! batch ended the task and every later write and redemption failed with `Closed`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::{MetaError, MetaResult};

/// The job queue of a supervised writer task.
pub(crate) struct WriterQueue<J> {
    jobs: mpsc::Sender<J>,
    /// For the test hook; the task holds its own.
    #[cfg(test)]
    pub(crate) supervisor: Arc<Supervisor>,
}

impl<J: Send + 'static> WriterQueue<J> {
    /// Starts `task`, the writer named `name`, on the current runtime, over a queue of
    /// `capacity` jobs.
    pub(crate) fn start<F>(
        name: &'static str,
        capacity: usize,
        task: impl FnOnce(mpsc::Receiver<J>, Arc<Supervisor>) -> F,
    ) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (jobs, queue) = mpsc::channel(capacity);
        let supervisor = Arc::new(Supervisor::new(name));
        tokio::spawn(task(queue, supervisor.clone()));
        Self {
            jobs,
            #[cfg(test)]
            supervisor,
        }
    }

    /// Whether the writer task still takes jobs.
    pub(crate) fn is_running(&self) -> bool {
        !self.jobs.is_closed()
    }

    /// Queues `job` and waits for `answer`; `Closed` when the writer is gone or dropped the job
    /// (then it may have been written).
    pub(crate) async fn submit<T>(&self, job: J, answer: oneshot::Receiver<MetaResult<T>>) -> MetaResult<T> {
        self.jobs.send(job).await.map_err(|_| MetaError::Closed)?;
        answer.await.map_err(|_| MetaError::Closed)?
    }
}

pub(crate) struct Supervisor {
    /// Which writer, for the log.
    name: &'static str,
    restarts: AtomicU64,
    /// Test hook: the next batch panics.
    #[cfg(test)]
    pub(crate) panic_next: std::sync::atomic::AtomicBool,
}

impl Supervisor {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            restarts: AtomicU64::new(0),
            #[cfg(test)]
            panic_next: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs one batch; `false` if it panicked. The jobs of a batch that panicked are dropped
    /// unanswered, so their callers see `Closed`: the batch may have committed before the panic.
    pub(crate) async fn run_batch(&self, batch: impl Future<Output = ()>) -> bool {
        let batch = async {
            #[cfg(test)]
            if self.panic_next.swap(false, Ordering::Relaxed) {
                panic!("test hook: this batch panics");
            }
            batch.await;
        };
        let Err(panic) = AssertUnwindSafe(batch).catch_unwind().await else { return true };
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(not a string)");
        let restarts = self.restarts.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            writer = self.name,
            restarts,
            panic = message,
            "a metadata writer batch panicked; its callers get an error and the writer goes on"
        );
        false
    }
}
