//! `latchkey audit tail|query|verify|export`: the audit trail from the command line, through the
//! signed `/-/audit/events` and `/-/audit/digests` API (root, or `latchkey:ReadAudit`), like
//! `latchkey share`. `verify` can also read the store directly (a data dir's SQLite, read-only
//! beside a running server, or `--meta-url`), for an auditor who does not trust the server; it
//! checks with a public key the auditor keeps (`--public-key`, as saved from
//! `/-/audit/public-key`), or else the data dir's or server's own. Exit codes of `verify`: 0
//! intact, 1 broken (naming the first broken link), 2 error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_s3::primitives::ByteStream;
use clap::{Args, Subcommand};
use latchkey::api::call;
use latchkey::aws_env::{self, ClientEnv};
use latchkey_audit::{Broken, PublicKey, SigningKey, verify};
use latchkey_meta::{
    AuditDigest, AuditEvent, AuditQuery, AuditTrail, ChainedEvent, MetaError, MetaResult, PgAuditReader,
    SqliteAuditReader,
};
use serde_json::Value;
use time::OffsetDateTime;

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
    /// The server's URL [default: AWS_ENDPOINT_URL or the profile's endpoint_url, else http://127.0.0.1:9000]
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The AWS CLI profile to take credentials and settings from
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print the newest events (with --follow, then each new one as it is linked)
    Tail {
        /// How many of the newest events to print first
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        #[arg(long, short = 'f')]
        follow: bool,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Print the events that match, oldest first
    Query {
        #[command(flatten)]
        filter: Filter,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Verify the hash chain and the digests' signatures (exit 0: intact, 1: broken, naming the
    /// first broken link, 2: error)
    Verify {
        /// Read this data dir's store directly (SQLite, read-only) instead of asking the server
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Read this store directly (postgres://... or sqlite:PATH) instead of asking the server
        #[arg(long, value_name = "URL")]
        meta_url: Option<String>,
        /// The PEM public key the digests must verify with (as saved from /-/audit/public-key);
        /// without it, the data dir's key, or the key the server publishes
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// A digest signature (hex, at least its first 16 digits) noted from an earlier run,
        /// which must still be there: removing or rewriting recent digests is then detected
        #[arg(long, value_name = "HEX", value_parser = parse_pin)]
        expect_digest: Option<String>,
    },
    /// Write the events that match into a bucket: s3://BUCKET/PREFIX/audit-FIRST-LAST.jsonl, with
    /// digests.json and public-key.pem beside them
    Export {
        /// Where to, as s3://BUCKET/PREFIX
        #[arg(long, value_name = "S3_URL")]
        to: String,
        #[command(flatten)]
        filter: Filter,
    },
}

#[derive(Args)]
struct Filter {
    /// Only events at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only events of this principal (ARN)
    #[arg(long, value_name = "ARN")]
    principal: Option<String>,
    /// Only events of this kind (policy.denied, auth.failed, share.redeemed...)
    #[arg(long, value_name = "NAME")]
    event: Option<String>,
}

impl Filter {
    fn query_string(&self, after: i64, limit: u32) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("after", &after.to_string()).append_pair("limit", &limit.to_string());
        for (name, value) in [("since", &self.since), ("principal", &self.principal), ("event", &self.event)] {
            if let Some(value) = value {
                q.append_pair(name, value);
            }
        }
        q.finish()
    }
}

/// Events per API call.
const PAGE: u32 = 1000;

pub async fn run(args: AuditArgs) -> ExitCode {
    let result = match args.command {
        AuditCommand::Verify { data_dir, meta_url, public_key, expect_digest } => {
            let store = Store { data_dir, meta_url, endpoint_url: args.endpoint_url, profile: args.profile };
            verify_trail(store, public_key, expect_digest).await
        }
        command => {
            async {
                let env = aws_env::load(args.profile.as_deref(), args.endpoint_url.as_deref()).await?;
                match command {
                    AuditCommand::Tail { lines, follow, json } => tail(&env, lines, follow, json).await,
                    AuditCommand::Query { filter, json } => query(&env, &filter, json).await,
                    AuditCommand::Export { to, filter } => export(&env, &to, &filter).await,
                    AuditCommand::Verify { .. } => unreachable!("handled above"),
                }
                .map(|()| ExitCode::SUCCESS)
            }
            .await
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("latchkey: {e:#}");
        ExitCode::from(2)
    })
}

/// One page of events from the API: the events, and the position to page on from.
async fn events(env: &ClientEnv, query: &str) -> anyhow::Result<(Vec<Value>, Option<i64>)> {
    let answer = call(env, "GET", &format!("/-/audit/events?{query}"), None).await?;
    let events = answer["events"].as_array().cloned().context("the server's answer has no events")?;
    Ok((events, answer["next_after"].as_i64()))
}

fn print_event(event: &Value, json: bool) {
    if json {
        println!("{event}");
        return;
    }
    let field = |name: &str| event[name].as_str().unwrap_or("-").to_owned();
    println!(
        "{} #{} {} {} {} {}",
        field("time"),
        event["pos"],
        field("event"),
        field("principal"),
        field("source_ip"),
        field("reason")
    );
}

async fn tail(env: &ClientEnv, lines: u32, follow: bool, json: bool) -> anyhow::Result<()> {
    let lines = lines.clamp(1, PAGE);
    let (first, _) = events(env, &format!("after=0&limit={lines}&newest=true")).await?;
    let mut after = first.last().and_then(|e| e["pos"].as_i64()).unwrap_or(0);
    first.iter().for_each(|e| print_event(e, json));
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (new, _) = events(env, &format!("after={after}&limit={PAGE}")).await?;
        after = new.last().and_then(|e| e["pos"].as_i64()).unwrap_or(after);
        new.iter().for_each(|e| print_event(e, json));
    }
}

