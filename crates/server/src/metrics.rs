//! Prometheus metrics, served at `/-/metrics` on listeners with the `metrics` surface. Every
//! layer counts with the `metrics` macros; this process-wide recorder keeps the figures and
//! renders them. Names: `latchkey_requests_total{surface,operation,status}`,
//! `latchkey_request_duration_seconds{surface}`, `latchkey_bytes_{in,out}_total{surface}`,
//! `latchkey_denied_total{code}` (401/403 by error code), `latchkey_refused_total{reason}`
//! (every guard limit: surface, network, connections, connections_per_ip, rate, header_size,
//! request_line, header_timeout, idle_body, idle_response, forwarding_header),
//! `latchkey_open_connections`; and from the layers behind: `latchkey_presigned_expired_total`
//! (router), `latchkey_shares_total{outcome}` (share service),
//! `latchkey_store_duration_seconds{operation}` (`latchkey_meta::timed`),
//! `latchkey_audit_chain_length` (the audit linker) and `latchkey_bucket_log_lines_total{outcome}`
//! (server access logs delivered into buckets or dropped). [`SERIES`] lists them for metric
//! alarm rules.

use std::sync::OnceLock;

use http::{HeaderValue, header};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Request latency buckets, in seconds: from a cached small GET to a large upload.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];

/// Every series rendered, with the labels it carries; histograms as their `_bucket`, `_sum`
/// and `_count` series.
pub const SERIES: [(&str, &[&str]); 16] = [
    ("latchkey_requests_total", &["surface", "operation", "status"]),
    ("latchkey_request_duration_seconds_bucket", &["surface", "le"]),
    ("latchkey_request_duration_seconds_sum", &["surface"]),
    ("latchkey_request_duration_seconds_count", &["surface"]),
    ("latchkey_bytes_in_total", &["surface"]),
    ("latchkey_bytes_out_total", &["surface"]),
    ("latchkey_denied_total", &["code"]),
    ("latchkey_refused_total", &["reason"]),
    ("latchkey_open_connections", &[]),
    ("latchkey_presigned_expired_total", &[]),
    ("latchkey_shares_total", &["outcome"]),
    ("latchkey_store_duration_seconds_bucket", &["operation", "le"]),
    ("latchkey_store_duration_seconds_sum", &["operation"]),
    ("latchkey_store_duration_seconds_count", &["operation"]),
    ("latchkey_audit_chain_length", &[]),
    ("latchkey_bucket_log_lines_total", &["outcome"]),
];

/// The recorder, installed on first use. One per process: a second server in the same process
/// shares it.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /-/metrics will stay empty");
            }
            handle
        })
        .clone()
}

/// The `/-/metrics` answer.
pub async fn render(handle: PrometheusHandle) -> ([(header::HeaderName, HeaderValue); 1], String) {
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], handle.render())
}
