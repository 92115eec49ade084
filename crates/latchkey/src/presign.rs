//! `latchkey presign`: a SigV4 presigned URL, signed locally like `aws s3 presign`.
//!
//! Credentials, region and endpoint come from the AWS SDK's default chain (environment,
//! `~/.aws/credentials` and `~/.aws/config`, `--profile`), as the AWS CLI finds them; the
//! endpoint falls back to a local Latchkey.

use std::time::Duration;

use anyhow::{Context, bail};
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation};
use aws_sdk_s3::presigning::PresigningConfig;
use clap::{Args, ValueEnum};

/// S3's (and Latchkey's) longest presigned URL lifetime: seven days.
const MAX_EXPIRES_IN: u64 = 604_800;
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9000";

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
enum Method {
    Get,
    Put,
}

#[derive(Args)]
pub struct PresignArgs {
    /// The object, as s3://BUCKET/KEY
    target: String,
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
}

/// Splits `s3://BUCKET/KEY`.
fn parse_target(target: &str) -> anyhow::Result<(&str, &str)> {
    let rest = target
        .strip_prefix("s3://")
        .with_context(|| format!("{target:?} is not an S3 URL: expected s3://BUCKET/KEY"))?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok((bucket, key)),
        _ => bail!("{target:?} names no object: expected s3://BUCKET/KEY"),
    }
}

pub async fn run(args: PresignArgs) -> anyhow::Result<()> {
    let (bucket, key) = parse_target(&args.target)?;
    if !(1..=MAX_EXPIRES_IN).contains(&args.expires_in) {
        bail!("--expires-in must be between 1 and {MAX_EXPIRES_IN} seconds (7 days), got {}", args.expires_in);
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &args.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let shared = loader.load().await;
    let provider = shared.credentials_provider().context(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, configure ~/.aws/credentials, or pass --profile",
    )?;
    aws_sdk_s3::config::ProvideCredentials::provide_credentials(&provider).await.context(
        "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, configure ~/.aws/credentials, or pass --profile",
    )?;
    let mut config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(true)
        // Otherwise the SDK signs a checksum of an empty body into PUT URLs.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
    if shared.region().is_none() {
        config = config.region(Region::from_static("us-east-1"));
    }
    if shared.endpoint_url().is_none() {
        config = config.endpoint_url(DEFAULT_ENDPOINT);
    }
    let client = aws_sdk_s3::Client::from_conf(config.build());
    let presigning = PresigningConfig::expires_in(Duration::from_secs(args.expires_in))?;
    let request = match args.method {
        Method::Get => client.get_object().bucket(bucket).key(key).presigned(presigning).await?,
        Method::Put => client.put_object().bucket(bucket).key(key).presigned(presigning).await?,
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
