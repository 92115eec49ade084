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
use time::macros::format_description;

/// The query parameter that makes a presigned URL counted.
pub const MAX_USES_PARAM: &str = "X-Latchkey-Max-Uses";

/// What a counted URL's query says.
struct Counted {
    max_uses: u32,
    signature: String,
    expires: OffsetDateTime,
}

/// The counted URL a request presents, if any; an error for one that cannot be counted.
fn counted(query: &str) -> S3Result<Option<Counted>> {
    if !query.contains(MAX_USES_PARAM) {
        return Ok(None);
    }
    let (mut max_uses, mut signature, mut date, mut lifetime) = (None, None, None, None);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            MAX_USES_PARAM => max_uses = Some(value.into_owned()),
            "X-Amz-Signature" => signature = Some(value.into_owned()),
            "X-Amz-Date" => date = Some(value.into_owned()),
            "X-Amz-Expires" => lifetime = value.parse::<i64>().ok(),
            _ => {}
        }
    }
    let Some(max_uses) = max_uses else { return Ok(None) };
    let max_uses = max_uses
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| s3_error!(InvalidArgument, "{MAX_USES_PARAM} must be a whole number of at least 1."))?;
    // Only SigV4 signs every query parameter; anywhere else the count could be stripped.
    let (Some(signature), Some(date), Some(lifetime)) = (signature, date, lifetime) else {
        return Err(s3_error!(InvalidRequest, "{MAX_USES_PARAM} counts only in SigV4 presigned URLs."));
    };
    let signed =
        time::PrimitiveDateTime::parse(&date, format_description!("[year][month][day]T[hour][minute][second]Z"))
            .map_err(|_| s3_error!(AuthorizationQueryParametersError, "X-Amz-Date is not a valid date."))?
            .assume_utc();
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
    let Some(url) = cx.uri().query().map(counted).transpose()?.flatten() else { return Ok(()) };
    let hash = Sha256::digest(url.signature.as_bytes());
    let granted = store
        .spend_presigned_use(&hash, url.max_uses, url.expires)
        .await
        .map_err(|e| s3_error!(e, InternalError, "cannot count the use of this presigned URL"))?;
    if granted {
        return Ok(());
    }
    let event = AuditEvent {
        at: OffsetDateTime::now_utc(),
        event: "presigned.denied".into(),
        share_id: None,
        principal,
        source_ip,
        user_agent: None,
        reason: Some(format!(
            "{} {}: the presigned URL's {} uses are spent (signature sha256 {})",
            cx.method(),
            cx.uri().path(),
            url.max_uses,
            hex::encode(&hash[..8])
        )),
    };
    if let Err(e) = meta.record_audit(&event).await {
        tracing::error!(error = %e, "cannot record a refused presigned URL");
    }
    Err(s3_error!(AccessDenied, "Access Denied"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_url_names_its_uses_signature_and_expiry() {
        assert!(counted("X-Amz-Signature=ab&X-Amz-Date=20261205T120000Z").unwrap().is_none());
        let url = counted("X-Amz-Date=20261205T120000Z&X-Amz-Expires=600&X-Latchkey-Max-Uses=3&X-Amz-Signature=ab")
            .unwrap()
            .unwrap();
        assert_eq!((url.max_uses, url.signature.as_str()), (3, "ab"));
        assert_eq!(url.expires, time::macros::datetime!(2026-12-05 12:10 UTC));
        for bad in ["X-Latchkey-Max-Uses=0", "X-Latchkey-Max-Uses=-1", "X-Latchkey-Max-Uses=lots"] {
            assert_eq!(counted(bad).err().unwrap().code().as_str(), "InvalidArgument", "{bad}");
        }
        let sigv2 = counted("Signature=ab&Expires=1800000000&X-Latchkey-Max-Uses=3").err().unwrap();
        assert_eq!(sigv2.code().as_str(), "InvalidRequest");
    }
}
