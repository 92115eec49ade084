//! PostObject: browser form uploads (`POST /BUCKET` as `multipart/form-data`), streamed.
//!
//! The fields before `file` are read (at most [`MAX_FIELDS_BYTES`] together), the policy's
//! signature checked in constant time (SigV4 `x-amz-signature`, or SigV2 `signature` where SigV2
//! is on; a form without either is the anonymous principal's), the policy's expiration and
//! conditions checked (every field must be named by one), the caller authorised for
//! `s3:PutObject` on the key with `${filename}` replaced by the file's name; only then is the
//! file part read, streamed into the object service within the policy's `content-length-range`
//! (a file outside it is refused before anything is committed).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use hmac::{Hmac, Mac};
use http::{HeaderValue, Response, StatusCode, header};
use latchkey_identity::{Caller, ClientConnection, RequestNote, sigv4};
use latchkey_object::ObjectService;
use latchkey_policy::RequestContext;
use latchkey_storage::WriteLimits;
use s3s::dto::{Timestamp, TimestampFormat};
use s3s::post_policy::{PostPolicy, PostPolicyCondition};
use s3s::{Body, S3Error, S3ErrorCode, S3Result, s3_error};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::Authorizer;
use crate::attributes::{WriteHeaders, attributes};
use crate::error::OrS3;

/// S3's limit on the form fields before the file, together.
pub const MAX_FIELDS_BYTES: usize = 20 * 1024;

/// The largest object one POST may upload (S3's limit for a single upload).
const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Form fields no condition needs to name (S3's list, with SigV2's own).
fn exempt(name: &str) -> bool {
    matches!(name, "x-amz-signature" | "signature" | "awsaccesskeyid" | "file" | "policy")
        || name.starts_with("x-ignore-")
}

/// Form fields that ask for what a POST upload does not do here.
fn unsupported(name: &str) -> bool {
    name == "tagging"
        || name.starts_with("x-amz-object-lock-")
        || name.starts_with("x-amz-checksum-")
        || name.starts_with("x-amz-server-side-encryption")
        || name == "x-amz-storage-class"
        // Objects have no ACLs here: only the one every object has may be asked for.
        || name == "acl"
}

/// The form fields before the file, names in lower case (S3 reads them without case).
#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads the form up to its `file` part: the fields before it, at most [`MAX_FIELDS_BYTES`]
/// together, each once.
async fn read_fields(form: &mut multer::Multipart<'static>) -> S3Result<(Fields, multer::Field<'static>)> {
    let mut fields = Fields::default();
    let mut read = 0;
    loop {
        let Some(mut field) = form.next_field().await.map_err(malformed)? else {
            return Err(s3_error!(InvalidArgument, "POST requires exactly one file upload per request."));
        };
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name == "file" {
            return Ok((fields, field));
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            read += chunk.len();
            if read > MAX_FIELDS_BYTES {
                return Err(fields_too_large());
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value)
            .map_err(|_| s3_error!(InvalidArgument, "The form field {name:?} is not UTF-8."))?;
        if fields.get(&name).is_some() {
            return Err(s3_error!(InvalidArgument, "The form field {name:?} is given more than once."));
        }
        fields.0.push((name, value));
    }
}

/// The most of a form read before its `file` part is reached: the fields, their part headers,
/// and what the parser reads ahead of the file's header. Without it, a part header or a preamble
/// that never ends would be buffered whole.
const MAX_READ_BEFORE_FILE: u64 = 1024 * 1024;

/// The form's bytes, failing once more than [`MAX_READ_BEFORE_FILE`] were read before
/// `reached_file` is set.
fn capped_until_file<S, E>(
    body: S,
    reached_file: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<BodyError>,
{
    let mut read = 0u64;
    body.map(move |item| {
        let chunk = item.map_err(Into::into)?;
        read += chunk.len() as u64;
        if read > MAX_READ_BEFORE_FILE && !reached_file.load(Ordering::Relaxed) {
            return Err(BodyError::from(fields_too_large()));
        }
        Ok(chunk)
    })
}

fn fields_too_large() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("MaxPostPreDataLengthExceededError".into()),
        format!("Your POST request fields preceding the upload file were too large: at most {MAX_FIELDS_BYTES} bytes."),
    );
    e.set_status_code(StatusCode::BAD_REQUEST);
    e
}

