//! SigV2 signatures checked in constant time. s3s 0.14 compares SigV2 signatures with `!=`,
//! whose running time tells an attacker how much of a forged signature is right. The server
//! verifies every SigV2 request here first, with the same string to sign as s3s and a
//! constant-time comparison, so a wrong signature never reaches s3s's comparison; s3s then
//! verifies the (correct) signature again.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, Uri, header};
use s3s::auth::S3Auth;
use s3s::{S3Result, s3_error};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::KeyAuth;

/// The sub-resources SigV2 signs, in the order it signs them (sorted; as s3s 0.14).
const SIGNED_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Verifies SigV2 requests with the secrets [`KeyAuth`] holds.
pub struct SigV2Verifier {
    auth: KeyAuth,
}

/// A SigV2 request's claim: who signed, the signature, and what the date line of the string to
/// sign is.
struct Claim {
    access_key: String,
    signature: String,
    date_line: String,
}

impl SigV2Verifier {
    pub fn new(auth: KeyAuth) -> Self {
        Self { auth }
    }

    /// `Ok` for a request that is not SigV2-signed or whose SigV2 signature is right;
    /// `SignatureDoesNotMatch` otherwise.
    /// `path`: the request's path, path style (SigV2 signs the bucket of a virtual-hosted
    /// request as the path's first segment).
    pub async fn verify(&self, method: &Method, uri: &Uri, path: &str, headers: &HeaderMap) -> S3Result<()> {
        // Most requests are SigV4: tell them apart before copying the query (names are decoded,
        // as s3s decodes them: `Sig%6Eature` is a SigV2 signature too).
        let v2_query = uri.query().is_some_and(|q| crate::query::has(q, "Signature"));
        let v2_header = headers.get(header::AUTHORIZATION).is_some_and(|a| a.as_bytes().starts_with(b"AWS "));
        if !v2_query && !v2_header {
            return Ok(());
        }
        let query = decoded_query(uri);
        let Some(claim) = claim(&query, headers) else { return Ok(()) };
        let secret = self.auth.get_secret_key(&claim.access_key).await?;
        let string_to_sign = string_to_sign(method, path, &query, headers, &claim.date_line);
        let expected = signature(secret.expose(), &string_to_sign);
        if bool::from(expected.as_bytes().ct_eq(claim.signature.as_bytes())) {
            Ok(())
        } else {
            Err(s3_error!(SignatureDoesNotMatch))
        }
    }
}

/// SigV2's signature of `string_to_sign` under `secret`: base64 of HMAC-SHA1 (a POST form's
/// is over its policy).
pub(crate) fn signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The query, form-decoded, sorted by name (stable), as s3s reads it.
fn decoded_query(uri: &Uri) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// The value of a name that occurs exactly once.
fn unique<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>, name: &str) -> Option<&'a str> {
    let mut values = pairs.filter(|(n, _)| *n == name).map(|(_, v)| v);
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    unique(query.iter().map(|(n, v)| (n.as_str(), v.as_str())), name)
}

fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    unique(headers.iter().filter_map(|(n, v)| Some((n.as_str(), utf8(v)?))), name)
}

/// A header value as s3s reads it: any UTF-8 (user metadata may be), not only visible ASCII.
fn utf8(value: &http::HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}

/// What a SigV2 request claims, as s3s reads it: a presigned URL (`Signature` in the query)
/// first, else an `Authorization: AWS key:signature` header.
fn claim(query: &[(String, String)], headers: &HeaderMap) -> Option<Claim> {
    if query.iter().any(|(n, _)| n == "Signature") {
        // s3s decodes the signature a second time; so must this, to agree with it.
        let signature = query_value(query, "Signature").unwrap_or_default();
        let signature = percent_encoding::percent_decode_str(signature).decode_utf8_lossy().into_owned();
        return Some(Claim {
            access_key: query_value(query, "AWSAccessKeyId").unwrap_or_default().to_owned(),
            signature,
            date_line: query_value(query, "Expires").unwrap_or_default().to_owned(),
        });
    }
    let (access_key, signature) =
        headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("AWS ")?.split_once(':')?;
    // With x-amz-date, the Date line is empty (x-amz-date is signed among the amz headers).
    let date_line = match header_value(headers, "x-amz-date") {
        Some(_) => "",
        None => header_value(headers, "date").unwrap_or_default(),
    };
    Some(Claim { access_key: access_key.to_owned(), signature: signature.to_owned(), date_line: date_line.to_owned() })
}

