//! Object attributes on the wire: standard headers, `x-amz-meta-*` user metadata and the
//! `x-amz-tagging` header, read from write requests and written into GET/HEAD responses.

use std::collections::BTreeMap;

use latchkey_meta::{ContentHeaders, ObjectRecord, Tag};
use latchkey_object::ObjectAttributes;
use s3s::dto::{ETag, Metadata, Timestamp, TimestampFormat};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

/// S3's limit on user metadata: keys and values together, in bytes.
const MAX_USER_METADATA: usize = 2048;
/// S3's limits on tags: at most 10 on an object, 50 on a bucket.
pub(crate) const MAX_OBJECT_TAGS: usize = 10;
pub(crate) const MAX_BUCKET_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;
const RESERVED_TAG_PREFIX: &str = "latchkey:";

/// The attribute fields that PutObject, CopyObject and CreateMultipartUpload inputs share.
pub(crate) struct WriteHeaders<'a> {
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_disposition: Option<&'a str>,
    pub content_language: Option<&'a str>,
    pub cache_control: Option<&'a str>,
    pub expires: Option<&'a Timestamp>,
    pub metadata: Option<&'a Metadata>,
    pub tagging: Option<&'a str>,
    pub lock_mode: Option<&'a s3s::dto::ObjectLockMode>,
    pub lock_until: Option<&'a s3s::dto::ObjectLockRetainUntilDate>,
    pub legal_hold: Option<&'a s3s::dto::ObjectLockLegalHoldStatus>,
}

/// Borrows the shared attribute fields of any write input that has them.
macro_rules! write_headers {
    ($input:expr) => {
        $crate::attributes::WriteHeaders {
            content_type: $input.content_type.as_deref(),
            content_encoding: $input.content_encoding.as_deref(),
            content_disposition: $input.content_disposition.as_deref(),
            content_language: $input.content_language.as_deref(),
            cache_control: $input.cache_control.as_deref(),
            expires: $input.expires.as_ref(),
            metadata: $input.metadata.as_ref(),
            tagging: $input.tagging.as_deref(),
            lock_mode: $input.object_lock_mode.as_ref(),
            lock_until: $input.object_lock_retain_until_date.as_ref(),
            legal_hold: $input.object_lock_legal_hold_status.as_ref(),
        }
    };
}
pub(crate) use write_headers;

pub(crate) fn attributes(h: WriteHeaders<'_>) -> S3Result<ObjectAttributes> {
    let user_meta: BTreeMap<String, String> =
        h.metadata.into_iter().flatten().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
    if user_meta.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > MAX_USER_METADATA {
        return Err(s3_error!(MetadataTooLarge, "Your metadata headers exceed the maximum allowed metadata size"));
    }
    Ok(ObjectAttributes {
        headers: ContentHeaders {
            content_type: h.content_type.map(str::to_owned),
            content_encoding: h.content_encoding.and_then(stored_content_encoding),
            content_disposition: h.content_disposition.map(str::to_owned),
            content_language: h.content_language.map(str::to_owned),
            cache_control: h.cache_control.map(str::to_owned),
            expires: h.expires.map(format_http_date).transpose()?,
        },
        user_meta,
        tags: h.tagging.map(parse_tagging_header).transpose()?.unwrap_or_default(),
        lock: crate::object_lock::requested_lock(h.lock_mode, h.lock_until, h.legal_hold)?,
    })
}

