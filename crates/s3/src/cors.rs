//! Bucket CORS: PutBucketCors, GetBucketCors and DeleteBucketCors, with S3's validation, and the
//! matching of a cross-origin request against a bucket's rules. The server's router answers
//! preflight `OPTIONS` requests and adds the `Access-Control-*` headers to actual requests from
//! [`CorsRule::headers`]; a request no rule admits gets no CORS header at all.

use http::{HeaderName, HeaderValue, header};
use latchkey_meta::BucketSetting;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use crate::S3Front;
use crate::error::OrS3;

/// S3 accepts up to 100 rules per bucket.
const MAX_RULES: usize = 100;

/// The methods a rule may allow.
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// One CORS rule, as stored (JSON in the bucket's settings) and matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// What a preflight asks for: the method and the headers the actual request will send.
pub struct Preflight<'a> {
    pub method: &'a str,
    pub headers: Vec<&'a str>,
}

impl CorsRule {
    /// Whether this rule admits a request from `origin` with `method`, sending `headers`.
    fn admits(&self, origin: &str, method: &str, headers: &[&str]) -> bool {
        self.allowed_origins.iter().any(|pattern| wildcard(pattern, origin, false))
            && self.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| self.allowed_headers.iter().any(|pattern| wildcard(pattern, h, true)))
    }

    /// The `Access-Control-*` headers of an answer to `origin` (with `Vary: Origin`, since the
    /// answer depends on it); for a preflight, also the methods, headers and max age allowed.
    pub fn headers(&self, origin: &str, preflight: Option<&Preflight<'_>>) -> Vec<(HeaderName, HeaderValue)> {
        let any_origin = self.allowed_origins.iter().any(|o| o == "*");
        let mut out = Vec::with_capacity(6);
        let mut add = |name: HeaderName, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                out.push((name, value));
            }
        };
        add(header::ACCESS_CONTROL_ALLOW_ORIGIN, if any_origin { "*" } else { origin });
        add(header::VARY, "Origin, Access-Control-Request-Headers, Access-Control-Request-Method");
        if !any_origin {
            add(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        match preflight {
            Some(preflight) => {
                add(header::ACCESS_CONTROL_ALLOW_METHODS, &self.allowed_methods.join(", "));
                if !preflight.headers.is_empty() {
                    add(header::ACCESS_CONTROL_ALLOW_HEADERS, &preflight.headers.join(", "));
                }
                if let Some(age) = self.max_age_seconds {
                    add(header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
                }
            }
            None if !self.expose_headers.is_empty() => {
                add(header::ACCESS_CONTROL_EXPOSE_HEADERS, &self.expose_headers.join(", "));
            }
            None => {}
        }
        out
    }
}

/// The first rule that admits a request from `origin` with `method` sending `headers`, as S3
/// takes the first match.
pub fn matching<'a>(rules: &'a [CorsRule], origin: &str, method: &str, headers: &[&str]) -> Option<&'a CorsRule> {
    rules.iter().find(|rule| rule.admits(origin, method, headers))
}

/// `value` against a pattern with at most one `*` (which matches any run of characters).
fn wildcard(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| if ignore_case { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.is_char_boundary(prefix.len())
                && value.is_char_boundary(value.len() - suffix.len())
                && eq(&value[..prefix.len()], prefix)
                && eq(&value[value.len() - suffix.len()..], suffix)
        }
    }
}

/// The rules of a configuration, checked as S3 checks them.
fn rules_of(configuration: CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    let wire = configuration.cors_rules;
    if wire.is_empty() || wire.len() > MAX_RULES {
        return Err(s3_error!(MalformedXML, "A CORS configuration has 1 to {MAX_RULES} rules."));
    }
    wire.into_iter()
        .map(|rule| {
            if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
                return Err(s3_error!(MalformedXML, "Each CORS rule needs an AllowedOrigin and an AllowedMethod."));
            }
            if let Some(method) = rule.allowed_methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
                return Err(s3_error!(
                    InvalidRequest,
                    "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
                ));
            }
            if rule.max_age_seconds.is_some_and(|age| age < 0) {
                return Err(s3_error!(InvalidRequest, "MaxAgeSeconds cannot be negative."));
            }
            let headers = rule.allowed_headers.unwrap_or_default();
            let expose = rule.expose_headers.unwrap_or_default();
            let values = rule.allowed_origins.iter().chain(&rule.allowed_methods).chain(&headers).chain(&expose);
            if let Some(bad) = values.clone().find(|v| http::HeaderValue::from_str(v).is_err()) {
                return Err(s3_error!(InvalidRequest, "CORS rule value {bad:?} is not a valid header value."));
            }
            for pattern in rule.allowed_origins.iter().chain(&headers) {
                if pattern.matches('*').count() > 1 {
                    return Err(s3_error!(
                        InvalidRequest,
                        "AllowedOrigin \"{pattern}\" can not have more than one wildcard."
                    ));
                }
            }
            Ok(CorsRule {
                id: rule.id,
                allowed_origins: rule.allowed_origins,
                allowed_methods: rule.allowed_methods,
                allowed_headers: headers,
                expose_headers: expose,
                max_age_seconds: rule.max_age_seconds,
            })
        })
        .collect()
}

