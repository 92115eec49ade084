//! The signature envelope: what can be checked about how a request is signed before anything of
//! it is read or parsed, and without a secret. The server runs [`SigningRules::check`] in front
//! of s3s, so an anonymous request is refused for its missing authentication (never for its key
//! or body), and so is a request signed for another region, a presigned URL that claims too long
//! a life, or a SigV2 request that is disabled or stale.

use std::time::Duration;

use http::{HeaderMap, Method, Uri, header};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// S3 refuses presigned URLs valid for longer than seven days; so does Latchkey (s3s does not).
pub const MAX_PRESIGNED_EXPIRY_SECS: u64 = 604_800;

/// How far a SigV2 header-signed request's date may be from the server's clock, as in AWS.
const SIGV2_MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The server's rules for signatures.
#[derive(Debug, Clone)]
pub struct SigningRules {
    /// The only region a SigV4 credential scope may name.
    pub region: String,
    /// The longest lifetime a presigned URL may claim (SigV4 `X-Amz-Expires`, SigV2 `Expires`).
    pub max_presigned_expiry: Duration,
    /// Whether SigV2 is accepted at all.
    pub sigv2: bool,
}

/// How a request says it is signed.
#[derive(Debug, PartialEq, Eq)]
enum Signing<'a> {
    Anonymous,
    V4Header { credential: &'a str },
    V4Query { credential: String, expires: Option<String> },
    V2Header,
    V2Query { expires: String },
}

impl SigningRules {
    /// Refuses what the envelope alone says is not acceptable; s3s then verifies the signature.
    /// `bucket`: the bucket the request names (its path-style path's first segment or its
    /// virtual host); `admits_anonymous(bucket)`: whether the bucket's policy may allow an
    /// unsigned request.
    pub fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        bucket: Option<&str>,
        now: OffsetDateTime,
        admits_anonymous: &dyn Fn(&str) -> bool,
    ) -> S3Result<()> {
        match signing(uri, headers) {
            Signing::Anonymous
                if (method == Method::GET || method == Method::HEAD) && bucket.is_some_and(admits_anonymous) =>
            {
                Ok(())
            }
            // (PostObject forms carry their signature in the body: the router hands them to
            // `post_object` before this check.)
            Signing::Anonymous => Err(s3_error!(AccessDenied, "Access Denied")),
            Signing::V4Header { credential } => self.check_scope(
                credential,
                S3ErrorCode::AuthorizationHeaderMalformed,
                "The authorization header is malformed",
            ),
            Signing::V4Query { credential, expires } => {
                self.check_scope(
                    &credential,
                    S3ErrorCode::AuthorizationQueryParametersError,
                    "Error parsing the X-Amz-Credential parameter",
                )?;
                let max = self.max_presigned_expiry.as_secs();
                if expires.is_some_and(|e| e.parse::<u64>().map_or(true, |secs| secs > max)) {
                    return Err(S3Error::with_message(
                        S3ErrorCode::AuthorizationQueryParametersError,
                        if max == MAX_PRESIGNED_EXPIRY_SECS {
                            format!("X-Amz-Expires must be less than a week (in seconds) that is {max}")
                        } else {
                            format!("X-Amz-Expires must be at most {max} seconds on this server")
                        },
                    ));
                }
                Ok(())
            }
            Signing::V2Header | Signing::V2Query { .. } if !self.sigv2 => Err(s3_error!(
                InvalidRequest,
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
            )),
            Signing::V2Header => check_v2_date(headers, now),
            Signing::V2Query { expires } => {
                // s3s refuses an expired URL; here, one that claims to live too long.
                let expires = expires.parse::<i64>().map_err(|_| {
                    s3_error!(AuthorizationQueryParametersError, "Expires must be a number of seconds since the epoch")
                })?;
                let max = i64::try_from(self.max_presigned_expiry.as_secs()).unwrap_or(i64::MAX);
                if expires.saturating_sub(now.unix_timestamp()) > max {
                    return Err(S3Error::with_message(
                        S3ErrorCode::AuthorizationQueryParametersError,
                        format!("Expires must be at most {max} seconds in the future"),
                    ));
                }
                Ok(())
            }
        }
    }
}

