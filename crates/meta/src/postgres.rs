//! The PostgreSQL metadata store, for several `latchkey serve` replicas sharing one database.
//!
//! Unlike the SQLite store it caches nothing and takes no exclusive lock: other replicas write
//! the same rows. Atomicity comes from single statements and row locks: a share's use is
//! consumed by one `UPDATE ... WHERE uses_left > 0`, which PostgreSQL re-checks against the
//! latest row version when concurrent redeemers queue on the row lock, so N racing redeemers of
//! a k-use link get exactly k grants across all replicas. Commits are durable
//! (`synchronous_commit` is left on).

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use time::OffsetDateTime;

use crate::pg_batch::{PgBatcher, take_uses};
use crate::rows::{
    Columns, bucket_from_row, from_ms, listed_share_from_row, object_from_row, part_from_row, share_from_row, to_ms,
    upload_from_row,
};
use crate::statements::{
    UPSERT_OBJECT, find_grant, insert_audit, insert_share, insert_upload, list_objects, list_parts, list_shares,
    list_uploads, purge_audit, purge_shares, refund_grant, reserve_grant, revoke_share, set_object_tags, upsert_part,
    write_object,
};
use crate::uses::UseJob;
use crate::{
    AuditEvent, Bucket, GrantRequest, GrantedUse, Grantee, KeyRange, ListedShare, MetaError, MetaResult, MetaStore,
    MultipartUpload, ObjectRecord, PartRecord, Share, ShareFilter, Tag,
};
use crate::{consume_upload_share, foreign_key_means, transaction};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    batcher: PgBatcher,
    /// Told of this replica's identity changes and, through `LISTEN`, of every other replica's.
    identity_changes: tokio::sync::watch::Sender<u64>,
    /// The same for bucket settings.
    config_changes: tokio::sync::watch::Sender<u64>,
    /// The same for presigned-URL revocations.
    revocation_changes: tokio::sync::watch::Sender<u64>,
    listener: tokio::task::JoinHandle<()>,
}

crate::identity::identity_store!(PgStore, writer: pool, reader: pool, changes: identity_changes);
crate::bucket_config::bucket_config_store!(PgStore, writer: pool, reader: pool, changes: config_changes);
crate::presigned::presigned_store!(PgStore, writer: pool, changes: revocation_changes);
crate::scan_jobs::scan_job_store!(PgStore, writer: pool, reader: pool);
crate::lifecycle::lifecycle_store!(PgStore, writer: pool);
crate::custom_identifiers::custom_identifier_store!(PgStore, writer: pool, reader: pool);
crate::findings::findings_store!(PgStore, writer: pool, reader: pool,
    claim: crate::findings::claim_scans_sql!("FOR UPDATE SKIP LOCKED"), release_stale: false,
    changed: |_: &PgStore, _: &str, _: &str| ());
crate::versions::version_store!(PgStore, writer: pool, reader: pool,
    lock: "SELECT pg_advisory_xact_lock(74111, hashtext($1 || '/' || $2))",
    changed: |_: &PgStore, _: &str, _: &str| (), bucket_changed: |_: &PgStore, _: &str, _| ());

#[async_trait::async_trait]
impl crate::audit::AuditStore for PgStore {
    /// Links under a transaction-scoped advisory lock (one per schema), so that one replica at a
    /// time does; the others link nothing meanwhile. Events committed late (a lower `seq`) are
    /// linked in a later round, at a later position.
    async fn chain_audit(&self, limit: u32) -> MetaResult<u64> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(74110, hashtext(current_schema()))")
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0);
        }
        let head = sqlx::query_as(crate::audit::SELECT_HEAD).fetch_optional(&mut *tx).await?;
        let pending = sqlx::query_as(crate::audit::SELECT_PENDING).bind(i64::from(limit)).fetch_all(&mut *tx).await?;
        let links = crate::audit::links(head, pending);
        let (seqs, (positions, hashes)): (Vec<i64>, (Vec<i64>, Vec<Vec<u8>>)) =
            links.into_iter().map(|(seq, pos, hash)| (seq, (pos, hash))).unzip();
        sqlx::query(
            "UPDATE audit_events a SET chain_pos = v.pos, hash = v.hash
             FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[]) AS v(seq, pos, hash) WHERE a.seq = v.seq",
        )
        .bind(&seqs)
        .bind(&positions)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seqs.len() as u64)
    }

    async fn record_audit_digest(&self, digest: &crate::AuditDigest) -> MetaResult<bool> {
        Ok(crate::audit::insert_audit_digest!(digest).execute(&self.pool).await?.rows_affected() == 1)
    }

    async fn claim_alarm(&self, rule: &str, group: &str, window_start: OffsetDateTime) -> MetaResult<bool> {
        Ok(crate::audit::claim_alarm!(rule, group, window_start).execute(&self.pool).await?.rows_affected() == 1)
    }

    async fn purge_alarm_firings(&self, before: OffsetDateTime) -> MetaResult<u64> {
        let done = sqlx::query(crate::audit::PURGE_ALARM_FIRINGS).bind(to_ms(before)).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}

