//! Object Lock operations: Put/GetObjectLockConfiguration, Put/GetObjectRetention,
//! Put/GetObjectLegalHold, and the `x-amz-object-lock-*` headers of writes and reads.

use latchkey_meta::{
    DefaultRetention, LockChange, LockConfiguration, LockMode, MAX_RETENTION_DAYS, ObjectLock, ObjectRecord, Retention,
    RetentionPeriod,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::S3Front;
use crate::auth::ObjectPermission;
use crate::error::OrS3;
use crate::object::checked_version_id;

pub(crate) async fn put_object_lock_configuration(
    front: &S3Front,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let input = req.input;
    let config = input.object_lock_configuration.unwrap_or_default();
    if config.object_lock_enabled.as_ref().map(ObjectLockEnabled::as_str) != Some(ObjectLockEnabled::ENABLED) {
        return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
    }
    let default_retention = config.rule.map(|rule| default_retention(rule.default_retention)).transpose()?;
    let config = LockConfiguration { default_retention };
    front.objects.set_lock_configuration(&input.bucket, config).await.or_s3()?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

/// A rule's default retention: a mode and either days or years, each positive and at most 100
/// years, as S3 requires.
fn default_retention(retention: Option<s3s::dto::DefaultRetention>) -> S3Result<DefaultRetention> {
    let retention = retention.ok_or_else(|| s3_error!(MalformedXML, "A Rule needs a DefaultRetention"))?;
    let mode = retention.mode.as_ref().map(ObjectLockRetentionMode::as_str).and_then(LockMode::parse);
    let mode =
        mode.ok_or_else(|| s3_error!(MalformedXML, "DefaultRetention needs a Mode: GOVERNANCE or COMPLIANCE"))?;
    let in_range = |n: i32, most: u32| u32::try_from(n).ok().filter(|n| (1..=most).contains(n));
    let period = match (retention.days, retention.years) {
        (Some(days), None) => in_range(days, MAX_RETENTION_DAYS).map(RetentionPeriod::Days),
        (None, Some(years)) => in_range(years, MAX_RETENTION_DAYS / 365).map(RetentionPeriod::Years),
        _ => return Err(s3_error!(MalformedXML, "DefaultRetention needs either Days or Years")),
    };
    let period = period.ok_or_else(|| {
        s3_error!(InvalidArgument, "Default retention period must be a positive integer of at most 100 years")
    })?;
    Ok(DefaultRetention { mode, period })
}

pub(crate) async fn get_object_lock_configuration(
    front: &S3Front,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let bucket = front.objects.bucket(&req.input.bucket).await.or_s3()?;
    let Some(config) = bucket.object_lock else {
        return Err(s3_error!(
            ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket"
        ));
    };
    let rule = config.default_retention.map(|d| ObjectLockRule {
        default_retention: Some(s3s::dto::DefaultRetention {
            mode: Some(ObjectLockRetentionMode::from(d.mode.as_str().to_owned())),
            days: match d.period {
                RetentionPeriod::Days(n) => i32::try_from(n).ok(),
                RetentionPeriod::Years(_) => None,
            },
            years: match d.period {
                RetentionPeriod::Years(n) => i32::try_from(n).ok(),
                RetentionPeriod::Days(_) => None,
            },
        }),
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule,
        }),
    }))
}

pub(crate) async fn put_object_retention(
    front: &S3Front,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let asked = req.input.bypass_governance_retention;
    let bypass_governance = bypass_governance(&req, asked, &req.input.bucket, &req.input.key).await;
    let input = req.input;
    let version_id = input.version_id.as_deref().map(checked_version_id).transpose()?;
    let retention = input.retention.unwrap_or_default();
    let mode = retention.mode.as_ref().map(|m| m.as_str());
    let retention = match (mode, retention.retain_until_date) {
        (None, None) => None,
        (Some(mode), Some(until)) => Some(Retention {
            mode: LockMode::parse(mode)
                .ok_or_else(|| s3_error!(MalformedXML, "Mode must be GOVERNANCE or COMPLIANCE"))?,
            until: until.into(),
        }),
        _ => return Err(s3_error!(MalformedXML, "A Retention needs both a Mode and a RetainUntilDate, or neither")),
    };
    let change = LockChange::Retention { retention, bypass_governance };
    front.objects.change_lock(&input.bucket, &input.key, version_id, change).await.or_s3()?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub(crate) async fn get_object_retention(
    front: &S3Front,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let input = req.input;
    let version_id = input.version_id.as_deref().map(checked_version_id).transpose()?;
    let record = front.objects.locked_version(&input.bucket, &input.key, version_id).await.or_s3()?;
    let Some(retention) = record.lock.retention else {
        return Err(no_lock_configuration());
    };
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(retention.mode.as_str().to_owned())),
            retain_until_date: Some(retention.until.into()),
        }),
    }))
}

