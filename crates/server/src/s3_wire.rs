//! S3's wire rules that hold before s3s sees a request: an object PUT must say how long its body
//! is (`Content-Length`, or `x-amz-decoded-content-length` for aws-chunked) (`411 MissingContentLength`, however it is signed, as AWS answers); a `Range` header S3
//! would not understand (not `bytes=`, reversed, several ranges) is ignored rather than refused,
//! as S3 ignores it (unless the signature covers it: s3s then refuses it); a HEAD of a range is
//! a 206; and a body that carries Content-MD5 but is not an object's bytes is hashed
//! as s3s reads it, for the operation to check (`latchkey_s3::content_md5`).

use http::{HeaderMap, Method, Request, header};
use latchkey_s3::content_md5::{self, BodyMd5, Md5Body};
use s3s::dto::Range;
use s3s::{Body, S3Error, s3_error};

use crate::idle::IdleBody;

/// The refusal of an object PUT (PutObject, UploadPart, an object's sub-resource) that gives no
/// Content-Length: a body sent chunked, or none at all. A copy has no body to measure. `path`:
/// the request's path, path style.
pub fn missing_length<B>(req: &Request<B>, path: &str) -> Option<S3Error> {
    let names_object = !path.starts_with("/-/")
        && path.trim_start_matches('/').split_once('/').is_some_and(|(_, key)| !key.is_empty());
    // aws-chunked bodies (SDKs over TLS send checksum trailers chunked) declare their length in
    // `x-amz-decoded-content-length`.
    let refused = req.method() == Method::PUT
        && names_object
        && !req.headers().contains_key(header::CONTENT_LENGTH)
        && !req.headers().contains_key("x-amz-decoded-content-length")
        && !req.headers().contains_key("x-amz-copy-source");
    refused.then(|| s3_error!(MissingContentLength, "You must provide the Content-Length HTTP header."))
}

/// Removes a `Range` header of a GET or HEAD that is not one satisfiable-looking byte range, so
/// that the whole object is served, unless the request's signature covers it (removing it then
/// would break the signature; s3s refuses it instead).
pub fn ignore_unusable_range<B>(req: &mut Request<B>) {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return;
    }
    let usable = match req.headers().get(header::RANGE).map(|v| v.to_str()) {
        None => return,
        Some(Ok(value)) => Range::parse(value).is_ok(),
        Some(Err(_)) => false,
    };
    if !usable && !signs_range(req.headers(), req.uri().query()) {
        req.headers_mut().remove(header::RANGE);
    }
}

/// Whether a SigV4 signature (header or presigned) lists `range` among its signed headers.
fn signs_range(headers: &HeaderMap, query: Option<&str>) -> bool {
    let listed = |list: &str| list.split(';').any(|name| name.trim().eq_ignore_ascii_case("range"));
    let in_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("SignedHeaders=").nth(1))
        .is_some_and(|rest| listed(rest.split(',').next().unwrap_or_default()));
    let in_query = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(name, value)| name.eq_ignore_ascii_case("x-amz-signedheaders") && listed(&value));
    in_header || in_query
}

/// A HEAD that answers a range is `206 Partial Content`, as the GET of it is (s3s sets that
/// status for GET only).
pub fn partial_head<B>(head: bool, resp: &mut http::Response<B>) {
    if head && resp.status() == http::StatusCode::OK && resp.headers().contains_key(header::CONTENT_RANGE) {
        *resp.status_mut() = http::StatusCode::PARTIAL_CONTENT;
    }
}

/// The request as s3s takes it, its body hashed when its Content-MD5 is the operation's to check.
pub fn into_s3s(req: Request<IdleBody<hyper::body::Incoming>>) -> Request<Body> {
    if !content_md5::wants_md5(req.method(), req.uri(), req.headers()) {
        return req.map(Body::http_body);
    }
    let digest = BodyMd5::default();
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(digest.clone());
    Request::from_parts(parts, Body::http_body(Md5Body::new(body, digest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn object_puts_must_give_their_length() {
        let refused = |method, uri: &str, headers: &[(&str, &str)]| {
            let path = uri.split('?').next().unwrap();
            missing_length(&request(method, uri, headers), path).is_some()
        };
        assert!(refused(Method::PUT, "/b/k", &[]));
        assert!(refused(Method::PUT, "/b/k", &[("transfer-encoding", "chunked")]));
        assert!(refused(Method::PUT, "/b/k?partNumber=1&uploadId=u", &[]));
        assert!(!refused(Method::PUT, "/b/k", &[("content-length", "0")]));
        assert!(!refused(Method::PUT, "/b/k", &[("x-amz-copy-source", "/b/j")]));
        let aws_chunked = [("transfer-encoding", "chunked"), ("x-amz-decoded-content-length", "5")];
        assert!(!refused(Method::PUT, "/b/k", &aws_chunked), "a streaming upload with its decoded length");
        assert!(!refused(Method::PUT, "/b", &[]), "CreateBucket");
        assert!(!refused(Method::PUT, "/b/", &[]));
        assert!(!refused(Method::POST, "/b/k?uploads", &[]));
        assert!(!refused(Method::PUT, "/-/shares/x", &[]), "the signed APIs are not S3's");
    }

    #[test]
    fn ranges_s3_would_not_understand_are_ignored_unless_signed() {
        let after = |method, uri: &str, headers: &[(&str, &str)]| {
            let mut req = request(method, uri, headers);
            ignore_unusable_range(&mut req);
            req.headers().get(header::RANGE).map(|v| v.to_str().unwrap().to_owned())
        };
        for kept in ["bytes=0-1", "bytes=5-", "bytes=-3"] {
            assert_eq!(after(Method::GET, "/b/k", &[("range", kept)]).as_deref(), Some(kept));
        }
        for ignored in ["bytes=abc", "bytes=5-2", "items=0-1", "bytes=0-1,4-5", "bytes=", "Bytes=0-1"] {
            assert_eq!(after(Method::GET, "/b/k", &[("range", ignored)]), None, "{ignored}");
            assert_eq!(after(Method::HEAD, "/b/k", &[("range", ignored)]), None, "{ignored}");
        }
        let auth = "AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/s3/aws4_request, \
                    SignedHeaders=host;range;x-amz-date, Signature=abc";
        assert!(after(Method::GET, "/b/k", &[("range", "bytes=abc"), ("authorization", auth)]).is_some());
        let presigned = "/b/k?X-Amz-SignedHeaders=host%3Brange&X-Amz-Signature=s";
        assert!(after(Method::GET, presigned, &[("range", "bytes=abc")]).is_some());
        let host_only = "/b/k?X-Amz-SignedHeaders=host&X-Amz-Signature=s";
        assert!(after(Method::GET, host_only, &[("range", "bytes=abc")]).is_none());
        assert!(after(Method::PUT, "/b/k", &[("range", "bytes=abc")]).is_some(), "not a read");
    }
}
