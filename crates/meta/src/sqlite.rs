//! The embedded metadata store: one SQLite file in WAL mode.
//!
//! SQLite admits one writer at a time, so writes go through a single-connection pool (no
//! `SQLITE_BUSY` retries, no lock upgrades) while reads use a pool of read-only connections that
//! WAL lets run beside the writer. `synchronous = FULL` makes every commit durable before it
//! returns.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::str::FromStr;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;

use crate::batch::{self, Batcher};
use crate::cache::ObjectCache;
use crate::rows::{
    Columns, bucket_from_row, from_ms, listed_share_from_row, object_from_row, part_from_row, share_from_row, to_ms,
    upload_from_row,
};
use crate::statements::{
    UPSERT_OBJECT, find_grant, insert_share, insert_upload, list_objects, list_parts, list_shares, list_uploads,
    purge_audit, purge_shares, refund_grant, reserve_grant, revoke_share, set_object_tags, upsert_part, write_object,
};
use crate::uses::UseJob;
use crate::{
    AuditEvent, Bucket, GrantRequest, GrantedUse, Grantee, KeyRange, ListedShare, MetaError, MetaResult, MetaStore,
    MultipartUpload, ObjectRecord, PartRecord, Share, ShareFilter, Tag,
};
use crate::{consume_upload_share, foreign_key_means, transaction};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    objects: ObjectCache,
    /// Group commit for object records, share consumption and audit events.
    batcher: Batcher,
    /// Every bucket, loaded at open; only this process changes the set (see the lock).
    buckets: RwLock<BTreeMap<String, Bucket>>,
    /// Held, not read: the exclusive lock lives as long as the store.
    _lock: Option<std::fs::File>,
    /// Told of every identity change; only this process writes the database (see the lock).
    identity_changes: tokio::sync::watch::Sender<u64>,
    /// Told of every bucket settings change, a bucket's deletion included.
    config_changes: tokio::sync::watch::Sender<u64>,
    /// The same for presigned-URL revocations.
    revocation_changes: tokio::sync::watch::Sender<u64>,
}

crate::identity::identity_store!(SqliteStore, writer: writer, reader: reader, changes: identity_changes);
crate::bucket_config::bucket_config_store!(SqliteStore, writer: writer, reader: reader, changes: config_changes);
crate::presigned::presigned_store!(SqliteStore, writer: writer, changes: revocation_changes);
crate::scan_jobs::scan_job_store!(SqliteStore, writer: writer, reader: reader);
crate::lifecycle::lifecycle_store!(SqliteStore, writer: writer);
crate::custom_identifiers::custom_identifier_store!(SqliteStore, writer: writer, reader: reader);
crate::findings::findings_store!(SqliteStore, writer: writer, reader: reader,
    claim: crate::findings::claim_scans_sql!(""), release_stale: true,
    changed: |store: &SqliteStore, bucket: &str, key: &str| store.objects.invalidate(bucket, key));
crate::versions::version_store!(SqliteStore, writer: writer, reader: reader, lock: "",
changed: |store: &SqliteStore, bucket: &str, key: &str| store.objects.invalidate(bucket, key),
bucket_changed: |store: &SqliteStore, bucket: &str, change: &dyn Fn(&mut Bucket)| {
    if let Some(cached) = store.buckets_mut().get_mut(bucket) {
        change(cached);
    }
});

