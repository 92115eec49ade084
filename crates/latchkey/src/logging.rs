//! Log output for `serve`: which events may be logged at all, and a writer that never blocks a request.
//!
//! Requests hand each formatted line to tracing-appender's bounded, lossy channel; a writer
//! thread owns stderr. When stderr is slow and the channel is full, lines are dropped and
//! counted (the count is printed at exit) instead of stalling the async workers. The thread
//! writes into a buffer and flushes whenever the channel is momentarily empty (tracing-appender's
//! worker does that), so a burst costs one system call and a quiet server's lines appear at once.
//! Security events that must survive a crash belong in the audit trail, which is stored, not logged.

use std::io::{self, BufWriter};

use tracing::{Metadata, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterFn};

/// Lines waiting for the writer thread; about 4 MiB at typical access-log line lengths.
const QUEUED_LINES: usize = 16 * 1024;
const BUFFER: usize = 64 * 1024;

/// Targets that log request secrets: s3s logs the signature it computed (which forges the
/// refused request) and the string to sign at debug level; aws-sigv4, which presigns share
/// redirects, logs canonical requests and signatures. No `RUST_LOG` may turn them on.
const SECRET_TARGETS: [&str; 2] = ["s3s", "aws_sigv4"];

/// `RUST_LOG` (default: info, with sqlx at warn), except that no secret-bearing target ever passes.
///
/// Two global filter layers, both of which must pass an event: appended directives would not
/// do, as span-scoped ones such as `RUST_LOG=[request]=trace` enable any target inside the span.
/// Not per-layer filters: with them (tracing-subscriber 0.3.23), a server on PostgreSQL lost
/// every line until shutdown.
pub fn filter<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let wanted = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    FilterFn::new(|meta: &Metadata<'_>| !is_secret_target(meta.target())).and_then(wanted)
}

fn is_secret_target(target: &str) -> bool {
    SECRET_TARGETS.iter().any(|t| target.strip_prefix(t).is_some_and(|rest| rest.is_empty() || rest.starts_with("::")))
}

/// Flushes the queued lines when dropped (at the end of `serve`) and reports lines dropped.
pub struct LogGuard {
    worker: Option<WorkerGuard>,
    dropped: ErrorCounter,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        drop(self.worker.take());
        let dropped = self.dropped.dropped_lines();
        if dropped > 0 {
            eprintln!("latchkey: {dropped} log lines were dropped because stderr could not keep up");
        }
    }
}

/// The writer for the log subscriber, and the guard to hold until the program is done.
pub fn start() -> (NonBlocking, LogGuard) {
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(BufWriter::with_capacity(BUFFER, io::stderr()));
    let dropped = writer.error_counter();
    (writer, LogGuard { worker: Some(worker), dropped })
}

#[cfg(test)]
mod tests {
    use super::is_secret_target;

    #[test]
    fn secret_targets_and_their_modules_are_matched_and_nothing_else() {
        for target in ["s3s", "s3s::ops::signature", "aws_sigv4", "aws_sigv4::http_request::sign"] {
            assert!(is_secret_target(target), "{target}");
        }
        for target in ["s3s_fs", "latchkey::audit", "aws_sigv4a", "hyper"] {
            assert!(!is_secret_target(target), "{target}");
        }
    }
}
