//! PostObject: browser form uploads (`POST /BUCKET` as `multipart/form-data`), streamed.
//!
//! The fields before `file` are read (`form.rs`: at most [`form::MAX_FIELDS_BYTES`] together),
//! the policy's signature checked in constant time (SigV4 `x-amz-signature`, or SigV2
//! `signature` where SigV2 is on; a form without either is the anonymous principal's), the
//! policy's expiration, lifetime and conditions checked (`policy.rs`: every field must be named
//! by one), a signed form refused once revoked, as a presigned URL is, and the caller authorised
//! for `s3:PutObject` on the key with `${filename}` replaced by the file's name; only then is the
//! file part read, streamed into the object service within the policy's `content-length-range`
//! (a file outside it is refused before anything is committed).

mod form;
mod policy;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderValue, Response, StatusCode, header};
use latchkey_identity::{Caller, ClientConnection, RequestNote, sigv4};
use latchkey_object::{ObjectAttributes, ObjectService};
use latchkey_policy::RequestContext;
use latchkey_storage::WriteLimits;
use quick_xml::escape::escape;
use s3s::post_policy::PostPolicy;
use s3s::{Body, S3Error, S3Result, s3_error};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::error::OrS3;
use crate::revoked::{PresignedUrl, Revocations};
use crate::{Authorizer, SigningRules};
use form::{BodyError, Fields};

/// Who signed a form, with what (a form without a signature is the anonymous principal's).
struct Signed<'f> {
    access_key: &'f str,
    signature: &'f str,
    /// SigV4's `x-amz-date`; SigV2 forms carry no date.
    signed_at: Option<OffsetDateTime>,
    /// `s3:signatureversion`.
    version: &'static str,
}

/// What a form upload stores, and where, once it is allowed.
struct Plan<'f> {
    key: String,
    attrs: ObjectAttributes,
    /// The file's length bounds (`content-length-range`).
    min: u64,
    max: u64,
    redirect: Option<&'f str>,
    /// The access key whose signature the form carries, if any.
    signer: Option<&'f str>,
}

/// The guard's per-access-key rate, for forms: their key is in the body, which the guard does
/// not read (it has charged the sender's address before the form was read).
pub trait KeyRate: Send + Sync {
    /// Counts one request signed by `access_key`; `false` when that key is over its rate.
    fn admit(&self, access_key: &str) -> bool;
}

/// PostObject's services and the server's signing rules (region, SigV2, the longest lifetime a
/// signed policy may have, which is a presigned URL's).
pub struct PostUploads {
    objects: Arc<ObjectService>,
    authorizer: Authorizer,
    revocations: Arc<Revocations>,
    rules: SigningRules,
}

/// One form upload's request, as the router hands it over.
pub struct PostRequest<'a, S> {
    /// The bucket as the path (or the Host) spells it.
    pub bucket: &'a str,
    pub content_type: &'a str,
    pub body: S,
    pub client: Option<ClientConnection>,
    pub user_agent: Option<&'a str>,
    pub note: Option<&'a RequestNote>,
    /// The URL this server is reached at (`public_url`, or the connection's scheme and
    /// address), for the PostResponse's absolute `Location`.
    pub public_base: &'a str,
    pub key_rate: Option<&'a dyn KeyRate>,
}

impl PostUploads {
    pub fn new(
        objects: Arc<ObjectService>,
        authorizer: Authorizer,
        revocations: Arc<Revocations>,
        rules: SigningRules,
    ) -> Self {
        Self { objects, authorizer, revocations, rules }
    }

