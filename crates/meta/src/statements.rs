//! Statements both SQL stores run verbatim, with their bind chains.
//!
//! SQLite reads `$N` as a named parameter and numbers parameters by first appearance, so one
//! text serves SQLite and PostgreSQL as long as each `$N` first appears in order. A parameter
//! that may be NULL is first written `CAST($N AS type)`, which both parse and which gives
//! PostgreSQL its type. The macros expand to a `sqlx::query` whose backend is fixed by the
//! executor it is run on.

macro_rules! insert_object {
    () => {
        "INSERT INTO objects (bucket, key, version_id, blob_id, size, etag, modified_ms, headers, user_meta, tags,
           parts_count, versioned, part_sizes, lock_mode, lock_until_ms, legal_hold)"
    };
}

macro_rules! object_values {
    () => {
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    };
}

/// The tail that makes an object insert replace the key's current record.
macro_rules! replace_object {
    () => {
        " ON CONFLICT (bucket, key) DO UPDATE SET
           version_id = excluded.version_id, blob_id = excluded.blob_id, size = excluded.size,
           etag = excluded.etag, modified_ms = excluded.modified_ms, headers = excluded.headers,
           user_meta = excluded.user_meta, tags = excluded.tags, parts_count = excluded.parts_count,
           versioned = excluded.versioned, part_sizes = excluded.part_sizes, seq = NULL,
           lock_mode = excluded.lock_mode, lock_until_ms = excluded.lock_until_ms, legal_hold = excluded.legal_hold,
           sensitivity = NULL, scan_partial = false, sensitivity_tagged = false, quarantined = false"
    };
}

/// Writes an object record, replacing the key's current one.
pub(crate) const UPSERT_OBJECT: &str = concat!(insert_object!(), object_values!(), replace_object!());

/// Writes an object record only if the key has none (no row affected otherwise).
pub(crate) const INSERT_NEW_OBJECT: &str =
    concat!(insert_object!(), object_values!(), " ON CONFLICT (bucket, key) DO NOTHING");

/// SQLite: writes the object records of a JSON array (see `batch::object_json`), each replacing
/// its key's current one, in array order (so of two records for one key, the later stays). The
/// `WHERE true` tells SQLite's parser that `ON CONFLICT` belongs to the insert, not to a join.
pub(crate) const UPSERT_OBJECTS_JSON: &str = concat!(
    insert_object!(),
    " SELECT value ->> 'b', value ->> 'k', value ->> 'v', value ->> 'o', value ->> 's', value ->> 'e',
       value ->> 'm', value ->> 'h', value ->> 'u', value ->> 't', value ->> 'p', value ->> 'x', value ->> 'z',
       value ->> 'lm', value ->> 'lu', value ->> 'lh'
     FROM json_each($1) WHERE true",
    replace_object!()
);

/// `sqlx::query(statement)` (one of the object inserts above) bound to an `&ObjectRecord`; `?`
/// on encoding errors.
macro_rules! write_object {
    ($statement:expr, $record:expr) => {{
        let record: &$crate::ObjectRecord = $record;
        sqlx::query($statement)
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
            .bind(record.versioned)
            .bind($crate::rows::part_sizes_text(&record.part_sizes)?)
            .bind($crate::rows::lock_columns(&record.lock).0)
            .bind($crate::rows::lock_columns(&record.lock).1)
            .bind($crate::rows::lock_columns(&record.lock).2)
    }};
}
pub(crate) use write_object;

