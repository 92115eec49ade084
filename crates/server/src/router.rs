//! Every HTTP request enters here: a request id is assigned, oversized header sections are
//! refused, `/-/shares` goes through s3s (signed), other `/-/...` paths to Latchkey's public
//! routes, and everything else to the S3 front. Each request leaves one access-log line, never
//! with its query string or a share token: presigned URLs and tokens travel there.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use latchkey_meta::{MetaError, MetaStore};
use s3s::service::S3Service;
use s3s::{Body, S3Error, S3ErrorCode};
use tower::ServiceExt;

/// How long `/-/health` waits for the metadata store before calling it down.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// `200 ok`, or `503` with a short reason when the metadata store cannot take writes (its
/// writer task is gone, its database does not answer). The cause is logged, not shown.
async fn health(meta: Arc<dyn MetaStore>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(HEALTH_TIMEOUT, meta.health()).await {
        Ok(Ok(())) => (StatusCode::OK, "ok\n"),
        Ok(Err(MetaError::Closed)) => (StatusCode::SERVICE_UNAVAILABLE, "down: metadata writer stopped\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: the metadata database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "down: metadata database unreachable\n")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "down: metadata database not answering\n"),
    }
}

/// S3 refuses request header sections over 8 KiB; so do we, before any parsing.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Latchkey's own endpoints live under this prefix; no bucket name can start with `-`.
const RESERVED_PREFIX: &str = "/-/";

/// The signed management API: routed through s3s, which verifies SigV4 before its custom route.
const SIGNED_API: &str = "/-/shares";

pub struct Dispatch {
    s3: S3Service,
    routes: Router,
    request_ids: RequestIds,
}

impl Dispatch {
    /// `public` holds the unsigned `/-/` endpoints (share redemption); health, which asks
    /// `meta`, is added here.
    pub fn new(s3: S3Service, public: Router, meta: Arc<dyn MetaStore>) -> Self {
        let routes = Router::new().route("/-/health", get(move || health(meta.clone()))).merge(public);
        Self { s3, routes, request_ids: RequestIds::new() }
    }

    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<Body>, Infallible> {
        // The public share routes read the client address from here (axum's ConnectInfo).
        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let started = Instant::now();
        let request_id = self.request_ids.next();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let logged_path = loggable(&path);
        let mut resp = if header_bytes(&req) > MAX_HEADER_BYTES {
            s3_error_response(S3Error::with_message(
                S3ErrorCode::RequestHeaderSectionTooLarge,
                "Your request header section exceeds the maximum allowed size.",
            ))
        } else if path.starts_with(RESERVED_PREFIX) && !is_signed_api(&path) {
            let resp = self.routes.clone().oneshot(req.map(axum::body::Body::new)).await.unwrap_or_else(|e| match e {});
            resp.map(Body::http_body_unsync)
        } else {
            match self.s3.call(req.map(Body::from)).await {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::error!(error = ?e, "S3 service failed");
                    s3_error_response(S3Error::new(S3ErrorCode::InternalError))
                }
            }
        };
        let headers = resp.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert("x-amz-request-id", value.clone());
            headers.insert("x-amz-id-2", value);
        }
        headers.insert(http::header::SERVER, HeaderValue::from_static("Latchkey"));
        tracing::info!(
            target: "latchkey::access",
            request_id,
            %peer,
            %method,
            path = logged_path,
            status = resp.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
        );
        Ok(resp)
    }
}

/// Share-link paths carry the token; the log gets the path without it.
const TOKEN_PATH: &str = "/-/s/";

fn loggable(path: &str) -> &str {
    if path.starts_with(TOKEN_PATH) { "/-/s/<token>" } else { path }
}

fn is_signed_api(path: &str) -> bool {
    path == SIGNED_API || path.strip_prefix(SIGNED_API).is_some_and(|rest| rest.starts_with('/'))
}

fn header_bytes<B>(req: &Request<B>) -> usize {
    req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum()
}

fn s3_error_response(e: S3Error) -> Response<Body> {
    e.to_http_response().unwrap_or_else(|_| {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        resp
    })
}

/// S3-style request ids: 16 upper-case hex digits, unique within a process and unpredictable
/// across processes.
struct RequestIds {
    base: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        Self { base: rand::random(), counter: AtomicU64::new(0) }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:016X}", self.base.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn health_is_down_when_the_store_cannot_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetaStore> =
            Arc::new(latchkey_meta::SqliteStore::open(&dir.path().join("meta.db")).await.unwrap());
        assert_eq!(health(store.clone()).await, (StatusCode::OK, "ok\n"));
        store.close().await;
        assert_eq!(health(store).await, (StatusCode::SERVICE_UNAVAILABLE, "down: metadata database unreachable\n"));
    }
}
