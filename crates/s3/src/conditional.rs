//! Conditional requests (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since and
//! their x-amz-copy-source-if-* twins) and byte ranges, decided against an object record.

use std::ops::Range;

use http::{HeaderMap, HeaderName, HeaderValue, header};
use latchkey_meta::ObjectRecord;
use s3s::dto::{ETagCondition, Range as RangeHeader, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

pub(crate) struct Preconditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// Whether a failed If-None-Match / If-Modified-Since reads as 304 (GET, HEAD) or as 412 (the
/// source of a copy, where there is no cached copy to reuse).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    Representation,
    CopySource,
}

fn matches(cond: &ETagCondition, record: &ObjectRecord) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(tag) => tag.value() == record.etag,
    }
}

/// HTTP dates have whole seconds; so must the comparison.
fn modified_after(record: &ObjectRecord, since: &Timestamp) -> bool {
    let since: time::OffsetDateTime = since.clone().into();
    record.last_modified.unix_timestamp() > since.unix_timestamp()
}

/// RFC 9110 §13.2.2 order, with S3's rule that a passing If-Match overrides a failing
/// If-Unmodified-Since and a failing If-None-Match overrides a passing If-Modified-Since.
pub(crate) fn check(p: &Preconditions<'_>, record: &ObjectRecord, reading: Reading) -> S3Result<()> {
    let failed = || s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold");
    match p.if_match {
        Some(cond) if !matches(cond, record) => return Err(failed()),
        Some(_) => {}
        None => {
            if p.if_unmodified_since.is_some_and(|t| modified_after(record, t)) {
                return Err(failed());
            }
        }
    }
    let not_modified = match p.if_none_match {
        Some(cond) => matches(cond, record),
        None => p.if_modified_since.is_some_and(|t| !modified_after(record, t)),
    };
    if not_modified {
        return Err(match reading {
            Reading::Representation => not_modified_error(record),
            Reading::CopySource => failed(),
        });
    }
    Ok(())
}

/// S3's 304: no body (nor an XML Content-Type, which a cache would merge into what it holds),
/// and the validators and caching headers of the representation it stands for.
fn not_modified_error(record: &ObjectRecord) -> S3Error {
    let mut headers = HeaderMap::new();
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put(header::ETAG, &format!("\"{}\"", record.etag));
    if let Ok(date) = crate::attributes::format_http_date(&crate::attributes::timestamp(record.last_modified)) {
        put(header::LAST_MODIFIED, &date);
    }
    if let Some(cache_control) = &record.headers.cache_control {
        put(header::CACHE_CONTROL, cache_control);
    }
    if let Some(expires) = &record.headers.expires {
        put(header::EXPIRES, expires);
    }
    let mut e = s3_error!(NotModified);
    e.set_headers(headers);
    e
}

/// The bytes to serve: the requested range, one part (`partNumber`), or all of them.
pub(crate) fn plan_range(
    record: &ObjectRecord,
    range: Option<&RangeHeader>,
    part_number: Option<i32>,
) -> S3Result<Range<u64>> {
    if let Some(n) = part_number {
        if range.is_some() {
            return Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter"));
        }
        return part_range(record, n);
    }
    match range {
        None => Ok(0..record.size),
        Some(r) => r.check(record.size).map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable")),
    }
}

/// The bytes of part `n`: a multipart object's part as uploaded; an object uploaded whole is
/// its own part 1.
fn part_range(record: &ObjectRecord, n: i32) -> S3Result<Range<u64>> {
    if !(1..=10_000).contains(&n) {
        return Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"));
    }
    let count = record.parts_count.unwrap_or(1);
    if u32::try_from(n).is_ok_and(|n| n > count) {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("InvalidPartNumber".into()),
            "The requested partnumber is not satisfiable",
        );
        e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
        return Err(e);
    }
    if record.parts_count.is_none() {
        return Ok(0..record.size);
    }
    let sizes = &record.part_sizes;
    if sizes.len() != count as usize {
        // Completed before part sizes were recorded.
        return Err(s3_error!(NotImplemented, "This object's part boundaries were not recorded"));
    }
    let index = usize::try_from(n - 1).unwrap_or_default();
    let start: u64 = sizes[..index].iter().sum();
    Ok(start..start + sizes[index])
}

