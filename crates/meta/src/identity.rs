//! The identity store: the IAM directory (users, groups, roles, managed policies), access keys,
//! virtual MFA devices and STS sessions, behind [`IdentityStore`].
//!
//! Directory entries are JSON documents that the identity crate owns; the store keeps them
//! opaque, keyed by kind and case-folded name (IAM names are unique regardless of case), with a
//! revision for optimistic read-modify-write. Every change to the directory or to access keys
//! bumps one generation counter in the same transaction; on PostgreSQL a trigger turns the bump
//! into a `NOTIFY`, so every replica reloads its in-memory directory at once
//! ([`IdentityStore::directory_changes`]). Secrets arrive sealed (encrypted under the server's
//! master key) and are stored as given.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::MetaResult;
use crate::rows::{Columns, from_ms};

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    User,
    Group,
    Role,
    Policy,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::Role => "role",
            Self::Policy => "policy",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user" => Self::User,
            "group" => Self::Group,
            "role" => Self::Role,
            "policy" => Self::Policy,
            _ => return None,
        })
    }
}

/// One directory entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub kind: EntryKind,
    pub name: String,
    /// The entry's JSON document.
    pub body: String,
    /// Starts at 1; each write adds one.
    pub revision: i64,
}

/// An IAM user's access key. `secret_sealed` is the secret encrypted under the master key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredAccessKey {
    pub access_key_id: String,
    pub user_name: String,
    pub secret_sealed: Vec<u8>,
    pub active: bool,
    pub created: OffsetDateTime,
    pub last_used: Option<OffsetDateTime>,
    pub last_used_service: Option<String>,
}

impl std::fmt::Debug for StoredAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("user_name", &self.user_name)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// A virtual MFA device. Its seed is sealed; `last_step` is the TOTP time step of the last code
/// accepted, so that no code is accepted twice; `failures` counts wrong codes since
/// `failures_since`, for every replica alike.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaDevice {
    /// The device's ARN (`arn:aws:iam::ACCOUNT:mfa/NAME`), as AWS calls it.
    pub serial: String,
    pub seed_sealed: Vec<u8>,
    pub created: OffsetDateTime,
    /// The user it is enabled for, and when.
    pub user_name: Option<String>,
    pub enabled: Option<OffsetDateTime>,
    pub last_step: i64,
    pub failures: i64,
    pub failures_since: OffsetDateTime,
}

impl MfaDevice {
    /// A new device, enabled for no one, that has accepted no code.
    pub fn new(serial: String, seed_sealed: Vec<u8>, created: OffsetDateTime) -> MfaDevice {
        MfaDevice {
            serial,
            seed_sealed,
            created,
            user_name: None,
            enabled: None,
            last_step: 0,
            failures: 0,
            failures_since: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

impl std::fmt::Debug for MfaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaDevice")
            .field("serial", &self.serial)
            .field("user_name", &self.user_name)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// An STS session: temporary credentials. Only a hash of the session token is kept; `body` is
/// the identity crate's JSON (who, MFA, session policy, tags).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub access_key_id: String,
    pub secret_sealed: Vec<u8>,
    pub token_hash: Vec<u8>,
    pub body: String,
    pub issued: OffsetDateTime,
    pub expires: OffsetDateTime,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Everything the in-memory directory is built from, read in one transaction.
#[derive(Debug, Clone)]
pub struct DirectorySnapshot {
    pub generation: i64,
    pub entries: Vec<DirectoryEntry>,
    pub access_keys: Vec<StoredAccessKey>,
}

/// Seals a legacy key's secret: `(access_key_id, secret) -> sealed bytes`.
pub type Sealer<'a> = dyn Fn(&str, &str) -> Vec<u8> + Send + Sync + 'a;

/// How a conditional directory write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryWrite {
    /// Written; the entry's new revision.
    Written(i64),
    /// The entry exists although none was expected, or its revision is not the one expected
    /// (someone else wrote it meanwhile), or it is gone.
    Conflict,
}

/// An access key that could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// The user has two keys already.
    LimitExceeded,
    /// The id exists.
    DuplicateId,
}

#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// The directory and the access keys as of one moment.
    async fn load_directory(&self) -> MetaResult<DirectorySnapshot>;
    /// Bumped by every change to the directory or to access keys, on any replica; a receiver
    /// sees the latest value (this process's own changes as soon as they commit; other
    /// replicas' through PostgreSQL notifications, and after a lost notification connection).
    fn directory_changes(&self) -> tokio::sync::watch::Receiver<u64>;