pub(crate) async fn put_bucket_cors(
    front: &S3Front,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let input = req.input;
    let rules = rules_of(input.cors_configuration)?;
    let json = serde_json::to_string(&rules).map_err(|e| s3_error!(e, InternalError))?;
    front.configs.set(&input.bucket, BucketSetting::Cors(Some(json))).await.or_s3()?;
    Ok(S3Response::new(PutBucketCorsOutput::default()))
}

pub(crate) async fn get_bucket_cors(
    front: &S3Front,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    front.objects.bucket(&req.input.bucket).await.or_s3()?;
    let rules = front.configs.get(&req.input.bucket);
    let Some(rules) = rules.cors() else {
        return Err(s3_error!(NoSuchCORSConfiguration, "The CORS configuration does not exist"));
    };
    let wire = rules
        .iter()
        .map(|rule| CORSRule {
            allowed_headers: (!rule.allowed_headers.is_empty()).then(|| rule.allowed_headers.clone()),
            allowed_methods: rule.allowed_methods.clone(),
            allowed_origins: rule.allowed_origins.clone(),
            expose_headers: (!rule.expose_headers.is_empty()).then(|| rule.expose_headers.clone()),
            id: rule.id.clone(),
            max_age_seconds: rule.max_age_seconds,
        })
        .collect();
    Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(wire) }))
}

pub(crate) async fn delete_bucket_cors(
    front: &S3Front,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    front.configs.set(&req.input.bucket, BucketSetting::Cors(None)).await.or_s3()?;
    Ok(S3Response::new(DeleteBucketCorsOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            id: None,
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(600),
        }
    }

    #[test]
    fn the_first_rule_admitting_origin_method_and_headers_matches() {
        let rules = [
            rule(&["https://*.example.com"], &["GET"], &[]),
            rule(&["https://app.example.com"], &["PUT", "GET"], &["content-*", "x-amz-*"]),
        ];
        let app = "https://app.example.com";
        assert_eq!(matching(&rules, app, "GET", &[]), Some(&rules[0]));
        assert_eq!(matching(&rules, app, "PUT", &["Content-Type", "X-Amz-Date"]), Some(&rules[1]));
        assert_eq!(matching(&rules, app, "PUT", &["authorization"]), None, "a header no rule allows");
        assert_eq!(matching(&rules, app, "DELETE", &[]), None);
        assert_eq!(matching(&rules, "https://example.com", "GET", &[]), None, "the wildcard needs its dot");
        assert_eq!(matching(&rules, "https://APP.example.com", "PUT", &[]), None, "origins are exact");
        assert_eq!(matching(&rules, "https://app.example.com.evil.test", "GET", &[]), None);
    }

    #[test]
    fn answers_name_the_origin_unless_any_is_allowed() {
        let specific = rule(&["https://app.example.com"], &["PUT"], &["*"]);
        let preflight = Preflight { method: "PUT", headers: vec!["content-type"] };
        let headers = specific.headers("https://app.example.com", Some(&preflight));
        let get = |name: HeaderName| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_str().unwrap());
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("https://app.example.com"));
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS), Some("true"));
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_HEADERS), Some("content-type"));
        assert_eq!(get(header::ACCESS_CONTROL_MAX_AGE), Some("600"));
        let any = rule(&["*"], &["GET"], &[]);
        let headers = any.headers("https://x.test", None);
        assert!(headers.iter().any(|(n, v)| *n == header::ACCESS_CONTROL_ALLOW_ORIGIN && v == "*"));
        assert!(!headers.iter().any(|(n, _)| *n == header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
        assert!(headers.iter().any(|(n, v)| *n == header::ACCESS_CONTROL_EXPOSE_HEADERS && v == "ETag"));
    }
}