/// Whether a response serves part of the object (a Range, or one part of a multipart object)
/// and so carries a Content-Range.
pub(crate) fn partial(record: &ObjectRecord, range: Option<&RangeHeader>, part_number: Option<i32>) -> bool {
    range.is_some() || (part_number.is_some() && record.parts_count.is_some())
}

/// The Content-Range header for a partial response.
pub(crate) fn content_range(range: &Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{}", range.start, range.end.saturating_sub(1), size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;
    use time::OffsetDateTime;

    fn record() -> ObjectRecord {
        ObjectRecord {
            bucket: "b".into(),
            key: "k".into(),
            version_id: "v".into(),
            versioned: false,
            blob_id: "x".into(),
            size: 10,
            etag: "abc".into(),
            last_modified: OffsetDateTime::from_unix_timestamp(1_000_000).unwrap(),
            headers: Default::default(),
            user_meta: Default::default(),
            tags: vec![],
            parts_count: None,
            part_sizes: Vec::new(),
            scan: Default::default(),
            lock: Default::default(),
        }
    }

    fn none() -> Preconditions<'static> {
        Preconditions { if_match: None, if_none_match: None, if_modified_since: None, if_unmodified_since: None }
    }

    #[test]
    fn etag_and_date_conditions() {
        let r = record();
        let same = ETagCondition::ETag(ETag::Strong("abc".into()));
        let other = ETagCondition::ETag(ETag::Strong("zzz".into()));
        let before = Timestamp::from(OffsetDateTime::from_unix_timestamp(999_000).unwrap());
        let at = Timestamp::from(OffsetDateTime::from_unix_timestamp(1_000_000).unwrap());
        let code = |p: Preconditions<'_>, reading| check(&p, &r, reading).err().map(|e| e.code().as_str().to_owned());

        assert_eq!(code(Preconditions { if_match: Some(&same), ..none() }, Reading::Representation), None);
        assert_eq!(
            code(Preconditions { if_match: Some(&other), ..none() }, Reading::Representation).as_deref(),
            Some("PreconditionFailed")
        );
        assert_eq!(
            code(Preconditions { if_none_match: Some(&same), ..none() }, Reading::Representation).as_deref(),
            Some("NotModified")
        );
        assert_eq!(
            code(Preconditions { if_none_match: Some(&same), ..none() }, Reading::CopySource).as_deref(),
            Some("PreconditionFailed")
        );
        assert_eq!(
            code(Preconditions { if_modified_since: Some(&at), ..none() }, Reading::Representation).as_deref(),
            Some("NotModified")
        );
        assert_eq!(code(Preconditions { if_modified_since: Some(&before), ..none() }, Reading::Representation), None);
        assert_eq!(
            code(Preconditions { if_unmodified_since: Some(&before), ..none() }, Reading::Representation).as_deref(),
            Some("PreconditionFailed")
        );
        // A passing If-Match wins over a failing If-Unmodified-Since.
        let both = Preconditions { if_match: Some(&same), if_unmodified_since: Some(&before), ..none() };
        assert_eq!(code(both, Reading::Representation), None);
    }

    #[test]
    fn ranges() {
        let r = record();
        assert_eq!(plan_range(&r, None, None).unwrap(), 0..10);
        let tail = RangeHeader::Suffix { length: 3 };
        assert_eq!(plan_range(&r, Some(&tail), None).unwrap(), 7..10);
        let past = RangeHeader::Int { first: 10, last: None };
        assert_eq!(plan_range(&r, Some(&past), None).unwrap_err().code().as_str(), "InvalidRange");
        assert_eq!(content_range(&(7..10), 10), "bytes 7-9/10");
    }
}
