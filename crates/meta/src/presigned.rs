//! Presigned URLs Latchkey controls, behind [`PresignedStore`]:
//!
//! - counted URLs: how often each URL made with `latchkey presign --max-uses` has been used,
//!   keyed by a hash of its signature (never the signature) and spent atomically, so that
//!   replicas sharing one PostgreSQL grant exactly `max_uses` in all;
//! - revocations (`latchkey presign revoke`): one URL by the hash of its signature, or every URL
//!   a key signed before a time. Each adds to a generation counter whose bump PostgreSQL turns
//!   into a NOTIFY, so every replica reloads its copy in memory
//!   ([`PresignedStore::revocation_changes`]) and ordinary presigned URLs need no store read.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::MetaResult;

#[async_trait]
pub trait PresignedStore: Send + Sync + 'static {
    /// Spends one use of the URL whose signature hashes to `signature_hash` if fewer than
    /// `max_uses` (at least 1) were spent; `false` when it is used up. `expires` is when the URL
    /// stops working, after which its row may go.
    async fn spend_presigned_use(
        &self,
        signature_hash: &[u8],
        max_uses: u32,
        expires: OffsetDateTime,
    ) -> MetaResult<bool>;
    /// Forgets the uses and revocations of URLs that expired before `before`; how many rows
    /// were forgotten.
    async fn purge_expired_presigned(&self, before: OffsetDateTime) -> MetaResult<u64>;
    /// Records a revocation (a signature revoked twice is recorded once).
    async fn revoke_presigned(&self, revocation: &Revocation) -> MetaResult<()>;
    /// Every revocation in force, with the generation it was read at.
    async fn load_presigned_revocations(&self) -> MetaResult<RevocationSnapshot>;
    /// Changes whenever a revocation may have been added, here or by another replica.
    fn revocation_changes(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// What a revocation refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// The URL whose signature hashes (SHA-256) to this.
    Signature(Vec<u8>),
    /// Every URL the access key signed before this time.
    SignedBy { access_key_id: String, before: OffsetDateTime },
}

/// A revocation and when every URL it refuses has expired (its row may go then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub revoked: Revoked,
    pub expires: OffsetDateTime,
}

/// Every revocation in force.
#[derive(Debug, Default)]
pub struct RevocationSnapshot {
    pub generation: i64,
    pub revoked: Vec<Revoked>,
}

/// Implements [`PresignedStore`] for a SQL store from its writer pool and the sender of its
/// `revocation_changes`. One text per statement serves both backends: the upsert grants a use
/// only while `uses < max_uses`, and returns no row otherwise.
macro_rules! presigned_store {
    ($store:ty, writer: $writer:ident, changes: $changes:ident) => {
        #[async_trait::async_trait]
        impl $crate::presigned::PresignedStore for $store {
            async fn spend_presigned_use(
                &self,
                signature_hash: &[u8],
                max_uses: u32,
                expires: time::OffsetDateTime,
            ) -> $crate::MetaResult<bool> {
                let granted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO presigned_uses (signature_hash, uses, expires_ms) VALUES ($1, 1, $3)
                     ON CONFLICT (signature_hash) DO UPDATE SET uses = presigned_uses.uses + 1
                     WHERE presigned_uses.uses < $2
                     RETURNING uses",
                )
                .bind(signature_hash)
                .bind(i64::from(max_uses))
                .bind($crate::rows::to_ms(expires))
                .fetch_optional(&self.$writer)
                .await?;
                Ok(granted.is_some() && max_uses > 0)
            }

            async fn purge_expired_presigned(&self, before: time::OffsetDateTime) -> $crate::MetaResult<u64> {
                let mut purged = 0;
                for table in ["presigned_uses", "presigned_revocations"] {
                    let done = sqlx::query(&format!("DELETE FROM {table} WHERE expires_ms < $1"))
                        .bind($crate::rows::to_ms(before))
                        .execute(&self.$writer)
                        .await?;
                    purged += done.rows_affected();
                }
                Ok(purged)
            }

            async fn revoke_presigned(&self, revocation: &$crate::presigned::Revocation) -> $crate::MetaResult<()> {
                use $crate::presigned::Revoked;
                let (hash, key, before) = match &revocation.revoked {
                    Revoked::Signature(hash) => (Some(hash.as_slice()), None, None),
                    Revoked::SignedBy { access_key_id, before } => {
                        (None, Some(access_key_id.as_str()), Some($crate::rows::to_ms(*before)))
                    }
                };
                // A signature revoked again keeps its row, with the later expiry.
                sqlx::query(
                    "INSERT INTO presigned_revocations (signature_hash, access_key_id, signed_before_ms, expires_ms)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (signature_hash) DO UPDATE
                     SET expires_ms = CASE WHEN excluded.expires_ms > presigned_revocations.expires_ms
                                      THEN excluded.expires_ms ELSE presigned_revocations.expires_ms END",
                )
                .bind(hash)
                .bind(key)
                .bind(before)
                .bind($crate::rows::to_ms(revocation.expires))
                .execute(&self.$writer)
                .await?;
                self.$changes.send_modify(|g| *g += 1);
                Ok(())
            }

            async fn load_presigned_revocations(&self) -> $crate::MetaResult<$crate::presigned::RevocationSnapshot> {
                use $crate::presigned::Revoked;
                let mut tx = self.$writer.begin().await?;
                let generation: i64 =
                    sqlx::query_scalar("SELECT generation FROM presigned_revocation_generation WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await?;
                let rows: Vec<(Option<Vec<u8>>, Option<String>, Option<i64>)> =
                    sqlx::query_as("SELECT signature_hash, access_key_id, signed_before_ms FROM presigned_revocations")
                        .fetch_all(&mut *tx)
                        .await?;
                tx.commit().await?;
                let revoked = rows
                    .into_iter()
                    .filter_map(|row| match row {
                        (Some(hash), _, _) => Some(Revoked::Signature(hash)),
                        (None, Some(access_key_id), Some(before)) => {
                            Some(Revoked::SignedBy { access_key_id, before: $crate::rows::from_ms(before) })
                        }
                        _ => None,
                    })
                    .collect();
                Ok($crate::presigned::RevocationSnapshot { generation, revoked })
            }

            fn revocation_changes(&self) -> tokio::sync::watch::Receiver<u64> {
                self.$changes.subscribe()
            }
        }
    };
}
pub(crate) use presigned_store;

