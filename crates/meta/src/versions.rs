//! Object versions behind [`VersionStore`]: a bucket's versioning state, the noncurrent versions
//! and delete markers of a key, and the changes that only versioning makes (a delete that leaves
//! a marker, the deletion of one version for good).
//!
//! `objects` holds each key's current version and `object_versions` its history; the triggers
//! of the versioning migration move a replaced version into the history when it is kept, and
//! release a blob only once neither table names it. S3 clients name a version by its id, or by
//! `null` for the key's null version (see [`ObjectRecord::s3_version_id`]).

use async_trait::async_trait;

use time::OffsetDateTime;

use crate::{KeyRange, LockChange, LockConfiguration, MetaResult, ObjectLock, ObjectRecord, ObjectVersion, Versioning};

#[async_trait]
pub trait VersionStore: Send + Sync + 'static {
    /// Sets a bucket's versioning state; `false` when there is no such bucket, or when `state`
    /// would suspend versioning in a bucket with Object Lock.
    async fn set_versioning(&self, bucket: &str, state: Versioning) -> MetaResult<bool>;
    /// Turns a versioned bucket's MFA Delete on (bound to `device`) or off (`None`), while it is
    /// still bound to the device of serial `expected` (`None`: off); `false` when there is no
    /// such bucket, it was never versioned, or its binding changed meanwhile.
    async fn set_mfa_delete(
        &self,
        bucket: &str,
        device: Option<&crate::MfaDeleteDevice>,
        expected: Option<&str>,
    ) -> MetaResult<bool>;
    /// Sets a bucket's Object Lock configuration, which enables Object Lock for good; `false`
    /// when there is no such bucket or its versioning is not enabled.
    async fn set_lock_configuration(&self, bucket: &str, config: &LockConfiguration) -> MetaResult<bool>;
    /// Changes the lock of one version (its internal id) at `now` as [`ObjectLock::changed`]
    /// allows, in one transaction that holds the key's lock; returns the new lock, or `None`
    /// when the version is gone. A refusal is `MetaError::ObjectLocked`.
    async fn change_lock(
        &self,
        record: &ObjectRecord,
        change: LockChange,
        now: OffsetDateTime,
    ) -> MetaResult<Option<ObjectLock>>;
    /// The version S3 clients call `version_id` (an id, or `null`) of `bucket/key`: current,
    /// noncurrent or a delete marker. The null version also answers to its internal id.
    async fn get_version(&self, bucket: &str, key: &str, version_id: &str) -> MetaResult<Option<ObjectVersion>>;
    /// The key's latest entry: its current version, or the newest of its history (a delete
    /// marker, when the key was deleted in a versioned bucket).
    async fn latest_version(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectVersion>>;
    /// Deletes the current version of `marker`'s key as a versioned bucket does, in one
    /// transaction: the current version joins the history (or, when `state` is `Suspended` and
    /// it is the null version, is dropped), a suspended bucket drops the key's null version, and
    /// `marker` (a record with no blob) becomes the latest entry. With `only_if_current`, only
    /// while the key's current version is that one (an internal id: lifecycle expiring what it
    /// judged, not a version written since); returns whether the marker was made.
    async fn delete_with_marker(
        &self,
        marker: &ObjectRecord,
        state: Versioning,
        only_if_current: Option<&str>,
    ) -> MetaResult<bool>;
    /// Deletes one version (or delete marker) for good and returns it. When the key has no
    /// current version afterwards and its newest remaining entry is a version, that version
    /// becomes current again (S3: deleting the latest version or marker exposes the previous).
    /// A version its lock protects (see [`ObjectLock::protects`]) is refused with
    /// `MetaError::ObjectLocked`, inside the transaction, so no lock change races the check.
    /// With `judged`, only while the key's history is still what it was judged by (lifecycle:
    /// a restore, write or delete since makes it `None`, nothing deleted).
    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        bypass_governance: bool,
        judged: Option<&JudgedHistory>,
    ) -> MetaResult<Option<ObjectVersion>>;
    /// Replaces the tags of `record`'s version, current or not; `false` when it is gone.
    async fn set_version_tags(&self, record: &ObjectRecord, tags: &[crate::Tag]) -> MetaResult<bool>;
    /// Versions and delete markers of the keys in `range`, by key and then newest first, after
    /// `within` (a key and a position: that key's entries older than it, then later keys).
    /// `latest` is set on each key's newest entry when the page holds it.
    async fn list_versions(
        &self,
        bucket: &str,
        range: KeyRange<'_>,
        within: Option<(&str, i64)>,
    ) -> MetaResult<Vec<ObjectVersion>>;
}

/// A key's history as a decision saw it: its newest entry and how many entries it had. Any
/// write, delete, restore or version deletion since changes one or the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgedHistory {
    /// The internal id of the key's newest entry.
    pub latest: String,
    pub entries: u64,
}

