//! The lifecycle pass's lease behind [`LifecycleStore`]: one replica at a time applies the
//! buckets' lifecycle rules, and a pass cut short resumes where it stopped.
//!
//! The lease is one row: a holder and the time its lease runs out, plus the pass's cursor (a
//! bucket and the last key done). A replica that crashes stops renewing; another takes over once
//! the lease has run out, from the cursor.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::MetaResult;

/// Where a lifecycle pass has got to: every key of `bucket` up to `key` is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleCursor {
    pub bucket: String,
    pub key: String,
}

#[async_trait]
pub trait LifecycleStore: Send + Sync + 'static {
    /// Takes the lease for `holder` until `until` (or renews it), unless another holder's lease
    /// runs past `now`. `None`: not taken; else where the last pass stopped (`None` inside: from
    /// the beginning).
    async fn claim_lifecycle(
        &self,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> MetaResult<Option<Option<LifecycleCursor>>>;
    /// Records the pass's progress (`None`: the pass is complete) and extends the lease to
    /// `until`; `false` when `holder` no longer holds it (then it must stop).
    async fn advance_lifecycle(
        &self,
        holder: &str,
        cursor: Option<&LifecycleCursor>,
        until: OffsetDateTime,
    ) -> MetaResult<bool>;
    /// Gives the lease up (a clean shutdown), keeping the cursor: another replica, or this one
    /// restarted, takes over at once.
    async fn release_lifecycle(&self, holder: &str) -> MetaResult<()>;
}

/// Implements [`LifecycleStore`] for a SQL store from its writer pool.
macro_rules! lifecycle_store {
    ($store:ty, writer: $writer:ident) => {
        #[async_trait::async_trait]
        impl $crate::lifecycle::LifecycleStore for $store {
            async fn claim_lifecycle(
                &self,
                holder: &str,
                now: time::OffsetDateTime,
                until: time::OffsetDateTime,
            ) -> $crate::MetaResult<Option<Option<$crate::lifecycle::LifecycleCursor>>> {
                let row = $crate::statements::bound!(
                    "UPDATE lifecycle_lease SET holder = $1, lease_until_ms = $2
                     WHERE id = 1 AND (holder = $1 OR lease_until_ms < $3 OR holder IS NULL)
                     RETURNING cursor_bucket, cursor_key",
                    holder,
                    $crate::rows::to_ms(until),
                    $crate::rows::to_ms(now),
                )
                .fetch_optional(&self.$writer)
                .await?;
                let Some(row) = row else { return Ok(None) };
                use $crate::rows::Columns;
                let cursor = match (row.opt_text("cursor_bucket")?, row.opt_text("cursor_key")?) {
                    (Some(bucket), Some(key)) => Some($crate::lifecycle::LifecycleCursor { bucket, key }),
                    _ => None,
                };
                Ok(Some(cursor))
            }

            async fn advance_lifecycle(
                &self,
                holder: &str,
                cursor: Option<&$crate::lifecycle::LifecycleCursor>,
                until: time::OffsetDateTime,
            ) -> $crate::MetaResult<bool> {
                let done = $crate::statements::bound!(
                    "UPDATE lifecycle_lease SET cursor_bucket = $1, cursor_key = $2, lease_until_ms = $3
                     WHERE id = 1 AND holder = $4",
                    cursor.map(|c| c.bucket.as_str()),
                    cursor.map(|c| c.key.as_str()),
                    $crate::rows::to_ms(until),
                    holder,
                )
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_lifecycle(&self, holder: &str) -> $crate::MetaResult<()> {
                $crate::statements::bound!(
                    "UPDATE lifecycle_lease SET lease_until_ms = 0 WHERE id = 1 AND holder = $1",
                    holder
                )
                .execute(&self.$writer)
                .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use lifecycle_store;

#[cfg(test)]
pub(crate) mod conformance {
    use std::sync::Arc;

    use time::{Duration, OffsetDateTime};

    use super::{LifecycleCursor, LifecycleStore};

    /// One holder at a time; the lease passes on once it has run out, with the cursor.
    pub async fn one_replica_holds_the_lease_and_another_resumes_its_pass<S: LifecycleStore>(store: Arc<S>) {
        let now = OffsetDateTime::now_utc();
        let minute = Duration::minutes(1);
        assert_eq!(store.claim_lifecycle("a", now, now + minute).await.unwrap(), Some(None));
        assert_eq!(store.claim_lifecycle("b", now, now + minute).await.unwrap(), None, "a holds it");
        let cursor = LifecycleCursor { bucket: "b1".into(), key: "k/2".into() };
        assert!(store.advance_lifecycle("a", Some(&cursor), now + minute).await.unwrap());
        assert!(!store.advance_lifecycle("b", None, now + minute).await.unwrap(), "b does not hold it");
        assert_eq!(store.claim_lifecycle("a", now, now + minute).await.unwrap(), Some(Some(cursor.clone())));
        // a stops renewing (a crash): once its lease ran out, b resumes where a stopped.
        let later = now + 2 * minute;
        assert_eq!(store.claim_lifecycle("b", later, later + minute).await.unwrap(), Some(Some(cursor)));
        assert!(!store.advance_lifecycle("a", None, later + minute).await.unwrap(), "a lost it");
        assert!(store.advance_lifecycle("b", None, later + minute).await.unwrap());
        assert_eq!(store.claim_lifecycle("b", later, later + minute).await.unwrap(), Some(None), "pass complete");
        store.release_lifecycle("b").await.unwrap();
        assert_eq!(store.claim_lifecycle("c", later, later + minute).await.unwrap(), Some(None), "given up");
    }
}