async fn query(env: &ClientEnv, filter: &Filter, json: bool) -> anyhow::Result<()> {
    let mut after = 0;
    loop {
        let (page, next) = events(env, &filter.query_string(after, PAGE)).await?;
        page.iter().for_each(|e| print_event(e, json));
        match next {
            Some(next) => after = next,
            None => return Ok(()),
        }
    }
}

async fn export(env: &ClientEnv, to: &str, filter: &Filter) -> anyhow::Result<()> {
    let rest = to.strip_prefix("s3://").with_context(|| format!("{to:?} is not s3://BUCKET/PREFIX"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("{to:?} names no bucket: expected s3://BUCKET/PREFIX");
    }
    let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_owned() } else { format!("{prefix}/") };
    // Written to a temporary file first, so that the export streams however long the trail.
    let mut file = tempfile::NamedTempFile::new().context("cannot make a temporary file")?;
    let (mut after, mut first, mut count) = (0, None, 0u64);
    loop {
        let (page, next) = events(env, &filter.query_string(after, PAGE)).await?;
        for event in &page {
            use std::io::Write;
            writeln!(file, "{event}").context("cannot write the temporary file")?;
            first.get_or_insert(event["pos"].as_i64().unwrap_or(0));
            after = event["pos"].as_i64().unwrap_or(after);
            count += 1;
        }
        if next.is_none() {
            break;
        }
    }
    let client = s3_client(env);
    let key = format!("{prefix}audit-{:012}-{after:012}.jsonl", first.unwrap_or(0));
    let body = ByteStream::from_path(file.path()).await.context("cannot read the temporary file")?;
    client.put_object().bucket(bucket).key(&key).content_type("application/x-ndjson").body(body).send().await?;
    let digests = call(env, "GET", "/-/audit/digests", None).await?;
    let put = |key: String, body: Vec<u8>, content_type: &'static str| {
        client.put_object().bucket(bucket).key(key).content_type(content_type).body(ByteStream::from(body)).send()
    };
    put(format!("{prefix}digests.json"), digests.to_string().into_bytes(), "application/json").await?;
    let pem = fetch_public_key(env).await?;
    put(format!("{prefix}public-key.pem"), pem.into_bytes(), "application/x-pem-file").await?;
    println!("exported {count} events to s3://{bucket}/{key}");
    Ok(())
}

