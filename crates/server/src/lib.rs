//! The Latchkey server: opens the data dir and the metadata store, builds the S3 front, accepts
//! connections and shuts down gracefully.
//!
//! Request flow: listener (TCP_NODELAY, TLS when configured (`tls.rs`), header timeout) ->
//! [`router::Dispatch`] (request id, header limit, access log) -> S3 front (s3s: signature check
//! -> `Authorizer` -> operation) or Latchkey's own `/-/` routes. On shutdown the listener closes
//! first; in-flight requests get a grace period to finish, and nothing is torn because every
//! write commits atomically.

mod access_path;
pub mod config;
pub mod credentials;
mod error_body;
mod forwarded;
mod router;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use latchkey_identity::{Account, Identity, MasterKey, QueryApi};
use latchkey_meta::{BucketConfigStore, IdentityStore, MetaStore, PgStore, SqliteStore};
use latchkey_object::ObjectService;
use latchkey_s3::{Authorizer, BucketConfigs, BucketNames, KeyAuth, S3Front, SigV2Verifier, SigningRules};
use latchkey_share::http::{SharesApi, redemption_routes};
use latchkey_share::{PublicBase, ShareGate, ShareKey, SharePolicy, ShareService, UrlSigner};
use latchkey_storage::BlobStore;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

pub use config::ServerConfig;
use credentials::RootSource;
use tls::Tls;

/// A client that has not finished sending its request headers by then is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A client that has not finished its TLS handshake by then is disconnected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a plain-HTTP client of a TLS listener gets when it may not speak plain HTTP.
const USE_HTTPS: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 53\r\n\
Connection: close\r\n\r\nThis server speaks HTTPS only: use an https:// URL.\r\n";

/// A bound, ready server.
pub struct Server {
    listener: TcpListener,
    dispatch: Arc<router::Dispatch>,
    objects: Arc<ObjectService>,
    shares: Arc<ShareService>,
    meta: Arc<dyn MetaStore>,
    identity: Arc<Identity>,
    configs: Arc<BucketConfigs>,
    tls: Option<Arc<Tls>>,
    config: ServerConfig,
}

