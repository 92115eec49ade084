//! Versioning in the object service: a bucket's versioning state, deletes that leave delete
//! markers, reading and deleting one version by its id.

use std::ops::Range;

use latchkey_meta::{MetaError, MfaDeleteDevice, ObjectRecord, ObjectVersion, Versioning};
use time::OffsetDateTime;

use crate::{ObjectError, ObjectRead, ObjectResult, ObjectService, ReadError, new_version_id};

/// What a DELETE did, as S3 reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deletion {
    /// The version deleted or, for a delete that left a marker, the marker's version (`null` in
    /// a suspended bucket); `None` in a bucket that was never versioned.
    pub version_id: Option<String>,
    /// A delete marker was made, or the version deleted was one.
    pub delete_marker: bool,
}

impl ObjectService {
    /// Turns versioning on or suspends it; a bucket never goes back to unversioned, and one with
    /// Object Lock cannot be suspended.
    pub async fn set_versioning(&self, bucket: &str, state: Versioning) -> ObjectResult<()> {
        if self.versions.set_versioning(bucket, state).await? {
            return Ok(());
        }
        self.bucket(bucket).await?;
        Err(ObjectError::InvalidBucketState(
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.",
        ))
    }

    /// Turns MFA Delete on (bound to `device`) or off, after the versioning state it goes with
    /// was set, unless its binding is no longer the device of serial `expected` (another change
    /// won: `VersioningChanged`, S3's 409 OperationAborted).
    pub async fn set_mfa_delete(
        &self,
        bucket: &str,
        device: Option<&MfaDeleteDevice>,
        expected: Option<&str>,
    ) -> ObjectResult<()> {
        if self.versions.set_mfa_delete(bucket, device, expected).await? {
            return Ok(());
        }
        if self.bucket(bucket).await?.versioning.is_none() {
            return Err(ObjectError::InvalidBucketState("MFA Delete can only be set on a versioned bucket."));
        }
        Err(ObjectError::Meta(MetaError::VersioningChanged))
    }

    /// Deletes the current version of `bucket/key`. Never versioned: the object is gone (204
    /// whether or not it existed). Versioned: a delete marker becomes the latest entry, and the
    /// current version is kept as noncurrent (a suspended bucket drops its null version).
    pub async fn delete(&self, bucket: &str, key: &str) -> ObjectResult<Deletion> {
        let Some(state) = self.bucket(bucket).await?.versioning else {
            if self.meta.delete_object(bucket, key).await? {
                self.released();
            }
            return Ok(Deletion::default());
        };
        let marker = self.marker(bucket, key, state);
        self.versions.delete_with_marker(&marker, state, None).await?;
        self.released();
        Ok(Deletion { version_id: Some(marker.s3_version_id().to_owned()), delete_marker: true })
    }

    /// A new delete marker for `bucket/key` in a bucket whose versioning is `state`.
    pub(crate) fn marker(&self, bucket: &str, key: &str, state: Versioning) -> ObjectRecord {
        let versioned = state == Versioning::Enabled;
        ObjectRecord::delete_marker(bucket, key, new_version_id(), versioned, OffsetDateTime::now_utc())
    }

    /// Deletes one version (an id, or `null`) for good; deleting the latest makes the newest
    /// remaining version current. A version that does not exist is no error, as in S3. One its
    /// Object Lock protects is refused (`Locked`); `bypass_governance`: the caller asked to
    /// bypass GOVERNANCE retention and may.
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        bypass_governance: bool,
    ) -> ObjectResult<Deletion> {
        let deleted = self.versions.delete_version(bucket, key, version_id, bypass_governance, None).await;
        let deleted = self.audit_lock_refusal(bucket, key, version_id, deleted.map_err(ObjectError::from)).await?;
        match deleted {
            Some(version) => {
                self.released();
                Ok(Deletion { version_id: Some(version_id.to_owned()), delete_marker: version.delete_marker })
            }
            None => {
                self.bucket(bucket).await?;
                Ok(Deletion { version_id: Some(version_id.to_owned()), delete_marker: false })
            }
        }
    }

    /// One version of `bucket/key` (an id, or `null`), delete markers included.
    pub async fn version(&self, bucket: &str, key: &str, version_id: &str) -> ObjectResult<ObjectVersion> {
        match self.versions.get_version(bucket, key, version_id).await? {
            Some(version) => Ok(version),
            None => {
                self.bucket(bucket).await?;
                Err(ObjectError::NoSuchVersion)
            }
        }
    }

    /// The version `version_id` (an internal id) if it still exists, current or kept as
    /// noncurrent by versioning (the scanner's question).
    pub async fn live_version(&self, bucket: &str, key: &str, version_id: &str) -> ObjectResult<Option<ObjectVersion>> {
        let version = self.versions.get_version(bucket, key, version_id).await?;
        Ok(version.filter(|v| !v.delete_marker && v.record.version_id == version_id))
    }

    /// The version a share link was made for (its internal id) while the link may serve it: it
    /// still exists, and its key was not deleted since (a delete marker on top stops the link
    /// until the marker is gone).
    pub async fn shared_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> ObjectResult<Option<ObjectRecord>> {
        let Some(version) = self.live_version(bucket, key, version_id).await? else { return Ok(None) };
        if !version.current && self.meta.get_object(bucket, key).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(version.record))
    }

    /// The record of one version with bytes; a delete marker answers `DeleteMarker`.
    pub async fn version_record(&self, bucket: &str, key: &str, version_id: &str) -> ObjectResult<ObjectRecord> {
        let version = self.version(bucket, key, version_id).await?;
        if version.delete_marker {
            return Err(ObjectError::DeleteMarker {
                version_id: version.record.s3_version_id().to_owned(),
                last_modified: version.record.last_modified,
                latest: false,
            });
        }
        Ok(version.record)
    }

    /// Opens one version of an object, as [`ObjectService::read`] opens the current one.
    pub async fn read_version<E>(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        plan: impl Fn(&ObjectRecord) -> Result<Range<u64>, E>,
    ) -> Result<ObjectRead, ReadError<E>> {
        let record = self.version_record(bucket, key, version_id).await.map_err(ReadError::Object)?;
        self.read_record(record, plan).await
    }

    /// Opens exactly `record`'s bytes; `NoSuchVersion` once they are gone (the version was
    /// deleted meanwhile).
    pub async fn read_record<E>(
        &self,
        record: ObjectRecord,
        plan: impl Fn(&ObjectRecord) -> Result<Range<u64>, E>,
    ) -> Result<ObjectRead, ReadError<E>> {
        self.check_servable(&record).await.map_err(ReadError::Object)?;
        let range = plan(&record).map_err(ReadError::Refused)?;
        match self.blobs.read(&record.blob_id, range.clone()).await {
            Ok(body) => Ok(ObjectRead { record, range, body }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReadError::Object(ObjectError::NoSuchVersion)),
            Err(e) => Err(ReadError::Object(e.into())),
        }
    }

    /// Replaces one version's tags; `NoSuchVersion` when it does not exist, `DeleteMarker` for
    /// a marker.
    pub async fn set_version_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        tags: &[latchkey_meta::Tag],
    ) -> ObjectResult<()> {
        let record = self.version_record(bucket, key, version_id).await?;
        match self.versions.set_version_tags(&record, tags).await? {
            true => Ok(()),
            false => Err(ObjectError::NoSuchVersion),
        }
    }
}
