//! Share links on the wire.
//!
//! - `/-/shares`: the JSON management API. It runs as an s3s custom route, after s3s has verified
//!   the request's signature (SigV4, or SigV2 where enabled), so an access key is the identity,
//!   as for any S3 call.
//! - `/-/access-object?nonce=TOKEN` (or the `X-Latchkey-Nonce` header): redemption for machine
//!   clients, public, on axum: GET downloads, PUT or POST of the raw bytes uploads through an
//!   upload link. Every refusal is the same 403; the reason goes to the audit trail.
//! - `/-/s/{token}`: the browser landing page (`landing.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use latchkey_identity::{ClientConnection, RequestNote};
use latchkey_meta::{ListedShare, Share, ShareFilter};
use latchkey_s3::json_api::{self, api_error, json};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use s3s::dto::Range as RangeHeader;

use crate::service::{
    CreateError, Delivery, Denial, NewShare, RedeemError, Redeemer, ShareMethod, ShareService, UploadError,
    UploadRequest, refusal,
};

const API_PREFIX: &str = "/-/shares";
/// The one answer every refused redemption gets.
const REFUSAL: &str = "This link is not valid. It may have expired, been used or been revoked.\n";

/// The management API, mounted in the S3 service as a custom route.
pub struct SharesApi {
    shares: Arc<ShareService>,
}

impl SharesApi {
    pub fn new(shares: Arc<ShareService>) -> Self {
        Self { shares }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    /// `GET` (download link, the default) or `PUT` (upload link).
    method: Option<String>,
    bucket: String,
    key: Option<String>,
    /// Upload links only, instead of `key`: uploads are stored as `prefix` + file name.
    prefix: Option<String>,
    expires_in: Option<u64>,
    max_uses: Option<u32>,
    #[serde(default)]
    allow_cidrs: Vec<String>,
    disposition: Option<String>,
    label: Option<String>,
    max_size: Option<u64>,
    #[serde(default)]
    content_types: Vec<String>,
    #[serde(default)]
    redirect: bool,
}

impl CreateRequest {
    fn into_new_share(self) -> Result<NewShare, String> {
        let method = match self.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("GET") => ShareMethod::Get,
            Some("PUT") => ShareMethod::Put,
            Some(other) => return Err(format!("method must be \"GET\" or \"PUT\", not {other:?}")),
        };
        let (key, key_is_prefix) = match (self.key, self.prefix) {
            (Some(key), None) => (key, false),
            (None, Some(prefix)) => (prefix, true),
            (Some(_), Some(_)) => return Err("give key or prefix, not both".into()),
            (None, None) => return Err("missing field `key`".into()),
        };
        Ok(NewShare {
            method,
            bucket: self.bucket,
            key,
            key_is_prefix,
            expires_in: self.expires_in.map(Duration::from_secs),
            max_uses: self.max_uses,
            allow_cidrs: self.allow_cidrs,
            disposition: self.disposition,
            label: self.label,
            max_size: self.max_size,
            content_types: self.content_types,
            redirect: self.redirect,
        })
    }
}

