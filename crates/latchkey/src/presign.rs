//! `latchkey presign`: a SigV4 presigned URL, signed locally like `aws s3 presign`, with the
//! settings `aws_env` finds; with `--max-uses N`, a counted one (`X-Latchkey-Max-Uses`, which
//! the signature covers; the server counts its uses). `latchkey presign revoke` asks the server
//! to refuse one URL, or every URL a key signed before a time (`/-/presigned/revocations`).

use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::presigning::PresigningConfig;
use clap::{Args, ValueEnum};

use latchkey::aws_env;

/// S3's (and Latchkey's) longest presigned URL lifetime: seven days.
const MAX_EXPIRES_IN: u64 = 604_800;

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
enum Method {
    Get,
    Put,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PresignArgs {
    #[command(subcommand)]
    command: Option<PresignCommand>,
    #[command(flatten)]
    sign: SignArgs,
}

#[derive(clap::Subcommand)]
enum PresignCommand {
    /// Refuse a presigned URL from now on, or every URL a key signed before a time (the server
    /// keeps a hash of the URL's signature, not the URL)
    Revoke(RevokeArgs),
}

#[derive(Args)]
struct RevokeArgs {
    /// The presigned URL to refuse
    #[arg(required_unless_present = "signed_by", conflicts_with_all = ["signed_by", "before"])]
    url: Option<String>,
    /// Refuse every URL signed with this access key id (with --before)
    #[arg(long, value_name = "ACCESS_KEY_ID")]
    signed_by: Option<String>,
    /// With --signed-by: refuse URLs signed before this time (RFC 3339, e.g. 2026-12-05T12:00:00Z)
    /// [default: now]
    #[arg(long, value_name = "TIME", requires = "signed_by")]
    before: Option<String>,
    /// The server's URL [default: AWS_ENDPOINT_URL or the profile's endpoint_url, else http://127.0.0.1:9000]
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The AWS CLI profile to take credentials and settings from
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
}

#[derive(Args)]
struct SignArgs {
    /// The object, as s3://BUCKET/KEY
    target: Option<String>,
    /// Seconds until the URL expires (1 to 604800)
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    expires_in: u64,
    /// The request the URL allows
    #[arg(long, value_enum, default_value = "GET", ignore_case = true)]
    method: Method,
    /// The server's URL [default: AWS_ENDPOINT_URL or the profile's endpoint_url, else http://127.0.0.1:9000]
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The AWS CLI profile to take credentials and settings from
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// How many times the URL may be used in all; Latchkey counts the uses (other S3 servers
    /// refuse or ignore the parameter)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_uses: Option<u32>,
}

/// The query parameter the server counts uses by (`latchkey_s3`'s `counted.rs`).
const MAX_USES_PARAM: &str = "X-Latchkey-Max-Uses";

/// Splits `s3://BUCKET/KEY`.
pub fn parse_target(target: &str) -> anyhow::Result<(&str, &str)> {
    let rest = target
        .strip_prefix("s3://")
        .with_context(|| format!("{target:?} is not an S3 URL: expected s3://BUCKET/KEY"))?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok((bucket, key)),
        _ => bail!("{target:?} names no object: expected s3://BUCKET/KEY"),
    }
}

pub async fn run(args: PresignArgs) -> anyhow::Result<()> {
    match args.command {
        Some(PresignCommand::Revoke(args)) => revoke(args).await,
        None => sign(args.sign).await,
    }
}

async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let env = aws_env::load(args.profile.as_deref(), args.endpoint_url.as_deref()).await?;
    let body = match (args.url, args.signed_by) {
        (Some(url), _) => serde_json::json!({ "url": url }),
        (None, Some(key)) => serde_json::json!({ "signed_by": key, "before": args.before }),
        (None, None) => bail!("give a presigned URL, or --signed-by ACCESS_KEY_ID"),
    };
    let answer = latchkey::api::call(&env, "POST", "/-/presigned/revocations", Some(&body)).await?;
    println!("revoked {}", answer["revoked"].as_str().unwrap_or("the URL"));
    Ok(())
}

async fn sign(args: SignArgs) -> anyhow::Result<()> {
    let target = args.target.context("give the object to presign, as s3://BUCKET/KEY (or: presign revoke URL)")?;
    let (bucket, key) = parse_target(&target)?;
    if !(1..=MAX_EXPIRES_IN).contains(&args.expires_in) {
        bail!("--expires-in must be between 1 and {MAX_EXPIRES_IN} seconds (7 days), got {}", args.expires_in);
    }
    let env = aws_env::load(args.profile.as_deref(), args.endpoint_url.as_deref()).await?;
    let config = aws_sdk_s3::config::Builder::from(&env.sdk)
        .region(env.region)
        .endpoint_url(env.endpoint)
        .force_path_style(true)
        // Otherwise the SDK signs a checksum of an empty body into PUT URLs.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
    let client = aws_sdk_s3::Client::from_conf(config.build());
    let presigning = PresigningConfig::expires_in(Duration::from_secs(args.expires_in))?;
    // Added before signing, so that the signature covers it.
    let max_uses = args.max_uses;
    let count = move |req: &mut aws_smithy_runtime_api::client::orchestrator::HttpRequest| {
        if let Some(n) = max_uses {
            let separator = if req.uri().contains('?') { '&' } else { '?' };
            let uri = format!("{}{separator}{MAX_USES_PARAM}={n}", req.uri());
            let _ = req.set_uri(uri);
        }
    };
    let request = match args.method {
        Method::Get => {
            client.get_object().bucket(bucket).key(key).customize().mutate_request(count).presigned(presigning).await?
        }
        Method::Put => {
            client.put_object().bucket(bucket).key(key).customize().mutate_request(count).presigned(presigning).await?
        }
    };
    println!("{}", request.uri());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("s3://b/a/b c").unwrap(), ("b", "a/b c"));
        assert!(parse_target("b/k").unwrap_err().to_string().contains("expected s3://BUCKET/KEY"));
        assert!(parse_target("s3://b").is_err());
        assert!(parse_target("s3://b/").is_err());
    }
}