#[async_trait::async_trait]
impl crate::audit::AuditStore for SqliteStore {
    /// Links in one transaction on the only writer connection: nothing else links meanwhile.
    async fn chain_audit(&self, limit: u32) -> MetaResult<u64> {
        let mut tx = self.writer.begin().await?;
        let head = sqlx::query_as(crate::audit::SELECT_HEAD).fetch_optional(&mut *tx).await?;
        let pending = sqlx::query_as(crate::audit::SELECT_PENDING).bind(i64::from(limit)).fetch_all(&mut *tx).await?;
        let links = crate::audit::links(head, pending);
        for (seq, pos, hash) in &links {
            sqlx::query("UPDATE audit_events SET chain_pos = $2, hash = $3 WHERE seq = $1")
                .bind(seq)
                .bind(pos)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(links.len() as u64)
    }

    async fn record_audit_digest(&self, digest: &crate::AuditDigest) -> MetaResult<bool> {
        Ok(crate::audit::insert_audit_digest!(digest).execute(&self.writer).await?.rows_affected() == 1)
    }

    async fn claim_alarm(&self, rule: &str, group: &str, window_start: OffsetDateTime) -> MetaResult<bool> {
        Ok(crate::audit::claim_alarm!(rule, group, window_start).execute(&self.writer).await?.rows_affected() == 1)
    }

    async fn purge_alarm_firings(&self, before: OffsetDateTime) -> MetaResult<u64> {
        let done = sqlx::query(crate::audit::PURGE_ALARM_FIRINGS).bind(to_ms(before)).execute(&self.writer).await?;
        Ok(done.rows_affected())
    }
}

crate::audit::audit_trail!(SqliteStore, reader);

/// Object records kept in memory; about 1 KiB each.
const CACHED_OBJECTS: NonZeroUsize = NonZeroUsize::new(16 * 1024).unwrap();

/// Takes the exclusive lock that makes this process the database's only user.
fn lock_database(db: &Path) -> MetaResult<std::fs::File> {
    let mut lock_path = db.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let shown = lock_path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| MetaError::Lock { path: shown.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(MetaError::Locked { path: db.display().to_string() }),
        Err(std::fs::TryLockError::Error(source)) => Err(MetaError::Lock { path: shown, source }),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path) -> MetaResult<Self> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect(base.create_if_missing(true)).await
    }

    /// Opens a database from a `sqlite:` URL (as given to `--meta-url`).
    pub async fn open_url(url: &str) -> MetaResult<Self> {
        let base = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect(base.create_if_missing(true)).await
    }

    async fn connect(options: SqliteConnectOptions) -> MetaResult<Self> {
        let file = options.get_filename();
        let lock = if file.as_os_str().is_empty() || file == Path::new(":memory:") {
            None
        } else {
            Some(lock_database(file)?)
        };
        // A connection to a local file cannot go stale, so the pools skip sqlx's ping before each
        // checkout: it is a round trip to the connection's worker thread per query.
        let pool = || SqlitePoolOptions::new().test_before_acquire(false);
        let writer = pool().max_connections(1).min_connections(1).connect_with(options.clone()).await?;
        MIGRATOR.run(&writer).await?;
        let reader = pool().max_connections(8).connect_with(options.read_only(true)).await?;
        let rows =
            sqlx::query("SELECT name, region, created_ms, versioning, object_lock, mfa_delete_device, mfa_delete_device_created_ms FROM buckets")
                .fetch_all(&writer)
                .await?;
        let buckets =
            rows.iter().map(bucket_from_row).map(|b| b.map(|b| (b.name.clone(), b))).collect::<MetaResult<_>>()?;
        let batcher = Batcher::start(writer.clone());
        Ok(Self {
            writer,
            reader,
            objects: ObjectCache::new(CACHED_OBJECTS),
            batcher,
            buckets: RwLock::new(buckets),
            _lock: lock,
            identity_changes: tokio::sync::watch::Sender::new(0),
            config_changes: tokio::sync::watch::Sender::new(0),
            revocation_changes: tokio::sync::watch::Sender::new(0),
        })
    }

