//! Server access logs delivered into buckets (PutBucketLogging): each request on a logged bucket
//! becomes one line in S3's server-access-log format, gathered in memory per source bucket and
//! target, and written as an object into the target bucket every `bucket_log_flush_secs`, when
//! a megabyte has gathered, and at shutdown. Lines hold what the JSON access log holds, so never
//! a credential: the request URI is the loggable path (no query string, share tokens masked).
//!
//! Each delivery is judged for the principal that set the target (`s3:PutObject` on the key
//! written, as that principal and the target's policy stand then). Delivery is best effort, as
//! S3's is: what may not or cannot be written (the permission taken away, the target bucket
//! deleted, the store down) is dropped with a warning and counted
//! (`latchkey_bucket_log_lines_total`), and at most `MAX_PENDING_BYTES` wait in memory. Every
//! replica delivers its own lines under object names of its own.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use latchkey_meta::ContentHeaders;
use latchkey_object::{ObjectAttributes, ObjectService};
use latchkey_s3::logging::{LoggingTarget, PartitionDate};
use latchkey_s3::{Authorizer, BucketConfigs};
use latchkey_storage::WriteLimits;
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::access_log::AuthType;
use crate::access_path;
use crate::tls::TlsSession;

/// Lines waiting in memory at most; beyond, new lines are dropped (and counted).
const MAX_PENDING_BYTES: usize = 16 << 20;
/// Lines waiting for one target that start a delivery before its time.
const EARLY_DELIVERY_BYTES: usize = 1 << 20;
/// How long the delivery at shutdown may take.
const FINAL_DELIVERY: Duration = Duration::from_secs(10);

/// What a request's line needs beyond the access-log entry; read only while some bucket is
/// logged, so that requests pay nothing otherwise.
pub struct LoggedRequest {
    pub log: Arc<BucketLog>,
    pub host: Option<String>,
    pub referer: Option<String>,
    pub http_version: http::Version,
    pub signature_version: Option<&'static str>,
    /// Terminated here: the TLS version and cipher suite.
    pub tls: Option<TlsSession>,
}

impl LoggedRequest {
    /// The signature version of a request, as S3's log names it: `SigV4`, `SigV2`, or none.
    pub fn signature_version(headers: &http::HeaderMap, query: Option<&str>) -> Option<&'static str> {
        use latchkey_s3::query::has;
        if let Some(auth) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            return if auth.starts_with("AWS4-") {
                Some("SigV4")
            } else if auth.starts_with("AWS ") {
                Some("SigV2")
            } else {
                None
            };
        }
        let query = query?;
        if has(query, "X-Amz-Signature") {
            Some("SigV4")
        } else if has(query, "Signature") {
            Some("SigV2")
        } else {
            None
        }
    }
}

/// A `Referer` as the log may hold it: no query or fragment (a presigned URL's signature, a
/// share nonce), no user information, and its path masked as request paths are (`/-/s/<token>`).
pub fn loggable_referer(value: &str) -> String {
    let cut = value.find(['?', '#']).map_or(value, |end| &value[..end]);
    let Some(scheme_end) = cut.find("://").map(|i| i + 3) else { return access_path::loggable(cut).into_owned() };
    let (authority, path) = cut[scheme_end..].split_at(cut[scheme_end..].find('/').unwrap_or(cut.len() - scheme_end));
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let path = if path.is_empty() { Default::default() } else { access_path::loggable(path) };
    format!("{}{host}{path}", &cut[..scheme_end])
}

/// One request as its log line says it.
pub struct Record<'a> {
    pub bucket: &'a str,
    pub at: OffsetDateTime,
    pub remote_ip: IpAddr,
    pub requester: Option<&'a str>,
    pub request_id: &'a str,
    pub operation: Option<&'a str>,
    pub method: &'a str,
    pub key: Option<&'a str>,
    /// The loggable path (`access_path::loggable`).
    pub path: &'a str,
    pub status: u16,
    pub error_code: Option<&'a str>,
    pub bytes_sent: u64,
    pub total_ms: u128,
    pub user_agent: Option<&'a str>,
    pub auth: AuthType,
}

