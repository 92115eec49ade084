//! Object tagging: PutObjectTagging, GetObjectTagging, DeleteObjectTagging.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::S3Front;
use crate::attributes::{MAX_OBJECT_TAGS, tag_set, wire_tags};
use crate::error::OrS3;

pub(crate) async fn put_object_tagging(
    front: &S3Front,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = req.input;
    let tags = tag_set(input.tagging.tag_set, MAX_OBJECT_TAGS)?;
    set_tags(front, &input.bucket, &input.key, input.version_id.as_deref(), &tags).await?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id: input.version_id }))
}

pub(crate) async fn get_object_tagging(
    front: &S3Front,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = req.input;
    let record = match input.version_id.as_deref() {
        Some(version_id) => {
            let version_id = crate::object::checked_version_id(version_id)?;
            front.objects.version_record(&input.bucket, &input.key, version_id).await.or_s3()?
        }
        None => front.objects.head(&input.bucket, &input.key).await.or_s3()?,
    };
    let version_id = record.versioned.then(|| record.s3_version_id().to_owned()).or(input.version_id);
    Ok(S3Response::new(GetObjectTaggingOutput { tag_set: wire_tags(record.tag_set()), version_id }))
}

pub(crate) async fn delete_object_tagging(
    front: &S3Front,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = req.input;
    set_tags(front, &input.bucket, &input.key, input.version_id.as_deref(), &[]).await?;
    Ok(S3Response::new(DeleteObjectTaggingOutput { version_id: input.version_id }))
}

/// Replaces the tags of the current version, or of `version_id`.
async fn set_tags(
    front: &S3Front,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    tags: &[latchkey_meta::Tag],
) -> S3Result<()> {
    match version_id {
        Some(version_id) => {
            let version_id = crate::object::checked_version_id(version_id)?;
            front.objects.set_version_tags(bucket, key, version_id, tags).await.or_s3()
        }
        None => front.objects.set_tags(bucket, key, tags).await.or_s3(),
    }
}
