//! Object listing: ListObjects (v1, marker, always with each object's owner), ListObjectsV2
//! (continuation token, start-after, owners with `fetch-owner`) and ListObjectVersions (key and
//! version-id markers), with prefix, delimiter (an empty one is none), max-keys and
//! `encoding-type=url`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_object::{ListEntry, ListPage, ListRequest, VersionPage, VersionsRequest, version_marker};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::S3Front;
use crate::attributes::{etag, timestamp};
use crate::error::OrS3;

/// S3 never returns more than 1000 keys per page.
const MAX_KEYS: i32 = 1000;

pub(crate) fn max_keys(requested: Option<i32>) -> S3Result<u32> {
    match requested {
        None => Ok(MAX_KEYS as u32),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be a non-negative integer")),
        Some(n) => Ok(n.min(MAX_KEYS) as u32),
    }
}

/// Whether the client asked for `encoding-type=url` (the AWS CLI always does); S3 knows no other.
fn url_encoded(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding.map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request")),
    }
}

/// An empty delimiter delimits nothing, and S3 leaves it out of the answer.
fn effective_delimiter(given: Option<String>) -> Option<String> {
    given.filter(|d| !d.is_empty())
}

/// Encodes a key for a response that asked for URL encoding: every byte but unreserved ones and
/// `/`, so that clients decoding with `unquote_plus` get the key back exactly.
pub(crate) fn encode_key(key: String, url: bool) -> String {
    if !url {
        return key;
    }
    utf8_percent_encode(&key, UNRESERVED_AND_SLASH).to_string()
}

/// What `encode_key` leaves as it is: RFC 3986 unreserved characters and `/`.
const UNRESERVED_AND_SLASH: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// Continuation tokens are opaque to clients: the position to resume after, base64url.
pub(crate) fn encode_token(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

pub(crate) fn decode_token(token: &str) -> S3Result<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))
}

fn entries(page: ListPage, url: bool, owner: Option<Owner>) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for entry in page.entries {
        match entry {
            ListEntry::Object(record) => contents.push(Object {
                e_tag: Some(etag(&record.etag)),
                last_modified: Some(timestamp(record.last_modified)),
                size: i64::try_from(record.size).ok(),
                storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                key: Some(encode_key(record.key, url)),
                owner: owner.clone(),
                ..Default::default()
            }),
            ListEntry::CommonPrefix(prefix) => prefixes.push(CommonPrefix { prefix: Some(encode_key(prefix, url)) }),
        }
    }
    (contents, prefixes)
}

fn last_position(page: &ListPage) -> Option<String> {
    page.truncated.then(|| page.entries.last().map(|e| e.position().to_owned())).flatten()
}

