//! Decoding rows into records, the same for every SQL backend; and how times and sizes are
//! stored (milliseconds and sizes as signed 64-bit integers, which both backends have).

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use crate::{
    Bucket, ListedShare, LockMode, MetaResult, MfaDeleteDevice, MultipartUpload, ObjectLock, ObjectRecord,
    ObjectVersion, PartRecord, Retention, ScanStatus, Sensitivity, Share, Versioning,
};

/// Typed column access that both backends' rows provide.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> MetaResult<String>;
    fn opt_text(&self, column: &str) -> MetaResult<Option<String>>;
    fn int(&self, column: &str) -> MetaResult<i64>;
    fn opt_int(&self, column: &str) -> MetaResult<Option<i64>>;
    fn bytes(&self, column: &str) -> MetaResult<Vec<u8>>;
    fn flag(&self, column: &str) -> MetaResult<bool>;
    fn opt_flag(&self, column: &str) -> MetaResult<Option<bool>>;
}

macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> MetaResult<String> {
                Ok(self.try_get(column)?)
            }
            fn opt_text(&self, column: &str) -> MetaResult<Option<String>> {
                Ok(self.try_get(column)?)
            }
            fn int(&self, column: &str) -> MetaResult<i64> {
                Ok(self.try_get(column)?)
            }
            fn opt_int(&self, column: &str) -> MetaResult<Option<i64>> {
                Ok(self.try_get(column)?)
            }
            fn bytes(&self, column: &str) -> MetaResult<Vec<u8>> {
                Ok(self.try_get(column)?)
            }
            fn flag(&self, column: &str) -> MetaResult<bool> {
                Ok(self.try_get(column)?)
            }
            fn opt_flag(&self, column: &str) -> MetaResult<Option<bool>> {
                Ok(self.try_get(column)?)
            }
        }
    };
}
columns_for!(SqliteRow);
columns_for!(PgRow);

/// A row's columns under a name prefix: `Prefixed(row, "object_")` reads `object_size` as `size`,
/// so that one row can carry two records.
pub(crate) struct Prefixed<'a, R>(pub &'a R, pub &'static str);

impl<R: Columns> Columns for Prefixed<'_, R> {
    fn text(&self, column: &str) -> MetaResult<String> {
        self.0.text(&format!("{}{column}", self.1))
    }
    fn opt_text(&self, column: &str) -> MetaResult<Option<String>> {
        self.0.opt_text(&format!("{}{column}", self.1))
    }
    fn int(&self, column: &str) -> MetaResult<i64> {
        self.0.int(&format!("{}{column}", self.1))
    }
    fn opt_int(&self, column: &str) -> MetaResult<Option<i64>> {
        self.0.opt_int(&format!("{}{column}", self.1))
    }
    fn bytes(&self, column: &str) -> MetaResult<Vec<u8>> {
        self.0.bytes(&format!("{}{column}", self.1))
    }
    fn flag(&self, column: &str) -> MetaResult<bool> {
        self.0.flag(&format!("{}{column}", self.1))
    }
    fn opt_flag(&self, column: &str) -> MetaResult<Option<bool>> {
        self.0.opt_flag(&format!("{}{column}", self.1))
    }
}

/// A multipart object's part sizes as stored: a JSON array, or NULL when there are none.
pub(crate) fn part_sizes_text(sizes: &[u64]) -> MetaResult<Option<String>> {
    Ok(if sizes.is_empty() { None } else { Some(serde_json::to_string(sizes)?) })
}

pub(crate) fn to_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(crate) fn bucket_from_row(row: &impl Columns) -> MetaResult<Bucket> {
    Ok(Bucket {
        name: row.text("name")?,
        region: row.text("region")?,
        created: from_ms(row.int("created_ms")?),
        versioning: row.opt_text("versioning")?.as_deref().and_then(Versioning::parse),
        object_lock: row.opt_text("object_lock")?.as_deref().map(serde_json::from_str).transpose()?,
        mfa_delete: match row.opt_text("mfa_delete_device")? {
            Some(serial) => Some(MfaDeleteDevice { serial, created_ms: row.int("mfa_delete_device_created_ms")? }),
            None => None,
        },
    })
}

/// A version's (or an upload's) Object Lock columns: `lock_mode`, `lock_until_ms`, `legal_hold`.
pub(crate) fn lock_from_row(row: &impl Columns) -> MetaResult<ObjectLock> {
    let mode = row.opt_text("lock_mode")?.as_deref().and_then(LockMode::parse);
    let until = row.opt_int("lock_until_ms")?;
    Ok(ObjectLock {
        retention: mode.zip(until).map(|(mode, until)| Retention { mode, until: from_ms(until) }),
        legal_hold: row.opt_flag("legal_hold")?,
    })
}

