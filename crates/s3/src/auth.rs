//! Who is calling: secret lookup for signature verification, and the gate every S3 call passes.
//!
//! The envelope (`envelope.rs`) has already refused wrongly scoped and overlong requests, and
//! unsigned ones except GETs and HEADs of buckets whose policy may grant them. s3s verifies
//! signatures (SigV4 header, presigned and aws-chunked; SigV2) with the secret [`KeyAuth`]
//! returns. [`Authorizer`] then refuses what no backend can store and asks the identity service
//! whether the caller's policies and the bucket's policy allow the operation.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use latchkey_identity::{Caller, ClientConnection, Identity, Refusal, RequestNote};
use latchkey_meta::{AuditEvent, MetaStore, ObjectRecord, PresignedStore, ScanStatus, Sensitivity, Tag, VersionStore};
use latchkey_policy::{Decision, Effect, RequestContext};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{
    DeleteObjectsInput, PutBucketCorsInput, PutBucketEncryptionInput, PutBucketLifecycleConfigurationInput,
    PutBucketLoggingInput, PutBucketPolicyInput, PutBucketTaggingInput, PutObjectLegalHoldInput,
    PutObjectLockConfigurationInput, PutObjectRetentionInput, PutObjectTaggingInput, PutPublicAccessBlockInput,
};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result, s3_error};
use time::OffsetDateTime;

use crate::bucket_configs::{BucketConfigs, BucketRules, CompiledPolicy};
use crate::revoked::Revocations;
use crate::{content_md5, counted, policy_request};

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
pub(crate) fn refused(refusal: Refusal) -> S3Error {
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

/// The most an operation whose body s3s reads whole (XML: DeleteObjects, CompleteMultipartUpload,
/// bucket settings) may send. Far above what S3's own limits let such a body be (1000 keys, 10000
/// parts), so only abuse meets it.
pub const MAX_XML_BODY: usize = 20 * 1024 * 1024;

/// Refuses, from its Content-Length and before a byte is read, a whole-body operation's body
/// over [`MAX_XML_BODY`] (s3s would read up to the limit and then answer InternalError).
fn refuse_oversized_xml(cx: &S3AccessContext<'_>) -> S3Result<()> {
    if matches!(cx.s3_op().name(), "PutObject" | "UploadPart") {
        return Ok(());
    }
    let length = cx.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match length {
        Some(length) if length > MAX_XML_BODY as u64 => Err(s3_error!(
            MaxMessageLengthExceeded,
            "Your request was too big: this operation's body may be at most {MAX_XML_BODY} bytes."
        )),
        _ => Ok(()),
    }
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
#[derive(Clone)]
pub struct Authorizer {
    identity: Arc<Identity>,
    meta: Arc<dyn MetaStore>,
    versions: Arc<dyn VersionStore>,
    presigned: Arc<dyn PresignedStore>,
    revocations: Arc<Revocations>,
    configs: Arc<BucketConfigs>,
}

/// The principal recorded for a refused unsigned request.
const ANONYMOUS: &str = "anonymous";

impl Authorizer {
    pub fn new(
        identity: Arc<Identity>,
        meta: Arc<dyn MetaStore>,
        versions: Arc<dyn VersionStore>,
        presigned: Arc<dyn PresignedStore>,
        revocations: Arc<Revocations>,
        configs: Arc<BucketConfigs>,
    ) -> Self {
        Self { identity, meta, versions, presigned, revocations, configs }
    }

    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    pub(crate) fn meta(&self) -> &dyn MetaStore {
        self.meta.as_ref()
    }
}

/// The condition key naming the version a request acts on.
const VERSION_ID_KEY: &str = "s3:versionid";

/// The state of the object version a decision is about.
enum ObjectState {
    Version(Box<ObjectRecord>),
    /// The request names a version that does not exist, or a delete marker.
    NoSuchVersion,
}

/// The decision for one action on one resource under a bucket's `rules` (`None` for the
/// service): `Err` with the reason when the bucket's stored policy no longer compiles.
fn decide(
    identity: &Identity,
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
        Some(caller) => identity.authorize(caller, action, resource, context, policy),
        None => identity.authorize_anonymous(action, resource, context, policy),
    })
}