#[derive(Serialize)]
struct ShareView {
    id: String,
    method: String,
    bucket: String,
    key: String,
    key_is_prefix: bool,
    etag: Option<String>,
    size: Option<u64>,
    created_at: String,
    expires_at: String,
    max_uses: u32,
    uses_left: u32,
    allow_cidrs: Vec<String>,
    disposition: String,
    label: Option<String>,
    principal: String,
    state: &'static str,
    max_size: Option<u64>,
    content_types: Vec<String>,
    redirect: bool,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn view(ListedShare { share, object_current }: ListedShare) -> ShareView {
    let state = match refusal(&share, OffsetDateTime::now_utc()) {
        Some(denial) => denial.as_str(),
        None if object_current => "active",
        None => Denial::ObjectChanged.as_str(),
    };
    ShareView {
        id: share.id,
        method: share.method,
        bucket: share.bucket,
        key: share.key,
        key_is_prefix: share.key_is_prefix,
        etag: share.etag,
        size: share.size,
        created_at: rfc3339(share.created),
        expires_at: rfc3339(share.expires),
        max_uses: share.max_uses,
        uses_left: share.uses_left,
        allow_cidrs: share.allow_cidrs,
        disposition: share.disposition,
        label: share.label,
        principal: share.principal,
        state,
        max_size: share.max_size,
        content_types: share.content_types,
        redirect: share.redirect,
    }
}

/// The scheme and authority of every absolute URL handed out (share links, redirects): the
/// configured `public_url`, or the address of the listener the request came on. The server puts
/// it in each request's extensions; the Host header is never used, so a forged Host cannot
/// point a link or a signed redirect elsewhere.
#[derive(Debug, Clone)]
pub struct PublicBase(pub Arc<str>);

impl PublicBase {
    fn of(extensions: &http::Extensions) -> S3Result<&str> {
        extensions.get::<Self>().map(|b| &*b.0).ok_or_else(|| internal("no public base URL for this request"))
    }
}

#[async_trait::async_trait]
impl S3Route for SharesApi {
    fn is_match(&self, _: &Method, uri: &Uri, _: &HeaderMap, _: &mut http::Extensions) -> bool {
        let path = uri.path();
        path == API_PREFIX || path.starts_with("/-/shares/")
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let gate = self.shares.gate();
        let caller = json_api::caller(gate.identity(), &req).await?;
        let who = gate.caller(caller, req.extensions.get::<ClientConnection>().copied());
        let id = req.uri.path().strip_prefix("/-/shares/").map(str::to_owned);
        match (req.method.clone(), id) {
            (Method::POST, None) => {
                let body = json_api::body(&mut req).await?;
                let new = match serde_json::from_slice::<CreateRequest>(&body)
                    .map_err(|e| e.to_string())
                    .and_then(CreateRequest::into_new_share)
                {
                    Ok(new) => new,
                    Err(message) => return api_error(StatusCode::BAD_REQUEST, "InvalidRequest", &message),
                };
                match self.shares.create(&who, new).await {
                    Ok((share, token)) => {
                        let base = PublicBase::of(&req.extensions)?;
                        json(
                            StatusCode::CREATED,
                            &serde_json::json!({
                                "id": share.id,
                                "token": token,
                                "url": format!("{base}/-/s/{token}"),
                                "api_url": format!("{base}/-/access-object?nonce={token}"),
                                "expires_at": rfc3339(share.expires),
                                "max_uses": share.max_uses,
                                "etag": share.etag,
                                "method": share.method,
                                "max_size": share.max_size,
                                "content_types": share.content_types,
                                "redirect": share.redirect,
                            }),
                        )
                    }
                    Err(CreateError::Invalid(message)) => {
                        api_error(StatusCode::BAD_REQUEST, "InvalidRequest", &message)
                    }
                    Err(CreateError::NoSuchObject) => {
                        api_error(StatusCode::NOT_FOUND, "NoSuchKey", "the object to share does not exist")
                    }
                    Err(CreateError::NoSuchBucket) => {
                        api_error(StatusCode::NOT_FOUND, "NoSuchBucket", "the bucket to upload to does not exist")
                    }
                    Err(CreateError::AccessDenied) => Err(s3_error!(AccessDenied, "Access Denied")),
                    Err(CreateError::Object(e)) => Err(internal(e)),
                }
            }
            (Method::GET, None) => {
                let query: ListQuery = req
                    .uri
                    .query()
                    .map(parse_list_query)
                    .transpose()
                    .map_err(|m| s3_error!(InvalidArgument, "{m}"))?
                    .unwrap_or_default();
                let filter = ShareFilter {
                    bucket: query.bucket,
                    prefix: query.prefix,
                    active_at: (query.state.as_deref() == Some("active")).then(OffsetDateTime::now_utc),
                };
                let mut visible = Vec::new();
                for share in self.shares.list(&filter).await.map_err(internal)? {
                    if gate.may_manage(&who, "latchkey:ListShares", &share.share).await {
                        visible.push(view(share));
                    }
                }
                json(StatusCode::OK, &serde_json::json!({ "shares": visible }))
            }
            // Another's link the caller may not see does not exist, as far as it can tell.
            (Method::GET, Some(id)) => match self.shares.get(&id).await.map_err(internal)? {
                Some(share) if gate.may_manage(&who, "latchkey:ListShares", &share.share).await => {
                    json(StatusCode::OK, &view(share))
                }
                _ => api_error(StatusCode::NOT_FOUND, "NoSuchShare", "no share has this id"),
            },
            (Method::DELETE, Some(id)) => {
                let revocable = match self.shares.get(&id).await.map_err(internal)? {
                    Some(share) => gate.may_manage(&who, "latchkey:RevokeShare", &share.share).await,
                    None => false,
                };
                if revocable && self.shares.revoke(&who, &id).await.map_err(internal)? {
                    Ok(S3Response::with_status(Body::empty(), StatusCode::NO_CONTENT))
                } else {
                    api_error(StatusCode::NOT_FOUND, "NoSuchShare", "no active share has this id")
                }
            }
            _ => Err(s3_error!(MethodNotAllowed)),
        }
    }
}

#[derive(Default)]
struct ListQuery {
    bucket: Option<String>,
    prefix: Option<String>,
    state: Option<String>,
}

/// `bucket`, `prefix` and `state` (`active` or `all`) from a query string.
fn parse_list_query(query: &str) -> Result<ListQuery, String> {
    let mut out = ListQuery::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()).into_owned() {
        match k.as_str() {
            "bucket" => out.bucket = Some(v),
            "prefix" => out.prefix = Some(v),
            "state" if v == "active" || v == "all" => out.state = Some(v),
            "state" => return Err(format!("state must be \"active\" or \"all\", not {v:?}")),
            name if json_api::is_signature_param(name) => {}
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(out)
}

fn internal(e: impl std::fmt::Display) -> s3s::S3Error {
    tracing::error!(error = %e, "share API failed");
    s3_error!(InternalError)
}

/// Public redemption routes, merged into the server's `/-/` router. Upload links enforce their
/// own size limit, so axum's default body limit is off.
pub fn redemption_routes(shares: Arc<ShareService>) -> axum::Router {
    axum::Router::new()
        .route(
            "/-/access-object",
            axum::routing::get(access_object).head(inspect_object).put(upload_object).post(upload_object),
        )
        .route("/-/s/{token}", axum::routing::get(crate::landing::show).post(crate::landing::take))
        .layer(DefaultBodyLimit::disable())
        .with_state(shares)
}

#[derive(Deserialize)]
struct NonceQuery {
    nonce: Option<String>,
    /// Upload through a prefix link: the file's name.
    name: Option<String>,
}

/// The token from `X-Latchkey-Nonce`, else from `?nonce=`.
fn nonce(headers: &HeaderMap, query: Option<String>) -> Option<String> {
    headers.get("x-latchkey-nonce").and_then(|v| v.to_str().ok()).map(str::to_owned).or(query)
}

pub(crate) fn refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        REFUSAL,
    )
        .into_response()
}