/// Who signed the form.
enum Signer<'a> {
    Anonymous,
    V4 { access_key: &'a str },
    V2 { access_key: &'a str },
}

/// PostObject's settings and the services it needs.
pub struct PostUploads {
    objects: Arc<ObjectService>,
    authorizer: Authorizer,
    region: String,
    sigv2: bool,
}

/// One form upload's request, as the router hands it over.
pub struct PostRequest<'a, S> {
    pub bucket: &'a str,
    pub content_type: &'a str,
    pub body: S,
    pub client: Option<ClientConnection>,
    pub user_agent: Option<&'a str>,
    pub note: Option<&'a RequestNote>,
}

impl PostUploads {
    pub fn new(objects: Arc<ObjectService>, authorizer: Authorizer, region: String, sigv2: bool) -> Self {
        Self { objects, authorizer, region, sigv2 }
    }

    /// Serves one form upload.
    pub async fn handle<S, E>(&self, req: PostRequest<'_, S>) -> S3Result<Response<Body>>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BodyError> + 'static,
    {
        if let Some(note) = req.note {
            note.operation("PostObject");
            note.target(Some(req.bucket), None);
        }
        let boundary = multer::parse_boundary(req.content_type).map_err(|_| {
            s3_error!(MalformedPOSTRequest, "The body of your POST request is not well-formed multipart/form-data.")
        })?;
        let reached_file = Arc::new(AtomicBool::new(false));
        let mut form = multer::Multipart::new(capped_until_file(req.body, reached_file.clone()), boundary);
        let (fields, file) = read_fields(&mut form).await?;
        reached_file.store(true, Ordering::Relaxed);
        if let Some((name, _)) = fields.0.iter().find(|(name, value)| unsupported(name) && !is_private_acl(name, value))
        {
            return Err(s3_error!(
                NotImplemented,
                "The form field {name:?} is not supported in POST uploads; upload with PUT."
            ));
        }
        let signer = self.verify_signature(&fields).await?;
        let policy = match fields.get("policy") {
            Some(encoded) => Some(checked_policy(encoded, &fields, req.bucket, OffsetDateTime::now_utc())?),
            None if matches!(signer, Signer::Anonymous) => None,
            None => return Err(s3_error!(InvalidArgument, "Bucket POST must contain a field named 'policy'.")),
        };
        let filename = file.file_name().unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default().to_owned();
        let key = fields
            .get("key")
            .ok_or_else(|| s3_error!(InvalidArgument, "Bucket POST must contain a field named 'key'."))?
            .replace("${filename}", &filename);
        if key.is_empty() || key.len() > 1024 || key.contains('\0') {
            return Err(s3_error!(InvalidArgument, "The key must be 1 to 1024 bytes without NUL."));
        }
        if let Some(note) = req.note {
            note.target(Some(req.bucket), Some(&key));
        }
        let caller = self.caller(&signer, &fields).await?;
        if let (Some(note), Some(caller)) = (req.note, &caller) {
            note.principal(&caller.principal(self.authorizer.identity().account()).arn);
        }
        self.authorize(caller.as_ref(), &signer, req.bucket, &key, req.client, req.user_agent).await?;

        let attrs = form_attributes(&fields, file.content_type().map(ToString::to_string))?;
        let (min, max) = policy.as_ref().and_then(PostPolicy::content_length_range).unwrap_or((0, MAX_OBJECT_SIZE));
        let limits = WriteLimits { max_size: Some(max.min(MAX_OBJECT_SIZE)), ..Default::default() };
        let body = at_least(file.map(|chunk| chunk.map_err(|e| BodyError::from(malformed(e)))), min);
        let record = self.objects.put(req.bucket, &key, body, limits, attrs).await.or_s3()?;
        success(&fields, req.bucket, &key, &record.etag, crate::object::shown_version_id(&record))
    }

    /// Checks the form's signature over its policy; `Anonymous` when it carries none.
    async fn verify_signature<'f>(&self, fields: &'f Fields) -> S3Result<Signer<'f>> {
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
            if region != self.region {
                return Err(s3_error!(
                    AuthorizationQueryParametersError,
                    "The credential is scoped to region {region:?}; this server's region is {:?}.",
                    self.region
                ));
            }
            let date = fields.get("x-amz-date").unwrap_or_default();
            if date.get(..8) != Some(day) {
                return Err(s3_error!(
                    InvalidArgument,
                    "The form field x-amz-date does not match the credential's date."
                ));
            }
            let secret = self.authorizer.identity().secret(access_key, "s3").await.map_err(crate::auth::refused)?;
            let key = sigv4::signing_key(secret.as_str(), day, region, "s3");
            let expected = sigv4::sign(&key, policy.as_bytes());
            return match bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
                true => Ok(Signer::V4 { access_key }),
                false => Err(signature_does_not_match()),
            };
        }
        if let Some(signature) = fields.get("signature") {
            if !self.sigv2 {
                return Err(s3_error!(
                    AccessDenied,
                    "Signature Version 2 is not accepted by this server; sign with SigV4."
                ));
            }
            let access_key = fields
                .get("awsaccesskeyid")
                .ok_or_else(|| s3_error!(InvalidArgument, "The form field AWSAccessKeyId is missing."))?;
            let secret = self.authorizer.identity().secret(access_key, "s3").await.map_err(crate::auth::refused)?;
            let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_str().as_bytes()).expect("HMAC takes any key length");
            mac.update(policy.as_bytes());
            let expected = STANDARD.encode(mac.finalize().into_bytes());
            return match bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
                true => Ok(Signer::V2 { access_key }),
                false => Err(signature_does_not_match()),
            };
        }
        Ok(Signer::Anonymous)
    }

    /// The principal behind the signer (with its session token, for temporary credentials).
    async fn caller(&self, signer: &Signer<'_>, fields: &Fields) -> S3Result<Option<Caller>> {
        let (Signer::V4 { access_key } | Signer::V2 { access_key }) = signer else { return Ok(None) };
        let token = fields.get("x-amz-security-token");
        let caller = self.authorizer.identity().caller(access_key, token).await.map_err(crate::auth::refused)?;
        Ok(Some(caller))
    }

    /// `s3:PutObject` on the key, decided as any S3 request's is (audited when refused).
    async fn authorize(
        &self,
        caller: Option<&Caller>,
        signer: &Signer<'_>,
        bucket: &str,
        key: &str,
        client: Option<ClientConnection>,
        user_agent: Option<&str>,
    ) -> S3Result<()> {
        let mut context = RequestContext::new();
        context.insert("s3:authType", "POST");
        match signer {
            Signer::V4 { .. } => context.insert("s3:signatureversion", "AWS4-HMAC-SHA256"),
            Signer::V2 { .. } => context.insert("s3:signatureversion", "AWS"),
            Signer::Anonymous => {}
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
        let checks = [("s3:PutObject".to_owned(), format!("arn:aws:s3:::{bucket}/{key}"))];
        self.authorizer.judge(caller, &mut context, &checks, client.map(|c| c.ip)).await
    }
}

