//! The form of a POST upload: its fields read up to the `file` part under S3's limits, and
//! what they ask to store (content headers, `x-amz-meta-*`), checked as a PUT's headers would be.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::StatusCode;
use latchkey_object::ObjectAttributes;
use s3s::dto::{Timestamp, TimestampFormat};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use crate::attributes::{WriteHeaders, attributes};

/// S3's limit on the form fields before the file, together.
pub const MAX_FIELDS_BYTES: usize = 20 * 1024;

/// The most of a form read before its `file` part is reached: the fields, their part headers,
/// and what the parser reads ahead of the file's header. Without it, a part header or a preamble
/// that never ends would be buffered whole.
const MAX_READ_BEFORE_FILE: u64 = 1024 * 1024;

/// A failure inside the form's stream, read back as its S3 error (`error::s3_error`).
pub(super) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The form fields before the file, names in lower case (S3 reads them without case).
#[derive(Default)]
pub(super) struct Fields(pub(super) Vec<(String, String)>);

impl Fields {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Refuses fields that ask for what a POST upload does not do here (tags, Object Lock,
    /// checksums, encryption, storage classes, ACLs other than the one every object has).
    pub(super) fn refuse_unsupported(&self) -> S3Result<()> {
        let unsupported = |name: &str, value: &str| {
            name == "tagging"
                || name.starts_with("x-amz-object-lock-")
                || name.starts_with("x-amz-checksum-")
                || name.starts_with("x-amz-server-side-encryption")
                || name == "x-amz-storage-class"
                || (name == "acl" && !matches!(value, "private" | "bucket-owner-full-control"))
        };
        match self.0.iter().find(|(name, value)| unsupported(name, value)) {
            Some((name, _)) => Err(s3_error!(
                NotImplemented,
                "The form field {name:?} is not supported in POST uploads; upload with PUT."
            )),
            None => Ok(()),
        }
    }
}

/// Reads the form up to its `file` part: the fields before it, at most [`MAX_FIELDS_BYTES`]
/// together, each once.
pub(super) async fn read_fields(form: &mut multer::Multipart<'static>) -> S3Result<(Fields, multer::Field<'static>)> {
    let mut fields = Fields::default();
    let mut read = 0;
    loop {
        let Some(mut field) = form.next_field().await.map_err(malformed)? else {
            return Err(s3_error!(InvalidArgument, "POST requires exactly one file upload per request."));
        };
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name == "file" {
            return Ok((fields, field));
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            read += chunk.len();
            if read > MAX_FIELDS_BYTES {
                return Err(fields_too_large());
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value)
            .map_err(|_| s3_error!(InvalidArgument, "The form field {name:?} is not UTF-8."))?;
        if fields.get(&name).is_some() {
            return Err(s3_error!(InvalidArgument, "The form field {name:?} is given more than once."));
        }
        fields.0.push((name, value));
    }
}

/// The form's bytes, failing once more than [`MAX_READ_BEFORE_FILE`] were read before
/// `reached_file` is set.
pub(super) fn capped_until_file<S, E>(
    body: S,
    reached_file: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<BodyError>,
{
    let mut read = 0u64;
    body.map(move |item| {
        let chunk = item.map_err(Into::into)?;
        read += chunk.len() as u64;
        if read > MAX_READ_BEFORE_FILE && !reached_file.load(Ordering::Relaxed) {
            return Err(BodyError::from(fields_too_large()));
        }
        Ok(chunk)
    })
}

fn fields_too_large() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("MaxPostPreDataLengthExceededError".into()),
        format!("Your POST request fields preceding the upload file were too large: at most {MAX_FIELDS_BYTES} bytes."),
    );
    e.set_status_code(StatusCode::BAD_REQUEST);
    e
}

/// A form that cannot be read: its body's own failure (S3's RequestTimeout for a stalled one),
/// else MalformedPOSTRequest.
pub(super) fn malformed(e: multer::Error) -> S3Error {
    if let multer::Error::StreamReadFailed(source) = e {
        return match source.downcast::<S3Error>() {
            Ok(inner) => *inner,
            Err(source) => s3_error!(IncompleteBody, "The request body terminated unexpectedly: {source}"),
        };
    }
    S3Error::with_message(
        S3ErrorCode::MalformedPOSTRequest,
        format!("The body of your POST request is not well-formed multipart/form-data: {e}"),
    )
}

/// The object's attributes from the form: content headers and `x-amz-meta-*`. A value a PUT
/// could not carry in a header (control characters) or a metadata name that is not a header
/// name is refused: it would be stored but never served.
pub(super) fn form_attributes(fields: &Fields, file_type: Option<String>) -> S3Result<ObjectAttributes> {
    let stored =
        ["content-type", "content-encoding", "content-disposition", "content-language", "cache-control", "expires"];
    for (name, value) in &fields.0 {
        let meta = name.strip_prefix("x-amz-meta-");
        if meta.is_some_and(|m| m.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err()) {
            return Err(s3_error!(InvalidArgument, "The form field {name:?} is not a valid metadata name."));
        }
        if (meta.is_some() || stored.contains(&name.as_str())) && value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(s3_error!(InvalidArgument, "The form field {name:?} holds control characters."));
        }
    }
    if file_type.as_deref().is_some_and(|t| t.chars().any(char::is_control)) {
        return Err(s3_error!(InvalidArgument, "The file's Content-Type holds control characters."));
    }
    let expires = fields
        .get("expires")
        .map(|v| Timestamp::parse(TimestampFormat::HttpDate, v))
        .transpose()
        .map_err(|_| s3_error!(InvalidArgument, "The form field Expires is not an HTTP date."))?;
    let metadata: HashMap<String, String> = fields
        .0
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix("x-amz-meta-")?.to_owned(), value.clone())))
        .collect();
    let content_type = fields.get("content-type").map(str::to_owned).or(file_type);
    attributes(WriteHeaders {
        content_type: content_type.as_deref(),
        content_encoding: fields.get("content-encoding"),
        content_disposition: fields.get("content-disposition"),
        content_language: fields.get("content-language"),
        cache_control: fields.get("cache-control"),
        expires: expires.as_ref(),
        metadata: (!metadata.is_empty()).then_some(&metadata),
        tagging: None,
        lock_mode: None,
        lock_until: None,
        legal_hold: None,
    })
}