async fn access_object(
    State(shares): State<Arc<ShareService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(base): Extension<PublicBase>,
    note: Option<Extension<Arc<RequestNote>>>,
    Query(query): Query<NonceQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = nonce(&headers, query.nonce) else { return refused() };
    let note = note.as_ref().map(|Extension(note)| note.as_ref());
    redeem_response(&shares, &token, peer, &base, &headers, note, refused).await
}

/// `HEAD /-/access-object`: what a download would be, without using the link (link checkers and
/// download managers ask first; a HEAD must not spend a one-time link). Refusals are the same 403.
async fn inspect_object(
    State(shares): State<Arc<ShareService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<NonceQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = nonce(&headers, query.nonce) else { return refused() };
    match shares.inspect(&token, &redeemer(peer, &headers)).await {
        Ok((_, Some(record))) => {
            let content_type =
                record.headers.content_type.clone().unwrap_or_else(|| "application/octet-stream".to_owned());
            let mut resp = StatusCode::OK.into_response();
            let out = resp.headers_mut();
            out.insert(header::CONTENT_LENGTH, HeaderValue::from(record.size));
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                out.insert(header::CONTENT_TYPE, v);
            }
            out.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
            resp
        }
        Ok((_, None)) | Err(RedeemError::Denied(_) | RedeemError::BadRange) => refused(),
        Err(RedeemError::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `PUT` or `POST /-/access-object`: the body is the file.
async fn upload_object(
    State(shares): State<Arc<ShareService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    note: Option<Extension<Arc<RequestNote>>>,
    Query(query): Query<NonceQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let Some(token) = nonce(&headers, query.nonce) else { return refused() };
    let request = UploadRequest {
        name: query.name.as_deref(),
        content_type: headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        content_length: headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()),
    };
    match shares.upload(&token, &redeemer(peer, &headers), request, body.into_data_stream()).await {
        Ok((_, record)) => {
            if let Some(Extension(note)) = &note {
                note.target(Some(&record.bucket), Some(&record.key));
            }
            let name = record.key.rsplit('/').next().unwrap_or(&record.key);
            let receipt = serde_json::json!({ "name": name, "size": record.size, "etag": record.etag });
            (StatusCode::CREATED, axum::Json(receipt)).into_response()
        }
        Err(e) => match upload_failure(&e) {
            Some((status, message)) => {
                (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message + "\n").into_response()
            }
            None => refused(),
        },
    }
}

/// The status and message for an upload the link's holder can correct; `None` for a refusal of
/// the link itself (answered with the uniform refusal).
pub(crate) fn upload_failure(e: &UploadError) -> Option<(StatusCode, String)> {
    let status = match e {
        UploadError::Denied(_) => return None,
        UploadError::Invalid(_) => StatusCode::BAD_REQUEST,
        UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        UploadError::MediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        UploadError::Exists => StatusCode::CONFLICT,
        UploadError::Internal(_) => return Some((StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())),
    };
    Some((status, e.to_string()))
}

/// Redeems and answers: the download, or `refusal()` (an API 403 or the landing page). What
/// was handed out is noted for the access logs.
pub(crate) async fn redeem_response(
    shares: &ShareService,
    token: &str,
    peer: SocketAddr,
    base: &PublicBase,
    headers: &HeaderMap,
    note: Option<&RequestNote>,
    refusal: fn() -> Response,
) -> Response {
    let range = match headers.get(header::RANGE).map(|v| v.to_str().ok().and_then(|r| RangeHeader::parse(r).ok())) {
        None => None,
        Some(Some(range)) => Some(range),
        Some(None) => return StatusCode::RANGE_NOT_SATISFIABLE.into_response(),
    };
    match shares.redeem(token, &redeemer(peer, headers), range.as_ref(), &base.0).await {
        Ok(granted) => {
            if let Some(note) = note {
                note.target(Some(&granted.share.bucket), Some(&granted.share.key));
            }
            match granted.delivery {
                Delivery::Stream(read) => download(&granted.share, *read),
                Delivery::Redirect(url) => redirect(&url),
            }
        }
        Err(RedeemError::Denied(_)) => refusal(),
        Err(RedeemError::BadRange) => StatusCode::RANGE_NOT_SATISFIABLE.into_response(),
        Err(RedeemError::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub(crate) fn redeemer(peer: SocketAddr, headers: &HeaderMap) -> Redeemer {
    Redeemer {
        ip: peer.ip(),
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
    }
}

/// A redirect-mode answer: `302 Found` (browsers follow the landing page's POST with a GET).
fn redirect(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => {
            let no_store = HeaderValue::from_static("no-store");
            (StatusCode::FOUND, [(header::LOCATION, location), (header::CACHE_CONTROL, no_store)]).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The object as a download: its type and length, and a Content-Disposition naming the file.
fn download(share: &Share, read: latchkey_object::ObjectRead) -> Response {
    let record = &read.record;
    let content_type = record.headers.content_type.clone().unwrap_or_else(|| "application/octet-stream".to_owned());
    let name = record.key.rsplit('/').next().unwrap_or(&record.key);
    let partial = read.range != (0..record.size);
    let mut resp = Response::new(axum::body::Body::from_stream(read.body));
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(read.range.end - read.range.start));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if partial {
        let range = format!("bytes {}-{}/{}", read.range.start, read.range.end.saturating_sub(1), record.size);
        if let Ok(v) = HeaderValue::from_str(&range) {
            headers.insert(header::CONTENT_RANGE, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&share.disposition, name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", record.etag)) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    // A page opened through the link must not hand its URL (the token) to what it loads.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if partial {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    resp
}

/// RFC 6266: an ASCII fallback name and the exact UTF-8 name (RFC 8187 encoding).
fn content_disposition(kind: &str, name: &str) -> String {
    let fallback: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_name_the_file_safely() {
        assert_eq!(
            content_disposition("attachment", "q3 report.pdf"),
            "attachment; filename=\"q3 report.pdf\"; filename*=UTF-8''q3%20report.pdf"
        );
        assert_eq!(
            content_disposition("inline", "ünï\"x.txt"),
            "inline; filename=\"_n__x.txt\"; filename*=UTF-8''%C3%BCn%C3%AF%22x.txt"
        );
    }

    #[test]
    fn list_queries() {
        let q = parse_list_query("bucket=b&prefix=a%2Fb+c&state=active").unwrap();
        assert_eq!(
            (q.bucket.as_deref(), q.prefix.as_deref(), q.state.as_deref()),
            (Some("b"), Some("a/b c"), Some("active"))
        );
        assert!(parse_list_query("state=weird").is_err());
        assert!(parse_list_query("bucket=b&color=red").is_err());
    }
}