impl SigningRules {
    /// A SigV4 credential scope must be well formed and name this server's region and S3 (s3s
    /// would also take `sts`); AWS's wording, under `code`, after `context`.
    fn check_scope(&self, credential: &str, code: S3ErrorCode, context: &str) -> S3Result<()> {
        let message = match scope(credential) {
            Some((region, "s3")) if region == self.region => return Ok(()),
            Some((region, "s3")) => format!("{context}; the region '{region}' is wrong; expecting '{}'", self.region),
            Some((_, service)) => {
                format!("{context}; incorrect service \"{service}\". This endpoint belongs to \"s3\".")
            }
            None => format!(
                "{context}; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."
            ),
        };
        Err(S3Error::with_message(code, message))
    }
}

/// Which signature the request carries, judged as s3s will judge it (SigV2 first, then SigV4;
/// query before header).
fn signing<'a>(uri: &Uri, headers: &'a HeaderMap) -> Signing<'a> {
    let mut v2_signature = false;
    let (mut v2_expires, mut v4_credential, mut v4_signature, mut v4_expires) = (None, None, false, None);
    for (name, value) in crate::query::params(uri.query().unwrap_or_default()) {
        match name.as_ref() {
            "Signature" => v2_signature = true,
            "Expires" => v2_expires = Some(value.decode().into_owned()),
            "X-Amz-Signature" => v4_signature = true,
            "X-Amz-Credential" => v4_credential = Some(value.decode().into_owned()),
            "X-Amz-Expires" => v4_expires = Some(value.decode().into_owned()),
            _ => {}
        }
    }
    if v2_signature {
        return Signing::V2Query { expires: v2_expires.unwrap_or_default() };
    }
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if authorization.is_some_and(|a| a.starts_with("AWS ")) {
        return Signing::V2Header;
    }
    if v4_signature {
        return Signing::V4Query { credential: v4_credential.unwrap_or_default(), expires: v4_expires };
    }
    match authorization {
        Some(a) => Signing::V4Header { credential: header_credential(a).unwrap_or_default() },
        None => Signing::Anonymous,
    }
}

/// The credential of a SigV4 Authorization header, read where s3s reads it: the algorithm
/// (which must be ours), whitespace, then `Credential=` up to the first comma. Anything else
/// is no credential (and is refused as malformed): a `Credential=` placed elsewhere must not be
/// the one checked here while s3s verifies another.
fn header_credential(authorization: &str) -> Option<&str> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?;
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
    if rest.len() == authorization.len() - "AWS4-HMAC-SHA256".len() {
        return None;
    }
    rest.strip_prefix("Credential=")?.split(',').next()
}

/// The region and service of a SigV4 credential `AKID/YYYYMMDD/REGION/SERVICE/aws4_request`.
fn scope(credential: &str) -> Option<(&str, &str)> {
    let mut parts = credential.rsplitn(5, '/');
    let (terminator, service, region, _date) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (terminator == "aws4_request" && parts.next().is_some()).then_some((region, service))
}

/// SigV2 header auth signs a date but s3s never compares it with the clock, so a captured request
/// would replay forever: refuse dates more than 15 minutes off, as AWS does.
fn check_v2_date(headers: &HeaderMap, now: OffsetDateTime) -> S3Result<()> {
    let date = headers.get("x-amz-date").or_else(|| headers.get(header::DATE)).and_then(|v| v.to_str().ok());
    let date = date
        .and_then(parse_http_date)
        .ok_or_else(|| s3_error!(AccessDenied, "AWS authentication requires a valid Date or x-amz-date header"))?;
    if (now - date).unsigned_abs() > SIGV2_MAX_SKEW {
        return Err(s3_error!(
            RequestTimeTooSkewed,
            "The difference between the request time and the current time is too large."
        ));
    }
    Ok(())
}

