//! Server settings: defaults, overridden by a TOML file, overridden by flags and environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

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
/// Connections each server opens to PostgreSQL at most. PostgreSQL's default
/// `max_connections` is 100: three replicas fit with room for administration.
pub const DEFAULT_META_MAX_CONNECTIONS: u32 = 32;

/// Everything `latchkey serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
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
    /// How long audit events are kept before the sweeper purges them.
    pub audit_retention: Duration,
    /// How often redemptions of unknown share tokens are written to the audit trail, as one
    /// aggregate event.
    pub audit_unknown_tokens_flush: Duration,
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
    pub audit_retention_secs: Option<u64>,
    pub audit_unknown_tokens_flush_secs: Option<u64>,
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
}

impl ServerConfig {
    pub fn resolve(cli: Overrides, file: ConfigFile) -> anyhow::Result<Self> {
        let listen = cli.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen.parse().with_context(|| {
            format!("invalid listen address {listen:?}: expected IP:PORT, for example 127.0.0.1:9000")
        })?;
        let meta_max_connections = file.meta_max_connections.unwrap_or(DEFAULT_META_MAX_CONNECTIONS);
        if meta_max_connections == 0 {
            bail!("meta_max_connections must be at least 1");
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
        Ok(Self {
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            listen,
            meta_url: cli.meta_url.or(file.meta_url),
            meta_max_connections,
            region: cli.region.or(file.region).unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            shutdown_grace: Duration::from_secs(file.shutdown_grace_secs.unwrap_or(30)),
            max_share_expiry: file.max_share_expiry_secs.map_or(DEFAULT_MAX_SHARE_EXPIRY, Duration::from_secs),
            share_resume_grace,
            share_resume_overlap_bytes: file.share_resume_overlap_bytes.unwrap_or(DEFAULT_SHARE_RESUME_OVERLAP),
            share_retention: Duration::from_secs(file.share_retention_secs.unwrap_or(24 * 3600)),
            audit_retention: file.audit_retention_secs.map_or(DEFAULT_AUDIT_RETENTION, Duration::from_secs),
            audit_unknown_tokens_flush,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let file: ConfigFile = toml::from_str("listen = \"127.0.0.1:9100\"\nregion = \"eu-west-1\"").unwrap();
        let cli = Overrides { listen: Some("127.0.0.1:9200".into()), ..Default::default() };
        let config = ServerConfig::resolve(cli, file).unwrap();
        assert_eq!(config.listen.port(), 9200);
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(toml::from_str::<ConfigFile>("lisen = \"x\"").is_err());
        let cli = Overrides { listen: Some("localhost".into()), ..Default::default() };
        let err = ServerConfig::resolve(cli, ConfigFile::default()).unwrap_err().to_string();
        assert!(err.contains("expected IP:PORT"), "{err}");
        let file: ConfigFile = toml::from_str("meta_max_connections = 0").unwrap();
        let err = ServerConfig::resolve(Overrides::default(), file).unwrap_err().to_string();
        assert!(err.contains("meta_max_connections must be at least 1"), "{err}");
        let file: ConfigFile = toml::from_str("share_resume_grace_secs = 18446744073709551615").unwrap();
        let err = ServerConfig::resolve(Overrides::default(), file).unwrap_err().to_string();
        assert!(err.contains("share_resume_grace_secs must be at most 86400"), "{err}");
    }
}
