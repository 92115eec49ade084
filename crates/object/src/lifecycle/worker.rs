//! The lifecycle worker: passes over every bucket with lifecycle rules, in bounded batches of
//! keys, on one replica at a time (the store's lease), applying what the rules say is due.
//!
//! Each action is one store transaction (a delete marker, the deletion of one version, the abort
//! of one upload), so a pass killed at any point leaves no version half-deleted; the lease's
//! cursor records the last key done after each batch, and the next holder resumes there. A
//! version Object Lock protects is skipped (and the store would refuse it anyway), and an
//! expiration applies only to the version the rules judged, never to one written since.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use latchkey_meta::{BucketConfigStore, JudgedHistory, KeyRange, LifecycleCursor, LifecycleStore, ObjectVersion};
use time::OffsetDateTime;

use super::rules::{Action, LifecycleConfiguration};
use crate::{ObjectError, ObjectResult, ObjectService};

/// How the worker runs.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleSettings {
    /// Time between passes.
    pub interval: Duration,
    /// Keys' entries read per batch (a key's whole history is always judged at once).
    pub batch: u32,
    /// Added to the clock the rules are judged by (never to Object Lock's): lets a test or a
    /// drill see what the rules will do days from now.
    pub clock_offset: Duration,
}

/// How long a lease lasts without renewal. It is renewed after each batch and, within one, every
/// `RENEW_EVERY`; a replica that dies is taken over this long after its last renewal.
const LEASE: time::Duration = time::Duration::seconds(15);
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Current versions expired (deleted, or covered by a delete marker).
    pub expired: u64,
    /// Versions and delete markers deleted for good.
    pub deleted: u64,
    pub aborted_uploads: u64,
    /// Due, but kept by Object Lock.
    pub kept_by_lock: u64,
}

/// A pass in progress.
struct Pass {
    /// Announces changes to any bucket's settings (its rules may have changed).
    changes: tokio::sync::watch::Receiver<u64>,
    /// When the lease was last renewed.
    renewed: std::time::Instant,
    report: PassReport,
}

pub struct LifecycleWorker {
    objects: Arc<ObjectService>,
    configs: Arc<dyn BucketConfigStore>,
    leases: Arc<dyn LifecycleStore>,
    settings: LifecycleSettings,
    /// This process's name on the lease.
    holder: String,
}

impl LifecycleWorker {
    pub fn new(
        objects: Arc<ObjectService>,
        configs: Arc<dyn BucketConfigStore>,
        leases: Arc<dyn LifecycleStore>,
        settings: LifecycleSettings,
    ) -> Self {
        Self { objects, configs, leases, settings, holder: crate::new_version_id() }
    }

