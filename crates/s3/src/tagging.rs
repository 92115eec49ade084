//! Object tagging: PutObjectTagging, GetObjectTagging, DeleteObjectTagging.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::S3Front;
use crate::attributes::{MAX_OBJECT_TAGS, tag_set, wire_tags};
use crate::error::OrS3;

fn reject_versions(version_id: Option<&String>) -> S3Result<()> {
    match version_id {
        Some(_) => Err(s3_error!(NotImplemented, "Object versions are not supported")),
        None => Ok(()),
    }
}

pub(crate) async fn put_object_tagging(
    front: &S3Front,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = req.input;
    reject_versions(input.version_id.as_ref())?;
    let tags = tag_set(input.tagging.tag_set, MAX_OBJECT_TAGS)?;
    front.objects.set_tags(&input.bucket, &input.key, &tags).await.or_s3()?;
    Ok(S3Response::new(PutObjectTaggingOutput::default()))
}

pub(crate) async fn get_object_tagging(
    front: &S3Front,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = req.input;
    reject_versions(input.version_id.as_ref())?;
    let record = front.objects.head(&input.bucket, &input.key).await.or_s3()?;
    Ok(S3Response::new(GetObjectTaggingOutput { tag_set: wire_tags(record.tag_set()), version_id: None }))
}

pub(crate) async fn delete_object_tagging(
    front: &S3Front,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = req.input;
    reject_versions(input.version_id.as_ref())?;
    front.objects.set_tags(&input.bucket, &input.key, &[]).await.or_s3()?;
    Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
}
