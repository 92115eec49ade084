//! Bucket lifecycle: Put/Get/DeleteBucketLifecycleConfiguration, with S3's validation. The rules
//! are stored as `latchkey_object::lifecycle` reads them; its worker applies them.

use latchkey_meta::{BucketSetting, Tag as StoredTag};
use latchkey_object::lifecycle::{Expiration, LifecycleConfiguration, LifecycleRule, NoncurrentExpiration, RuleFilter};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use time::{OffsetDateTime, Time};

use crate::S3Front;
use crate::error::OrS3;

/// S3 accepts up to 1000 rules per bucket.
const MAX_RULES: usize = 1000;

/// The longest period a rule may count, in days: 100 years, as Object Lock's longest retention.
const MAX_DAYS: u32 = latchkey_meta::MAX_RETENTION_DAYS;

/// The most newest noncurrent versions a rule may keep.
const MAX_NEWER_VERSIONS: i32 = 100;

pub(crate) async fn put_bucket_lifecycle_configuration(
    front: &S3Front,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let input = req.input;
    let wire = input.lifecycle_configuration.map(|c| c.rules).unwrap_or_default();
    if wire.is_empty() || wire.len() > MAX_RULES {
        return Err(s3_error!(MalformedXML, "A lifecycle configuration holds 1 to 1000 rules"));
    }
    let rules = wire.into_iter().map(rule_of).collect::<S3Result<Vec<_>>>()?;
    let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(s3_error!(InvalidArgument, "Rule ID must be unique. Found same ID for more than one rule"));
    }
    if front.objects.bucket(&input.bucket).await.or_s3()?.mfa_delete.is_some() {
        return Err(s3_error!(
            InvalidBucketState,
            "A bucket with MFA Delete cannot have a lifecycle configuration: lifecycle deletes versions without a code."
        ));
    }
    let json = serde_json::to_string(&LifecycleConfiguration { rules }).map_err(|e| s3_error!(e, InternalError))?;
    front.configs.set(&input.bucket, BucketSetting::Lifecycle(Some(json))).await.or_s3()?;
    Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
}

