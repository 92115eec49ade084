//! `latchkey serve`: flags and environment, logging, signals.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use latchkey_server::config::{AccessLogTarget, ConfigFile, Overrides};
use latchkey_server::{AccessSink, Server, ServerConfig};
use tracing_subscriber::fmt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::logging;

#[derive(Args)]
#[command(after_help = "\
Root credentials come from LATCHKEY_ROOT_ACCESS_KEY and LATCHKEY_ROOT_SECRET_KEY when both are set; \
otherwise they are generated on the first start, printed once, and stored (mode 0600) in \
DATA_DIR/root-credentials in AWS credentials-file format (profile \"latchkey\").

Logs go to stderr; RUST_LOG filters them (default: info); s3s and aws_sigv4, which log signatures, stay off. \
The access log (one JSON line per request) goes with them unless access_log in the config file says otherwise. SIGINT or SIGTERM stops accepting \
connections and lets in-flight requests finish (shutdown_grace_secs in the config file, default 30). \
At start the open-file soft limit is raised to the hard limit (each client connection is a file).")]
pub struct ServeArgs {
    /// Directory for objects, metadata and the root credentials [default: ./latchkey-data]
    #[arg(long, env = "LATCHKEY_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9000]
    #[arg(long, env = "LATCHKEY_LISTEN", value_name = "IP:PORT")]
    listen: Option<String>,
    /// Metadata store: sqlite:PATH, or postgres://... [default: SQLite inside the data dir]
    #[arg(long, env = "LATCHKEY_META_URL", value_name = "URL")]
    meta_url: Option<String>,
    /// Region the server reports and expects in signatures [default: us-east-1]
    #[arg(long, env = "LATCHKEY_REGION")]
    region: Option<String>,
    /// Base of every absolute URL handed out (share links, redirects), e.g.
    /// https://files.example.com [default: the address of the listener a request came on; never
    /// the request's Host header]
    #[arg(long, env = "LATCHKEY_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Serve virtual-hosted-style requests: `BUCKET.DOMAIN` names the bucket (path style always
    /// works too). A comma-separated list for several, e.g. s3.example.test
    #[arg(long, env = "LATCHKEY_DOMAIN", value_name = "DOMAIN")]
    domain: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. SIGHUP reads
    /// both files again without dropping connections
    #[arg(long, env = "LATCHKEY_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "LATCHKEY_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// TOML file with any of: data_dir, listen, meta_url, meta_max_connections (PostgreSQL,
    /// default 32), region, public_url, domain, shutdown_grace_secs, max_share_expiry_secs (default
    /// 604800), share_resume_grace_secs (600, at most 86400), share_resume_overlap_bytes
    /// (1048576), share_retention_secs (86400), audit_retention_secs (7776000),
    /// audit_unknown_tokens_flush_secs (60), max_presigned_expiry_secs (604800, SigV4 and SigV2
    /// alike), sigv2 (true; false refuses SigV2), tls_cert and tls_key, plain_http_from_loopback
    /// (true: with TLS on, loopback clients may still use plain HTTP), hsts_max_age_secs
    /// (31536000 over TLS; 0 sends no HSTS), surfaces and allow_cidrs (of the listen address;
    /// surfaces among s3, shares, metrics, health; default all but metrics), [[listeners]] (address, surfaces, tls_cert,
    /// tls_key, allow_cidrs), trusted_proxies (CIDRs whose forwarding header names the client),
    /// forwarded_header (x-forwarded-for or forwarded), trust_forwarded_proto (false),
    /// header_read_timeout_secs (30), idle_timeout_secs (20: a request body or response stalled
    /// that long is cut), max_connections (10000) and max_connections_per_ip (128), deny_cidrs
    /// (of the listen address; [[listeners]] take deny_cidrs too), [networks] (allow, deny: every
    /// listener), access_log (stderr, off or a file: JSON lines), [rate_limits] (per_ip, per_key,
    /// per_link requests per second with *_burst, failed_auth_cost, exempt). Flags and
    /// environment variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Held to the end of `run`: dropping it writes out the lines still queued.
    let (writer, _log) = logging::start(Box::new(std::io::stderr()));
    let output = fmt::layer().with_ansi(ansi).with_writer(writer.clone());
    tracing_subscriber::registry().with(logging::filter()).with(output).init();
    raise_open_file_limit();

    let file = args.config.as_deref().map(ConfigFile::load).transpose()?.unwrap_or_default();
    let overrides = Overrides {
        data_dir: args.data_dir,
        listen: args.listen,
        meta_url: args.meta_url,
        region: args.region,
        public_url: args.public_url,
        domain: args.domain,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
    };
    let config = ServerConfig::resolve(overrides, file)?;
    // Held to the end of `run`, like the log's.
    let (access_log, _access_log_file) = access_log(&config.access_log, writer)?;
    let server = Server::bind(config, access_log).await?;
    // Scripts and tests wait for the first line (the `listen` address).
    for (i, (url, surfaces)) in server.urls()?.into_iter().enumerate() {
        if i == 0 {
            println!("latchkey listening on {url}");
        } else {
            println!("latchkey also listening on {url} ({surfaces:?})");
        }
    }
    std::io::stdout().flush()?;
    server.serve(shutdown_signal()).await
}

/// The access log's sink: the log's own writer (stderr), none, or a writer to a file of its own
/// with the guard that finishes it.
#[allow(clippy::type_complexity)]
fn access_log(
    target: &AccessLogTarget,
    log: logging::LogWriter,
) -> anyhow::Result<(Option<Arc<dyn AccessSink>>, Option<logging::LogGuard>)> {
    Ok(match target {
        AccessLogTarget::Stderr => (Some(Arc::new(log)), None),
        AccessLogTarget::Off => (None, None),
        AccessLogTarget::File(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot open the access log {}", path.display()))?;
            let (writer, guard) = logging::start(Box::new(file));
            (Some(Arc::new(writer)), Some(guard))
        }
    })
}

/// Every connection, blob being streamed and held fan-out directory is a file descriptor, and
/// the usual default soft limit (1024) would cap the server at a few hundred clients. Raise the
/// soft limit as far as the hard limit allows, as servers commonly do.
fn raise_open_file_limit() {
    const LOW: u64 = 4096;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < LOW => {
            tracing::warn!(limit, "the open-file limit is low for a server; raise the hard limit (ulimit -Hn)")
        }
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT will stop the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}
