//! SigV4 header authentication of IAM/STS query requests (`POST /` with a signed form body).
//!
//! s3s verifies S3 requests but refuses service `iam` and `sts`, so the query APIs verify here:
//! [`parse`] reads the Authorization header and the request date, the caller looks up the
//! secret for the access key id, and [`verify`] recomputes the signature. Presigned (query
//! string) authentication is refused: the AWS CLI and SDKs never use it for IAM or STS.

use std::fmt;

use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, StatusCode, Uri};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime};
use zeroize::Zeroizing;

use crate::query::QueryError;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const TERMINATOR: &str = "aws4_request";
/// How far the request date may be from the server's clock, either way (AWS's limit).
const MAX_SKEW: Duration = Duration::minutes(15);
const AMZ_DATE: &[BorrowedFormatItem<'_>] = format_description!("[year][month][day]T[hour][minute][second]Z");
const SCOPE_DATE: &[BorrowedFormatItem<'_>] = format_description!("[year][month][day]");

/// What the Authorization, X-Amz-Date and X-Amz-Security-Token headers say.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedQuery {
    pub access_key_id: String,
    /// The date of the credential scope.
    pub scope_date: Date,
    /// X-Amz-Date.
    pub request_time: OffsetDateTime,
    pub region: String,
    /// `iam` or `sts` for the query APIs; the caller routes (or refuses) by it.
    pub service: String,
    /// Lowercase header names, in the order signed.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// X-Amz-Security-Token: present for temporary (STS) credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for SignedQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedQuery")
            .field("access_key_id", &self.access_key_id)
            .field("scope_date", &self.scope_date)
            .field("request_time", &self.request_time)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &self.signature)
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a query request is not authenticated, with AWS's codes and wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryAuthError {
    /// No Authorization header at all.
    #[error("Request is missing Authentication Token")]
    MissingAuthenticationToken,
    /// The Authorization header or the request date is malformed or incomplete.
    #[error("{0}")]
    IncompleteSignature(String),
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
         Access Key and signing method. Consult the service documentation for details."
    )]
    SignatureDoesNotMatch,
    /// The credential scope is wrong (terminator, or a date other than the request's). AWS
    /// reports it as SignatureDoesNotMatch with a message saying what is wrong.
    #[error("{0}")]
    CredentialScope(String),
    /// The request date is more than 15 minutes from now. IAM and STS report it as
    /// SignatureDoesNotMatch ("Signature expired: ..."), which the SDKs recognise as clock skew.
    #[error("{0}")]
    RequestExpired(String),
}

