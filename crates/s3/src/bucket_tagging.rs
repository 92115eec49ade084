//! Bucket tagging: PutBucketTagging, GetBucketTagging, DeleteBucketTagging. The Authorizer
//! offers a bucket's tags to policies as `aws:ResourceTag/KEY`.

use latchkey_meta::BucketSetting;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::S3Front;
use crate::attributes::{MAX_BUCKET_TAGS, tag_set, wire_tags};
use crate::error::OrS3;

pub(crate) async fn put_bucket_tagging(
    front: &S3Front,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let input = req.input;
    let tags = tag_set(input.tagging.tag_set, MAX_BUCKET_TAGS)?;
    front.configs.set(&input.bucket, BucketSetting::Tags(tags)).await.or_s3()?;
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

pub(crate) async fn get_bucket_tagging(
    front: &S3Front,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    front.objects.bucket(&req.input.bucket).await.or_s3()?;
    let tags = front.configs.get(&req.input.bucket).tags().to_vec();
    if tags.is_empty() {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
    }
    Ok(S3Response::new(GetBucketTaggingOutput { tag_set: wire_tags(tags) }))
}

pub(crate) async fn delete_bucket_tagging(
    front: &S3Front,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    front.configs.set(&req.input.bucket, BucketSetting::Tags(Vec::new())).await.or_s3()?;
    Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
}