/// Lines gathered for one delivery: a source bucket, its target as it was when the lines were
/// written, and for event-time partitions the day of the requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Batch {
    source: String,
    target: LoggingTarget,
    day: Option<Date>,
}

#[derive(Default)]
struct Pending {
    lines: HashMap<Batch, Vec<u8>>,
    bytes: usize,
}

pub struct BucketLog {
    configs: Arc<BucketConfigs>,
    objects: Arc<ObjectService>,
    /// Judges each delivery for the principal that set its target.
    authorizer: Authorizer,
    /// The account that owns every bucket (the log's first field).
    owner: String,
    region: String,
    pending: Mutex<Pending>,
    early: tokio::sync::Notify,
}

impl BucketLog {
    pub fn new(
        configs: Arc<BucketConfigs>,
        objects: Arc<ObjectService>,
        authorizer: Authorizer,
        owner: &str,
        region: &str,
    ) -> Arc<BucketLog> {
        Arc::new(BucketLog {
            configs,
            objects,
            authorizer,
            owner: owner.to_owned(),
            region: region.to_owned(),
            pending: Mutex::default(),
            early: tokio::sync::Notify::new(),
        })
    }

    /// Whether any bucket is logged now.
    pub fn active(&self) -> bool {
        self.configs.any_logging()
    }

    /// Adds the line of `record` if its bucket is logged.
    pub fn record(&self, record: &Record<'_>, request: &LoggedRequest) {
        let rules = self.configs.get(record.bucket);
        let Some(target) = rules.logging() else { return };
        let line = self.line(record, request);
        let day = (target.partitioned == Some(PartitionDate::EventTime)).then(|| record.at.date());
        let batch = Batch { source: record.bucket.to_owned(), target: target.clone(), day };
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.bytes + line.len() > MAX_PENDING_BYTES {
            drop(pending);
            metrics::counter!("latchkey_bucket_log_lines_total", "outcome" => "dropped").increment(1);
            return;
        }
        pending.bytes += line.len();
        let gathered = pending.lines.entry(batch).or_default();
        gathered.extend_from_slice(line.as_bytes());
        if gathered.len() >= EARLY_DELIVERY_BYTES {
            self.early.notify_one();
        }
    }

