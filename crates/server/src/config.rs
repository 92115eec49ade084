//! Server settings: defaults, overridden by a TOML file, overridden by flags and environment.

use latchkey_object::lifecycle::LifecycleSettings;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use latchkey_audit::alarm::AlarmRule;
use latchkey_audit::webhook::{Target, Webhook};
use latchkey_discovery::DiscoveryConfig;
use latchkey_s3::MAX_PRESIGNED_EXPIRY_SECS;
use latchkey_s3::addressing::Domains;
use latchkey_scan::{AllowList, CustomIdentifier, ScanConfig};
use serde::Deserialize;

use crate::admission::{ConnectionCaps, NetworkList};
use crate::forwarded::{ForwardedHeader, TrustedProxies};
use crate::rate::{Rate, RateSettings};
use crate::surface::{Surface, Surfaces};
use crate::tls::TlsFiles;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9000";
pub const DEFAULT_DATA_DIR: &str = "./latchkey-data";
pub const DEFAULT_REGION: &str = "us-east-1";
/// Share links live at most seven days unless the config file says otherwise.
pub const DEFAULT_MAX_SHARE_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest resume grace a config may set: a grant is looked up that far back.
pub const MAX_SHARE_RESUME_GRACE: Duration = Duration::from_secs(24 * 3600);
/// How far one use may exceed the object's size in all, by default.
pub const DEFAULT_SHARE_RESUME_OVERLAP: u64 = 1024 * 1024;
/// How long audit events are kept, by default.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// How often redemptions of unknown share tokens are written to the audit trail, by default.
pub const DEFAULT_UNKNOWN_TOKENS_FLUSH: Duration = Duration::from_secs(60);
/// Requests per second allowed by default, per client address and per share link (each with
/// twice as much burst; loopback is exempt by default). Per access key: off unless configured,
/// since it counts requests naming a key before their signature is checked (`rate.rs`).
pub const DEFAULT_RATE_PER_IP: u32 = 1000;
pub const DEFAULT_RATE_PER_KEY: u32 = 0;
pub const DEFAULT_RATE_PER_LINK: u32 = 10;
/// HSTS max-age over TLS, by default: one year.
pub const DEFAULT_HSTS_MAX_AGE_SECS: u64 = 365 * 24 * 3600;
/// Connections each server opens to PostgreSQL at most. PostgreSQL's default
/// `max_connections` is 100: three replicas fit with room for administration.
pub const DEFAULT_META_MAX_CONNECTIONS: u32 = 32;
/// Open connections allowed by default, in all and from one address (loopback and trusted
/// proxies are not capped per address). SDKs pool up to 50 connections per client.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 128;
/// How long a client may leave a request body unsent or a response unread, by default (S3
/// closes idle connections after about 20 seconds too).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 20;
/// Audit digests every five minutes (CloudTrail writes its digest files hourly).
pub const DEFAULT_AUDIT_DIGEST_INTERVAL_SECS: u64 = 300;
pub const DEFAULT_BUCKET_LOG_FLUSH_SECS: u64 = 60;
/// The orphan sweep's grace period and interval: an hour.
pub const DEFAULT_ORPHAN_SECS: u64 = 3600;

/// Lifecycle passes: hourly, 1000 entries per batch.
const DEFAULT_LIFECYCLE_INTERVAL_SECS: u64 = 3600;
const DEFAULT_LIFECYCLE_BATCH: u32 = 1000;
/// What the grace period may be: at least ten minutes, at most ten years.
pub const ORPHAN_GRACE_SECS: std::ops::RangeInclusive<u64> = 600..=315_360_000;