/// Creates a bucket (`&Bucket`) unless one has its name (no row affected then).
macro_rules! insert_bucket {
    ($bucket:expr) => {{
        let bucket: &$crate::Bucket = $bucket;
        sqlx::query(
            "INSERT INTO buckets (name, region, created_ms, versioning, object_lock) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(&bucket.name)
        .bind(&bucket.region)
        .bind($crate::rows::to_ms(bucket.created))
        .bind(bucket.versioning.map($crate::Versioning::as_str))
        .bind(bucket.object_lock.as_ref().map(serde_json::to_string).transpose()?)
    }};
}
pub(crate) use insert_bucket;

/// A row when the bucket `$1` holds any version (current, noncurrent or delete marker).
pub(crate) const ANY_VERSION: &str = "SELECT 1 WHERE EXISTS (SELECT 1 FROM objects WHERE bucket = $1)
     OR EXISTS (SELECT 1 FROM object_versions WHERE bucket = $1)";

pub(crate) const INSERT_UPLOAD: &str =
    "INSERT INTO uploads (upload_id, bucket, key, initiated_ms, headers, user_meta, tags,
       lock_mode, lock_until_ms, legal_hold) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

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
            .bind($crate::rows::lock_columns(&upload.lock).0)
            .bind($crate::rows::lock_columns(&upload.lock).1)
            .bind($crate::rows::lock_columns(&upload.lock).2)
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
       max_uses, uses_left, allow_cidrs, disposition, label, principal, revoked_ms, key_is_prefix, max_size,
       content_types, redirect, principal_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
       CAST($22 AS TEXT))";

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
            .bind(share.key_is_prefix)
            .bind(share.max_size.map($crate::rows::to_i64))
            .bind(serde_json::to_string(&share.content_types)?)
            .bind(share.redirect)
            .bind(&share.principal_id)
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

/// The statement that takes one use of a link per job and returns the shares it took a use of.
/// Each store says where a job's values come from: bound parameters (SQLite, one job) or the
/// columns of a row `j` named in `from` (PostgreSQL, arrays of jobs). One statement decides and
/// decrements, so no other redeemer can come between the check and the use. The link must have
/// the job's method, must not be revoked or expired, must have uses left, and the object version
/// it was made for must still exist (current, or kept by versioning), not be quarantined, and its
/// key must not have been deleted since (a delete marker on top);
/// unless the caller has checked the address against the
/// link's allow-list (`address_checked`), only a link without one is taken. The grantee columns
/// it sets feed the `share_use_recorded` trigger, which records the grant and its
/// `share.redeemed` audit event within the statement. `returning` names the share's columns:
/// `*` on SQLite (which refuses `shares.*`), `shares.*` on PostgreSQL (whose `*` would add the
/// job's).
macro_rules! take_uses_sql {
    (from: $from:literal, now_ms: $now:literal, ip: $ip:literal, ua: $ua:literal, token_hash: $hash:literal,
     method: $method:literal, address_checked: $checked:literal, returning: $returning:literal) => {
        concat!(
            "UPDATE shares SET uses_left = shares.uses_left - 1, grant_ms = ",
            $now,
            ", grant_ip = ",
            $ip,
            ", grant_ua = ",
            $ua,
            $from,
            " WHERE shares.token_hash = ",
            $hash,
            " AND shares.expires_ms > ",
            $now,
            " AND shares.method = ",
            $method,
            " AND (",
            $checked,
            " OR shares.allow_cidrs = '[]') AND shares.revoked_ms IS NULL
               AND shares.uses_left > 0
               AND (shares.version_id IS NULL OR (EXISTS (
                     SELECT 1 FROM objects o WHERE o.bucket = shares.bucket AND o.key = shares.key)
                   AND (EXISTS (
                     SELECT 1 FROM objects o
                     WHERE o.bucket = shares.bucket AND o.key = shares.key AND o.version_id = shares.version_id
                       AND NOT o.quarantined) OR EXISTS (
                     SELECT 1 FROM object_versions v
                     WHERE v.bucket = shares.bucket AND v.key = shares.key AND v.version_id = shares.version_id
                       AND NOT v.delete_marker AND NOT v.quarantined))))
             RETURNING ",
            $returning
        )
    };
}
pub(crate) use take_uses_sql;

/// `sqlx::query` with `$text`, each `$arg` bound in order.
macro_rules! bound {
    ($text:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query($text)$(.bind($arg))*
    };
}
pub(crate) use bound;

/// Objects of `$bucket` in `$range: KeyRange`, in key order.
macro_rules! list_objects {
    ($bucket:expr, $range:expr) => {{
        let range: $crate::KeyRange<'_> = $range;
        $crate::statements::bound!(
            "SELECT * FROM objects WHERE bucket = $1 AND key >= $2 AND (CAST($3 AS TEXT) IS NULL OR key < $3)
             AND (CAST($4 AS TEXT) IS NULL OR key > $4) AND (CAST($5 AS TEXT) IS NULL OR key >= $5)
             ORDER BY key LIMIT $6",
            $bucket,
            range.prefix,
            $crate::prefix_successor(range.prefix),
            range.after,
            range.from,
            i64::from(range.limit),
        )
    }};
}
pub(crate) use list_objects;