/// The Content-Encoding to store: without `aws-chunked`, which describes how the request body was
/// sent (SigV4 streaming, flexible checksums) rather than the object; nothing if that was all.
fn stored_content_encoding(header: &str) -> Option<String> {
    let kept: Vec<&str> =
        header.split(',').map(str::trim).filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked")).collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// `x-amz-tagging: k1=v1&k2=v2`, URL-encoded.
fn parse_tagging_header(header: &str) -> S3Result<Vec<Tag>> {
    let tags = form_urlencoded::parse(header.as_bytes())
        .map(|(k, v)| Tag { key: k.into_owned(), value: v.into_owned() })
        .collect();
    validate_tags(tags, MAX_OBJECT_TAGS)
}

/// A Tagging document's tags as stored, checked against S3's limits (at most `max` tags).
pub(crate) fn tag_set(tag_set: Vec<s3s::dto::Tag>, max: usize) -> S3Result<Vec<Tag>> {
    let tags = tag_set
        .into_iter()
        .map(|t| match (t.key, t.value) {
            (Some(key), Some(value)) => Ok(Tag { key, value }),
            _ => Err(s3_error!(MalformedXML, "Every Tag needs a Key and a Value")),
        })
        .collect::<S3Result<Vec<_>>>()?;
    validate_tags(tags, max)
}

/// Stored tags as a Tagging document's tag set.
pub(crate) fn wire_tags(tags: Vec<Tag>) -> Vec<s3s::dto::Tag> {
    tags.into_iter().map(|t| s3s::dto::Tag { key: Some(t.key), value: Some(t.value) }).collect()
}

fn validate_tags(tags: Vec<Tag>, max: usize) -> S3Result<Vec<Tag>> {
    if tags.len() > max {
        return Err(S3Error::with_message(S3ErrorCode::InvalidTag, format!("Tags cannot be greater than {max}")));
    }
    for (i, tag) in tags.iter().enumerate() {
        if tag.key.is_empty() || tag.key.chars().count() > MAX_TAG_KEY {
            return Err(s3_error!(InvalidTag, "The TagKey you have provided is invalid"));
        }
        // Latchkey's own tags (the scanner's `latchkey:sensitivity`) are shown beside the
        // writers' but never set by them, as S3 keeps `aws:` to itself.
        if tag.key.get(..RESERVED_TAG_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_TAG_PREFIX)) {
            return Err(s3_error!(InvalidTag, "Your TagKey cannot be prefixed with latchkey:"));
        }
        if tag.value.chars().count() > MAX_TAG_VALUE {
            return Err(s3_error!(InvalidTag, "The TagValue you have provided is invalid"));
        }
        if tags[..i].iter().any(|t| t.key == tag.key) {
            return Err(s3_error!(InvalidTag, "Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(tags)
}

pub(crate) fn format_http_date(t: &Timestamp) -> S3Result<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).map_err(|_| s3_error!(InvalidArgument, "invalid Expires"))?;
    String::from_utf8(buf).map_err(|_| s3_error!(InvalidArgument, "invalid Expires"))
}

pub(crate) fn etag(record_etag: &str) -> ETag {
    ETag::Strong(record_etag.to_owned())
}

pub(crate) fn timestamp(t: time::OffsetDateTime) -> Timestamp {
    Timestamp::from(t)
}

pub(crate) fn user_metadata(record: &ObjectRecord) -> Option<Metadata> {
    (!record.user_meta.is_empty()).then(|| record.user_meta.clone().into_iter().collect())
}

pub(crate) fn expires(record: &ObjectRecord) -> Option<Timestamp> {
    let value = record.headers.expires.as_deref()?;
    Timestamp::parse(TimestampFormat::HttpDate, value).ok()
}

/// Fills the representation headers that GET and HEAD both return for a record.
macro_rules! fill_object_headers {
    ($output:expr, $record:expr) => {{
        let record: &latchkey_meta::ObjectRecord = $record;
        $output.e_tag = Some($crate::attributes::etag(&record.etag));
        $output.last_modified = Some($crate::attributes::timestamp(record.last_modified));
        $output.content_type =
            Some(record.headers.content_type.clone().unwrap_or_else(|| "binary/octet-stream".to_owned()));
        $output.content_encoding = record.headers.content_encoding.clone();
        $output.content_disposition = record.headers.content_disposition.clone();
        $output.content_language = record.headers.content_language.clone();
        $output.cache_control = record.headers.cache_control.clone();
        $output.expires = $crate::attributes::expires(record);
        $output.metadata = $crate::attributes::user_metadata(record);
        $output.accept_ranges = Some("bytes".to_owned());
        $output.parts_count = record.parts_count.and_then(|n| i32::try_from(n).ok());
        ($output.object_lock_mode, $output.object_lock_retain_until_date, $output.object_lock_legal_hold_status) =
            $crate::object_lock::shown_lock(record);
    }};
}
pub(crate) use fill_object_headers;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_how_a_body_was_sent_not_its_encoding() {
        assert_eq!(stored_content_encoding("aws-chunked"), None);
        assert_eq!(stored_content_encoding("gzip,aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(stored_content_encoding("aws-chunked, br").as_deref(), Some("br"));
        assert_eq!(stored_content_encoding("gzip").as_deref(), Some("gzip"));
    }
}
