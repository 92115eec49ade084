//! What Latchkey's signed JSON APIs (`/-/shares`, `/-/presigned`, `/-/audit`, `/-/findings`)
//! share: they run as s3s custom routes behind its signature check, resolve the caller as any S3
//! call does, authorise their actions with the request's condition keys, and answer JSON, errors
//! as `{"error": CODE, "message": ...}`.

use std::net::IpAddr;

use http::{HeaderValue, StatusCode, header};
use latchkey_identity::{Caller, ClientConnection, Identity};
use latchkey_meta::{AuditEvent, MetaStore};
use latchkey_policy::{Effect, RequestContext};
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use serde::Serialize;

/// The largest request body the JSON APIs read.
pub const MAX_API_BODY: usize = 64 * 1024;

/// Whether a query parameter belongs to a presigned URL's signature (SigV4 `X-Amz-*`, SigV2
/// `AWSAccessKeyId`, `Signature`, `Expires`) rather than to the API call.
pub fn is_signature_param(name: &str) -> bool {
    name.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("x-amz-"))
        || matches!(name, "AWSAccessKeyId" | "Signature" | "Expires")
}

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

/// Whether `caller` may take the API's `action` on `resource` (root may take any), judged with
/// the request's condition keys (the client's address, TLS) and the caller's own.
pub fn allows(
    identity: &Identity,
    caller: &Caller,
    client: Option<ClientConnection>,
    action: &str,
    resource: &str,
) -> bool {
    if matches!(caller, Caller::Root) {
        return true;
    }
    let mut context = RequestContext::new();
    if let Some(client) = client {
        client.insert_keys(&mut context);
    }
    identity.caller_context(caller, &mut context);
    identity.authorize(caller, action, resource, &context, None).effect == Effect::Allow
}

/// [`allows`], with a refusal audited ([`audit_denial`]).
pub async fn permits(
    identity: &Identity,
    meta: &dyn MetaStore,
    caller: &Caller,
    client: Option<ClientConnection>,
    action: &str,
    resource: &str,
) -> bool {
    let allowed = allows(identity, caller, client, action, resource);
    if !allowed {
        let principal = caller.principal(identity.account()).arn;
        audit_denial(meta, principal, client.map(|c| c.ip), action, resource).await;
    }
    allowed
}

/// The request body, at most [`MAX_API_BODY`] bytes.
pub async fn body(req: &mut S3Request<Body>) -> S3Result<bytes::Bytes> {
    req.input
        .store_all_limited(MAX_API_BODY)
        .await
        .map_err(|_| s3_error!(MaxMessageLengthExceeded, "the request body exceeds {MAX_API_BODY} bytes"))
}

/// Records a refused API action (`policy.denied`), as the Authorizer records refused S3
/// operations.
pub async fn audit_denial(
    meta: &dyn MetaStore,
    principal: String,
    source_ip: Option<IpAddr>,
    action: &str,
    resource: &str,
) {
    let event = AuditEvent {
        at: time::OffsetDateTime::now_utc(),
        event: "policy.denied".into(),
        share_id: None,
        principal: Some(principal),
        source_ip: source_ip.map(|ip| ip.to_string()),
        user_agent: None,
        reason: Some(format!("{action} on {resource}: no policy allows it")),
    };
    if let Err(e) = meta.record_audit(&event).await {
        tracing::error!(error = %e, "cannot record a refused API action");
    }
}
