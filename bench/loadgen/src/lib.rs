//! What the load generators share: a keep-alive HTTP client, concurrent workers over a list of
//! prepared requests, and latency percentiles.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client(connections: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(connections).build(connector)
}

/// Runs `job` once per item over `concurrency` workers; returns each job's latency and the
/// wall time. Any failed job fails the run: a fast server that drops work must not look good.
pub async fn run<T, F, Fut>(items: Vec<T>, concurrency: usize, job: F) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    T: Send + Sync + 'static,
    F: Fn(Arc<Vec<T>>, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let items = Arc::new(items);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (items, next, job) = (items.clone(), next.clone(), job.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let t0 = Instant::now();
                    job(items.clone(), i).await?;
                    latencies.push(t0.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(items.len());
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok((latencies, started.elapsed()))
}

/// `name_per_sec=... count=... p50_ms=... p99_ms=... max_ms=...`
pub fn report(name: &str, mut latencies: Vec<Duration>, elapsed: Duration) -> String {
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    format!(
        "{name}_per_sec={:.1} count={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    )
}
