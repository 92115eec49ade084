//! `redeemload`: mints `--count` fresh 1-use links to a 1 KiB object through the signed share
//! API (before the clock starts), then redeems each exactly once over `--concurrency`
//! keep-alive connections and prints redemptions/s and latency percentiles. Every answer must
//! be a 200 with the whole object.

use std::sync::Arc;

use anyhow::bail;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use latchkey::api::call;
use latchkey::aws_env;
use latchkey_loadgen::{http_client, report, run};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value = "redeemload")]
    bucket: String,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 10_000)]
    count: usize,
}

const OBJECT_SIZE: usize = 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let env = Arc::new(aws_env::load(None, Some(&args.endpoint)).await?);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&env.sdk)
            .region(env.region.clone())
            .endpoint_url(&env.endpoint)
            .force_path_style(true)
            .build(),
    );
    let _ = s3.create_bucket().bucket(&args.bucket).send().await;
    let body = vec![b'r'; OBJECT_SIZE];
    s3.put_object().bucket(&args.bucket).key("one-kib").body(body.into()).send().await?;

    // Mint the links concurrently; minting is not what is measured.
    let mint = serde_json::json!({ "bucket": args.bucket, "key": "one-kib", "max_uses": 1 });
    let minted = Arc::new(std::sync::Mutex::new(Vec::with_capacity(args.count)));
    let (env2, minted2) = (env.clone(), minted.clone());
    run(vec![(); args.count], 16, move |_, _| {
        let (env, minted, mint) = (env2.clone(), minted2.clone(), mint.clone());
        async move {
            let created = call(&env, "POST", "/-/shares", Some(&mint)).await?;
            let url = created["api_url"].as_str().unwrap_or_default().to_owned();
            minted.lock().unwrap_or_else(|p| p.into_inner()).push(url);
            Ok(())
        }
    })
    .await?;
    let urls = std::mem::take(&mut *minted.lock().unwrap_or_else(|p| p.into_inner()));

    let client = http_client(args.concurrency);
    let (latencies, elapsed) = run(urls, args.concurrency, move |urls: Arc<Vec<String>>, i| {
        let client = client.clone();
        async move {
            let req = hyper::Request::get(urls[i].as_str()).body(Full::new(Bytes::new()))?;
            let resp = client.request(req).await?;
            let status = resp.status();
            let got = resp.into_body().collect().await?.to_bytes().len();
            if status != hyper::StatusCode::OK || got != OBJECT_SIZE {
                bail!("redemption {i} answered {status} with {got} bytes");
            }
            Ok(())
        }
    })
    .await?;
    println!("{}", report("redemptions", latencies, elapsed));
    Ok(())
}
