//! Alarm notifications POSTed to webhooks (`[[webhooks]]` in TOML), signed so that receivers can
//! check them and refuse replays:
//!
//! - `X-Latchkey-Timestamp`: Unix seconds when this attempt was sent;
//! - `X-Latchkey-Signature`: `v1=` and the hex HMAC-SHA256, keyed with the webhook's secret, of
//!   the timestamp, a `.`, and the body (a receiver recomputes it and refuses old timestamps);
//! - `X-Latchkey-Delivery`: the firing's id (rule, group, window), the same on every retry.
//!
//! A failed attempt (no answer, 5xx, 429) is retried up to [`ATTEMPTS`] times in all, after
//! exponentially growing delays with full jitter; other answers end the delivery.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use sha2::Sha256;

/// Attempts per delivery, the first included.
pub const ATTEMPTS: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_millis(500);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a receiver's answer that is read.
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// An http:// or https:// URL.
    pub url: String,
    /// The HMAC key; or `secret_env`, the environment variable that holds it.
    pub secret: Option<String>,
    pub secret_env: Option<String>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url).finish_non_exhaustive()
    }
}

/// A webhook ready to post to.
#[derive(Clone)]
pub struct Target {
    pub url: http::Uri,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Webhook {
    /// The webhook with its secret read, or why it cannot be used.
    pub fn target(&self) -> Result<Target, String> {
        let url: http::Uri = self.url.parse().map_err(|_| format!("webhook url {:?} is not a URL", self.url))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(format!("webhook url {:?} must be an http:// or https:// URL", self.url));
        }
        let secret = match (&self.secret, &self.secret_env) {
            (Some(secret), None) => secret.clone(),
            (None, Some(var)) => std::env::var(var)
                .map_err(|_| format!("webhook {}: the environment variable {var} is not set", self.url))?,
            _ => return Err(format!("webhook {}: give one of secret or secret_env", self.url)),
        };
        if secret.len() < 16 {
            return Err(format!("webhook {}: the secret must be at least 16 characters", self.url));
        }
        Ok(Target { url, secret: secret.into_bytes() })
    }
}

/// `v1=` and the hex HMAC-SHA256 of `{timestamp}.{body}`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts to webhooks.
#[derive(Clone)]
pub struct Poster {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Poster {
    pub fn new() -> std::io::Result<Poster> {
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_native_roots()?.https_or_http().enable_http1().build();
        Ok(Poster { client: Client::builder(TokioExecutor::new()).build(https) })
    }

    /// Delivers `body` to `target`, retrying; whether it was taken (a 2xx), and the last outcome.
    pub async fn deliver(&self, target: &Target, delivery: &str, body: Bytes) -> (bool, String) {
        let mut outcome = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                let ceiling = FIRST_DELAY * 2u32.pow(attempt - 1);
                tokio::time::sleep(ceiling.mul_f64(rand::random::<f64>())).await;
            }
            let (taken, retry, what) = self.attempt(target, delivery, body.clone()).await;
            outcome = what;
            if taken || !retry {
                return (taken, outcome);
            }
        }
        (false, outcome)
    }

    /// One attempt: taken, worth retrying, and what happened.
    async fn attempt(&self, target: &Target, delivery: &str, body: Bytes) -> (bool, bool, String) {
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let request = http::Request::post(target.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "latchkey-alarms")
            .header("x-latchkey-timestamp", timestamp.to_string())
            .header("x-latchkey-signature", signature(&target.secret, timestamp, &body))
            .header("x-latchkey-delivery", delivery)
            .body(Full::new(body));
        let request = match request {
            Ok(request) => request,
            Err(e) => return (false, false, format!("cannot build the request: {e}")),
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(resp)) => {
                let status = resp.status();
                // Read (and drop) a short answer, so the connection can be reused; a longer one
                // is not read at all.
                let answer = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER);
                let _ = tokio::time::timeout(ATTEMPT_TIMEOUT, answer.collect()).await;
                let retry = status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS;
                (status.is_success(), retry, format!("answered {status}"))
            }
            Ok(Err(e)) => (false, true, format!("failed: {e}")),
            Err(_) => (false, true, "timed out".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_an_hmac_of_timestamp_and_body() {
        // Computed independently: printf '1800000000.{"a":1}' | openssl dgst -sha256 -hmac 0123456789abcdef
        assert_eq!(
            signature(b"0123456789abcdef", 1_800_000_000, br#"{"a":1}"#),
            "v1=d3e17924cac4a72ca2ee9e5700df170fdb5733eaf69ecd909fb0c18a962b03a5"
        );
        assert_ne!(
            signature(b"0123456789abcdef", 1_800_000_001, br#"{"a":1}"#),
            signature(b"0123456789abcdef", 1_800_000_000, br#"{"a":1}"#)
        );
    }

    #[test]
    fn webhooks_are_checked() {
        let hook = |url: &str, secret: Option<&str>, env: Option<&str>| Webhook {
            url: url.into(),
            secret: secret.map(Into::into),
            secret_env: env.map(Into::into),
        };
        assert!(hook("http://127.0.0.1:9/h", Some("0123456789abcdef"), None).target().is_ok());
        for (h, why) in [
            (hook("ftp://x/h", Some("0123456789abcdef"), None), "http:// or https://"),
            (hook("http://x/h", Some("short"), None), "at least 16"),
            (hook("http://x/h", None, None), "one of secret or secret_env"),
            (hook("http://x/h", None, Some("LATCHKEY_TEST_NO_SUCH_VAR")), "is not set"),
        ] {
            assert!(h.target().err().unwrap().contains(why), "{why}");
        }
        assert!(
            !format!("{:?}", hook("http://x/h", Some("0123456789abcdef"), None)).contains("0123"),
            "secret not shown"
        );
    }
}