/// Why a decision refuses (never shown to the caller): the deciding statement, or that none
/// allows it; `None` when it allows.
fn refusal_reason(decision: Result<Decision, String>) -> Option<String> {
    match decision {
        Ok(decision) if decision.effect == Effect::Allow => None,
        Ok(Decision { effect: Effect::ExplicitDeny, deciding: Some(statement) }) => Some(format!(
            "explicit deny in {:?} policy {:?}, statement {}",
            statement.source,
            statement.policy_name,
            statement.sid.clone().unwrap_or_else(|| statement.index.to_string())
        )),
        Ok(_) => Some("no policy allows it".to_owned()),
        Err(why) => Some(why),
    }
}

/// A refused request, as the audit trail records it.
struct Denial<'a> {
    caller: Option<&'a Caller>,
    action: &'a str,
    resource: &'a str,
    why: String,
    source_ip: Option<String>,
}

impl Denial<'_> {
    async fn audit(self, identity: &Identity, meta: &dyn MetaStore) {
        let principal =
            self.caller.map_or_else(|| ANONYMOUS.to_owned(), |caller| caller.principal(identity.account()).arn);
        let event = AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: "policy.denied".into(),
            share_id: None,
            principal: Some(principal),
            source_ip: self.source_ip,
            user_agent: None,
            reason: Some(format!("{} on {}: {}", self.action, self.resource, self.why)),
        };
        if let Err(e) = meta.record_audit(&event).await {
            tracing::error!(error = %e, "cannot record a policy denial");
        }
    }
}

/// One caller's permission on the objects of one request, for operations that name their
/// objects in the body (DeleteObjects: AWS authorises `s3:DeleteObject` per key). The
/// Authorizer leaves it in the request's extensions; an operation without one refuses.
#[derive(Clone)]
pub struct ObjectPermission {
    authorizer: Authorizer,
    caller: Option<Caller>,
    context: Arc<RequestContext>,
    source_ip: Option<IpAddr>,
}

impl ObjectPermission {
    /// Whether `action` on `bucket/key` is allowed (with the bucket's policy and tags, and the
    /// object's tags where a policy reads them); a refusal is audited.
    pub async fn allows(&self, action: &str, bucket: &str, key: &str) -> bool {
        self.allows_on(action, bucket, key, None).await
    }

    /// [`ObjectPermission::allows`] on one version of the object (`s3:versionid`, whose state
    /// the conditions of an action on a version read); `None`: the request names none.
    pub async fn allows_on(&self, action: &str, bucket: &str, key: &str, version_id: Option<&str>) -> bool {
        let checks = [(action.to_owned(), format!("arn:aws:s3:::{bucket}/{key}"))];
        let mut context = RequestContext::clone(&self.context);
        if let Some(version_id) = version_id {
            context.insert(VERSION_ID_KEY, version_id.to_owned());
        }
        self.authorizer.judge(self.caller.as_ref(), &mut context, &checks, self.source_ip).await.is_ok()
    }

    /// The caller's ARN; `None` for an unsigned request.
    pub fn principal(&self) -> Option<String> {
        let account = self.authorizer.identity.account();
        self.caller.as_ref().map(|caller| caller.principal(account).arn)
    }

    pub fn account(&self) -> &str {
        &self.authorizer.identity.account().id
    }
}

impl Authorizer {
    /// Whether the principal recorded as `arn` (`None`: anonymous) may do `action` on
    /// `bucket/key` now, for work done later on its behalf; a refusal is audited. A principal
    /// deleted since may do nothing.
    pub async fn permits(&self, arn: Option<&str>, action: &str, bucket: &str, key: &str) -> bool {
        let caller = match arn {
            Some(arn) => match self.identity.principal_caller(arn) {
                Some(caller) => Some(caller),
                None => return false,
            },
            None => None,
        };
        let checks = [(action.to_owned(), format!("arn:aws:s3:::{bucket}/{key}"))];
        let mut context = RequestContext::new();
        self.judge(caller.as_ref(), &mut context, &checks, None).await.is_ok()
    }
}

/// The bucket an ARN from `policy_request` names (`arn:aws:s3:::bucket/key` or `...:::bucket`).
fn arn_bucket(resource: &str) -> Option<&str> {
    let rest = resource.strip_prefix("arn:aws:s3:::")?;
    Some(rest.split_once('/').map_or(rest, |(bucket, _)| bucket))
}

/// The bucket and key of an object ARN (`arn:aws:s3:::bucket/key`).
fn arn_object(resource: &str) -> Option<(&str, &str)> {
    resource.strip_prefix("arn:aws:s3:::")?.split_once('/')
}