crate::audit::audit_trail!(PgStore, pool);

/// The channels the generation triggers notify: `iam_generation` (migration 0005),
/// `bucket_config_generation` (0006) and `presigned_revocation_generation` (0011).
const IDENTITY_CHANNEL: &str = "latchkey_identity";
const BUCKET_CONFIG_CHANNEL: &str = "latchkey_bucket_config";
const PRESIGNED_CHANNEL: &str = "latchkey_presigned";

/// Forwards notifications from other replicas to the sender of their channel. A notification
/// lost while the connection was down is made up for by a change signalled to every sender on
/// every reconnect.
async fn listen_for_changes(pool: PgPool, senders: [(&'static str, tokio::sync::watch::Sender<u64>); 3]) {
    let signal_all = || senders.iter().for_each(|(_, sender)| sender.send_modify(|g| *g += 1));
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "change listener cannot connect; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen_all(senders.iter().map(|(channel, _)| *channel)).await {
            tracing::warn!(error = %e, "change listener cannot LISTEN; retrying");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        signal_all();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Some((_, sender)) = senders.iter().find(|(channel, _)| *channel == notification.channel()) {
                        sender.send_modify(|g| *g += 1);
                    }
                }
                // The connection was lost and is re-established on the next call: whatever was
                // sent meanwhile is unknown.
                Ok(None) => signal_all(),
                Err(e) => {
                    tracing::warn!(error = %e, "change listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

impl PgStore {
    /// Connects (with at most `max_connections` connections) and brings the schema up to date
    /// (migrations take an advisory lock, so replicas starting together do not race).
    pub async fn open(url: &str, max_connections: u32) -> MetaResult<Self> {
        let pool = PgPoolOptions::new().max_connections(max_connections).connect(url).await?;
        MIGRATOR.run(&pool).await?;
        let batcher = PgBatcher::start(pool.clone());
        let identity_changes = tokio::sync::watch::Sender::new(0);
        let config_changes = tokio::sync::watch::Sender::new(0);
        let revocation_changes = tokio::sync::watch::Sender::new(0);
        let listener = tokio::spawn(listen_for_changes(
            pool.clone(),
            [
                (IDENTITY_CHANNEL, identity_changes.clone()),
                (BUCKET_CONFIG_CHANNEL, config_changes.clone()),
                (PRESIGNED_CHANNEL, revocation_changes.clone()),
            ],
        ));
        Ok(Self { pool, batcher, identity_changes, config_changes, revocation_changes, listener })
    }
}

/// Writes an object record in one statement (`UPSERT_OBJECT` or `INSERT_NEW_OBJECT`); `false`
/// when nothing was written.
async fn write_object(conn: impl sqlx::PgExecutor<'_>, statement: &str, record: &ObjectRecord) -> MetaResult<bool> {
    let done = write_object!(statement, record)
        .execute(conn)
        .await
        .map_err(|e| foreign_key_means(e, MetaError::NoSuchBucket))?;
    Ok(done.rows_affected() > 0)
}

/// Takes a use of a `method` link (and records its grant and audit event), unbatched.
async fn consume(
    conn: impl sqlx::PgExecutor<'_>,
    token_hash: &[u8],
    method: &'static str,
    now: OffsetDateTime,
    to: &Grantee,
    address_checked: bool,
) -> MetaResult<Option<Share>> {
    let job = UseJob::new(token_hash, method, now, to, address_checked);
    Ok(take_uses(conn, &[&job]).await?.remove(token_hash).map(|granted| granted.share))
}

async fn drop_upload(tx: &mut sqlx::PgConnection, upload_id: &str) -> MetaResult<()> {
    sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1").bind(upload_id).execute(&mut *tx).await?;
    let done = sqlx::query("DELETE FROM uploads WHERE upload_id = $1").bind(upload_id).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Err(MetaError::NoSuchUpload);
    }
    Ok(())
}

#[async_trait]
impl MetaStore for PgStore {
    async fn create_bucket(&self, bucket: &Bucket) -> MetaResult<()> {
        let done = crate::statements::insert_bucket!(bucket).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(MetaError::BucketAlreadyExists);
        }
        Ok(())
    }

    async fn delete_bucket(&self, name: &str) -> MetaResult<()> {
        transaction!(self.pool, |tx| {
            // Lock the bucket row so that no object lands in it while it is being deleted.
            let exists: Option<(String,)> = sqlx::query_as("SELECT name FROM buckets WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(MetaError::NoSuchBucket);
            }
            let any: Option<(i32,)> =
                sqlx::query_as(crate::statements::ANY_VERSION).bind(name).fetch_optional(&mut *tx).await?;
            if any.is_some() {
                return Err(MetaError::BucketNotEmpty);
            }
            sqlx::query(
                "DELETE FROM upload_parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket = $1)",
            )
            .bind(name)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM uploads WHERE bucket = $1").bind(name).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM buckets WHERE name = $1").bind(name).execute(&mut *tx).await?;
            Ok(())
        })?;
        // Its settings went with it (other replicas hear of it through the trigger's NOTIFY).
        self.config_changes.send_modify(|g| *g += 1);
        Ok(())
    }

    async fn get_bucket(&self, name: &str) -> MetaResult<Option<Bucket>> {
        let row = sqlx::query(
            "SELECT name, region, created_ms, versioning, object_lock, mfa_delete_device, mfa_delete_device_created_ms FROM buckets WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(bucket_from_row).transpose()
    }

    async fn list_buckets(&self) -> MetaResult<Vec<Bucket>> {
        let rows = sqlx::query(
            "SELECT name, region, created_ms, versioning, object_lock, mfa_delete_device, mfa_delete_device_created_ms FROM buckets ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(bucket_from_row).collect()
    }

    async fn get_object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectRecord>> {
        let row = sqlx::query("SELECT * FROM objects WHERE bucket = $1 AND key = $2")
            .bind(bucket)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(object_from_row).transpose()
    }

    async fn put_object(&self, record: &ObjectRecord) -> MetaResult<()> {
        write_object(&self.pool, UPSERT_OBJECT, record).await.map(drop)
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> MetaResult<bool> {
        let done = sqlx::query("DELETE FROM objects WHERE bucket = $1 AND key = $2")
            .bind(bucket)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_objects(&self, bucket: &str, range: KeyRange<'_>) -> MetaResult<Vec<ObjectRecord>> {
        let rows = list_objects!(bucket, range).fetch_all(&self.pool).await?;
        rows.iter().map(object_from_row).collect()
    }

    async fn set_object_tags(&self, bucket: &str, key: &str, tags: &[Tag]) -> MetaResult<bool> {
        let done = set_object_tags!(bucket, key, tags).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_upload(&self, upload: &MultipartUpload) -> MetaResult<()> {
        insert_upload!(upload).execute(&self.pool).await.map_err(|e| foreign_key_means(e, MetaError::NoSuchBucket))?;
        Ok(())
    }

    async fn get_upload(&self, upload_id: &str) -> MetaResult<Option<MultipartUpload>> {
        let row = sqlx::query("SELECT * FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    async fn put_part(&self, part: &PartRecord) -> MetaResult<()> {
        upsert_part!(part).execute(&self.pool).await.map_err(|e| foreign_key_means(e, MetaError::NoSuchUpload))?;
        Ok(())
    }

    async fn list_parts(&self, upload_id: &str, after_part: i32, limit: u32) -> MetaResult<Vec<PartRecord>> {
        let rows = list_parts!(upload_id, after_part, limit).fetch_all(&self.pool).await?;
        rows.iter().map(part_from_row).collect()
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        range: KeyRange<'_>,
        upload_id_marker: Option<&str>,
    ) -> MetaResult<Vec<MultipartUpload>> {
        let rows = list_uploads!(bucket, range, upload_id_marker).fetch_all(&self.pool).await?;
        rows.iter().map(upload_from_row).collect()
    }

    async fn abort_upload(&self, upload_id: &str) -> MetaResult<()> {
        transaction!(self.pool, |tx| {
            drop_upload(&mut tx, upload_id).await?;
            Ok(())
        })?;
        Ok(())
    }

    async fn complete_upload(&self, upload_id: &str, record: &ObjectRecord) -> MetaResult<()> {
        transaction!(self.pool, |tx| {
            drop_upload(&mut tx, upload_id).await?;
            write_object(&mut *tx, UPSERT_OBJECT, record).await?;
            Ok(())
        })?;
        Ok(())
    }

    async fn released_blobs(&self, limit: u32) -> MetaResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT blob_id FROM released_blobs LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(b,)| b).collect())
    }

    async fn forget_released(&self, blob_ids: &[String]) -> MetaResult<()> {
        sqlx::query("DELETE FROM released_blobs WHERE blob_id = ANY($1)").bind(blob_ids).execute(&self.pool).await?;
        Ok(())
    }

    async fn referenced_blobs(&self, blob_ids: &[String]) -> MetaResult<Vec<String>> {
        let referenced = sqlx::query_scalar(
            "SELECT blob_id FROM objects WHERE blob_id = ANY($1)
             UNION SELECT blob_id FROM object_versions WHERE blob_id = ANY($1)
             UNION SELECT blob_id FROM upload_parts WHERE blob_id = ANY($1)
             UNION SELECT blob_id FROM released_blobs WHERE blob_id = ANY($1)",
        )
        .bind(blob_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(referenced)
    }

    async fn create_share(&self, share: &Share) -> MetaResult<()> {
        insert_share!(share).execute(&self.pool).await?;
        Ok(())
    }

    async fn get_share(&self, id: &str) -> MetaResult<Option<Share>> {
        let row = sqlx::query("SELECT * FROM shares WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(share_from_row).transpose()
    }

    async fn find_share(&self, token_hash: &[u8]) -> MetaResult<Option<Share>> {
        let row = sqlx::query("SELECT * FROM shares WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(share_from_row).transpose()
    }

    async fn list_shares(&self, filter: &ShareFilter) -> MetaResult<Vec<ListedShare>> {
        let rows = list_shares!(filter).fetch_all(&self.pool).await?;
        rows.iter().map(listed_share_from_row).collect()
    }

    async fn revoke_share(&self, id: &str, at: OffsetDateTime) -> MetaResult<bool> {
        Ok(revoke_share!(id, at).execute(&self.pool).await?.rows_affected() > 0)
    }

    async fn consume_share(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
        to: &Grantee,
        address_checked: bool,
    ) -> MetaResult<Option<GrantedUse>> {
        self.batcher.take(UseJob::new(token_hash, "GET", now, to, address_checked)).await
    }

    async fn consume_upload_share(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
        to: &Grantee,
        record: &ObjectRecord,
        replace: bool,
    ) -> MetaResult<Option<Share>> {
        consume_upload_share!(self.pool, consume, write_object, token_hash, now, to, record, replace)
    }

    async fn purge_audit(&self, before: OffsetDateTime) -> MetaResult<u64> {
        Ok(purge_audit!(before).execute(&self.pool).await?.rows_affected())
    }

    async fn purge_shares(&self, before: OffsetDateTime) -> MetaResult<u64> {
        Ok(purge_shares!(before).execute(&self.pool).await?.rows_affected())
    }

    async fn has_grant(&self, share_id: &str, to: &Grantee, since: OffsetDateTime) -> MetaResult<bool> {
        Ok(find_grant!(share_id, to, since).fetch_optional(&self.pool).await?.is_some())
    }

    async fn reserve_grant(&self, request: &GrantRequest<'_>) -> MetaResult<Option<OffsetDateTime>> {
        let row = reserve_grant!(request).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(|row| row.int("granted_ms")).transpose()?.map(from_ms))
    }

    async fn refund_grant(&self, share_id: &str, to: &Grantee, granted: OffsetDateTime, bytes: u64) -> MetaResult<()> {
        refund_grant!(share_id, to, granted, bytes).execute(&self.pool).await?;
        Ok(())
    }

    async fn record_audit(&self, event: &AuditEvent) -> MetaResult<()> {
        insert_audit!(event).execute(&self.pool).await?;
        Ok(())
    }

    async fn health(&self) -> MetaResult<()> {
        if !self.batcher.queue.is_running() {
            return Err(MetaError::Closed);
        }
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.listener.abort();
        self.pool.close().await;
    }

    #[cfg(test)]
    fn panic_next_batch(&self) {
        self.batcher.queue.supervisor.panic_next.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::conformance::conformance_tests;

    /// The server to test against, and whether the run requires it: `LATCHKEY_TEST_PG_URL`
    /// (scripts/test and CI set it) names a server that must be there; otherwise the local
    /// default is tried and its absence only skips.
    fn target() -> (String, bool) {
        match std::env::var("LATCHKEY_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => (url, true),
            _ => ("postgres://postgres@127.0.0.1:5432/test".to_owned(), false),
        }
    }

    /// What an unreachable PostgreSQL means for a test: a failure (the message) when the run
    /// requires it; otherwise a skip, announced on `out`.
    fn unreachable(
        required: bool,
        url: &str,
        error: &dyn std::fmt::Display,
        out: &mut dyn Write,
    ) -> Result<(), String> {
        if required {
            return Err(format!("LATCHKEY_TEST_PG_URL is set but PostgreSQL at {url} is unreachable: {error}"));
        }
        let _ = writeln!(
            out,
            "!!! SKIPPED: no PostgreSQL reachable at {url} ({error}); the PostgreSQL store was NOT tested; \
             set LATCHKEY_TEST_PG_URL to make this a failure !!!"
        );
        Ok(())
    }

    #[test]
    fn an_unreachable_postgres_fails_the_run_that_requires_it_and_skips_otherwise() {
        let (url, refused) = ("postgres://127.0.0.1:1/test", "connection refused");
        let mut said = Vec::new();
        let failed = unreachable(true, url, &refused, &mut said).unwrap_err();
        assert!(failed.contains("LATCHKEY_TEST_PG_URL is set") && failed.contains("127.0.0.1:1"), "{failed}");
        assert!(said.is_empty());
        assert_eq!(unreachable(false, url, &refused, &mut said), Ok(()));
        let said = String::from_utf8(said).unwrap();
        assert!(said.starts_with("!!! SKIPPED: no PostgreSQL reachable at postgres://127.0.0.1:1/test"), "{said}");
    }

    /// Drops the test's schema when the test ends.
    struct Schema {
        url: String,
        name: String,
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let (url, name) = (self.url.clone(), self.name.clone());
            // Drop runs inside the test's runtime; the cleanup gets a runtime of its own.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Runtime::new().unwrap().block_on(async {
                    if let Ok(pool) = PgPoolOptions::new().max_connections(32).connect(&url).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).execute(&pool).await;
                    }
                });
            })
            .join();
        }
    }

    async fn open() -> Option<(Arc<dyn MetaStore>, Schema)> {
        let (scoped, schema) = fresh_schema().await?;
        let store = PgStore::open(&scoped, 8).await.unwrap();
        Some((Arc::new(store), schema))
    }

    /// PresignedStore and AuditStore conformance.
    mod presigned_and_audit {
        use super::*;
        use crate::presigned::conformance;

        async fn open() -> Option<(Arc<PgStore>, Schema)> {
            let (scoped, schema) = fresh_schema().await?;
            Some((Arc::new(PgStore::open(&scoped, 8).await.unwrap()), schema))
        }

        #[tokio::test]
        async fn each_url_is_granted_exactly_its_uses() {
            if let Some((store, _schema)) = open().await {
                conformance::each_url_is_granted_exactly_its_uses(store).await;
            }
        }

        #[tokio::test]
        async fn expired_urls_are_forgotten() {
            if let Some((store, _schema)) = open().await {
                conformance::expired_urls_are_forgotten(store).await;
            }
        }

        #[tokio::test]
        async fn revocations_are_announced_loaded_and_purged() {
            if let Some((store, _schema)) = open().await {
                conformance::revocations_are_announced_loaded_and_purged(store).await;
            }
        }

        #[tokio::test]
        async fn audit_events_are_linked_into_one_chain() {
            if let Some((store, _schema)) = open().await {
                crate::audit::conformance::events_are_linked_into_one_chain(store).await;
            }
        }

        #[tokio::test]
        async fn queued_versions_are_claimed_scanned_and_recorded_once() {
            if let Some((store, _schema)) = open().await {
                crate::findings::conformance::queued_versions_are_claimed_scanned_and_recorded_once(store).await;
            }
        }

        #[tokio::test]
        async fn failed_scans_retry_then_stay_dead() {
            if let Some((store, _schema)) = open().await {
                crate::findings::conformance::failed_scans_retry_then_stay_dead(store).await;
            }
        }

        #[tokio::test]
        async fn findings_list_newest_first_in_pages() {
            if let Some((store, _schema)) = open().await {
                crate::findings::conformance::findings_list_newest_first_in_pages(store).await;
            }
        }

        #[tokio::test]
        async fn jobs_queue_count_down_and_cancel() {
            if let Some((store, _schema)) = open().await {
                crate::scan_jobs::conformance::jobs_queue_count_down_and_cancel(store).await;
            }
        }

        #[tokio::test]
        async fn identifiers_are_created_listed_and_deleted() {
            if let Some((store, _schema)) = open().await {
                crate::custom_identifiers::conformance::identifiers_are_created_listed_and_deleted(store).await;
            }
        }

        #[tokio::test]
        async fn versions_are_kept_deleted_restored_and_released_exactly() {
            if let Some((store, _schema)) = open().await {
                crate::versions::conformance::versions_are_kept_deleted_restored_and_released_exactly(store).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn racing_changes_to_one_key_stay_consistent() {
            if let Some((store, _schema)) = open().await {
                crate::versions::conformance::racing_changes_to_one_key_stay_consistent(store).await;
            }
        }

        #[tokio::test]
        async fn locked_versions_leave_the_store_only_when_their_lock_allows() {
            if let Some((store, _schema)) = open().await {
                crate::versions::conformance::locked_versions_leave_the_store_only_when_their_lock_allows(store).await;
            }
        }

        #[tokio::test]
        async fn one_replica_holds_the_lease_and_another_resumes_its_pass() {
            if let Some((store, _schema)) = open().await {
                crate::lifecycle::conformance::one_replica_holds_the_lease_and_another_resumes_its_pass(store).await;
            }
        }
    }

    mod bucket_config {
        use super::*;
        use crate::bucket_config_conformance::bucket_config_conformance_tests;

        async fn open() -> Option<(Arc<PgStore>, Schema)> {
            let (scoped, schema) = fresh_schema().await?;
            Some((Arc::new(PgStore::open(&scoped, 8).await.unwrap()), schema))
        }

        bucket_config_conformance_tests!(open());

        /// A settings change written through one replica reaches the other through NOTIFY.
        #[tokio::test]
        async fn another_replica_hears_of_a_change_within_a_second() {
            use crate::{BucketConfigStore, BucketSetting};
            let Some((scoped, _schema)) = fresh_schema().await else { return };
            let writer = PgStore::open(&scoped, 8).await.unwrap();
            let other = PgStore::open(&scoped, 8).await.unwrap();
            let bucket = crate::conformance::plain_bucket("b");
            writer.create_bucket(&bucket).await.unwrap();
            let mut changes = other.config_changes();
            // Wait until the other replica's listener is connected (it signals once it listens).
            tokio::time::timeout(Duration::from_secs(5), changes.changed()).await.unwrap().unwrap();
            changes.borrow_and_update();
            writer.set_bucket_setting("b", &BucketSetting::Policy(Some("{}".into()))).await.unwrap();
            tokio::time::timeout(Duration::from_secs(1), changes.changed()).await.expect("no notification").unwrap();
            let seen = other.load_bucket_configs().await.unwrap();
            assert_eq!(seen.configs.len(), 1);
            other.close().await;
            writer.close().await;
        }
    }

    mod identity {
        use super::*;
        use crate::identity_conformance::identity_conformance_tests;

        async fn open() -> Option<(Arc<dyn crate::IdentityStore>, Schema)> {
            let (scoped, schema) = fresh_schema().await?;
            Some((Arc::new(PgStore::open(&scoped, 8).await.unwrap()), schema))
        }

        identity_conformance_tests!(open());

        /// A change written through one replica reaches the other through LISTEN/NOTIFY.
        #[tokio::test]
        async fn another_replica_hears_of_a_change_within_a_second() {
            use crate::{EntryKind, IdentityStore};
            let Some((scoped, _schema)) = fresh_schema().await else { return };
            let writer = PgStore::open(&scoped, 8).await.unwrap();
            let other = PgStore::open(&scoped, 8).await.unwrap();
            let mut changes = other.directory_changes();
            // Wait until the other replica's listener is connected (it signals once it listens).
            tokio::time::timeout(Duration::from_secs(5), changes.changed()).await.unwrap().unwrap();
            changes.borrow_and_update();
            writer.put_entry(EntryKind::User, "alice", "{}", None).await.unwrap();
            tokio::time::timeout(Duration::from_secs(1), changes.changed()).await.expect("no notification").unwrap();
            let seen = other.load_directory().await.unwrap();
            assert_eq!(seen.entries.len(), 1);
            other.close().await;
            writer.close().await;
        }
    }

    /// A URL scoped to a fresh schema; `None` when PostgreSQL is absent and the run allows that.
    async fn fresh_schema() -> Option<(String, Schema)> {
        let (url, required) = target();
        // A few seconds, not the default 30: a missing server should fail the run promptly.
        let connecting = PgPoolOptions::new().max_connections(32).acquire_timeout(Duration::from_secs(3));
        let admin = match connecting.connect(&url).await {
            Ok(pool) => pool,
            Err(e) => {
                // Straight to stderr: libtest hides what a passing test prints with `eprintln!`.
                if let Err(failure) = unreachable(required, &url, &e, &mut std::io::stderr()) {
                    panic!("{failure}");
                }
                return None;
            }
        };
        let name = format!("lk_test_{}", uuid_like());
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&admin).await.unwrap();
        let scoped = format!("{url}?options=-c%20search_path%3D{name}");
        Some((scoped, Schema { url, name }))
    }

    /// Two replicas batch redemptions of the same links in different orders: every use is granted
    /// exactly once, with its grant and audit event, whatever deadlocks the batches run into.
    #[tokio::test]
    async fn replicas_batching_the_same_links_grant_each_use_once() {
        let Some((scoped, _schema)) = fresh_schema().await else { return };
        let replicas = [PgStore::open(&scoped, 8).await.unwrap(), PgStore::open(&scoped, 8).await.unwrap()];
        let replicas: Vec<Arc<dyn MetaStore>> = replicas.into_iter().map(|r| Arc::new(r) as _).collect();
        let store = crate::conformance::with_bucket(replicas[0].clone()).await;
        store.put_object(&crate::conformance::record("b", "k", "x")).await.unwrap();
        let version = store.get_object("b", "k").await.unwrap().unwrap().version_id;
        const LINKS: usize = 20;
        const USES: u32 = 10;
        for i in 0..LINKS {
            let share = crate::conformance::share(&format!("s{i}"), format!("h{i}").as_bytes(), USES, &version);
            store.create_share(&share).await.unwrap();
        }
        let now = OffsetDateTime::now_utc();
        let to = Grantee { source_ip: "10.0.0.1".into(), user_agent: None };
        let attempts: Vec<_> = (0..LINKS * USES as usize * 2)
            .map(|n| {
                let (replica, link) = (replicas[n % 2].clone(), (n * 7 + n / LINKS) % LINKS);
                let to = to.clone();
                tokio::spawn(async move {
                    let granted = replica.consume_share(format!("h{link}").as_bytes(), now, &to, false).await;
                    (link, granted.unwrap().is_some())
                })
            })
            .collect();
        let mut granted = [0u32; LINKS];
        for attempt in attempts {
            let (link, ok) = attempt.await.unwrap();
            granted[link] += u32::from(ok);
        }
        assert_eq!(granted, [USES; LINKS]);
        let pool = PgPoolOptions::new().max_connections(1).connect(&scoped).await.unwrap();
        let count = |sql: &'static str| {
            let pool = pool.clone();
            async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
        };
        let total = i64::from(USES) * LINKS as i64;
        assert_eq!(count("SELECT count(*) FROM share_grants").await, total);
        assert_eq!(count("SELECT count(*) FROM audit_events WHERE event = 'share.redeemed'").await, total);
    }

    fn uuid_like() -> String {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        format!("{:x}_{}", nanos, std::process::id())
    }

    conformance_tests!(open());
}
