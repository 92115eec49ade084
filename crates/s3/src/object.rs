//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, CopyObject.

use base64::Engine;
use latchkey_meta::{NULL_VERSION, ObjectRecord};
use latchkey_object::{Deletion, ObjectAttributes, ObjectError, ReadError};
use latchkey_storage::WriteLimits;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::S3Front;
use crate::attributes::{attributes, etag, fill_object_headers, timestamp, write_headers};
use crate::checksum::{self, declared};
use crate::conditional::{self, Preconditions, Reading};
use crate::error::OrS3;

/// S3's largest single PUT; bigger objects must use multipart upload.
pub(crate) const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// The write limits a PUT-like request declares: its length and, optionally, its MD5.
pub(crate) fn write_limits(content_length: Option<i64>, content_md5: Option<&str>) -> S3Result<WriteLimits> {
    let expected_md5 = content_md5
        .map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|raw| <[u8; 16]>::try_from(raw).ok())
                .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))
        })
        .transpose()?;
    let expected_size = content_length.and_then(|n| u64::try_from(n).ok());
    if expected_size.is_some_and(|n| n > MAX_PUT_SIZE) {
        return Err(s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed size"));
    }
    Ok(WriteLimits { expected_size, max_size: Some(MAX_PUT_SIZE), expected_md5 })
}

/// The request body, or an empty one.
pub(crate) fn body(
    blob: Option<StreamingBlob>,
) -> futures::stream::BoxStream<'static, Result<bytes::Bytes, s3s::StdError>> {
    use futures::StreamExt;
    match blob {
        Some(blob) => blob.boxed(),
        None => futures::stream::empty().boxed(),
    }
}

pub(crate) async fn put_object(
    front: &S3Front,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let trailer = req.headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let input = req.input;
    let attrs = attributes(write_headers!(input))?;
    let limits = write_limits(input.content_length, input.content_md5.as_deref())?;
    let body = checksum::verified(body(input.body), &declared!(input), trailer.as_deref(), req.trailing_headers)?;
    let record = front.objects.put(&input.bucket, &input.key, body, limits, attrs).await.or_s3()?;
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag(&record.etag)),
        size: i64::try_from(record.size).ok(),
        version_id: shown_version_id(&record),
        ..Default::default()
    }))
}

/// The version id a response names: a version's own id, and none for a null version written
/// in a bucket that was never versioned (S3 sends no header then).
pub(crate) fn shown_version_id(record: &ObjectRecord) -> Option<String> {
    record.versioned.then(|| record.version_id.clone())
}