impl QueryAuthError {
    /// AWS's error code.
    pub fn code(&self) -> &'static str {
        match self {
            QueryAuthError::MissingAuthenticationToken => "MissingAuthenticationToken",
            QueryAuthError::IncompleteSignature(_) => "IncompleteSignature",
            QueryAuthError::SignatureDoesNotMatch
            | QueryAuthError::CredentialScope(_)
            | QueryAuthError::RequestExpired(_) => "SignatureDoesNotMatch",
        }
    }

    /// AWS's message.
    pub fn message(&self) -> String {
        self.to_string()
    }

    pub fn status(&self) -> StatusCode {
        match self {
            QueryAuthError::IncompleteSignature(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

impl From<QueryAuthError> for QueryError {
    fn from(error: QueryAuthError) -> Self {
        QueryError { status: error.status(), code: error.code(), message: error.message(), sender: true }
    }
}

/// Reads the signature's claims from the Authorization header (`AWS4-HMAC-SHA256
/// Credential=AKID/20261205/us-east-1/iam/aws4_request, SignedHeaders=..., Signature=...`),
/// X-Amz-Date and X-Amz-Security-Token. Nothing is verified yet but the form.
pub fn parse(_method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<SignedQuery, QueryAuthError> {
    let incomplete = |message: &str| QueryAuthError::IncompleteSignature(message.to_string());
    let Some(authorization) = headers.get(http::header::AUTHORIZATION) else {
        let presigned = uri.query().is_some_and(|query| {
            form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name.eq_ignore_ascii_case("X-Amz-Signature"))
        });
        return Err(if presigned {
            incomplete("Presigned (query string) authentication is not supported for this API; sign the headers.")
        } else {
            QueryAuthError::MissingAuthenticationToken
        });
    };
    let authorization =
        authorization.to_str().map_err(|_| incomplete("The Authorization header is not visible ASCII."))?;
    let (algorithm, fields) = authorization.trim().split_once(' ').unwrap_or((authorization.trim(), ""));
    if algorithm != ALGORITHM {
        return Err(QueryAuthError::IncompleteSignature(format!("Unsupported AWS 'algorithm': '{algorithm}'.")));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in fields.split(',') {
        match field.trim().split_once('=') {
            Some(("Credential", value)) => credential = Some(value),
            Some(("SignedHeaders", value)) => signed_headers = Some(value),
            Some(("Signature", value)) => signature = Some(value),
            _ => {}
        }
    }
    let date_header = headers.get("x-amz-date").and_then(|value| value.to_str().ok());
    let mut missing = String::new();
    for (present, name) in [
        (credential.is_some(), "Authorization header requires 'Credential' parameter. "),
        (signature.is_some(), "Authorization header requires 'Signature' parameter. "),
        (signed_headers.is_some(), "Authorization header requires 'SignedHeaders' parameter. "),
        (date_header.is_some(), "Authorization header requires existence of a 'X-Amz-Date' header. "),
    ] {
        if !present {
            missing.push_str(name);
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature), Some(date_header)) =
        (credential, signed_headers, signature, date_header)
    else {
        return Err(QueryAuthError::IncompleteSignature(missing.trim_end().to_string()));
    };

    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, scope_date, region, service, terminator] = scope[..] else {
        return Err(QueryAuthError::IncompleteSignature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got \
             '{credential}'"
        )));
    };
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(incomplete("Credential must name an access key id, a region and a service."));
    }
    if terminator != TERMINATOR {
        return Err(QueryAuthError::CredentialScope(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator}'."
        )));
    }
    let scope_date = Date::parse(scope_date, SCOPE_DATE).map_err(|_| {
        QueryAuthError::IncompleteSignature(format!("Date must be in ISO-8601 'basic format'. Got '{scope_date}'."))
    })?;
    let request_time = PrimitiveDateTime::parse(date_header, AMZ_DATE)
        .map_err(|_| {
            QueryAuthError::IncompleteSignature(format!(
                "Date must be in ISO-8601 'basic format'. Got '{date_header}'."
            ))
        })?
        .assume_utc();
    let signed_headers: Vec<String> = signed_headers.split(';').map(str::to_ascii_lowercase).collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err(incomplete("SignedHeaders must be a ';'-separated list of header names."));
    }
    let session_token = match headers.get("x-amz-security-token") {
        None => None,
        Some(token) => Some(
            token
                .to_str()
                .map_err(|_| incomplete("The X-Amz-Security-Token header is not visible ASCII."))?
                .to_string(),
        ),
    };
    Ok(SignedQuery {
        access_key_id: access_key_id.to_string(),
        scope_date,
        request_time,
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_string(),
        session_token,
    })
}

/// Recomputes the signature over the canonical request (method, canonical URI, canonical query
/// string, the signed headers canonicalised, hex SHA-256 of `body`) with `secret` and compares it
/// in constant time. Also requires the request time within 15 minutes of `now`, the scope date
/// equal to the request date, and `host` among the signed headers.
pub fn verify(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    signed: &SignedQuery,
    secret: &str,
    now: OffsetDateTime,
) -> Result<(), QueryAuthError> {
    let request_date = amz_date(signed.request_time);
    if signed.request_time < now - MAX_SKEW {
        return Err(QueryAuthError::RequestExpired(format!(
            "Signature expired: {request_date} is now earlier than {} ({} - 15 min.)",
            amz_date(now - MAX_SKEW),
            amz_date(now)
        )));
    }
    if signed.request_time > now + MAX_SKEW {
        return Err(QueryAuthError::RequestExpired(format!(
            "Signature not yet current: {request_date} is still later than {} ({} + 15 min.)",
            amz_date(now + MAX_SKEW),
            amz_date(now)
        )));
    }
    let scope_day = scope_date(signed.scope_date);
    if signed.scope_date != signed.request_time.date() {
        return Err(QueryAuthError::CredentialScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
             '{scope_day}' != '{}', from '{request_date}'.",
            scope_date(signed.request_time.date())
        )));
    }
    if !signed.signed_headers.iter().any(|name| name == "host") {
        return Err(QueryAuthError::IncompleteSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_string(),
        ));
    }
    let canonical = canonical_request(method, uri, headers, body, &signed.signed_headers)?;
    let scope = format!("{scope_day}/{}/{}/{TERMINATOR}", signed.region, signed.service);
    let string_to_sign = format!("{ALGORITHM}\n{request_date}\n{scope}\n{}", hex::encode(Sha256::digest(&canonical)));
    let key = signing_key(secret, &scope_day, &signed.region, &signed.service);
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if bool::from(expected.as_bytes().ct_eq(signed.signature.as_bytes())) {
        Ok(())
    } else {
        Err(QueryAuthError::SignatureDoesNotMatch)
    }
}

