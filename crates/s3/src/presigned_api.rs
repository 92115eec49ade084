//! `/-/presigned/revocations`: the signed JSON API behind `latchkey presign revoke`.
//!
//! `POST {"url": URL}` refuses one presigned URL from then on (the server keeps the SHA-256 of
//! its signature and when it expires, nothing else of it); `POST {"signed_by": KEY, "before":
//! RFC3339}` refuses every URL the key signed before that time (at most now). A caller may
//! revoke URLs signed with its own keys; any other's need `latchkey:RevokePresignedUrl` on the
//! signer's ARN (`*` for a key the server does not know). Each revocation is audited as
//! `presigned.revoked`.

use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode, Uri};
use latchkey_identity::{Caller, ClientConnection, Identity};
use latchkey_meta::{AuditEvent, MetaStore, Revocation, Revoked};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::json_api::{self, api_error, json};
use crate::revoked::{MAX_PRESIGNED_LIFETIME, PresignedUrl, Revocations};

const PATH: &str = "/-/presigned/revocations";
/// The IAM action that lets a caller revoke URLs signed with another principal's keys.
pub const REVOKE_ACTION: &str = "latchkey:RevokePresignedUrl";

pub struct PresignedApi {
    identity: Arc<Identity>,
    meta: Arc<dyn MetaStore>,
    revocations: Arc<Revocations>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    url: Option<String>,
    signed_by: Option<String>,
    before: Option<String>,
}

impl PresignedApi {
    pub fn new(identity: Arc<Identity>, meta: Arc<dyn MetaStore>, revocations: Arc<Revocations>) -> Self {
        Self { identity, meta, revocations }
    }

    /// Whether `caller` may revoke URLs signed with `access_key_id`.
    async fn may_revoke(&self, caller: &Caller, access_key_id: &str, client: Option<ClientConnection>) -> bool {
        let signer = if access_key_id.starts_with("ASIA") {
            self.identity.session_holder(access_key_id).await
        } else {
            self.identity.caller(access_key_id, None).await.ok()
        };
        let account = self.identity.account();
        let signer_arn = signer.map(|s| s.principal(account).arn);
        if signer_arn.as_deref() == Some(&caller.principal(account).arn) {
            return true;
        }
        let resource = signer_arn.as_deref().unwrap_or("*");
        json_api::allows(&self.identity, caller, client, REVOKE_ACTION, resource)
    }
}

/// How far ahead of the server's clock a SigV4 `X-Amz-Date` may be (s3s's allowed skew): a
/// `before` may reach that far, to cover URLs dated ahead.
const SKEW: time::Duration = time::Duration::minutes(15);

/// What a request revokes, the key that signed what it revokes, and how the audit trail
/// describes it; or why it cannot be read.
fn read_request(request: RevokeRequest, now: OffsetDateTime) -> Result<(Revocation, String, String), String> {
    match request {
        RevokeRequest { url: Some(url), signed_by: None, before: None } => {
            let query = url.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or(q)).unwrap_or_default();
            let url = PresignedUrl::parse(query)
                .ok_or("url is not a presigned URL: it carries no X-Amz-Signature (SigV4) or Signature (SigV2)")?;
            let hash = url.signature_hash();
            let what = format!(
                "the presigned URL signed by {} (signature sha256 {})",
                url.access_key_id,
                hex::encode(&hash[..8])
            );
            let revocation = Revocation { revoked: Revoked::Signature(hash.to_vec()), expires: url.expires };
            Ok((revocation, url.access_key_id, what))
        }
        RevokeRequest { url: None, signed_by: Some(key), before } => {
            let before = match before {
                None => now,
                Some(t) => {
                    OffsetDateTime::parse(&t, &Rfc3339).map_err(|_| format!("before is not an RFC 3339 time: {t:?}"))?
                }
            };
            if before > now + SKEW {
                return Err("before cannot be more than 15 minutes in the future".into());
            }
            if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err("signed_by is not an access key id".into());
            }
            let what = format!("presigned URLs signed by {key} before {}", before.format(&Rfc3339).unwrap_or_default());
            // Every URL signed before `before` has expired a longest lifetime later.
            let revoked = Revoked::SignedBy { access_key_id: key.clone(), before };
            Ok((Revocation { revoked, expires: before + MAX_PRESIGNED_LIFETIME }, key, what))
        }
        _ => Err("give either url, or signed_by (with before)".into()),
    }
}