/// Sets `{prefix}KEY` for each of `tags` in `context`; `unset` removes them again.
/// The condition key of the object version's scanned sensitivity: `None`, `Low`, `Medium`,
/// `High`; `Unscanned` until the scanner has seen it; `Unreadable` when it found nothing but
/// could not read all of it.
const OBJECT_SENSITIVITY_KEY: &str = "latchkey:ObjectSensitivity";

fn sensitivity_value(scan: &ScanStatus) -> &'static str {
    match scan.sensitivity {
        None => "Unscanned",
        Some(Sensitivity::None) if scan.partial => "Unreadable",
        Some(found) => found.as_str(),
    }
}

fn set_tags(context: &mut RequestContext, prefix: &str, tags: &[Tag]) {
    for tag in tags {
        context.insert(&format!("{prefix}{}", tag.key), tag.value.as_str());
    }
}

fn unset_tags(context: &mut RequestContext, prefix: &str, tags: &[Tag]) {
    for tag in tags {
        context.insert_multi(&format!("{prefix}{}", tag.key), Vec::<String>::new());
    }
}

/// The session token of a request: the `X-Amz-Security-Token` header or query parameter. Only
/// session keys (`ASIA...`) have one, so no other request looks for it.
fn session_token(cx: &S3AccessContext<'_>, access_key: &str) -> Option<String> {
    if !access_key.starts_with("ASIA") {
        return None;
    }
    if let Some(token) = cx.headers().get("x-amz-security-token").and_then(|v| v.to_str().ok()) {
        return Some(token.to_owned());
    }
    crate::query::get(cx.uri().query()?, "X-Amz-Security-Token").map(Cow::into_owned)
}

/// An S3 request's checks left to its operation's hook: what they judge is in the body.
#[derive(Clone)]
struct Deferred {
    caller: Option<Caller>,
    context: RequestContext,
    checks: Vec<(String, String)>,
    source_ip: Option<IpAddr>,
}

impl Authorizer {
    /// The decision on `action` on `resource` (an S3 bucket or object ARN, `*` for the service)
    /// as S3 makes it: with the bucket's policy, the bucket's tags (`aws:ResourceTag/*`) and,
    /// where a policy reads them, the object's (`s3:ExistingObjectTag/*`), each added to `context`
    /// for this decision only. `Err` with the reason when the bucket's stored policy no longer
    /// compiles or the object's tags cannot be read. For what the share service does too.
    pub async fn decision(
        &self,
        caller: Option<&Caller>,
        action: &str,
        resource: &str,
        context: &mut RequestContext,
    ) -> Result<Decision, String> {
        let rules = arn_bucket(resource).map(|bucket| self.configs.get(bucket));
        let object = match arn_object(resource) {
            Some((bucket, key)) if self.reads_object_state(caller, rules.as_deref()) => {
                self.object_state(bucket, key, action, context).await.map_err(|e| {
                    tracing::error!(error = %e, "cannot read an object's tags for a policy");
                    "the object's tags cannot be read".to_owned()
                })?
            }
            _ => None,
        };
        let object_tags = match &object {
            Some(ObjectState::Version(record)) => record.tag_set(),
            _ => Vec::new(),
        };
        let bucket_tags = rules.as_deref().map_or(&[][..], BucketRules::tags);
        set_tags(context, "aws:ResourceTag/", bucket_tags);
        set_tags(context, "s3:ExistingObjectTag/", &object_tags);
        match &object {
            Some(ObjectState::Version(record)) => {
                context.insert(OBJECT_SENSITIVITY_KEY, sensitivity_value(&record.scan))
            }
            // A version asked for that is not there (or a delete marker) is judged as one never
            // scanned: a Deny on unscanned data holds, none on sensitive data is slipped past.
            Some(ObjectState::NoSuchVersion) => context.insert(OBJECT_SENSITIVITY_KEY, "Unscanned"),
            None => {}
        }
        let decision = decide(&self.identity, caller, action, resource, context, rules.as_deref());
        unset_tags(context, "aws:ResourceTag/", bucket_tags);
        unset_tags(context, "s3:ExistingObjectTag/", &object_tags);
        context.insert_multi(OBJECT_SENSITIVITY_KEY, Vec::<String>::new());
        decision
    }