    fn buckets(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Bucket>> {
        // Each update is one map call, so a poisoned lock still holds a consistent map.
        self.buckets.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn buckets_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Bucket>> {
        self.buckets.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Writes an object record in one statement (`UPSERT_OBJECT` or `INSERT_NEW_OBJECT`); a
/// replaced blob is queued by a trigger and a missing bucket fails the foreign key. `false` when
/// nothing was written.
async fn write_object(conn: impl sqlx::SqliteExecutor<'_>, statement: &str, record: &ObjectRecord) -> MetaResult<bool> {
    let done = write_object!(statement, record)
        .execute(conn)
        .await
        .map_err(|e| foreign_key_means(e, MetaError::NoSuchBucket))?;
    Ok(done.rows_affected() > 0)
}

/// Deletes an upload and its parts inside `tx` (the part blobs are queued by a trigger).
async fn drop_upload(tx: &mut sqlx::SqliteConnection, upload_id: &str) -> MetaResult<()> {
    sqlx::query("DELETE FROM upload_parts WHERE upload_id = ?").bind(upload_id).execute(&mut *tx).await?;
    let done = sqlx::query("DELETE FROM uploads WHERE upload_id = ?").bind(upload_id).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Err(MetaError::NoSuchUpload);
    }
    Ok(())
}

#[async_trait]
impl MetaStore for SqliteStore {
    async fn create_bucket(&self, bucket: &Bucket) -> MetaResult<()> {
        let done = crate::statements::insert_bucket!(bucket).execute(&self.writer).await?;
        if done.rows_affected() == 0 {
            return Err(MetaError::BucketAlreadyExists);
        }
        self.buckets_mut().insert(bucket.name.clone(), bucket.clone());
        Ok(())
    }

    async fn delete_bucket(&self, name: &str) -> MetaResult<()> {
        transaction!(self.writer, |tx| {
            let any: Option<(i64,)> =
                sqlx::query_as(crate::statements::ANY_VERSION).bind(name).fetch_optional(&mut *tx).await?;
            if any.is_some() {
                return Err(MetaError::BucketNotEmpty);
            }
            sqlx::query("DELETE FROM upload_parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket = ?)")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM uploads WHERE bucket = ?").bind(name).execute(&mut *tx).await?;
            let done = sqlx::query("DELETE FROM buckets WHERE name = ?").bind(name).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(MetaError::NoSuchBucket);
            }
            Ok(())
        })?;
        self.buckets_mut().remove(name);
        self.objects.invalidate_bucket(name);
        // Its settings went with it.
        self.config_changes.send_modify(|g| *g += 1);
        Ok(())
    }

    async fn get_bucket(&self, name: &str) -> MetaResult<Option<Bucket>> {
        Ok(self.buckets().get(name).cloned())
    }

    async fn list_buckets(&self) -> MetaResult<Vec<Bucket>> {
        Ok(self.buckets().values().cloned().collect())
    }

    async fn get_object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectRecord>> {
        let epoch = match self.objects.get(bucket, key) {
            Ok(record) => return Ok(Some(record)),
            Err(epoch) => epoch,
        };
        let row = sqlx::query("SELECT * FROM objects WHERE bucket = ? AND key = ?")
            .bind(bucket)
            .bind(key)
            .fetch_optional(&self.reader)
            .await?;
        let record = row.as_ref().map(object_from_row).transpose()?;
        if let Some(record) = &record {
            self.objects.insert(epoch, record);
        }
        Ok(record)
    }

    async fn put_object(&self, record: &ObjectRecord) -> MetaResult<()> {
        let written = self.batcher.put_object(record).await;
        // Even on an error: the record may have committed before the writer failed to answer.
        self.objects.invalidate(&record.bucket, &record.key);
        written
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> MetaResult<bool> {
        let done = sqlx::query("DELETE FROM objects WHERE bucket = ? AND key = ?")
            .bind(bucket)
            .bind(key)
            .execute(&self.writer)
            .await?;
        self.objects.invalidate(bucket, key);
        Ok(done.rows_affected() > 0)
    }

    async fn list_objects(&self, bucket: &str, range: KeyRange<'_>) -> MetaResult<Vec<ObjectRecord>> {
        let rows = list_objects!(bucket, range).fetch_all(&self.reader).await?;
        rows.iter().map(object_from_row).collect()
    }

    async fn set_object_tags(&self, bucket: &str, key: &str, tags: &[Tag]) -> MetaResult<bool> {
        let done = set_object_tags!(bucket, key, tags).execute(&self.writer).await?;
        self.objects.invalidate(bucket, key);
        Ok(done.rows_affected() > 0)
    }

    async fn create_upload(&self, upload: &MultipartUpload) -> MetaResult<()> {
        insert_upload!(upload)
            .execute(&self.writer)
            .await
            .map_err(|e| foreign_key_means(e, MetaError::NoSuchBucket))?;
        Ok(())
    }

    async fn get_upload(&self, upload_id: &str) -> MetaResult<Option<MultipartUpload>> {
        let row = sqlx::query("SELECT * FROM uploads WHERE upload_id = ?")
            .bind(upload_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    async fn put_part(&self, part: &PartRecord) -> MetaResult<()> {
        upsert_part!(part).execute(&self.writer).await.map_err(|e| foreign_key_means(e, MetaError::NoSuchUpload))?;
        Ok(())
    }

    async fn list_parts(&self, upload_id: &str, after_part: i32, limit: u32) -> MetaResult<Vec<PartRecord>> {
        let rows = list_parts!(upload_id, after_part, limit).fetch_all(&self.reader).await?;
        rows.iter().map(part_from_row).collect()
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        range: KeyRange<'_>,
        upload_id_marker: Option<&str>,
    ) -> MetaResult<Vec<MultipartUpload>> {
        let rows = list_uploads!(bucket, range, upload_id_marker).fetch_all(&self.reader).await?;
        rows.iter().map(upload_from_row).collect()
    }

    async fn abort_upload(&self, upload_id: &str) -> MetaResult<()> {
        transaction!(self.writer, |tx| {
            drop_upload(&mut tx, upload_id).await?;
            Ok(())
        })?;
        Ok(())
    }

    async fn complete_upload(&self, upload_id: &str, record: &ObjectRecord) -> MetaResult<()> {
        let written = transaction!(self.writer, |tx| {
            drop_upload(&mut tx, upload_id).await?;
            write_object(&mut *tx, UPSERT_OBJECT, record).await?;
            Ok(())
        });
        // Even on an error: a commit whose answer was lost may have written the record.
        self.objects.invalidate(&record.bucket, &record.key);
        written
    }

    async fn released_blobs(&self, limit: u32) -> MetaResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT blob_id FROM released_blobs LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.into_iter().map(|(b,)| b).collect())
    }

    async fn forget_released(&self, blob_ids: &[String]) -> MetaResult<()> {
        transaction!(self.writer, |tx| {
            for id in blob_ids {
                sqlx::query("DELETE FROM released_blobs WHERE blob_id = ?").bind(id).execute(&mut *tx).await?;
            }
            Ok(())
        })?;
        Ok(())
    }

    async fn referenced_blobs(&self, blob_ids: &[String]) -> MetaResult<Vec<String>> {
        let mut referenced = Vec::new();
        // Within SQLite's limit on bound parameters.
        for batch in blob_ids.chunks(300) {
            let marks = vec!["?"; batch.len()].join(",");
            let sql = format!(
                "SELECT blob_id FROM objects WHERE blob_id IN ({marks})
                 UNION SELECT blob_id FROM object_versions WHERE blob_id IN ({marks})
                 UNION SELECT blob_id FROM upload_parts WHERE blob_id IN ({marks})
                 UNION SELECT blob_id FROM released_blobs WHERE blob_id IN ({marks})"
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for _ in 0..4 {
                for id in batch {
                    query = query.bind(id);
                }
            }
            referenced.extend(query.fetch_all(&self.reader).await?);
        }
        Ok(referenced)
    }

    async fn create_share(&self, share: &Share) -> MetaResult<()> {
        insert_share!(share).execute(&self.writer).await?;
        Ok(())
    }

    async fn get_share(&self, id: &str) -> MetaResult<Option<Share>> {
        let row = sqlx::query("SELECT * FROM shares WHERE id = ?").bind(id).fetch_optional(&self.reader).await?;
        row.as_ref().map(share_from_row).transpose()
    }

    async fn find_share(&self, token_hash: &[u8]) -> MetaResult<Option<Share>> {
        let row = sqlx::query("SELECT * FROM shares WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(share_from_row).transpose()
    }

    async fn list_shares(&self, filter: &ShareFilter) -> MetaResult<Vec<ListedShare>> {
        let rows = list_shares!(filter).fetch_all(&self.reader).await?;
        rows.iter().map(listed_share_from_row).collect()
    }

    async fn revoke_share(&self, id: &str, at: OffsetDateTime) -> MetaResult<bool> {
        Ok(revoke_share!(id, at).execute(&self.writer).await?.rows_affected() > 0)
    }

    async fn consume_share(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
        to: &Grantee,
        address_checked: bool,
    ) -> MetaResult<Option<GrantedUse>> {
        // The object record is left to the caller's lookup, which the record cache answers.
        let share = self.batcher.consume(UseJob::new(token_hash, "GET", now, to, address_checked)).await?;
        Ok(share.map(|share| GrantedUse { share, object: None }))
    }

    async fn consume_upload_share(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
        to: &Grantee,
        record: &ObjectRecord,
        replace: bool,
    ) -> MetaResult<Option<Share>> {
        let share =
            consume_upload_share!(self.writer, batch::consume, write_object, token_hash, now, to, record, replace);
        // Even on an error: a commit whose answer was lost may have written the record.
        self.objects.invalidate(&record.bucket, &record.key);
        share
    }

    async fn purge_audit(&self, before: OffsetDateTime) -> MetaResult<u64> {
        Ok(purge_audit!(before).execute(&self.writer).await?.rows_affected())
    }

    async fn purge_shares(&self, before: OffsetDateTime) -> MetaResult<u64> {
        Ok(purge_shares!(before).execute(&self.writer).await?.rows_affected())
    }

    async fn has_grant(&self, share_id: &str, to: &Grantee, since: OffsetDateTime) -> MetaResult<bool> {
        Ok(find_grant!(share_id, to, since).fetch_optional(&self.reader).await?.is_some())
    }

    async fn reserve_grant(&self, request: &GrantRequest<'_>) -> MetaResult<Option<OffsetDateTime>> {
        let row = reserve_grant!(request).fetch_optional(&self.writer).await?;
        Ok(row.as_ref().map(|row| row.int("granted_ms")).transpose()?.map(from_ms))
    }

    async fn refund_grant(&self, share_id: &str, to: &Grantee, granted: OffsetDateTime, bytes: u64) -> MetaResult<()> {
        refund_grant!(share_id, to, granted, bytes).execute(&self.writer).await?;
        Ok(())
    }

    async fn record_audit(&self, event: &AuditEvent) -> MetaResult<()> {
        self.batcher.audit(event).await
    }

    async fn health(&self) -> MetaResult<()> {
        if !self.batcher.queue.is_running() {
            return Err(MetaError::Closed);
        }
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    #[cfg(test)]
    fn panic_next_batch(&self) {
        self.batcher.queue.supervisor.panic_next.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conformance::conformance_tests;

    async fn open() -> Option<(Arc<dyn MetaStore>, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("meta.db")).await.unwrap();
        Some((Arc::new(store), dir))
    }

    conformance_tests!(open());

    mod bucket_config {
        use super::*;
        use crate::bucket_config_conformance::bucket_config_conformance_tests;

        async fn open() -> Option<(Arc<SqliteStore>, tempfile::TempDir)> {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&dir.path().join("meta.db")).await.unwrap();
            Some((Arc::new(store), dir))
        }

        bucket_config_conformance_tests!(open());
    }

    /// PresignedStore and AuditStore conformance.
    mod presigned_and_audit {
        use super::*;
        use crate::presigned::conformance;

        #[tokio::test]
        async fn each_url_is_granted_exactly_its_uses() {
            let (store, _dir) = open().await.unwrap();
            conformance::each_url_is_granted_exactly_its_uses(store).await;
        }

        #[tokio::test]
        async fn expired_urls_are_forgotten() {
            let (store, _dir) = open().await.unwrap();
            conformance::expired_urls_are_forgotten(store).await;
        }

        #[tokio::test]
        async fn revocations_are_announced_loaded_and_purged() {
            let (store, _dir) = open().await.unwrap();
            conformance::revocations_are_announced_loaded_and_purged(store).await;
        }

        #[tokio::test]
        async fn audit_events_are_linked_into_one_chain() {
            let (store, _dir) = open().await.unwrap();
            crate::audit::conformance::events_are_linked_into_one_chain(store).await;
        }

        #[tokio::test]
        async fn queued_versions_are_claimed_scanned_and_recorded_once() {
            let (store, _dir) = open().await.unwrap();
            crate::findings::conformance::queued_versions_are_claimed_scanned_and_recorded_once(store).await;
        }

        #[tokio::test]
        async fn failed_scans_retry_then_stay_dead() {
            let (store, _dir) = open().await.unwrap();
            crate::findings::conformance::failed_scans_retry_then_stay_dead(store).await;
        }

        #[tokio::test]
        async fn findings_list_newest_first_in_pages() {
            let (store, _dir) = open().await.unwrap();
            crate::findings::conformance::findings_list_newest_first_in_pages(store).await;
        }

        #[tokio::test]
        async fn jobs_queue_count_down_and_cancel() {
            let (store, _dir) = open().await.unwrap();
            crate::scan_jobs::conformance::jobs_queue_count_down_and_cancel(store).await;
        }

        #[tokio::test]
        async fn identifiers_are_created_listed_and_deleted() {
            let (store, _dir) = open().await.unwrap();
            crate::custom_identifiers::conformance::identifiers_are_created_listed_and_deleted(store).await;
        }

        #[tokio::test]
        async fn versions_are_kept_deleted_restored_and_released_exactly() {
            let (store, _dir) = open().await.unwrap();
            crate::versions::conformance::versions_are_kept_deleted_restored_and_released_exactly(store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn racing_changes_to_one_key_stay_consistent() {
            let (store, _dir) = open().await.unwrap();
            crate::versions::conformance::racing_changes_to_one_key_stay_consistent(store).await;
        }

        #[tokio::test]
        async fn locked_versions_leave_the_store_only_when_their_lock_allows() {
            let (store, _dir) = open().await.unwrap();
            crate::versions::conformance::locked_versions_leave_the_store_only_when_their_lock_allows(store).await;
        }

        #[tokio::test]
        async fn one_replica_holds_the_lease_and_another_resumes_its_pass() {
            let (store, _dir) = open().await.unwrap();
            crate::lifecycle::conformance::one_replica_holds_the_lease_and_another_resumes_its_pass(store).await;
        }

        async fn open() -> Option<(Arc<SqliteStore>, tempfile::TempDir)> {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&dir.path().join("meta.db")).await.unwrap();
            Some((Arc::new(store), dir))
        }
    }

    mod identity {
        use super::*;
        use crate::identity_conformance::identity_conformance_tests;

        async fn open() -> Option<(Arc<dyn crate::IdentityStore>, tempfile::TempDir)> {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&dir.path().join("meta.db")).await.unwrap();
            Some((Arc::new(store), dir))
        }

        identity_conformance_tests!(open());

        /// Keys written before IAM existed (plaintext secrets) move to the key table sealed.
        #[tokio::test]
        async fn legacy_plaintext_keys_are_sealed_and_moved() {
            use crate::IdentityStore;
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&dir.path().join("meta.db")).await.unwrap();
            for (id, secret) in [("AKIAOLD1", "secret-one"), ("AKIAOLD2", "secret-two")] {
                sqlx::query("INSERT INTO access_keys VALUES (?, ?, 'ops', 0)")
                    .bind(id)
                    .bind(secret)
                    .execute(&store.writer)
                    .await
                    .unwrap();
            }
            let seal = |id: &str, secret: &str| format!("sealed({id},{secret})").into_bytes();
            assert_eq!(store.adopt_legacy_keys(&seal).await.unwrap(), 2);
            assert_eq!(store.adopt_legacy_keys(&seal).await.unwrap(), 0, "nothing is left to move");
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM access_keys").fetch_one(&store.writer).await.unwrap();
            assert_eq!(left, 0, "no plaintext secret stays behind");
            let keys = store.load_directory().await.unwrap().access_keys;
            let moved = keys.iter().find(|k| k.access_key_id == "AKIAOLD2").unwrap();
            assert_eq!(
                (moved.user_name.as_str(), moved.secret_sealed.as_slice()),
                ("ops", &b"sealed(AKIAOLD2,secret-two)"[..])
            );
        }
    }

    #[tokio::test]
    async fn a_second_store_on_the_same_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SqliteStore::open(&dir.path().join("meta.db")).await.unwrap();
        let second = SqliteStore::open(&dir.path().join("meta.db")).await;
        assert!(matches!(second, Err(MetaError::Locked { .. })), "{:?}", second.err());
    }
}
