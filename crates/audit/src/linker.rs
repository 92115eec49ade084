//! The background task that links recorded events into the chain every second and signs a
//! digest of the chain's head every digest interval (and once more at shutdown), on every
//! replica: the store lets one link at a time, and a digest that another replica wrote first
//! for the same range is kept instead.

use std::sync::Arc;
use std::time::Duration;

use latchkey_meta::{AuditStore, MetaResult};
use time::OffsetDateTime;

use crate::{SigningKey, sign_digest};

/// Events linked per transaction.
const BATCH: u32 = 1000;

pub struct Linker {
    store: Arc<dyn AuditStore>,
    key: Arc<SigningKey>,
    digest_every: Duration,
}

impl Linker {
    pub fn new(store: Arc<dyn AuditStore>, key: Arc<SigningKey>, digest_every: Duration) -> Linker {
        Linker { store, key, digest_every }
    }

    /// Links and digests until `shutdown` resolves, then links what is left and digests it.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut digest_due = tokio::time::Instant::now() + self.digest_every;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut shutdown => break,
            }
            if let Err(e) = self.link().await {
                tracing::error!(error = %e, "cannot link audit events");
                continue;
            }
            if tokio::time::Instant::now() >= digest_due {
                digest_due = tokio::time::Instant::now() + self.digest_every;
                if let Err(e) = self.digest(false).await {
                    tracing::error!(error = %e, "cannot sign an audit digest");
                }
            }
        }
        if let Err(e) = async {
            self.link().await?;
            self.digest(true).await
        }
        .await
        {
            tracing::error!(error = %e, "cannot link and sign the last audit events at shutdown");
        }
    }

    /// Links every unlinked event.
    pub async fn link(&self) -> MetaResult<u64> {
        let mut linked = 0;
        loop {
            let n = self.store.chain_audit(BATCH).await?;
            linked += n;
            if n < u64::from(BATCH) {
                return Ok(linked);
            }
        }
    }

    /// Signs the head if it moved since the last digest and (unless `now`) that digest is at
    /// least an interval old (another replica may have signed meanwhile).
    pub async fn digest(&self, now: bool) -> MetaResult<bool> {
        let Some(head) = self.store.audit_head().await? else { return Ok(false) };
        let digests = self.store.audit_digests().await?;
        let latest = digests.last();
        let at = OffsetDateTime::now_utc();
        if latest.is_some_and(|d| d.last_pos >= head.0 || (!now && at - d.at < self.digest_every)) {
            return Ok(false);
        }
        self.store.record_audit_digest(&sign_digest(&self.key, at, head, latest)).await
    }
}