/// A form that cannot be read: its body's own failure (S3's RequestTimeout for a stalled one),
/// else MalformedPOSTRequest.
fn malformed(e: multer::Error) -> S3Error {
    if let multer::Error::StreamReadFailed(source) = e {
        return match source.downcast::<S3Error>() {
            Ok(inner) => *inner,
            Err(source) => s3_error!(IncompleteBody, "The request body terminated unexpectedly: {source}"),
        };
    }
    S3Error::with_message(
        S3ErrorCode::MalformedPOSTRequest,
        format!("The body of your POST request is not well-formed multipart/form-data: {e}"),
    )
}

fn signature_does_not_match() -> S3Error {
    s3_error!(
        SignatureDoesNotMatch,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    )
}

/// The policy, decoded and checked against the form: not expired, every condition met (the
/// file's length is checked as it is written), every field named by a condition.
fn checked_policy(encoded: &str, fields: &Fields, bucket: &str, now: OffsetDateTime) -> S3Result<PostPolicy> {
    let policy =
        PostPolicy::from_base64(encoded).map_err(|e| s3_error!(InvalidPolicyDocument, "Invalid Policy: {e}"))?;
    let expiration: OffsetDateTime = policy.expiration.clone().into();
    if now >= expiration {
        return Err(s3_error!(AccessDenied, "Invalid according to Policy: Policy expired."));
    }
    let value = |field: &str| if field == "bucket" { Some(bucket) } else { fields.get(field) };
    for condition in &policy.conditions {
        let met = match condition {
            PostPolicyCondition::Eq { field, value: expected } => value(field) == Some(expected.as_str()),
            PostPolicyCondition::StartsWith { field, prefix } => {
                value(field).unwrap_or_default().starts_with(prefix.as_str())
            }
            PostPolicyCondition::ContentLengthRange { .. } => true,
        };
        if !met {
            return Err(s3_error!(AccessDenied, "Invalid according to Policy: Policy Condition failed: {condition:?}"));
        }
    }
    for (name, _) in &fields.0 {
        let named = policy.conditions.iter().any(|c| match c {
            PostPolicyCondition::Eq { field, .. } | PostPolicyCondition::StartsWith { field, .. } => field == name,
            PostPolicyCondition::ContentLengthRange { .. } => false,
        });
        if !exempt(name) && !named {
            return Err(s3_error!(AccessDenied, "Invalid according to Policy: Extra input fields: {name}"));
        }
    }
    Ok(policy)
}

