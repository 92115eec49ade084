//! The metadata store: every row Latchkey keeps, behind one async trait per domain:
//! [`MetaStore`] (buckets, object records, multipart uploads, share links and their grants, audit
//! events), [`BucketConfigStore`] (bucket policies, public access blocks, bucket tags) and
//! [`IdentityStore`] (the IAM directory, access keys, MFA devices, STS sessions) and
//! [`PresignedStore`] (uses of counted presigned URLs, revoked presigned URLs), [`AuditStore`]
//! (the audit trail's hash chain and its signed digests), [`FindingsStore`] (the scan queue
//! and the sensitive data found in objects), [`ScanJobStore`] (on-demand scan jobs) and
//! [`CustomIdentifierStore`] (custom identifiers created through the API) and [`VersionStore`]
//! (versioning: noncurrent versions and delete markers) and [`LifecycleStore`] (the lifecycle
//! pass's lease and progress).
//!
//! Object bytes are not here: a record names the blob that holds them (see `latchkey-storage`).
//! Each method is one atomic transaction, so callers never see half of a change. The SQLite
//! implementation ([`SqliteStore`]) is the embedded default; [`PgStore`] serves replicas that
//! share one PostgreSQL database. Both run the same conformance suite.

mod audit;
mod batch;
mod bucket_config;
#[cfg(test)]
mod bucket_config_conformance;
mod cache;
#[cfg(test)]
mod conformance;
mod custom_identifiers;
mod findings;
mod identity;
#[cfg(test)]
mod identity_conformance;
mod lifecycle;
mod model;
mod object_lock;
mod pg_batch;
mod postgres;
mod presigned;
mod rows;
mod scan_jobs;
mod sqlite;
mod statements;
mod supervise;
mod uses;
mod versions;

pub use audit::{
    AuditDigest, AuditQuery, AuditStore, AuditTrail, ChainedEvent, GENESIS, PgAuditReader, SqliteAuditReader, link_hash,
};
pub use bucket_config::{BucketConfig, BucketConfigSnapshot, BucketConfigStore, BucketSetting, PublicAccessBlock};
pub use custom_identifiers::{Creation, CustomIdentifierStore, StoredIdentifier};
pub use findings::{Finding, FindingFilter, FindingsStore, QueuedScan, ScanCompletion, ScanOutcome, ScanQueueCounts};
pub use identity::{
    DirectoryEntry, DirectorySnapshot, EntryKind, EntryWrite, IdentityStore, KeyRefusal, MfaDevice, Sealer,
    SessionRecord, StoredAccessKey,
};
pub use lifecycle::{LifecycleCursor, LifecycleStore};
pub use model::{
    AuditEvent, Bucket, ContentHeaders, GrantRequest, GrantedUse, Grantee, ListedShare, MfaDeleteDevice,
    MultipartUpload, NULL_VERSION, ObjectRecord, ObjectVersion, PartRecord, SENSITIVITY_TAG, ScanStatus, Sensitivity,
    Share, ShareFilter, Tag, Versioning,
};
pub use object_lock::{
    DefaultRetention, LockChange, LockConfiguration, LockMode, LockRefusal, MAX_RETENTION_DAYS, ObjectLock, Retention,
    RetentionPeriod,
};
pub use postgres::PgStore;
pub use presigned::{PresignedStore, Revocation, RevocationSnapshot, Revoked};
pub use scan_jobs::{ScanJob, ScanJobStatus, ScanJobStore};
pub use sqlite::SqliteStore;
pub use versions::{JudgedHistory, VersionStore};

use async_trait::async_trait;