/// SigV4's signing key for a scope: `secret` under the day (`YYYYMMDD`), region and service.
pub fn signing_key(secret: &str, scope_day: &str, region: &str, service: &str) -> Vec<u8> {
    let mut key = hmac(Zeroizing::new(format!("AWS4{secret}")).as_bytes(), scope_day.as_bytes());
    for part in [region, service, TERMINATOR] {
        key = hmac(&key, part.as_bytes());
    }
    key
}

/// The hex HMAC-SHA256 of `data` under a SigV4 signing key.
pub fn sign(key: &[u8], data: &[u8]) -> String {
    hex::encode(hmac(key, data))
}

/// The canonical request, as bytes: header values are hashed as sent, whatever their encoding.
fn canonical_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    signed_headers: &[String],
) -> Result<Vec<u8>, QueryAuthError> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(uri.path()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(uri.query().unwrap_or("")).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut values = headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            // HTTP/2 carries the host as :authority, which http puts in the URI.
            match uri.authority() {
                Some(authority) if name == "host" => out.extend_from_slice(authority.as_str().as_bytes()),
                _ => return Err(QueryAuthError::SignatureDoesNotMatch),
            }
        }
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_trimmed(&mut out, value.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(hex::encode(Sha256::digest(body)).as_bytes());
    Ok(out)
}

/// A header value as AWS canonicalises it: spaces (only spaces) trimmed from both ends and each
/// run of spaces inside made one.
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
    let end = value.iter().rposition(|&b| b != b' ').map_or(start, |i| i + 1);
    let mut previous_space = false;
    for &byte in &value[start..end] {
        if !(byte == b' ' && previous_space) {
            out.push(byte);
        }
        previous_space = byte == b' ';
    }
}

/// The path as sent, with dot segments and empty segments removed, encoded once more (services
/// other than S3 sign the already-encoded path encoded again).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(&uri_encode(segment.as_bytes()));
    }
    // A trailing slash survives normalisation ("/a/" stays "/a/"), and the root is "/".
    if out.is_empty() || (path.ends_with('/') && !segments.is_empty()) {
        out.push('/');
    }
    out
}

/// Query parameters decoded, each name and value encoded as RFC 3986 requires, sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| (uri_encode(name.as_bytes()), uri_encode(value.as_bytes())))
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.into_iter().map(|(name, value)| format!("{name}={value}")).collect();
    pairs.join("&")
}

/// Percent-encodes every byte but the RFC 3986 unreserved characters, with uppercase hex.
fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// X-Amz-Date's form (ISO 8601 basic, UTC).
fn amz_date(time: OffsetDateTime) -> String {
    time.format(AMZ_DATE).expect("the format names only date and time fields")
}

