//! Bucket operations: ListBuckets, CreateBucket (with its initial public access block),
//! DeleteBucket, HeadBucket, GetBucketLocation.
//! Bucket names are checked against S3's naming rules by s3s before a request gets here.

use latchkey_meta::BucketSetting;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::S3Front;
use crate::attributes::timestamp;
use crate::error::OrS3;

pub(crate) async fn list_buckets(
    front: &S3Front,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let buckets = front.objects.meta().list_buckets().await.map_err(|e| crate::error::s3_error(e.into()))?;
    let owner = req.credentials.map(|c| Owner { id: Some(c.access_key.clone()), display_name: Some(c.access_key) });
    let buckets = buckets
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created)),
            bucket_region: Some(b.region),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput { buckets: Some(buckets), owner, ..Default::default() }))
}

pub(crate) async fn create_bucket(
    front: &S3Front,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let input = req.input;
    if input.bucket == crate::RESERVED_SEGMENT {
        return Err(s3_error!(InvalidBucketName, "The specified bucket is not valid."));
    }
    let constraint = input.create_bucket_configuration.and_then(|c| c.location_constraint);
    if let Some(constraint) = constraint
        && constraint.as_str() != front.region
    {
        return Err(s3_error!(
            IllegalLocationConstraintException,
            "The {} location constraint is incompatible for the region specific endpoint this request was sent to.",
            constraint.as_str()
        ));
    }
    front.objects.create_bucket(&input.bucket, &front.region).await.or_s3()?;
    // A bucket without stored settings has every flag on; `block_public_access = false` asks for
    // none. Should this write fail, the bucket stays blocked, which is the safe side.
    if !front.block_public_access {
        front.configs.set(&input.bucket, BucketSetting::PublicAccessBlock(None)).await.or_s3()?;
    }
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", input.bucket)) }))
}

pub(crate) async fn delete_bucket(
    front: &S3Front,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    front.objects.delete_bucket(&req.input.bucket).await.or_s3()?;
    // Its settings went with it; a bucket created again under the name must not inherit them.
    front.configs.reload_after_write().await;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(crate) async fn head_bucket(
    front: &S3Front,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let bucket = front.objects.bucket(&req.input.bucket).await.or_s3()?;
    Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(bucket.region), ..Default::default() }))
}

pub(crate) async fn get_bucket_location(
    front: &S3Front,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let bucket = front.objects.bucket(&req.input.bucket).await.or_s3()?;
    // S3 reports us-east-1 as an empty constraint.
    let location_constraint = (bucket.region != "us-east-1").then(|| BucketLocationConstraint::from(bucket.region));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
}
