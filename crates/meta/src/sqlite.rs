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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use crate::cache::ObjectCache;
use crate::{
    AccessKey, AuditEvent, Bucket, ContentHeaders, KeyRange, MetaError, MetaResult, MetaStore, MultipartUpload,
    ObjectRecord, PartRecord, Share, ShareFilter, Tag,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    objects: ObjectCache,
    /// Every bucket, loaded at open; only this process changes the set (see the lock).
    buckets: RwLock<BTreeMap<String, Bucket>>,
    /// Held, not read: the exclusive lock lives as long as the store.
    _lock: Option<std::fs::File>,
}

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
        let writer =
            SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(options.clone()).await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(8).connect_with(options.read_only(true)).await?;
        let rows = sqlx::query("SELECT name, region, created_ms FROM buckets").fetch_all(&writer).await?;
        let buckets =
            rows.iter().map(bucket_from_row).map(|b| b.map(|b| (b.name.clone(), b))).collect::<MetaResult<_>>()?;
        Ok(Self {
            writer,
            reader,
            objects: ObjectCache::new(CACHED_OBJECTS),
            buckets: RwLock::new(buckets),
            _lock: lock,
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

fn to_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None` when
/// the prefix is empty (no upper bound). UTF-8 never contains 0xFF, so bumping the last byte works.
fn prefix_upper_bound(prefix: &str) -> Option<Vec<u8>> {
    let mut bytes = prefix.as_bytes().to_vec();
    let last = bytes.last_mut()?;
    *last += 1;
    Some(bytes)
}

fn bucket_from_row(row: &SqliteRow) -> MetaResult<Bucket> {
    Ok(Bucket {
        name: row.try_get("name")?,
        region: row.try_get("region")?,
        created: from_ms(row.try_get("created_ms")?),
    })
}

fn object_from_row(row: &SqliteRow) -> MetaResult<ObjectRecord> {
    let headers: String = row.try_get("headers")?;
    let user_meta: String = row.try_get("user_meta")?;
    let tags: String = row.try_get("tags")?;
    let parts: Option<i64> = row.try_get("parts_count")?;
    Ok(ObjectRecord {
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        version_id: row.try_get("version_id")?,
        blob_id: row.try_get("blob_id")?,
        size: to_u64(row.try_get("size")?),
        etag: row.try_get("etag")?,
        last_modified: from_ms(row.try_get("modified_ms")?),
        headers: serde_json::from_str(&headers)?,
        user_meta: serde_json::from_str(&user_meta)?,
        tags: serde_json::from_str(&tags)?,
        parts_count: parts.and_then(|n| u32::try_from(n).ok()),
    })
}

fn upload_from_row(row: &SqliteRow) -> MetaResult<MultipartUpload> {
    let headers: String = row.try_get("headers")?;
    let user_meta: String = row.try_get("user_meta")?;
    let tags: String = row.try_get("tags")?;
    Ok(MultipartUpload {
        upload_id: row.try_get("upload_id")?,
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        initiated: from_ms(row.try_get("initiated_ms")?),
        headers: serde_json::from_str::<ContentHeaders>(&headers)?,
        user_meta: serde_json::from_str::<BTreeMap<String, String>>(&user_meta)?,
        tags: serde_json::from_str::<Vec<Tag>>(&tags)?,
    })
}

fn share_from_row(row: &SqliteRow) -> MetaResult<Share> {
    let cidrs: String = row.try_get("allow_cidrs")?;
    let size: Option<i64> = row.try_get("size")?;
    let revoked: Option<i64> = row.try_get("revoked_ms")?;
    let max_uses: i64 = row.try_get("max_uses")?;
    let uses_left: i64 = row.try_get("uses_left")?;
    Ok(Share {
        id: row.try_get("id")?,
        token_hash: row.try_get("token_hash")?,
        method: row.try_get("method")?,
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        version_id: row.try_get("version_id")?,
        etag: row.try_get("etag")?,
        size: size.map(to_u64),
        created: from_ms(row.try_get("created_ms")?),
        expires: from_ms(row.try_get("expires_ms")?),
        max_uses: u32::try_from(max_uses).unwrap_or(0),
        uses_left: u32::try_from(uses_left).unwrap_or(0),
        allow_cidrs: serde_json::from_str(&cidrs)?,
        disposition: row.try_get("disposition")?,
        label: row.try_get("label")?,
        principal: row.try_get("principal")?,
        revoked: revoked.map(from_ms),
    })
}

fn part_from_row(row: &SqliteRow) -> MetaResult<PartRecord> {
    Ok(PartRecord {
        upload_id: row.try_get("upload_id")?,
        part_number: row.try_get("part_number")?,
        blob_id: row.try_get("blob_id")?,
        size: to_u64(row.try_get("size")?),
        etag: row.try_get("etag")?,
        last_modified: from_ms(row.try_get("modified_ms")?),
    })
}

const UPSERT_OBJECT: &str =
    "INSERT INTO objects (bucket, key, version_id, blob_id, size, etag, modified_ms, headers, user_meta, tags, parts_count)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (bucket, key) DO UPDATE SET
       version_id = excluded.version_id, blob_id = excluded.blob_id, size = excluded.size,
       etag = excluded.etag, modified_ms = excluded.modified_ms, headers = excluded.headers,
       user_meta = excluded.user_meta, tags = excluded.tags, parts_count = excluded.parts_count";

/// Writes an object record in one statement; the replaced blob is queued by a trigger and a
/// missing bucket fails the foreign key.
async fn upsert_object(conn: impl sqlx::SqliteExecutor<'_>, record: &ObjectRecord) -> MetaResult<()> {
    sqlx::query(UPSERT_OBJECT)
        .bind(&record.bucket)
        .bind(&record.key)
        .bind(&record.version_id)
        .bind(&record.blob_id)
        .bind(to_i64(record.size))
        .bind(&record.etag)
        .bind(to_ms(record.last_modified))
        .bind(serde_json::to_string(&record.headers)?)
        .bind(serde_json::to_string(&record.user_meta)?)
        .bind(serde_json::to_string(&record.tags)?)
        .bind(record.parts_count.map(i64::from))
        .execute(conn)
        .await
        .map_err(|e| foreign_key_means(e, MetaError::NoSuchBucket))?;
    Ok(())
}

/// A foreign-key failure names a missing parent (bucket, upload); anything else is a backend error.
fn foreign_key_means(e: sqlx::Error, missing_parent: MetaError) -> MetaError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => missing_parent,
        _ => MetaError::Backend(e),
    }
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
        let done =
            sqlx::query("INSERT INTO buckets (name, region, created_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                .bind(&bucket.name)
                .bind(&bucket.region)
                .bind(to_ms(bucket.created))
                .execute(&self.writer)
                .await?;
        if done.rows_affected() == 0 {
            return Err(MetaError::BucketAlreadyExists);
        }
        self.buckets_mut().insert(bucket.name.clone(), bucket.clone());
        Ok(())
    }

    async fn delete_bucket(&self, name: &str) -> MetaResult<()> {
        let mut tx = self.writer.begin().await?;
        let any: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
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
        tx.commit().await?;
        self.buckets_mut().remove(name);
        self.objects.invalidate_bucket(name);
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
        upsert_object(&self.writer, record).await?;
        self.objects.invalidate(&record.bucket, &record.key);
        Ok(())
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
        let rows = sqlx::query(
            "SELECT * FROM objects WHERE bucket = ?1 AND key >= ?2 AND (?3 IS NULL OR key < CAST(?3 AS TEXT))
             AND (?4 IS NULL OR key > ?4) ORDER BY key LIMIT ?5",
        )
        .bind(bucket)
        .bind(range.prefix)
        .bind(prefix_upper_bound(range.prefix))
        .bind(range.after)
        .bind(i64::from(range.limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(object_from_row).collect()
    }

    async fn set_object_tags(&self, bucket: &str, key: &str, tags: &[Tag]) -> MetaResult<bool> {
        let done = sqlx::query("UPDATE objects SET tags = ? WHERE bucket = ? AND key = ?")
            .bind(serde_json::to_string(tags)?)
            .bind(bucket)
            .bind(key)
            .execute(&self.writer)
            .await?;
        self.objects.invalidate(bucket, key);
        Ok(done.rows_affected() > 0)
    }

    async fn create_upload(&self, upload: &MultipartUpload) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO uploads (upload_id, bucket, key, initiated_ms, headers, user_meta, tags) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&upload.upload_id)
        .bind(&upload.bucket)
        .bind(&upload.key)
        .bind(to_ms(upload.initiated))
        .bind(serde_json::to_string(&upload.headers)?)
        .bind(serde_json::to_string(&upload.user_meta)?)
        .bind(serde_json::to_string(&upload.tags)?)
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
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, part_number, blob_id, size, etag, modified_ms) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (upload_id, part_number) DO UPDATE SET
               blob_id = excluded.blob_id, size = excluded.size, etag = excluded.etag, modified_ms = excluded.modified_ms",
        )
        .bind(&part.upload_id)
        .bind(part.part_number)
        .bind(&part.blob_id)
        .bind(to_i64(part.size))
        .bind(&part.etag)
        .bind(to_ms(part.last_modified))
        .execute(&self.writer)
        .await
        .map_err(|e| foreign_key_means(e, MetaError::NoSuchUpload))?;
        Ok(())
    }

    async fn list_parts(&self, upload_id: &str, after_part: i32, limit: u32) -> MetaResult<Vec<PartRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM upload_parts WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
        )
        .bind(upload_id)
        .bind(after_part)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(part_from_row).collect()
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        range: KeyRange<'_>,
        upload_id_marker: Option<&str>,
    ) -> MetaResult<Vec<MultipartUpload>> {
        let rows = sqlx::query(
            "SELECT * FROM uploads WHERE bucket = ?1 AND key >= ?2 AND (?3 IS NULL OR key < CAST(?3 AS TEXT))
             AND (?4 IS NULL OR key > ?4 OR (key = ?4 AND ?5 IS NOT NULL AND upload_id > ?5))
             ORDER BY key, upload_id LIMIT ?6",
        )
        .bind(bucket)
        .bind(range.prefix)
        .bind(prefix_upper_bound(range.prefix))
        .bind(range.after)
        .bind(upload_id_marker)
        .bind(i64::from(range.limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(upload_from_row).collect()
    }

    async fn abort_upload(&self, upload_id: &str) -> MetaResult<()> {
        let mut tx = self.writer.begin().await?;
        drop_upload(&mut tx, upload_id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn complete_upload(&self, upload_id: &str, record: &ObjectRecord) -> MetaResult<()> {
        let mut tx = self.writer.begin().await?;
        drop_upload(&mut tx, upload_id).await?;
        upsert_object(&mut *tx, record).await?;
        tx.commit().await?;
        self.objects.invalidate(&record.bucket, &record.key);
        Ok(())
    }

    async fn released_blobs(&self, limit: u32) -> MetaResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT blob_id FROM released_blobs LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.into_iter().map(|(b,)| b).collect())
    }

    async fn forget_released(&self, blob_ids: &[String]) -> MetaResult<()> {
        let mut tx = self.writer.begin().await?;
        for id in blob_ids {
            sqlx::query("DELETE FROM released_blobs WHERE blob_id = ?").bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_share(&self, share: &Share) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO shares (id, token_hash, method, bucket, key, version_id, etag, size, created_ms, expires_ms,
               max_uses, uses_left, allow_cidrs, disposition, label, principal, revoked_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&share.id)
        .bind(&share.token_hash)
        .bind(&share.method)
        .bind(&share.bucket)
        .bind(&share.key)
        .bind(&share.version_id)
        .bind(&share.etag)
        .bind(share.size.map(to_i64))
        .bind(to_ms(share.created))
        .bind(to_ms(share.expires))
        .bind(i64::from(share.max_uses))
        .bind(i64::from(share.uses_left))
        .bind(serde_json::to_string(&share.allow_cidrs)?)
        .bind(&share.disposition)
        .bind(&share.label)
        .bind(&share.principal)
        .bind(share.revoked.map(to_ms))
        .execute(&self.writer)
        .await?;
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

    async fn list_shares(&self, filter: &ShareFilter) -> MetaResult<Vec<Share>> {
        let prefix = filter.prefix.as_deref().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT * FROM shares WHERE (?1 IS NULL OR bucket = ?1) AND key >= ?2
               AND (?3 IS NULL OR key < CAST(?3 AS TEXT))
               AND (?4 IS NULL OR (revoked_ms IS NULL AND expires_ms > ?4 AND uses_left > 0))
             ORDER BY created_ms, id",
        )
        .bind(&filter.bucket)
        .bind(prefix)
        .bind(prefix_upper_bound(prefix))
        .bind(filter.active_at.map(to_ms))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(share_from_row).collect()
    }

    async fn revoke_share(&self, id: &str, at: OffsetDateTime) -> MetaResult<bool> {
        let done = sqlx::query("UPDATE shares SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL")
            .bind(to_ms(at))
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn consume_share(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
        source_ip: &str,
    ) -> MetaResult<Option<Share>> {
        let mut tx = self.writer.begin().await?;
        // One statement: the checks and the decrement cannot be separated by another redeemer.
        let row = sqlx::query(
            "UPDATE shares SET uses_left = uses_left - 1
             WHERE token_hash = ?1 AND revoked_ms IS NULL AND expires_ms > ?2 AND uses_left > 0
               AND (version_id IS NULL OR EXISTS (
                     SELECT 1 FROM objects o
                     WHERE o.bucket = shares.bucket AND o.key = shares.key AND o.version_id = shares.version_id))
             RETURNING *",
        )
        .bind(token_hash)
        .bind(to_ms(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(share) = row.as_ref().map(share_from_row).transpose()? else {
            return Ok(None);
        };
        sqlx::query("INSERT INTO share_grants (share_id, source_ip, granted_ms) VALUES (?, ?, ?)")
            .bind(&share.id)
            .bind(source_ip)
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(share))
    }

    async fn has_grant(&self, share_id: &str, source_ip: &str, since: OffsetDateTime) -> MetaResult<bool> {
        let found: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM share_grants WHERE share_id = ? AND source_ip = ? AND granted_ms >= ? LIMIT 1",
        )
        .bind(share_id)
        .bind(source_ip)
        .bind(to_ms(since))
        .fetch_optional(&self.reader)
        .await?;
        Ok(found.is_some())
    }

    async fn record_audit(&self, event: &AuditEvent) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO audit_events (at_ms, event, share_id, principal, source_ip, user_agent, reason)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(to_ms(event.at))
        .bind(&event.event)
        .bind(&event.share_id)
        .bind(&event.principal)
        .bind(&event.source_ip)
        .bind(&event.user_agent)
        .bind(&event.reason)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_access_key(&self, access_key_id: &str) -> MetaResult<Option<AccessKey>> {
        let row = sqlx::query("SELECT * FROM access_keys WHERE access_key_id = ?")
            .bind(access_key_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            Ok(AccessKey {
                access_key_id: row.try_get("access_key_id")?,
                secret_key: row.try_get("secret_key")?,
                principal: row.try_get("principal")?,
                created: from_ms(row.try_get("created_ms")?),
            })
        })
        .transpose()
    }

    async fn put_access_key(&self, key: &AccessKey) -> MetaResult<()> {
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, secret_key, principal, created_ms) VALUES (?, ?, ?, ?)
             ON CONFLICT (access_key_id) DO UPDATE SET secret_key = excluded.secret_key, principal = excluded.principal",
        )
        .bind(&key.access_key_id)
        .bind(&key.secret_key)
        .bind(&key.principal)
        .bind(to_ms(key.created))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bucket: &str, key: &str, blob: &str) -> ObjectRecord {
        ObjectRecord {
            bucket: bucket.into(),
            key: key.into(),
            version_id: format!("v-{blob}"),
            blob_id: blob.into(),
            size: 3,
            etag: "abc".into(),
            last_modified: OffsetDateTime::now_utc(),
            headers: ContentHeaders::default(),
            user_meta: BTreeMap::new(),
            tags: vec![],
            parts_count: None,
        }
    }

    async fn store_with_bucket(dir: &tempfile::TempDir) -> SqliteStore {
        let store = SqliteStore::open(&dir.path().join("meta.db")).await.unwrap();
        let bucket = Bucket { name: "b".into(), region: "us-east-1".into(), created: OffsetDateTime::now_utc() };
        store.create_bucket(&bucket).await.unwrap();
        store
    }

    #[tokio::test]
    async fn overwrite_releases_the_old_blob_and_prefix_listing_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_bucket(&dir).await;
        store.put_object(&record("b", "a/1", "x1")).await.unwrap();
        assert!(store.released_blobs(10).await.unwrap().is_empty());
        store.put_object(&record("b", "a/1", "x2")).await.unwrap();
        assert_eq!(store.released_blobs(10).await.unwrap(), ["x1"]);
        store.forget_released(&["x1".to_string()]).await.unwrap();
        assert!(store.released_blobs(10).await.unwrap().is_empty());
        store.put_object(&record("b", "a0", "x3")).await.unwrap();
        store.put_object(&record("b", "a/\u{10FFFF}", "x4")).await.unwrap();
        let page = store.list_objects("b", KeyRange { prefix: "a/", after: None, limit: 10 }).await.unwrap();
        let keys: Vec<_> = page.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a/1", "a/\u{10FFFF}"]);
        let after = store.list_objects("b", KeyRange { prefix: "", after: Some("a/1"), limit: 10 }).await.unwrap();
        assert_eq!(after.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["a/\u{10FFFF}", "a0"]);
    }

    #[tokio::test]
    async fn a_second_store_on_the_same_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SqliteStore::open(&dir.path().join("meta.db")).await.unwrap();
        let second = SqliteStore::open(&dir.path().join("meta.db")).await;
        assert!(matches!(second, Err(MetaError::Locked { .. })), "{:?}", second.err());
    }

    #[tokio::test]
    async fn reads_see_every_acknowledged_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_bucket(&dir).await;
        store.put_object(&record("b", "k", "x1")).await.unwrap();
        assert_eq!(store.get_object("b", "k").await.unwrap().unwrap().blob_id, "x1");
        store.put_object(&record("b", "k", "x2")).await.unwrap();
        assert_eq!(store.get_object("b", "k").await.unwrap().unwrap().blob_id, "x2");
        store.set_object_tags("b", "k", &[Tag { key: "a".into(), value: "b".into() }]).await.unwrap();
        assert_eq!(store.get_object("b", "k").await.unwrap().unwrap().tags.len(), 1);
        store.delete_object("b", "k").await.unwrap();
        assert!(store.get_object("b", "k").await.unwrap().is_none());
    }

    fn share(id: &str, hash: &[u8], uses: u32, version: &str) -> Share {
        let now = OffsetDateTime::now_utc();
        Share {
            id: id.into(),
            token_hash: hash.to_vec(),
            method: "GET".into(),
            bucket: "b".into(),
            key: "k".into(),
            version_id: Some(version.into()),
            etag: Some("abc".into()),
            size: Some(3),
            created: now,
            expires: now + time::Duration::hours(1),
            max_uses: uses,
            uses_left: uses,
            allow_cidrs: vec![],
            disposition: "attachment".into(),
            label: None,
            principal: "root".into(),
            revoked: None,
        }
    }

    #[tokio::test]
    async fn shares_are_consumed_atomically_and_only_while_valid() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(store_with_bucket(&dir).await);
        store.put_object(&record("b", "k", "x1")).await.unwrap();
        let version = store.get_object("b", "k").await.unwrap().unwrap().version_id;
        store.create_share(&share("s5", b"h5", 5, &version)).await.unwrap();
        let now = OffsetDateTime::now_utc();
        let attempts: Vec<_> = (0..40)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.consume_share(b"h5", now, "10.0.0.1").await.unwrap().is_some() })
            })
            .collect();
        let mut granted = 0;
        for attempt in attempts {
            granted += usize::from(attempt.await.unwrap());
        }
        assert_eq!(granted, 5);
        assert_eq!(store.get_share("s5").await.unwrap().unwrap().uses_left, 0);
        let minute_ago = now - time::Duration::minutes(1);
        assert!(store.has_grant("s5", "10.0.0.1", minute_ago).await.unwrap());
        assert!(!store.has_grant("s5", "10.0.0.2", minute_ago).await.unwrap());
        assert!(!store.has_grant("s5", "10.0.0.1", now + time::Duration::seconds(1)).await.unwrap());

        store.create_share(&share("s1", b"h1", 1, &version)).await.unwrap();
        let later = now + time::Duration::hours(2);
        assert!(store.consume_share(b"h1", later, "10.0.0.1").await.unwrap().is_none(), "expired");
        assert!(store.revoke_share("s1", now).await.unwrap());
        assert!(!store.revoke_share("s1", now).await.unwrap());
        assert!(store.consume_share(b"h1", now, "10.0.0.1").await.unwrap().is_none(), "revoked");

        store.create_share(&share("s2", b"h2", 1, &version)).await.unwrap();
        store.put_object(&record("b", "k", "x2")).await.unwrap();
        assert!(store.consume_share(b"h2", now, "10.0.0.1").await.unwrap().is_none(), "object replaced");
        assert_eq!(store.get_share("s2").await.unwrap().unwrap().uses_left, 1, "a refusal consumes nothing");
        assert!(store.consume_share(b"unknown", now, "10.0.0.1").await.unwrap().is_none());

        let active = store.list_shares(&ShareFilter { active_at: Some(now), ..Default::default() }).await.unwrap();
        assert_eq!(active.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["s2"]);
        assert_eq!(store.list_shares(&ShareFilter::default()).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn bucket_rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_bucket(&dir).await;
        let again = Bucket { name: "b".into(), region: "us-east-1".into(), created: OffsetDateTime::now_utc() };
        assert!(matches!(store.create_bucket(&again).await, Err(MetaError::BucketAlreadyExists)));
        assert!(matches!(store.put_object(&record("nope", "k", "x")).await, Err(MetaError::NoSuchBucket)));
        store.put_object(&record("b", "k", "x")).await.unwrap();
        assert!(matches!(store.delete_bucket("b").await, Err(MetaError::BucketNotEmpty)));
        assert!(store.delete_object("b", "k").await.unwrap());
        assert!(!store.delete_object("b", "k").await.unwrap());
        assert_eq!(store.released_blobs(10).await.unwrap(), ["x"]);
        store.delete_bucket("b").await.unwrap();
        assert!(store.get_bucket("b").await.unwrap().is_none());
        assert!(matches!(store.put_object(&record("b", "k", "y")).await, Err(MetaError::NoSuchBucket)));
    }

    #[tokio::test]
    async fn completing_an_upload_is_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_bucket(&dir).await;
        let upload = MultipartUpload {
            upload_id: "u1".into(),
            bucket: "b".into(),
            key: "big".into(),
            initiated: OffsetDateTime::now_utc(),
            headers: ContentHeaders::default(),
            user_meta: BTreeMap::new(),
            tags: vec![],
        };
        store.create_upload(&upload).await.unwrap();
        for n in 1..=2 {
            let part = PartRecord {
                upload_id: "u1".into(),
                part_number: n,
                blob_id: format!("p{n}"),
                size: 5,
                etag: "e".into(),
                last_modified: OffsetDateTime::now_utc(),
            };
            store.put_part(&part).await.unwrap();
        }
        store.put_object(&record("b", "big", "old")).await.unwrap();
        store.complete_upload("u1", &record("b", "big", "new")).await.unwrap();
        let mut released = store.released_blobs(10).await.unwrap();
        released.sort();
        assert_eq!(released, ["old", "p1", "p2"]);
        assert!(store.get_upload("u1").await.unwrap().is_none());
        assert!(matches!(store.abort_upload("u1").await, Err(MetaError::NoSuchUpload)));
    }
}