/// The credential scope's date form.
fn scope_date(date: Date) -> String {
    date.format(SCOPE_DATE).expect("the format names only date fields")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration as StdDuration, SystemTime};

    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use time::macros::datetime;

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// AWS's documented example: IAM ListUsers, GET with the parameters in the query string.
    fn aws_example() -> (Method, Uri, HeaderMap) {
        let uri: Uri = "/?Action=ListUsers&Version=2010-05-08".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/x-www-form-urlencoded; charset=utf-8".parse().unwrap());
        headers.insert("host", "iam.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
                .parse()
                .unwrap(),
        );
        (Method::GET, uri, headers)
    }

    const EXAMPLE_NOW: OffsetDateTime = datetime!(2015-08-30 12:40:00 UTC);

    fn check(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<(), QueryAuthError> {
        let signed = parse(method, uri, headers)?;
        verify(method, uri, headers, body, &signed, secret, now)
    }

    #[test]
    fn the_aws_documented_example_verifies() {
        let (method, uri, headers) = aws_example();
        let signed = parse(&method, &uri, &headers).unwrap();
        assert_eq!(signed.access_key_id, "AKIDEXAMPLE");
        assert_eq!(signed.scope_date, time::macros::date!(2015 - 08 - 30));
        assert_eq!(signed.request_time, datetime!(2015-08-30 12:36:00 UTC));
        assert_eq!((signed.region.as_str(), signed.service.as_str()), ("us-east-1", "iam"));
        assert_eq!(signed.signed_headers, ["content-type", "host", "x-amz-date"]);
        assert_eq!(signed.session_token, None);
        assert_eq!(verify(&method, &uri, &headers, b"", &signed, SECRET, EXAMPLE_NOW), Ok(()));
    }

    #[test]
    fn the_canonical_request_is_the_documented_one() {
        let (method, uri, headers) = aws_example();
        let signed_headers = ["content-type".to_string(), "host".to_string(), "x-amz-date".to_string()];
        let canonical = canonical_request(&method, &uri, &headers, b"", &signed_headers).unwrap();
        // Its hash appears in AWS's example string to sign.
        assert_eq!(
            hex::encode(Sha256::digest(&canonical)),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
    }

    #[test]
    fn wrong_secret_query_or_header_is_refused() {
        let (method, uri, headers) = aws_example();
        let refused = Err(QueryAuthError::SignatureDoesNotMatch);
        assert_eq!(
            check(&method, &uri, &headers, b"", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz", EXAMPLE_NOW),
            refused
        );
        assert_eq!(check(&Method::POST, &uri, &headers, b"", SECRET, EXAMPLE_NOW), refused);
        let other_query: Uri = "/?Action=ListUsers&Version=2010-05-09".parse().unwrap();
        assert_eq!(check(&method, &other_query, &headers, b"", SECRET, EXAMPLE_NOW), refused);
        assert_eq!(check(&method, &uri, &headers, b"Action=DeleteUser", SECRET, EXAMPLE_NOW), refused);
        let mut other_host = headers.clone();
        other_host.insert("host", "evil.example".parse().unwrap());
        assert_eq!(check(&method, &uri, &other_host, b"", SECRET, EXAMPLE_NOW), refused);
        let mut no_content_type = headers.clone();
        no_content_type.remove("content-type");
        assert_eq!(check(&method, &uri, &no_content_type, b"", SECRET, EXAMPLE_NOW), refused);
        // An unsigned header may change freely.
        let mut extra = headers.clone();
        extra.insert("user-agent", "aws-cli/2".parse().unwrap());
        assert_eq!(check(&method, &uri, &extra, b"", SECRET, EXAMPLE_NOW), Ok(()));
    }

    #[test]
    fn tampered_signature_is_refused() {
        let (method, uri, mut headers) = aws_example();
        let authorization = headers["authorization"].to_str().unwrap().replace("5d672d79", "5d672d78");
        headers.insert("authorization", authorization.parse().unwrap());
        assert_eq!(
            check(&method, &uri, &headers, b"", SECRET, EXAMPLE_NOW),
            Err(QueryAuthError::SignatureDoesNotMatch)
        );
    }

    #[test]
    fn request_time_must_be_within_15_minutes() {
        let (method, uri, headers) = aws_example();
        let signed_at = datetime!(2015-08-30 12:36:00 UTC);
        for now in [signed_at - Duration::minutes(15), signed_at + Duration::minutes(15)] {
            assert_eq!(check(&method, &uri, &headers, b"", SECRET, now), Ok(()), "{now}");
        }
        let late = signed_at + Duration::minutes(15) + Duration::seconds(1);
        let error = check(&method, &uri, &headers, b"", SECRET, late).unwrap_err();
        assert_eq!(
            error,
            QueryAuthError::RequestExpired(
                "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T125101Z - 15 min.)"
                    .into()
            )
        );
        assert_eq!((error.code(), error.status()), ("SignatureDoesNotMatch", StatusCode::FORBIDDEN));
        let early = signed_at - Duration::minutes(16);
        let error = check(&method, &uri, &headers, b"", SECRET, early).unwrap_err();
        assert!(
            matches!(&error, QueryAuthError::RequestExpired(m) if m.starts_with("Signature not yet current")),
            "{error}"
        );
    }

    #[test]
    fn a_tampered_date_is_refused() {
        let (method, uri, mut headers) = aws_example();
        headers.insert("x-amz-date", "20150830T123700Z".parse().unwrap());
        assert_eq!(
            check(&method, &uri, &headers, b"", SECRET, EXAMPLE_NOW),
            Err(QueryAuthError::SignatureDoesNotMatch)
        );
        headers.insert("x-amz-date", "20150831T000000Z".parse().unwrap());
        let error = check(&method, &uri, &headers, b"", SECRET, datetime!(2015-08-31 00:01:00 UTC)).unwrap_err();
        assert!(
            matches!(&error, QueryAuthError::CredentialScope(m) if m.contains("'20150830' != '20150831'")),
            "{error}"
        );
        assert_eq!(error.code(), "SignatureDoesNotMatch");
    }

    #[test]
    fn host_must_be_signed() {
        let (method, uri, mut headers) = aws_example();
        let authorization = headers["authorization"].to_str().unwrap().replace("content-type;host;", "content-type;");
        headers.insert("authorization", authorization.parse().unwrap());
        let error = check(&method, &uri, &headers, b"", SECRET, EXAMPLE_NOW).unwrap_err();
        assert!(matches!(&error, QueryAuthError::IncompleteSignature(m) if m.contains("'Host'")), "{error}");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn header_values_are_trimmed_and_runs_of_spaces_collapsed() {
        let mut out = Vec::new();
        push_trimmed(&mut out, b"  a   b  c ");
        assert_eq!(out, b"a b c");
        out.clear();
        push_trimmed(&mut out, b"   ");
        assert_eq!(out, b"");
        out.clear();
        push_trimmed(&mut out, b"\ta\t\tb");
        assert_eq!(out, b"\ta\t\tb", "only spaces are touched");

        // The example still verifies when the signed content type is sent with extra spaces.
        let (method, uri, mut headers) = aws_example();
        headers.insert("content-type", "  application/x-www-form-urlencoded;    charset=utf-8 ".parse().unwrap());
        assert_eq!(check(&method, &uri, &headers, b"", SECRET, EXAMPLE_NOW), Ok(()));
    }

    #[test]
    fn canonical_uri_and_query_follow_aws_rules() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(canonical_uri("/a%20b/~x"), "/a%2520b/~x");
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=x y&a=1&c"), "a=1&a=x%20y&b=2&c=");
        assert_eq!(canonical_query("k=%2F%7E+*"), "k=%2F~%20%2A");
    }

    fn sdk_signed_post(body: &str, session_token: Option<&str>, time: SystemTime) -> http::Request<Vec<u8>> {
        let identity =
            Credentials::new("AKIALATCHKEYTEST", SECRET, session_token.map(str::to_string), None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("iam")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let mut request = http::Request::post("http://127.0.0.1:9000/")
            .header("host", "127.0.0.1:9000")
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .body(body.as_bytes().to_vec())
            .unwrap();
        let headers = request.headers().iter().map(|(name, value)| (name.as_str(), value.to_str().unwrap()));
        let signable =
            SignableRequest::new("POST", "http://127.0.0.1:9000/", headers, SignableBody::Bytes(body.as_bytes()))
                .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(&mut request);
        request
    }

    #[test]
    fn a_form_post_signed_by_the_aws_sdk_verifies() {
        let signed_at = SystemTime::UNIX_EPOCH + StdDuration::from_secs(1_796_000_000);
        let now = OffsetDateTime::from(signed_at) + Duration::minutes(2);
        let body = "Action=CreateUser&UserName=al%20ice%2Bx&Version=2010-05-08";
        let request = sdk_signed_post(body, Some("session-token-value"), signed_at);
        let (method, uri, headers) = (request.method(), request.uri(), request.headers());
        let signed = parse(method, uri, headers).unwrap();
        assert_eq!(signed.access_key_id, "AKIALATCHKEYTEST");
        assert_eq!(signed.session_token.as_deref(), Some("session-token-value"));
        assert!(signed.signed_headers.contains(&"x-amz-security-token".to_string()));
        assert!(!format!("{signed:?}").contains("session-token-value"));
        assert_eq!(verify(method, uri, headers, body.as_bytes(), &signed, SECRET, now), Ok(()));

        let refused = Err(QueryAuthError::SignatureDoesNotMatch);
        let tampered = body.replace("al%20ice", "mallory");
        assert_eq!(verify(method, uri, headers, tampered.as_bytes(), &signed, SECRET, now), refused);
        assert_eq!(verify(method, uri, headers, body.as_bytes(), &signed, "another-secret", now), refused);
        let mut other_token = headers.clone();
        other_token.insert("x-amz-security-token", "another-token".parse().unwrap());
        assert_eq!(verify(method, uri, &other_token, body.as_bytes(), &signed, SECRET, now), refused);
        let expired = now + Duration::hours(1);
        assert!(matches!(
            verify(method, uri, headers, body.as_bytes(), &signed, SECRET, expired),
            Err(QueryAuthError::RequestExpired(_))
        ));
    }

    #[test]
    fn missing_or_malformed_authorization_is_refused_with_aws_codes() {
        let (method, uri, headers) = aws_example();
        let mut none = headers.clone();
        none.remove("authorization");
        let error = parse(&method, &uri, &none).unwrap_err();
        assert_eq!(
            (error.code(), error.message().as_str()),
            ("MissingAuthenticationToken", "Request is missing Authentication Token")
        );
        assert_eq!(error.status(), StatusCode::FORBIDDEN);

        let presigned: Uri = "/?Action=ListUsers&X-Amz-Signature=abc".parse().unwrap();
        let error = parse(&method, &presigned, &none).unwrap_err();
        assert_eq!(error.code(), "IncompleteSignature");

        for (authorization, says) in [
            ("AWS AKIDEXAMPLE:c2lnbmF0dXJl", "Unsupported AWS 'algorithm'"),
            ("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00", "requires 'Credential'"),
            ("AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws4_request, Signature=00", "'SignedHeaders'"),
            (
                "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/aws4_request, SignedHeaders=host, Signature=00",
                "5 slash-delimited",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=AKID/2015-08-30/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00",
                "ISO-8601",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00",
                "access key id",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws4_request, SignedHeaders=host;;x, Signature=00",
                "SignedHeaders",
            ),
        ] {
            let mut malformed = headers.clone();
            malformed.insert("authorization", authorization.parse().unwrap());
            let error = parse(&method, &uri, &malformed).unwrap_err();
            assert_eq!(error.code(), "IncompleteSignature", "{authorization}: {error}");
            assert!(error.message().contains(says), "{authorization}: {error}");
        }

        let mut wrong_terminator = headers.clone();
        wrong_terminator.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws4_reqest, SignedHeaders=host, Signature=00"
                .parse()
                .unwrap(),
        );
        let error = parse(&method, &uri, &wrong_terminator).unwrap_err();
        assert!(matches!(error, QueryAuthError::CredentialScope(_)), "{error}");

        let mut no_date = headers.clone();
        no_date.remove("x-amz-date");
        assert!(parse(&method, &uri, &no_date).unwrap_err().message().contains("'X-Amz-Date'"));
        let mut bad_date = headers.clone();
        bad_date.insert("x-amz-date", "Sun, 30 Aug 2015 12:36:00 GMT".parse().unwrap());
        assert_eq!(parse(&method, &uri, &bad_date).unwrap_err().code(), "IncompleteSignature");
    }

    #[test]
    fn auth_errors_become_query_errors() {
        let error = QueryError::from(QueryAuthError::SignatureDoesNotMatch);
        assert_eq!((error.status, error.code, error.sender), (StatusCode::FORBIDDEN, "SignatureDoesNotMatch", true));
        assert!(error.message.starts_with("The request signature we calculated does not match"));
    }
}
