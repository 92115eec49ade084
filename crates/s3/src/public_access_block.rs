//! The bucket's public access block: PutPublicAccessBlock, GetPublicAccessBlock,
//! DeletePublicAccessBlock. What the flags do is decided elsewhere: BlockPublicPolicy in
//! PutBucketPolicy, RestrictPublicBuckets in `BucketRules::policy_for`; Latchkey has no ACLs, so
//! BlockPublicAcls and IgnorePublicAcls are kept and reported only.

use latchkey_meta::{BucketSetting, PublicAccessBlock};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use crate::S3Front;
use crate::error::OrS3;

pub(crate) async fn put_public_access_block(
    front: &S3Front,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let input = req.input;
    let wire = input.public_access_block_configuration;
    // An absent flag is off, as in S3.
    let block = PublicAccessBlock {
        block_public_acls: wire.block_public_acls.unwrap_or(false),
        ignore_public_acls: wire.ignore_public_acls.unwrap_or(false),
        block_public_policy: wire.block_public_policy.unwrap_or(false),
        restrict_public_buckets: wire.restrict_public_buckets.unwrap_or(false),
    };
    front.configs.set(&input.bucket, BucketSetting::PublicAccessBlock(Some(block))).await.or_s3()?;
    Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
}

pub(crate) async fn get_public_access_block(
    front: &S3Front,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    front.objects.bucket(&req.input.bucket).await.or_s3()?;
    let rules = front.configs.get(&req.input.bucket);
    let Some(block) = rules.config.public_access_block else {
        // s3s has no variant for this code.
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
            "The public access block configuration was not found",
        );
        e.set_status_code(http::StatusCode::NOT_FOUND);
        return Err(e);
    };
    let configuration = PublicAccessBlockConfiguration {
        block_public_acls: Some(block.block_public_acls),
        ignore_public_acls: Some(block.ignore_public_acls),
        block_public_policy: Some(block.block_public_policy),
        restrict_public_buckets: Some(block.restrict_public_buckets),
    };
    Ok(S3Response::new(GetPublicAccessBlockOutput { public_access_block_configuration: Some(configuration) }))
}

pub(crate) async fn delete_public_access_block(
    front: &S3Front,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    front.configs.set(&req.input.bucket, BucketSetting::PublicAccessBlock(None)).await.or_s3()?;
    Ok(S3Response::new(DeletePublicAccessBlockOutput::default()))
}