/// Runs a store call, recording how long it took (`latchkey_store_duration_seconds`, by
/// operation).
pub async fn timed<T>(operation: &'static str, call: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = call.await;
    metrics::histogram!("latchkey_store_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    out
}
use time::OffsetDateTime;

/// Why a store operation failed. Domain outcomes get their own variant so that the S3 layer can
/// map each to the right S3 error; everything else is `Backend`.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the bucket already exists")]
    BucketAlreadyExists,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    #[error("an object with this key exists")]
    ObjectExists,
    /// A new version's versioning did not match its bucket's at the commit (versioning was
    /// changed while it was written): refused, nothing written.
    #[error("the bucket's versioning changed while the object was written")]
    VersioningChanged,
    /// Object Lock refuses the change (the store's own check, or its triggers: `Store`).
    #[error("object lock: {0}")]
    ObjectLocked(LockRefusal),
    #[error("metadata backend: {0}")]
    Backend(sqlx::Error),
    #[error("metadata encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("metadata migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{path} is in use by another latchkey process; stop it or choose another data dir")]
    Locked { path: String },
    #[error("cannot lock {path}: {source}")]
    Lock { path: String, source: std::io::Error },
    /// The group commit this write was part of failed; nothing of it was written.
    #[error("batched write failed: {0}")]
    Batch(String),
    #[error("the metadata store is closed")]
    Closed,
    /// A store read through another service (the audit API) failed.
    #[error("{0}")]
    Remote(String),
    /// A concurrent key creation took the user's last free key slot.
    #[error("the user has the most access keys allowed")]
    KeyLimit,
}

impl MetaError {
    /// Whether the store certainly changed nothing: a refusal (a domain outcome, an error the
    /// database answered with, which rolls the transaction back) or a failure before anything was
    /// sent. `false` when the write may have committed all the same: the connection broke around
    /// the commit, or the writer went away before answering (`Closed`, `Batch`).
    pub fn wrote_nothing(&self) -> bool {
        match self {
            Self::Backend(e) => matches!(
                e,
                sqlx::Error::Database(_)
                    | sqlx::Error::Configuration(_)
                    | sqlx::Error::Encode(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
            ),
            Self::Batch(_) | Self::Closed | Self::Remote(_) => false,
            Self::NoSuchBucket
            | Self::BucketAlreadyExists
            | Self::BucketNotEmpty
            | Self::NoSuchUpload
            | Self::ObjectExists
            | Self::ObjectLocked(_)
            | Self::VersioningChanged
            | Self::Encoding(_)
            | Self::Migration(_)
            | Self::Locked { .. }
            | Self::Lock { .. }
            | Self::KeyLimit => true,
        }
    }
}

/// What the Object Lock triggers raise (migrations `0022_object_lock.sql` / `0019_object_lock.sql`).
const LOCKED_BY_TRIGGER: &str = "latchkey: object version locked";
/// What the write guard raises (migrations `0024_stale_writes.sql` / `0021_stale_writes.sql`).
const VERSIONING_CHANGED: &str = "latchkey: versioning changed during the write";

impl From<sqlx::Error> for MetaError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.message().contains(LOCKED_BY_TRIGGER) => {
                Self::ObjectLocked(LockRefusal::Store)
            }
            sqlx::Error::Database(db) if db.message().contains(VERSIONING_CHANGED) => Self::VersioningChanged,
            _ => Self::Backend(e),
        }
    }
}

pub type MetaResult<T> = Result<T, MetaError>;

/// One page request over keys in a bucket: keys that start with `prefix`, sort strictly after
/// `after` and at or after `from`, at most `limit` of them, in byte order.
#[derive(Debug, Clone, Copy)]
pub struct KeyRange<'a> {
    pub prefix: &'a str,
    pub after: Option<&'a str>,
    /// An inclusive lower bound: a listing skips a common prefix by starting at its successor.
    pub from: Option<&'a str>,
    pub limit: u32,
}

/// Runs `$body` (an async block's statements, using `$tx` as the connection) in a transaction:
/// commits when it yields `Ok`, rolls back at once when it yields `Err`, so a refused operation
/// never leaves a session idle in a transaction, holding locks.
macro_rules! transaction {
    ($pool:expr, |$tx:ident| $body:block) => {{
        let mut $tx = $pool.begin().await?;
        let outcome: $crate::MetaResult<_> = async { $body }.await;
        match outcome {
            Ok(value) => {
                $tx.commit().await?;
                Ok(value)
            }
            Err(e) => {
                $tx.rollback().await?;
                Err(e)
            }
        }
    }};
}
pub(crate) use transaction;

