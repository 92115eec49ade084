//! Who is calling: secret lookup for signature verification, and the gate every S3 call passes.
//!
//! The envelope (`envelope.rs`) has already refused anonymous, wrongly scoped and overlong
//! requests. s3s verifies signatures (SigV4 header, presigned and aws-chunked; SigV2) with the
//! secret [`KeyAuth`] returns. [`Authorizer`] then refuses what no backend can store and asks the
//! identity service whether the caller's policies allow the operation.

use std::sync::Arc;

use latchkey_identity::{Caller, Identity, Refusal};
use latchkey_meta::{AuditEvent, MetaStore};
use latchkey_policy::Effect;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use time::OffsetDateTime;

use crate::policy_request;

/// Secrets for signature verification: the root key, IAM users' active keys and STS sessions'.
#[derive(Clone)]
pub struct KeyAuth {
    identity: Arc<Identity>,
}

impl KeyAuth {
    pub fn new(identity: Arc<Identity>) -> Self {
        Self { identity }
    }
}

/// The S3 error for refused credentials, worded as AWS words them.
fn refused(refusal: Refusal) -> S3Error {
    match refusal {
        Refusal::UnknownKey => {
            s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.")
        }
        Refusal::Expired => bad_token("ExpiredToken", "The provided token has expired."),
        Refusal::BadToken => bad_token("InvalidToken", "The provided token is malformed or otherwise invalid."),
    }
}

/// S3 answers a refused session token with 400 and its own code (s3s has no variant for them).
fn bad_token(code: &'static str, message: &'static str) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), message);
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.identity.secret(access_key, "s3").await {
            Ok(secret) => Ok(SecretKey::from(secret.as_str())),
            Err(refusal) => Err(refused(refusal)),
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

/// The gate in front of every S3 operation: refuses what no backend can store, then asks the
/// identity service whether the caller may do it, with the S3 condition keys of the request.
/// The caller is left in the request's extensions for operations that check more (copy sources,
/// the share API).
pub struct Authorizer {
    identity: Arc<Identity>,
    meta: Arc<dyn MetaStore>,
}

impl Authorizer {
    pub fn new(identity: Arc<Identity>, meta: Arc<dyn MetaStore>) -> Self {
        Self { identity, meta }
    }

    /// Refuses with S3's `AccessDenied`, recording why (never shown to the caller).
    async fn deny(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        why: String,
        source_ip: Option<String>,
    ) -> S3Error {
        let principal = caller.principal(self.identity.account()).arn;
        let event = AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: "policy.denied".into(),
            share_id: None,
            principal: Some(principal),
            source_ip,
            user_agent: None,
            reason: Some(format!("{action} on {resource}: {why}")),
        };
        if let Err(e) = self.meta.record_audit(&event).await {
            tracing::error!(error = %e, "cannot record a policy denial");
        }
        s3_error!(AccessDenied, "Access Denied")
    }
}

/// The address of the client that sent the request, which the listener puts in each request's
/// extensions (`aws:SourceIp`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub std::net::IpAddr);

/// The session token of a request: the `X-Amz-Security-Token` header or query parameter.
fn session_token(cx: &S3AccessContext<'_>) -> Option<String> {
    if let Some(token) = cx.headers().get("x-amz-security-token").and_then(|v| v.to_str().ok()) {
        return Some(token.to_owned());
    }
    let query = cx.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("X-Amz-Security-Token"))
        .map(|(_, v)| v.into_owned())
}

#[async_trait::async_trait]
impl S3Access for Authorizer {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        let access_key = credentials.access_key.clone();
        if carries_nul(cx) {
            return Err(s3_error!(
                InvalidArgument,
                "Object keys, prefixes and markers cannot contain the NUL character"
            ));
        }
        crate::sse::refuse_encryption_headers(cx.headers())?;
        let caller = self.identity.caller(&access_key, session_token(cx).as_deref()).await.map_err(refused)?;
        let source_ip = cx.extensions_mut().get::<ClientAddress>().map(|address| address.0);
        let operation = cx.s3_op().name();
        let mut context = policy_request::s3_context(cx, source_ip, OffsetDateTime::now_utc());
        self.identity.caller_context(&caller, &mut context);
        let mut checks = vec![(policy_request::action(operation), policy_request::resource(cx.s3_path()))];
        if matches!(operation, "CopyObject" | "UploadPartCopy")
            && let Some(source) = policy_request::copy_source(cx)
        {
            checks.push(("s3:GetObject".to_owned(), source));
        }
        for (action, resource) in checks {
            let decision = self.identity.authorize(&caller, &action, &resource, &context, None);
            if decision.effect != Effect::Allow {
                let why = match (&decision.effect, &decision.deciding) {
                    (Effect::ExplicitDeny, Some(statement)) => format!(
                        "explicit deny in {:?} policy {:?}, statement {}",
                        statement.source,
                        statement.policy_name,
                        statement.sid.clone().unwrap_or_else(|| statement.index.to_string())
                    ),
                    _ => "no policy allows it".to_owned(),
                };
                return Err(self.deny(&caller, &action, &resource, why, source_ip.map(|ip| ip.to_string())).await);
            }
        }
        cx.extensions_mut().insert(caller);
        Ok(())
    }
}