/// The device a bucket's (`$1`) MFA Delete is bound to, if any; PostgreSQL's holds the bucket's
/// row (`FOR SHARE`) so that MFA Delete is not turned on under a deletion that read it off.
pub(crate) const MFA_DELETE_DEVICE: &str = "SELECT mfa_delete_device FROM buckets WHERE name = $1";
pub(crate) const MFA_DELETE_DEVICE_LOCKED: &str = "SELECT mfa_delete_device FROM buckets WHERE name = $1 FOR SHARE";

/// The columns a version has in both tables, in the order of the object inserts.
macro_rules! version_columns {
    () => {
        "bucket, key, version_id, blob_id, size, etag, modified_ms, headers, user_meta, tags, parts_count,
         part_sizes, sensitivity, scan_partial, sensitivity_tagged, quarantined, versioned, lock_mode, lock_until_ms,
         legal_hold"
    };
}
pub(crate) use version_columns;

/// A current version's place: its own if it was made current again, else above every other
/// (`i64::MAX`), so a listing resuming at a place misses nothing.
macro_rules! current_seq {
    () => {
        "COALESCE(seq, 9223372036854775807)"
    };
}

/// A key's whole history (`$1` bucket, `$2` key) as rows with `delete_marker`, `seq` and
/// `current`.
macro_rules! history {
    () => {
        concat!(
            "SELECT ",
            $crate::versions::version_columns!(),
            ", false AS delete_marker, ",
            current_seq!(),
            " AS seq, true AS current FROM objects WHERE bucket = $1 AND key = $2
             UNION ALL SELECT ",
            $crate::versions::version_columns!(),
            ", delete_marker, seq, false AS current FROM object_versions WHERE bucket = $1 AND key = $2"
        )
    };
}

/// One version of a key (`$3`: an id, or `null` for the null version), with `latest`. The null
/// version answers to its internal id too (what share links and the scan queue record).
pub(crate) const GET_VERSION: &str = concat!(
    "WITH history AS (",
    history!(),
    ") SELECT *, seq = (SELECT MAX(seq) FROM history) AS latest FROM history
     WHERE CASE WHEN $3 = 'null' THEN NOT versioned ELSE version_id = $3 END"
);

/// The newest entry of a key's history.
pub(crate) const LATEST_VERSION: &str =
    concat!("SELECT *, true AS latest FROM (", history!(), ") h ORDER BY seq DESC LIMIT 1");

/// The number of entries in a key's history (`$1` bucket, `$2` key).
pub(crate) const COUNT_HISTORY: &str = concat!("SELECT COUNT(*) FROM (", history!(), ") h");

/// Moves the current version of `$1/$2` into the history when it is versioned or `$3` (the
/// bucket's versioning is enabled), at its own place if it has one.
pub(crate) const KEEP_CURRENT: &str = concat!(
    "INSERT INTO object_versions (seq, ",
    version_columns!(),
    ", delete_marker) SELECT seq, ",
    version_columns!(),
    ", false FROM objects WHERE bucket = $1 AND key = $2 AND (versioned OR $3)"
);

pub(crate) const INSERT_MARKER: &str = concat!(
    "INSERT INTO object_versions (",
    version_columns!(),
    ", delete_marker) VALUES ($1, $2, $3, '', 0, '', $4, '{}', '{}', '[]', NULL, NULL, NULL, false, false, false, $5,
       NULL, NULL, NULL, true)"
);

/// Makes the newest entry of `$1/$2`'s history current when it is a version and the key has no
/// current one (a racing write that made one first wins).
pub(crate) const PROMOTE_NEWEST: &str = concat!(
    "INSERT INTO objects (seq, ",
    version_columns!(),
    ") SELECT seq, ",
    version_columns!(),
    " FROM object_versions
     WHERE bucket = $1 AND key = $2 AND NOT delete_marker
       AND seq = (SELECT MAX(seq) FROM object_versions WHERE bucket = $1 AND key = $2)
     ON CONFLICT (bucket, key) DO NOTHING"
);

/// Drops from the history the version that was just made current.
pub(crate) const FORGET_PROMOTED: &str = "DELETE FROM object_versions
     WHERE bucket = $1 AND key = $2 AND version_id IN (SELECT version_id FROM objects WHERE bucket = $1 AND key = $2)";

