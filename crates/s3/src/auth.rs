//! Who is calling: secret lookup for signature verification, and the gate every S3 call passes.
//!
//! The envelope (`envelope.rs`) has already refused wrongly scoped and overlong requests, and
//! unsigned ones except GETs and HEADs of buckets whose policy may grant them. s3s verifies
//! signatures (SigV4 header, presigned and aws-chunked; SigV2) with the secret [`KeyAuth`]
//! returns. [`Authorizer`] then refuses what no backend can store and asks the identity service
//! whether the caller's policies and the bucket's policy allow the operation.

use std::sync::Arc;

use latchkey_identity::{Caller, Identity, Refusal};
use latchkey_meta::{AuditEvent, MetaStore, Tag};
use latchkey_policy::{Decision, Effect, RequestContext};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use time::OffsetDateTime;

use crate::bucket_configs::{BucketConfigs, BucketRules, CompiledPolicy};
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
/// identity service whether the caller may do it, with the S3 condition keys of the request, the
/// bucket's tags (`aws:ResourceTag/KEY`) and the bucket's policy. An unsigned request is decided
/// here too, as the anonymous principal: only a bucket policy granting to everyone can allow it.
/// The caller is left in the request's extensions for operations that check more (copy sources,
/// the share API).
pub struct Authorizer {
    identity: Arc<Identity>,
    meta: Arc<dyn MetaStore>,
    configs: Arc<BucketConfigs>,
}

/// The principal recorded for a refused unsigned request.
const ANONYMOUS: &str = "anonymous";

impl Authorizer {
    pub fn new(identity: Arc<Identity>, meta: Arc<dyn MetaStore>, configs: Arc<BucketConfigs>) -> Self {
        Self { identity, meta, configs }
    }

    /// Refuses with S3's `AccessDenied`, recording why (never shown to the caller).
    async fn deny(
        &self,
        principal: String,
        action: &str,
        resource: &str,
        why: String,
        source_ip: Option<String>,
    ) -> S3Error {
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

    /// The decision for one action on one resource of `bucket` (`None` for the service).
    fn decide(
        &self,
        caller: Option<&Caller>,
        action: &str,
        resource: &str,
        context: &RequestContext,
        rules: Option<&BucketRules>,
    ) -> Result<Decision, String> {
        if let Some(rules) = rules
            && matches!(rules.policy, CompiledPolicy::Broken)
            && !matches!(action, "s3:PutBucketPolicy" | "s3:DeleteBucketPolicy")
        {
            return Err("the bucket's stored policy does not compile".to_owned());
        }
        let policy = rules.and_then(|r| r.policy_for(caller.is_none()));
        Ok(match caller {
            Some(caller) => self.identity.authorize(caller, action, resource, context, policy),
            None => self.identity.authorize_anonymous(action, resource, context, policy),
        })
    }
}

/// The bucket an ARN from `policy_request` names (`arn:aws:s3:::bucket/key` or `...:::bucket`).
fn arn_bucket(resource: &str) -> Option<&str> {
    let rest = resource.strip_prefix("arn:aws:s3:::")?;
    Some(rest.split_once('/').map_or(rest, |(bucket, _)| bucket))
}

/// Replaces the `aws:ResourceTag/KEY` keys of `previous` tags with those of `tags`.
fn set_resource_tags(context: &mut RequestContext, previous: &[Tag], tags: &[Tag]) {
    for tag in previous {
        context.insert_multi(&format!("aws:ResourceTag/{}", tag.key), Vec::<String>::new());
    }
    for tag in tags {
        context.insert(&format!("aws:ResourceTag/{}", tag.key), tag.value.as_str());
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
        if carries_nul(cx) {
            return Err(s3_error!(
                InvalidArgument,
                "Object keys, prefixes and markers cannot contain the NUL character"
            ));
        }
        crate::sse::refuse_encryption_headers(cx.headers())?;
        let caller = match cx.credentials() {
            Some(credentials) => {
                let access_key = credentials.access_key.clone();
                Some(self.identity.caller(&access_key, session_token(cx).as_deref()).await.map_err(refused)?)
            }
            None => None,
        };
        let source_ip = cx.extensions_mut().get::<ClientAddress>().map(|address| address.0);
        let operation = cx.s3_op().name();
        let mut context = policy_request::s3_context(cx, source_ip, OffsetDateTime::now_utc());
        if let Some(caller) = &caller {
            self.identity.caller_context(caller, &mut context);
        }
        let mut checks = vec![(policy_request::action(operation), policy_request::resource(cx.s3_path()))];
        if matches!(operation, "CopyObject" | "UploadPartCopy")
            && let Some(source) = policy_request::copy_source(cx)
        {
            checks.push(("s3:GetObject".to_owned(), source));
        }
        // The bucket whose tags the context holds (the copy source's bucket may differ).
        let mut previous: Option<Arc<BucketRules>> = None;
        for (action, resource) in &checks {
            let rules = arn_bucket(resource).map(|bucket| self.configs.get(bucket));
            let tags = rules.as_deref().map_or(&[][..], BucketRules::tags);
            set_resource_tags(&mut context, previous.as_deref().map_or(&[][..], BucketRules::tags), tags);
            let decision = self.decide(caller.as_ref(), action, resource, &context, rules.as_deref());
            let why = match decision {
                Ok(decision) if decision.effect == Effect::Allow => None,
                Ok(Decision { effect: Effect::ExplicitDeny, deciding: Some(statement) }) => Some(format!(
                    "explicit deny in {:?} policy {:?}, statement {}",
                    statement.source,
                    statement.policy_name,
                    statement.sid.clone().unwrap_or_else(|| statement.index.to_string())
                )),
                Ok(_) => Some("no policy allows it".to_owned()),
                Err(why) => Some(why),
            };
            if let Some(why) = why {
                let principal = caller
                    .as_ref()
                    .map_or_else(|| ANONYMOUS.to_owned(), |caller| caller.principal(self.identity.account()).arn);
                return Err(self.deny(principal, action, resource, why, source_ip.map(|ip| ip.to_string())).await);
            }
            previous = rules;
        }
        if let Some(caller) = caller {
            cx.extensions_mut().insert(caller);
        }
        Ok(())
    }
}