/// Everything `latchkey serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// Where to listen: the first is `listen` (with `tls_cert`/`tls_key`, `surfaces` and
    /// `allow_cidrs` at the top of the file), the others are `[[listeners]]`.
    pub listeners: Vec<ListenerConfig>,
    /// `None`: SQLite inside the data dir.
    pub meta_url: Option<String>,
    /// PostgreSQL: the most connections this server opens.
    pub meta_max_connections: u32,
    pub region: String,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// The longest lifetime a share link may be given.
    pub max_share_expiry: Duration,
    /// How long a broken share download may be resumed (Range, same address and User-Agent)
    /// without using another use.
    pub share_resume_grace: Duration,
    /// How many bytes beyond the object's size one use may serve, first transfer and resumes
    /// together.
    pub share_resume_overlap_bytes: u64,
    /// How long spent share links stay listed before the sweeper purges them.
    pub share_retention: Duration,
    /// The base of every absolute URL handed out (share links, redirects), such as
    /// `https://files.example.com`. `None`: the address of the listener the request came on;
    /// never the request's Host header.
    pub public_url: Option<String>,
    /// The domains whose subdomains name buckets (`photos.s3.example.test`); `None`: path-style
    /// addressing only (which works with them too).
    pub domains: Option<Domains>,
    /// The longest lifetime a presigned URL may claim, SigV4 `X-Amz-Expires` and SigV2 `Expires`
    /// alike.
    pub max_presigned_expiry: Duration,
    /// Whether SigV2 (header and presigned) is accepted at all.
    pub sigv2: bool,
    /// Whether new buckets start with all four public access block flags on (else with no
    /// public access block), like AWS's account-level setting.
    pub block_public_access: bool,
    /// How long audit events are kept before the sweeper purges them.
    pub audit_retention: Duration,
    /// How often redemptions of unknown share tokens are written to the audit trail, as one
    /// aggregate event.
    pub audit_unknown_tokens_flush: Duration,
    /// With TLS on: whether a connection from loopback may still speak plain HTTP.
    pub plain_http_from_loopback: bool,
    /// `Strict-Transport-Security: max-age` on responses over TLS; 0 sends none.
    pub hsts_max_age_secs: u64,
    /// A client that has not sent a whole request head by then is disconnected.
    pub header_read_timeout: Duration,
    /// A client that sends nothing of its request body, or reads nothing of its response, for
    /// this long is cut off (`idle.rs`).
    pub idle_timeout: Duration,
    /// How often the audit chain's head is signed (`latchkey-audit`).
    pub audit_digest_interval: Duration,
    /// How often buckets' server access logs are delivered into their target buckets.
    pub bucket_log_flush: Duration,
    /// Blobs no record names are removed once this old (a write between its blob and its
    /// record, on any replica sharing the data dir, is far shorter), at start and every
    /// `orphan_sweep_interval` (`latchkey-object`'s orphan sweep).
    pub orphan_grace: Duration,
    /// `None`: the sweep is off (`orphan_sweep = false`).
    pub orphan_sweep_interval: Option<Duration>,
    /// How the lifecycle worker runs (`latchkey-object`'s lifecycle).
    pub lifecycle: LifecycleSettings,
    /// Open connections allowed, in all and per client address.
    pub connection_caps: ConnectionCaps,
    /// Networks admitted on every listener (`[networks]`), on top of each listener's own lists.
    pub networks: NetworkList,
    pub access_log: AccessLogTarget,
    pub rate_limits: RateSettings,
    /// Alarm rules over the audit trail, and the webhooks their notifications go to.
    pub alarms: Vec<AlarmRule>,
    pub webhooks: Vec<Target>,
    /// The sensitive-data scanner's custom identifiers, allow-list and settings, checked at
    /// start (the same tables `latchkey scan --config` reads).
    pub scan: ScanConfig,
    /// What the scan queue's workers do with uploads (`[discovery]`).
    pub discovery: DiscoveryConfig,
    /// Proxies whose `Forwarded` / `X-Forwarded-*` headers are believed (none by default).
    pub trusted_proxies: TrustedProxies,
}

/// The `--config` file. Every key is optional; unknown keys are an error so typos surface.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub meta_url: Option<String>,
    pub meta_max_connections: Option<u32>,
    pub region: Option<String>,
    pub shutdown_grace_secs: Option<u64>,
    pub max_share_expiry_secs: Option<u64>,
    pub share_resume_grace_secs: Option<u64>,
    pub share_resume_overlap_bytes: Option<u64>,
    pub share_retention_secs: Option<u64>,
    pub public_url: Option<String>,
    pub domain: Option<String>,
    pub max_presigned_expiry_secs: Option<u64>,
    pub sigv2: Option<bool>,
    pub block_public_access: Option<bool>,
    pub audit_retention_secs: Option<u64>,
    pub audit_unknown_tokens_flush_secs: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub plain_http_from_loopback: Option<bool>,
    pub hsts_max_age_secs: Option<u64>,
    pub trusted_proxies: Option<Vec<String>>,
    pub header_read_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub audit_digest_interval_secs: Option<u64>,
    pub bucket_log_flush_secs: Option<u64>,
    pub orphan_sweep: Option<bool>,
    pub orphan_grace_secs: Option<u64>,
    pub orphan_sweep_interval_secs: Option<u64>,
    pub lifecycle_interval_secs: Option<u64>,
    pub lifecycle_batch: Option<u32>,
    /// Lifecycle rules are judged as if it were this much later (tests, drills); never Object Lock.
    pub lifecycle_clock_offset_secs: Option<u64>,
    /// `stderr` (default), `off`, or a file path.
    pub access_log: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    #[serde(default)]
    pub networks: NetworksFile,
    #[serde(default)]
    pub rate_limits: RateLimitsFile,
    /// `x-forwarded-for` (default) or `forwarded`: the header the trusted proxies write.
    pub forwarded_header: Option<String>,
    /// Whether the trusted proxies set `X-Forwarded-Proto` / `proto=` (default false).
    pub trust_forwarded_proto: Option<bool>,
    pub surfaces: Option<Vec<String>>,
    pub allow_cidrs: Option<Vec<String>>,
    pub deny_cidrs: Option<Vec<String>>,
    #[serde(default)]
    pub listeners: Vec<ListenerFile>,
    #[serde(default)]
    pub alarms: Vec<AlarmRule>,
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    #[serde(default)]
    pub custom_identifiers: Vec<CustomIdentifier>,
    #[serde(default)]
    pub allow_list: AllowList,
    #[serde(default)]
    pub disabled_identifiers: Vec<String>,
    /// Locations a finding keeps per identifier.
    pub max_locations: Option<usize>,
    /// Scanning stored objects: on upload, scan-gated buckets, remediation.
    #[serde(default)]
    pub discovery: DiscoveryConfig,
}