/// A page of versions: `$1` bucket, keys from `$2` (prefix) below `$3` (its successor), after
/// `$4`, from `$5`, and after (`$6` key, `$7` position); `$8` rows at most. Each arm filters
/// on its own, so that both stores merge two ordered index scans.
pub(crate) const LIST_VERSIONS: &str = concat!(
    "SELECT ",
    version_columns!(),
    ", false AS delete_marker, ",
    current_seq!(),
    " AS seq, true AS current FROM objects
     WHERE bucket = $1 AND key >= $2 AND (CAST($3 AS TEXT) IS NULL OR key < $3)
       AND (CAST($4 AS TEXT) IS NULL OR key > $4) AND (CAST($5 AS TEXT) IS NULL OR key >= $5)
       AND (CAST($6 AS TEXT) IS NULL OR key > $6 OR (key = $6 AND ",
    current_seq!(),
    " < CAST($7 AS BIGINT)))
     UNION ALL SELECT ",
    version_columns!(),
    ", delete_marker, seq, false AS current FROM object_versions
     WHERE bucket = $1 AND key >= $2 AND ($3 IS NULL OR key < $3)
       AND ($4 IS NULL OR key > $4) AND ($5 IS NULL OR key >= $5)
       AND ($6 IS NULL OR key > $6 OR (key = $6 AND seq < $7))
     ORDER BY key, seq DESC LIMIT $8"
);

/// Implements [`VersionStore`] for a SQL store from its writer and reader pools, `$lock` (a
/// statement that takes the key `$1/$2`'s lock until the transaction ends, the one every write
/// of the key takes; `""` where the store has one writer) and `$changed`, called with `(store, bucket, key)` after a key's
/// current version may have changed (SQLite drops its cached record).
macro_rules! version_store {
    ($store:ty, writer: $writer:ident, reader: $reader:ident, lock: $lock:expr, changed: $changed:expr,
     bucket_changed: $bucket_changed:expr) => {
        #[async_trait::async_trait]
        impl $crate::versions::VersionStore for $store {
            async fn set_versioning(&self, bucket: &str, state: $crate::Versioning) -> $crate::MetaResult<bool> {
                let done = $crate::statements::bound!(
                    "UPDATE buckets SET versioning = $1 WHERE name = $2 AND (object_lock IS NULL OR $1 = 'Enabled')",
                    state.as_str(),
                    bucket
                )
                .execute(&self.$writer)
                .await?;
                let changed = done.rows_affected() == 1;
                if changed {
                    ($bucket_changed)(self, bucket, &|b: &mut $crate::Bucket| b.versioning = Some(state));
                }
                Ok(changed)
            }

            async fn set_mfa_delete(
                &self,
                bucket: &str,
                device: Option<&$crate::MfaDeleteDevice>,
                expected: Option<&str>,
            ) -> $crate::MetaResult<bool> {
                let done = $crate::statements::bound!(
                    "UPDATE buckets SET mfa_delete_device = $1, mfa_delete_device_created_ms = $2
                     WHERE name = $3 AND versioning IS NOT NULL AND COALESCE(mfa_delete_device, '') = COALESCE($4, '')",
                    device.map(|d| d.serial.as_str()),
                    device.map(|d| d.created_ms),
                    bucket,
                    expected
                )
                .execute(&self.$writer)
                .await?;
                let changed = done.rows_affected() == 1;
                if changed {
                    ($bucket_changed)(self, bucket, &|b: &mut $crate::Bucket| b.mfa_delete = device.cloned());
                }
                Ok(changed)
            }

            async fn set_lock_configuration(
                &self,
                bucket: &str,
                config: &$crate::LockConfiguration,
            ) -> $crate::MetaResult<bool> {
                let done = $crate::statements::bound!(
                    "UPDATE buckets SET object_lock = $1 WHERE name = $2 AND versioning = 'Enabled'",
                    serde_json::to_string(config)?,
                    bucket
                )
                .execute(&self.$writer)
                .await?;
                let changed = done.rows_affected() == 1;
                if changed {
                    ($bucket_changed)(self, bucket, &|b: &mut $crate::Bucket| b.object_lock = Some(*config));
                }
                Ok(changed)
            }

            async fn change_lock(
                &self,
                record: &$crate::ObjectRecord,
                change: $crate::LockChange,
                now: time::OffsetDateTime,
            ) -> $crate::MetaResult<Option<$crate::ObjectLock>> {
                let (bucket, key) = (record.bucket.as_str(), record.key.as_str());
                let outcome = $crate::transaction!(self.$writer, |tx| {
                    if !$lock.is_empty() {
                        $crate::statements::bound!($lock, bucket, key).execute(&mut *tx).await?;
                    }
                    let row =
                        $crate::statements::bound!($crate::versions::GET_VERSION, bucket, key, &record.version_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let found = row.as_ref().map($crate::rows::version_from_row).transpose()?;
                    let Some(found) = found.filter(|v| !v.delete_marker && v.record.version_id == record.version_id)
                    else {
                        return Ok(None);
                    };
                    let lock = found.record.lock.changed(change, now).map_err($crate::MetaError::ObjectLocked)?;
                    let (mode, until, hold) = $crate::rows::lock_columns(&lock);
                    let table = if found.current { "objects" } else { "object_versions" };
                    let update = format!(
                        "UPDATE {table} SET lock_mode = $1, lock_until_ms = $2, legal_hold = $3
                         WHERE bucket = $4 AND key = $5 AND version_id = $6"
                    );
                    $crate::statements::bound!(&update, mode, until, hold, bucket, key, &record.version_id)
                        .execute(&mut *tx)
                        .await?;
                    Ok(Some(lock))
                });
                ($changed)(self, bucket, key);
                outcome
            }

            async fn get_version(
                &self,
                bucket: &str,
                key: &str,
                version_id: &str,
            ) -> $crate::MetaResult<Option<$crate::ObjectVersion>> {
                let row = $crate::statements::bound!($crate::versions::GET_VERSION, bucket, key, version_id)
                    .fetch_optional(&self.$reader)
                    .await?;
                row.as_ref().map($crate::rows::version_from_row).transpose()
            }

            async fn latest_version(
                &self,
                bucket: &str,
                key: &str,
            ) -> $crate::MetaResult<Option<$crate::ObjectVersion>> {
                let row = $crate::statements::bound!($crate::versions::LATEST_VERSION, bucket, key)
                    .fetch_optional(&self.$reader)
                    .await?;
                row.as_ref().map($crate::rows::version_from_row).transpose()
            }

            async fn delete_with_marker(
                &self,
                marker: &$crate::ObjectRecord,
                state: $crate::Versioning,
                only_if_current: Option<&str>,
            ) -> $crate::MetaResult<bool> {
                let (bucket, key) = (marker.bucket.as_str(), marker.key.as_str());
                let outcome = $crate::transaction!(self.$writer, |tx| {
                    if !$lock.is_empty() {
                        $crate::statements::bound!($lock, bucket, key).execute(&mut *tx).await?;
                    }
                    if let Some(expected) = only_if_current {
                        let row = $crate::statements::bound!(
                            "SELECT version_id FROM objects WHERE bucket = $1 AND key = $2",
                            bucket,
                            key
                        )
                        .fetch_optional(&mut *tx)
                        .await?;
                        let current: Option<String> = row.map(|row| sqlx::Row::try_get(&row, 0)).transpose()?;
                        if current.as_deref() != Some(expected) {
                            return Ok(false);
                        }
                    }
                    let enabled = state == $crate::Versioning::Enabled;
                    $crate::statements::bound!($crate::versions::KEEP_CURRENT, bucket, key, enabled)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| $crate::foreign_key_means(e, $crate::MetaError::NoSuchBucket))?;
                    $crate::statements::bound!("DELETE FROM objects WHERE bucket = $1 AND key = $2", bucket, key)
                        .execute(&mut *tx)
                        .await?;
                    if !enabled {
                        $crate::statements::bound!(
                            "DELETE FROM object_versions WHERE bucket = $1 AND key = $2 AND NOT versioned",
                            bucket,
                            key
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                    $crate::statements::bound!(
                        $crate::versions::INSERT_MARKER,
                        bucket,
                        key,
                        &marker.version_id,
                        $crate::rows::to_ms(marker.last_modified),
                        marker.versioned,
                    )
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| $crate::foreign_key_means(e, $crate::MetaError::NoSuchBucket))?;
                    Ok(true)
                });
                // Even on an error: the change may have committed before the answer was lost.
                ($changed)(self, bucket, key);
                outcome
            }

            async fn delete_version(
                &self,
                bucket: &str,
                key: &str,
                version_id: &str,
                bypass_governance: bool,
                judged: Option<&$crate::versions::JudgedHistory>,
            ) -> $crate::MetaResult<Option<$crate::ObjectVersion>> {
                let outcome = $crate::transaction!(self.$writer, |tx| {
                    if !$lock.is_empty() {
                        $crate::statements::bound!($lock, bucket, key).execute(&mut *tx).await?;
                    }
                    if let Some(judged) = judged {
                        // Lifecycle has no MFA code: a bucket with MFA Delete keeps its versions.
                        let device = match $lock.is_empty() {
                            true => $crate::versions::MFA_DELETE_DEVICE,
                            false => $crate::versions::MFA_DELETE_DEVICE_LOCKED,
                        };
                        let row = $crate::statements::bound!(device, bucket).fetch_optional(&mut *tx).await?;
                        let bound: Option<String> = match &row {
                            Some(row) => sqlx::Row::try_get(row, 0)?,
                            None => None,
                        };
                        if bound.is_some() {
                            return Ok(None);
                        }
                        let latest = $crate::statements::bound!($crate::versions::LATEST_VERSION, bucket, key)
                            .fetch_optional(&mut *tx)
                            .await?;
                        let latest = latest.as_ref().map($crate::rows::version_from_row).transpose()?;
                        let entries: i64 = sqlx::Row::try_get(
                            &$crate::statements::bound!($crate::versions::COUNT_HISTORY, bucket, key)
                                .fetch_one(&mut *tx)
                                .await?,
                            0,
                        )?;
                        let now = (latest.map(|v| v.record.version_id), $crate::rows::to_u64(entries));
                        if now != (Some(judged.latest.clone()), judged.entries) {
                            return Ok(None);
                        }
                    }
                    let row = $crate::statements::bound!($crate::versions::GET_VERSION, bucket, key, version_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(found) = row.as_ref().map($crate::rows::version_from_row).transpose()? else {
                        return Ok(None);
                    };
                    if let Some(why) = found.record.lock.protects(time::OffsetDateTime::now_utc(), bypass_governance) {
                        return Err($crate::MetaError::ObjectLocked(why));
                    }
                    let delete = match found.current {
                        true => "DELETE FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3",
                        false => "DELETE FROM object_versions WHERE bucket = $1 AND key = $2 AND version_id = $3",
                    };
                    $crate::statements::bound!(delete, bucket, key, &found.record.version_id).execute(&mut *tx).await?;
                    $crate::statements::bound!($crate::versions::PROMOTE_NEWEST, bucket, key).execute(&mut *tx).await?;
                    $crate::statements::bound!($crate::versions::FORGET_PROMOTED, bucket, key)
                        .execute(&mut *tx)
                        .await?;
                    Ok(Some(found))
                });
                ($changed)(self, bucket, key);
                outcome
            }

            async fn set_version_tags(
                &self,
                record: &$crate::ObjectRecord,
                tags: &[$crate::Tag],
            ) -> $crate::MetaResult<bool> {
                let tags = serde_json::to_string(tags)?;
                let mut updated = 0;
                for table in ["objects", "object_versions"] {
                    let update =
                        format!("UPDATE {table} SET tags = $1 WHERE bucket = $2 AND key = $3 AND version_id = $4");
                    updated +=
                        $crate::statements::bound!(&update, &tags, &record.bucket, &record.key, &record.version_id)
                            .execute(&self.$writer)
                            .await?
                            .rows_affected();
                }
                ($changed)(self, &record.bucket, &record.key);
                Ok(updated > 0)
            }

            async fn list_versions(
                &self,
                bucket: &str,
                range: $crate::KeyRange<'_>,
                within: Option<(&str, i64)>,
            ) -> $crate::MetaResult<Vec<$crate::ObjectVersion>> {
                let rows = $crate::statements::bound!(
                    $crate::versions::LIST_VERSIONS,
                    bucket,
                    range.prefix,
                    $crate::prefix_successor(range.prefix),
                    range.after,
                    range.from,
                    within.map(|(key, _)| key),
                    within.map(|(_, seq)| seq),
                    i64::from(range.limit),
                )
                .fetch_all(&self.$reader)
                .await?;
                $crate::versions::mark_latest(&rows, within.map(|(key, _)| key))
            }
        }
    };
}
pub(crate) use version_store;

/// Decodes a page of versions, setting `latest` on the first entry of each key (the page is
/// newest first within a key), except for `continued`, the key whose newest entries an
/// earlier page held.
pub(crate) fn mark_latest<R: crate::rows::Columns>(
    rows: &[R],
    continued: Option<&str>,
) -> MetaResult<Vec<ObjectVersion>> {
    let mut versions: Vec<ObjectVersion> = Vec::with_capacity(rows.len());
    for row in rows {
        let record = crate::rows::object_from_row(row)?;
        let first_of_key = versions.last().is_none_or(|previous| previous.record.key != record.key);
        let latest = first_of_key && continued != Some(record.key.as_str());
        versions.push(ObjectVersion {
            record,
            delete_marker: row.flag("delete_marker")?,
            latest,
            seq: row.int("seq")?,
            current: row.flag("current")?,
        });
    }
    Ok(versions)
}

#[cfg(test)]
pub(crate) mod conformance {
    use std::sync::Arc;

    use time::OffsetDateTime;

    use super::VersionStore;
    use crate::conformance::record;
    use crate::{KeyRange, MetaError, MetaStore, ObjectRecord, Versioning};

    fn versioned(key: &str, blob: &str) -> ObjectRecord {
        ObjectRecord { versioned: true, ..record("b", key, blob) }
    }

    fn marker(key: &str, id: &str, versioned: bool) -> ObjectRecord {
        ObjectRecord { version_id: id.into(), versioned, blob_id: String::new(), size: 0, ..record("b", key, "") }
    }

    /// The key's history as (S3 version id, delete marker, latest), newest first.
    async fn history<S: VersionStore>(store: &S, key: &str) -> Vec<(String, bool, bool)> {
        let range = KeyRange { prefix: key, after: None, from: None, limit: 100 };
        let versions = store.list_versions("b", range, None).await.unwrap();
        versions.into_iter().map(|v| (v.record.s3_version_id().to_owned(), v.delete_marker, v.latest)).collect()
    }

    async fn released<S: MetaStore>(store: &S) -> Vec<String> {
        let mut blobs = store.released_blobs(100).await.unwrap();
        blobs.sort();
        blobs
    }

    async fn create_bucket_b<S: MetaStore>(store: &S) {
        let bucket = crate::conformance::plain_bucket("b");
        store.create_bucket(&bucket).await.unwrap();
    }

    fn h(entries: &[(&str, bool, bool)]) -> Vec<(String, bool, bool)> {
        entries.iter().map(|(v, m, l)| ((*v).to_owned(), *m, *l)).collect()
    }

    pub async fn versions_are_kept_deleted_restored_and_released_exactly<S: MetaStore + VersionStore>(store: Arc<S>) {
        create_bucket_b(&*store).await;
        store.put_object(&record("b", "k", "x1")).await.unwrap();
        let device = crate::MfaDeleteDevice { serial: "mfa/x".into(), created_ms: 1 };
        assert!(!store.set_mfa_delete("b", Some(&device), None).await.unwrap(), "MFA Delete needs a versioned bucket");
        assert!(store.set_versioning("b", Versioning::Enabled).await.unwrap());
        assert!(!store.set_versioning("nobody", Versioning::Enabled).await.unwrap());
        assert_eq!(store.get_bucket("b").await.unwrap().unwrap().versioning, Some(Versioning::Enabled));
        assert!(store.set_mfa_delete("b", Some(&device), None).await.unwrap());
        assert_eq!(store.get_bucket("b").await.unwrap().unwrap().mfa_delete, Some(device.clone()));
        let other = crate::MfaDeleteDevice { serial: "mfa/y".into(), created_ms: 2 };
        assert!(!store.set_mfa_delete("b", Some(&other), None).await.unwrap(), "bound meanwhile: not replaced");
        assert!(!store.set_mfa_delete("b", None, Some("mfa/y")).await.unwrap());
        assert!(store.set_mfa_delete("b", None, Some("mfa/x")).await.unwrap());
        assert_eq!(store.get_bucket("b").await.unwrap().unwrap().mfa_delete, None);

        // Overwrites keep every version; nothing is released.
        store.put_object(&versioned("k", "x2")).await.unwrap();
        store.put_object(&versioned("k", "x3")).await.unwrap();
        assert!(released(&*store).await.is_empty());
        let mut named = store.referenced_blobs(&["x1".into(), "x2".into(), "x3".into()]).await.unwrap();
        named.sort();
        assert_eq!(named, ["x1", "x2", "x3"]);
        assert_eq!(
            history(&*store, "k").await,
            h(&[("v-x3", false, true), ("v-x2", false, false), ("null", false, false)])
        );
        let null = store.get_version("b", "k", "null").await.unwrap().unwrap();
        assert_eq!((null.record.blob_id.as_str(), null.latest), ("x1", false));
        let current = store.get_version("b", "k", "v-x3").await.unwrap().unwrap();
        assert_eq!((current.seq, current.latest), (i64::MAX, true));
        assert!(store.get_version("b", "k", "v-none").await.unwrap().is_none());

        // A delete leaves a marker on top; the bucket cannot be deleted while versions remain.
        store.delete_with_marker(&marker("k", "m1", true), Versioning::Enabled, None).await.unwrap();
        assert!(store.get_object("b", "k").await.unwrap().is_none());
        let latest = store.latest_version("b", "k").await.unwrap().unwrap();
        assert!(latest.delete_marker && latest.record.version_id == "m1");
        assert_eq!(history(&*store, "k").await[..2], h(&[("m1", true, true), ("v-x3", false, false)]));
        assert!(released(&*store).await.is_empty());
        assert!(matches!(store.delete_bucket("b").await, Err(MetaError::BucketNotEmpty)));

        // Deleting the marker restores the newest version, at its own place in the history (a
        // listing resuming below the marker still finds it); deleting that one the next.
        let place = store.get_version("b", "k", "v-x3").await.unwrap().unwrap().seq;
        assert!(store.delete_version("b", "k", "m1", false, None).await.unwrap().unwrap().delete_marker);
        assert_eq!(store.get_object("b", "k").await.unwrap().unwrap().blob_id, "x3");
        let restored = store.get_version("b", "k", "v-x3").await.unwrap().unwrap();
        assert_eq!((restored.seq, restored.current, restored.latest), (place, true, true));
        let below = KeyRange { prefix: "k", after: None, from: None, limit: 10 };
        let resumed = store.list_versions("b", below, Some(("k", place + 1))).await.unwrap();
        assert_eq!(resumed[0].record.version_id, "v-x3");
        store.delete_version("b", "k", "v-x3", false, None).await.unwrap().unwrap();
        assert_eq!(store.get_object("b", "k").await.unwrap().unwrap().blob_id, "x2");
        assert_eq!(released(&*store).await, ["x3"]);
        assert_eq!(history(&*store, "k").await, h(&[("v-x2", false, true), ("null", false, false)]));

        // Suspended: a write replaces the null version (x1 released), and keeps the versioned one.
        store.set_versioning("b", Versioning::Suspended).await.unwrap();
        store.put_object(&record("b", "k", "x4")).await.unwrap();
        assert_eq!(released(&*store).await, ["x1", "x3"]);
        assert_eq!(history(&*store, "k").await, h(&[("null", false, true), ("v-x2", false, false)]));
        // A suspended delete drops the null version and leaves a null marker.
        store.delete_with_marker(&marker("k", "m2", false), Versioning::Suspended, None).await.unwrap();
        assert_eq!(released(&*store).await, ["x1", "x3", "x4"]);
        assert_eq!(history(&*store, "k").await, h(&[("null", true, true), ("v-x2", false, false)]));

        // A write is what the bucket's versioning says when it commits: a versioned write that
        // began before the suspension is refused, and nothing changes.
        assert!(matches!(store.put_object(&versioned("k", "x9")).await, Err(MetaError::VersioningChanged)));
        assert_eq!(history(&*store, "k").await, h(&[("null", true, true), ("v-x2", false, false)]));

        // Pages resume inside a key's history.
        store.set_versioning("b", Versioning::Enabled).await.unwrap();
        store.put_object(&versioned("j", "x5")).await.unwrap();
        let first =
            store.list_versions("b", KeyRange { prefix: "", after: None, from: None, limit: 2 }, None).await.unwrap();
        let keys: Vec<_> = first.iter().map(|v| (v.record.key.as_str(), v.latest)).collect();
        assert_eq!(keys, [("j", true), ("k", true)]);
        let within = Some(("k", first[1].seq));
        let rest = store
            .list_versions("b", KeyRange { prefix: "", after: None, from: None, limit: 10 }, within)
            .await
            .unwrap();
        let rest: Vec<_> = rest.iter().map(|v| (v.record.version_id.as_str(), v.latest)).collect();
        assert_eq!(rest, [("v-x2", false)], "a continued key's entries are not its latest");

        // Tags of a noncurrent version.
        let old = store.get_version("b", "k", "v-x2").await.unwrap().unwrap().record;
        let tags = [crate::Tag { key: "t".into(), value: "1".into() }];
        assert!(store.set_version_tags(&old, &tags).await.unwrap());
        assert_eq!(store.get_version("b", "k", "v-x2").await.unwrap().unwrap().record.tags, tags);

        // A deletion judged on a history that has changed since deletes nothing; one judged on
        // the history as it is goes ahead.
        let range = KeyRange { prefix: "k", after: None, from: None, limit: 100 };
        let listed = store.list_versions("b", range, None).await.unwrap();
        let entries: Vec<_> = listed.iter().filter(|v| v.record.key == "k").collect();
        let latest = store.latest_version("b", "k").await.unwrap().unwrap().record.version_id;
        let stale = super::JudgedHistory { latest: latest.clone(), entries: entries.len() as u64 + 1 };
        assert!(store.delete_version("b", "k", "v-x2", false, Some(&stale)).await.unwrap().is_none());
        let other = super::JudgedHistory { latest: "v-gone".into(), entries: entries.len() as u64 };
        assert!(store.delete_version("b", "k", "v-x2", false, Some(&other)).await.unwrap().is_none());
        assert!(store.get_version("b", "k", "v-x2").await.unwrap().is_some());
        let judged = super::JudgedHistory { latest, entries: entries.len() as u64 };
        // With MFA Delete on, lifecycle (a judged deletion: it has no code) deletes nothing.
        let device = crate::MfaDeleteDevice { serial: "mfa/x".into(), created_ms: 1 };
        assert!(store.set_mfa_delete("b", Some(&device), None).await.unwrap());
        assert!(store.delete_version("b", "k", "v-x2", false, Some(&judged)).await.unwrap().is_none());
        assert!(store.set_mfa_delete("b", None, Some("mfa/x")).await.unwrap());
        assert!(store.delete_version("b", "k", "v-x2", false, Some(&judged)).await.unwrap().is_some());
    }

    /// Deletes and writes of one key racing each other (two replicas on PostgreSQL would run them
    /// on separate connections, as the pool does here): whatever order they take, no blob is
    /// released while a version still names it, and no acknowledged write or delete is undone.
    pub async fn racing_changes_to_one_key_stay_consistent<S: MetaStore + VersionStore>(store: Arc<S>) {
        create_bucket_b(&*store).await;
        store.set_versioning("b", Versioning::Enabled).await.unwrap();
        for round in 0..40 {
            let key = format!("k{round}");
            let (old, newer) = (format!("o{round}"), format!("p{round}"));
            store.put_object(&versioned(&key, &old)).await.unwrap();
            store.put_object(&versioned(&key, &newer)).await.unwrap();
            let marker_id = format!("m{round}");
            store.delete_with_marker(&marker(&key, &marker_id, true), Versioning::Enabled, None).await.unwrap();
            // Undo the delete while the version it would restore is deleted for good.
            let newer_id = format!("v-{newer}");
            let (a, b) = tokio::join!(
                store.delete_version("b", &key, &marker_id, false, None),
                store.delete_version("b", &key, &newer_id, false, None)
            );
            a.unwrap();
            b.unwrap();
            assert!(
                store.get_version("b", &key, &format!("v-{newer}")).await.unwrap().is_none(),
                "a delete was undone"
            );
            let current = store.get_object("b", &key).await.unwrap().expect("the older version is current again");
            assert_eq!(current.blob_id, old);
            // A write racing a delete: both happen, in one order or the other.
            let (write, delete) = (versioned(&key, &format!("q{round}")), marker(&key, &format!("n{round}"), true));
            let (written, deleted) =
                tokio::join!(store.put_object(&write), store.delete_with_marker(&delete, Versioning::Enabled, None));
            written.unwrap();
            deleted.unwrap();
            assert!(store.get_version("b", &key, &format!("v-q{round}")).await.unwrap().is_some(), "a write was lost");
        }
        let released = released(&*store).await;
        let range = KeyRange { prefix: "", after: None, from: None, limit: 1000 };
        for version in store.list_versions("b", range, None).await.unwrap() {
            assert!(!released.contains(&version.record.blob_id), "{} released while named", version.record.blob_id);
        }
        assert_eq!(released.len(), 40, "exactly the versions deleted for good");
    }

    fn locked(key: &str, blob: &str, lock: crate::ObjectLock) -> ObjectRecord {
        ObjectRecord { lock, ..versioned(key, blob) }
    }

    fn retained(mode: crate::LockMode, for_ms: i64) -> crate::ObjectLock {
        let until = OffsetDateTime::now_utc() + time::Duration::milliseconds(for_ms);
        // As stored: to the millisecond.
        let until = until.replace_millisecond(until.millisecond()).unwrap();
        crate::ObjectLock { retention: Some(crate::Retention { mode, until }), legal_hold: None }
    }

    /// Object Lock in the store: the rules checked under the key's lock, and the triggers that
    /// refuse whatever path forgets them (an unversioned delete or overwrite of a locked version).
    pub async fn locked_versions_leave_the_store_only_when_their_lock_allows<S: MetaStore + VersionStore>(
        store: Arc<S>,
    ) {
        use crate::{LockChange, LockConfiguration, LockMode, LockRefusal};
        create_bucket_b(&*store).await;
        let config = LockConfiguration::default();
        assert!(!store.set_lock_configuration("b", &config).await.unwrap(), "only on a versioned bucket");
        store.set_versioning("b", Versioning::Enabled).await.unwrap();
        assert!(store.set_lock_configuration("b", &config).await.unwrap());
        assert_eq!(store.get_bucket("b").await.unwrap().unwrap().object_lock, Some(config));
        assert!(!store.set_versioning("b", Versioning::Suspended).await.unwrap(), "locked buckets stay versioned");

        let hour = 3_600_000;
        store.put_object(&locked("k", "c1", retained(LockMode::Compliance, hour))).await.unwrap();
        store.put_object(&locked("k", "g2", retained(LockMode::Governance, hour))).await.unwrap();
        let held = crate::ObjectLock { retention: None, legal_hold: Some(true) };
        store.put_object(&locked("k", "h3", held)).await.unwrap();
        let refused = |r: crate::MetaResult<Option<crate::ObjectVersion>>| match r {
            Err(MetaError::ObjectLocked(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(refused(store.delete_version("b", "k", "v-c1", true, None).await), LockRefusal::Compliance);
        assert_eq!(refused(store.delete_version("b", "k", "v-g2", false, None).await), LockRefusal::Governance);
        assert_eq!(refused(store.delete_version("b", "k", "v-h3", true, None).await), LockRefusal::LegalHold);
        store.delete_version("b", "k", "v-g2", true, None).await.unwrap().expect("bypassed");

        // The hold is lifted, then the version goes and the COMPLIANCE one is current again.
        let current = store.get_object("b", "k").await.unwrap().unwrap();
        assert_eq!(
            store.change_lock(&current, LockChange::LegalHold(false), OffsetDateTime::now_utc()).await.unwrap(),
            Some(crate::ObjectLock { retention: None, legal_hold: Some(false) })
        );
        store.delete_version("b", "k", "v-h3", false, None).await.unwrap().unwrap();
        let current = store.get_object("b", "k").await.unwrap().unwrap();
        assert_eq!(current.version_id, "v-c1");

        // COMPLIANCE: removal refused even with the bypass; an extension kept, on the row.
        let removal = LockChange::Retention { retention: None, bypass_governance: true };
        assert!(matches!(
            store.change_lock(&current, removal, OffsetDateTime::now_utc()).await,
            Err(MetaError::ObjectLocked(LockRefusal::Compliance))
        ));
        let longer = retained(LockMode::Compliance, 2 * hour).retention;
        let extension = LockChange::Retention { retention: longer, bypass_governance: false };
        store.change_lock(&current, extension, OffsetDateTime::now_utc()).await.unwrap().unwrap();
        assert_eq!(store.get_object("b", "k").await.unwrap().unwrap().lock.retention, longer);

        // The triggers: a path that does not check (an unversioned delete) is refused by the
        // store itself, and nothing changes; a null version (which would replace the key's null
        // version, keeping no copy) cannot be written in a bucket whose versioning is enabled.
        assert!(matches!(store.delete_object("b", "k").await, Err(MetaError::ObjectLocked(LockRefusal::Store))));
        assert_eq!(store.get_object("b", "k").await.unwrap().unwrap().version_id, "v-c1");
        assert!(matches!(store.put_object(&record("b", "k", "n4")).await, Err(MetaError::VersioningChanged)));
        assert_eq!(store.get_object("b", "k").await.unwrap().unwrap().version_id, "v-c1");

        // An expired retention protects nothing.
        store.put_object(&locked("e", "e5", retained(LockMode::Compliance, 300))).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        store.delete_version("b", "e", "v-e5", false, None).await.unwrap().unwrap();
        assert_eq!(released(&*store).await, ["e5", "g2", "h3"]);
    }
}
