//! `latchkey share create|list|revoke`: the `/-/shares` API from the command line, signed with
//! SigV4 using the credentials `aws_env` finds (as `latchkey presign` does).

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use latchkey::api::call;
use latchkey::aws_env;
use serde_json::Value;

use crate::presign::parse_target;

#[derive(Args)]
pub struct ShareArgs {
    #[command(subcommand)]
    command: ShareCommand,
    /// The server's URL [default: AWS_ENDPOINT_URL or the profile's endpoint_url, else http://127.0.0.1:9000]
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The AWS CLI profile to take credentials and settings from
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
    /// Print the API's JSON response instead of `key: value` lines
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum ShareCommand {
    /// Mint a one-time link (the token appears only inside the URLs): a download link for an
    /// object, or with --upload a link that accepts one file
    Create {
        /// The object, as s3://BUCKET/KEY; with --upload, s3://BUCKET/PREFIX/ (ending in /) lets the
        /// uploader name the file under PREFIX/
        target: String,
        /// How long the link lives: 90s, 15m, 1h, 2d... (at most the server's limit, 7 days by default)
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        expires_in: Duration,
        /// How many uses the link allows: downloads, or for an upload link, uploaded files
        #[arg(long, default_value_t = 1)]
        max_uses: u32,
        /// Only clients in this CIDR block may redeem it (repeatable)
        #[arg(long = "allow-cidr", value_name = "CIDR")]
        allow_cidrs: Vec<String>,
        /// A note for yourself, shown by `share list`
        #[arg(long)]
        label: Option<String>,
        /// Make an upload link ("file request") instead of a download link
        #[arg(long)]
        upload: bool,
        /// Upload links: the largest file accepted, such as 10MiB or 2GB [default: 5GiB]
        #[arg(long, requires = "upload", value_parser = parse_size, value_name = "SIZE")]
        max_size: Option<u64>,
        /// Upload links: an accepted media type, such as application/pdf or image/* (repeatable)
        #[arg(long = "content-type", requires = "upload", value_name = "TYPE")]
        content_types: Vec<String>,
        /// Download links: answer with a redirect to a presigned URL valid for at most 60 s
        #[arg(long, conflicts_with = "upload")]
        redirect: bool,
    },
    /// List links, newest last
    List {
        /// Only links for objects under s3://BUCKET[/PREFIX]
        target: Option<String>,
        /// Include expired, used and revoked links
        #[arg(long)]
        all: bool,
    },
    /// Revoke a link so that it can no longer be redeemed
    Revoke { id: String },
}

/// `1048576`, `512KiB`, `10MiB`, `2GB`.
fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("{e}: write a size such as 10MiB, 500KB or 2GiB"))
}

/// `90`, `90s`, `15m`, `1h`, `2d`, `1h 30m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("{e}: write a duration such as 90s, 15m, 1h or 2d"))
}

pub async fn run(args: ShareArgs) -> anyhow::Result<()> {
    let env = aws_env::load(args.profile.as_deref(), args.endpoint_url.as_deref()).await?;
    let output = match args.command {
        ShareCommand::Create {
            target,
            expires_in,
            max_uses,
            allow_cidrs,
            label,
            upload,
            max_size,
            content_types,
            redirect,
        } => {
            let mut body = serde_json::json!({
                "expires_in": expires_in.as_secs(), "max_uses": max_uses, "allow_cidrs": allow_cidrs, "label": label,
            });
            if upload {
                let (bucket, key) = parse_upload_target(&target)?;
                body["method"] = "PUT".into();
                body["bucket"] = bucket.into();
                body[if key.is_empty() || key.ends_with('/') { "prefix" } else { "key" }] = key.into();
                body["max_size"] = max_size.into();
                body["content_types"] = content_types.into();
            } else {
                let (bucket, key) = parse_target(&target)?;
                body["bucket"] = bucket.into();
                body["key"] = key.into();
                body["redirect"] = redirect.into();
            }
            let created = call(&env, "POST", "/-/shares", Some(&body)).await?;
            if args.json {
                created.to_string()
            } else {
                ["id", "url", "api_url", "expires_at", "max_uses"]
                    .iter()
                    .map(|field| format!("{field}: {}", plain(&created[*field])))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        ShareCommand::List { target, all } => {
            let mut query = vec![format!("state={}", if all { "all" } else { "active" })];
            if let Some(target) = target {
                let rest = target.strip_prefix("s3://").context("expected s3://BUCKET[/PREFIX]")?;
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                query.push(format!("bucket={}", urlencode(bucket)));
                if !prefix.is_empty() {
                    query.push(format!("prefix={}", urlencode(prefix)));
                }
            }
            let listed = call(&env, "GET", &format!("/-/shares?{}", query.join("&")), None).await?;
            if args.json {
                listed.to_string()
            } else {
                listed["shares"]
                    .as_array()
                    .map(|shares| shares.iter().map(list_line).collect::<Vec<_>>().join("\n"))
                    .unwrap_or_default()
            }
        }
        ShareCommand::Revoke { id } => {
            call(&env, "DELETE", &format!("/-/shares/{}", urlencode(&id)), None).await?;
            if args.json { serde_json::json!({ "revoked": id }).to_string() } else { format!("revoked: {id}") }
        }
    };
    if !output.is_empty() {
        println!("{output}");
    }
    Ok(())
}

/// `s3://BUCKET/KEY`, or `s3://BUCKET/PREFIX/` and `s3://BUCKET/` for uploads named by the uploader.
fn parse_upload_target(target: &str) -> anyhow::Result<(&str, &str)> {
    let rest = target.strip_prefix("s3://").context("expected s3://BUCKET/KEY or s3://BUCKET/PREFIX/")?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() => Ok((bucket, key)),
        _ => anyhow::bail!("{target:?} names no bucket: expected s3://BUCKET/KEY or s3://BUCKET/PREFIX/"),
    }
}

fn plain(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

fn list_line(share: &Value) -> String {
    format!(
        "{}  {:<7}  {}/{} uses left  expires {}  s3://{}/{}",
        plain(&share["id"]),
        plain(&share["state"]),
        share["uses_left"],
        share["max_uses"],
        plain(&share["expires_at"]),
        plain(&share["bucket"]),
        plain(&share["key"]),
    )
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_upload_targets() {
        assert_eq!(parse_size("10MiB").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").unwrap_err().contains("such as 10MiB"));
        assert_eq!(parse_upload_target("s3://b/in/").unwrap(), ("b", "in/"));
        assert_eq!(parse_upload_target("s3://b/").unwrap(), ("b", ""));
        assert!(parse_upload_target("s3://b").is_err());
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("soon").unwrap_err().contains("such as 90s"));
    }
}
