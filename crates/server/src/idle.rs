//! The idle timeout: a client that stops sending a request body, or stops reading a response,
//! without closing its connection would otherwise hold a task, a temporary file or an open
//! object for as long as the TCP connection lives. Waiting for the client is timed only while
//! Latchkey waits on it: a slow operation on the server side never trips it, and a body or a
//! response that keeps moving, however slowly, is never cut.
//!
//! [`IdleBody`] bounds each wait for the next piece of a request body (S3's `RequestTimeout`);
//! [`IdleIo`] bounds each wait for the client to take more of the response (the connection is
//! closed). An HTTP/2 client can stall responses without ever blocking a write (a flow-control
//! window of zero), so each connection keeps its [`Activity`]: responses open and the last
//! progress, which the listener's HTTP/2 watchdog judges. The wait between requests is the
//! header-read timeout's (`listener.rs`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use s3s::{S3Error, S3ErrorCode, StdError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What a connection is doing: requests being handled, responses not yet sent, and when it last
/// made progress (bytes taken by the client, a request arriving, a response starting).
#[derive(Debug)]
pub struct Activity {
    epoch: std::time::Instant,
    last_ms: AtomicU64,
    handling: AtomicUsize,
    open_responses: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: std::time::Instant::now(),
            last_ms: AtomicU64::new(0),
            handling: AtomicUsize::new(0),
            open_responses: AtomicUsize::new(0),
        })
    }

    pub fn touch(&self) {
        self.last_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since the last progress.
    pub fn idle_for(&self) -> Duration {
        self.epoch.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Requests being handled (the server's work, which no client idleness cuts short).
    pub fn handling(&self) -> usize {
        self.handling.load(Ordering::Relaxed)
    }

    /// Responses waiting for the client to take them.
    pub fn open_responses(&self) -> usize {
        self.open_responses.load(Ordering::Relaxed)
    }

    /// Counts a request as being handled until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> Counted {
        self.touch();
        Counted::new(self.clone(), |a| &a.handling)
    }

    /// Counts a response as open until the guard is dropped (its body sent or abandoned).
    pub fn response(self: &Arc<Self>) -> Counted {
        self.touch();
        Counted::new(self.clone(), |a| &a.open_responses)
    }
}

/// A request or response counted on its connection's [`Activity`] while it lives.
pub struct Counted {
    activity: Arc<Activity>,
    counter: fn(&Activity) -> &AtomicUsize,
}

impl Counted {
    fn new(activity: Arc<Activity>, counter: fn(&Activity) -> &AtomicUsize) -> Counted {
        counter(&activity).fetch_add(1, Ordering::Relaxed);
        Counted { activity, counter }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        (self.counter)(&self.activity).fetch_sub(1, Ordering::Relaxed);
    }
}

/// A timer armed while waiting on the client and disarmed when it makes progress. Requests that
/// never wait (a GET without body) never allocate one.
struct Stall {
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Stall {
    fn new(timeout: Duration) -> Stall {
        Stall { timeout, timer: None, armed: false }
    }

    fn progressed(&mut self) {
        self.armed = false;
    }

    /// Called when the client is not ready: whether it has kept us waiting too long.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.timeout;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

/// What became of a request body: the bytes received (the access log's bytes in), and whether
/// its client stalled past the idle timeout (whatever error the reader turned that into, the
/// answer is S3's `RequestTimeout`).
#[derive(Default)]
pub struct BodyTally {
    received: AtomicU64,
    timed_out: std::sync::atomic::AtomicBool,
}

impl BodyTally {
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }
}

/// S3's answer to a request whose body stopped coming.
pub fn request_timeout() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::RequestTimeout,
        "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.",
    )
}

/// A request body whose client may pause between pieces for at most the idle timeout.
pub struct IdleBody<B> {
    inner: B,
    stall: Stall,
    tally: Arc<BodyTally>,
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, timeout: Duration, tally: Arc<BodyTally>) -> IdleBody<B> {
        IdleBody { inner, stall: Stall::new(timeout), tally }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<StdError>,
{
    type Data = Bytes;
    type Error = StdError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StdError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stall.progressed();
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    this.tally.received.fetch_add(data.map_or(0, |d| d.len() as u64), Ordering::Relaxed);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending if this.stall.expired(cx) => {
                metrics::counter!("latchkey_refused_total", "reason" => "idle_body").increment(1);
                this.tally.timed_out.store(true, Ordering::Relaxed);
                // S3's error, which the object layer passes on as it is (`error.rs`).
                Poll::Ready(Some(Err(Box::new(request_timeout()))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose client may leave a response unread for at most the idle timeout; what it
/// writes counts as the connection's progress.
pub struct IdleIo<I> {
    io: I,
    stall: Stall,
    activity: Arc<Activity>,
}

impl<I> IdleIo<I> {
    pub fn new(io: I, timeout: Duration, activity: Arc<Activity>) -> IdleIo<I> {
        IdleIo { io, stall: Stall::new(timeout), activity }
    }

    /// Bytes the client took are the connection's progress (a flush that had nothing to send
    /// is not: HTTP/2 flushes while every stream waits on a window).
    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.touch();
        }
    }

    fn written<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending if self.stall.expired(cx) => {
                metrics::counter!("latchkey_refused_total", "reason" => "idle_response").increment(1);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")))
            }
            Poll::Pending => Poll::Pending,
            ready => {
                self.stall.progressed();
                ready
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for IdleIo<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for IdleIo<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(&polled);
        self.written(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        self.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.written(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_shutdown(cx);
        self.written(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_coming_times_out_and_one_that_moves_does_not() {
        let (mut sender, body) = http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(1);
        let tally = Arc::new(BodyTally::default());
        let mut body = IdleBody::new(body, Duration::from_secs(20), tally.clone());
        let feeder = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(15)).await;
                sender.send_data(Bytes::from_static(b"x")).await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(sender);
        });
        let mut received = 0;
        let err = loop {
            match body.frame().await {
                Some(Ok(frame)) => received += frame.into_data().unwrap().len(),
                Some(Err(e)) => break e,
                None => panic!("the body ended instead of timing out"),
            }
        };
        assert_eq!(received, 5, "pauses shorter than the timeout are not cut, however many");
        assert_eq!((tally.received(), tally.timed_out()), (5, true));
        let err = err.downcast::<S3Error>().unwrap();
        assert_eq!(err.code(), &S3ErrorCode::RequestTimeout);
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_the_client_stops_reading_times_out() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = IdleIo::new(server, Duration::from_secs(20), Activity::new());
        let err = server.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }
}
