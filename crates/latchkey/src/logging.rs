//! Log output for `serve`: which events may be logged at all, and a writer that never blocks a
//! request, for the log and for the access log (to stderr with the log, or to a file of its own).
//!
//! A request appends its formatted line to a shared buffer under a short lock and never writes
//! to stderr itself; a writer thread swaps the buffer out every 100 ms (sooner when it fills
//! past a quarter) and writes it, so a burst costs one system call and no thread is woken per
//! line. When stderr is slow, only the writer thread waits: the buffer grows to its limit
//! (4 MiB), then lines are dropped and counted (the count is printed at exit) instead of
//! stalling the async workers. Measured with `bench/presigned_get.sh`: a write per line cost 14%
//! of small-GET throughput, and tracing-appender's channel, which wakes its writer thread per
//! line, cost about as much. Security events that must survive a crash belong in the audit
//! trail, which is stored, not logged.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::fmt::MakeWriter;

/// Bytes of lines held for the writer thread at most; lines beyond are dropped and counted.
const PENDING_LIMIT: usize = 4 * 1024 * 1024;
/// How often the writer thread writes what is pending.
const WRITE_EVERY: Duration = Duration::from_millis(100);

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

/// Lines waiting for the writer thread, and how many were dropped (the writer of one event is a
/// reference to it).
#[derive(Default)]
pub struct Pending {
    lines: Mutex<Lines>,
    /// Wakes the writer thread early: the buffer filled past a quarter, or the program ends.
    wake: Condvar,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Lines {
    bytes: Vec<u8>,
    closing: bool,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The subscriber's writer: appends whole lines to the pending buffer; never does I/O.
#[derive(Clone)]
pub struct LogWriter(Arc<Pending>);

impl Write for &Pending {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut lines = self.lock();
        if lines.bytes.len() + line.len() > PENDING_LIMIT {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            let before = lines.bytes.len();
            lines.bytes.extend_from_slice(line);
            if before < PENDING_LIMIT / 4 && lines.bytes.len() >= PENDING_LIMIT / 4 {
                self.wake.notify_one();
            }
        }
        // A dropped line is reported as written: the caller is a log event, not a reader of errors.
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = &'a Pending;

    fn make_writer(&'a self) -> Self::Writer {
        &self.0
    }
}

/// Writes the pending lines out when dropped (at the end of `serve`) and reports lines dropped.
pub struct LogGuard {
    pending: Arc<Pending>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.pending.lock().closing = true;
        self.pending.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let dropped = self.pending.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            eprintln!("latchkey: {dropped} lines were dropped because their output could not keep up");
        }
    }
}

/// A writer of lines to `out` (stderr, or the access-log file), and the guard to hold until the
/// program is done.
pub fn start(out: Box<dyn Write + Send>) -> (LogWriter, LogGuard) {
    let pending = Arc::new(Pending::default());
    let shared = pending.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_out(&shared, out))
        .expect("the log writer thread starts");
    (LogWriter(pending.clone()), LogGuard { pending, thread: Some(thread) })
}

impl latchkey_server::AccessSink for LogWriter {
    fn write_line(&self, line: &[u8]) {
        let _ = (&*self.0).write(line);
    }
}

/// The writer thread: every [`WRITE_EVERY`] (or when woken), takes what is pending and writes it
/// to `out` outside the lock, until the guard closes it; then writes the rest.
fn write_out(pending: &Pending, mut out: Box<dyn Write + Send>) {
    let mut spare = Vec::new();
    loop {
        let closing = {
            let lines = pending.lock();
            let (mut lines, _) = pending
                .wake
                .wait_timeout_while(lines, WRITE_EVERY, |l| !l.closing && l.bytes.len() < PENDING_LIMIT / 4)
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut lines.bytes, &mut spare);
            lines.closing
        };
        if !spare.is_empty() {
            let _ = out.write_all(&spare);
            let _ = out.flush();
            spare.clear();
        }
        if closing {
            return;
        }
    }
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
