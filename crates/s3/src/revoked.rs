//! Revoked presigned URLs, in memory: what the Authorizer refuses without a store read.
//!
//! `latchkey presign revoke URL` refuses one URL (by the SHA-256 of its signature; the signature
//! itself is never stored) and `latchkey presign revoke --signed-by KEY --before TIME` every URL
//! that key signed before that time. [`Revocations`] holds every revocation in force, reloaded
//! whole when the store announces one (this process's at once, other replicas' through
//! PostgreSQL `LISTEN latchkey_presigned`). While there is none, a request costs one read lock
//! and a check; otherwise only presigned requests are read.
//!
//! A SigV2 URL says only when it expires, not when it was signed: it counts as signed the
//! longest lifetime the server allows (`max_presigned_expiry_secs`) before its expiry, so a
//! `--before` revocation refuses every SigV2 URL of the key that may have been signed earlier.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use latchkey_meta::{MetaError, PresignedStore, Revocation, Revoked};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

/// The longest lifetime S3 lets a presigned URL have: a `--before` revocation may go this long
/// after its time, when every URL it refuses has expired.
pub const MAX_PRESIGNED_LIFETIME: time::Duration = time::Duration::days(7);

/// What a presigned URL's query says about its signature.
#[derive(Debug, PartialEq, Eq)]
pub struct PresignedUrl {
    /// The signature as the query carries it, decoded (hex for SigV4, base64 for SigV2).
    pub signature: String,
    pub access_key_id: String,
    /// When it was signed: SigV4's `X-Amz-Date`; unknown for SigV2.
    pub signed: Option<OffsetDateTime>,
    /// When it stops working.
    pub expires: OffsetDateTime,
}

impl PresignedUrl {
    /// The presigned URL a query string makes, if it is one (SigV4 or SigV2, names decoded as
    /// the signature check reads them). SigV4 lifetimes count at most seven days.
    pub fn parse(query: &str) -> Option<PresignedUrl> {
        let q: HashMap<_, _> = crate::query::params(query).map(|(name, value)| (name, value.decode())).collect();
        if let (Some(signature), Some(credential)) = (q.get("X-Amz-Signature"), q.get("X-Amz-Credential")) {
            let signed = amz_date(q.get("X-Amz-Date")?)?;
            let lifetime =
                q.get("X-Amz-Expires")?.parse::<i64>().ok()?.clamp(0, MAX_PRESIGNED_LIFETIME.whole_seconds());
            return Some(PresignedUrl {
                signature: signature.clone().into_owned(),
                access_key_id: credential.split('/').next()?.to_owned(),
                signed: Some(signed),
                expires: signed + time::Duration::seconds(lifetime),
            });
        }
        let (signature, key, expires) = (q.get("Signature")?, q.get("AWSAccessKeyId")?, q.get("Expires")?);
        Some(PresignedUrl {
            signature: signature.clone().into_owned(),
            access_key_id: key.clone().into_owned(),
            signed: None,
            expires: OffsetDateTime::from_unix_timestamp(expires.parse().ok()?).ok()?,
        })
    }

    /// The SHA-256 of the access key id, a newline and the signature: all that a revocation
    /// keeps of a URL. The key id is in it because the signature check vouches for the pair: a
    /// revocation naming another key beside the same signature refuses nothing.
    pub fn signature_hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.access_key_id.as_bytes());
        hasher.update(b"\n");
        hasher.update(self.signature.as_bytes());
        hasher.finalize().into()
    }
}