pub(crate) async fn put_object_legal_hold(
    front: &S3Front,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let input = req.input;
    let version_id = input.version_id.as_deref().map(checked_version_id).transpose()?;
    let status = input.legal_hold.and_then(|hold| hold.status);
    let on = match status.as_ref().map(ObjectLockLegalHoldStatus::as_str) {
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(ObjectLockLegalHoldStatus::OFF) => false,
        _ => return Err(s3_error!(MalformedXML, "The legal hold Status must be ON or OFF")),
    };
    front.objects.change_lock(&input.bucket, &input.key, version_id, LockChange::LegalHold(on)).await.or_s3()?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub(crate) async fn get_object_legal_hold(
    front: &S3Front,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let input = req.input;
    let version_id = input.version_id.as_deref().map(checked_version_id).transpose()?;
    let record = front.objects.locked_version(&input.bucket, &input.key, version_id).await.or_s3()?;
    let Some(on) = record.lock.legal_hold else {
        return Err(no_lock_configuration());
    };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold { status: Some(legal_hold_status(on)) }),
    }))
}

/// A version that never had the setting asked for.
fn no_lock_configuration() -> s3s::S3Error {
    s3_error!(NoSuchObjectLockConfiguration, "The specified object does not have a ObjectLock configuration")
}

fn legal_hold_status(on: bool) -> ObjectLockLegalHoldStatus {
    ObjectLockLegalHoldStatus::from_static(match on {
        true => ObjectLockLegalHoldStatus::ON,
        false => ObjectLockLegalHoldStatus::OFF,
    })
}

/// Whether a request that asks to bypass GOVERNANCE retention (`asked`) may: the caller must
/// hold `s3:BypassGovernanceRetention` on the object (a refusal is audited).
pub(crate) async fn bypass_governance<T>(req: &S3Request<T>, asked: Option<bool>, bucket: &str, key: &str) -> bool {
    let Some(permission) = req.extensions.get::<ObjectPermission>().filter(|_| asked == Some(true)) else {
        return false;
    };
    permission.allows("s3:BypassGovernanceRetention", bucket, key).await
}

/// The lock a write asks for in its `x-amz-object-lock-*` headers: a mode and a date together,
/// or neither; a legal hold ON or OFF.
pub(crate) fn requested_lock(
    mode: Option<&ObjectLockMode>,
    until: Option<&ObjectLockRetainUntilDate>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<ObjectLock> {
    let retention = match (mode, until) {
        (None, None) => None,
        (Some(mode), Some(until)) => {
            let mode = LockMode::parse(mode.as_str())
                .ok_or_else(|| s3_error!(InvalidArgument, "Unknown wormMode directive."))?;
            let until: time::OffsetDateTime = until.clone().into();
            if until <= time::OffsetDateTime::now_utc() {
                return Err(s3_error!(InvalidArgument, "The retain until date must be in the future!"));
            }
            Some(Retention { mode, until })
        }
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            ));
        }
    };
    let legal_hold = match legal_hold.map(ObjectLockLegalHoldStatus::as_str) {
        None => None,
        Some(ObjectLockLegalHoldStatus::ON) => Some(true),
        Some(ObjectLockLegalHoldStatus::OFF) => Some(false),
        Some(_) => return Err(s3_error!(InvalidArgument, "Legal Hold must be either of 'ON' or 'OFF'")),
    };
    Ok(ObjectLock { retention, legal_hold })
}

/// The `x-amz-object-lock-*` headers of a GET or HEAD answer.
pub(crate) fn shown_lock(
    record: &ObjectRecord,
) -> (Option<ObjectLockMode>, Option<ObjectLockRetainUntilDate>, Option<ObjectLockLegalHoldStatus>) {
    let retention = record.lock.retention;
    (
        retention.map(|r| ObjectLockMode::from(r.mode.as_str().to_owned())),
        retention.map(|r| r.until.into()),
        record.lock.legal_hold.map(legal_hold_status),
    )
}