/// Where the access log's JSON lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// With the log.
    Stderr,
    Off,
    /// Appended to this file (created with mode 0600).
    File(PathBuf),
}

/// The `[networks]` table: client networks admitted on every listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworksFile {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

/// The `[rate_limits]` table: requests per second and burst of each kind (0 turns it off).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsFile {
    pub per_ip: Option<u32>,
    pub per_ip_burst: Option<u32>,
    pub per_key: Option<u32>,
    pub per_key_burst: Option<u32>,
    pub per_link: Option<u32>,
    pub per_link_burst: Option<u32>,
    pub failed_auth_cost: Option<u32>,
    pub exempt: Option<Vec<String>>,
}

/// One `[[listeners]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub address: String,
    pub surfaces: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_cidrs: Option<Vec<String>>,
    pub deny_cidrs: Option<Vec<String>>,
}

/// One listening socket, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    pub surfaces: Surfaces,
    /// Clients it serves (`allow_cidrs`, `deny_cidrs`), on top of the global `[networks]`.
    pub networks: NetworkList,
}

impl ConfigFile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// What the command line (flags or their environment variables) said; unset fields fall back
/// to the file, then to the defaults.
#[derive(Debug, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub meta_url: Option<String>,
    pub region: Option<String>,
    pub public_url: Option<String>,
    pub domain: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl ServerConfig {
    pub fn resolve(cli: Overrides, file: ConfigFile) -> anyhow::Result<Self> {
        let listen = cli.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let meta_max_connections = file.meta_max_connections.unwrap_or(DEFAULT_META_MAX_CONNECTIONS);
        if meta_max_connections == 0 {
            bail!("meta_max_connections must be at least 1");
        }
        let public_url = cli.public_url.or(file.public_url).map(|url| parse_public_url(&url)).transpose()?;
        let domains =
            cli.domain.or(file.domain).map(|list| Domains::parse(&list)).transpose().map_err(anyhow::Error::msg)?;
        let max_presigned_expiry = file.max_presigned_expiry_secs.unwrap_or(MAX_PRESIGNED_EXPIRY_SECS);
        if !(1..=MAX_PRESIGNED_EXPIRY_SECS).contains(&max_presigned_expiry) {
            bail!(
                "max_presigned_expiry_secs must be between 1 and {MAX_PRESIGNED_EXPIRY_SECS} (seven days, S3's limit)"
            );
        }
        let share_resume_grace = Duration::from_secs(file.share_resume_grace_secs.unwrap_or(600));
        if share_resume_grace > MAX_SHARE_RESUME_GRACE {
            bail!("share_resume_grace_secs must be at most {} (one day)", MAX_SHARE_RESUME_GRACE.as_secs());
        }
        let audit_unknown_tokens_flush =
            file.audit_unknown_tokens_flush_secs.map_or(DEFAULT_UNKNOWN_TOKENS_FLUSH, Duration::from_secs);
        if audit_unknown_tokens_flush.is_zero() {
            bail!("audit_unknown_tokens_flush_secs must be at least 1");
        }
        let primary = ListenerFile {
            address: listen,
            // Metrics only where asked for: they tell an attacker how a flood is doing.
            surfaces: file.surfaces.unwrap_or_else(|| {
                Surface::ALL.iter().filter(|s| **s != Surface::Metrics).map(|s| s.name().to_owned()).collect()
            }),
            tls_cert: cli.tls_cert.or(file.tls_cert),
            tls_key: cli.tls_key.or(file.tls_key),
            allow_cidrs: file.allow_cidrs,
            deny_cidrs: file.deny_cidrs,
        };
        let listeners = std::iter::once(primary)
            .chain(file.listeners)
            .enumerate()
            .map(|(i, listener)| {
                let which = if i == 0 { "listen".to_owned() } else { format!("listeners[{}]", i - 1) };
                listener.resolve().with_context(|| format!("invalid {which}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (i, listener) in listeners.iter().enumerate() {
            if listeners[..i].iter().any(|earlier| earlier.address == listener.address) {
                bail!("two listeners on {}: each address can be listened on once", listener.address);
            }
        }
        let header_read_timeout = Duration::from_secs(file.header_read_timeout_secs.unwrap_or(30));
        if header_read_timeout.is_zero() {
            bail!("header_read_timeout_secs must be at least 1");
        }
        let idle_timeout = Duration::from_secs(file.idle_timeout_secs.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS));
        let audit_digest_interval =
            Duration::from_secs(file.audit_digest_interval_secs.unwrap_or(DEFAULT_AUDIT_DIGEST_INTERVAL_SECS));
        let bucket_log_flush = Duration::from_secs(file.bucket_log_flush_secs.unwrap_or(DEFAULT_BUCKET_LOG_FLUSH_SECS));
        if bucket_log_flush.is_zero() {
            bail!("bucket_log_flush_secs must be at least 1");
        }
        let orphan_grace = file.orphan_grace_secs.unwrap_or(DEFAULT_ORPHAN_SECS);
        if !ORPHAN_GRACE_SECS.contains(&orphan_grace) {
            bail!(
                "orphan_grace_secs must be between {} and {} (shorter, a write between its blob and its record could \
                 be swept)",
                ORPHAN_GRACE_SECS.start(),
                ORPHAN_GRACE_SECS.end()
            );
        }
        let orphan_grace = Duration::from_secs(orphan_grace);
        let orphan_sweep_interval = Duration::from_secs(file.orphan_sweep_interval_secs.unwrap_or(DEFAULT_ORPHAN_SECS));
        if orphan_sweep_interval.is_zero() {
            bail!("orphan_sweep_interval_secs must be at least 1 (orphan_sweep = false turns the sweep off)");
        }
        let orphan_sweep_interval = file.orphan_sweep.unwrap_or(true).then_some(orphan_sweep_interval);
        let lifecycle = LifecycleSettings {
            interval: Duration::from_secs(file.lifecycle_interval_secs.unwrap_or(DEFAULT_LIFECYCLE_INTERVAL_SECS)),
            batch: file.lifecycle_batch.unwrap_or(DEFAULT_LIFECYCLE_BATCH),
            clock_offset: Duration::from_secs(file.lifecycle_clock_offset_secs.unwrap_or(0)),
        };
        if lifecycle.interval.is_zero() {
            bail!("lifecycle_interval_secs must be at least 1");
        }
        if lifecycle.clock_offset > Duration::from_secs(100 * 365 * 86_400) {
            bail!("lifecycle_clock_offset_secs must be at most 100 years");
        }
        if !(1..=10_000).contains(&lifecycle.batch) {
            bail!("lifecycle_batch must be between 1 and 10000");
        }
        if audit_digest_interval.is_zero() {
            bail!("audit_digest_interval_secs must be at least 1");
        }
        if idle_timeout.is_zero() {
            bail!("idle_timeout_secs must be at least 1");
        }
        let connection_caps = ConnectionCaps {
            max: file.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_per_ip: file.max_connections_per_ip.unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_IP),
        };
        if connection_caps.max == 0 || connection_caps.max_per_ip == 0 {
            bail!("max_connections and max_connections_per_ip must be at least 1");
        }
        let global_networks = NetworkList {
            allow: parse_cidrs("networks.allow", file.networks.allow)?,
            deny: parse_cidrs("networks.deny", file.networks.deny)?,
        };
        let networks = parse_cidrs("trusted_proxies", file.trusted_proxies)?;
        let header = match file.forwarded_header.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("x-forwarded-for") => ForwardedHeader::XForwardedFor,
            Some("forwarded") => ForwardedHeader::Forwarded,
            Some(other) => bail!("invalid forwarded_header {other:?}: expected \"x-forwarded-for\" or \"forwarded\""),
        };
        let trusted_proxies = TrustedProxies { networks, header, proto: file.trust_forwarded_proto.unwrap_or(false) };
        let scan = ScanConfig {
            custom_identifiers: file.custom_identifiers,
            allow_list: file.allow_list,
            disabled_identifiers: file.disabled_identifiers,
            max_locations: file.max_locations.unwrap_or(ScanConfig::default().max_locations),
        };
        latchkey_scan::Engine::new(&scan).context("the sensitive-data scanner's settings are refused")?;
        if let Some(problem) = file.discovery.problem() {
            bail!("{problem}");
        }
        Ok(Self {
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            listeners,
            meta_url: cli.meta_url.or(file.meta_url),
            meta_max_connections,
            region: cli.region.or(file.region).unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            shutdown_grace: Duration::from_secs(file.shutdown_grace_secs.unwrap_or(30)),
            max_share_expiry: file.max_share_expiry_secs.map_or(DEFAULT_MAX_SHARE_EXPIRY, Duration::from_secs),
            share_resume_grace,
            share_resume_overlap_bytes: file.share_resume_overlap_bytes.unwrap_or(DEFAULT_SHARE_RESUME_OVERLAP),
            share_retention: Duration::from_secs(file.share_retention_secs.unwrap_or(24 * 3600)),
            public_url,
            domains,
            max_presigned_expiry: Duration::from_secs(max_presigned_expiry),
            sigv2: file.sigv2.unwrap_or(true),
            block_public_access: file.block_public_access.unwrap_or(true),
            audit_retention: file.audit_retention_secs.map_or(DEFAULT_AUDIT_RETENTION, Duration::from_secs),
            audit_unknown_tokens_flush,
            plain_http_from_loopback: file.plain_http_from_loopback.unwrap_or(true),
            hsts_max_age_secs: file.hsts_max_age_secs.unwrap_or(DEFAULT_HSTS_MAX_AGE_SECS),
            trusted_proxies,
            scan,
            discovery: file.discovery,
            header_read_timeout,
            idle_timeout,
            audit_digest_interval,
            bucket_log_flush,
            orphan_grace,
            orphan_sweep_interval,
            lifecycle,
            connection_caps,
            networks: global_networks,
            access_log: match file.access_log.as_deref() {
                None | Some("stderr") => AccessLogTarget::Stderr,
                Some("off") => AccessLogTarget::Off,
                Some("") => bail!("access_log must be \"stderr\", \"off\" or a file path"),
                Some(path) => AccessLogTarget::File(path.into()),
            },
            rate_limits: file.rate_limits.resolve()?,
            alarms: checked_alarms(file.alarms)?,
            webhooks: file
                .webhooks
                .iter()
                .map(Webhook::target)
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?,
        })
    }
}

