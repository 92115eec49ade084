//! Cross-origin requests on the S3 surface: a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) is answered from the bucket's CORS rules without
//! authentication, as S3 does; an actual request from an origin a rule admits gets that rule's
//! `Access-Control-*` headers on its answer, errors included (so a page can read why it was
//! refused). Without a matching rule no CORS header is sent. Rules and matching live in
//! `latchkey_s3::cors`.

use http::{HeaderMap, Method, Response, StatusCode};
use latchkey_s3::BucketConfigs;
use latchkey_s3::addressing::path_bucket;
use latchkey_s3::cors::{self, Preflight};
use s3s::{Body, S3Error, S3ErrorCode};

/// Whether a request is a CORS preflight (an `OPTIONS` request naming an origin).
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(http::header::ORIGIN)
}

/// The answer to a preflight for `path`: `200` with the matching rule's headers, or S3's `403
/// AccessForbidden` when no rule admits it (a bucket that does not exist reads the same).
pub fn preflight(path: &str, headers: &HeaderMap, configs: &BucketConfigs) -> Response<Body> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(method)) = (text(http::header::ORIGIN), text(http::header::ACCESS_CONTROL_REQUEST_METHOD))
    else {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("BadRequest".into()),
            "Insufficient information. Origin and Access-Control-Request-Method request headers needed.",
        );
        e.set_status_code(StatusCode::BAD_REQUEST);
        return crate::router::s3_error_response(e);
    };
    let requested: Vec<&str> = text(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        .map(|list| list.split(',').map(str::trim).filter(|h| !h.is_empty()).collect())
        .unwrap_or_default();
    let rules = path_bucket(path).map(|bucket| configs.get(bucket));
    let matched = rules.as_ref().and_then(|r| r.cors()).and_then(|r| cors::matching(r, origin, method, &requested));
    let Some(rule) = matched else {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("AccessForbidden".into()),
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        );
        e.set_status_code(StatusCode::FORBIDDEN);
        return crate::router::s3_error_response(e);
    };
    let mut resp = Response::new(Body::empty());
    let preflight = Preflight { method, headers: requested };
    resp.headers_mut().extend(rule.headers(origin, Some(&preflight)));
    resp
}

/// Adds the `Access-Control-*` headers of the rule that admits an actual request from its
/// `Origin`, if any.
pub fn decorate(method: &Method, path: &str, origin: Option<&str>, resp: &mut Response<Body>, configs: &BucketConfigs) {
    let (Some(origin), Some(bucket)) = (origin, path_bucket(path)) else { return };
    let rules = configs.get(bucket);
    if let Some(rule) = rules.cors().and_then(|rules| cors::matching(rules, origin, method.as_str(), &[])) {
        resp.headers_mut().extend(rule.headers(origin, None));
    }
}
