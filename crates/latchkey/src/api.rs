//! A client for Latchkey's signed APIs, with the caller's AWS-style credentials: the `/-/shares`
//! API (SigV4 for `s3`, JSON; `latchkey share` and the benchmarks) and the IAM query API
//! (SigV4 for `iam` in us-east-1, a form POST answered in XML; `latchkey policy`).

use std::time::SystemTime;

use anyhow::{Context, bail};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use quick_xml::events::Event;
use serde_json::Value;

use crate::aws_env::ClientEnv;

/// IAM is global: its requests are signed for us-east-1 whatever the profile's region.
const IAM_REGION: &str = "us-east-1";
const IAM_VERSION: &str = "2010-05-08";

/// One signed request to the share API; API errors become messages that say what was wrong.
pub async fn call(env: &ClientEnv, method: &str, path_and_query: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let signing = Signing { service: "s3", region: env.region.as_ref(), content_type: "application/json" };
    let (status, bytes) = send(env, &signing, method, path_and_query, body).await?;
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

/// An IAM query API error: AWS's code (`NoSuchEntity`, `AccessDenied`...) and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct QueryError {
    pub code: String,
    pub message: String,
}

/// One IAM query API call (`Action` with its `params`): the `{Action}Result` element, or the
/// service's error as a [`QueryError`] (which the caller can tell apart with `downcast_ref`).
pub async fn iam(env: &ClientEnv, action: &str, params: &[(&str, &str)]) -> anyhow::Result<XmlElement> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", action).append_pair("Version", IAM_VERSION);
    for (name, value) in params {
        form.append_pair(name, value);
    }
    let signing = Signing {
        service: "iam",
        region: IAM_REGION,
        content_type: "application/x-www-form-urlencoded; charset=utf-8",
    };
    let (status, bytes) = send(env, &signing, "POST", "/", Bytes::from(form.finish())).await?;
    let text = std::str::from_utf8(&bytes).context("the server's answer is not UTF-8")?;
    let root = XmlElement::parse(text)
        .with_context(|| format!("the server's answer ({status}) is not the XML of the IAM API"))?;
    if !status.is_success() {
        let error = root.child("Error");
        let field = |name| error.and_then(|e| e.child(name)).map(|e| e.text.clone()).unwrap_or_default();
        return Err(QueryError { code: field("Code"), message: field("Message") }.into());
    }
    let result = format!("{action}Result");
    root.child(&result).cloned().with_context(|| format!("the server's answer has no {result}"))
}

/// How one request is signed and what its body is.
struct Signing<'a> {
    service: &'a str,
    region: &'a str,
    content_type: &'a str,
}

/// Signs and sends one request to the endpoint; the status and the whole body.
async fn send(
    env: &ClientEnv,
    signing: &Signing<'_>,
    method: &str,
    path_and_query: &str,
    body: Bytes,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let url = format!("{}{path_and_query}", env.endpoint);
    if !url.starts_with("http://") {
        bail!("{} is not an http:// endpoint; the latchkey CLI speaks plain HTTP for now", env.endpoint);
    }
    let mut request = http::Request::builder()
        .method(method)
        .uri(&url)
        .header(http::header::CONTENT_TYPE, signing.content_type)
        .body(Full::new(body.clone()))?;
    let host = request.uri().authority().context("the endpoint URL has no host")?.to_string();
    request.headers_mut().insert(http::header::HOST, host.parse()?);

    let identity: Identity = env.credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(signing.region)
        .name(signing.service)
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
    Ok((status, bytes))
}

/// An XML element with its text and child elements: enough of a document tree to read the
/// query API's answers (no attributes, no mixed content).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlElement {
    pub name: String,
    pub text: String,
    pub children: Vec<XmlElement>,
}

impl XmlElement {
    /// The document's root element.
    pub fn parse(xml: &str) -> anyhow::Result<XmlElement> {
        let mut reader = quick_xml::Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        // The open elements, innermost last; a finished element joins its parent.
        let mut open: Vec<XmlElement> = Vec::new();
        loop {
            match reader.read_event()? {
                Event::Start(start) => open.push(XmlElement {
                    name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                    ..XmlElement::default()
                }),
                Event::Empty(empty) => {
                    let element = XmlElement {
                        name: String::from_utf8_lossy(empty.local_name().as_ref()).into_owned(),
                        ..XmlElement::default()
                    };
                    match open.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => return Ok(element),
                    }
                }
                Event::Text(text) => {
                    if let Some(current) = open.last_mut() {
                        current.text.push_str(&text.decode()?);
                    }
                }
                Event::GeneralRef(reference) => {
                    let Some(current) = open.last_mut() else { continue };
                    match reference.resolve_char_ref()? {
                        Some(c) => current.text.push(c),
                        None => {
                            let name = reference.decode()?;
                            let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                                .with_context(|| format!("unknown XML entity &{name};"))?;
                            current.text.push_str(resolved);
                        }
                    }
                }
                Event::End(_) => {
                    let done = open.pop().context("an end tag without its start")?;
                    match open.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(done),
                    }
                }
                Event::Eof => bail!("the XML document ends before its root element does"),
                _ => {}
            }
        }
    }

    /// The first child element named `name`.
    pub fn child(&self, name: &str) -> Option<&XmlElement> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the child element `name`, if there is one.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The `<member>` texts or elements of the list `name` (`<name><member>..</member></name>`).
    pub fn members(&self, name: &str) -> impl Iterator<Item = &XmlElement> {
        self.child(name).into_iter().flat_map(|list| list.children.iter().filter(|c| c.name == "member"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_answers_read_as_a_tree() {
        let root = XmlElement::parse(
            "<?xml version=\"1.0\"?><R xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Result>\
             <List><member>a &amp; b</member><member>c&#33;</member></List><Empty/><Flag>true</Flag></Result></R>",
        )
        .unwrap();
        assert_eq!(root.name, "R");
        let result = root.child("Result").unwrap();
        assert_eq!(result.members("List").map(|m| m.text.as_str()).collect::<Vec<_>>(), ["a & b", "c!"]);
        assert_eq!(result.child_text("Flag"), Some("true"));
        assert_eq!(result.child("Empty").map(|e| e.children.len()), Some(0));
        assert_eq!(result.members("Missing").count(), 0);
    }

    #[test]
    fn broken_xml_is_an_error() {
        for broken in ["<a><b></a>", "<a>", "not xml at all", "<a>&nosuch;</a>"] {
            assert!(XmlElement::parse(broken).is_err(), "{broken}");
        }
    }
}
