//! Server-side encryption requests. Latchkey does not encrypt at rest yet, so any request that
//! asks for encryption (SSE-S3, SSE-KMS, SSE-C, on writes, copies and reads) is refused with
//! `501 NotImplemented` naming the header: a client must never believe data is encrypted when
//! it is not.

use http::HeaderMap;
use s3s::{S3Error, S3ErrorCode, S3Result};

/// Every request header that asks for, or supplies keys for, server-side encryption.
const SSE_HEADERS: &[&str] = &[
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-bucket-key-enabled",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
    "x-amz-copy-source-server-side-encryption-customer-algorithm",
    "x-amz-copy-source-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key-md5",
];

/// Refuses a request that names server-side encryption.
pub(crate) fn refuse_encryption_headers(headers: &HeaderMap) -> S3Result<()> {
    // One pass over the request's few headers rather than a lookup per encryption header.
    let asked = headers.keys().any(|name| name.as_str().contains("server-side-encryption"));
    match SSE_HEADERS.iter().find(|name| asked && headers.contains_key(**name)) {
        Some(name) => Err(not_available(&format!("The {name} header"))),
        None => Ok(()),
    }
}

/// The refusal for `what` (a header, or a bucket encryption configuration).
pub(crate) fn not_available(what: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NotImplemented,
        format!(
            "{what} asks for server-side encryption, which this server does not provide yet; the request was not carried out."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encryption_header_is_named_in_the_refusal() {
        for name in SSE_HEADERS {
            let mut headers = HeaderMap::new();
            headers.insert(*name, "x".parse().unwrap());
            let err = refuse_encryption_headers(&headers).unwrap_err();
            assert_eq!(err.code(), &S3ErrorCode::NotImplemented);
            assert!(err.message().unwrap().contains(name), "{name}");
        }
        let mut plain = HeaderMap::new();
        plain.insert("x-amz-meta-encryption", "none".parse().unwrap());
        refuse_encryption_headers(&plain).unwrap();
    }
}
