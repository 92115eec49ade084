//! The background task that links recorded events into the chain every second and signs a
//! digest of the chain's head every digest interval (and once more at shutdown), on every
//! replica: the store lets one link at a time, and a digest that another replica wrote first
//! for the same range is kept instead.
//!
//! Nothing is signed unchecked: before a digest, the links since the last one this process
//! checked (or the newest digest, or the start) are recomputed, and a digest this process
//! signed must still be there. A chain found broken is not signed over: the break is logged and
//! recorded once (`audit.broken`), and digests stop until it is repaired.

use std::sync::Arc;
use std::time::Duration;

use latchkey_meta::{AuditEvent, AuditStore, GENESIS, MetaResult, MetaStore};
use time::OffsetDateTime;

use crate::{SigningKey, sign_digest};

/// Events linked per transaction.
const BATCH: u32 = 1000;

/// What this process knows of the chain.
#[derive(Default)]
struct Checked {
    /// The last position (and its hash) it checked the links up to.
    upto: Option<(i64, Vec<u8>)>,
    /// The last position a digest it wrote signs.
    signed: Option<i64>,
}

pub struct Linker {
    store: Arc<dyn AuditStore>,
    meta: Arc<dyn MetaStore>,
    key: Arc<SigningKey>,
    digest_every: Duration,
    checked: tokio::sync::Mutex<Checked>,
    /// Whether a break was recorded already.
    reported: std::sync::atomic::AtomicBool,
}

impl Linker {
    pub fn new(
        store: Arc<dyn AuditStore>,
        meta: Arc<dyn MetaStore>,
        key: Arc<SigningKey>,
        digest_every: Duration,
    ) -> Linker {
        Linker {
            store,
            meta,
            key,
            digest_every,
            checked: tokio::sync::Mutex::new(Checked::default()),
            reported: std::sync::atomic::AtomicBool::new(false),
        }
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
            let n = latchkey_meta::timed("link_audit", self.store.chain_audit(BATCH)).await?;
            linked += n;
            if n < u64::from(BATCH) {
                if linked > 0
                    && let Some((head, _)) = self.store.audit_head().await?
                {
                    metrics::gauge!("latchkey_audit_chain_length").set(head as f64);
                }
                return Ok(linked);
            }
        }
    }

    /// Signs the head if it moved since the last digest and (unless `now`) that digest is at
    /// least an interval old (another replica may have signed meanwhile), once the links up to
    /// it check out.
    pub async fn digest(&self, now: bool) -> MetaResult<bool> {
        let Some(head) = self.store.audit_head().await? else { return Ok(false) };
        let latest = self.store.latest_audit_digest().await?;
        let at = OffsetDateTime::now_utc();
        if latest.as_ref().is_some_and(|d| d.last_pos >= head.0 || (!now && at - d.at < self.digest_every)) {
            return Ok(false);
        }
        let mut checked = self.checked.lock().await;
        if let Some(mine) = checked.signed
            && latest.as_ref().is_none_or(|d| d.last_pos < mine)
        {
            return self.refuse(format!("the digests up to event {mine} that this server signed are gone")).await;
        }
        let signed = latest.as_ref().map(|d| (d.last_pos, d.last_hash.clone()));
        if let (Some(upto), Some(signed)) = (&checked.upto, &signed)
            && upto.0 == signed.0
            && upto.1 != signed.1
        {
            return self.refuse(format!("the digest of event {} does not match the chain as checked", upto.0)).await;
        }
        // Both are trusted: what this process checked, and what the key signed.
        let start = [checked.upto.clone(), signed]
            .into_iter()
            .flatten()
            .max_by_key(|(pos, _)| *pos)
            .unwrap_or((0, GENESIS.to_vec()));
        match crate::verify::walk(self.store.as_ref(), start.clone(), &Default::default()).await {
            Ok((_, last)) => {
                let last = last.unwrap_or(start);
                checked.upto = Some(last.clone());
                if latest.as_ref().is_some_and(|d| d.last_pos >= last.0) {
                    return Ok(false);
                }
                let pos = last.0;
                let written =
                    self.store.record_audit_digest(&sign_digest(&self.key, at, last, latest.as_ref())).await?;
                if written {
                    checked.signed = Some(pos);
                }
                Ok(written)
            }
            Err(crate::Broken::Store(e)) => Err(e),
            Err(broken) => self.refuse(broken.to_string()).await,
        }
    }

    /// Logs a chain that cannot be signed over and records it once (`audit.broken`).
    async fn refuse(&self, why: String) -> MetaResult<bool> {
        tracing::error!(why, "the audit chain is broken; no digest is signed until it is repaired");
        if !self.reported.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let event = AuditEvent {
                at: OffsetDateTime::now_utc(),
                event: "audit.broken".into(),
                share_id: None,
                principal: None,
                source_ip: None,
                user_agent: None,
                reason: Some(why),
            };
            self.meta.record_audit(&event).await?;
        }
        Ok(false)
    }
}