/// The alarm rules, each usable and named once.
fn checked_alarms(alarms: Vec<AlarmRule>) -> anyhow::Result<Vec<AlarmRule>> {
    let mut names = std::collections::HashSet::new();
    for alarm in &alarms {
        if let Some(problem) = alarm.problem() {
            bail!("{problem}");
        }
        if let Some(metric) = &alarm.metric {
            let series = crate::metrics::SERIES;
            let Some((_, labels)) = series.iter().find(|(name, _)| name == metric) else {
                let names: Vec<&str> = series.iter().map(|(name, _)| *name).collect();
                bail!("alarm {}: no metric is named {metric:?}; the metrics are {}", alarm.name, names.join(", "));
            };
            if let Some(label) = alarm.labels.keys().find(|label| !labels.contains(&label.as_str())) {
                bail!("alarm {}: {metric} has no label {label:?}; its labels are {}", alarm.name, labels.join(", "));
            }
        }
        if !names.insert(alarm.name.as_str()) {
            bail!("two alarms are named {:?}", alarm.name);
        }
    }
    Ok(alarms)
}

impl ServerConfig {
    /// The first listener's address (`listen`).
    pub fn listen(&self) -> SocketAddr {
        self.listeners[0].address
    }
}

impl RateLimitsFile {
    fn resolve(self) -> anyhow::Result<RateSettings> {
        let rate = |name: &str, per_second: Option<u32>, burst: Option<u32>, default: u32| {
            let per_second = per_second.unwrap_or(default);
            let Some(per_second) = NonZeroU32::new(per_second) else { return Ok(None) };
            let burst = burst.unwrap_or(per_second.get().saturating_mul(2));
            let burst = NonZeroU32::new(burst)
                .filter(|b| *b >= per_second)
                .with_context(|| format!("rate_limits.{name}_burst must be at least {name} ({per_second})"))?;
            anyhow::Ok(Some(Rate { per_second, burst }))
        };
        let exempt = match self.exempt {
            Some(list) => parse_cidrs("rate_limits.exempt", Some(list))?,
            None => vec!["127.0.0.0/8".parse()?, "::1/128".parse()?],
        };
        Ok(RateSettings {
            per_ip: rate("per_ip", self.per_ip, self.per_ip_burst, DEFAULT_RATE_PER_IP)?,
            per_key: rate("per_key", self.per_key, self.per_key_burst, DEFAULT_RATE_PER_KEY)?,
            per_link: rate("per_link", self.per_link, self.per_link_burst, DEFAULT_RATE_PER_LINK)?,
            failed_auth_cost: NonZeroU32::new(self.failed_auth_cost.unwrap_or(10))
                .context("rate_limits.failed_auth_cost must be at least 1")?,
            exempt,
        })
    }
}

