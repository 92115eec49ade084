//! Listening sockets. Each listener accepts connections only from the networks it and the global
//! lists admit, and only while the connection caps allow (`admission.rs`; a connection refused
//! is closed unread), speaks TLS when it has a certificate (`tls.rs`;
//! plain HTTP then only from loopback, if allowed), and hands every connection to the dispatch
//! with the surfaces it serves and the base of the links it hands out.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use latchkey_share::PublicBase;
use tokio::net::{TcpListener, TcpStream};

use crate::admission::{Admission, NetworkList, Ticket};
use crate::config::ListenerConfig;
use crate::idle::{Activity, IdleIo};
use crate::router;
use crate::surface::Surfaces;
use crate::tls::{self, Tls, TlsSession};

/// HTTP/2 connections are pinged this often when idle, and closed when a ping goes unanswered
/// for `H2_KEEP_ALIVE_TIMEOUT`.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Streams one HTTP/2 connection may have open at once (hyper's default is 200): each may hold
/// an open object.
const H2_MAX_STREAMS: u32 = 64;

/// A client that has not finished its TLS handshake by then is disconnected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a plain-HTTP client of a TLS listener gets when it may not speak plain HTTP.
const USE_HTTPS: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 53\r\n\
Connection: close\r\n\r\nThis server speaks HTTPS only: use an https:// URL.\r\n";

/// HTTP/1.1 and HTTP/2 as served. A connection speaks the one TLS's ALPN agreed on, and plain
/// connections HTTP/1.1: no connection waits, untimed, for the bytes that would tell (as
/// hyper's auto-detection does), so the header-read timeout holds from the first moment.
pub struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    /// A client that has not sent a whole request head by then (from its first byte, or from
    /// the end of its previous request) is disconnected: slowloris, or a connection held idle.
    header_read_timeout: Duration,
    /// A client that leaves a response unread this long is disconnected (`idle.rs`).
    idle_timeout: Duration,
}

impl Protocols {
    pub fn new(header_read_timeout: Duration, idle_timeout: Duration) -> Protocols {
        let mut http1 = http1::Builder::new();
        http1.timer(TokioTimer::new()).header_read_timeout(header_read_timeout).max_headers(router::PARSER_MAX_HEADERS);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(H2_KEEP_ALIVE_INTERVAL))
            .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
            .max_concurrent_streams(H2_MAX_STREAMS);
        Protocols { http1, http2, header_read_timeout, idle_timeout }
    }
}

/// A bound listener.
pub struct Listener {
    socket: TcpListener,
    tls: Option<Arc<Tls>>,
    surfaces: Surfaces,
    networks: Arc<NetworkList>,
}

/// What every listener shares: the dispatch, the HTTP settings, how links are based, and the
/// connections to wait for at shutdown.
pub struct Shared {
    pub dispatch: Arc<router::Dispatch>,
    pub http: Arc<Protocols>,
    /// `public_url`, if configured.
    pub public_url: Option<String>,
    pub plain_http_from_loopback: bool,
    pub admission: Arc<Admission>,
    /// Only the accept loops hold it: each connection takes a watcher of its own, so that once
    /// the loops end the server can wait for the connections.
    pub graceful: Arc<GracefulShutdown>,
}

impl Listener {
    /// Binds `config.address` and loads its certificate.
    pub async fn bind(config: &ListenerConfig) -> anyhow::Result<Listener> {
        let tls = config
            .tls
            .clone()
            .map(|files| Tls::load(files).with_context(|| format!("cannot set up TLS on {}", config.address)))
            .transpose()?
            .map(Arc::new);
        let socket =
            TcpListener::bind(config.address).await.with_context(|| format!("cannot listen on {}", config.address))?;
        Ok(Listener { socket, tls, surfaces: config.surfaces, networks: Arc::new(config.networks.clone()) })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// `https` with TLS on, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.tls.clone()
    }

    pub fn surfaces(&self) -> Surfaces {
        self.surfaces
    }

    /// Accepts connections until `stop` resolves.
    pub async fn run(self, shared: Arc<Shared>, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.socket.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => return,
            };
            // An IPv4 client of a dual-stack socket (`[::]:9000`) arrives as `::ffff:a.b.c.d`: it
            // is judged as the IPv4 address it is, by the allow-list and as loopback.
            let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
            let ticket = match shared.admission.connect(peer.ip(), &self.networks) {
                Ok(ticket) => ticket,
                Err(refusal) => {
                    metrics::counter!("latchkey_refused_total", "reason" => refusal.reason()).increment(1);
                    tracing::debug!(%peer, reason = refusal.reason(), "connection refused");
                    continue;
                }
            };
            // Small responses must not wait for Nagle's algorithm (~40 ms per request).
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().or_else(|_| self.local_addr()).unwrap_or(peer);
            let accepted = Accepted {
                dispatch: shared.dispatch.clone(),
                http: shared.http.clone(),
                watcher: shared.graceful.watcher(),
                peer,
                listener: local,
                public_base: self.public_base(&shared, local),
                surfaces: self.surfaces,
                networks: self.networks.clone(),
                ticket,
            };
            match self.tls.clone() {
                None => {
                    tokio::spawn(accepted.serve(stream, None, false));
                }
                Some(tls) => {
                    let plain_ok = shared.plain_http_from_loopback && peer.ip().is_loopback();
                    tokio::spawn(accepted.serve_tls(stream, tls, plain_ok));
                }
            }
        }
    }

    /// Links handed out on a connection start with `public_url`, or else with the address the
    /// client connected to (this listener's address as seen on the connection) and its scheme.
    fn public_base(&self, shared: &Shared, local: SocketAddr) -> PublicBase {
        let base = match &shared.public_url {
            Some(url) => url.clone(),
            None => format!("{}://{local}", self.scheme()),
        };
        PublicBase(base.into())
    }
}

