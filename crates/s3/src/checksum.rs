//! Flexible checksums of an upload body (`x-amz-checksum-crc32`, `-crc32c`, `-crc64nvme`,
//! `-sha1`, `-sha256`), sent as a header or as the aws-chunked trailer that `x-amz-trailer`
//! names: computed as the bytes stream into storage and compared once the body has ended, so a
//! mismatch fails the write before anything is committed (`BadDigest`, as S3 answers).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use s3s::TrailingHeaders;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::Checksum;
use s3s::{S3Error, S3Result, StdError, s3_error};

/// The algorithms, by the header that carries each and its digest length in bytes.
const ALGORITHMS: [(&str, &str, usize); 5] = [
    ("CRC32", "x-amz-checksum-crc32", 4),
    ("CRC32C", "x-amz-checksum-crc32c", 4),
    ("CRC64NVME", "x-amz-checksum-crc64nvme", 8),
    ("SHA1", "x-amz-checksum-sha1", 20),
    ("SHA256", "x-amz-checksum-sha256", 32),
];

/// The checksum values an upload's headers carry, one field per algorithm.
pub(crate) struct Declared<'a> {
    pub crc32: Option<&'a str>,
    pub crc32c: Option<&'a str>,
    pub crc64nvme: Option<&'a str>,
    pub sha1: Option<&'a str>,
    pub sha256: Option<&'a str>,
}

/// Borrows the checksum fields of any upload input.
macro_rules! declared {
    ($input:expr) => {
        $crate::checksum::Declared {
            crc32: $input.checksum_crc32.as_deref(),
            crc32c: $input.checksum_crc32c.as_deref(),
            crc64nvme: $input.checksum_crc64nvme.as_deref(),
            sha1: $input.checksum_sha1.as_deref(),
            sha256: $input.checksum_sha256.as_deref(),
        }
    };
}
pub(crate) use declared;

/// What to compare the body with: a value from a header, or the trailer's, read at the end.
enum Expected {
    Value(String),
    Trailer(TrailingHeaders),
}

/// `body`, checked against the checksum its request declares (if any): the stream fails with
/// `BadDigest` at its end when the bytes do not match. `trailer_names` is `x-amz-trailer`.
pub(crate) fn verified(
    body: BoxStream<'static, Result<Bytes, StdError>>,
    declared: &Declared<'_>,
    trailer_names: Option<&str>,
    trailers: Option<TrailingHeaders>,
) -> S3Result<BoxStream<'static, Result<Bytes, StdError>>> {
    let values = [declared.crc32, declared.crc32c, declared.crc64nvme, declared.sha1, declared.sha256];
    let mut chosen = ALGORITHMS.iter().zip(values).filter_map(|(algorithm, value)| value.map(|v| (algorithm, v)));
    let from_header = chosen.next();
    if chosen.next().is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        ));
    }
    let from_trailer = trailer_names
        .and_then(|names| ALGORITHMS.iter().find(|(_, header, _)| names.trim().eq_ignore_ascii_case(header)));
    let (algorithm, expected) = match (from_header, from_trailer, trailers) {
        (Some((algorithm, value)), _, _) => {
            check_form(algorithm, value)?;
            (algorithm, Expected::Value(value.to_owned()))
        }
        (None, Some(algorithm), Some(trailers)) => (algorithm, Expected::Trailer(trailers)),
        _ => return Ok(body),
    };
    let hasher = Arc::new(Mutex::new(hasher_for(algorithm.0)));
    let hashing = hasher.clone();
    let hashed = body.inspect_ok(move |chunk| lock(&hashing).update(chunk));
    let check = futures::stream::once(async move {
        let computed = std::mem::take(&mut *lock(&hasher)).finalize();
        compare(algorithm, &expected, &computed)
    })
    .filter_map(|outcome| futures::future::ready(outcome.err().map(|e| Err(Box::new(e) as StdError))));
    Ok(hashed.chain(check).boxed())
}