impl Server {
    /// Prepares the data dir, the stores and the credentials, and binds the listen address.
    pub async fn bind(config: ServerConfig) -> anyhow::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
        let Views { meta, identity: identity_store, configs: config_store } = open_meta(&config).await?;
        let blobs = BlobStore::open(&config.data_dir)
            .with_context(|| format!("cannot open blob storage in {}", config.data_dir.display()))?;
        let (root, source) = credentials::load_or_create(&config.data_dir)?;
        match source {
            RootSource::Generated(path) => {
                // Printed once, on the first start; never logged.
                println!("Generated root credentials (stored in {}):", path.display());
                println!("  AWS_ACCESS_KEY_ID={}", root.access_key_id);
                println!("  AWS_SECRET_ACCESS_KEY={}", root.secret_key);
            }
            RootSource::Stored(path) => tracing::info!(file = %path.display(), "using stored root credentials"),
            RootSource::Environment => tracing::info!("using root credentials from the environment"),
        }
        let master =
            MasterKey::load(&config.data_dir, std::env::var(MASTER_KEY_ENV).ok().as_deref()).with_context(|| {
                format!("cannot load the master key (data dir {}, or {MASTER_KEY_ENV})", config.data_dir.display())
            })?;
        let account = Account { id: ACCOUNT_ID.to_owned() };
        let identity = Identity::open(identity_store, master, account, root.clone()).await?;
        let objects = Arc::new(ObjectService::new(meta.clone(), blobs));
        let share_key = ShareKey::load_or_create(&config.data_dir)
            .with_context(|| format!("cannot read or create the share key in {}", config.data_dir.display()))?;
        let policy = SharePolicy {
            max_expiry: config.max_share_expiry,
            resume_grace: config.share_resume_grace,
            resume_overlap: config.share_resume_overlap_bytes,
            retention: config.share_retention,
            audit_retention: config.audit_retention,
            unknown_tokens_every: config.audit_unknown_tokens_flush,
        };
        // Redirect-mode links send clients to URLs presigned with the root key.
        let signer = UrlSigner::new(&root.access_key_id, &root.secret_key, &config.region);
        let configs = BucketConfigs::open(config_store).await.context("cannot load bucket settings")?;
        let authorizer = Authorizer::new(identity.clone(), meta.clone(), configs.clone());
        let gate = Arc::new(ShareGate::new(identity.clone(), authorizer.clone()));
        let shares = Arc::new(ShareService::new(objects.clone(), share_key, policy, signer, gate));
        let front = S3Front::new(objects.clone(), configs.clone(), config.region.clone(), config.block_public_access);
        let mut s3 = S3ServiceBuilder::new(front);
        s3.set_config(Arc::new(StaticConfigProvider::new(Arc::new(s3_config()))));
        let keys = KeyAuth::new(identity.clone());
        s3.set_auth(keys.clone());
        s3.set_access(authorizer);
        s3.set_validation(BucketNames);
        s3.set_route(SharesApi::new(shares.clone()));
        let tls =
            config.tls.clone().map(|files| Tls::load(files).context("cannot set up TLS").map(Arc::new)).transpose()?;
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let signing = SigningRules {
            region: config.region.clone(),
            max_presigned_expiry: config.max_presigned_expiry,
            sigv2: config.sigv2,
        };
        let dispatch = router::Dispatch::new(
            s3.build(),
            router::public_routes(redemption_routes(shares.clone()), meta.clone()),
            QueryApi::new(identity.clone(), config.region.clone(), meta.clone()),
            signing,
            SigV2Verifier::new(keys),
            configs.clone(),
            router::Transport {
                hsts_max_age_secs: config.hsts_max_age_secs,
                trusted_proxies: config.trusted_proxies.clone(),
            },
        );
        Ok(Self { listener, dispatch: Arc::new(dispatch), objects, shares, meta, identity, configs, tls, config })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// `https` with TLS on, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves until `shutdown` resolves, then stops accepting and waits up to the configured
    /// grace period for in-flight requests.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_headers(router::PARSER_MAX_HEADERS);
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        // Background work: the blob collector (starting with whatever an earlier run left queued)
        // and the share sweeper. Both stop when `stop_background` is dropped.
        let (stop_background, stopped) = tokio::sync::watch::channel(());
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.changed().await;
            }
        };
        let objects = self.objects.clone();
        let collector = tokio::spawn({
            let until = until_stopped.clone();
            async move { objects.run_collector(until()).await }
        });
        let shares = self.shares.clone();
        let identity = self.identity.clone();
        let maintainer = tokio::spawn({
            let until = until_stopped.clone();
            async move { identity.maintain(until()).await }
        });
        let configs = self.configs.clone();
        let config_maintainer = tokio::spawn({
            let until = until_stopped.clone();
            async move { configs.maintain(until()).await }
        });
        if let Some(tls) = self.tls.clone() {
            tokio::spawn(reload_tls_on_hangup(tls, until_stopped.clone()));
        }
        let sweeper = tokio::spawn(async move { shares.run_sweeper(until_stopped()).await });
        let http = Arc::new(http);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // Small responses must not wait for Nagle's algorithm (~40 ms per request).
            let _ = stream.set_nodelay(true);
            let accepted = Accepted {
                dispatch: self.dispatch.clone(),
                http: http.clone(),
                watcher: graceful.watcher(),
                peer,
                public_base: self.public_base(&stream),
            };
            match self.tls.clone() {
                None => {
                    tokio::spawn(accepted.serve(stream, false));
                }
                Some(tls) => {
                    let plain_ok = self.config.plain_http_from_loopback && peer.ip().is_loopback();
                    tokio::spawn(accepted.serve_tls(stream, tls, plain_ok));
                }
            }
        }
        drop(self.listener);
        tracing::info!("shutting down: no new connections; waiting for in-flight requests");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(self.config.shutdown_grace) => {
                tracing::warn!("grace period over; closing remaining connections");
            }
        }
        drop(stop_background);
        let _ = collector.await;
        let _ = sweeper.await;
        let _ = maintainer.await;
        let _ = config_maintainer.await;
        self.meta.close().await;
        Ok(())
    }
}