/// One rule, checked as S3 checks it.
fn rule_of(rule: s3s::dto::LifecycleRule) -> S3Result<LifecycleRule> {
    if rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || rule.noncurrent_version_transitions.as_ref().is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(NotImplemented, "Transitions are not supported: Latchkey has one storage class"));
    }
    let id = rule.id.unwrap_or_else(LifecycleRule::generated_id);
    if id.len() > 255 {
        return Err(s3_error!(InvalidArgument, "ID length should not exceed allowed limit of 255"));
    }
    let enabled = match rule.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(s3_error!(MalformedXML, "Status must be Enabled or Disabled")),
    };
    let filter = filter_of(rule.filter, rule.prefix)?;
    let positive = |n: i32, what: &str| {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_DAYS).contains(n))
            .ok_or_else(|| s3_error!(InvalidArgument, "{what} must be a positive integer of at most {MAX_DAYS}"))
    };
    let (mut expiration, mut expired_object_delete_marker) = (None, false);
    if let Some(e) = rule.expiration {
        match (e.days, e.date, e.expired_object_delete_marker) {
            (Some(days), None, None) => {
                expiration = Some(Expiration::Days(positive(days, "'Days' for Expiration action")?))
            }
            (None, Some(date), None) => {
                let date: OffsetDateTime = date.into();
                if date.time() != Time::MIDNIGHT || date.offset() != time::UtcOffset::UTC {
                    return Err(s3_error!(InvalidArgument, "'Date' must be at midnight GMT"));
                }
                expiration = Some(Expiration::Date(date));
            }
            (None, None, Some(marker)) => expired_object_delete_marker = marker,
            _ => {
                return Err(s3_error!(MalformedXML, "Expiration takes one of Days, Date or ExpiredObjectDeleteMarker"));
            }
        }
    }
    if expired_object_delete_marker
        && (!filter.tags.is_empty() || filter.size_greater_than.is_some() || filter.size_less_than.is_some())
    {
        return Err(s3_error!(
            InvalidArgument,
            "ExpiredObjectDeleteMarker cannot be specified with tags or object sizes in the filter"
        ));
    }
    let noncurrent_expiration = rule
        .noncurrent_version_expiration
        .map(|n| {
            let days =
                positive(n.noncurrent_days.unwrap_or(0), "'NoncurrentDays' for NoncurrentVersionExpiration action")?;
            let newer_noncurrent_versions = match n.newer_noncurrent_versions {
                None => None,
                Some(count) if (1..=MAX_NEWER_VERSIONS).contains(&count) => u32::try_from(count).ok(),
                Some(_) => return Err(s3_error!(InvalidArgument, "NewerNoncurrentVersions must be between 1 and 100")),
            };
            Ok(NoncurrentExpiration { days, newer_noncurrent_versions })
        })
        .transpose()?;
    let abort_incomplete_upload_days = rule
        .abort_incomplete_multipart_upload
        .map(|a| {
            positive(
                a.days_after_initiation.unwrap_or(0),
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action",
            )
        })
        .transpose()?;
    if abort_incomplete_upload_days.is_some()
        && (!filter.tags.is_empty() || filter.size_greater_than.is_some() || filter.size_less_than.is_some())
    {
        return Err(s3_error!(
            InvalidRequest,
            "AbortIncompleteMultipartUpload cannot be specified with Tags or object sizes in the filter"
        ));
    }
    if expiration.is_none()
        && !expired_object_delete_marker
        && noncurrent_expiration.is_none()
        && abort_incomplete_upload_days.is_none()
    {
        return Err(s3_error!(InvalidRequest, "At least one action needs to be specified in a rule"));
    }
    Ok(LifecycleRule {
        id,
        enabled,
        filter,
        expiration,
        expired_object_delete_marker,
        noncurrent_expiration,
        abort_incomplete_upload_days,
    })
}

/// A rule's filter: a prefix, one tag, object sizes, or an `And` of them; or the rule's own
/// (deprecated) `Prefix`. A filter that names nothing matches every object.
fn filter_of(filter: Option<LifecycleRuleFilter>, legacy_prefix: Option<String>) -> S3Result<RuleFilter> {
    let Some(f) = filter else {
        return Ok(RuleFilter { prefix: legacy_prefix.unwrap_or_default(), ..Default::default() });
    };
    if legacy_prefix.is_some() {
        return Err(s3_error!(MalformedXML, "A rule has either a Filter or a Prefix, not both"));
    }
    let size = |n: Option<i64>| {
        n.map(|n| u64::try_from(n).map_err(|_| s3_error!(InvalidArgument, "Object sizes must not be negative")))
            .transpose()
    };
    let tag = |t: Tag| StoredTag { key: t.key.unwrap_or_default(), value: t.value.unwrap_or_default() };
    let given = [
        f.prefix.is_some(),
        f.tag.is_some(),
        f.object_size_greater_than.is_some(),
        f.object_size_less_than.is_some(),
        f.and.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(s3_error!(MalformedXML, "A Filter holds one condition; combine several with And"));
    }
    let filter = match f.and {
        Some(and) => RuleFilter {
            prefix: and.prefix.unwrap_or_default(),
            tags: and.tags.unwrap_or_default().into_iter().map(tag).collect(),
            size_greater_than: size(and.object_size_greater_than)?,
            size_less_than: size(and.object_size_less_than)?,
        },
        None => RuleFilter {
            prefix: f.prefix.unwrap_or_default(),
            tags: f.tag.into_iter().map(tag).collect(),
            size_greater_than: size(f.object_size_greater_than)?,
            size_less_than: size(f.object_size_less_than)?,
        },
    };
    let mut tag_keys: Vec<&str> = filter.tags.iter().map(|t| t.key.as_str()).collect();
    tag_keys.sort_unstable();
    if tag_keys.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(s3_error!(InvalidRequest, "Duplicate Tag Keys are not allowed."));
    }
    if let (Some(above), Some(below)) = (filter.size_greater_than, filter.size_less_than)
        && above >= below
    {
        return Err(s3_error!(InvalidArgument, "ObjectSizeGreaterThan must be less than ObjectSizeLessThan"));
    }
    Ok(filter)
}

