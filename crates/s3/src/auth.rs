//! Who is calling: secret lookup for signature verification, and the gate every S3 call passes.
//!
//! The envelope (`envelope.rs`) has already refused anonymous, wrongly scoped and overlong
//! requests. s3s verifies signatures (SigV4 header, presigned and aws-chunked; SigV2) with the
//! secret [`KeyAuth`] returns. [`Authorizer`] then refuses what no backend can store.
//! Per-principal policies will plug in here.

use std::sync::Arc;

use latchkey_meta::MetaStore;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use subtle::ConstantTimeEq;

/// The root access key pair, which exists outside the metadata store so that a fresh server
/// can be administered.
#[derive(Clone)]
pub struct RootCredentials {
    pub access_key_id: String,
    pub secret_key: String,
}

impl std::fmt::Debug for RootCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

#[derive(Clone)]
pub struct KeyAuth {
    root: RootCredentials,
    meta: Arc<dyn MetaStore>,
}

impl KeyAuth {
    pub fn new(root: RootCredentials, meta: Arc<dyn MetaStore>) -> Self {
        Self { root, meta }
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if bool::from(access_key.as_bytes().ct_eq(self.root.access_key_id.as_bytes())) {
            return Ok(SecretKey::from(self.root.secret_key.as_str()));
        }
        match self.meta.get_access_key(access_key).await {
            Ok(Some(key)) => Ok(SecretKey::from(key.secret_key)),
            Ok(None) => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
            Err(e) => {
                tracing::error!(error = %e, "access key lookup failed");
                Err(s3_error!(InternalError))
            }
        }
    }
}

/// Whether the request names a key, prefix, marker or copy source containing U+0000, which no
/// metadata backend can store as text (PostgreSQL refuses it), so no backend accepts it.
fn carries_nul(cx: &S3AccessContext<'_>) -> bool {
    let encoded = |s: &str| s.contains("%00");
    let key_has_nul = matches!(cx.s3_path(), s3s::path::S3Path::Object { key, .. } if key.contains('\0'));
    key_has_nul
        || encoded(cx.uri().path())
        || cx.uri().query().is_some_and(encoded)
        || cx.headers().get("x-amz-copy-source").and_then(|v| v.to_str().ok()).is_some_and(encoded)
}

/// S3's bucket naming rules, plus `-`: the reserved first path segment of Latchkey's own
/// endpoints, admitted so that s3s parses `/-/shares` and hands it to its custom route after
/// checking the signature. No bucket can be named `-` (CreateBucket refuses it).
pub struct BucketNames;

/// The reserved path segment.
pub const RESERVED_SEGMENT: &str = "-";

impl s3s::validation::NameValidation for BucketNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        name == RESERVED_SEGMENT || s3s::validation::AwsNameValidation::new().validate_bucket_name(name)
    }
}

/// The gate in front of every S3 operation.
pub struct Authorizer;

#[async_trait::async_trait]
impl S3Access for Authorizer {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        if carries_nul(cx) {
            return Err(s3_error!(
                InvalidArgument,
                "Object keys, prefixes and markers cannot contain the NUL character"
            ));
        }
        crate::sse::refuse_encryption_headers(cx.headers())
    }
}