fn s3_client(env: &ClientEnv) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&env.sdk)
        .region(env.region.clone())
        .endpoint_url(env.endpoint.clone())
        .force_path_style(true);
    aws_sdk_s3::Client::from_conf(config.build())
}

async fn fetch_public_key(env: &ClientEnv) -> anyhow::Result<String> {
    let url = format!("{}/-/audit/public-key", env.endpoint);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = client
        .get(url.parse().context("the endpoint URL is not a URL")?)
        .await
        .with_context(|| format!("cannot reach {}", env.endpoint))?;
    if !resp.status().is_success() {
        bail!("the server answered {} for its audit public key", resp.status());
    }
    let body = http_body_util::BodyExt::collect(resp.into_body()).await?.to_bytes();
    String::from_utf8(body.to_vec()).context("the public key is not text")
}

fn parse_pin(pin: &str) -> Result<String, String> {
    if pin.len() >= 16 && pin.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(pin.to_ascii_lowercase())
    } else {
        Err("a digest signature is at least 16 hex digits".into())
    }
}

/// Where `verify` reads the trail: a store directly, or the server.
struct Store {
    data_dir: Option<PathBuf>,
    meta_url: Option<String>,
    endpoint_url: Option<String>,
    profile: Option<String>,
}

async fn verify_trail(store: Store, public_key: Option<PathBuf>, expect: Option<String>) -> anyhow::Result<ExitCode> {
    let Store { data_dir, meta_url, endpoint_url, profile } = store;
    let direct = data_dir.is_some() || meta_url.is_some();
    let env = if direct { None } else { Some(aws_env::load(profile.as_deref(), endpoint_url.as_deref()).await?) };
    let key = match (&public_key, &data_dir, &env) {
        (Some(file), _, _) => {
            let pem = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            PublicKey::from_pem(&pem).map_err(anyhow::Error::msg).with_context(|| file.display().to_string())?
        }
        (None, Some(dir), _) => SigningKey::load(dir)
            .with_context(|| format!("cannot read the audit key in {} (or give --public-key)", dir.display()))?
            .public_key(),
        (None, None, Some(env)) => {
            eprintln!("note: checking with the key the server publishes; give --public-key for an independent check");
            PublicKey::from_pem(&fetch_public_key(env).await?).map_err(anyhow::Error::msg)?
        }
        (None, None, None) => bail!("give --public-key FILE to verify a --meta-url store"),
    };
    let trail: Arc<dyn AuditTrail> = match (meta_url.as_deref(), &data_dir, env) {
        (_, _, Some(env)) => Arc::new(RemoteTrail(env)),
        (None, Some(dir), _) => Arc::new(open_sqlite(dir.join("meta.db")).await?),
        (Some(url), _, _) if url.starts_with("sqlite:") => {
            Arc::new(open_sqlite(PathBuf::from(url.trim_start_matches("sqlite:").trim_start_matches("//"))).await?)
        }
        (Some(url), _, _) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Arc::new(PgAuditReader::open(url).await.context("cannot open the PostgreSQL store")?)
        }
        (Some(other), _, _) => bail!("unsupported --meta-url {other:?}: expected sqlite:PATH or postgres://..."),
        (None, None, None) => unreachable!("no store and no server"),
    };
    Ok(match verify(trail.as_ref(), &key, expect.as_deref()).await {
        Ok(done) => {
            let span = match (done.first, done.head) {
                (Some(first), Some(head)) => format!(" (positions {first} to {head})"),
                _ => String::new(),
            };
            println!(
                "audit trail intact: {} events{span}, {} signed digests, {} events not signed yet",
                done.events, done.digests, done.unsigned
            );
            if let Some(latest) = done.latest {
                let at = latest.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
                println!(
                    "latest digest: {} (events {} to {}, signed {at}); note it and pass --expect-digest next time",
                    hex::encode(&latest.signature[..16]),
                    latest.first_pos,
                    latest.last_pos
                );
            }
            if done.first.is_some_and(|first| first > 1) {
                println!("events before position {} were removed by retention", done.first.unwrap_or(1));
            }
            ExitCode::SUCCESS
        }
        Err(Broken::Store(e)) => bail!("cannot read the audit trail: {e}"),
        Err(broken) => {
            println!("audit trail BROKEN: {broken}");
            ExitCode::from(1)
        }
    })
}