macro_rules! set_object_tags {
    ($bucket:expr, $key:expr, $tags:expr) => {
        $crate::statements::bound!(
            "UPDATE objects SET tags = $1 WHERE bucket = $2 AND key = $3",
            serde_json::to_string($tags)?,
            $bucket,
            $key,
        )
    };
}
pub(crate) use set_object_tags;

/// Parts of `$upload_id` numbered above `$after`, at most `$limit`.
macro_rules! list_parts {
    ($upload_id:expr, $after:expr, $limit:expr) => {
        $crate::statements::bound!(
            "SELECT * FROM upload_parts WHERE upload_id = $1 AND part_number > $2 ORDER BY part_number LIMIT $3",
            $upload_id,
            i64::from($after),
            i64::from($limit),
        )
    };
}
pub(crate) use list_parts;

/// Open uploads of `$bucket` in `$range: KeyRange`, after the (key, upload id) marker.
macro_rules! list_uploads {
    ($bucket:expr, $range:expr, $upload_id_marker:expr) => {{
        let range: $crate::KeyRange<'_> = $range;
        $crate::statements::bound!(
            "SELECT * FROM uploads WHERE bucket = $1 AND key >= $2 AND (CAST($3 AS TEXT) IS NULL OR key < $3)
             AND (CAST($4 AS TEXT) IS NULL OR key > $4
                  OR (key = $4 AND CAST($5 AS TEXT) IS NOT NULL AND upload_id > $5))
             AND (CAST($6 AS TEXT) IS NULL OR key >= $6)
             ORDER BY key, upload_id LIMIT $7",
            $bucket,
            range.prefix,
            $crate::prefix_successor(range.prefix),
            range.after,
            $upload_id_marker,
            range.from,
            i64::from(range.limit),
        )
    }};
}
pub(crate) use list_uploads;

/// Shares that `$filter: &ShareFilter` selects, oldest first, each with `object_current`: whether
/// the object version it was made for still exists and its key was not deleted since (always,
/// for upload links). An active share
/// also has its object.
macro_rules! list_shares {
    ($filter:expr) => {{
        let filter: &$crate::ShareFilter = $filter;
        let prefix = filter.prefix.as_deref().unwrap_or_default();
        $crate::statements::bound!(
            "SELECT * FROM (SELECT *, (version_id IS NULL OR (EXISTS (SELECT 1 FROM objects o
                 WHERE o.bucket = shares.bucket AND o.key = shares.key) AND (EXISTS (SELECT 1 FROM objects o
                 WHERE o.bucket = shares.bucket AND o.key = shares.key AND o.version_id = shares.version_id)
                 OR EXISTS (SELECT 1 FROM object_versions v WHERE v.bucket = shares.bucket AND v.key = shares.key
                   AND v.version_id = shares.version_id AND NOT v.delete_marker))))
                 AS object_current FROM shares) s
             WHERE (CAST($1 AS TEXT) IS NULL OR bucket = $1) AND key >= $2
               AND (CAST($3 AS TEXT) IS NULL OR key < $3)
               AND (CAST($4 AS BIGINT) IS NULL
                    OR (revoked_ms IS NULL AND expires_ms > $4 AND uses_left > 0 AND object_current))
             ORDER BY created_ms, id",
            &filter.bucket,
            prefix,
            $crate::prefix_successor(prefix),
            filter.active_at.map($crate::rows::to_ms),
        )
    }};
}
pub(crate) use list_shares;

macro_rules! revoke_share {
    ($id:expr, $at:expr) => {
        $crate::statements::bound!(
            "UPDATE shares SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL",
            $crate::rows::to_ms($at),
            $id,
        )
    };
}
pub(crate) use revoke_share;