impl ListenerFile {
    fn resolve(self) -> anyhow::Result<ListenerConfig> {
        let address = self.address.parse().with_context(|| {
            format!("invalid listen address {:?}: expected IP:PORT, for example 127.0.0.1:9000", self.address)
        })?;
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => bail!(
                "TLS needs both a certificate and its key: set tls_cert and tls_key (or --tls-cert and --tls-key)"
            ),
        };
        let surfaces = Surfaces::parse(&self.surfaces).map_err(anyhow::Error::msg)?;
        let networks = NetworkList {
            allow: parse_cidrs("allow_cidrs", self.allow_cidrs)?,
            deny: parse_cidrs("deny_cidrs", self.deny_cidrs)?,
        };
        Ok(ListenerConfig { address, tls, surfaces, networks })
    }
}

/// The list of networks under `key`; none when unset.
fn parse_cidrs(key: &str, list: Option<Vec<String>>) -> anyhow::Result<Vec<IpNet>> {
    list.unwrap_or_default()
        .iter()
        .map(|cidr| parse_cidr(cidr).with_context(|| format!("invalid {key} entry {cidr:?}")))
        .collect()
}

/// `10.0.0.0/8`, or a single address (`10.0.0.5`, a /32 or /128). An IPv4-mapped IPv6 network
/// (`::ffff:192.0.2.0/120`) is read as the IPv4 network it is, since clients are judged by
/// their canonical address; one that is not wholly IPv4-mapped is refused.
fn parse_cidr(text: &str) -> anyhow::Result<IpNet> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(
            text.parse::<std::net::IpAddr>()
                .map_err(|_| anyhow::anyhow!("expected an address or a CIDR, for example 10.0.0.0/8"))?,
        ),
    };
    match net {
        IpNet::V6(v6) if v6.addr().to_ipv4_mapped().is_some() || v6.network().to_ipv4_mapped().is_some() => {
            let v4 =
                v6.network().to_ipv4_mapped().filter(|_| v6.prefix_len() >= 96).ok_or_else(|| {
                    anyhow::anyhow!("an IPv4-mapped network must be a /96 or longer; write it as IPv4")
                })?;
            Ok(IpNet::V4(ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)?.trunc()))
        }
        net => Ok(net),
    }
}