impl Server {
    /// Links handed out on a connection start with `public_url`, or else with the address the
    /// client connected to (its listener's address as seen on this connection).
    fn public_base(&self, stream: &tokio::net::TcpStream) -> PublicBase {
        let scheme = self.scheme();
        let base = match (&self.config.public_url, stream.local_addr()) {
            (Some(url), _) => url.clone(),
            (None, Ok(local)) => format!("{scheme}://{local}"),
            (None, Err(_)) => format!("{scheme}://{}", self.config.listen),
        };
        PublicBase(base.into())
    }
}

/// A connection just accepted, with what serving it takes.
struct Accepted {
    dispatch: Arc<router::Dispatch>,
    http: Arc<auto::Builder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    peer: SocketAddr,
    public_base: PublicBase,
}

impl Accepted {
    /// Serves HTTP/1.1 or HTTP/2 on `io` until the client leaves or shutdown closes it.
    async fn serve<I>(self, io: I, secure: bool)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Accepted { dispatch, http, watcher, peer, public_base } = self;
        let conn = Arc::new(router::Connection { peer, public_base, secure });
        let service = hyper::service::service_fn(move |req| dispatch.clone().handle(req, conn.clone()));
        let conn = http.serve_connection(TokioIo::new(io), service).into_owned();
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
    }

    /// A connection to a TLS listener: the handshake (bounded in time), or, when the client
    /// speaks plain HTTP, plain HTTP if `plain_ok` and otherwise a `400` saying to use HTTPS.
    async fn serve_tls(self, mut stream: tokio::net::TcpStream, tls: Arc<Tls>, plain_ok: bool) {
        let peer = self.peer;
        let mut first = [0u8; 1];
        match tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            _ => return,
        }
        if !tls::starts_handshake(first[0]) {
            if plain_ok {
                return self.serve(stream, false).await;
            }
            let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, USE_HTTPS).await;
            return;
        }
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream)).await {
            Ok(Ok(tls_stream)) => self.serve(tls_stream, true).await,
            Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }
}

/// Reads the certificate and key again on every SIGHUP until `stopped` resolves; a failure is
/// logged and the previous certificate stays.
async fn reload_tls_on_hangup<F, Fut>(tls: Arc<Tls>, stopped: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP: the TLS certificate will not be reloaded");
            return;
        }
    };
    let stopped = stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            received = hangups.recv() => {
                if received.is_none() {
                    return;
                }
                match tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "SIGHUP: cannot reload the TLS certificate; keeping the previous one"),
                }
            }
            () = &mut stopped => return,
        }
    }
}

/// s3s's limits for what it buffers. PostObject forms never reach s3s (the router refuses them
/// unread), so their limit is S3's own form-field limit rather than s3s's 5 GiB default.
fn s3_config() -> S3Config {
    let mut config = S3Config::default();
    config.post_object_max_file_size = 1024 * 1024;
    config
}

/// The account every principal of this server belongs to (Latchkey is one account).
const ACCOUNT_ID: &str = "000000000000";

/// The environment variable that carries the master key (else `<data dir>/master-key`).
pub const MASTER_KEY_ENV: &str = "LATCHKEY_MASTER_KEY";

/// One store, seen through each of its domain traits.
struct Views {
    meta: Arc<dyn MetaStore>,
    identity: Arc<dyn IdentityStore>,
    configs: Arc<dyn BucketConfigStore>,
}

fn views<S: MetaStore + IdentityStore + BucketConfigStore>(store: S) -> Views {
    let store = Arc::new(store);
    Views { meta: store.clone(), identity: store.clone(), configs: store }
}

async fn open_meta(config: &ServerConfig) -> anyhow::Result<Views> {
    let failed = "cannot open the metadata store";
    Ok(match config.meta_url.as_deref() {
        None => views(SqliteStore::open(&config.data_dir.join("meta.db")).await.context(failed)?),
        Some(url) if url.starts_with("sqlite:") => views(SqliteStore::open_url(url).await.context(failed)?),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            views(PgStore::open(url, config.meta_max_connections).await.context(failed)?)
        }
        Some(other) => bail!("unsupported --meta-url {other:?}: expected sqlite:PATH or postgres://..."),
    })
}
