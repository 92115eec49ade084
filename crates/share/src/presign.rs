//! Presigned S3 URLs for redirect-mode links: short SigV4 query signatures made with the
//! server's root key, so that a redirected client fetches the object through the S3 front.
//!
//! Such a URL is a bearer token again, which is why it lives at most [`MAX_REDIRECT_TTL`] and is
//! only handed out after a use was consumed.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The longest a redirect URL stays valid.
pub const MAX_REDIRECT_TTL: Duration = Duration::from_secs(60);

/// Bytes S3 leaves alone in an object's path: RFC 3986 unreserved characters and `/`.
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// Signs GET URLs with one access key.
pub struct UrlSigner {
    identity: Identity,
    region: String,
}

impl UrlSigner {
    pub fn new(access_key_id: &str, secret_key: &str, region: &str) -> Self {
        let credentials = Credentials::new(access_key_id, secret_key, None, None, "latchkey");
        Self { identity: credentials.into(), region: region.to_owned() }
    }

    /// A presigned GET of `bucket/key` (its version `version_id`, if given) on `base` (scheme and
    /// authority, as the client addressed this server), valid for `ttl` capped at
    /// [`MAX_REDIRECT_TTL`].
    pub fn presigned_get(
        &self,
        base: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        ttl: Duration,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let mut url = format!("{base}/{bucket}/{}", utf8_percent_encode(key, KEY_PATH));
        // The exact version (by its internal id, which GET accepts for a null version too).
        if let Some(version_id) = version_id {
            url.push_str("?versionId=");
            url.extend(utf8_percent_encode(version_id, KEY_PATH));
        }
        let mut settings = SigningSettings::default();
        // S3 signs the path as sent: single encoding, no normalisation.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(ttl.clamp(Duration::from_secs(1), MAX_REDIRECT_TTL));
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()?
            .into();
        let mut request = http::Request::get(&url).body(())?;
        let host = request.uri().authority().ok_or("the base URL has no host")?.to_string();
        request.headers_mut().insert(http::header::HOST, host.parse()?);
        let headers = [("host", host.as_str())];
        let signable = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::UnsignedPayload)?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        Ok(request.uri().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_short_lived_and_encode_the_key() {
        let signer = UrlSigner::new("AKIDEXAMPLE", "secret", "us-east-1");
        let url = signer
            .presigned_get("http://127.0.0.1:9000", "b", "a dir/ünï+x.txt", None, Duration::from_secs(3600))
            .unwrap();
        assert!(url.starts_with("http://127.0.0.1:9000/b/a%20dir/%C3%BCn%C3%AF%2Bx.txt?"), "{url}");
        assert!(url.contains("X-Amz-Expires=60&"), "capped at a minute: {url}");
        assert!(url.contains("X-Amz-Credential=AKIDEXAMPLE%2F"), "{url}");
        assert!(!url.contains("secret"));
    }
}