async fn open_sqlite(path: PathBuf) -> anyhow::Result<SqliteAuditReader> {
    if !path.exists() {
        bail!("{} does not exist: give the server's --data-dir (or --meta-url)", path.display());
    }
    SqliteAuditReader::open(&path).await.with_context(|| format!("cannot open {}", path.display()))
}

/// The audit trail as the server's API shows it, for `verify` without direct access.
struct RemoteTrail(ClientEnv);

/// A store error for what the API answered (verification reports it as an error, not a break).
fn remote(e: impl std::fmt::Display) -> MetaError {
    MetaError::Remote(format!("the audit API: {e:#}"))
}

fn hex_field(value: &Value, name: &str) -> MetaResult<Vec<u8>> {
    hex::decode(value[name].as_str().unwrap_or_default()).map_err(|_| remote(format!("{name} is not hex")))
}

fn time_ms(value: &Value) -> MetaResult<OffsetDateTime> {
    let ms = value["at_ms"].as_i64().ok_or_else(|| remote("at_ms is missing"))?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(remote)
}

#[async_trait::async_trait]
impl AuditTrail for RemoteTrail {
    async fn audit_head(&self) -> MetaResult<Option<(i64, Vec<u8>)>> {
        let (page, _) = events(&self.0, "after=0&limit=1&newest=true").await.map_err(remote)?;
        page.first().map(|e| Ok((e["pos"].as_i64().unwrap_or(0), hex_field(e, "hash")?))).transpose()
    }

    async fn chained_audit(&self, query: &AuditQuery) -> MetaResult<Vec<ChainedEvent>> {
        let (page, _) = events(&self.0, &format!("after={}&limit={}", query.after, query.limit.clamp(1, PAGE)))
            .await
            .map_err(remote)?;
        let text = |e: &Value, name: &str| e[name].as_str().map(str::to_owned);
        page.iter()
            .map(|e| {
                Ok(ChainedEvent {
                    pos: e["pos"].as_i64().ok_or_else(|| remote("pos is missing"))?,
                    event: AuditEvent {
                        at: time_ms(e)?,
                        event: text(e, "event").unwrap_or_default(),
                        share_id: text(e, "share_id"),
                        principal: text(e, "principal"),
                        source_ip: text(e, "source_ip"),
                        user_agent: text(e, "user_agent"),
                        reason: text(e, "reason"),
                    },
                    hash: hex_field(e, "hash")?,
                })
            })
            .collect()
    }

    async fn latest_audit_digest(&self) -> MetaResult<Option<AuditDigest>> {
        Ok(self.audit_digests().await?.pop())
    }

    async fn audit_digests(&self) -> MetaResult<Vec<AuditDigest>> {
        let answer = call(&self.0, "GET", "/-/audit/digests", None).await.map_err(remote)?;
        let digests = answer["digests"].as_array().ok_or_else(|| remote("no digests"))?;
        digests
            .iter()
            .map(|d| {
                Ok(AuditDigest {
                    at: time_ms(d)?,
                    first_pos: d["first_pos"].as_i64().unwrap_or_default(),
                    last_pos: d["last_pos"].as_i64().unwrap_or_default(),
                    last_hash: hex_field(d, "last_hash")?,
                    prev_signature: d["prev_signature"]
                        .is_string()
                        .then(|| hex_field(d, "prev_signature"))
                        .transpose()?,
                    signature: hex_field(d, "signature")?,
                })
            })
            .collect()
    }
}