/// Deletes shares that stopped being redeemable before `$before` (their grants cascade).
macro_rules! purge_shares {
    ($before:expr) => {
        $crate::statements::bound!(
            "DELETE FROM shares WHERE expires_ms <= $1 OR (revoked_ms IS NOT NULL AND revoked_ms <= $1)
               OR (uses_left = 0 AND NOT EXISTS (
                     SELECT 1 FROM share_grants g WHERE g.share_id = shares.id AND g.granted_ms > $1))",
            $crate::rows::to_ms($before),
        )
    };
}
pub(crate) use purge_shares;

/// Deletes the audit events up to the last digest made before `$before` (so, recorded before
/// then): the chain that remains starts right after a signed hash, without holes. Unlinked
/// events stay.
macro_rules! purge_audit {
    ($before:expr) => {
        $crate::statements::bound!(
            "DELETE FROM audit_events
             WHERE chain_pos <= (SELECT COALESCE(MAX(last_pos), 0) FROM audit_digests WHERE at_ms < $1)",
            $crate::rows::to_ms($before)
        )
    };
}
pub(crate) use purge_audit;

/// The grant `$to: &Grantee` (same address and User-Agent) received of `$share_id` at or after
/// `$since` (a row, or none).
macro_rules! find_grant {
    ($share_id:expr, $to:expr, $since:expr) => {{
        let to: &$crate::Grantee = $to;
        $crate::statements::bound!(
            "SELECT share_id FROM share_grants
             WHERE share_id = $1 AND source_ip = $2 AND COALESCE(user_agent, '') = $3 AND granted_ms >= $4 LIMIT 1",
            $share_id,
            &to.source_ip,
            to.user_agent.as_deref().unwrap_or_default(),
            $crate::rows::to_ms($since),
        )
    }};
}
pub(crate) use find_grant;

/// Adds `bytes` to the bytes served under the latest grant of `share_id` to `to` made at or
/// after `since` that stays within `budget` with them, while the share is neither revoked nor
/// expired at `now` (all from `$request: &GrantRequest`); returns that grant's `granted_ms` (or
/// no row). The budget is re-checked on the row itself, so racing resumes cannot overdraw it.
macro_rules! reserve_grant {
    ($request:expr) => {{
        let request: &$crate::GrantRequest<'_> = $request;
        let to = request.to;
        $crate::statements::bound!(
            "UPDATE share_grants SET bytes_served = bytes_served + $1
             WHERE share_id = $2 AND source_ip = $3 AND COALESCE(user_agent, '') = $4
               AND bytes_served + $1 <= $5
               AND granted_ms = (SELECT MAX(g.granted_ms) FROM share_grants g
                   WHERE g.share_id = $2 AND g.source_ip = $3 AND COALESCE(g.user_agent, '') = $4
                     AND g.granted_ms >= $6 AND g.bytes_served + $1 <= $5)
               AND EXISTS (SELECT 1 FROM shares s WHERE s.id = $2 AND s.revoked_ms IS NULL AND s.expires_ms > $7)
             RETURNING granted_ms",
            $crate::rows::to_i64(request.bytes),
            request.share_id,
            &to.source_ip,
            to.user_agent.as_deref().unwrap_or_default(),
            $crate::rows::to_i64(request.budget),
            $crate::rows::to_ms(request.since),
            $crate::rows::to_ms(request.now),
        )
    }};
}
pub(crate) use reserve_grant;

/// Gives back `$bytes` reserved under the grant of `$share_id` to `$to` made at `$granted` but
/// never sent. Grants are told apart by client and millisecond only, so two grants of one client
/// in one millisecond share refunds; never below zero, so a refund cannot add budget.
macro_rules! refund_grant {
    ($share_id:expr, $to:expr, $granted:expr, $bytes:expr) => {{
        let to: &$crate::Grantee = $to;
        $crate::statements::bound!(
            "UPDATE share_grants SET bytes_served = CASE WHEN bytes_served > $1 THEN bytes_served - $1 ELSE 0 END
             WHERE share_id = $2 AND source_ip = $3 AND COALESCE(user_agent, '') = $4 AND granted_ms = $5",
            $crate::rows::to_i64($bytes),
            $share_id,
            &to.source_ip,
            to.user_agent.as_deref().unwrap_or_default(),
            $crate::rows::to_ms($granted),
        )
    }};
}
pub(crate) use refund_grant;