fn lock(hasher: &Mutex<ChecksumHasher>) -> std::sync::MutexGuard<'_, ChecksumHasher> {
    hasher.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn hasher_for(algorithm: &str) -> ChecksumHasher {
    let mut hasher = ChecksumHasher::default();
    match algorithm {
        "CRC32" => hasher.crc32 = Some(Crc32::new()),
        "CRC32C" => hasher.crc32c = Some(Crc32c::new()),
        "CRC64NVME" => hasher.crc64nvme = Some(Crc64Nvme::new()),
        "SHA1" => hasher.sha1 = Some(Sha1::new()),
        _ => hasher.sha256 = Some(Sha256::new()),
    }
    hasher
}

/// A declared value must be the base64 of a digest of the algorithm's length.
fn check_form((_, header, len): &(&str, &str, usize), value: &str) -> S3Result<()> {
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(value) {
        Ok(raw) if raw.len() == *len => Ok(()),
        _ => Err(S3Error::with_message(
            s3s::S3ErrorCode::InvalidRequest,
            format!("Value for {header} header is invalid."),
        )),
    }
}

fn compare((name, header, _): &(&str, &str, usize), expected: &Expected, computed: &Checksum) -> S3Result<()> {
    let computed = [
        &computed.checksum_crc32,
        &computed.checksum_crc32c,
        &computed.checksum_crc64nvme,
        &computed.checksum_sha1,
        &computed.checksum_sha256,
    ]
    .into_iter()
    .find_map(Option::as_deref)
    .unwrap_or_default();
    let expected = match expected {
        Expected::Value(value) => Some(value.clone()),
        Expected::Trailer(trailers) => {
            trailers.read(|headers| headers.get(*header).and_then(|v| v.to_str().ok()).map(str::to_owned)).flatten()
        }
    };
    match expected {
        Some(expected) if expected == computed => Ok(()),
        Some(_) => Err(S3Error::with_message(
            s3s::S3ErrorCode::BadDigest,
            format!("The {name} you specified did not match the calculated checksum."),
        )),
        None => Err(s3_error!(InvalidRequest, "The trailing checksum named by x-amz-trailer is missing.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(parts: &[&'static [u8]]) -> BoxStream<'static, Result<Bytes, StdError>> {
        futures::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>()).boxed()
    }

    fn declared<'a>(crc32: Option<&'a str>, sha256: Option<&'a str>) -> Declared<'a> {
        Declared { crc32, crc32c: None, crc64nvme: None, sha1: None, sha256 }
    }

    async fn outcome(body: BoxStream<'static, Result<Bytes, StdError>>) -> Result<Vec<Bytes>, String> {
        body.try_collect().await.map_err(|e| e.downcast::<S3Error>().map(|e| e.code().as_str().to_owned()).unwrap())
    }

    #[tokio::test]
    async fn a_matching_checksum_passes_and_a_wrong_one_fails_at_the_end() {
        // CRC32 of "hello world" is 0x0d4a1185.
        let right = "DUoRhQ==";
        let ok = verified(stream(&[b"hello ", b"world"]), &declared(Some(right), None), None, None).unwrap();
        assert_eq!(outcome(ok).await.unwrap().concat(), b"hello world");
        let wrong = verified(stream(&[b"hello ", b"world!"]), &declared(Some(right), None), None, None).unwrap();
        assert_eq!(outcome(wrong).await.unwrap_err(), "BadDigest");
    }

    #[test]
    fn malformed_and_multiple_checksums_are_refused_before_reading() {
        let bad = verified(stream(&[]), &declared(Some("not base64!"), None), None, None);
        assert_eq!(bad.err().unwrap().code().as_str(), "InvalidRequest");
        let short = verified(stream(&[]), &declared(None, Some("DUoRhQ==")), None, None);
        assert_eq!(short.err().unwrap().code().as_str(), "InvalidRequest");
        let two = verified(stream(&[]), &declared(Some("DUoRhQ=="), Some("DUoRhQ==")), None, None);
        assert_eq!(two.err().unwrap().code().as_str(), "InvalidRequest");
    }
}
