//! The access log and the request metrics: one JSON line per request, written when its response
//! has been sent or abandoned, so that bytes out and duration are what happened. The line holds
//! what the guard, the router and the layers behind it learned (`RequestNote`), and never a
//! credential: the path is the loggable one (`access_path.rs`: no query string, no share
//! token), the key is masked the same way, and the access key id is only an id.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use latchkey_identity::RequestNote;
use s3s::{Body, StdError};
use serde::Serialize;

use crate::access_path;
use crate::bucket_log::{LoggedRequest, Record};
use crate::idle::{BodyTally, Counted};
use crate::security_events::{Answered, SecurityEvents};
use crate::surface::Surface;

/// Where access-log lines go. `write_line` must not block: it runs on the request's task.
pub trait AccessSink: Send + Sync {
    fn write_line(&self, line: &[u8]);
}

/// How a request presented its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    Header,
    Presigned,
    Share,
    /// A POST form (PostObject) with its signature in its fields.
    Form,
    Anonymous,
}

impl AuthType {
    pub fn of(surface: Surface, headers: &HeaderMap, query: Option<&str>) -> AuthType {
        if surface == Surface::Shares {
            return AuthType::Share;
        }
        if headers.contains_key(http::header::AUTHORIZATION) {
            return AuthType::Header;
        }
        // Names read as s3s reads them: `X-Amz-%53ignature` is a presigned URL too.
        let presigned = query
            .is_some_and(|q| latchkey_s3::query::has(q, "X-Amz-Signature") || latchkey_s3::query::has(q, "Signature"));
        if presigned { AuthType::Presigned } else { AuthType::Anonymous }
    }
}

/// What is known of a request when its response leaves the router; the rest (the note, the
/// bytes) is read when the response is done.
pub struct Entry {
    pub sink: Option<Arc<dyn AccessSink>>,
    pub security: Arc<SecurityEvents>,
    pub started: Instant,
    pub request_id: String,
    pub client: IpAddr,
    pub peer: SocketAddr,
    pub listener: SocketAddr,
    pub method: http::Method,
    pub path: String,
    pub surface: Surface,
    pub auth: AuthType,
    pub access_key_id: Option<String>,
    pub user_agent: Option<String>,
    pub note: Arc<RequestNote>,
    pub body: Arc<BodyTally>,
    pub status: u16,
    pub error_code: Option<String>,
    /// Which guard limit refused it, if one did.
    pub refused: Option<&'static str>,
    /// What its bucket's server access log needs, while some bucket is logged.
    pub logged: Option<LoggedRequest>,
}

#[derive(Serialize)]
struct Line<'a> {
    time: Rfc3339,
    request_id: &'a str,
    principal: Option<&'a str>,
    access_key_id: Option<&'a str>,
    auth: AuthType,
    source_ip: IpAddr,
    peer: SocketAddr,
    listener: SocketAddr,
    method: &'a str,
    path: &'a str,
    bucket: Option<&'a str>,
    key: Option<Cow<'a, str>>,
    operation: Option<&'a str>,
    status: u16,
    error_code: Option<&'a str>,
    refused: Option<&'a str>,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
    user_agent: Option<&'a str>,
}