/// The object's attributes from the form: content headers and `x-amz-meta-*`.
fn form_attributes(fields: &Fields, file_type: Option<String>) -> S3Result<latchkey_object::ObjectAttributes> {
    let expires = fields
        .get("expires")
        .map(|v| Timestamp::parse(TimestampFormat::HttpDate, v))
        .transpose()
        .map_err(|_| s3_error!(InvalidArgument, "The form field Expires is not an HTTP date."))?;
    let metadata: HashMap<String, String> = fields
        .0
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix("x-amz-meta-")?.to_owned(), value.clone())))
        .collect();
    let content_type = fields.get("content-type").map(str::to_owned).or(file_type);
    attributes(WriteHeaders {
        content_type: content_type.as_deref(),
        content_encoding: fields.get("content-encoding"),
        content_disposition: fields.get("content-disposition"),
        content_language: fields.get("content-language"),
        cache_control: fields.get("cache-control"),
        expires: expires.as_ref(),
        metadata: (!metadata.is_empty()).then_some(&metadata),
        tagging: None,
        lock_mode: None,
        lock_until: None,
        legal_hold: None,
    })
}

/// A failure inside the file's stream, read back as its S3 error (`error::s3_error`).
type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The file's bytes, ending in an error instead of its end when fewer than `min` arrived, so
/// that a file under the policy's range is never committed.
fn at_least<S>(body: S, min: u64) -> impl Stream<Item = Result<Bytes, BodyError>> + Send
where
    S: Stream<Item = Result<Bytes, BodyError>> + Send,
{
    let mut seen = 0u64;
    let mut ended = false;
    body.map(Some).chain(futures::stream::once(async { None })).filter_map(move |item| {
        let out = match item {
            Some(Ok(chunk)) => {
                seen += chunk.len() as u64;
                Some(Ok(chunk))
            }
            Some(Err(e)) => Some(Err(e)),
            None if !ended && seen < min => {
                ended = true;
                let e = s3_error!(EntityTooSmall, "Your proposed upload is smaller than the minimum allowed size.");
                Some(Err(BodyError::from(e)))
            }
            None => None,
        };
        std::future::ready(out)
    })
}

/// The answer to a stored upload: a redirect (`success_action_redirect`), or the status asked
/// for (`success_action_status`: 200, 201 with the PostResponse document, else 204).
fn success(
    fields: &Fields,
    bucket: &str,
    key: &str,
    etag: &str,
    version_id: Option<String>,
) -> S3Result<Response<Body>> {
    let quoted = format!("\"{etag}\"");
    let redirect = fields.get("success_action_redirect").or_else(|| fields.get("redirect"));
    let mut resp = match (redirect, fields.get("success_action_status")) {
        (Some(url), _) if url.starts_with("http://") || url.starts_with("https://") => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("bucket", bucket)
                .append_pair("key", key)
                .append_pair("etag", &quoted)
                .finish();
            let separator = if url.contains('?') { '&' } else { '?' };
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::SEE_OTHER;
            let location = HeaderValue::try_from(format!("{url}{separator}{query}"))
                .map_err(|_| s3_error!(InvalidArgument, "success_action_redirect is not a usable URL."))?;
            resp.headers_mut().insert(header::LOCATION, location);
            resp
        }
        (_, Some("201")) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>/{bucket}/{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                xml_escape(&percent(key)),
                xml_escape(bucket),
                xml_escape(key),
                xml_escape(&quoted)
            );
            let mut resp = Response::new(Body::from(xml));
            *resp.status_mut() = StatusCode::CREATED;
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            resp
        }
        (_, Some("200")) => Response::new(Body::empty()),
        _ => {
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
    Ok(resp)
}

/// A key in a URL path: everything but unreserved characters and `/` encoded.
fn percent(key: &str) -> String {
    const PATH: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(key, PATH).to_string()
}

/// An `acl` field asking for what every object has anyway.
fn is_private_acl(name: &str, value: &str) -> bool {
    name == "acl" && matches!(value, "private" | "bucket-owner-full-control")
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
