//! `putload`: PUTs `--count` objects of `--size` bytes over `--concurrency` keep-alive
//! connections and prints objects/s and latency percentiles.
//!
//! URLs are presigned before the clock starts, so signing costs the server under test nothing
//! and the generator stays light on a machine whose cores it shares. Any non-200 answer fails
//! the run: a fast server that drops writes must not look good.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::presigning::PresigningConfig;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use latchkey_loadgen::{http_client, report, run};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    access_key: String,
    #[arg(long)]
    secret_key: String,
    #[arg(long, default_value = "putload")]
    bucket: String,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, default_value_t = 64 * 1024)]
    size: usize,
    #[arg(long, default_value_t = 5000)]
    count: usize,
    /// Upload the first `--size` bytes of this file (repeated if shorter) instead of random bytes.
    #[arg(long)]
    body_file: Option<std::path::PathBuf>,
    /// Name objects `obj/{prefix}{n}`, so that runs can go on writing new keys.
    #[arg(long, default_value = "")]
    key_prefix: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::from_static("us-east-1"))
        .credentials_provider(Credentials::new(&args.access_key, &args.secret_key, None, None, "putload"))
        .endpoint_url(&args.endpoint)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    if let Err(e) = s3.create_bucket().bucket(&args.bucket).send().await {
        let code = e.as_service_error().and_then(|s| aws_sdk_s3::error::ProvideErrorMetadata::code(s));
        if !matches!(code, Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) {
            return Err(e).context("cannot create the benchmark bucket");
        }
    }

    let mut urls = Vec::with_capacity(args.count);
    let expiry = PresigningConfig::expires_in(Duration::from_secs(3600))?;
    for i in 0..args.count {
        let key = format!("obj/{}{i:08}", args.key_prefix);
        let req = s3.put_object().bucket(&args.bucket).key(key).presigned(expiry.clone()).await?;
        urls.push(req.uri().to_owned());
    }
    let body = match &args.body_file {
        Some(path) => {
            let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            if text.is_empty() {
                bail!("{} is empty", path.display());
            }
            Bytes::from(text.iter().copied().cycle().take(args.size).collect::<Vec<_>>())
        }
        None => Bytes::from((0..args.size).map(|_| rand::random::<u8>()).collect::<Vec<_>>()),
    };

    let client = http_client(args.concurrency);
    let (latencies, elapsed) = run(urls, args.concurrency, move |urls: Arc<Vec<String>>, i| {
        let (client, body) = (client.clone(), body.clone());
        async move {
            let req = hyper::Request::put(urls[i].as_str()).body(Full::new(body))?;
            let resp = client.request(req).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            if status != hyper::StatusCode::OK {
                bail!("PUT {i} answered {status}");
            }
            Ok(())
        }
    })
    .await?;
    println!("{}", report("objects", latencies, elapsed));
    Ok(())
}