/// The Object Lock columns' values, as [`lock_from_row`] reads them.
pub(crate) fn lock_columns(lock: &ObjectLock) -> (Option<&'static str>, Option<i64>, Option<bool>) {
    (lock.retention.map(|r| r.mode.as_str()), lock.retention.map(|r| to_ms(r.until)), lock.legal_hold)
}

pub(crate) fn object_from_row(row: &impl Columns) -> MetaResult<ObjectRecord> {
    let headers = row.text("headers")?;
    let user_meta = row.text("user_meta")?;
    let tags = row.text("tags")?;
    let parts = row.opt_int("parts_count")?;
    Ok(ObjectRecord {
        bucket: row.text("bucket")?,
        key: row.text("key")?,
        version_id: row.text("version_id")?,
        versioned: row.flag("versioned")?,
        blob_id: row.text("blob_id")?,
        size: to_u64(row.int("size")?),
        etag: row.text("etag")?,
        last_modified: from_ms(row.int("modified_ms")?),
        headers: serde_json::from_str(&headers)?,
        user_meta: serde_json::from_str(&user_meta)?,
        tags: serde_json::from_str(&tags)?,
        parts_count: parts.and_then(|n| u32::try_from(n).ok()),
        part_sizes: match row.opt_text("part_sizes")? {
            Some(text) => serde_json::from_str(&text)?,
            None => Vec::new(),
        },
        scan: ScanStatus {
            sensitivity: row.opt_text("sensitivity")?.as_deref().and_then(Sensitivity::parse),
            partial: row.flag("scan_partial")?,
            tagged: row.flag("sensitivity_tagged")?,
            quarantined: row.flag("quarantined")?,
        },
        lock: lock_from_row(row)?,
    })
}

/// A row of `object_versions` (or of `objects`, with `delete_marker` false and `latest` true):
/// `latest` comes from the query's `latest` column.
pub(crate) fn version_from_row(row: &impl Columns) -> MetaResult<ObjectVersion> {
    Ok(ObjectVersion {
        record: object_from_row(row)?,
        delete_marker: row.flag("delete_marker")?,
        latest: row.flag("latest")?,
        seq: row.int("seq")?,
        current: row.flag("current")?,
    })
}

pub(crate) fn upload_from_row(row: &impl Columns) -> MetaResult<MultipartUpload> {
    let headers = row.text("headers")?;
    let user_meta = row.text("user_meta")?;
    let tags = row.text("tags")?;
    Ok(MultipartUpload {
        upload_id: row.text("upload_id")?,
        bucket: row.text("bucket")?,
        key: row.text("key")?,
        initiated: from_ms(row.int("initiated_ms")?),
        headers: serde_json::from_str(&headers)?,
        user_meta: serde_json::from_str(&user_meta)?,
        tags: serde_json::from_str(&tags)?,
        lock: lock_from_row(row)?,
    })
}

pub(crate) fn share_from_row(row: &impl Columns) -> MetaResult<Share> {
    let cidrs = row.text("allow_cidrs")?;
    let content_types = row.text("content_types")?;
    let size = row.opt_int("size")?;
    let revoked = row.opt_int("revoked_ms")?;
    let max_uses = row.int("max_uses")?;
    let uses_left = row.int("uses_left")?;
    Ok(Share {
        id: row.text("id")?,
        token_hash: row.bytes("token_hash")?,
        method: row.text("method")?,
        bucket: row.text("bucket")?,
        key: row.text("key")?,
        key_is_prefix: row.flag("key_is_prefix")?,
        version_id: row.opt_text("version_id")?,
        etag: row.opt_text("etag")?,
        size: size.map(to_u64),
        created: from_ms(row.int("created_ms")?),
        expires: from_ms(row.int("expires_ms")?),
        max_uses: u32::try_from(max_uses).unwrap_or(0),
        uses_left: u32::try_from(uses_left).unwrap_or(0),
        allow_cidrs: serde_json::from_str(&cidrs)?,
        disposition: row.text("disposition")?,
        label: row.opt_text("label")?,
        principal: row.text("principal")?,
        principal_id: row.opt_text("principal_id")?,
        revoked: revoked.map(from_ms),
        max_size: row.opt_int("max_size")?.map(to_u64),
        content_types: serde_json::from_str(&content_types)?,
        redirect: row.flag("redirect")?,
    })
}

pub(crate) fn listed_share_from_row(row: &impl Columns) -> MetaResult<ListedShare> {
    Ok(ListedShare { share: share_from_row(row)?, object_current: row.flag("object_current")? })
}

pub(crate) fn part_from_row(row: &impl Columns) -> MetaResult<PartRecord> {
    Ok(PartRecord {
        upload_id: row.text("upload_id")?,
        part_number: i32::try_from(row.int("part_number")?).unwrap_or(0),
        blob_id: row.text("blob_id")?,
        size: to_u64(row.int("size")?),
        etag: row.text("etag")?,
        last_modified: from_ms(row.int("modified_ms")?),
    })
}