    /// The object state a decision on `action` reads: the version the request names (its
    /// `s3:versionid`) for an action on one version, else the current version.
    async fn object_state(
        &self,
        bucket: &str,
        key: &str,
        action: &str,
        context: &RequestContext,
    ) -> Result<Option<ObjectState>, latchkey_meta::MetaError> {
        let version_id = context.get(VERSION_ID_KEY).and_then(<[String]>::first);
        match version_id {
            Some(version_id) if policy_request::acts_on_version(action) => {
                let version = self.versions.get_version(bucket, key, version_id).await?;
                Ok(Some(match version {
                    Some(version) if !version.delete_marker => ObjectState::Version(Box::new(version.record)),
                    _ => ObjectState::NoSuchVersion,
                }))
            }
            _ => Ok(self.meta.get_object(bucket, key).await?.map(|record| ObjectState::Version(Box::new(record)))),
        }
    }

    /// Whether a policy that applies (the bucket's, the caller's) reads object tags, which are
    /// looked up only then.
    fn reads_object_state(&self, caller: Option<&Caller>, rules: Option<&BucketRules>) -> bool {
        rules.is_some_and(BucketRules::reads_object_state)
            || caller.is_some_and(|caller| self.identity.reads_object_state(caller))
    }

    /// Decides each (action, resource) of a request in turn (`decision`); the first refusal is
    /// audited and answered `AccessDenied`.
    pub(crate) async fn judge(
        &self,
        caller: Option<&Caller>,
        context: &mut RequestContext,
        checks: &[(String, String)],
        source_ip: Option<IpAddr>,
    ) -> S3Result<()> {
        for (action, resource) in checks {
            let decision = self.decision(caller, action, resource, context).await;
            if let Some(why) = refusal_reason(decision) {
                let source_ip = source_ip.map(|ip| ip.to_string());
                let denial = Denial { caller, action, resource, why, source_ip };
                denial.audit(&self.identity, self.meta.as_ref()).await;
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
        }
        Ok(())
    }
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
        let note = cx.extensions_mut().get::<Arc<RequestNote>>().cloned();
        if let Some(note) = &note {
            note.operation(cx.s3_op().name().to_owned());
            match cx.s3_path() {
                S3Path::Root => {}
                S3Path::Bucket { bucket } => note.target(Some(bucket), None),
                S3Path::Object { bucket, key } => note.target(Some(bucket), Some(key)),
            }
        }
        crate::sse::refuse_encryption_headers(cx.headers())?;
        refuse_oversized_xml(cx)?;
        let caller = match cx.credentials() {
            Some(credentials) => {
                let access_key = credentials.access_key.clone();
                let token = session_token(cx, &access_key);
                Some(self.identity.caller(&access_key, token.as_deref()).await.map_err(refused)?)
            }
            None => None,
        };
        if let (Some(note), Some(caller)) = (&note, &caller) {
            note.principal(&caller.principal(self.identity.account()).arn);
        }
        let client = cx.extensions_mut().get::<ClientConnection>().copied();
        let source_ip = client.map(|c| c.ip);
        // A revoked presigned URL is refused whatever the policies say.
        if let Some(caller) = &caller {
            let principal = caller.principal(self.identity.account()).arn;
            let request = (cx.method(), cx.uri());
            self.revocations.refuse_revoked(request, principal, source_ip, self.meta.as_ref()).await?;
        }
        let operation = cx.s3_op().name();
        // The query read once for every lookup below (a presigned URL's is long).
        let query = crate::query::Params::parse(cx.uri().query().unwrap_or_default());
        let mut context = policy_request::s3_context(cx, &query, client, OffsetDateTime::now_utc())?;
        let (asks_version, counted_url) = (query.has("versionId"), query.has(counted::MAX_USES_PARAM));
        drop(query);
        if let Some(caller) = &caller {
            self.identity.caller_context(caller, &mut context);
        }
        let mut checks = Vec::with_capacity(2);
        // DeleteObjects names its keys in the body: each is authorised there (ObjectPermission).
        if operation != "DeleteObjects" {
            checks.push((policy_request::action(operation, asks_version), policy_request::resource(cx.s3_path())));
        }
        if matches!(operation, "CopyObject" | "UploadPartCopy")
            && let Some(source) = policy_request::copy_source(cx)
        {
            // The source version's state is what its conditions read (a copy names no versionId
            // in its query, so the key is free).
            if let Some(version_id) = source.version_id {
                context.insert(VERSION_ID_KEY, version_id);
            }
            checks.push((source.action, source.resource));
        }
        // A write that sets a retention or a legal hold needs the permission to set it, as in AWS.
        if matches!(operation, "PutObject" | "CopyObject" | "CreateMultipartUpload") {
            let resource = policy_request::resource(cx.s3_path());
            for (header, action) in [
                ("x-amz-object-lock-mode", "s3:PutObjectRetention"),
                ("x-amz-object-lock-legal-hold", "s3:PutObjectLegalHold"),
            ] {
                if cx.headers().contains_key(header) {
                    checks.push((action.to_owned(), resource.clone()));
                }
            }
        }
        let bypass_asked = cx
            .headers()
            .get("x-amz-bypass-governance-retention")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        match operation {
            // The tags asked for are in the body (s3:RequestObjectTag/*): judged in the
            // operation's hook, once s3s has parsed it.
            "PutObjectTagging" => {
                cx.extensions_mut().insert(Deferred { caller: caller.clone(), context, checks, source_ip });
            }
            // Each key is judged by the operation (no check was collected above); a logging
            // target's keys too, once the operation itself is allowed; and a bypass of GOVERNANCE
            // retention (`s3:BypassGovernanceRetention`) when the request asks for one.
            "DeleteObjects" | "PutBucketLogging" | "DeleteObject" | "PutObjectRetention"
                if bypass_asked || matches!(operation, "DeleteObjects" | "PutBucketLogging") =>
            {
                if operation != "DeleteObjects" {
                    self.judge(caller.as_ref(), &mut context, &checks, source_ip).await?;
                }
                cx.extensions_mut().insert(ObjectPermission {
                    authorizer: self.clone(),
                    caller: caller.clone(),
                    context: Arc::new(context),
                    source_ip,
                });
            }
            _ => self.judge(caller.as_ref(), &mut context, &checks, source_ip).await?,
        }
        // A counted presigned URL spends a use only once the request is allowed.
        if counted_url {
            let principal = caller.as_ref().map(|c| c.principal(self.identity.account()).arn);
            let ip = source_ip.map(|ip| ip.to_string());
            counted::spend(cx, self.presigned.as_ref(), self.meta.as_ref(), principal, ip).await?;
        }
        if let Some(caller) = caller {
            cx.extensions_mut().insert(caller);
        }
        Ok(())
    }

