//! `latchkey share create|list|revoke`: the `/-/shares` API from the command line, signed with
//! SigV4 using the credentials `aws_env` finds (as `latchkey presign` does).

use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::aws_env::{self, ClientEnv};
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

/// One signed request to the share API; API errors become messages that say what was wrong.
async fn call(env: &ClientEnv, method: &str, path_and_query: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let url = format!("{}{path_and_query}", env.endpoint);
    if !url.starts_with("http://") {
        bail!("{} is not an http:// endpoint; `latchkey share` speaks plain HTTP for now", env.endpoint);
    }
    let mut request = http::Request::builder()
        .method(method)
        .uri(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body.clone()))?;
    let host = request.uri().authority().context("the endpoint URL has no host")?.to_string();
    request.headers_mut().insert(http::header::HOST, host.parse()?);

    let identity: Identity = env.credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(env.region.as_ref())
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()?
        .into();
    let headers: Vec<(&str, &str)> =
        request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
    let signable = SignableRequest::new(method, url.as_str(), headers.into_iter(), SignableBody::Bytes(&body))?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    instructions.apply_to_request_http1x(&mut request);

    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(request).await.with_context(|| format!("cannot reach {}", env.endpoint))?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if status.is_success() {
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&bytes).context("the server's answer is not JSON");
    }
    let text = String::from_utf8_lossy(&bytes);
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .or_else(|| text.split("<Message>").nth(1).and_then(|m| m.split("</Message>").next()).map(str::to_owned))
        .or_else(|| text.split("<Code>").nth(1).and_then(|m| m.split("</Code>").next()).map(str::to_owned))
        .unwrap_or_else(|| text.trim().to_owned());
    bail!("the server refused ({status}): {message}")
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
