//! `paceload`: GETs one URL at a steady `--rate` over `--connections` keep-alive connections for
//! `--seconds`, as one client (named by `X-Forwarded-For` to a server that trusts the
//! generator's address as a proxy), and prints latency percentiles. Every answer must be a 200:
//! a polite client must never be refused for another's flood.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use latchkey_loadgen::{http_client, report};

#[derive(Parser)]
struct Args {
    url: String,
    /// Requests per second, in all.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The client address a trusted proxy would name.
    #[arg(long)]
    forwarded_for: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = http_client(args.connections);
    let args = Arc::new(args);
    // Each connection sends one request per period, so that together they keep the rate.
    let period = Duration::from_secs_f64(args.connections as f64 / f64::from(args.rate));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            let (client, args) = (client.clone(), args.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut latencies = Vec::new();
                while started.elapsed() < Duration::from_secs(args.seconds) {
                    tick.tick().await;
                    let mut request = hyper::Request::get(args.url.as_str());
                    if let Some(ip) = &args.forwarded_for {
                        request = request.header("x-forwarded-for", ip.as_str());
                    }
                    let t0 = Instant::now();
                    let resp = client.request(request.body(Full::new(Bytes::new()))?).await?;
                    let status = resp.status();
                    resp.into_body().collect().await?;
                    if status != 200 {
                        bail!("answered {status}");
                    }
                    latencies.push(t0.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    println!("{}", report("get", latencies, started.elapsed()));
    Ok(())
}