/// A connection just accepted, with what serving it takes.
struct Accepted {
    dispatch: Arc<router::Dispatch>,
    http: Arc<Protocols>,
    watcher: Watcher,
    peer: SocketAddr,
    /// The address the client connected to.
    listener: SocketAddr,
    public_base: PublicBase,
    surfaces: Surfaces,
    networks: Arc<NetworkList>,
    /// Held while the connection is open.
    ticket: Ticket,
}

impl Accepted {
    /// Serves HTTP/1.1 (or HTTP/2 if `h2`) on `io` until the client leaves or shutdown closes it.
    async fn serve<I>(self, io: I, tls: Option<TlsSession>, h2: bool)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Accepted { dispatch, http, watcher, peer, listener, public_base, surfaces, networks, ticket } = self;
        let activity = Activity::new();
        let conn = Arc::new(router::Connection {
            peer,
            public_base,
            secure: tls.is_some(),
            tls,
            surfaces,
            networks,
            listener,
            activity: activity.clone(),
        });
        let arrived = activity.clone();
        let service = hyper::service::service_fn(move |req| {
            arrived.touch();
            dispatch.clone().handle(req, conn.clone())
        });
        let io = TokioIo::new(IdleIo::new(io, http.idle_timeout, activity.clone()));
        let ended = if h2 {
            let served = watcher.watch(http.http2.serve_connection(io, service));
            match watch_http2(served, &activity, &http).await {
                Some(ended) => ended,
                None => {
                    tracing::debug!(%peer, "HTTP/2 connection closed: idle, or its responses left unread");
                    return;
                }
            }
        } else {
            watcher.watch(http.http1.serve_connection(io, service)).await
        };
        if let Err(e) = ended {
            if e.is_timeout() {
                metrics::counter!("latchkey_refused_total", "reason" => "header_timeout").increment(1);
            }
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
        drop(ticket);
    }

    /// A connection to a TLS listener: the handshake (bounded in time), or, when the client
    /// speaks plain HTTP, plain HTTP if `plain_ok` and otherwise a `400` saying to use HTTPS.
    async fn serve_tls(self, mut stream: TcpStream, tls: Arc<Tls>, plain_ok: bool) {
        let peer = self.peer;
        let mut first = [0u8; 1];
        match tokio::time::timeout(self.http.header_read_timeout, stream.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            _ => return,
        }
        if !tls::starts_handshake(first[0]) {
            if plain_ok {
                return self.serve(stream, None, false).await;
            }
            let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, USE_HTTPS).await;
            return;
        }
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream)).await {
            Ok(Ok(tls_stream)) => {
                let session = tls_stream.get_ref().1;
                let h2 = session.alpn_protocol() == Some(b"h2");
                let negotiated = TlsSession::of(session);
                self.serve(tls_stream, Some(negotiated), h2).await
            }
            Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }
}

/// Serves an HTTP/2 connection while its client keeps it moving; `None` when it was closed for
/// idleness: nothing handled or open for the header-read timeout (HTTP/2 has no header-read
/// timeout of its own), or responses open and nothing taken by the client for the idle timeout
/// (a client that advertises no flow-control window never blocks a write, so `IdleIo` alone
/// would wait forever while each stream holds an open object). A request still being handled
/// is the server's work and never counts as the client's idleness.
async fn watch_http2<F: Future>(served: F, activity: &Activity, http: &Protocols) -> Option<F::Output> {
    let mut served = std::pin::pin!(served);
    let mut tick = tokio::time::interval(http.idle_timeout.min(http.header_read_timeout) / 4);
    loop {
        tokio::select! {
            ended = &mut served => return Some(ended),
            _ = tick.tick() => {
                let idle = activity.idle_for();
                let reason = match (activity.handling(), activity.open_responses()) {
                    (0, 0) if idle >= http.header_read_timeout => "header_timeout",
                    (_, open) if open > 0 && idle >= http.idle_timeout => "idle_response",
                    _ => continue,
                };
                metrics::counter!("latchkey_refused_total", "reason" => reason).increment(1);
                return None;
            }
        }
    }
}

/// Reads every listener's certificate and key again on each SIGHUP (`hangups`, installed before
/// the server said it listens, so an early SIGHUP does not end it) until `stopped` resolves; a
/// failure is logged and that listener keeps its previous certificate.
pub async fn reload_tls_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    certificates: Vec<Arc<Tls>>,
    stopped: impl Future<Output = ()>,
) {
    let mut stopped = std::pin::pin!(stopped);
    loop {
        tokio::select! {
            received = hangups.recv() => {
                if received.is_none() {
                    return;
                }
                if certificates.is_empty() {
                    tracing::info!("SIGHUP: no TLS certificate to reload");
                }
                for tls in &certificates {
                    match tls.reload() {
                        Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                        Err(e) => tracing::error!(
                            error = %format!("{e:#}"),
                            "SIGHUP: cannot reload the TLS certificate; keeping the previous one"
                        ),
                    }
                }
            }
            () = &mut stopped => return,
        }
    }
}
