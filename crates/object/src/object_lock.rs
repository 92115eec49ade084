//! Object Lock in the object service: a bucket's configuration (enabled at creation or on a
//! versioned bucket, never removed) and the retention and legal hold of one version. The rules
//! themselves are `latchkey_meta::ObjectLock`'s; the store applies them under the key's lock.

use latchkey_meta::{AuditEvent, LockChange, LockConfiguration, LockRefusal, ObjectLock, ObjectRecord};
use time::OffsetDateTime;

use crate::{ObjectError, ObjectResult, ObjectService};

impl ObjectService {
    /// The bucket's Object Lock configuration; `NoLockConfiguration` without one.
    pub async fn lock_configuration(&self, bucket: &str) -> ObjectResult<LockConfiguration> {
        self.bucket(bucket).await?.object_lock.ok_or(ObjectError::NoLockConfiguration)
    }

    /// Enables Object Lock (only on a bucket whose versioning is enabled) or changes its default
    /// retention; versions already written keep their own.
    pub async fn set_lock_configuration(&self, bucket: &str, config: LockConfiguration) -> ObjectResult<()> {
        if self.versions.set_lock_configuration(bucket, &config).await? {
            return Ok(());
        }
        self.bucket(bucket).await?;
        Err(ObjectError::InvalidBucketState(
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
        ))
    }

    /// The version whose lock a request reads or changes: the current one, or `version_id` (an
    /// id, or `null`); in a bucket without Object Lock, `NoLockConfiguration`.
    pub async fn locked_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> ObjectResult<ObjectRecord> {
        self.lock_configuration(bucket).await?;
        match version_id {
            Some(version_id) => self.version_record(bucket, key, version_id).await,
            None => self.head(bucket, key).await,
        }
    }

    /// Changes the lock of a version (see [`ObjectService::locked_version`]) as S3's rules allow;
    /// `Locked` when they refuse.
    pub async fn change_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: LockChange,
    ) -> ObjectResult<ObjectLock> {
        let record = self.locked_version(bucket, key, version_id).await?;
        let changed = self.versions.change_lock(&record, change, OffsetDateTime::now_utc()).await;
        match self.audit_lock_refusal(bucket, key, &record.version_id, changed.map_err(ObjectError::from)).await? {
            Some(lock) => Ok(lock),
            None => Err(ObjectError::NoSuchVersion),
        }
    }

    /// `outcome`, with a refusal by Object Lock recorded in the audit trail (`object.locked`,
    /// with the rule that refused); the caller is told only "Access Denied".
    pub(crate) async fn audit_lock_refusal<T>(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        outcome: ObjectResult<T>,
    ) -> ObjectResult<T> {
        let Err(ObjectError::Locked(why)) = &outcome else { return outcome };
        if *why == LockRefusal::PastDate {
            return outcome;
        }
        let event = AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: "object.locked".into(),
            share_id: None,
            principal: None,
            source_ip: None,
            user_agent: None,
            reason: Some(format!("s3://{bucket}/{key} version {version_id}: {why}")),
        };
        if let Err(e) = self.meta.record_audit(&event).await {
            tracing::error!(error = %e, "cannot record a refusal by Object Lock");
        }
        outcome
    }
}
