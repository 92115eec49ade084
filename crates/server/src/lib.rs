//! The Latchkey server: opens the data dir and the metadata store, builds the S3 front, accepts
//! connections and shuts down gracefully.
//!
//! Request flow: listener (TCP_NODELAY, TLS when configured (`tls.rs`), header timeout) ->
//! [`router::Dispatch`] (request id, header limit, access log) -> S3 front (s3s: signature check
//! -> `Authorizer` -> operation) or Latchkey's own `/-/` routes. On shutdown the listener closes
//! first; in-flight requests get a grace period to finish, and nothing is torn because every
//! write commits atomically.

mod access_log;
mod access_path;
mod admission;
mod audit_api;
mod bucket_log;
pub mod config;
mod cors;
pub mod credentials;
mod error_body;
mod findings_api;
mod forwarded;
mod identifiers_api;
mod idle;
mod listener;
mod metrics;
mod rate;
mod router;
mod s3_wire;
mod security_events;
mod signed_api;
pub mod surface;
pub mod tls;

use std::future::Future;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

use anyhow::{Context, bail};
use hyper_util::server::graceful::GracefulShutdown;
use latchkey_audit::{Linker, SigningKey, Watcher};
use latchkey_discovery::Discovery;
use latchkey_discovery::identifiers::EngineSource;
use latchkey_identity::{Account, Identity, MasterKey, QueryApi};
use latchkey_meta::{
    AuditStore, BucketConfigStore, CustomIdentifierStore, FindingsStore, IdentityStore, LifecycleStore, MetaStore,
    PgStore, PresignedStore, ScanJobStore, SqliteStore, VersionStore,
};
use latchkey_object::ObjectService;
use latchkey_object::lifecycle::LifecycleWorker;
use latchkey_s3::post_object::PostUploads;
use latchkey_s3::presigned_api::PresignedApi;
use latchkey_s3::revoked::Revocations;
use latchkey_s3::{Authorizer, BucketConfigs, BucketNames, KeyAuth, S3Front, SigV2Verifier, SigningRules};
use latchkey_share::http::{SharesApi, redemption_routes};
use latchkey_share::{ShareGate, ShareKey, SharePolicy, ShareService, UrlSigner};
use latchkey_storage::BlobStore;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::S3ServiceBuilder;

pub use access_log::AccessSink;
use bucket_log::BucketLog;
pub use config::ServerConfig;
use credentials::RootSource;
use listener::Listener;
use surface::Surfaces;

/// A bound, ready server.
pub struct Server {
    /// The first is `listen`; the others are `[[listeners]]`.
    listeners: Vec<Listener>,
    /// SIGHUP (TLS reload), caught from `bind` on.
    hangups: tokio::signal::unix::Signal,
    limits: Arc<rate::RateLimits>,
    admission: Arc<admission::Admission>,
    presigned: Arc<dyn PresignedStore>,
    revocations: Arc<Revocations>,
    linker: Linker,
    watcher: Watcher,
    discovery: Arc<Discovery>,
    dispatch: Arc<router::Dispatch>,
    bucket_log: Arc<BucketLog>,
    objects: Arc<ObjectService>,
    shares: Arc<ShareService>,
    meta: Arc<dyn MetaStore>,
    identity: Arc<Identity>,
    configs: Arc<BucketConfigs>,
    lifecycle: LifecycleWorker,
    config: ServerConfig,
}