/// A `versionId` parameter, checked: `null` or one of the ids Latchkey makes (32 lowercase hex
/// digits); anything else is `InvalidArgument`, as S3 answers a malformed id.
pub(crate) fn checked_version_id(version_id: &str) -> S3Result<&str> {
    let made = version_id.len() == 32 && version_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match version_id == NULL_VERSION || made {
        true => Ok(version_id),
        false => Err(s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}

pub(crate) async fn get_object(
    front: &S3Front,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    let pre = Preconditions {
        if_match: input.if_match.as_ref(),
        if_none_match: input.if_none_match.as_ref(),
        if_modified_since: input.if_modified_since.as_ref(),
        if_unmodified_since: input.if_unmodified_since.as_ref(),
    };
    let plan = |record: &ObjectRecord| {
        conditional::check(&pre, record, Reading::Representation)?;
        conditional::plan_range(record, input.range.as_ref(), input.part_number)
    };
    let read = match input.version_id.as_deref() {
        Some(version_id) => {
            let version_id = checked_version_id(version_id)?;
            front.objects.read_version(&input.bucket, &input.key, version_id, plan).await
        }
        None => front.objects.read(&input.bucket, &input.key, plan).await,
    };
    let read = read.map_err(|e| match e {
        ReadError::Object(e) => crate::error::s3_error(e),
        ReadError::Refused(e) => e,
    })?;
    let mut output = GetObjectOutput {
        content_length: i64::try_from(read.range.end - read.range.start).ok(),
        content_range: conditional::partial(&read.record, input.range.as_ref(), input.part_number)
            .then(|| conditional::content_range(&read.range, read.record.size)),
        tag_count: i32::try_from(read.record.tag_set().len()).ok().filter(|n| *n > 0),
        version_id: shown_version_id(&read.record).or(input.version_id),
        body: Some(StreamingBlob::wrap(read.body)),
        ..Default::default()
    };
    fill_object_headers!(output, &read.record);
    Ok(S3Response::new(output))
}

pub(crate) async fn head_object(
    front: &S3Front,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let record = match input.version_id.as_deref() {
        Some(version_id) => {
            let version_id = checked_version_id(version_id)?;
            front.objects.version_record(&input.bucket, &input.key, version_id).await.or_s3()?
        }
        None => front.objects.head(&input.bucket, &input.key).await.or_s3()?,
    };
    let pre = Preconditions {
        if_match: input.if_match.as_ref(),
        if_none_match: input.if_none_match.as_ref(),
        if_modified_since: input.if_modified_since.as_ref(),
        if_unmodified_since: input.if_unmodified_since.as_ref(),
    };
    conditional::check(&pre, &record, Reading::Representation)?;
    let range = conditional::plan_range(&record, input.range.as_ref(), input.part_number)?;
    let mut output = HeadObjectOutput {
        content_length: i64::try_from(range.end - range.start).ok(),
        content_range: conditional::partial(&record, input.range.as_ref(), input.part_number)
            .then(|| conditional::content_range(&range, record.size)),
        version_id: shown_version_id(&record).or(input.version_id),
        ..Default::default()
    };
    fill_object_headers!(output, &record);
    Ok(S3Response::new(output))
}

pub(crate) async fn delete_object(
    front: &S3Front,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let asked = req.input.bypass_governance_retention;
    let bypass = crate::object_lock::bypass_governance(&req, asked, &req.input.bucket, &req.input.key).await;
    if req.input.version_id.is_some() {
        let bucket = front.objects.bucket(&req.input.bucket).await.or_s3()?;
        crate::mfa_delete::require_if_on(front, &bucket, &req.extensions, req.input.mfa.as_deref()).await?;
    }
    let input = req.input;
    let deletion = delete(front, &input.bucket, &input.key, input.version_id.as_deref(), bypass).await?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: deletion.delete_marker.then_some(true),
        version_id: deletion.version_id,
        ..Default::default()
    }))
}

/// Deletes the current version (leaving a delete marker in a versioned bucket) or, with an id,
/// one version for good (unless Object Lock protects it; `bypass`: the caller asked to bypass
/// GOVERNANCE retention and may).
async fn delete(
    front: &S3Front,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    bypass: bool,
) -> S3Result<Deletion> {
    match version_id {
        Some(version_id) => {
            let version_id = checked_version_id(version_id)?;
            front.objects.delete_version(bucket, key, version_id, bypass).await.or_s3()
        }
        None => front.objects.delete(bucket, key).await.or_s3(),
    }
}

/// S3's limit on keys in one DeleteObjects request.
const MAX_DELETE_KEYS: usize = 1000;

/// How often CopyObject checks its conditions and copies when the source keeps being replaced
/// between the two; each attempt sees a newer version.
const COPY_ATTEMPTS: usize = 3;

