//! Counted presigned URLs behind [`PresignedStore`]: how often each URL made with `latchkey
//! presign --max-uses` has been used, keyed by a hash of its signature (never the signature) and
//! spent atomically, so that replicas sharing one PostgreSQL grant exactly `max_uses` in all.
//! Ordinary presigned URLs never reach this store.

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
    /// Forgets the uses of URLs that expired before `before`; how many were forgotten.
    async fn purge_presigned_uses(&self, before: OffsetDateTime) -> MetaResult<u64>;
}

/// Implements [`PresignedStore`] for a SQL store from its writer pool. One text per statement
/// serves both backends: the upsert grants a use only while `uses < max_uses`, and returns no
/// row otherwise.
macro_rules! presigned_store {
    ($store:ty, writer: $writer:ident) => {
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

            async fn purge_presigned_uses(&self, before: time::OffsetDateTime) -> $crate::MetaResult<u64> {
                let done = sqlx::query("DELETE FROM presigned_uses WHERE expires_ms < $1")
                    .bind($crate::rows::to_ms(before))
                    .execute(&self.$writer)
                    .await?;
                Ok(done.rows_affected())
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

    use super::PresignedStore;

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

    /// Expired URLs' rows go; live ones stay counted.
    pub async fn expired_urls_are_forgotten<S: PresignedStore>(store: Arc<S>) {
        let now = OffsetDateTime::now_utc();
        assert!(store.spend_presigned_use(&[1u8; 32], 1, now - Duration::minutes(1)).await.unwrap());
        assert!(store.spend_presigned_use(&[2u8; 32], 1, now + Duration::hours(1)).await.unwrap());
        assert_eq!(store.purge_presigned_uses(now).await.unwrap(), 1);
        assert!(!store.spend_presigned_use(&[2u8; 32], 1, now + Duration::hours(1)).await.unwrap(), "still spent");
    }
}