impl Entry {
    fn finish(self, bytes_out: u64) {
        let elapsed = self.started.elapsed();
        let noted = self.note.take();
        let bytes_in = self.body.received();
        let surface = self.surface.name();
        // Operation names are mostly static, and so are the common statuses: labels without
        // an allocation (this runs for every request).
        let operation = noted.operation.clone().unwrap_or(Cow::Borrowed("-"));
        let status: Cow<'static, str> = match self.status {
            200 => Cow::Borrowed("200"),
            204 => Cow::Borrowed("204"),
            206 => Cow::Borrowed("206"),
            304 => Cow::Borrowed("304"),
            403 => Cow::Borrowed("403"),
            404 => Cow::Borrowed("404"),
            other => Cow::Owned(other.to_string()),
        };
        metrics::counter!("latchkey_requests_total", "surface" => surface, "operation" => operation, "status" => status)
            .increment(1);
        metrics::histogram!("latchkey_request_duration_seconds", "surface" => surface).record(elapsed.as_secs_f64());
        metrics::counter!("latchkey_bytes_in_total", "surface" => surface).increment(bytes_in);
        metrics::counter!("latchkey_bytes_out_total", "surface" => surface).increment(bytes_out);
        // Guard refusals are counted by reason (`latchkey_refused_total`), not here.
        if matches!(self.status, 401 | 403) && self.refused.is_none() {
            let code = self.error_code.clone().unwrap_or_else(|| self.status.to_string());
            metrics::counter!("latchkey_denied_total", "code" => code).increment(1);
        }
        let auth = if noted.form_signer.is_some() { AuthType::Form } else { self.auth };
        let access_key_id =
            self.access_key_id.as_deref().or(noted.form_signer.as_deref()).filter(|id| looks_like_key_id(id));
        self.security.observe(&Answered {
            client: self.client,
            method: self.method.as_str(),
            path: &self.path,
            status: self.status,
            error_code: self.error_code.as_deref(),
            operation: noted.operation.as_deref(),
            bucket: noted.bucket.as_deref(),
            principal: noted.principal.as_deref(),
            access_key_id,
            user_agent: self.user_agent.as_deref(),
        });
        let now = time::OffsetDateTime::now_utc();
        if let Some(logged) = &self.logged {
            // A request refused before it was parsed names its bucket in its path only.
            let path_bucket = || {
                let first = self.path.trim_start_matches('/').split('/').next().filter(|b| !b.is_empty());
                first.filter(|_| self.surface == Surface::S3)
            };
            if let Some(bucket) = noted.bucket.as_deref().or_else(path_bucket) {
                let record = Record {
                    bucket,
                    at: now,
                    remote_ip: self.client,
                    requester: noted.principal.as_deref(),
                    request_id: &self.request_id,
                    operation: noted.operation.as_deref(),
                    method: self.method.as_str(),
                    key: noted.key.as_deref(),
                    path: &self.path,
                    status: self.status,
                    error_code: self.error_code.as_deref(),
                    bytes_sent: bytes_out,
                    total_ms: elapsed.as_millis(),
                    user_agent: self.user_agent.as_deref(),
                    auth,
                };
                logged.log.record(&record, logged);
            }
        }
        let Some(sink) = &self.sink else { return };
        let line = Line {
            time: Rfc3339(now),
            request_id: &self.request_id,
            principal: noted.principal.as_deref(),
            access_key_id,
            auth,
            source_ip: self.client,
            peer: self.peer,
            listener: self.listener,
            method: self.method.as_str(),
            path: &self.path,
            bucket: noted.bucket.as_deref(),
            key: noted.key.as_deref().map(access_path::loggable_key),
            operation: noted.operation.as_deref(),
            status: self.status,
            error_code: self.error_code.as_deref(),
            refused: self.refused,
            bytes_in,
            bytes_out,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            user_agent: self.user_agent.as_deref(),
        };
        // Lines are about 400 bytes: room for one up front, not a buffer grown seven times.
        let mut json = Vec::with_capacity(LINE_CAPACITY);
        if serde_json::to_writer(&mut json, &line).is_ok() {
            json.push(b'\n');
            sink.write_line(&json);
        }
    }
}

/// What an access-log line's buffer starts with.
const LINE_CAPACITY: usize = 640;

/// A line's time in RFC 3339, formatted on the stack rather than into a `String` of its own.
struct Rfc3339(time::OffsetDateTime);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 48];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        // What the cursor moved by, not `format_into`'s count, which leaves out the fraction. A
        // time that cannot be formatted leaves the field empty rather than losing the line.
        let len = match self.0.format_into(&mut cursor, &time::format_description::well_known::Rfc3339) {
            Ok(_) => usize::try_from(cursor.position()).unwrap_or(0),
            Err(_) => 0,
        };
        serializer.serialize_str(std::str::from_utf8(&text[..len]).unwrap_or_default())
    }
}

/// Whether what a request names as its access key id has the shape of one (16 to 128 upper-case
/// letters and digits): anything else a client wrote there (a malformed header's signature, a
/// secret pasted by mistake) is not logged.
fn looks_like_key_id(id: &str) -> bool {
    (16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A response body that counts what it sends and finishes its entry when dropped: after the
/// last byte went out, or when the client left.
pub struct Logged {
    inner: Body,
    entry: Option<Entry>,
    bytes_out: u64,
    /// Counts the response as open on its connection until it is done.
    _open: Counted,
}

impl Logged {
    pub fn wrap(inner: Body, entry: Entry, open: Counted) -> Body {
        Body::http_body_unsync(Logged { inner, entry: Some(entry), bytes_out: 0, _open: open })
    }
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = StdError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StdError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes_out += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry.finish(self.bytes_out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_times_read_as_rfc3339_formatted_whole() {
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        for at in [
            time::OffsetDateTime::UNIX_EPOCH,
            time::OffsetDateTime::now_utc(),
            time::macros::datetime!(2026-12-06 23:59:59.999999999 UTC),
        ] {
            let json = serde_json::to_string(&Rfc3339(at)).unwrap();
            assert_eq!(json, format!("\"{}\"", at.format(rfc3339).unwrap()));
        }
    }
}