/// Behaviour every `PresignedStore` must show, run against each backend.
#[cfg(test)]
pub(crate) mod conformance {
    use std::sync::Arc;

    use time::{Duration, OffsetDateTime};

    use super::{PresignedStore, Revocation, Revoked};

    /// 50 concurrent uses of a 3-use URL: exactly 3 are granted, and another URL's count is its own.
    pub async fn each_url_is_granted_exactly_its_uses<S: PresignedStore>(store: Arc<S>) {
        let expires = OffsetDateTime::now_utc() + Duration::hours(1);
        let tries: Vec<_> = (0..50)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.spend_presigned_use(&[7u8; 32], 3, expires).await.unwrap() })
            })
            .collect();
        let mut granted = 0;
        for t in tries {
            granted += usize::from(t.await.unwrap());
        }
        assert_eq!(granted, 3);
        assert!(store.spend_presigned_use(&[8u8; 32], 1, expires).await.unwrap(), "another URL");
        assert!(!store.spend_presigned_use(&[8u8; 32], 1, expires).await.unwrap());
    }

    /// A revocation is announced, loaded, recorded once per signature, and forgotten once
    /// every URL it refuses has expired.
    pub async fn revocations_are_announced_loaded_and_purged<S: PresignedStore>(store: Arc<S>) {
        let now = OffsetDateTime::now_utc();
        let mut changes = store.revocation_changes();
        changes.borrow_and_update();
        let before = store.load_presigned_revocations().await.unwrap();
        let one = Revocation { revoked: Revoked::Signature(vec![9u8; 32]), expires: now + Duration::hours(1) };
        store.revoke_presigned(&one).await.unwrap();
        store.revoke_presigned(&Revocation { expires: now + Duration::hours(2), ..one.clone() }).await.unwrap();
        assert!(changes.has_changed().unwrap(), "a revocation is announced");
        let key =
            Revoked::SignedBy { access_key_id: "AKIAEXAMPLE".into(), before: now.replace_millisecond(0).unwrap() };
        let gone = Revocation { revoked: key.clone(), expires: now - Duration::minutes(1) };
        store.revoke_presigned(&gone).await.unwrap();
        let loaded = store.load_presigned_revocations().await.unwrap();
        assert!(loaded.generation > before.generation, "{} then {}", before.generation, loaded.generation);
        let mine: Vec<_> = loaded.revoked.iter().filter(|r| **r == one.revoked || **r == key).collect();
        assert_eq!(mine, [&one.revoked, &key], "the signature once, the key's revocation as written");
        store.purge_expired_presigned(now).await.unwrap();
        let loaded = store.load_presigned_revocations().await.unwrap();
        assert!(loaded.revoked.contains(&one.revoked), "the later expiry stands");
        assert!(!loaded.revoked.contains(&key), "expired revocations go");
    }

    /// Expired URLs' rows go; live ones stay counted.
    pub async fn expired_urls_are_forgotten<S: PresignedStore>(store: Arc<S>) {
        let now = OffsetDateTime::now_utc();
        assert!(store.spend_presigned_use(&[1u8; 32], 1, now - Duration::minutes(1)).await.unwrap());
        assert!(store.spend_presigned_use(&[2u8; 32], 1, now + Duration::hours(1)).await.unwrap());
        assert_eq!(store.purge_expired_presigned(now).await.unwrap(), 1);
        assert!(!store.spend_presigned_use(&[2u8; 32], 1, now + Duration::hours(1)).await.unwrap(), "still spent");
    }
}