#[async_trait::async_trait]
impl S3Route for PresignedApi {
    fn is_match(&self, _: &Method, uri: &Uri, _: &HeaderMap, _: &mut http::Extensions) -> bool {
        uri.path() == PATH
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if req.method != Method::POST {
            return Err(s3_error!(MethodNotAllowed));
        }
        let caller = json_api::caller(&self.identity, &req).await?;
        let body = json_api::body(&mut req).await?;
        let now = OffsetDateTime::now_utc();
        let read = serde_json::from_slice::<RevokeRequest>(&body)
            .map_err(|e| e.to_string())
            .and_then(|r| read_request(r, now));
        let (revocation, signer, what) = match read {
            Ok(read) => read,
            Err(message) => return api_error(StatusCode::BAD_REQUEST, "InvalidRequest", &message),
        };
        let client = req.extensions.get::<ClientConnection>().copied();
        if !self.may_revoke(&caller, &signer, client).await {
            let principal = caller.principal(self.identity.account()).arn;
            let resource = format!("URLs signed by {signer}");
            json_api::audit_denial(self.meta.as_ref(), principal, client.map(|c| c.ip), REVOKE_ACTION, &resource).await;
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        self.revocations.revoke(&revocation).await.map_err(|e| {
            tracing::error!(error = %e, "cannot record a presigned-URL revocation");
            s3_error!(InternalError)
        })?;
        let event = AuditEvent {
            at: now,
            event: "presigned.revoked".into(),
            share_id: None,
            principal: Some(caller.principal(self.identity.account()).arn),
            source_ip: client.map(|c| c.ip.to_string()),
            user_agent: None,
            reason: Some(what.clone()),
        };
        if let Err(e) = self.meta.record_audit(&event).await {
            tracing::error!(error = %e, "cannot record a presigned-URL revocation in the audit trail");
        }
        json(StatusCode::CREATED, &serde_json::json!({ "revoked": what }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;
    use time::macros::datetime;

    fn read(url: Option<&str>, signed_by: Option<&str>, before: Option<&str>) -> Result<(Revoked, String), String> {
        let request = RevokeRequest {
            url: url.map(Into::into),
            signed_by: signed_by.map(Into::into),
            before: before.map(Into::into),
        };
        read_request(request, datetime!(2026-12-05 12:00 UTC)).map(|(revocation, key, _)| (revocation.revoked, key))
    }

    #[test]
    fn a_request_names_one_url_or_a_key_and_a_past_time() {
        let url = "https://h/b/k?X-Amz-Credential=AKIAUSER%2F20261205%2Fus-east-1%2Fs3%2Faws4_request\
                   &X-Amz-Date=20261205T110000Z&X-Amz-Expires=60&X-Amz-Signature=ab#frag";
        let (revoked, key) = read(Some(url), None, None).unwrap();
        assert_eq!(key, "AKIAUSER");
        let hash = sha2::Sha256::digest(b"AKIAUSER\nab").to_vec();
        assert_eq!(revoked, Revoked::Signature(hash), "the key and the signature, the fragment no part of it");
        let (revoked, _) = read(None, Some("AKIAUSER"), None).unwrap();
        assert_eq!(
            revoked,
            Revoked::SignedBy { access_key_id: "AKIAUSER".into(), before: datetime!(2026-12-05 12:00 UTC) }
        );
        assert!(read(None, Some("AKIAUSER"), Some("2026-12-05T11:00:00Z")).is_ok());
        assert!(read(None, Some("AKIAUSER"), Some("2026-12-05T12:14:00Z")).is_ok(), "URLs dated ahead");
        for (url, key, before, why) in [
            (Some("https://h/b/k"), None, None, "not a presigned URL"),
            (None, Some("AKIAUSER"), Some("2026-12-05T12:16:00Z"), "in the future"),
            (None, Some("AKIAUSER"), Some("yesterday"), "RFC 3339"),
            (None, Some("AKIA/../x"), None, "not an access key id"),
            (Some(url), Some("AKIAUSER"), None, "either"),
            (None, None, Some("2026-12-05T11:00:00Z"), "either"),
        ] {
            assert!(read(url, key, before).unwrap_err().contains(why), "{why}");
        }
    }
}