impl Server {
    /// Prepares the data dir, the stores and the credentials, and binds the listen address.
    /// Access-log lines go to `access_log` (`None`: none are written).
    pub async fn bind(config: ServerConfig, access_log: Option<Arc<dyn AccessSink>>) -> anyhow::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
        let Views {
            meta,
            identity: identity_store,
            configs: config_store,
            presigned,
            audit,
            findings,
            scan_jobs,
            custom_identifiers,
            versions,
            lifecycle,
        } = open_meta(&config).await?;
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
        let objects = Arc::new(
            ObjectService::new(meta.clone(), versions.clone(), blobs).with_scan_gate(config.discovery.scan_gate()),
        );
        let audit_key = SigningKey::load_or_create(&config.data_dir)
            .with_context(|| format!("cannot read or create the audit signing key in {}", config.data_dir.display()))?;
        let audit_public_key = audit_key.public_key().to_pem();
        let linker = Linker::new(audit.clone(), meta.clone(), Arc::new(audit_key), config.audit_digest_interval);
        let poster = latchkey_audit::webhook::Poster::new().context("cannot load the system's root certificates")?;
        let engines = Arc::new(
            EngineSource::new(config.scan.clone(), custom_identifiers.clone())
                .context("the sensitive-data scanner's settings")?,
        );
        let discovery = Arc::new(Discovery::new(
            findings.clone(),
            objects.clone(),
            engines.clone(),
            config.discovery.clone(),
            config.webhooks.clone(),
            poster.clone(),
        ));
        discovery.prepare().await.context("cannot prepare the scan queue")?;
        let watcher = Watcher::new(
            audit.clone(),
            meta.clone(),
            latchkey_audit::alarm::Alarms::new(config.alarms.clone()),
            config.webhooks.clone(),
            poster,
            Box::new(|| metrics::recorder().render()),
        );
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
        let lifecycle = LifecycleWorker::new(objects.clone(), config_store.clone(), lifecycle, config.lifecycle);
        let configs = BucketConfigs::open(config_store).await.context("cannot load bucket settings")?;
        let revocations = Revocations::open(presigned.clone(), config.max_presigned_expiry)
            .await
            .context("cannot load presigned-URL revocations")?;
        let authorizer = Authorizer::new(
            identity.clone(),
            meta.clone(),
            versions,
            presigned.clone(),
            revocations.clone(),
            configs.clone(),
        );
        let gate = Arc::new(ShareGate::new(identity.clone(), authorizer.clone()));
        let shares = Arc::new(ShareService::new(objects.clone(), share_key, policy, signer, gate));
        let front = S3Front::new(
            objects.clone(),
            configs.clone(),
            config.region.clone(),
            config.block_public_access,
            identity.clone(),
        );
        let mut s3 = S3ServiceBuilder::new(front);
        s3.set_config(Arc::new(StaticConfigProvider::new(Arc::new(s3_config()))));
        let keys = KeyAuth::new(identity.clone());
        s3.set_auth(keys.clone());
        s3.set_access(authorizer.clone());
        s3.set_validation(BucketNames);
        if let Some(domains) = &config.domains {
            s3.set_host(domains.clone());
        }
        s3.set_route(signed_api::SignedApis {
            apis: vec![
                Box::new(SharesApi::new(shares.clone())),
                Box::new(PresignedApi::new(identity.clone(), meta.clone(), revocations.clone())),
                Box::new(audit_api::AuditApi::new(identity.clone(), audit, meta.clone())),
                // Before `/-/findings`, whose paths hold its own.
                Box::new(identifiers_api::IdentifiersApi::new(
                    identity.clone(),
                    custom_identifiers,
                    engines,
                    meta.clone(),
                )),
                Box::new(findings_api::FindingsApi::new(identity.clone(), findings, scan_jobs, objects.clone())),
            ],
            revocations: revocations.clone(),
            identity: identity.clone(),
            meta: meta.clone(),
        });
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for listener in &config.listeners {
            listeners.push(Listener::bind(listener).await?);
        }
        let signing = SigningRules {
            region: config.region.clone(),
            max_presigned_expiry: config.max_presigned_expiry,
            sigv2: config.sigv2,
        };
        let limits = Arc::new(rate::RateLimits::new(&config.rate_limits));
        let admission = Arc::new(admission::Admission::new(
            config.networks.clone(),
            config.connection_caps,
            config.trusted_proxies.clone(),
        ));
        let bucket_log = BucketLog::new(
            configs.clone(),
            objects.clone(),
            authorizer.clone(),
            &identity.account().id,
            &config.region,
        );
        let dispatch = router::Dispatch::new(
            s3.build(),
            router::public_routes(
                redemption_routes(shares.clone()),
                meta.clone(),
                &config.data_dir,
                metrics::recorder(),
                audit_public_key,
            ),
            QueryApi::new(identity.clone(), config.region.clone(), meta.clone()),
            router::Envelope {
                signing: signing.clone(),
                sigv2: SigV2Verifier::new(keys),
                post_uploads: PostUploads::new(objects.clone(), authorizer.clone(), revocations.clone(), signing),
            },
            configs.clone(),
            router::Guard {
                hsts_max_age_secs: config.hsts_max_age_secs,
                trusted_proxies: config.trusted_proxies.clone(),
                admission: admission.clone(),
                limits: limits.clone(),
                identity: identity.clone(),
                idle_timeout: config.idle_timeout,
                access_log,
                security_events: Arc::new(security_events::SecurityEvents::new(
                    meta.clone(),
                    identity.account().root_arn(),
                )),
                bucket_log: bucket_log.clone(),
                domains: config.domains.clone(),
            },
        );
        Ok(Self {
            listeners,
            hangups,
            limits,
            admission,
            presigned,
            revocations,
            linker,
            watcher,
            discovery,
            dispatch: Arc::new(dispatch),
            bucket_log,
            objects,
            shares,
            meta,
            identity,
            configs,
            lifecycle,
            config,
        })
    }

    /// Every listener: its URL (scheme and bound address) and the surfaces it serves, `listen`
    /// first.
    pub fn urls(&self) -> std::io::Result<Vec<(String, Surfaces)>> {
        self.listeners.iter().map(|l| Ok((format!("{}://{}", l.scheme(), l.local_addr()?), l.surfaces()))).collect()
    }

    /// Serves until `shutdown` resolves, then stops accepting and waits up to the configured
    /// grace period for in-flight requests.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let graceful = Arc::new(GracefulShutdown::new());
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
        let lifecycle = tokio::spawn(self.lifecycle.run(until_stopped()));
        if let Some(every) = self.config.orphan_sweep_interval {
            let (objects, until, grace) = (self.objects.clone(), until_stopped.clone(), self.config.orphan_grace);
            tokio::spawn(async move { objects.run_orphan_sweeper(grace, every, until()).await });
        }
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
        tokio::spawn(self.limits.clone().maintain(until_stopped()));
        tokio::spawn(purge_expired_presigned(self.presigned.clone(), until_stopped()));
        tokio::spawn(self.revocations.clone().maintain(until_stopped()));
        let linker = tokio::spawn(self.linker.run(until_stopped()));
        tokio::spawn(self.watcher.run(until_stopped()));
        tokio::spawn(self.discovery.run(until_stopped()));
        let certificates: Vec<_> = self.listeners.iter().filter_map(Listener::tls).collect();
        tokio::spawn(listener::reload_tls_on_hangup(self.hangups, certificates, until_stopped()));
        let bucket_log = tokio::spawn(self.bucket_log.clone().run(self.config.bucket_log_flush, until_stopped()));
        let sweeper = tokio::spawn(async move { shares.run_sweeper(until_stopped()).await });
        let shared = Arc::new(listener::Shared {
            dispatch: self.dispatch.clone(),
            http: Arc::new(listener::Protocols::new(self.config.header_read_timeout, self.config.idle_timeout)),
            public_url: self.config.public_url.clone(),
            plain_http_from_loopback: self.config.plain_http_from_loopback,
            admission: self.admission.clone(),
            graceful: graceful.clone(),
        });
        // Each listener accepts until shutdown; then no new connection is taken anywhere.
        let (stop_accepting, accepting) = tokio::sync::watch::channel(());
        let accept_loops: Vec<_> = self
            .listeners
            .into_iter()
            .map(|listener| {
                let mut accepting = accepting.clone();
                let stop = async move {
                    let _ = accepting.changed().await;
                };
                tokio::spawn(listener.run(shared.clone(), stop))
            })
            .collect();
        shutdown.await;
        drop(stop_accepting);
        for accept_loop in accept_loops {
            let _ = accept_loop.await;
        }
        drop(shared);
        tracing::info!("shutting down: no new connections; waiting for in-flight requests");
        // The accept loops held the only other references, and they have ended.
        let drained = async move {
            match Arc::try_unwrap(graceful) {
                Ok(graceful) => graceful.shutdown().await,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            () = drained => tracing::info!("all connections closed"),
            () = tokio::time::sleep(self.config.shutdown_grace) => {
                tracing::warn!("grace period over; closing remaining connections");
            }
        }
        drop(stop_background);
        let _ = collector.await;
        // Gives its lease up, so that a restart or another replica takes over at once.
        let _ = lifecycle.await;
        let _ = sweeper.await;
        let _ = maintainer.await;
        let _ = config_maintainer.await;
        let _ = linker.await;
        let _ = bucket_log.await;
        self.meta.close().await;
        Ok(())
    }
}