    /// Serves one form upload.
    pub async fn handle<S, E>(&self, req: PostRequest<'_, S>) -> S3Result<Response<Body>>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BodyError> + 'static,
    {
        let bucket = percent_encoding::percent_decode_str(req.bucket)
            .decode_utf8()
            .map_err(|_| s3_error!(InvalidBucketName, "The specified bucket is not valid."))?;
        if let Some(note) = req.note {
            note.operation("PostObject");
            note.target(Some(&bucket), None);
        }
        let boundary = multer::parse_boundary(req.content_type).map_err(|_| {
            s3_error!(MalformedPOSTRequest, "The body of your POST request is not well-formed multipart/form-data.")
        })?;
        let reached_file = Arc::new(AtomicBool::new(false));
        let mut form = multer::Multipart::new(form::capped_until_file(req.body, reached_file.clone()), boundary);
        let (fields, mut file) = form::read_fields(&mut form).await?;
        reached_file.store(true, Ordering::Relaxed);
        let plan = match self.plan(&fields, &file, &bucket, req.note, req.client, req.user_agent).await {
            Ok(plan) if plan.signer.zip(req.key_rate).is_some_and(|(key, rate)| !rate.admit(key)) => {
                form::drain(&mut file).await;
                return Err(s3_error!(SlowDown, "Please reduce your request rate."));
            }
            Ok(plan) => plan,
            Err(e) => {
                form::drain(&mut file).await;
                return Err(e);
            }
        };
        let body = file.map(|chunk| chunk.map_err(|e| BodyError::from(form::malformed(e))));
        let limits = WriteLimits { max_size: Some(plan.max), ..Default::default() };
        let record = self.objects.put(&bucket, &plan.key, form::at_least(body, plan.min), limits, plan.attrs).await;
        let record = record.or_s3()?;
        let version_id = crate::object::shown_version_id(&record);
        let stored = Stored { public_base: req.public_base, bucket: &bucket, key: &plan.key, etag: &record.etag };
        Ok(success(&fields, plan.redirect, &stored, version_id))
    }

    /// Everything decided before the file is read: the form's fields, signature, policy and
    /// permission, and what it would store where.
    async fn plan<'f>(
        &self,
        fields: &'f Fields,
        file: &multer::Field<'static>,
        bucket: &str,
        note: Option<&RequestNote>,
        client: Option<ClientConnection>,
        user_agent: Option<&str>,
    ) -> S3Result<Plan<'f>> {
        fields.refuse_unsupported()?;
        let redirect = redirect(fields)?;
        let now = OffsetDateTime::now_utc();
        let mut signed = self.verify_signature(fields).await?;
        if let (Some(note), Some(signed)) = (note, &signed) {
            note.form_signer(signed.access_key);
        }
        let policy = match (fields.get("policy"), &signed) {
            (Some(encoded), _) => Some(policy::checked(encoded, fields, bucket, now)?),
            (None, None) => None,
            (None, Some(_)) => {
                return Err(s3_error!(InvalidArgument, "Bucket POST must contain a field named 'policy'."));
            }
        };
        if let (Some(signed), Some(policy)) = (&mut signed, &policy) {
            signed.signed_at = signed.signed_at.map(|at| policy::vouched_signing_time(policy, fields, at));
        }
        let filename = file.file_name().unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default();
        let key = fields
            .get("key")
            .ok_or_else(|| s3_error!(InvalidArgument, "Bucket POST must contain a field named 'key'."))?
            .replace("${filename}", filename);
        if key.is_empty() || key.len() > 1024 || key.contains('\0') {
            return Err(s3_error!(InvalidArgument, "The key must be 1 to 1024 bytes without NUL."));
        }
        if let Some(note) = note {
            note.target(Some(bucket), Some(&key));
        }
        let caller = match &signed {
            Some(signed) => Some(self.caller(signed, fields, policy.as_ref(), bucket, client, now).await?),
            None => None,
        };
        if let (Some(note), Some(caller)) = (note, &caller) {
            note.principal(&caller.principal(self.authorizer.identity().account()).arn);
        }
        let context = self.context(caller.as_ref(), signed.as_ref(), client, user_agent, now);
        self.authorize(caller.as_ref(), context, bucket, &key, client).await?;
        let attrs = form::form_attributes(fields, file.content_type().map(ToString::to_string))?;
        let (min, max) = policy::length_range(policy.as_ref());
        let signer = signed.as_ref().map(|signed| signed.access_key);
        Ok(Plan { key, attrs, min, max, redirect, signer })
    }

    /// Checks the form's signature over its policy in constant time; `None` when it carries none.
    async fn verify_signature<'f>(&self, fields: &'f Fields) -> S3Result<Option<Signed<'f>>> {
        let policy = fields.get("policy").unwrap_or_default();
        if let Some(signature) = fields.get("x-amz-signature") {
            if fields.get("x-amz-algorithm") != Some("AWS4-HMAC-SHA256") {
                return Err(s3_error!(InvalidArgument, "The form field x-amz-algorithm must be AWS4-HMAC-SHA256."));
            }
            let credential = fields
                .get("x-amz-credential")
                .ok_or_else(|| s3_error!(InvalidArgument, "The form field x-amz-credential is missing."))?;
            let mut parts = credential.split('/');
            let (Some(access_key), Some(day), Some(region), Some("s3"), Some("aws4_request"), None) =
                (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(s3_error!(InvalidArgument, "The form field x-amz-credential is malformed."));
            };
            if region != self.rules.region {
                return Err(s3_error!(
                    AuthorizationQueryParametersError,
                    "The credential is scoped to region {region:?}; this server's region is {:?}.",
                    self.rules.region
                ));
            }
            let date = fields.get("x-amz-date").unwrap_or_default();
            let signed_at = crate::revoked::amz_date(date).filter(|_| date.get(..8) == Some(day)).ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "The form field x-amz-date must be the credential's day, as YYYYMMDDTHHMMSSZ."
                )
            })?;
            let secret = self.authorizer.identity().secret(access_key, "s3").await.map_err(crate::auth::refused)?;
            let key = sigv4::signing_key(secret.as_str(), day, region, "s3");
            let expected = sigv4::sign(&key, policy.as_bytes());
            if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
                return Err(signature_does_not_match());
            }
            return Ok(Some(Signed { access_key, signature, signed_at: Some(signed_at), version: "AWS4-HMAC-SHA256" }));
        }
        if let Some(signature) = fields.get("signature") {
            if !self.rules.sigv2 {
                return Err(s3_error!(
                    AccessDenied,
                    "Signature Version 2 is not accepted by this server; sign with SigV4."
                ));
            }
            let access_key = fields
                .get("awsaccesskeyid")
                .ok_or_else(|| s3_error!(InvalidArgument, "The form field AWSAccessKeyId is missing."))?;
            let secret = self.authorizer.identity().secret(access_key, "s3").await.map_err(crate::auth::refused)?;
            let expected = crate::sigv2::signature(secret.as_str(), policy);
            if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
                return Err(signature_does_not_match());
            }
            return Ok(Some(Signed { access_key, signature, signed_at: None, version: "AWS" }));
        }
        Ok(None)
    }

    /// The principal behind a signed form (with its session token, for temporary credentials),
    /// once the form is known to be within its lifetime and not revoked: a signed policy is a
    /// credential like a presigned URL, and `latchkey presign revoke --signed-by` refuses it too.
    async fn caller(
        &self,
        signed: &Signed<'_>,
        fields: &Fields,
        policy: Option<&PostPolicy>,
        bucket: &str,
        client: Option<ClientConnection>,
        now: OffsetDateTime,
    ) -> S3Result<Caller> {
        let policy =
            policy.ok_or_else(|| s3_error!(InvalidArgument, "Bucket POST must contain a field named 'policy'."))?;
        policy::check_lifetime(policy, signed.signed_at, now, self.rules.max_presigned_expiry)?;
        let token = fields.get("x-amz-security-token");
        let identity = self.authorizer.identity();
        let caller = identity.caller(signed.access_key, token).await.map_err(crate::auth::refused)?;
        let form = PresignedUrl {
            signature: signed.signature.to_owned(),
            access_key_id: signed.access_key.to_owned(),
            signed: signed.signed_at,
            expires: policy::expiration(policy),
        };
        let principal = caller.principal(identity.account()).arn;
        let meta = self.authorizer.meta();
        self.revocations.refuse_revoked_form(&form, bucket, principal, client.map(|c| c.ip), meta).await?;
        Ok(caller)
    }

    /// The condition keys of a form upload, as a PutObject's would be.
    fn context(
        &self,
        caller: Option<&Caller>,
        signed: Option<&Signed<'_>>,
        client: Option<ClientConnection>,
        user_agent: Option<&str>,
        now: OffsetDateTime,
    ) -> RequestContext {
        let mut context = RequestContext::new();
        context.insert("s3:authType", "POST");
        if let Some(signed) = signed {
            context.insert("s3:signatureversion", signed.version);
            if let Some(at) = signed.signed_at {
                context.insert("s3:signatureAge", (now - at).whole_milliseconds().max(0).to_string());
            }
        }
        if let Some(client) = client {
            client.insert_keys(&mut context);
        }
        if let Some(agent) = user_agent {
            context.insert("aws:UserAgent", agent);
        }
        if let Some(caller) = caller {
            self.authorizer.identity().caller_context(caller, &mut context);
        }
        context
    }

    /// `s3:PutObject` on the key, decided as any S3 request's is (audited when refused).
    async fn authorize(
        &self,
        caller: Option<&Caller>,
        mut context: RequestContext,
        bucket: &str,
        key: &str,
        client: Option<ClientConnection>,
    ) -> S3Result<()> {
        let checks = [("s3:PutObject".to_owned(), format!("arn:aws:s3:::{bucket}/{key}"))];
        self.authorizer.judge(caller, &mut context, &checks, client.map(|c| c.ip)).await
    }
}

