//! Object tagging: PutObjectTagging, GetObjectTagging, DeleteObjectTagging.

use latchkey_meta::Tag as StoredTag;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::S3Front;
use crate::attributes::validate_tags;
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
    let tags = input
        .tagging
        .tag_set
        .into_iter()
        .map(|t| match (t.key, t.value) {
            (Some(key), Some(value)) => Ok(StoredTag { key, value }),
            _ => Err(s3_error!(MalformedXML, "Every Tag needs a Key and a Value")),
        })
        .collect::<S3Result<Vec<_>>>()?;
    let tags = validate_tags(tags)?;
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
    let tag_set = record.tags.into_iter().map(|t| Tag { key: Some(t.key), value: Some(t.value) }).collect();
    Ok(S3Response::new(GetObjectTaggingOutput { tag_set, version_id: None }))
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
