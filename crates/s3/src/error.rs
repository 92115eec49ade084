//! How object-service failures read as S3 errors. Internal causes are logged here and never
//! shown to the caller.

use latchkey_meta::{LockRefusal, MetaError};
use latchkey_object::ObjectError;
use latchkey_storage::StorageError;
use s3s::{S3Error, S3ErrorCode, s3_error};

pub(crate) fn s3_error(e: ObjectError) -> S3Error {
    use latchkey_object::MultipartError as M;
    match e {
        ObjectError::NoSuchBucket => s3_error!(NoSuchBucket, "The specified bucket does not exist"),
        ObjectError::NoSuchKey => s3_error!(NoSuchKey, "The specified key does not exist."),
        ObjectError::NoSuchVersion => s3_error!(NoSuchVersion, "The specified version does not exist."),
        ObjectError::DeleteMarker { version_id, last_modified, latest } => {
            let mut e = match latest {
                true => s3_error!(NoSuchKey, "The specified key does not exist."),
                false => s3_error!(MethodNotAllowed, "The specified method is not allowed against this resource."),
            };
            let mut headers = http::HeaderMap::new();
            headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
            if let Ok(value) = http::HeaderValue::from_str(&version_id) {
                headers.insert("x-amz-version-id", value);
            }
            if !latest {
                let date = last_modified.format(&time::format_description::well_known::Rfc2822).unwrap_or_default();
                if let Ok(value) = http::HeaderValue::from_str(&date.replace("+0000", "GMT")) {
                    headers.insert(http::header::LAST_MODIFIED, value);
                }
            }
            e.set_headers(headers);
            e
        }
        ObjectError::Meta(MetaError::BucketAlreadyExists) => s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        ),
        ObjectError::Meta(MetaError::BucketNotEmpty) => {
            s3_error!(BucketNotEmpty, "The bucket you tried to delete is not empty")
        }
        ObjectError::Meta(MetaError::NoSuchUpload) | ObjectError::Multipart(M::NoSuchUpload) => s3_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID might be invalid, or the upload might have been aborted or completed."
        ),
        ObjectError::Multipart(e @ M::InvalidPart(_)) => S3Error::with_message(S3ErrorCode::InvalidPart, e.to_string()),
        ObjectError::Multipart(e @ M::InvalidPartOrder) => {
            S3Error::with_message(S3ErrorCode::InvalidPartOrder, e.to_string())
        }
        ObjectError::Multipart(e @ M::EntityTooSmall(_)) => {
            S3Error::with_message(S3ErrorCode::EntityTooSmall, e.to_string())
        }
        ObjectError::Multipart(e @ (M::InvalidPartNumber | M::NoParts)) => {
            S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string())
        }
        // The reason is in the audit trail (`object.withheld`); the caller learns nothing.
        ObjectError::Withheld(_) => s3_error!(AccessDenied, "Access Denied"),
        ObjectError::NoLockConfiguration => s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration"),
        ObjectError::Locked(LockRefusal::PastDate) => {
            s3_error!(InvalidArgument, "The retain until date must be in the future!")
        }
        // Which rule refused is in the audit trail (`object.locked`).
        ObjectError::Locked(_) => s3_error!(AccessDenied, "Access Denied because object protected by object lock."),
        ObjectError::Meta(MetaError::VersioningChanged) => s3_error!(
            OperationAborted,
            "A conflicting conditional operation is currently in progress against this resource. Please try again."
        ),
        ObjectError::InvalidBucketState(message) => S3Error::with_message(S3ErrorCode::InvalidBucketState, message),
        ObjectError::SourceChanged => {
            s3_error!(PreconditionFailed, "The copy source was replaced while it was being copied; try again.")
        }
        ObjectError::Storage(StorageError::TooLarge { .. }) => {
            s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed size")
        }
        ObjectError::Storage(StorageError::Incomplete { .. }) => s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ),
        ObjectError::Storage(StorageError::BadDigest) => {
            s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received.")
        }
        ObjectError::Storage(StorageError::Body(source)) => match source.downcast::<S3Error>() {
            // A chunk signature or checksum failure that s3s raised inside the body stream.
            Ok(inner) => *inner,
            // s3s 0.14 does not export its aws-chunked error type; its message is the only
            // public way to tell a forged chunk (tests/python/test_streaming_upload.py pins it).
            Err(source) if source.to_string().contains("AwsChunkedStreamError: SignatureMismatch") => s3_error!(
                SignatureDoesNotMatch,
                "The request signature we calculated does not match the signature you provided."
            ),
            Err(source) => {
                tracing::info!(error = %source, "request body ended early");
                s3_error!(IncompleteBody, "The request body terminated unexpectedly")
            }
        },
        other => {
            tracing::error!(error = %other, "internal error");
            s3_error!(InternalError, "We encountered an internal error. Please try again.")
        }
    }
}

/// `?` on object-service calls inside S3 handlers.
pub(crate) trait OrS3<T> {
    fn or_s3(self) -> Result<T, S3Error>;
}

impl<T> OrS3<T> for Result<T, ObjectError> {
    fn or_s3(self) -> Result<T, S3Error> {
        self.map_err(s3_error)
    }
}

impl<T> OrS3<T> for Result<T, MetaError> {
    fn or_s3(self) -> Result<T, S3Error> {
        self.map_err(|e| s3_error(e.into()))
    }
}