    /// The line in S3's server-access-log format (its 26 fields; what Latchkey does not have,
    /// such as object sizes and version ids, is `-`).
    fn line(&self, r: &Record<'_>, request: &LoggedRequest) -> String {
        let dash = |v: Option<&str>| v.filter(|v| !v.is_empty()).map_or_else(|| "-".to_owned(), bare);
        let time = r.at.format(format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"));
        let key = r.key.map(|key| utf8_percent_encode(&access_path::loggable_key(key), KEY).to_string());
        let version = match request.http_version {
            http::Version::HTTP_2 => "HTTP/2.0",
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        };
        let bytes_sent = if r.bytes_sent == 0 { "-".to_owned() } else { r.bytes_sent.to_string() };
        let auth = match r.auth {
            AuthType::Header | AuthType::Form => "AuthHeader",
            AuthType::Presigned => "QueryString",
            AuthType::Share | AuthType::Anonymous => "-",
        };
        let fields = [
            bare(&self.owner),
            bare(r.bucket),
            format!("[{}]", time.unwrap_or_default()),
            r.remote_ip.to_string(),
            dash(r.requester),
            bare(r.request_id),
            operation(r.operation, r.method),
            key.unwrap_or_else(|| "-".to_owned()),
            quoted(&format!("{} {} {version}", r.method, r.path)),
            r.status.to_string(),
            dash(r.error_code),
            bytes_sent,
            "-".to_owned(), // object size
            r.total_ms.to_string(),
            "-".to_owned(), // turn-around time
            quoted(request.referer.as_deref().unwrap_or("-")),
            quoted(r.user_agent.unwrap_or("-")),
            "-".to_owned(), // version id
            "-".to_owned(), // host id
            dash(request.signature_version),
            dash(request.tls.map(|tls| tls.cipher_suite)),
            auth.to_owned(),
            dash(request.host.as_deref()),
            dash(request.tls.map(|tls| tls.version)),
            "-".to_owned(), // access point ARN
            "-".to_owned(), // ACL required
        ];
        let mut line = fields.join(" ");
        line.push('\n');
        line
    }

    /// Delivers every `every`, when a target has a megabyte waiting, and once more when
    /// `stopped` resolves (after the last requests were answered).
    pub async fn run(self: Arc<Self>, every: Duration, stopped: impl Future<Output = ()>) {
        let mut stopped = std::pin::pin!(stopped);
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.early.notified() => {}
                () = &mut stopped => {
                    // A store that does not answer must not hold the shutdown up.
                    if tokio::time::timeout(FINAL_DELIVERY, self.deliver()).await.is_err() {
                        tracing::warn!("the last server access logs were not delivered in time; they are dropped");
                    }
                    return;
                }
            }
            self.deliver().await;
        }
    }

    /// Writes what has gathered, one object per batch.
    pub async fn deliver(&self) {
        let batches = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.bytes = 0;
            std::mem::take(&mut pending.lines)
        };
        for (batch, lines) in batches {
            let count = bytecount(&lines);
            let target = &batch.target;
            let name = target.object_key(
                &self.owner,
                &self.region,
                &batch.source,
                OffsetDateTime::now_utc(),
                batch.day,
                rand::random(),
            );
            let bucket = &target.target_bucket;
            if !self.authorizer.permits(target.configured_by.as_deref(), "s3:PutObject", bucket, &name).await {
                tracing::warn!(source = %batch.source, target = %bucket, lines = count,
                    "the principal that set this bucket's log target may no longer write there; its lines are dropped");
                metrics::counter!("latchkey_bucket_log_lines_total", "outcome" => "dropped").increment(count);
                continue;
            }
            let attrs = ObjectAttributes {
                headers: ContentHeaders { content_type: Some("text/plain".to_owned()), ..ContentHeaders::default() },
                ..ObjectAttributes::default()
            };
            let body = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(Bytes::from(lines)) });
            let written = self.objects.put(bucket, &name, body, WriteLimits::default(), attrs).await;
            let outcome = match written {
                Ok(_) => "delivered",
                Err(e) => {
                    tracing::warn!(source = %batch.source, target = %batch.target.target_bucket, error = %e,
                        lines = count, "cannot deliver a bucket's server access log; its lines are dropped");
                    "dropped"
                }
            };
            metrics::counter!("latchkey_bucket_log_lines_total", "outcome" => outcome).increment(count);
        }
    }
}