/// The most of a refused form's file read and dropped before its answer: a client that waited
/// for `100 Continue` sends its file anyway, and a connection closed on unread bytes is reset,
/// losing the answer. A larger or slower file is cut off (the connection closed).
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops what is left of a refused form's file, within [`DRAIN_BYTES`] and
/// [`DRAIN_TIME`].
pub(super) async fn drain(file: &mut multer::Field<'static>) {
    let mut read = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Ok(Some(chunk)) = file.chunk().await {
            read += chunk.len() as u64;
            if read > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// The file's bytes, ending in an error instead of its end when fewer than `min` arrived, so
/// that a file under the policy's range is never committed.
pub(super) fn at_least<S>(body: S, min: u64) -> impl Stream<Item = Result<Bytes, BodyError>> + Send
where
    S: Stream<Item = Result<Bytes, BodyError>> + Send,
{
    let mut seen = 0u64;
    body.map(Some).chain(futures::stream::once(async { None })).filter_map(move |item| {
        let out = match item {
            Some(Ok(chunk)) => {
                seen += chunk.len() as u64;
                Some(Ok(chunk))
            }
            Some(Err(e)) => Some(Err(e)),
            // The one `None` chained after the file's last chunk.
            None if seen < min => {
                let e = s3_error!(EntityTooSmall, "Your proposed upload is smaller than the minimum allowed size.");
                Some(Err(BodyError::from(e)))
            }
            None => None,
        };
        std::future::ready(out)
    })
}