    /// A pass at once, then one every `interval`, until `shutdown` resolves (a pass cut short
    /// by it resumes at its cursor next time); then the lease is given up.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        self.run_until(shutdown).await;
        if let Err(e) = self.leases.release_lifecycle(&self.holder).await {
            tracing::warn!(error = %e, "cannot give up the lifecycle lease; another replica takes over when it runs out");
        }
    }

    async fn run_until(&self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                outcome = self.pass() => match outcome {
                    Ok(Some(report)) if report != PassReport::default() => {
                        tracing::info!(?report, "lifecycle pass done");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "the lifecycle pass failed; it resumes next time"),
                },
                () = &mut shutdown => return,
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.interval) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// One pass, if this process gets the lease (`None` otherwise), from where the last stopped.
    /// A bucket whose pass fails is logged and left for the next pass; the others go on.
    pub async fn pass(&self) -> ObjectResult<Option<PassReport>> {
        let now = OffsetDateTime::now_utc();
        let Some(mut cursor) = self.leases.claim_lifecycle(&self.holder, now, now + LEASE).await? else {
            return Ok(None);
        };
        let mut pass = Pass {
            changes: self.configs.config_changes(),
            renewed: std::time::Instant::now(),
            report: PassReport::default(),
        };
        pass.changes.borrow_and_update();
        let buckets = self.rules().await?;
        for bucket in buckets.keys() {
            let after = match cursor.take() {
                Some(c) if &c.bucket > bucket => {
                    cursor = Some(c);
                    continue;
                }
                Some(c) if &c.bucket == bucket => Some(c.key),
                _ => None,
            };
            match self.pass_bucket(bucket, buckets[bucket].clone(), after, &mut pass).await {
                Ok(true) => {}
                Ok(false) => return Ok(Some(pass.report)),
                Err(e) => {
                    tracing::warn!(bucket, error = %e, "the lifecycle pass over a bucket failed; it is retried next pass")
                }
            }
        }
        self.leases.advance_lifecycle(&self.holder, None, OffsetDateTime::now_utc() + LEASE).await?;
        Ok(Some(pass.report))
    }

    /// Every bucket's lifecycle rules, as stored now.
    async fn rules(&self) -> ObjectResult<BTreeMap<String, LifecycleConfiguration>> {
        let snapshot = self.configs.load_bucket_configs().await?;
        let mut buckets = BTreeMap::new();
        for (bucket, config) in snapshot.configs {
            match config.lifecycle.as_deref().map(serde_json::from_str::<LifecycleConfiguration>) {
                Some(Ok(rules)) => {
                    buckets.insert(bucket, rules);
                }
                Some(Err(e)) => tracing::error!(bucket, error = %e, "unreadable lifecycle configuration; skipped"),
                None => {}
            }
        }
        Ok(buckets)
    }

    /// The keys of `bucket` after `after`, batch by batch, then its uploads; `false` when the
    /// lease was lost meanwhile (another replica goes on). Rules changed meanwhile (on any
    /// replica) apply from the next batch; a bucket whose rules are gone is left.
    async fn pass_bucket(
        &self,
        bucket: &str,
        mut rules: LifecycleConfiguration,
        mut after: Option<String>,
        pass: &mut Pass,
    ) -> ObjectResult<bool> {
        loop {
            if pass.changes.has_changed().unwrap_or(false) {
                pass.changes.borrow_and_update();
                match self.rules().await?.remove(bucket) {
                    Some(now) => rules = now,
                    None => return Ok(true),
                }
            }
            let histories = self.histories(bucket, after.as_deref()).await?;
            let Some(last) = histories.last().and_then(|h| h.first()).map(|v| v.record.key.clone()) else { break };
            let judged_at = self.judged_at();
            for history in &histories {
                let mut judged =
                    JudgedHistory { latest: history[0].record.version_id.clone(), entries: history.len() as u64 };
                for action in rules.due(history, judged_at) {
                    self.apply(bucket, history, &mut judged, action, &mut pass.report).await?;
                }
                // A long batch keeps the lease: renewed at the last key done before this one.
                if pass.renewed.elapsed() >= RENEW_EVERY {
                    let done =
                        after.as_ref().map(|key| LifecycleCursor { bucket: bucket.to_owned(), key: key.clone() });
                    if !self.renew(done.as_ref(), pass).await? {
                        return Ok(false);
                    }
                }
            }
            let cursor = LifecycleCursor { bucket: bucket.to_owned(), key: last.clone() };
            if !self.renew(Some(&cursor), pass).await? {
                return Ok(false);
            }
            after = Some(last);
        }
        self.abort_uploads(bucket, &rules, &mut pass.report).await?;
        Ok(true)
    }

    /// The time rules are judged at: now, plus the clock offset (bounded by the configuration).
    fn judged_at(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.checked_add(self.settings.clock_offset.try_into().unwrap_or(time::Duration::ZERO)).unwrap_or(now)
    }

    /// Records `cursor` and renews the lease; `false` when it was lost.
    async fn renew(&self, cursor: Option<&LifecycleCursor>, pass: &mut Pass) -> ObjectResult<bool> {
        pass.renewed = std::time::Instant::now();
        Ok(self.leases.advance_lifecycle(&self.holder, cursor, OffsetDateTime::now_utc() + LEASE).await?)
    }

    /// The whole histories of the next keys after `after`: about `batch` entries, more when one
    /// key's history is longer.
    async fn histories(&self, bucket: &str, after: Option<&str>) -> ObjectResult<Vec<Vec<ObjectVersion>>> {
        let batch = self.settings.batch.max(1);
        let range = KeyRange { prefix: "", after, from: None, limit: batch };
        let mut entries = self.objects.versions.list_versions(bucket, range, None).await?;
        if entries.len() == batch as usize
            && let Some(last) = entries.last()
        {
            // The last key may go on past the page: read the rest of its history.
            let key = last.record.key.clone();
            let mut seq = last.seq;
            loop {
                let range = KeyRange { prefix: &key, after: None, from: None, limit: batch };
                let more = self.objects.versions.list_versions(bucket, range, Some((&key, seq))).await?;
                // A page short of `batch` (the history ended, or the next key began) is the last.
                let rest: Vec<ObjectVersion> = more.into_iter().take_while(|v| v.record.key == key).collect();
                let done = rest.len() < batch as usize;
                match rest.last() {
                    Some(v) => seq = v.seq,
                    None => break,
                }
                entries.extend(rest);
                if done {
                    break;
                }
            }
        }
        let mut histories: Vec<Vec<ObjectVersion>> = Vec::new();
        for entry in entries {
            match histories.last_mut() {
                Some(history) if history[0].record.key == entry.record.key => history.push(entry),
                _ => histories.push(vec![entry]),
            }
        }
        Ok(histories)
    }

    /// Applies one action to a key as `judged` saw its history, and only while it still is (a
    /// restore, write or delete since makes it a no-op until the next pass judges again).
    async fn apply(
        &self,
        bucket: &str,
        history: &[ObjectVersion],
        judged: &mut JudgedHistory,
        action: Action,
        report: &mut PassReport,
    ) -> ObjectResult<()> {
        let key = &history[0].record.key;
        let now = OffsetDateTime::now_utc();
        let target = match &action {
            Action::ExpireCurrent => &history[0],
            Action::DeleteVersion(version_id) => {
                let Some(version) = history.iter().find(|v| &v.record.version_id == version_id) else { return Ok(()) };
                version
            }
        };
        // Only an expiration needs the bucket's versioning (one read, not one per deletion).
        if matches!(action, Action::ExpireCurrent)
            && let Some(state) = self.objects.bucket(bucket).await?.versioning
        {
            // A delete marker on top, only while the version judged is still current.
            let marker = self.objects.marker(bucket, key, state);
            let only = Some(target.record.version_id.as_str());
            if self.objects.versions.delete_with_marker(&marker, state, only).await? {
                report.expired += 1;
                self.objects.released();
            }
            return Ok(());
        }
        if target.record.lock.protects(now, false).is_some() {
            report.kept_by_lock += 1;
            return Ok(());
        }
        let id = &target.record.version_id;
        match self.objects.versions.delete_version(bucket, key, id, false, Some(judged)).await {
            Ok(Some(_)) => {
                match action {
                    Action::ExpireCurrent => report.expired += 1,
                    Action::DeleteVersion(_) => report.deleted += 1,
                }
                judged.entries -= 1;
                self.objects.released();
            }
            Ok(None) => {}
            // Locked since it was read: kept, as it should be.
            Err(latchkey_meta::MetaError::ObjectLocked(_)) => report.kept_by_lock += 1,
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    async fn abort_uploads(
        &self,
        bucket: &str,
        rules: &LifecycleConfiguration,
        report: &mut PassReport,
    ) -> ObjectResult<()> {
        if rules.rules.iter().all(|r| r.abort_incomplete_upload_days.is_none()) {
            return Ok(());
        }
        let judged_at = self.judged_at();
        let mut marker: Option<(String, String)> = None;
        loop {
            let range = KeyRange {
                prefix: "",
                after: marker.as_ref().map(|(key, _)| key.as_str()),
                from: None,
                limit: self.settings.batch.max(1),
            };
            let upload_marker = marker.as_ref().map(|(_, id)| id.as_str());
            let uploads = self.objects.meta.list_uploads(bucket, range, upload_marker).await?;
            let Some(last) = uploads.last() else { return Ok(()) };
            marker = Some((last.key.clone(), last.upload_id.clone()));
            for upload in &uploads {
                if rules.abort_due(&upload.key, upload.initiated, judged_at) {
                    match self.objects.abort_upload(bucket, &upload.key, &upload.upload_id).await {
                        Ok(()) => report.aborted_uploads += 1,
                        Err(ObjectError::Multipart(crate::MultipartError::NoSuchUpload)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
}
