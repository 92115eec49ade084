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
    /// Mint a one-time download link for an object (the token appears only inside the URLs)
    Create {
        /// The object, as s3://BUCKET/KEY
        target: String,
        /// How long the link lives: 90s, 15m, 1h, 2d... (at most the server's limit, 7 days by default)
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        expires_in: Duration,
        /// How many downloads the link allows
        #[arg(long, default_value_t = 1)]
        max_uses: u32,
        /// Only clients in this CIDR block may redeem it (repeatable)
        #[arg(long = "allow-cidr", value_name = "CIDR")]
        allow_cidrs: Vec<String>,
        /// A note for yourself, shown by `share list`
        #[arg(long)]
        label: Option<String>,
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
        ShareCommand::Create { target, expires_in, max_uses, allow_cidrs, label } => {
            let (bucket, key) = parse_target(&target)?;
            let body = serde_json::json!({
                "bucket": bucket, "key": key, "expires_in": expires_in.as_secs(),
                "max_uses": max_uses, "allow_cidrs": allow_cidrs, "label": label,
            });
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
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("soon").unwrap_err().contains("such as 90s"));
    }
}
