//! Write statements both SQL stores run verbatim, with their bind chains.
//!
//! SQLite reads `$N` as a named parameter and numbers parameters by first appearance, so one
//! text serves SQLite and PostgreSQL as long as each `$N` first appears in order. The macros
//! expand to a `sqlx::query` whose backend is fixed by the executor it is run on.

pub(crate) const UPSERT_OBJECT: &str =
    "INSERT INTO objects (bucket, key, version_id, blob_id, size, etag, modified_ms, headers, user_meta, tags, parts_count)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (bucket, key) DO UPDATE SET
       version_id = excluded.version_id, blob_id = excluded.blob_id, size = excluded.size,
       etag = excluded.etag, modified_ms = excluded.modified_ms, headers = excluded.headers,
       user_meta = excluded.user_meta, tags = excluded.tags, parts_count = excluded.parts_count";

/// `sqlx::query(UPSERT_OBJECT)` bound to an `&ObjectRecord`; `?` on encoding errors.
macro_rules! upsert_object {
    ($record:expr) => {{
        let record: &$crate::ObjectRecord = $record;
        sqlx::query($crate::statements::UPSERT_OBJECT)
            .bind(&record.bucket)
            .bind(&record.key)
            .bind(&record.version_id)
            .bind(&record.blob_id)
            .bind($crate::rows::to_i64(record.size))
            .bind(&record.etag)
            .bind($crate::rows::to_ms(record.last_modified))
            .bind(serde_json::to_string(&record.headers)?)
            .bind(serde_json::to_string(&record.user_meta)?)
            .bind(serde_json::to_string(&record.tags)?)
            .bind(record.parts_count.map(i64::from))
    }};
}
pub(crate) use upsert_object;

pub(crate) const INSERT_UPLOAD: &str = "INSERT INTO uploads (upload_id, bucket, key, initiated_ms, headers, user_meta, tags) VALUES ($1, $2, $3, $4, $5, $6, $7)";

macro_rules! insert_upload {
    ($upload:expr) => {{
        let upload: &$crate::MultipartUpload = $upload;
        sqlx::query($crate::statements::INSERT_UPLOAD)
            .bind(&upload.upload_id)
            .bind(&upload.bucket)
            .bind(&upload.key)
            .bind($crate::rows::to_ms(upload.initiated))
            .bind(serde_json::to_string(&upload.headers)?)
            .bind(serde_json::to_string(&upload.user_meta)?)
            .bind(serde_json::to_string(&upload.tags)?)
    }};
}
pub(crate) use insert_upload;

pub(crate) const UPSERT_PART: &str =
    "INSERT INTO upload_parts (upload_id, part_number, blob_id, size, etag, modified_ms) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (upload_id, part_number) DO UPDATE SET
       blob_id = excluded.blob_id, size = excluded.size, etag = excluded.etag, modified_ms = excluded.modified_ms";

macro_rules! upsert_part {
    ($part:expr) => {{
        let part: &$crate::PartRecord = $part;
        sqlx::query($crate::statements::UPSERT_PART)
            .bind(&part.upload_id)
            .bind(i64::from(part.part_number))
            .bind(&part.blob_id)
            .bind($crate::rows::to_i64(part.size))
            .bind(&part.etag)
            .bind($crate::rows::to_ms(part.last_modified))
    }};
}
pub(crate) use upsert_part;

pub(crate) const INSERT_SHARE: &str =
    "INSERT INTO shares (id, token_hash, method, bucket, key, version_id, etag, size, created_ms, expires_ms,
       max_uses, uses_left, allow_cidrs, disposition, label, principal, revoked_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

macro_rules! insert_share {
    ($share:expr) => {{
        let share: &$crate::Share = $share;
        sqlx::query($crate::statements::INSERT_SHARE)
            .bind(&share.id)
            .bind(&share.token_hash)
            .bind(&share.method)
            .bind(&share.bucket)
            .bind(&share.key)
            .bind(&share.version_id)
            .bind(&share.etag)
            .bind(share.size.map($crate::rows::to_i64))
            .bind($crate::rows::to_ms(share.created))
            .bind($crate::rows::to_ms(share.expires))
            .bind(i64::from(share.max_uses))
            .bind(i64::from(share.uses_left))
            .bind(serde_json::to_string(&share.allow_cidrs)?)
            .bind(&share.disposition)
            .bind(&share.label)
            .bind(&share.principal)
            .bind(share.revoked.map($crate::rows::to_ms))
    }};
}
pub(crate) use insert_share;

pub(crate) const INSERT_AUDIT: &str =
    "INSERT INTO audit_events (at_ms, event, share_id, principal, source_ip, user_agent, reason)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

macro_rules! insert_audit {
    ($event:expr) => {{
        let event: &$crate::AuditEvent = $event;
        sqlx::query($crate::statements::INSERT_AUDIT)
            .bind($crate::rows::to_ms(event.at))
            .bind(&event.event)
            .bind(&event.share_id)
            .bind(&event.principal)
            .bind(&event.source_ip)
            .bind(&event.user_agent)
            .bind(&event.reason)
    }};
}
pub(crate) use insert_audit;