pub(crate) async fn get_bucket_lifecycle_configuration(
    front: &S3Front,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    front.objects.bucket(&req.input.bucket).await.or_s3()?;
    let settings = front.configs.get(&req.input.bucket);
    let stored = settings.config.lifecycle.as_deref().map(serde_json::from_str::<LifecycleConfiguration>);
    let Some(Ok(config)) = stored else {
        return Err(s3_error!(NoSuchLifecycleConfiguration, "The lifecycle configuration does not exist"));
    };
    let rules = config.rules.into_iter().map(wire_rule).collect();
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput { rules: Some(rules), ..Default::default() }))
}

/// A stored rule as S3 returns it.
fn wire_rule(rule: LifecycleRule) -> s3s::dto::LifecycleRule {
    let tag = |t: StoredTag| Tag { key: Some(t.key), value: Some(t.value) };
    let f = rule.filter;
    let conditions = usize::from(!f.prefix.is_empty())
        + f.tags.len()
        + usize::from(f.size_greater_than.is_some())
        + usize::from(f.size_less_than.is_some());
    let size = |n: Option<u64>| n.and_then(|n| i64::try_from(n).ok());
    let filter = if conditions > 1 {
        LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: (!f.prefix.is_empty()).then_some(f.prefix),
                tags: (!f.tags.is_empty()).then(|| f.tags.into_iter().map(tag).collect()),
                object_size_greater_than: size(f.size_greater_than),
                object_size_less_than: size(f.size_less_than),
            }),
            ..Default::default()
        }
    } else {
        LifecycleRuleFilter {
            prefix: Some(f.prefix),
            tag: f.tags.into_iter().next().map(tag),
            object_size_greater_than: size(f.size_greater_than),
            object_size_less_than: size(f.size_less_than),
            ..Default::default()
        }
    };
    let expiration = match (rule.expiration, rule.expired_object_delete_marker) {
        (Some(Expiration::Days(days)), _) => {
            Some(LifecycleExpiration { days: i32::try_from(days).ok(), ..Default::default() })
        }
        (Some(Expiration::Date(date)), _) => {
            Some(LifecycleExpiration { date: Some(date.into()), ..Default::default() })
        }
        (None, true) => Some(LifecycleExpiration { expired_object_delete_marker: Some(true), ..Default::default() }),
        (None, false) => None,
    };
    s3s::dto::LifecycleRule {
        id: Some(rule.id),
        status: ExpirationStatus::from_static(if rule.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        filter: Some(filter),
        expiration,
        noncurrent_version_expiration: rule.noncurrent_expiration.map(|n| NoncurrentVersionExpiration {
            noncurrent_days: i32::try_from(n.days).ok(),
            newer_noncurrent_versions: n.newer_noncurrent_versions.and_then(|k| i32::try_from(k).ok()),
        }),
        abort_incomplete_multipart_upload: rule
            .abort_incomplete_upload_days
            .map(|days| AbortIncompleteMultipartUpload { days_after_initiation: i32::try_from(days).ok() }),
        noncurrent_version_transitions: None,
        prefix: None,
        transitions: None,
    }
}

pub(crate) async fn delete_bucket_lifecycle(
    front: &S3Front,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    front.configs.set(&req.input.bucket, BucketSetting::Lifecycle(None)).await.or_s3()?;
    Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
}
