//! `/-/audit/events` and `/-/audit/digests`: the signed JSON API behind `latchkey audit tail,
//! query, verify and export`, for root and principals granted `latchkey:ReadAudit`.
//!
//! `GET /-/audit/events?after=POS&since=RFC3339&principal=ARN&event=NAME&limit=N` answers the
//! linked events after a position that match, oldest first (at most 1000, default 100), with
//! `next_after` to page on (`newest=true`: the newest that match instead, for `tail`); `GET /-/audit/digests` every digest. Hashes and signatures are hex,
//! so a client can verify the chain itself (`latchkey_audit::verify`).

use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode, Uri};
use latchkey_identity::{ClientConnection, Identity};
use latchkey_meta::{AuditQuery, AuditTrail, MetaStore};
use latchkey_s3::json_api::{self, api_error, json};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const EVENTS: &str = "/-/audit/events";
pub const DIGESTS: &str = "/-/audit/digests";
/// The IAM action that lets a principal other than root read the audit trail.
const READ_ACTION: &str = "latchkey:ReadAudit";
const MAX_PAGE: u32 = 1000;

pub struct AuditApi {
    identity: Arc<Identity>,
    trail: Arc<dyn AuditTrail>,
    meta: Arc<dyn MetaStore>,
}

impl AuditApi {
    pub fn new(identity: Arc<Identity>, trail: Arc<dyn AuditTrail>, meta: Arc<dyn MetaStore>) -> AuditApi {
        AuditApi { identity, trail, meta }
    }
}

/// The events query a query string asks for, or why it cannot be read.
fn events_query(query: Option<&str>) -> Result<AuditQuery, String> {
    let mut out = AuditQuery::page(0, 100);
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*name {
            "after" => out.after = value.parse().map_err(|_| format!("after must be a position, not {value:?}"))?,
            "limit" => {
                out.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| format!("limit must be between 1 and {MAX_PAGE}"))?;
            }
            "since" => {
                out.since = Some(
                    OffsetDateTime::parse(&value, &Rfc3339)
                        .map_err(|_| format!("since must be an RFC 3339 time, not {value:?}"))?,
                );
            }
            "principal" => out.principal = Some(value.into_owned()),
            "event" => out.event = Some(value.into_owned()),
            name if json_api::is_signature_param(name) => {}
            "newest" => {
                out.newest = match &*value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("newest must be true or false, not {value:?}")),
                };
            }
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl S3Route for AuditApi {
    fn is_match(&self, _: &Method, uri: &Uri, _: &HeaderMap, _: &mut http::Extensions) -> bool {
        matches!(uri.path(), EVENTS | DIGESTS)
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if req.method != Method::GET {
            return Err(s3_error!(MethodNotAllowed));
        }
        let caller = json_api::caller(&self.identity, &req).await?;
        let client = req.extensions.get::<ClientConnection>().copied();
        if !json_api::allows(&self.identity, &caller, client, READ_ACTION, "*") {
            let principal = caller.principal(self.identity.account()).arn;
            json_api::audit_denial(self.meta.as_ref(), principal, client.map(|c| c.ip), READ_ACTION, "*").await;
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        let failed = |e: latchkey_meta::MetaError| {
            tracing::error!(error = %e, "cannot read the audit trail");
            s3_error!(InternalError)
        };
        if req.uri.path() == DIGESTS {
            let query = form_urlencoded::parse(req.uri.query().unwrap_or_default().as_bytes());
            if query.into_iter().any(|(name, _)| !json_api::is_signature_param(&name)) {
                return api_error(StatusCode::BAD_REQUEST, "InvalidArgument", "/-/audit/digests takes no parameters");
            }
            let digests = self.trail.audit_digests().await.map_err(failed)?;
            let digests: Vec<Value> = digests
                .iter()
                .map(|d| {
                    json!({
                        "at_ms": d.at.unix_timestamp_nanos() / 1_000_000,
                        "first_pos": d.first_pos,
                        "last_pos": d.last_pos,
                        "last_hash": hex::encode(&d.last_hash),
                        "prev_signature": d.prev_signature.as_deref().map(hex::encode),
                        "signature": hex::encode(&d.signature),
                    })
                })
                .collect();
            return json(StatusCode::OK, &json!({ "digests": digests }));
        }
        let query = match events_query(req.uri.query()) {
            Ok(query) => query,
            Err(message) => return api_error(StatusCode::BAD_REQUEST, "InvalidArgument", &message),
        };
        let events = self.trail.chained_audit(&query).await.map_err(failed)?;
        let next_after = events.last().map(|e| e.pos).filter(|_| !query.newest && events.len() == query.limit as usize);
        let events: Vec<Value> = events
            .into_iter()
            .map(|linked| {
                let e = linked.event;
                json!({
                    "pos": linked.pos,
                    "time": e.at.format(&Rfc3339).unwrap_or_default(),
                    "at_ms": e.at.unix_timestamp_nanos() / 1_000_000,
                    "event": e.event,
                    "share_id": e.share_id,
                    "principal": e.principal,
                    "source_ip": e.source_ip,
                    "user_agent": e.user_agent,
                    "reason": e.reason,
                    "hash": hex::encode(&linked.hash),
                })
            })
            .collect();
        json(StatusCode::OK, &json!({ "events": events, "next_after": next_after }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_query_is_read_or_refused_with_a_reason() {
        let q =
            events_query(Some("after=5&limit=10&event=auth.failed&principal=arn%3Aaws%3Aiam%3A%3A0%3Aroot")).unwrap();
        assert_eq!((q.after, q.limit, q.event.as_deref()), (5, 10, Some("auth.failed")));
        assert_eq!(q.principal.as_deref(), Some("arn:aws:iam::0:root"));
        let q = events_query(Some("since=2026-12-05T12:00:00Z")).unwrap();
        assert_eq!(q.since, Some(time::macros::datetime!(2026-12-05 12:00 UTC)));
        assert_eq!(events_query(None).unwrap().limit, 100);
        let presigned = events_query(Some("limit=5&X-Amz-Signature=ab&X-Amz-Date=20261205T120000Z")).unwrap();
        assert_eq!(presigned.limit, 5, "a presigned URL's own parameters are not the call's");
        for (bad, why) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("after=x", "after"),
            ("since=today", "RFC 3339"),
            ("x=1", "unknown"),
        ] {
            assert!(events_query(Some(bad)).unwrap_err().contains(why), "{bad}");
        }
    }
}