/// An HTTP date in any of HTTP's three forms (IMF-fixdate, RFC 850, asctime), or RFC 2822 with
/// a numeric zone as AWS's own examples write it (`Tue, 27 Mar 2007 19:36:42 +0000`).
fn parse_http_date(value: &str) -> Option<OffsetDateTime> {
    let value = value.trim();
    httpdate::parse_http_date(value)
        .ok()
        .map(OffsetDateTime::from)
        .or_else(|| OffsetDateTime::parse(value, &Rfc2822).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> SigningRules {
        SigningRules {
            region: "us-east-1".into(),
            max_presigned_expiry: Duration::from_secs(MAX_PRESIGNED_EXPIRY_SECS),
            sigv2: true,
        }
    }

    fn check(rules: &SigningRules, uri: &str, headers: &[(&str, &str)], now: OffsetDateTime) -> Result<(), String> {
        check_as(rules, &Method::GET, uri, headers, now, &|_| false)
    }

    fn check_as(
        rules: &SigningRules,
        method: &Method,
        uri: &str,
        headers: &[(&str, &str)],
        now: OffsetDateTime,
        public: &dyn Fn(&str) -> bool,
    ) -> Result<(), String> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let uri: Uri = uri.parse().unwrap();
        rules
            .check(method, &uri, &map, crate::addressing::path_bucket(uri.path()), now, public)
            .map_err(|e| format!("{}: {}", e.code().as_str(), e.message().unwrap_or("")))
    }

    const NOW: OffsetDateTime = time::macros::datetime!(2026-12-02 12:00:00 UTC);

    #[test]
    fn anonymous_requests_are_refused_first() {
        let err = check(&rules(), "/b/%00/x?uploads", &[], NOW).unwrap_err();
        assert_eq!(err, "AccessDenied: Access Denied");
    }

    #[test]
    fn unsigned_reads_pass_only_for_buckets_that_may_grant_them() {
        let public = |bucket: &str| bucket == "pub";
        let at = |method: &Method, uri: &str| check_as(&rules(), method, uri, &[], NOW, &public);
        at(&Method::GET, "/pub/k").unwrap();
        at(&Method::HEAD, "/pub/a/b").unwrap();
        at(&Method::GET, "/pub").unwrap();
        for (method, uri) in [
            (Method::GET, "/private/k"),
            (Method::GET, "/"),
            (Method::GET, "//pub/k"),
            (Method::GET, "/%70ub/k"),
            (Method::PUT, "/pub/k"),
            (Method::POST, "/pub/k?uploads"),
            (Method::DELETE, "/pub/k"),
        ] {
            assert_eq!(at(&method, uri).unwrap_err(), "AccessDenied: Access Denied", "{method} {uri}");
        }
    }

    #[test]
    fn the_signing_region_must_be_ours() {
        let header = |region: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=AK/20261202/{region}/s3/aws4_request, SignedHeaders=host, Signature=ab"
            )
        };
        check(&rules(), "/b/k", &[("authorization", &header("us-east-1"))], NOW).unwrap();
        let err = check(&rules(), "/b/k", &[("authorization", &header("eu-west-1"))], NOW).unwrap_err();
        assert_eq!(
            err,
            "AuthorizationHeaderMalformed: The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-1'"
        );
        let query = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261202%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Expires=60&X-Amz-Signature=ab";
        let err = check(&rules(), query, &[], NOW).unwrap_err();
        assert!(err.starts_with("AuthorizationQueryParametersError: Error parsing the X-Amz-Credential parameter; the region 'eu-west-1' is wrong; expecting 'us-east-1'"), "{err}");
        let sts = header("us-east-1").replace("/s3/", "/sts/");
        let err = check(&rules(), "/b/k", &[("authorization", &sts)], NOW).unwrap_err();
        assert_eq!(
            err,
            "AuthorizationHeaderMalformed: The authorization header is malformed; incorrect service \"sts\". This endpoint belongs to \"s3\"."
        );
        // A credential smuggled where the algorithm goes (s3s would verify the second one).
        let smuggled = format!(
            "Credential=AK/20261202/us-east-1/s3/aws4_request {}",
            header("us-east-1").replace("/s3/", "/sts/")
        );
        let err = check(&rules(), "/b/k", &[("authorization", &smuggled)], NOW).unwrap_err();
        assert!(err.starts_with("AuthorizationHeaderMalformed"), "{err}");
        let sts_in_place = header("us-east-1")
            .replace("/s3/", "/sts/")
            .replace("Credential=", "Credential=AK/20261202/us-east-1/s3/aws4_request,Credential=");
        assert!(
            check(&rules(), "/b/k", &[("authorization", &sts_in_place)], NOW).is_ok(),
            "s3s reads the first one too"
        );
        let malformed = "AWS4-HMAC-SHA256 Credential=AK/us-east-1, SignedHeaders=host, Signature=ab";
        let err = check(&rules(), "/b/k", &[("authorization", malformed)], NOW).unwrap_err();
        assert!(err.starts_with("AuthorizationHeaderMalformed"), "{err}");
    }

    #[test]
    fn presigned_lifetimes_are_capped_for_both_signature_versions() {
        let v4 = |expires: &str| {
            format!(
                "/b/k?X-Amz-Credential=AK%2F20261202%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires={expires}&X-Amz-Signature=ab"
            )
        };
        check(&rules(), &v4("604800"), &[], NOW).unwrap();
        assert!(check(&rules(), &v4("604801"), &[], NOW).unwrap_err().contains("604800"));
        assert!(check(&rules(), &v4("-1"), &[], NOW).is_err());
        let v2 = |expires: i64| format!("/b/k?AWSAccessKeyId=AK&Expires={expires}&Signature=ab");
        let now = NOW.unix_timestamp();
        check(&rules(), &v2(now + 604_800), &[], NOW).unwrap();
        let err = check(&rules(), &v2(now + 10 * 365 * 86_400), &[], NOW).unwrap_err();
        assert_eq!(err, "AuthorizationQueryParametersError: Expires must be at most 604800 seconds in the future");
        let short = SigningRules { max_presigned_expiry: Duration::from_secs(60), ..rules() };
        assert!(check(&short, &v2(now + 61), &[], NOW).is_err());
        assert!(check(&short, &v4("61"), &[], NOW).unwrap_err().ends_with("at most 60 seconds on this server"));
    }

    #[test]
    fn sigv2_can_be_switched_off() {
        let off = SigningRules { sigv2: false, ..rules() };
        let headers = [("authorization", "AWS AK:c2ln"), ("date", "Wed, 02 Dec 2026 12:00:00 GMT")];
        check(&rules(), "/b/k", &headers, NOW).unwrap();
        assert!(check(&off, "/b/k", &headers, NOW).unwrap_err().starts_with("InvalidRequest"));
        let query = format!("/b/k?AWSAccessKeyId=AK&Expires={}&Signature=ab", NOW.unix_timestamp() + 60);
        assert!(check(&off, &query, &[], NOW).unwrap_err().starts_with("InvalidRequest"));
    }

    #[test]
    fn sigv2_header_dates_must_be_fresh() {
        let at = |date: &str| check(&rules(), "/b/k", &[("authorization", "AWS AK:c2ln"), ("date", date)], NOW);
        at("Wed, 02 Dec 2026 12:14:00 GMT").unwrap();
        at("Wed, 02 Dec 2026 11:46:00 GMT").unwrap();
        assert!(at("Wed, 02 Dec 2026 11:44:00 GMT").unwrap_err().starts_with("RequestTimeTooSkewed"));
        assert!(at("Tue, 01 Dec 2026 12:00:00 GMT").unwrap_err().starts_with("RequestTimeTooSkewed"));
        assert!(at("yesterday").unwrap_err().starts_with("AccessDenied"));
        at("Wednesday, 02-Dec-26 12:01:30 GMT").unwrap();
        at("Wed Dec  2 12:01:30 2026").unwrap();
        at("Wed, 02 Dec 2026 12:01:30 +0000").unwrap();
        // x-amz-date wins over Date, as in the string to sign.
        let headers = [
            ("authorization", "AWS AK:c2ln"),
            ("date", "Wed, 02 Dec 2026 12:00:00 GMT"),
            ("x-amz-date", "Sun, 01 Jan 2023 00:00:00 GMT"),
        ];
        assert!(check(&rules(), "/b/k", &headers, NOW).unwrap_err().starts_with("RequestTimeTooSkewed"));
    }
}