/// A SigV4 `X-Amz-Date` (`20261205T120000Z`).
pub fn amz_date(value: &str) -> Option<OffsetDateTime> {
    time::PrimitiveDateTime::parse(value, format_description!("[year][month][day]T[hour][minute][second]Z"))
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

#[derive(Default)]
struct Snapshot {
    generation: i64,
    signatures: HashSet<[u8; 32]>,
    /// Per access key, the latest `--before` time.
    signed_before: HashMap<String, OffsetDateTime>,
}

impl Snapshot {
    fn is_empty(&self) -> bool {
        self.signatures.is_empty() && self.signed_before.is_empty()
    }
}

pub struct Revocations {
    store: Arc<dyn PresignedStore>,
    /// How long before its expiry a SigV2 URL counts as signed.
    sigv2_lifetime: time::Duration,
    current: RwLock<Arc<Snapshot>>,
}

impl Revocations {
    /// Loads every revocation in force; `max_presigned_expiry` is the longest lifetime the
    /// server grants a presigned URL.
    pub async fn open(
        store: Arc<dyn PresignedStore>,
        max_presigned_expiry: Duration,
    ) -> Result<Arc<Revocations>, MetaError> {
        let sigv2_lifetime = time::Duration::try_from(max_presigned_expiry).unwrap_or(MAX_PRESIGNED_LIFETIME);
        let revocations =
            Arc::new(Revocations { store, sigv2_lifetime, current: RwLock::new(Arc::new(Snapshot::default())) });
        revocations.reload().await?;
        Ok(revocations)
    }

    /// Records `revocation` and reloads, so that it applies to this process's next request
    /// (other replicas reload when PostgreSQL tells them).
    pub async fn revoke(&self, revocation: &Revocation) -> Result<(), MetaError> {
        self.store.revoke_presigned(revocation).await?;
        self.reload().await
    }

    /// Reads the store and replaces the snapshot (unless a newer one is in place already).
    pub async fn reload(&self) -> Result<(), MetaError> {
        let loaded = self.store.load_presigned_revocations().await?;
        let mut built = Snapshot { generation: loaded.generation, ..Snapshot::default() };
        for revoked in loaded.revoked {
            match revoked {
                Revoked::Signature(hash) => {
                    if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                        built.signatures.insert(hash);
                    }
                }
                Revoked::SignedBy { access_key_id, before } => {
                    let latest = built.signed_before.entry(access_key_id).or_insert(before);
                    *latest = (*latest).max(before);
                }
            }
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if built.generation >= current.generation {
            *current = Arc::new(built);
        }
        Ok(())
    }

    /// Keeps the snapshot current until `shutdown` resolves.
    pub async fn maintain(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let changes = self.store.revocation_changes();
        crate::bucket_configs::follow_changes(changes, shutdown, || async {
            if let Err(e) = self.reload().await {
                tracing::error!(error = %e, "cannot reload presigned-URL revocations");
            }
        })
        .await;
    }

    /// Refuses a request (`403 AccessDenied`, audited as `presigned.denied` for `principal`) whose
    /// presigned URL is revoked; every S3 operation and signed API asks, once the signature is
    /// verified.
    pub async fn refuse_revoked(
        &self,
        (method, uri): (&http::Method, &http::Uri),
        principal: String,
        source_ip: Option<std::net::IpAddr>,
        meta: &dyn latchkey_meta::MetaStore,
    ) -> s3s::S3Result<()> {
        let Some(reason) = uri.query().and_then(|q| self.refusal(q)) else { return Ok(()) };
        let reason = format!("{method} {}: {reason}", uri.path());
        crate::counted::audit_refusal(meta, Some(principal), source_ip.map(|ip| ip.to_string()), reason).await;
        Err(s3s::s3_error!(AccessDenied, "Access Denied"))
    }

    /// Refuses a signed POST form (PostObject) to `bucket` as a presigned URL is refused: its
    /// signature revoked, or signed by a key revoked `--before` its `x-amz-date` (a SigV2 form
    /// counts as signed the longest lifetime before it expires).
    pub async fn refuse_revoked_form(
        &self,
        form: &PresignedUrl,
        bucket: &str,
        principal: String,
        source_ip: Option<std::net::IpAddr>,
        meta: &dyn latchkey_meta::MetaStore,
    ) -> s3s::S3Result<()> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(reason) = self.refusal_of(&current, form) else { return Ok(()) };
        let reason = format!("POST /{bucket} (form): {reason}");
        crate::counted::audit_refusal(meta, Some(principal), source_ip.map(|ip| ip.to_string()), reason).await;
        Err(s3s::s3_error!(AccessDenied, "Access Denied"))
    }

    /// Why the presigned URL in `query` is refused, if it is revoked (`None` for any other
    /// request).
    fn refusal(&self, query: &str) -> Option<String> {
        // The common case, no revocation in force, reads the snapshot without sharing it.
        let current = {
            let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
            if guard.is_empty() || !(query.contains("Signature") || query.contains('%')) {
                return None;
            }
            guard.clone()
        };
        self.refusal_of(&current, &PresignedUrl::parse(query)?)
    }

    fn refusal_of(&self, current: &Snapshot, url: &PresignedUrl) -> Option<String> {
        let hash = url.signature_hash();
        if current.signatures.contains(&hash) {
            return Some(format!("the presigned URL is revoked (signature sha256 {})", hex::encode(&hash[..8])));
        }
        let before = current.signed_before.get(&url.access_key_id)?;
        let signed = url.signed.unwrap_or(url.expires - self.sigv2_lifetime);
        (signed < *before)
            .then(|| format!("presigned URLs signed by {} before {before} are revoked", url.access_key_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SIGV4: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAUSER%2F20261205%2Fus-east-1%2Fs3%2Faws4_request\
        &X-Amz-Date=20261205T120000Z&X-Amz-Expires=600&X-Amz-SignedHeaders=host&X-Amz-Signature=abcd";

    #[test]
    fn a_presigned_query_names_its_key_signature_and_times() {
        let url = PresignedUrl::parse(SIGV4).unwrap();
        assert_eq!((url.access_key_id.as_str(), url.signature.as_str()), ("AKIAUSER", "abcd"));
        assert_eq!(url.signed, Some(datetime!(2026-12-05 12:00 UTC)));
        assert_eq!(url.expires, datetime!(2026-12-05 12:10 UTC));
        let sigv2 = PresignedUrl::parse("AWSAccessKeyId=AKIAOLD&Expires=1800000000&Signature=ab%2Bc%3D").unwrap();
        assert_eq!((sigv2.signature.as_str(), sigv2.signed), ("ab+c=", None));
        assert_eq!(sigv2.expires.unix_timestamp(), 1_800_000_000);
        // Encoded names are the same parameters to the signature check.
        let encoded = SIGV4.replace("X-Amz-Signature", "X-Amz-Signatur%65");
        assert_eq!(PresignedUrl::parse(&encoded).unwrap().signature, "abcd");
        assert_eq!(PresignedUrl::parse("X-Amz-Signature=abcd&X-Amz-Date=20261205T120000Z"), None, "no credential");
        assert_eq!(PresignedUrl::parse("list-type=2&prefix=a"), None);
    }
}