/// `public_url` is a scheme and an authority, nothing else: presigned redirects are signed for
/// the path the server itself sees, so a path prefix (which a proxy would strip) cannot work.
/// It is returned without a trailing slash so that paths can be appended.
fn parse_public_url(url: &str) -> anyhow::Result<String> {
    let explain =
        || format!("invalid public_url {url:?}: expected http(s)://HOST[:PORT], for example https://files.example.com");
    let uri: http::Uri = url.parse().with_context(explain)?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.authority().is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'));
    if !scheme_ok || !host_ok || uri.query().is_some() || !matches!(uri.path(), "" | "/") {
        bail!(explain());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let file: ConfigFile = toml::from_str("listen = \"127.0.0.1:9100\"\nregion = \"eu-west-1\"").unwrap();
        let cli = Overrides { listen: Some("127.0.0.1:9200".into()), ..Default::default() };
        let config = ServerConfig::resolve(cli, file).unwrap();
        assert_eq!(config.listen().port(), 9200);
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(toml::from_str::<ConfigFile>("lisen = \"x\"").is_err());
        let cli = Overrides { listen: Some("localhost".into()), ..Default::default() };
        let err = format!("{:#}", ServerConfig::resolve(cli, ConfigFile::default()).unwrap_err());
        assert!(err.contains("expected IP:PORT"), "{err}");
        let file: ConfigFile = toml::from_str("meta_max_connections = 0").unwrap();
        let err = ServerConfig::resolve(Overrides::default(), file).unwrap_err().to_string();
        assert!(err.contains("meta_max_connections must be at least 1"), "{err}");
        let file: ConfigFile = toml::from_str("share_resume_grace_secs = 18446744073709551615").unwrap();
        let err = ServerConfig::resolve(Overrides::default(), file).unwrap_err().to_string();
        assert!(err.contains("share_resume_grace_secs must be at most 86400"), "{err}");
    }

    #[test]
    fn public_urls_are_a_scheme_and_a_host() {
        let resolve = |url: &str| {
            let cli = Overrides { public_url: Some(url.into()), ..Default::default() };
            ServerConfig::resolve(cli, ConfigFile::default()).map(|c| c.public_url.unwrap())
        };
        assert_eq!(resolve("https://files.example.com/").unwrap(), "https://files.example.com");
        assert_eq!(resolve("http://10.0.0.5:9000").unwrap(), "http://10.0.0.5:9000");
        for bad in ["files.example.com", "ftp://x", "https://user@x", "https://x/?a=b", "/relative", "https://x/prefix"]
        {
            let err = resolve(bad).unwrap_err().to_string();
            assert!(err.contains("expected http(s)://HOST[:PORT]"), "{bad}: {err}");
        }
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key() {
        let file: ConfigFile = toml::from_str("tls_cert = \"c.pem\"").unwrap();
        let err = format!("{:#}", ServerConfig::resolve(Overrides::default(), file).unwrap_err());
        assert!(err.contains("TLS needs both a certificate and its key"), "{err}");
        let cli = Overrides { tls_key: Some("k.pem".into()), ..Default::default() };
        let file: ConfigFile = toml::from_str("tls_cert = \"c.pem\"\nhsts_max_age_secs = 0").unwrap();
        let config = ServerConfig::resolve(cli, file).unwrap();
        assert_eq!(config.listeners[0].tls, Some(TlsFiles { cert: "c.pem".into(), key: "k.pem".into() }));
        assert_eq!((config.hsts_max_age_secs, config.plain_http_from_loopback), (0, true));
        assert_eq!(ServerConfig::resolve(Overrides::default(), ConfigFile::default()).unwrap().listeners[0].tls, None);
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let file: ConfigFile = toml::from_str("trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]").unwrap();
        let config = ServerConfig::resolve(Overrides::default(), file).unwrap();
        let expected = ["10.0.0.0/8".parse::<IpNet>().unwrap(), "192.0.2.7/32".parse().unwrap()];
        assert_eq!(config.trusted_proxies, TrustedProxies { networks: expected.to_vec(), ..Default::default() });
        let file: ConfigFile =
            toml::from_str("forwarded_header = \"Forwarded\"\ntrust_forwarded_proto = true").unwrap();
        let config = ServerConfig::resolve(Overrides::default(), file).unwrap();
        assert_eq!((config.trusted_proxies.header, config.trusted_proxies.proto), (ForwardedHeader::Forwarded, true));
        let file: ConfigFile = toml::from_str("forwarded_header = \"x-real-ip\"").unwrap();
        let err = ServerConfig::resolve(Overrides::default(), file).unwrap_err().to_string();
        assert!(err.contains("invalid forwarded_header \"x-real-ip\""), "{err}");
        let file: ConfigFile = toml::from_str("trusted_proxies = [\"10.0.0.0/33\"]").unwrap();
        let err = format!("{:#}", ServerConfig::resolve(Overrides::default(), file).unwrap_err());
        assert!(err.contains("invalid trusted_proxies entry \"10.0.0.0/33\": expected an address or a CIDR"), "{err}");
        assert!(
            ServerConfig::resolve(Overrides::default(), ConfigFile::default())
                .unwrap()
                .trusted_proxies
                .networks
                .is_empty()
        );
    }

    #[test]
    fn listeners_each_serve_their_surfaces() {
        let file: ConfigFile = toml::from_str(
            r#"
            surfaces = ["s3", "health"]
            allow_cidrs = ["10.0.0.0/8"]
            [[listeners]]
            address = "0.0.0.0:8443"
            surfaces = ["shares"]
            tls_cert = "c.pem"
            tls_key = "k.pem"
            "#,
        )
        .unwrap();
        let config = ServerConfig::resolve(Overrides::default(), file).unwrap();
        let [inside, outside] = &config.listeners[..] else { panic!("{:?}", config.listeners) };
        assert_eq!(inside.address.to_string(), "127.0.0.1:9000");
        assert_eq!(format!("{:?}", inside.surfaces), "s3,health");
        assert_eq!(inside.networks.allow, ["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert_eq!((outside.address.port(), format!("{:?}", outside.surfaces)), (8443, "shares".into()));
        assert!(outside.tls.is_some() && outside.networks == NetworkList::default());
        let everything = ServerConfig::resolve(Overrides::default(), ConfigFile::default()).unwrap();
        assert_eq!(everything.listeners.len(), 1);
        assert_eq!(format!("{:?}", everything.listeners[0].surfaces), "s3,shares,health", "metrics only when asked");
    }

    #[test]
    fn listener_mistakes_are_explained() {
        let resolve = |toml_text: &str| {
            let file: ConfigFile = toml::from_str(toml_text).unwrap();
            format!("{:#}", ServerConfig::resolve(Overrides::default(), file).unwrap_err())
        };
        let err = resolve("[[listeners]]\naddress = \"127.0.0.1:9001\"\nsurfaces = [\"s4\"]");
        assert!(err.contains("invalid listeners[0]: unknown surface \"s4\""), "{err}");
        let err = resolve("[[listeners]]\naddress = \"127.0.0.1:9000\"\nsurfaces = [\"shares\"]");
        assert!(err.contains("two listeners on 127.0.0.1:9000"), "{err}");
        let err = resolve("[[listeners]]\naddress = \"127.0.0.1:9001\"\nsurfaces = [\"shares\"]\ntls_key = \"k\"");
        assert!(err.contains("TLS needs both"), "{err}");
        let err = resolve("allow_cidrs = [\"nope\"]");
        assert!(err.contains("invalid listen: invalid allow_cidrs entry \"nope\""), "{err}");
        let err = resolve(
            "[[listeners]]\naddress = \"127.0.0.1:9001\"\nsurfaces = [\"shares\"]\ndeny_cidrs = [\"10.0.0.0/40\"]",
        );
        assert!(err.contains("invalid listeners[0]: invalid deny_cidrs entry \"10.0.0.0/40\""), "{err}");
        let err = resolve("[networks]\ndeny = [\"x\"]");
        assert!(err.contains("invalid networks.deny entry \"x\""), "{err}");
        assert!(resolve("max_connections_per_ip = 0").contains("must be at least 1"));
        assert!(resolve("idle_timeout_secs = 0").contains("idle_timeout_secs must be at least 1"));
    }

    #[test]
    fn ipv4_mapped_networks_are_read_as_ipv4() {
        let net = |text: &str| parse_cidr(text).map(|n| n.to_string()).map_err(|e| e.to_string());
        assert_eq!(net("::ffff:192.0.2.2"), Ok("192.0.2.2/32".into()));
        assert_eq!(net("::ffff:198.51.100.0/120"), Ok("198.51.100.0/24".into()));
        assert!(net("::ffff:0:0/90").unwrap_err().contains("/96 or longer"));
        assert_eq!(net("2001:db8::/32"), Ok("2001:db8::/32".into()));
    }

    #[test]
    fn networks_and_connection_caps_resolve() {
        let file: ConfigFile = toml::from_str(
            "deny_cidrs = [\"192.0.2.9\"]\nmax_connections_per_ip = 3\n[networks]\nallow = [\"192.0.2.0/24\"]",
        )
        .unwrap();
        let config = ServerConfig::resolve(Overrides::default(), file).unwrap();
        assert_eq!(config.networks.allow, ["192.0.2.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(config.listeners[0].networks.deny, ["192.0.2.9/32".parse::<IpNet>().unwrap()]);
        assert_eq!(config.connection_caps, ConnectionCaps { max: DEFAULT_MAX_CONNECTIONS, max_per_ip: 3 });
        assert_eq!(config.idle_timeout, Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS));
    }

    #[test]
    fn rate_limits_have_safe_defaults_and_explained_mistakes() {
        let defaults = ServerConfig::resolve(Overrides::default(), ConfigFile::default()).unwrap().rate_limits;
        assert_eq!(defaults.per_ip.unwrap().per_second.get(), DEFAULT_RATE_PER_IP);
        assert_eq!(defaults.per_link.unwrap().burst.get(), 2 * DEFAULT_RATE_PER_LINK);
        assert_eq!(defaults.per_key, None, "off unless configured: it counts before the signature is checked");
        assert!(defaults.exempt.iter().any(|net| net.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())));
        let file: ConfigFile =
            toml::from_str("[rate_limits]\nper_ip = 0\nper_key = 5\nper_key_burst = 7\nexempt = []").unwrap();
        let set = ServerConfig::resolve(Overrides::default(), file).unwrap().rate_limits;
        assert_eq!((set.per_ip, set.per_key.unwrap().burst.get(), set.exempt.len()), (None, 7, 0));
        let file: ConfigFile = toml::from_str("[rate_limits]\nper_link = 5\nper_link_burst = 2").unwrap();
        let err = format!("{:#}", ServerConfig::resolve(Overrides::default(), file).unwrap_err());
        assert!(err.contains("rate_limits.per_link_burst must be at least per_link (5)"), "{err}");
        assert!(toml::from_str::<ConfigFile>("[rate_limits]\nper_second = 1").is_err());
    }

    #[test]
    fn presigned_expiry_is_capped_at_seven_days() {
        let file: ConfigFile = toml::from_str("max_presigned_expiry_secs = 604801").unwrap();
        let err = ServerConfig::resolve(Overrides::default(), file).unwrap_err().to_string();
        assert!(err.contains("between 1 and 604800"), "{err}");
        let file: ConfigFile = toml::from_str("max_presigned_expiry_secs = 3600\nsigv2 = false").unwrap();
        let config = ServerConfig::resolve(Overrides::default(), file).unwrap();
        assert_eq!((config.max_presigned_expiry, config.sigv2), (Duration::from_secs(3600), false));
        assert!(config.block_public_access, "new buckets block public access unless told otherwise");
        let file: ConfigFile = toml::from_str("block_public_access = false").unwrap();
        assert!(!ServerConfig::resolve(Overrides::default(), file).unwrap().block_public_access);
    }
}
