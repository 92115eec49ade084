//! What Latchkey's signed JSON APIs (`/-/shares`, `/-/presigned`) share: they run as s3s custom
//! routes behind its signature check, resolve the caller as any S3 call does, and answer JSON,
//! errors as `{"error": CODE, "message": ...}`.

use http::{HeaderValue, StatusCode, header};
use latchkey_identity::{Caller, Identity};
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use serde::Serialize;

/// The largest request body the JSON APIs read.
pub const MAX_API_BODY: usize = 64 * 1024;

/// A JSON answer.
pub fn json(status: StatusCode, value: &impl Serialize) -> S3Result<S3Response<Body>> {
    let body = serde_json::to_vec(value).map_err(|e| s3_error!(e, InternalError))?;
    let mut resp = S3Response::with_status(Body::from(body), status);
    resp.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// A JSON error answer.
pub fn api_error(status: StatusCode, code: &str, message: &str) -> S3Result<S3Response<Body>> {
    json(status, &serde_json::json!({ "error": code, "message": message }))
}

/// The caller behind a request s3s has verified (its session token checked).
pub async fn caller(identity: &Identity, req: &S3Request<Body>) -> S3Result<Caller> {
    let access_key = req.credentials.as_ref().map(|c| c.access_key.as_str()).ok_or_else(|| s3_error!(AccessDenied))?;
    let token = req.headers.get("x-amz-security-token").and_then(|v| v.to_str().ok());
    identity.caller(access_key, token).await.map_err(|_| s3_error!(InvalidAccessKeyId))
}

/// The request body, at most [`MAX_API_BODY`] bytes.
pub async fn body(req: &mut S3Request<Body>) -> S3Result<bytes::Bytes> {
    req.input
        .store_all_limited(MAX_API_BODY)
        .await
        .map_err(|_| s3_error!(MaxMessageLengthExceeded, "the request body exceeds {MAX_API_BODY} bytes"))
}