fn signature_does_not_match() -> S3Error {
    s3_error!(
        SignatureDoesNotMatch,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    )
}

/// Where to send the browser after the upload (`success_action_redirect`, or the older
/// `redirect`), checked before anything is stored; only an http(s) URL is followed, as S3 does.
fn redirect(fields: &Fields) -> S3Result<Option<&str>> {
    let Some(url) = fields.get("success_action_redirect").or_else(|| fields.get("redirect")) else { return Ok(None) };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Ok(None);
    }
    match HeaderValue::try_from(url) {
        Ok(_) if !url.chars().any(char::is_control) => Ok(Some(url)),
        _ => Err(s3_error!(InvalidArgument, "success_action_redirect is not a usable URL.")),
    }
}

/// What a form stored, and where this server is reached.
struct Stored<'a> {
    public_base: &'a str,
    bucket: &'a str,
    key: &'a str,
    etag: &'a str,
}

/// The answer to a stored upload: a redirect (`success_action_redirect`), or the status asked
/// for (`success_action_status`: 200, 201 with the PostResponse document, else 204).
fn success(fields: &Fields, redirect: Option<&str>, stored: &Stored<'_>, version_id: Option<String>) -> Response<Body> {
    let Stored { public_base, bucket, key, etag } = *stored;
    let quoted = format!("\"{etag}\"");
    let mut resp = match (redirect, fields.get("success_action_status")) {
        (Some(url), _) => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("bucket", bucket)
                .append_pair("key", key)
                .append_pair("etag", &quoted)
                .finish();
            let separator = if url.contains('?') { '&' } else { '?' };
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::SEE_OTHER;
            // The URL was checked before the upload; the query is encoded.
            if let Ok(location) = HeaderValue::try_from(format!("{url}{separator}{query}")) {
                resp.headers_mut().insert(header::LOCATION, location);
            }
            resp
        }
        (None, Some("201")) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}/{bucket}/{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                escape(public_base.trim_end_matches('/')),
                escape(crate::list::encode_key(key.to_owned(), true)),
                escape(bucket),
                escape(key),
                escape(&quoted)
            );
            let mut resp = Response::new(Body::from(xml));
            *resp.status_mut() = StatusCode::CREATED;
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            resp
        }
        (None, Some("200")) => Response::new(Body::empty()),
        (None, _) => {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            resp
        }
    };
    if let Ok(value) = HeaderValue::try_from(quoted) {
        resp.headers_mut().insert(header::ETAG, value);
    }
    if let Some(version_id) = version_id.and_then(|v| HeaderValue::try_from(v).ok()) {
        resp.headers_mut().insert("x-amz-version-id", version_id);
    }
    resp
}