/// Verb, Content-MD5, Content-Type, date line, canonical amz headers, canonical resource.
fn string_to_sign(
    method: &Method,
    raw_path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    date_line: &str,
) -> String {
    let mut out = String::with_capacity(256);
    for line in [
        method.as_str(),
        header_value(headers, "content-md5").unwrap_or_default(),
        header_value(headers, "content-type").unwrap_or_default(),
        date_line,
    ] {
        out.push_str(line);
        out.push('\n');
    }
    let mut amz: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-amz-"))
        .filter_map(|(n, v)| Some((n.as_str(), utf8(v)?)))
        .collect();
    amz.sort_by(|a, b| a.0.cmp(b.0));
    let mut last = "";
    for &(name, _) in &amz {
        if name == last {
            continue;
        }
        last = name;
        let values: Vec<&str> = amz.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.trim()).collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push_str(raw_path);
    let mut separator = '?';
    for name in SIGNED_SUBRESOURCES {
        if let Some(value) = query_value(query, name) {
            out.push(separator);
            separator = '&';
            out.push_str(name);
            if !value.is_empty() {
                out.push('=');
                out.push_str(value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        map
    }

    /// AWS's documented examples (RESTAuthentication), path-style.
    #[test]
    fn strings_to_sign_match_aws_examples() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let get = headers(&[("date", "Tue, 27 Mar 2007 19:36:42 +0000")]);
        let uri: Uri = "/awsexamplebucket1/photos/puppy.jpg".parse().unwrap();
        let date_line = "Tue, 27 Mar 2007 19:36:42 +0000";
        let sts = string_to_sign(&Method::GET, uri.path(), &decoded_query(&uri), &get, date_line);
        assert_eq!(sts, "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg");
        assert_eq!(signature(secret, &sts), "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");

        let put = headers(&[
            ("content-type", "image/jpeg"),
            ("x-amz-meta-b", "2"),
            ("x-amz-meta-a", " one "),
            ("x-amz-meta-a", "two"),
            ("x-amz-date", "Tue, 27 Mar 2007 21:15:45 +0000"),
            ("date", "ignored when x-amz-date is present"),
        ]);
        let uri: Uri = "/b/k?uploadId=7&partNumber=2&x-id=PutObject".parse().unwrap();
        let query = decoded_query(&uri);
        let Some(Claim { date_line, .. }) = claim(&query, &{
            let mut h = put.clone();
            h.insert(header::AUTHORIZATION, "AWS AK:sig".parse().unwrap());
            h
        }) else {
            panic!("a SigV2 header claim")
        };
        assert_eq!(date_line, "");
        assert_eq!(
            string_to_sign(&Method::PUT, uri.path(), &query, &put, &date_line),
            "PUT\n\nimage/jpeg\n\nx-amz-date:Tue, 27 Mar 2007 21:15:45 +0000\nx-amz-meta-a:one,two\nx-amz-meta-b:2\n/b/k?partNumber=2&uploadId=7"
        );
    }

    /// Every spelling of a SigV2 signature reaches the constant-time check, so none can reach
    /// s3s's `!=` with a wrong signature.
    #[tokio::test]
    async fn every_sigv2_request_is_verified_here() {
        let dir = tempfile::tempdir().unwrap();
        let meta = latchkey_meta::SqliteStore::open(&dir.path().join("meta.db")).await.unwrap();
        let root = latchkey_identity::RootCredentials { access_key_id: "AK".into(), secret_key: "secret".into() };
        let master = latchkey_identity::MasterKey::from_bytes([7; 32]);
        let account = latchkey_identity::Account { id: "000000000000".into() };
        let identity =
            latchkey_identity::Identity::open(std::sync::Arc::new(meta), master, account, root).await.unwrap();
        let verifier = SigV2Verifier::new(KeyAuth::new(identity));
        let refused = |uri: &str, auth: Option<&str>| {
            let uri: Uri = uri.parse().unwrap();
            let mut headers = HeaderMap::new();
            if let Some(auth) = auth {
                headers.insert(header::AUTHORIZATION, auth.parse().unwrap());
            }
            let verifier = &verifier;
            async move { verifier.verify(&Method::GET, &uri, uri.path(), &headers).await.is_err() }
        };
        assert!(refused("/b/k?AWSAccessKeyId=AK&Expires=1&Signature=x", None).await);
        assert!(refused("/b/k?AWSAccessKeyId=AK&Expires=1&Sig%6Eature=x", None).await);
        assert!(refused("/b/k", Some("AWS AK:x")).await);
        assert!(!refused("/b/k?X-Amz-Signature=x", Some("AWS4-HMAC-SHA256 Credential=AK/x")).await);
        let right = signature("secret", "GET\n\n\n1\n/b/k");
        let uri = format!(
            "/b/k?AWSAccessKeyId=AK&Expires=1&Signature={}",
            form_urlencoded::byte_serialize(right.as_bytes()).collect::<String>()
        );
        assert!(!refused(&uri, None).await);
    }

    #[test]
    fn presigned_claims_decode_their_signature_twice_as_s3s_does() {
        let uri: Uri = "/b/k?AWSAccessKeyId=AK&Expires=1700000000&Signature=a%252Bb%253D".parse().unwrap();
        let claim = claim(&decoded_query(&uri), &HeaderMap::new()).unwrap();
        assert_eq!((claim.access_key.as_str(), claim.signature.as_str()), ("AK", "a+b="));
        assert_eq!(claim.date_line, "1700000000");
        assert!(super::claim(&decoded_query(&"/b/k?X-Amz-Signature=x".parse().unwrap()), &HeaderMap::new()).is_none());
        let encoded: Uri = "/b/k?AWSAccessKeyId=AK&Expires=1&Sig%6Eature=x".parse().unwrap();
        assert_eq!(super::claim(&decoded_query(&encoded), &HeaderMap::new()).unwrap().signature, "x");
    }
}