    async fn get_entry(&self, kind: EntryKind, name: &str) -> MetaResult<Option<DirectoryEntry>>;
    /// Writes `body` under `name` if the entry's revision is `expected` (`None`: if there is no
    /// entry of this kind whose name equals `name` regardless of case).
    async fn put_entry(&self, kind: EntryKind, name: &str, body: &str, expected: Option<i64>)
    -> MetaResult<EntryWrite>;
    /// Deletes the entry if its revision is `expected`; `false` otherwise.
    async fn delete_entry(&self, kind: EntryKind, name: &str, expected: i64) -> MetaResult<bool>;
    /// Renames user `old` (at revision `expected`) to `new` with `body`, in one transaction that
    /// also moves its access keys and MFA devices, which name their user. `Conflict` when the
    /// user is not at `expected` (or gone) or another user has the new name (any case).
    async fn rename_user(&self, old: &str, new: &str, body: &str, expected: i64) -> MetaResult<EntryWrite>;

    /// Creates a key; refused when its user has two keys already or the id exists.
    async fn create_access_key(&self, key: &StoredAccessKey) -> MetaResult<Result<(), KeyRefusal>>;
    /// `false` when there is no such key.
    async fn set_access_key_active(&self, access_key_id: &str, active: bool) -> MetaResult<bool>;
    /// `false` when there is no such key.
    async fn delete_access_key(&self, access_key_id: &str) -> MetaResult<bool>;
    /// Records when keys were last used (and for which service); later times only.
    async fn record_key_use(&self, uses: &[(String, OffsetDateTime, String)]) -> MetaResult<()>;

    /// Creates a device; `false` when one with this serial exists.
    async fn create_mfa_device(&self, device: &MfaDevice) -> MetaResult<bool>;
    async fn get_mfa_device(&self, serial: &str) -> MetaResult<Option<MfaDevice>>;
    async fn list_mfa_devices(&self) -> MetaResult<Vec<MfaDevice>>;
    /// Enables a device that is not enabled for anyone, for `user_name`, recording `step` as used;
    /// `false` when there is no such device or it is enabled already.
    async fn enable_mfa_device(&self, serial: &str, user_name: &str, at: OffsetDateTime, step: i64)
    -> MetaResult<bool>;
    /// Detaches a device from `user_name`; `false` when it is not enabled for that user.
    async fn deactivate_mfa_device(&self, serial: &str, user_name: &str) -> MetaResult<bool>;
    /// Deletes a device that is not enabled; `false` when it does not exist or is enabled.
    async fn delete_mfa_device(&self, serial: &str) -> MetaResult<bool>;
    /// Spends TOTP time step `step` of the device: `true` only if `step` is later than every step
    /// spent before (atomically, across replicas), so each code is accepted once.
    async fn spend_mfa_step(&self, serial: &str, step: i64) -> MetaResult<bool>;
    /// Takes one of the `max` attempts the device allows per `window` (atomically, across
    /// replicas, before the code is checked, so concurrent guesses cannot all slip through): the
    /// count starts again from one when the attempts counted began `window` or longer before
    /// `at`. `false` when the device has no attempt left (or does not exist).
    async fn reserve_mfa_attempt(
        &self,
        serial: &str,
        at: OffsetDateTime,
        window: std::time::Duration,
        max: i64,
    ) -> MetaResult<bool>;
    /// Gives back the attempt a right code took, so that using a device does not lock it.
    async fn refund_mfa_attempt(&self, serial: &str) -> MetaResult<()>;

    async fn create_session(&self, session: &SessionRecord) -> MetaResult<()>;
    async fn get_session(&self, access_key_id: &str) -> MetaResult<Option<SessionRecord>>;
    /// Deletes sessions that expired before `before`; returns how many.
    async fn purge_sessions(&self, before: OffsetDateTime) -> MetaResult<u64>;