/// [`MetaStore::consume_upload_share`] for a SQL store, from the store's own `$consume` (a use of
/// a link) and `$write` (an object statement) functions.
macro_rules! consume_upload_share {
    ($pool:expr, $consume:path, $write:path, $token_hash:expr, $now:expr, $to:expr, $record:expr, $replace:expr) => {{
        use $crate::statements::{INSERT_NEW_OBJECT, UPSERT_OBJECT};
        let statement = if $replace { UPSERT_OBJECT } else { INSERT_NEW_OBJECT };
        $crate::transaction!($pool, |tx| {
            let Some(share) = $consume(&mut *tx, $token_hash, "PUT", $now, $to, true).await? else {
                return Ok(None);
            };
            if !$write(&mut *tx, statement, $record).await? {
                return Err($crate::MetaError::ObjectExists);
            }
            Ok(Some(share))
        })
    }};
}
pub(crate) use consume_upload_share;

/// A foreign-key failure names a missing parent (bucket, upload); anything else is a backend error.
pub(crate) fn foreign_key_means(e: sqlx::Error, missing_parent: MetaError) -> MetaError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => missing_parent,
        _ => e.into(),
    }
}

/// The smallest string greater than every string that starts with `prefix` (in byte order, which
/// for UTF-8 is code-point order), or `None` when there is no such bound (empty prefix, or only
/// `char::MAX`s). Stores scan `key >= prefix AND key < bound`.
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value, skipping the surrogate gap.
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn create_bucket(&self, bucket: &Bucket) -> MetaResult<()>;
    /// Deletes an empty bucket; any multipart uploads still open in it are dropped.
    async fn delete_bucket(&self, name: &str) -> MetaResult<()>;
    async fn get_bucket(&self, name: &str) -> MetaResult<Option<Bucket>>;
    async fn list_buckets(&self) -> MetaResult<Vec<Bucket>>;

    async fn get_object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectRecord>>;
    /// Inserts or replaces the record (`NoSuchBucket` if the bucket is gone).
    async fn put_object(&self, record: &ObjectRecord) -> MetaResult<()>;
    /// Removes the record; `false` when there was none.
    async fn delete_object(&self, bucket: &str, key: &str) -> MetaResult<bool>;
    async fn list_objects(&self, bucket: &str, range: KeyRange<'_>) -> MetaResult<Vec<ObjectRecord>>;
    /// Replaces the tag set; `false` when the object does not exist.
    async fn set_object_tags(&self, bucket: &str, key: &str, tags: &[Tag]) -> MetaResult<bool>;

    async fn create_upload(&self, upload: &MultipartUpload) -> MetaResult<()>;
    async fn get_upload(&self, upload_id: &str) -> MetaResult<Option<MultipartUpload>>;
    /// Records a part, replacing an earlier upload of the same number (`NoSuchUpload` if the
    /// upload is gone).
    async fn put_part(&self, part: &PartRecord) -> MetaResult<()>;
    /// Parts in number order after `after_part`, at most `limit`.
    async fn list_parts(&self, upload_id: &str, after_part: i32, limit: u32) -> MetaResult<Vec<PartRecord>>;
    /// Open uploads whose key starts with `range.prefix`, ordered by (key, upload id), after the
    /// (key, upload id) marker.
    async fn list_uploads(
        &self,
        bucket: &str,
        range: KeyRange<'_>,
        upload_id_marker: Option<&str>,
    ) -> MetaResult<Vec<MultipartUpload>>;
    /// Drops the upload and its parts.
    async fn abort_upload(&self, upload_id: &str) -> MetaResult<()>;
    /// In one transaction: writes `record`, drops the upload and its parts.
    async fn complete_upload(&self, upload_id: &str, record: &ObjectRecord) -> MetaResult<()>;

    /// Blobs that no record names any more, in no particular order. Every change that stops naming a blob
    /// (replace, delete, abort, complete) queues it in the same transaction, so none is lost to
    /// a crash. The caller deletes the files, then calls [`MetaStore::forget_released`].
    async fn released_blobs(&self, limit: u32) -> MetaResult<Vec<String>>;
    async fn forget_released(&self, blob_ids: &[String]) -> MetaResult<()>;
    /// Those of `blob_ids` that a record names (an object, an upload's part) or that wait in
    /// the release queue: the orphan sweep deletes the files of the others.
    async fn referenced_blobs(&self, blob_ids: &[String]) -> MetaResult<Vec<String>>;

    async fn create_share(&self, share: &Share) -> MetaResult<()>;
    async fn get_share(&self, id: &str) -> MetaResult<Option<Share>>;
    async fn find_share(&self, token_hash: &[u8]) -> MetaResult<Option<Share>>;
    async fn list_shares(&self, filter: &ShareFilter) -> MetaResult<Vec<ListedShare>>;
    /// Marks the share revoked; `false` when there is no such share or it was revoked already.
    async fn revoke_share(&self, id: &str, at: OffsetDateTime) -> MetaResult<bool>;
    /// Consumes one use of a download (`GET`) link, atomically and durably, if at `now` the
    /// share exists, is not revoked or expired, has uses left, and its object is still the
    /// version it was made for. `address_checked` says the caller has checked `to.source_ip`
    /// against the link's allow-list; without that, only a link with no allow-list is consumed.
    /// The grant and its `share.redeemed` audit event are recorded in the same statement: no use
    /// is consumed without its audit record. `None` otherwise: then nothing changed.
    async fn consume_share(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
        to: &Grantee,
        address_checked: bool,
    ) -> MetaResult<Option<GrantedUse>>;
    /// Redeems an upload (`PUT`) link whose allow-list the caller has checked: in one
    /// transaction, consumes one use on the terms of [`MetaStore::consume_share`] and writes
    /// `record`, so the object appears exactly when the
    /// use is spent. With `replace` false the record is written only if its key has no object
    /// (`ObjectExists` otherwise). `None` or an error: nothing changed.
    async fn consume_upload_share(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
        to: &Grantee,
        record: &ObjectRecord,
        replace: bool,
    ) -> MetaResult<Option<Share>>;
    /// Deletes shares that stopped being redeemable before `before`: expired then, revoked then,
    /// or used up with no grant since (a transfer still within its resume grace keeps its
    /// share). Their grants go with them; audit events stay. Returns how many were deleted.
    async fn purge_shares(&self, before: OffsetDateTime) -> MetaResult<u64>;
    /// Whether `to` (the same address and User-Agent) was granted a use of the share at or after
    /// `since`.
    async fn has_grant(&self, share_id: &str, to: &Grantee, since: OffsetDateTime) -> MetaResult<bool>;
    /// Continues a transfer: atomically adds `bytes` to the bytes served under the latest grant
    /// of the share to `to` made at or after `since` that stays within `budget` with them, if the
    /// share is neither revoked nor expired at `now`. Returns when that grant was made (its key
    /// for [`MetaStore::refund_grant`]), or `None`: then nothing changed.
    async fn reserve_grant(&self, request: &GrantRequest<'_>) -> MetaResult<Option<OffsetDateTime>>;
    /// Gives back `bytes` that were counted for the grant made to `to` at `granted` but never sent.
    async fn refund_grant(&self, share_id: &str, to: &Grantee, granted: OffsetDateTime, bytes: u64) -> MetaResult<()>;
    async fn record_audit(&self, event: &AuditEvent) -> MetaResult<()>;
    /// Deletes audit events recorded before `before`, as far as a digest made before then
    /// vouches for them (see [`AuditStore`]); returns how many.
    async fn purge_audit(&self, before: OffsetDateTime) -> MetaResult<u64>;

    /// Whether the store can serve: its writer task is running and its database answers.
    /// `Closed` when the writer is gone; the database's error when it does not answer.
    async fn health(&self) -> MetaResult<()>;

    /// Waits for in-flight statements and closes the connections.
    async fn close(&self);

    /// Test hook: the next batch of the store's writer task panics.
    #[cfg(test)]
    fn panic_next_batch(&self);
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn prefix_bounds_sort_after_every_extension() {
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        let bound = prefix_successor("logs/").unwrap();
        for key in ["logs/", "logs/\u{10FFFF}\u{10FFFF}", "logs/zzz"] {
            assert!(key < bound.as_str(), "{key:?}");
        }
        assert!("logs0" >= bound.as_str());
    }
}