pub(crate) async fn delete_objects(
    front: &S3Front,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let permission = req.extensions.get::<crate::auth::ObjectPermission>().cloned();
    let input = req.input;
    if input.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(MalformedXML, "A DeleteObjects request may name at most 1000 keys"));
    }
    let bucket = front.objects.bucket(&input.bucket).await.or_s3()?;
    // One code for the whole request, as S3 takes it.
    if input.delete.objects.iter().any(|o| o.version_id.is_some()) {
        crate::mfa_delete::require_if_on(front, &bucket, &req.extensions, input.mfa.as_deref()).await?;
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for object in input.delete.objects {
        // Each key is authorised on its own, as AWS does; without a permission, none is.
        let action = match object.version_id {
            Some(_) => "s3:DeleteObjectVersion",
            None => "s3:DeleteObject",
        };
        let version_id = object.version_id.as_deref();
        let allowed = match &permission {
            Some(permission) => permission.allows_on(action, &input.bucket, &object.key, version_id).await,
            None => false,
        };
        if !allowed {
            errors.push(Error {
                code: Some("AccessDenied".to_owned()),
                key: Some(object.key),
                message: Some("Access Denied".to_owned()),
                version_id: object.version_id,
            });
            continue;
        }
        let bypass = match (&permission, input.bypass_governance_retention, version_id) {
            (Some(permission), Some(true), Some(version_id)) => {
                let bypass = "s3:BypassGovernanceRetention";
                permission.allows_on(bypass, &input.bucket, &object.key, Some(version_id)).await
            }
            _ => false,
        };
        match delete(front, &input.bucket, &object.key, object.version_id.as_deref(), bypass).await {
            Ok(_) if quiet => {}
            Ok(deletion) => deleted.push(DeletedObject {
                key: Some(object.key),
                // A marker made now is named apart from a version asked for by id.
                delete_marker_version_id: match object.version_id {
                    None if deletion.delete_marker => deletion.version_id.clone(),
                    _ => None,
                },
                delete_marker: deletion.delete_marker.then_some(true),
                version_id: object.version_id,
            }),
            Err(e) => errors.push(Error {
                code: Some(e.code().as_str().to_owned()),
                key: Some(object.key),
                message: e.message().map(str::to_owned),
                version_id: object.version_id,
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
}

pub(crate) async fn copy_object(
    front: &S3Front,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = req.input;
    let CopySource::Bucket { bucket: src_bucket, key: src_key, version_id } = &input.copy_source else {
        return Err(s3_error!(NotImplemented, "Copying from an access point is not supported"));
    };
    let version_id = version_id.as_deref().map(checked_version_id).transpose()?;
    let replace_metadata = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let replace_tags = input.tagging_directive.as_ref().is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
    let pre = Preconditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
    };
    let requested = attributes(write_headers!(input))?;
    let mut attempt = 0;
    let (record, copied_version) = loop {
        attempt += 1;
        // (the source, and whether it is its key's current version)
        let (source, current) = match version_id {
            Some(version_id) => {
                let version = front.objects.version(src_bucket, src_key, version_id).await.or_s3()?;
                if version.delete_marker {
                    return Err(s3_error!(
                        InvalidRequest,
                        "The source of a copy request may not specifically refer to a delete marker by version id."
                    ));
                }
                (version.record, version.current)
            }
            None => (front.objects.head(src_bucket, src_key).await.or_s3()?, true),
        };
        conditional::check(&pre, &source, Reading::CopySource)?;
        // Copying an older version onto its key restores it; only the current one is "itself".
        if !replace_metadata && !replace_tags && current && **src_bucket == *input.bucket && **src_key == *input.key {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let attrs = ObjectAttributes {
            headers: if replace_metadata { requested.headers.clone() } else { source.headers.clone() },
            user_meta: if replace_metadata { requested.user_meta.clone() } else { source.user_meta.clone() },
            tags: if replace_tags { requested.tags.clone() } else { source.tags.clone() },
            // A copy is a new version: its lock is what the copy asks for, never the source's.
            lock: requested.lock,
        };
        // The service copies exactly the version checked above; if that one was replaced
        // meanwhile, the conditions are checked again on the new one.
        match front.objects.copy(&source, &input.bucket, &input.key, attrs).await {
            Err(ObjectError::SourceChanged) if attempt < COPY_ATTEMPTS => continue,
            outcome => break (outcome.or_s3()?, shown_version_id(&source)),
        }
    };
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&record.etag)),
            last_modified: Some(timestamp(record.last_modified)),
            ..Default::default()
        }),
        copy_source_version_id: copied_version,
        version_id: shown_version_id(&record),
        ..Default::default()
    }))
}
