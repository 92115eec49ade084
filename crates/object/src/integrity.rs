//! Blob integrity: the orphan sweep and `latchkey fsck`.
//!
//! A write makes its blob durable, then commits the record naming it; a crash (or a failed
//! commit whose outcome is unknown) in between leaves a blob no record names. The sweep finds
//! blob files older than a grace period, asks the store which of them any record names (an
//! object, an upload's part, the release queue), and deletes the others. Only old files are
//! candidates, so a blob another replica sharing the data dir has just written and is about to
//! commit is never taken; deleting a file another replica's sweep took already is no error.
//! The check ([`ObjectService::check_blobs`]) reports records whose blob is missing or of the
//! wrong size, and orphans, and changes nothing.

use std::time::{Duration, SystemTime};

use latchkey_meta::KeyRange;

use crate::{ObjectResult, ObjectService};

/// Blob ids asked about per store query.
const SWEEP_BATCH: usize = 500;
/// Records read per page by the check.
const CHECK_PAGE: u32 = 1000;

/// What [`ObjectService::check_blobs`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BlobCheck {
    /// Object versions and upload parts read.
    pub records: u64,
    /// `s3://bucket/key` (or `upload UPLOAD part N`) whose blob is missing.
    pub missing: Vec<String>,
    /// `(what, recorded size, file size)` where they differ.
    pub wrong_size: Vec<(String, u64, u64)>,
    /// Blobs older than the grace period that no record names.
    pub orphans: Vec<String>,
}

impl BlobCheck {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.wrong_size.is_empty() && self.orphans.is_empty()
    }
}

impl ObjectService {
    /// The blobs written more than `grace` ago that no record names.
    pub async fn orphaned_blobs(&self, grace: Duration) -> ObjectResult<Vec<String>> {
        let Some(cutoff) = SystemTime::now().checked_sub(grace) else {
            return Ok(Vec::new());
        };
        let mut orphans = Vec::new();
        for shard in 0..=u8::MAX {
            let aged = self.blobs.aged_blobs(shard, cutoff).await.map_err(latchkey_storage::StorageError::Io)?;
            for batch in aged.chunks(SWEEP_BATCH) {
                let named = self.meta.referenced_blobs(batch).await?;
                orphans.extend(batch.iter().filter(|id| !named.contains(id)).cloned());
            }
        }
        Ok(orphans)
    }

    /// Deletes the orphaned blobs (see [`ObjectService::orphaned_blobs`]); returns how many.
    /// A store that holds no bucket at all beside old blobs is not this data dir's (a wrong
    /// `--meta-url`, a fresh database): nothing is deleted, and that is logged.
    pub async fn sweep_orphans(&self, grace: Duration) -> ObjectResult<usize> {
        let orphans = self.orphaned_blobs(grace).await?;
        if orphans.is_empty() {
            return Ok(0);
        }
        if self.meta.list_buckets().await?.is_empty() {
            tracing::error!(
                blobs = orphans.len(),
                "the metadata store holds no bucket but the data dir holds old blobs: is it this data dir's store \
                 (--meta-url)? nothing is swept"
            );
            return Ok(0);
        }
        self.blobs.delete(&orphans).await;
        Ok(orphans.len())
    }

    /// Sweeps at once (what a crash left), then every `every`, until `shutdown` resolves.
    pub async fn run_orphan_sweeper(
        &self,
        grace: Duration,
        every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            match self.sweep_orphans(grace).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "orphaned blobs removed (written, never committed)"),
                Err(e) => tracing::warn!(error = %e, "the orphan sweep failed; will retry"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Compares every object version (current or kept by versioning) and upload part with its
    /// blob, and lists orphans older than `grace`. Reads only.
    pub async fn check_blobs(&self, grace: Duration) -> ObjectResult<BlobCheck> {
        let mut check = BlobCheck::default();
        for bucket in self.meta.list_buckets().await? {
            let mut within: Option<(String, i64)> = None;
            loop {
                let range = KeyRange { prefix: "", after: None, from: None, limit: CHECK_PAGE };
                let at = within.as_ref().map(|(key, seq)| (key.as_str(), *seq));
                let page = self.versions.list_versions(&bucket.name, range, at).await?;
                for version in page.iter().filter(|v| !v.delete_marker) {
                    let record = &version.record;
                    let mut what = format!("s3://{}/{}", record.bucket, record.key);
                    if !version.current {
                        what.push_str(&format!(" (noncurrent version {})", record.s3_version_id()));
                    }
                    self.compare(&mut check, what, &record.blob_id, record.size)?;
                }
                match page.last() {
                    Some(last) if page.len() == CHECK_PAGE as usize => {
                        within = Some((last.record.key.clone(), last.seq));
                    }
                    _ => break,
                }
            }
            self.check_parts(&mut check, &bucket.name).await?;
        }
        check.orphans = self.orphaned_blobs(grace).await?;
        Ok(check)
    }

    async fn check_parts(&self, check: &mut BlobCheck, bucket: &str) -> ObjectResult<()> {
        let mut marker: Option<(String, String)> = None;
        loop {
            let range =
                KeyRange { prefix: "", after: marker.as_ref().map(|m| m.0.as_str()), from: None, limit: CHECK_PAGE };
            let uploads = self.meta.list_uploads(bucket, range, marker.as_ref().map(|m| m.1.as_str())).await?;
            for upload in &uploads {
                let mut after_part = 0;
                loop {
                    let parts = self.meta.list_parts(&upload.upload_id, after_part, CHECK_PAGE).await?;
                    for part in &parts {
                        let what = format!("upload {} part {}", part.upload_id, part.part_number);
                        self.compare(check, what, &part.blob_id, part.size)?;
                    }
                    match parts.last() {
                        Some(last) if parts.len() == CHECK_PAGE as usize => after_part = last.part_number,
                        _ => break,
                    }
                }
            }
            match uploads.last() {
                Some(last) if uploads.len() == CHECK_PAGE as usize => {
                    marker = Some((last.key.clone(), last.upload_id.clone()));
                }
                _ => return Ok(()),
            }
        }
    }

    fn compare(&self, check: &mut BlobCheck, what: String, blob_id: &str, size: u64) -> ObjectResult<()> {
        check.records += 1;
        match self.blobs.blob_len(blob_id).map_err(latchkey_storage::StorageError::Io)? {
            None => check.missing.push(what),
            Some(len) if len != size => check.wrong_size.push((what, size, len)),
            Some(_) => {}
        }
        Ok(())
    }
}
