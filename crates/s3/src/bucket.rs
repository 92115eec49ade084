//! Bucket operations: ListBuckets (paged, by prefix and region), CreateBucket (with its initial
//! public access block), DeleteBucket, HeadBucket, GetBucketLocation, GetBucketVersioning.
//! Bucket names are checked against S3's naming rules by s3s before a request gets here.

use latchkey_meta::{BucketSetting, Versioning};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use latchkey_meta::MetaError;
use latchkey_object::ObjectError;

use crate::S3Front;
use crate::attributes::timestamp;
use crate::error::OrS3;
use crate::list::{decode_token, encode_token};

const US_EAST_1: &str = "us-east-1";

/// S3's bounds on `max-buckets`; without it, every bucket is listed.
const MAX_BUCKETS: std::ops::RangeInclusive<i32> = 1..=10_000;

pub(crate) async fn list_buckets(
    front: &S3Front,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let input = req.input;
    let limit = match input.max_buckets {
        None => usize::MAX,
        Some(n) if MAX_BUCKETS.contains(&n) => n as usize,
        Some(_) => return Err(s3_error!(InvalidArgument, "max-buckets must be between 1 and 10000")),
    };
    let after = input.continuation_token.as_deref().map(decode_token).transpose()?;
    let prefix = input.prefix.as_deref().unwrap_or_default();
    let buckets = front.objects.meta().list_buckets().await.map_err(|e| crate::error::s3_error(e.into()))?;
    let mut chosen = buckets.into_iter().filter(|b| {
        b.name.starts_with(prefix)
            && after.as_ref().is_none_or(|after| &b.name > after)
            && input.bucket_region.as_ref().is_none_or(|region| &b.region == region)
    });
    let page: Vec<_> = chosen.by_ref().take(limit).collect();
    let continuation_token = match chosen.next() {
        Some(_) => page.last().map(|b| encode_token(&b.name)),
        None => None,
    };
    let buckets = page
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created)),
            bucket_region: Some(b.region),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(front.owner()),
        continuation_token,
        prefix: input.prefix,
    }))
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
    match constraint {
        // us-east-1 is named by giving no constraint; AWS refuses it by name.
        Some(constraint) if constraint.as_str() == US_EAST_1 && front.region == US_EAST_1 => {
            return Err(s3_error!(InvalidLocationConstraint, "The specified location-constraint is not valid"));
        }
        Some(constraint) if constraint.as_str() != front.region => {
            return Err(s3_error!(
                IllegalLocationConstraintException,
                "The {} location constraint is incompatible for the region specific endpoint this request was sent to.",
                constraint.as_str()
            ));
        }
        _ => {}
    }
    let object_lock = input.object_lock_enabled_for_bucket == Some(true);
    match front.objects.create_bucket(&input.bucket, &front.region, object_lock).await {
        // In us-east-1, creating a bucket you already own succeeds and changes nothing (S3's
        // legacy behaviour); other regions answer BucketAlreadyOwnedByYou.
        Err(ObjectError::Meta(MetaError::BucketAlreadyExists)) if front.region == US_EAST_1 => {
            return Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", input.bucket)) }));
        }
        created => created.or_s3()?,
    }
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

/// A bucket that was never versioned answers an empty configuration (clients such as rclone ask
/// before they delete).
pub(crate) async fn get_bucket_versioning(
    front: &S3Front,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let bucket = front.objects.bucket(&req.input.bucket).await.or_s3()?;
    let status = bucket.versioning.map(|state| BucketVersioningStatus::from(state.as_str().to_owned()));
    let mfa_delete = status.is_some().then(|| match bucket.mfa_delete {
        Some(_) => MFADeleteStatus::from_static(MFADeleteStatus::ENABLED),
        None => MFADeleteStatus::from_static(MFADeleteStatus::DISABLED),
    });
    Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete }))
}

/// Enables or suspends versioning, and turns MFA Delete on (bound to the device whose code turns
/// it on) or off (`mfa_delete`: with a code of that device, as any change is while it is on).
/// MFA Delete and lifecycle rules are refused while the other is set, as in S3 (lifecycle has no
/// code; the store keeps it from deleting versions of such a bucket even if the two race).
pub(crate) async fn put_bucket_versioning(
    front: &S3Front,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let input = req.input;
    let config = input.versioning_configuration;
    let state = match config.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        _ => return Err(s3_error!(MalformedXML, "The versioning Status must be Enabled or Suspended")),
    };
    let mfa_delete = match config.mfa_delete.as_ref().map(MFADelete::as_str) {
        None => None,
        Some(MFADelete::ENABLED) => Some(true),
        Some(MFADelete::DISABLED) => Some(false),
        Some(_) => return Err(s3_error!(MalformedXML, "MfaDelete must be Enabled or Disabled")),
    };
    let bucket = front.objects.bucket(&input.bucket).await.or_s3()?;
    let switches_mfa = mfa_delete.is_some_and(|on| on != bucket.mfa_delete.is_some());
    if mfa_delete == Some(true) && front.configs.get(&input.bucket).config.lifecycle.is_some() {
        return Err(s3_error!(
            InvalidBucketState,
            "MFA Delete cannot be enabled on a bucket with a lifecycle configuration."
        ));
    }
    // Refused before a code is spent on it.
    if bucket.object_lock.is_some() && state == Versioning::Suspended {
        return Err(s3_error!(
            InvalidBucketState,
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
        ));
    }
    let bound = bucket.mfa_delete.as_ref();
    let device = match bound.is_some() || switches_mfa {
        true => Some(crate::mfa_delete::require(front, &req.extensions, input.mfa.as_deref(), bound).await?),
        false => None,
    };
    front.objects.set_versioning(&input.bucket, state).await.or_s3()?;
    if let Some(on) = mfa_delete.filter(|_| switches_mfa) {
        let expected = bound.map(|d| d.serial.as_str());
        front.objects.set_mfa_delete(&input.bucket, device.filter(|_| on).as_ref(), expected).await.or_s3()?;
    }
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
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