pub(crate) async fn list_objects_v2(
    front: &S3Front,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let url = url_encoded(input.encoding_type.as_ref())?;
    let delimiter = effective_delimiter(input.delimiter);
    let resume = input.continuation_token.as_deref().map(decode_token).transpose()?;
    // StartAfter only counts on the first page; the token carries the position after that.
    let after = resume.as_deref().or(input.start_after.as_deref());
    let max_keys = max_keys(input.max_keys)?;
    let prefix = input.prefix.as_deref().unwrap_or_default();
    let request = ListRequest { prefix, delimiter: delimiter.as_deref(), after, max_keys };
    let page = front.objects.list(&input.bucket, &request).await.or_s3()?;
    let next = last_position(&page).map(|p| encode_token(&p));
    let truncated = page.truncated;
    let owner = input.fetch_owner.unwrap_or(false).then(|| front.owner());
    let (contents, prefixes) = entries(page, url, owner);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        key_count: i32::try_from(contents.len() + prefixes.len()).ok(),
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        is_truncated: Some(truncated),
        next_continuation_token: next,
        max_keys: i32::try_from(max_keys).ok(),
        prefix: Some(encode_key(prefix.to_owned(), url)),
        delimiter: delimiter.map(|d| encode_key(d, url)),
        start_after: input.start_after.map(|s| encode_key(s, url)),
        continuation_token: input.continuation_token,
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub(crate) async fn list_objects(
    front: &S3Front,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let url = url_encoded(input.encoding_type.as_ref())?;
    let delimiter = effective_delimiter(input.delimiter);
    let max_keys = max_keys(input.max_keys)?;
    let prefix = input.prefix.as_deref().unwrap_or_default();
    let request = ListRequest { prefix, delimiter: delimiter.as_deref(), after: input.marker.as_deref(), max_keys };
    let page = front.objects.list(&input.bucket, &request).await.or_s3()?;
    let next = last_position(&page).map(|p| encode_key(p, url));
    let truncated = page.truncated;
    let (contents, prefixes) = entries(page, url, Some(front.owner()));
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        is_truncated: Some(truncated),
        // S3 names the next marker only with a delimiter; without one, the last key is it.
        next_marker: next.filter(|_| delimiter.is_some()),
        marker: Some(input.marker.map(|m| encode_key(m, url)).unwrap_or_default()),
        max_keys: i32::try_from(max_keys).ok(),
        prefix: Some(encode_key(prefix.to_owned(), url)),
        delimiter: delimiter.map(|d| encode_key(d, url)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub(crate) async fn list_object_versions(
    front: &S3Front,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    let url = url_encoded(input.encoding_type.as_ref())?;
    let delimiter = effective_delimiter(input.delimiter);
    let max_keys = max_keys(input.max_keys)?;
    let prefix = input.prefix.as_deref().unwrap_or_default();
    let key_marker = input.key_marker.as_deref().filter(|m| !m.is_empty());
    let version_marker = input.version_id_marker.as_deref().filter(|m| !m.is_empty());
    if version_marker.is_some() && key_marker.is_none() {
        return Err(s3_error!(InvalidArgument, "A version-id marker cannot be specified without a key marker."));
    }
    if let Some(marker) = version_marker {
        // A version id, or a marker this listing made (`id.position`).
        let (id, position) = marker.rsplit_once('.').unwrap_or((marker, "0"));
        crate::object::checked_version_id(id)?;
        if position.parse::<i64>().is_err() {
            return Err(s3_error!(InvalidArgument, "Invalid version id specified"));
        }
    }
    let request = VersionsRequest { prefix, delimiter: delimiter.as_deref(), key_marker, version_marker, max_keys };
    let page = front.objects.list_versions(&input.bucket, &request).await.or_s3()?;
    let (next_key, next_version) = next_version_markers(&page);
    let truncated = page.truncated;
    let owner = front.owner();
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    let mut prefixes = Vec::new();
    for entry in page.entries {
        let version = match entry {
            ListEntry::Object(version) => version,
            ListEntry::CommonPrefix(prefix) => {
                prefixes.push(CommonPrefix { prefix: Some(encode_key(prefix, url)) });
                continue;
            }
        };
        let record = version.record;
        let version_id = Some(record.s3_version_id().to_owned());
        let key = Some(encode_key(record.key, url));
        let last_modified = Some(timestamp(record.last_modified));
        if version.delete_marker {
            markers.push(DeleteMarkerEntry {
                is_latest: Some(version.latest),
                key,
                last_modified,
                owner: Some(owner.clone()),
                version_id,
            });
        } else {
            versions.push(ObjectVersion {
                e_tag: Some(etag(&record.etag)),
                is_latest: Some(version.latest),
                key,
                last_modified,
                owner: Some(owner.clone()),
                size: i64::try_from(record.size).ok(),
                storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                version_id,
                ..Default::default()
            });
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: Some(prefixes),
        is_truncated: Some(truncated),
        key_marker: Some(input.key_marker.map(|m| encode_key(m, url)).unwrap_or_default()),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        next_key_marker: next_key.map(|k| encode_key(k, url)),
        next_version_id_marker: next_version,
        max_keys: i32::try_from(max_keys).ok(),
        prefix: Some(encode_key(prefix.to_owned(), url)),
        delimiter: delimiter.map(|d| encode_key(d, url)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

/// Where the next page of a truncated version listing starts: after the last version returned
/// (its key and version id), or after the last common prefix (its prefix alone).
fn next_version_markers(page: &VersionPage) -> (Option<String>, Option<String>) {
    match page.entries.last().filter(|_| page.truncated) {
        Some(ListEntry::Object(version)) => (Some(version.record.key.clone()), Some(version_marker(version))),
        Some(ListEntry::CommonPrefix(prefix)) => (Some(prefix.clone()), None),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_round_trips_through_unquote_plus_rules() {
        assert_eq!(encode_key("a b+c/d%e".into(), true), "a%20b%2Bc/d%25e");
        assert_eq!(encode_key("a b".into(), false), "a b");
    }

    #[test]
    fn tokens_are_opaque_and_checked() {
        let token = encode_token("photos/2026/ü");
        assert_eq!(decode_token(&token).unwrap(), "photos/2026/ü");
        assert_eq!(decode_token("not base64!").unwrap_err().code().as_str(), "InvalidArgument");
        assert_eq!(max_keys(Some(5000)).unwrap(), 1000);
        assert!(max_keys(Some(-1)).is_err());
    }
}