/// Forgets the uses and revocations of expired presigned URLs every ten minutes until `stopped`.
async fn purge_expired_presigned(store: Arc<dyn PresignedStore>, stopped: impl Future<Output = ()>) {
    let mut stopped = std::pin::pin!(stopped);
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = store.purge_expired_presigned(time::OffsetDateTime::now_utc()).await {
                    tracing::warn!(error = %e, "cannot purge the uses of expired presigned URLs");
                }
            }
            () = &mut stopped => return,
        }
    }
}

/// s3s's limits for what it buffers. PostObject forms never reach s3s (the router hands them to
/// `PostUploads`, which streams them), so their limit is a small one rather than s3s's 5 GiB.
fn s3_config() -> S3Config {
    let mut config = S3Config::default();
    config.post_object_max_file_size = 1024 * 1024;
    config.xml_max_body_size = latchkey_s3::MAX_XML_BODY;
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
    presigned: Arc<dyn PresignedStore>,
    audit: Arc<dyn AuditStore>,
    findings: Arc<dyn FindingsStore>,
    scan_jobs: Arc<dyn ScanJobStore>,
    custom_identifiers: Arc<dyn CustomIdentifierStore>,
    versions: Arc<dyn VersionStore>,
    lifecycle: Arc<dyn LifecycleStore>,
}

fn views<S>(store: S) -> Views
where
    S: MetaStore
        + IdentityStore
        + BucketConfigStore
        + PresignedStore
        + AuditStore
        + FindingsStore
        + ScanJobStore
        + CustomIdentifierStore
        + VersionStore
        + LifecycleStore,
{
    let store = Arc::new(store);
    Views {
        meta: store.clone(),
        identity: store.clone(),
        configs: store.clone(),
        presigned: store.clone(),
        audit: store.clone(),
        findings: store.clone(),
        scan_jobs: store.clone(),
        custom_identifiers: store.clone(),
        versions: store.clone(),
        lifecycle: store,
    }
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
