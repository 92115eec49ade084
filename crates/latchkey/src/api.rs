//! A client for Latchkey's signed `/-/shares` API: one SigV4-signed JSON request at a time,
//! with the caller's AWS-style credentials. Used by `latchkey share` and the benchmarks.

use std::time::SystemTime;

use anyhow::{Context, bail};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::aws_env::ClientEnv;

/// One signed request to the share API; API errors become messages that say what was wrong.
pub async fn call(env: &ClientEnv, method: &str, path_and_query: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let url = format!("{}{path_and_query}", env.endpoint);
    if !url.starts_with("http://") {
        bail!("{} is not an http:// endpoint; `latchkey share` speaks plain HTTP for now", env.endpoint);
    }
    let mut request = http::Request::builder()
        .method(method)
        .uri(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body.clone()))?;
    let host = request.uri().authority().context("the endpoint URL has no host")?.to_string();
    request.headers_mut().insert(http::header::HOST, host.parse()?);

    let identity: Identity = env.credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(env.region.as_ref())
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()?
        .into();
    let headers: Vec<(&str, &str)> =
        request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
    let signable = SignableRequest::new(method, url.as_str(), headers.into_iter(), SignableBody::Bytes(&body))?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    instructions.apply_to_request_http1x(&mut request);

    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(request).await.with_context(|| format!("cannot reach {}", env.endpoint))?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if status.is_success() {
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&bytes).context("the server's answer is not JSON");
    }
    let text = String::from_utf8_lossy(&bytes);
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .or_else(|| text.split("<Message>").nth(1).and_then(|m| m.split("</Message>").next()).map(str::to_owned))
        .or_else(|| text.split("<Code>").nth(1).and_then(|m| m.split("</Code>").next()).map(str::to_owned))
        .unwrap_or_else(|| text.trim().to_owned());
    bail!("the server refused ({status}): {message}")
}