    /// Records `fingerprint` as the master key's if none is recorded; `false` when another is.
    async fn claim_master_key(&self, fingerprint: &str) -> MetaResult<bool>;
    /// Moves the keys of the pre-IAM `access_keys` table, whose secrets are plaintext, into the
    /// key table with each secret sealed by `seal(access_key_id, secret)`, in one transaction;
    /// returns how many moved.
    async fn adopt_legacy_keys(&self, seal: &Sealer<'_>) -> MetaResult<u64>;
}

/// Implements [`IdentityStore`] for a SQL store from its writer and reader pools and its
/// `directory_changes` sender field. One text per statement serves both backends (see
/// `statements.rs` for the `$N` convention).
macro_rules! identity_store {
    ($store:ty, writer: $writer:ident, reader: $reader:ident, changes: $changes:ident) => {
        #[async_trait::async_trait]
        impl $crate::identity::IdentityStore for $store {
            async fn load_directory(&self) -> $crate::MetaResult<$crate::identity::DirectorySnapshot> {
                $crate::transaction!(self.$reader, |tx| {
                    let generation: i64 = sqlx::query_scalar("SELECT generation FROM iam_generation WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await?;
                    let rows = sqlx::query("SELECT kind, name, body, revision FROM iam_directory")
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut entries = Vec::with_capacity(rows.len());
                    for row in &rows {
                        if let Some(entry) = $crate::identity::entry_from_row(row)? {
                            entries.push(entry);
                        }
                    }
                    let rows = sqlx::query("SELECT * FROM iam_access_keys").fetch_all(&mut *tx).await?;
                    let access_keys =
                        rows.iter().map($crate::identity::access_key_from_row).collect::<$crate::MetaResult<_>>()?;
                    Ok($crate::identity::DirectorySnapshot { generation, entries, access_keys })
                })
            }

            fn directory_changes(&self) -> tokio::sync::watch::Receiver<u64> {
                self.$changes.subscribe()
            }

            async fn get_entry(
                &self,
                kind: $crate::identity::EntryKind,
                name: &str,
            ) -> $crate::MetaResult<Option<$crate::identity::DirectoryEntry>> {
                let row = sqlx::query(
                    "SELECT kind, name, body, revision FROM iam_directory WHERE kind = $1 AND name_key = $2",
                )
                .bind(kind.as_str())
                .bind(name.to_lowercase())
                .fetch_optional(&self.$writer)
                .await?;
                Ok(match row {
                    Some(row) => $crate::identity::entry_from_row(&row)?,
                    None => None,
                })
            }

            async fn put_entry(
                &self,
                kind: $crate::identity::EntryKind,
                name: &str,
                body: &str,
                expected: Option<i64>,
            ) -> $crate::MetaResult<$crate::identity::EntryWrite> {
                use $crate::identity::EntryWrite;
                let written = $crate::transaction!(self.$writer, |tx| {
                    let done = match expected {
                        None => sqlx::query(
                            "INSERT INTO iam_directory (kind, name_key, name, body, revision) VALUES ($1, $2, $3, $4, 1)
                             ON CONFLICT (kind, name_key) DO NOTHING",
                        )
                        .bind(kind.as_str())
                        .bind(name.to_lowercase())
                        .bind(name)
                        .bind(body)
                        .execute(&mut *tx)
                        .await?,
                        Some(revision) => sqlx::query(
                            "UPDATE iam_directory SET body = $1, revision = revision + 1
                             WHERE kind = $2 AND name_key = $3 AND revision = $4",
                        )
                        .bind(body)
                        .bind(kind.as_str())
                        .bind(name.to_lowercase())
                        .bind(revision)
                        .execute(&mut *tx)
                        .await?,
                    };
                    if done.rows_affected() == 0 {
                        return Ok(EntryWrite::Conflict);
                    }
                    sqlx::query($crate::identity::BUMP_GENERATION).execute(&mut *tx).await?;
                    Ok(EntryWrite::Written(expected.unwrap_or(0) + 1))
                })?;
                self.$changes.send_modify(|g| *g += 1);
                Ok(written)
            }

            async fn delete_entry(
                &self,
                kind: $crate::identity::EntryKind,
                name: &str,
                expected: i64,
            ) -> $crate::MetaResult<bool> {
                let deleted = $crate::transaction!(self.$writer, |tx| {
                    let done =
                        sqlx::query("DELETE FROM iam_directory WHERE kind = $1 AND name_key = $2 AND revision = $3")
                            .bind(kind.as_str())
                            .bind(name.to_lowercase())
                            .bind(expected)
                            .execute(&mut *tx)
                            .await?;
                    if done.rows_affected() > 0 {
                        sqlx::query($crate::identity::BUMP_GENERATION).execute(&mut *tx).await?;
                    }
                    Ok(done.rows_affected() > 0)
                })?;
                self.$changes.send_modify(|g| *g += 1);
                Ok(deleted)
            }

            async fn rename_user(
                &self,
                old: &str,
                new: &str,
                body: &str,
                expected: i64,
            ) -> $crate::MetaResult<$crate::identity::EntryWrite> {
                use $crate::identity::EntryWrite;
                let written = $crate::transaction!(self.$writer, |tx| {
                    let (old_key, new_key) = (old.to_lowercase(), new.to_lowercase());
                    // Nothing is written before both checks pass, so a refusal commits nothing.
                    if old_key != new_key {
                        let taken = sqlx::query_scalar::<_, i64>(
                            "SELECT count(*) FROM iam_directory WHERE kind = 'user' AND name_key = $1",
                        )
                        .bind(&new_key)
                        .fetch_one(&mut *tx)
                        .await?;
                        if taken > 0 {
                            return Ok(EntryWrite::Conflict);
                        }
                    }
                    // The row keeps its place and its revision count; only its name moves.
                    let done = sqlx::query(
                        "UPDATE iam_directory SET name_key = $1, name = $2, body = $3, revision = revision + 1
                         WHERE kind = 'user' AND name_key = $4 AND revision = $5",
                    )
                    .bind(&new_key)
                    .bind(new)
                    .bind(body)
                    .bind(&old_key)
                    .bind(expected)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Ok(EntryWrite::Conflict);
                    }
                    for statement in [
                        "UPDATE iam_access_keys SET user_name = $1 WHERE lower(user_name) = $2",
                        "UPDATE iam_mfa_devices SET user_name = $1 WHERE lower(user_name) = $2",
                    ] {
                        sqlx::query(statement).bind(new).bind(&old_key).execute(&mut *tx).await?;
                    }
                    sqlx::query($crate::identity::BUMP_GENERATION).execute(&mut *tx).await?;
                    Ok(EntryWrite::Written(expected + 1))
                })?;
                self.$changes.send_modify(|g| *g += 1);
                Ok(written)
            }

            async fn create_access_key(
                &self,
                key: &$crate::identity::StoredAccessKey,
            ) -> $crate::MetaResult<Result<(), $crate::identity::KeyRefusal>> {
                use $crate::identity::KeyRefusal;
                let outcome = $crate::transaction!(self.$writer, |tx| {
                    let taken = sqlx::query_scalar::<_, i64>(
                        "SELECT count(*) FROM iam_access_keys WHERE access_key_id = $1",
                    )
                    .bind(&key.access_key_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if taken > 0 {
                        return Ok(Err(KeyRefusal::DuplicateId));
                    }
                    // The first free slot of 1 and 2; none free: the user has two keys.
                    let done = sqlx::query(
                        "INSERT INTO iam_access_keys
                           (access_key_id, user_name, slot, secret_sealed, active, created_ms)
                         SELECT $1, $2, s.slot, $3, $4, $5
                         FROM (SELECT 1 AS slot UNION ALL SELECT 2) AS s
                         WHERE s.slot NOT IN (SELECT slot FROM iam_access_keys WHERE user_name = $2)
                         ORDER BY s.slot LIMIT 1",
                    )
                    .bind(&key.access_key_id)
                    .bind(&key.user_name)
                    .bind(&key.secret_sealed)
                    .bind(key.active)
                    .bind($crate::rows::to_ms(key.created))
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::identity::slot_race_means_limit)?;
                    if done.rows_affected() == 0 {
                        return Ok(Err(KeyRefusal::LimitExceeded));
                    }
                    sqlx::query($crate::identity::BUMP_GENERATION).execute(&mut *tx).await?;
                    Ok(Ok(()))
                });
                let outcome = match outcome {
                    Err($crate::MetaError::KeyLimit) => Ok(Err(KeyRefusal::LimitExceeded)),
                    other => other,
                }?;
                self.$changes.send_modify(|g| *g += 1);
                Ok(outcome)
            }

            async fn set_access_key_active(&self, access_key_id: &str, active: bool) -> $crate::MetaResult<bool> {
                let changed = $crate::transaction!(self.$writer, |tx| {
                    let done = sqlx::query("UPDATE iam_access_keys SET active = $1 WHERE access_key_id = $2")
                        .bind(active)
                        .bind(access_key_id)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() > 0 {
                        sqlx::query($crate::identity::BUMP_GENERATION).execute(&mut *tx).await?;
                    }
                    Ok(done.rows_affected() > 0)
                })?;
                self.$changes.send_modify(|g| *g += 1);
                Ok(changed)
            }

            async fn delete_access_key(&self, access_key_id: &str) -> $crate::MetaResult<bool> {
                let deleted = $crate::transaction!(self.$writer, |tx| {
                    let done = sqlx::query("DELETE FROM iam_access_keys WHERE access_key_id = $1")
                        .bind(access_key_id)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() > 0 {
                        sqlx::query($crate::identity::BUMP_GENERATION).execute(&mut *tx).await?;
                    }
                    Ok(done.rows_affected() > 0)
                })?;
                self.$changes.send_modify(|g| *g += 1);
                Ok(deleted)
            }

            async fn record_key_use(&self, uses: &[(String, time::OffsetDateTime, String)]) -> $crate::MetaResult<()> {
                $crate::transaction!(self.$writer, |tx| {
                    for (id, at, service) in uses {
                        sqlx::query(
                            "UPDATE iam_access_keys SET last_used_ms = $1, last_used_service = $2
                             WHERE access_key_id = $3 AND (last_used_ms IS NULL OR last_used_ms < $1)",
                        )
                        .bind($crate::rows::to_ms(*at))
                        .bind(service)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Ok(())
                })
            }

            async fn create_mfa_device(&self, device: &$crate::identity::MfaDevice) -> $crate::MetaResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO iam_mfa_devices (serial, seed_sealed, created_ms, user_name, enabled_ms, last_step)
                     VALUES ($1, $2, $3, CAST($4 AS TEXT), CAST($5 AS BIGINT), $6) ON CONFLICT (serial) DO NOTHING",
                )
                .bind(&device.serial)
                .bind(&device.seed_sealed)
                .bind($crate::rows::to_ms(device.created))
                .bind(&device.user_name)
                .bind(device.enabled.map($crate::rows::to_ms))
                .bind(device.last_step)
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn get_mfa_device(&self, serial: &str) -> $crate::MetaResult<Option<$crate::identity::MfaDevice>> {
                let row = sqlx::query("SELECT * FROM iam_mfa_devices WHERE serial = $1")
                    .bind(serial)
                    .fetch_optional(&self.$writer)
                    .await?;
                row.as_ref().map($crate::identity::mfa_device_from_row).transpose()
            }

            async fn list_mfa_devices(&self) -> $crate::MetaResult<Vec<$crate::identity::MfaDevice>> {
                let rows =
                    sqlx::query("SELECT * FROM iam_mfa_devices ORDER BY serial").fetch_all(&self.$writer).await?;
                rows.iter().map($crate::identity::mfa_device_from_row).collect()
            }

            async fn enable_mfa_device(
                &self,
                serial: &str,
                user_name: &str,
                at: time::OffsetDateTime,
                step: i64,
            ) -> $crate::MetaResult<bool> {
                let done = sqlx::query(
                    "UPDATE iam_mfa_devices SET user_name = $1, enabled_ms = $2, last_step = $3
                     WHERE serial = $4 AND user_name IS NULL",
                )
                .bind(user_name)
                .bind($crate::rows::to_ms(at))
                .bind(step)
                .bind(serial)
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn deactivate_mfa_device(&self, serial: &str, user_name: &str) -> $crate::MetaResult<bool> {
                let done = sqlx::query(
                    "UPDATE iam_mfa_devices SET user_name = NULL, enabled_ms = NULL
                     WHERE serial = $1 AND user_name = $2",
                )
                .bind(serial)
                .bind(user_name)
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_mfa_device(&self, serial: &str) -> $crate::MetaResult<bool> {
                let done = sqlx::query("DELETE FROM iam_mfa_devices WHERE serial = $1 AND user_name IS NULL")
                    .bind(serial)
                    .execute(&self.$writer)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn spend_mfa_step(&self, serial: &str, step: i64) -> $crate::MetaResult<bool> {
                let done = sqlx::query("UPDATE iam_mfa_devices SET last_step = $1 WHERE serial = $2 AND last_step < $1")
                    .bind(step)
                    .bind(serial)
                    .execute(&self.$writer)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn reserve_mfa_attempt(
                &self,
                serial: &str,
                at: time::OffsetDateTime,
                window: std::time::Duration,
                max: i64,
            ) -> $crate::MetaResult<bool> {
                let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
                let done = sqlx::query(
                    "UPDATE iam_mfa_devices SET
                         failures = CASE WHEN $1 - failures_since_ms >= $2 THEN 1 ELSE failures + 1 END,
                         failures_since_ms = CASE WHEN $1 - failures_since_ms >= $2 THEN $1 ELSE failures_since_ms END
                     WHERE serial = $3 AND ($1 - failures_since_ms >= $2 OR failures < $4)",
                )
                .bind($crate::rows::to_ms(at))
                .bind(window_ms)
                .bind(serial)
                .bind(max)
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn refund_mfa_attempt(&self, serial: &str) -> $crate::MetaResult<()> {
                sqlx::query("UPDATE iam_mfa_devices SET failures = failures - 1 WHERE serial = $1 AND failures > 0")
                    .bind(serial)
                    .execute(&self.$writer)
                    .await?;
                Ok(())
            }

            async fn create_session(&self, session: &$crate::identity::SessionRecord) -> $crate::MetaResult<()> {
                sqlx::query(
                    "INSERT INTO sts_sessions (access_key_id, secret_sealed, token_hash, body, issued_ms, expires_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&session.access_key_id)
                .bind(&session.secret_sealed)
                .bind(&session.token_hash)
                .bind(&session.body)
                .bind($crate::rows::to_ms(session.issued))
                .bind($crate::rows::to_ms(session.expires))
                .execute(&self.$writer)
                .await?;
                Ok(())
            }

            async fn get_session(
                &self,
                access_key_id: &str,
            ) -> $crate::MetaResult<Option<$crate::identity::SessionRecord>> {
                let row = sqlx::query("SELECT * FROM sts_sessions WHERE access_key_id = $1")
                    .bind(access_key_id)
                    .fetch_optional(&self.$reader)
                    .await?;
                row.as_ref().map($crate::identity::session_from_row).transpose()
            }

            async fn purge_sessions(&self, before: time::OffsetDateTime) -> $crate::MetaResult<u64> {
                let done = sqlx::query("DELETE FROM sts_sessions WHERE expires_ms < $1")
                    .bind($crate::rows::to_ms(before))
                    .execute(&self.$writer)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn claim_master_key(&self, fingerprint: &str) -> $crate::MetaResult<bool> {
                sqlx::query(
                    "INSERT INTO server_settings (name, value) VALUES ('master_key', $1) ON CONFLICT (name) DO NOTHING",
                )
                .bind(fingerprint)
                .execute(&self.$writer)
                .await?;
                let recorded: String =
                    sqlx::query_scalar("SELECT value FROM server_settings WHERE name = 'master_key'")
                        .fetch_one(&self.$writer)
                        .await?;
                Ok(recorded == fingerprint)
            }

            async fn adopt_legacy_keys(
                &self,
                seal: &$crate::identity::Sealer<'_>,
            ) -> $crate::MetaResult<u64> {
                use $crate::rows::Columns;
                let moved = $crate::transaction!(self.$writer, |tx| {
                    let rows = sqlx::query("SELECT access_key_id, secret_key, principal, created_ms FROM access_keys")
                        .fetch_all(&mut *tx)
                        .await?;
                    for row in &rows {
                        let id = row.text("access_key_id")?;
                        let user = row.text("principal")?;
                        sqlx::query(
                            "INSERT INTO iam_access_keys
                               (access_key_id, user_name, slot, secret_sealed, active, created_ms)
                             SELECT $1, $2, COALESCE(MAX(slot), 0) + 1, $3, $4, $5
                             FROM iam_access_keys WHERE user_name = $2",
                        )
                        .bind(&id)
                        .bind(&user)
                        .bind(seal(&id, &row.text("secret_key")?))
                        .bind(true)
                        .bind(row.int("created_ms")?)
                        .execute(&mut *tx)
                        .await?;
                    }
                    if !rows.is_empty() {
                        sqlx::query("DELETE FROM access_keys").execute(&mut *tx).await?;
                        sqlx::query($crate::identity::BUMP_GENERATION).execute(&mut *tx).await?;
                    }
                    Ok(rows.len() as u64)
                })?;
                if moved > 0 {
                    self.$changes.send_modify(|g| *g += 1);
                }
                Ok(moved)
            }
        }
    };
}
pub(crate) use identity_store;

/// Adds one to the directory generation (on PostgreSQL its trigger notifies every replica).
pub(crate) const BUMP_GENERATION: &str = "UPDATE iam_generation SET generation = generation + 1 WHERE id = 1";

/// Two concurrent key creations for one user can pick the same free slot (PostgreSQL): the
/// loser's unique violation means the user has reached the limit meanwhile.
pub(crate) fn slot_race_means_limit(e: sqlx::Error) -> crate::MetaError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => crate::MetaError::KeyLimit,
        _ => crate::MetaError::Backend(e),
    }
}

pub(crate) fn entry_from_row(row: &impl Columns) -> MetaResult<Option<DirectoryEntry>> {
    // A kind this version does not know (written by a newer replica) is skipped, not fatal.
    let Some(kind) = EntryKind::parse(&row.text("kind")?) else {
        return Ok(None);
    };
    Ok(Some(DirectoryEntry { kind, name: row.text("name")?, body: row.text("body")?, revision: row.int("revision")? }))
}

pub(crate) fn access_key_from_row(row: &impl Columns) -> MetaResult<StoredAccessKey> {
    Ok(StoredAccessKey {
        access_key_id: row.text("access_key_id")?,
        user_name: row.text("user_name")?,
        secret_sealed: row.bytes("secret_sealed")?,
        active: row.flag("active")?,
        created: from_ms(row.int("created_ms")?),
        last_used: row.opt_int("last_used_ms")?.map(from_ms),
        last_used_service: row.opt_text("last_used_service")?,
    })
}

pub(crate) fn mfa_device_from_row(row: &impl Columns) -> MetaResult<MfaDevice> {
    Ok(MfaDevice {
        serial: row.text("serial")?,
        seed_sealed: row.bytes("seed_sealed")?,
        created: from_ms(row.int("created_ms")?),
        user_name: row.opt_text("user_name")?,
        enabled: row.opt_int("enabled_ms")?.map(from_ms),
        last_step: row.int("last_step")?,
        failures: row.int("failures")?,
        failures_since: from_ms(row.int("failures_since_ms")?),
    })
}

pub(crate) fn session_from_row(row: &impl Columns) -> MetaResult<SessionRecord> {
    Ok(SessionRecord {
        access_key_id: row.text("access_key_id")?,
        secret_sealed: row.bytes("secret_sealed")?,
        token_hash: row.bytes("token_hash")?,
        body: row.text("body")?,
        issued: from_ms(row.int("issued_ms")?),
        expires: from_ms(row.int("expires_ms")?),
    })
}