    // The operations below carry an XML body s3s has read whole by now: its Content-MD5 is
    // checked before they change anything (`content_md5`).

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)
    }

    async fn put_bucket_policy(&self, req: &mut S3Request<PutBucketPolicyInput>) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)
    }

    async fn put_public_access_block(&self, req: &mut S3Request<PutPublicAccessBlockInput>) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)
    }

    async fn put_bucket_tagging(&self, req: &mut S3Request<PutBucketTaggingInput>) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)
    }

    async fn put_bucket_cors(&self, req: &mut S3Request<PutBucketCorsInput>) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)
    }

    async fn put_bucket_logging(&self, req: &mut S3Request<PutBucketLoggingInput>) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)
    }

    async fn put_bucket_encryption(&self, req: &mut S3Request<PutBucketEncryptionInput>) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: &mut S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)
    }

    async fn put_object_lock_configuration(
        &self,
        req: &mut S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)
    }

    async fn put_object_retention(&self, req: &mut S3Request<PutObjectRetentionInput>) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)
    }

    async fn put_object_legal_hold(&self, req: &mut S3Request<PutObjectLegalHoldInput>) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)
    }

    async fn put_object_tagging(&self, req: &mut S3Request<PutObjectTaggingInput>) -> S3Result<()> {
        content_md5::verify(&req.headers, &req.extensions)?;
        // `check` always leaves one; without it nothing was judged, so nothing is allowed.
        let Some(mut deferred) = req.extensions.remove::<Deferred>() else {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        let tags = req
            .input
            .tagging
            .tag_set
            .iter()
            .map(|tag| (tag.key.clone().unwrap_or_default(), tag.value.clone().unwrap_or_default()));
        policy_request::insert_request_tags(&mut deferred.context, tags.collect())?;
        self.judge(deferred.caller.as_ref(), &mut deferred.context, &deferred.checks, deferred.source_ip).await
    }
}
