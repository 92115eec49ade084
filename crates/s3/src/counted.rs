//! Counted presigned URLs: a SigV4 presigned URL made with `latchkey presign --max-uses N`
//! carries `X-Latchkey-Max-Uses=N` in its query, which its signature covers, so it cannot be
//! raised or removed. Each use that passes authentication and authorisation is spent in the
//! store ([`PresignedStore`], keyed by a SHA-256 of the signature) before the operation runs; once
//! all are spent the URL gets the usual `403`, and the refusal is audited. URLs without the
//! parameter never reach the store.

use latchkey_meta::{AuditEvent, MetaStore, PresignedStore};
use s3s::access::S3AccessContext;
use s3s::{S3Result, s3_error};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The query parameter that makes a presigned URL counted.
pub const MAX_USES_PARAM: &str = "X-Latchkey-Max-Uses";

/// What a counted URL's query says.
struct Counted {
    max_uses: u32,
    signature: String,
    expires: OffsetDateTime,
}

/// The longest lifetime a presigned URL may claim (the envelope refuses longer ones first).
const MAX_LIFETIME_SECS: i64 = 604_800;

/// The counted URL a request presents, if any; an error for one that cannot be counted.
/// Names are compared decoded, as the signature check reads them (`X-Latchkey-Max-Use%73` is the
/// same parameter). `header_signed`: the request carries an `Authorization` header.
fn counted(query: &str, header_signed: bool) -> S3Result<Option<Counted>> {
    let (mut max_uses, mut signature, mut date, mut lifetime, mut sigv2) = (None, None, None, None, false);
    for (name, value) in crate::query::params(query) {
        match &*name {
            MAX_USES_PARAM => max_uses = Some(value.decode()),
            "X-Amz-Signature" => signature = Some(value.decode().into_owned()),
            "X-Amz-Date" => date = Some(value.decode()),
            "X-Amz-Expires" => lifetime = value.decode().parse::<i64>().ok(),
            "Signature" | "AWSAccessKeyId" => sigv2 = true,
            _ => {}
        }
    }
    let Some(max_uses) = max_uses else { return Ok(None) };
    let max_uses = max_uses
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| s3_error!(InvalidArgument, "{MAX_USES_PARAM} must be a whole number of at least 1."))?;
    // Only a SigV4 presigned URL signs every query parameter; a header-signed or SigV2 request
    // could carry made-up X-Amz-* parameters beside it (s3s checks SigV2 first).
    let (Some(signature), Some(date), Some(lifetime), false, false) = (signature, date, lifetime, sigv2, header_signed)
    else {
        return Err(s3_error!(InvalidRequest, "{MAX_USES_PARAM} counts only in SigV4 presigned URLs."));
    };
    let lifetime = lifetime.clamp(0, MAX_LIFETIME_SECS);
    let signed = crate::revoked::amz_date(&date)
        .ok_or_else(|| s3_error!(AuthorizationQueryParametersError, "X-Amz-Date is not a valid date."))?;
    Ok(Some(Counted { max_uses, signature, expires: signed + time::Duration::seconds(lifetime) }))
}

/// Spends one use of the counted URL the request presents, if it presents one; `principal` and
/// `source_ip` are recorded when it is used up.
pub(crate) async fn spend(
    cx: &S3AccessContext<'_>,
    store: &dyn PresignedStore,
    meta: &dyn MetaStore,
    principal: Option<String>,
    source_ip: Option<String>,
) -> S3Result<()> {
    let header_signed = cx.headers().contains_key(http::header::AUTHORIZATION);
    let Some(url) = cx.uri().query().map(|q| counted(q, header_signed)).transpose()?.flatten() else {
        return Ok(());
    };
    if cx.credentials().is_none() {
        return Err(s3_error!(InvalidRequest, "{MAX_USES_PARAM} counts only in SigV4 presigned URLs."));
    }
    let hash = Sha256::digest(url.signature.as_bytes());
    let granted =
        latchkey_meta::timed("spend_presigned_use", store.spend_presigned_use(&hash, url.max_uses, url.expires))
            .await
            .map_err(|e| s3_error!(e, InternalError, "cannot count the use of this presigned URL"))?;
    if granted {
        return Ok(());
    }
    let reason = format!(
        "{} {}: the presigned URL's {} uses are spent (signature sha256 {})",
        cx.method(),
        cx.uri().path(),
        url.max_uses,
        hex::encode(&hash[..8])
    );
    audit_refusal(meta, principal, source_ip, reason).await;
    Err(s3_error!(AccessDenied, "Access Denied"))
}

/// Records a refused presigned URL (used up or revoked) in the audit trail.
pub(crate) async fn audit_refusal(
    meta: &dyn MetaStore,
    principal: Option<String>,
    source_ip: Option<String>,
    reason: String,
) {
    let event = AuditEvent {
        at: OffsetDateTime::now_utc(),
        event: "presigned.denied".into(),
        share_id: None,
        principal,
        source_ip,
        user_agent: None,
        reason: Some(reason),
    };
    if let Err(e) = meta.record_audit(&event).await {
        tracing::error!(error = %e, "cannot record a refused presigned URL");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_url_names_its_uses_signature_and_expiry() {
        assert!(counted("X-Amz-Signature=ab&X-Amz-Date=20261205T120000Z", false).unwrap().is_none());
        let query = "X-Amz-Date=20261205T120000Z&X-Amz-Expires=600&X-Latchkey-Max-Uses=3&X-Amz-Signature=ab";
        let url = counted(query, false).unwrap().unwrap();
        assert_eq!((url.max_uses, url.signature.as_str()), (3, "ab"));
        assert_eq!(url.expires, time::macros::datetime!(2026-12-05 12:10 UTC));
        // Review finding: an encoded name is the same parameter to the signature check.
        let encoded = query.replace("X-Latchkey-Max-Uses", "X-Latchkey-Max-Use%73");
        assert_eq!(counted(&encoded, false).unwrap().unwrap().max_uses, 3);
        for bad in ["X-Latchkey-Max-Uses=0", "X-Latchkey-Max-Uses=-1", "X-Latchkey-Max-Uses=lots"] {
            assert_eq!(counted(bad, false).err().unwrap().code().as_str(), "InvalidArgument", "{bad}");
        }
        // Review finding: made-up X-Amz-* beside a SigV2 signature or an Authorization header.
        let sigv2 = format!("{query}&Signature=cd&AWSAccessKeyId=AKIA&Expires=1800000000");
        assert_eq!(counted(&sigv2, false).err().unwrap().code().as_str(), "InvalidRequest");
        assert_eq!(counted(query, true).err().unwrap().code().as_str(), "InvalidRequest");
        let endless = query.replace("X-Amz-Expires=600", "X-Amz-Expires=9223372036854775807");
        let url = counted(&endless, false).unwrap().unwrap();
        assert_eq!(url.expires, time::macros::datetime!(2026-12-12 12:00 UTC), "at most seven days");
    }
}