/// What S3 names an operation in its log (`REST.GET.OBJECT`); an operation it has no name for
/// is `REST.{METHOD}.{OPERATION}`, and Latchkey's own routes `LATCHKEY.{OPERATION}`.
fn operation(operation: Option<&str>, method: &str) -> String {
    let Some(operation) = operation else { return format!("REST.{method}.UNKNOWN") };
    let resource = match operation {
        "GetObject" | "HeadObject" | "PutObject" | "DeleteObject" => "OBJECT",
        "CopyObject" => return "REST.COPY.OBJECT".to_owned(),
        "UploadPartCopy" => return "REST.COPY.PART".to_owned(),
        "ListObjects" | "ListObjectsV2" | "HeadBucket" | "CreateBucket" | "DeleteBucket" => "BUCKET",
        "ListBuckets" => "SERVICE",
        "DeleteObjects" => "MULTI_OBJECT_DELETE",
        "CreateMultipartUpload" | "ListMultipartUploads" => "UPLOADS",
        "CompleteMultipartUpload" | "AbortMultipartUpload" | "ListParts" => "UPLOAD",
        "UploadPart" => "PART",
        "GetBucketPolicy" | "PutBucketPolicy" | "DeleteBucketPolicy" => "BUCKETPOLICY",
        "GetBucketCors" | "PutBucketCors" | "DeleteBucketCors" => "CORS",
        "GetBucketTagging" | "PutBucketTagging" | "DeleteBucketTagging" => "TAGGING",
        "GetObjectTagging" | "PutObjectTagging" | "DeleteObjectTagging" => "OBJECT_TAGGING",
        "GetBucketLogging" | "PutBucketLogging" => "LOGGING_STATUS",
        "GetBucketLocation" => "LOCATION",
        "GetBucketVersioning" => "VERSIONING",
        "GetPublicAccessBlock" | "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "PUBLIC_ACCESS_BLOCK",
        "AccessObject" | "ShareLink" => return format!("LATCHKEY.{method}.SHARE"),
        other => return format!("REST.{method}.{}", upper_snake(other)),
    };
    format!("REST.{method}.{resource}")
}

/// `GetObjectAttributes` as `GET_OBJECT_ATTRIBUTES`.
fn upper_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Escapes in an unquoted field: a space or a quote would shift the fields after it, a line
/// break would forge a line. (A `%` stays: paths arrive percent-encoded already.)
const UNQUOTED: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'\\');
/// Escapes in a quoted field (a backslash would escape its closing quote).
const QUOTED: &AsciiSet = &CONTROLS.add(b'"').add(b'\\');
/// A key is URL-encoded, as S3 logs it.
const KEY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn bare(value: &str) -> String {
    utf8_percent_encode(value, UNQUOTED).to_string()
}

fn quoted(value: &str) -> String {
    format!("\"{}\"", utf8_percent_encode(value, QUOTED))
}

fn bytecount(lines: &[u8]) -> u64 {
    lines.iter().filter(|b| **b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_as_s3_names_them() {
        assert_eq!(operation(Some("GetObject"), "GET"), "REST.GET.OBJECT");
        assert_eq!(operation(Some("ListObjectsV2"), "GET"), "REST.GET.BUCKET");
        assert_eq!(operation(Some("DeleteObjects"), "POST"), "REST.POST.MULTI_OBJECT_DELETE");
        assert_eq!(operation(Some("CreateMultipartUpload"), "POST"), "REST.POST.UPLOADS");
        assert_eq!(operation(Some("GetObjectAttributes"), "GET"), "REST.GET.GET_OBJECT_ATTRIBUTES");
        assert_eq!(operation(Some("AccessObject"), "GET"), "LATCHKEY.GET.SHARE");
        assert_eq!(operation(None, "PUT"), "REST.PUT.UNKNOWN");
    }

    #[test]
    fn referers_lose_what_could_be_a_credential() {
        let token = "A".repeat(43);
        assert_eq!(
            loggable_referer("https://u:p@files.test/src/a.html?X-Amz-Signature=ab#f"),
            "https://files.test/src/a.html"
        );
        assert_eq!(loggable_referer(&format!("https://files.test/-/s/{token}")), "https://files.test/-/s/<token>");
        assert_eq!(loggable_referer("https://files.test"), "https://files.test");
        assert_eq!(loggable_referer("/-/access-object?nonce=x"), "/-/access-object");
    }

    #[test]
    fn fields_cannot_shift_or_break_the_line() {
        assert_eq!(bare("a b\"c\nd\\"), "a%20b%22c%0Ad%5C");
        assert_eq!(quoted("ua\\"), "\"ua%5C\"");
        assert_eq!(quoted("curl/8 \"x\"\r\nforged"), "\"curl/8 %22x%22%0D%0Aforged\"");
        assert_eq!(utf8_percent_encode("dir/a b+é.txt", KEY).to_string(), "dir/a%20b%2B%C3%A9.txt");
    }
}
