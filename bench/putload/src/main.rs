//! `putload`: PUTs `--count` objects of `--size` bytes over `--concurrency` keep-alive
//! connections and prints objects/s and latency percentiles.
//!
//! URLs are presigned before the clock starts, so signing costs the server under test nothing
//! and the generator stays light on a machine whose cores it shares. Any non-200 answer fails
//! the run: a fast server that drops writes must not look good.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::presigning::PresigningConfig;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

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
        let req = s3.put_object().bucket(&args.bucket).key(format!("obj/{i:08}")).presigned(expiry.clone()).await?;
        urls.push(req.uri().to_owned());
    }
    let body = Bytes::from((0..args.size).map(|_| rand::random::<u8>()).collect::<Vec<_>>());

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(args.concurrency).build(connector);
    let urls = Arc::new(urls);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (client, urls, next, body) = (client.clone(), urls.clone(), next.clone(), body.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(url) = urls.get(i) else { break };
                    let req = hyper::Request::put(url.as_str()).body(Full::new(body.clone()))?;
                    let t0 = Instant::now();
                    let resp = client.request(req).await?;
                    let status = resp.status();
                    resp.into_body().collect().await?;
                    if status != hyper::StatusCode::OK {
                        bail!("PUT {i} answered {status}");
                    }
                    latencies.push(t0.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(args.count);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "objects_per_sec={:.1} count={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        args.count as f64 / elapsed.as_secs_f64(),
        args.count,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    Ok(())
}
