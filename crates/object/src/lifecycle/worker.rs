//! The lifecycle worker: passes over every bucket with lifecycle rules, in bounded batches of
//! keys, on one replica at a time (the store's lease), applying what the rules say is due.
//!
//! Each action is one store transaction (a delete marker, the deletion of one version, the abort
//! of one upload), so a pass killed at any point leaves no version half-deleted; the lease's
//! cursor records the last key done after each batch, and the next holder resumes there. A
//! version Object Lock protects is skipped (and the store would refuse it anyway), and an
//! expiration applies only to the version the rules judged, never to one written since.

use std::sync::Arc;
use std::time::Duration;

use latchkey_meta::{BucketConfigStore, KeyRange, LifecycleCursor, LifecycleStore, ObjectVersion};
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

/// How long a lease lasts without renewal; each batch renews it. A replica that dies is taken
/// over this long after its last batch.
const LEASE: time::Duration = time::Duration::seconds(15);

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
    pub async fn pass(&self) -> ObjectResult<Option<PassReport>> {
        let now = OffsetDateTime::now_utc();
        let Some(mut cursor) = self.leases.claim_lifecycle(&self.holder, now, now + LEASE).await? else {
            return Ok(None);
        };
        let mut report = PassReport::default();
        let snapshot = self.configs.load_bucket_configs().await?;
        let mut buckets: Vec<(String, LifecycleConfiguration)> = Vec::new();
        for (bucket, config) in snapshot.configs {
            match config.lifecycle.as_deref().map(serde_json::from_str::<LifecycleConfiguration>) {
                Some(Ok(rules)) => buckets.push((bucket, rules)),
                Some(Err(e)) => tracing::error!(bucket, error = %e, "unreadable lifecycle configuration; skipped"),
                None => {}
            }
        }
        buckets.sort_by(|a, b| a.0.cmp(&b.0));
        for (bucket, rules) in &buckets {
            let after = match cursor.take() {
                Some(c) if &c.bucket > bucket => {
                    cursor = Some(c);
                    continue;
                }
                Some(c) if &c.bucket == bucket => Some(c.key),
                _ => None,
            };
            if !self.pass_bucket(bucket, rules, after, &mut report).await? {
                return Ok(Some(report));
            }
        }
        self.leases.advance_lifecycle(&self.holder, None, OffsetDateTime::now_utc() + LEASE).await?;
        Ok(Some(report))
    }

    /// The keys of `bucket` after `after`, batch by batch, then its uploads; `false` when the
    /// lease was lost meanwhile (another replica goes on).
    async fn pass_bucket(
        &self,
        bucket: &str,
        rules: &LifecycleConfiguration,
        mut after: Option<String>,
        report: &mut PassReport,
    ) -> ObjectResult<bool> {
        loop {
            let histories = self.histories(bucket, after.as_deref()).await?;
            let Some(last) = histories.last().and_then(|h| h.first()).map(|v| v.record.key.clone()) else { break };
            let judged_at = OffsetDateTime::now_utc() + self.settings.clock_offset;
            for history in &histories {
                for action in rules.due(history, judged_at) {
                    self.apply(bucket, history, action, report).await?;
                }
            }
            let cursor = LifecycleCursor { bucket: bucket.to_owned(), key: last.clone() };
            if !self.leases.advance_lifecycle(&self.holder, Some(&cursor), OffsetDateTime::now_utc() + LEASE).await? {
                return Ok(false);
            }
            after = Some(last);
        }
        self.abort_uploads(bucket, rules, report).await?;
        Ok(true)
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
                let full = more.len() == batch as usize;
                let rest: Vec<ObjectVersion> = more.into_iter().take_while(|v| v.record.key == key).collect();
                let done = !full || rest.len() < batch as usize;
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

    async fn apply(
        &self,
        bucket: &str,
        history: &[ObjectVersion],
        action: Action,
        report: &mut PassReport,
    ) -> ObjectResult<()> {
        let key = &history[0].record.key;
        let now = OffsetDateTime::now_utc();
        match action {
            Action::ExpireCurrent => {
                let current = &history[0].record;
                let expired = match self.objects.bucket(bucket).await?.versioning {
                    Some(state) => {
                        let marker = self.objects.marker(bucket, key, state);
                        let only = Some(current.version_id.as_str());
                        self.objects.versions.delete_with_marker(&marker, state, only).await?
                    }
                    _ if current.lock.protects(now, false).is_some() => {
                        report.kept_by_lock += 1;
                        false
                    }
                    // Exactly the version judged: one written since stays.
                    _ => self.objects.versions.delete_version(bucket, key, &current.version_id, false).await?.is_some(),
                };
                if expired {
                    report.expired += 1;
                    self.objects.released();
                }
            }
            Action::DeleteVersion(version_id) => {
                let Some(version) = history.iter().find(|v| v.record.version_id == version_id) else { return Ok(()) };
                if version.record.lock.protects(now, false).is_some() {
                    report.kept_by_lock += 1;
                    return Ok(());
                }
                match self.objects.versions.delete_version(bucket, key, &version_id, false).await {
                    Ok(Some(_)) => {
                        report.deleted += 1;
                        self.objects.released();
                    }
                    Ok(None) => {}
                    // Locked since it was read: kept, as it should be.
                    Err(latchkey_meta::MetaError::ObjectLocked(_)) => report.kept_by_lock += 1,
                    Err(e) => return Err(e.into()),
                }
            }
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
        let judged_at = OffsetDateTime::now_utc() + self.settings.clock_offset;
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
