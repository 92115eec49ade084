//! On-demand scan jobs (`latchkey scan-job`), behind [`ScanJobStore`]: a job records what was
//! asked; the versions it chose go into the scan queue (`findings.rs`) with its id, and its
//! progress is read from there: queued versions are what remains, dead ones what failed.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::MetaResult;

#[async_trait]
pub trait ScanJobStore: Send + Sync + 'static {
    async fn create_scan_job(&self, job: &ScanJob) -> MetaResult<()>;
    /// Queues `versions` (key, version id) of the job's bucket for the job, in one transaction,
    /// and adds them to its total. A version already queued joins the job; one given up stays
    /// given up (a job does not bring back a bomb or a crash loop), counted as failed.
    async fn queue_job_scans(&self, job_id: &str, bucket: &str, versions: &[(String, String)]) -> MetaResult<()>;
    /// Jobs newest first, at most `limit`.
    async fn list_scan_jobs(&self, limit: u32) -> MetaResult<Vec<ScanJobStatus>>;
    async fn get_scan_job(&self, id: &str) -> MetaResult<Option<ScanJobStatus>>;
    /// Stops a job: its versions that were scanned before leave the queue; the ones never
    /// scanned stay queued as uploads' are. `false` when there is no such job or it was
    /// cancelled already.
    async fn cancel_scan_job(&self, id: &str, at: OffsetDateTime) -> MetaResult<bool>;
}

/// What a job asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanJob {
    pub id: String,
    pub bucket: String,
    pub prefix: String,
    /// How versions were chosen (sampling, extensions, size), as given.
    pub criteria: serde_json::Value,
    /// Who asked (an ARN).
    pub principal: String,
    pub created: OffsetDateTime,
}

/// A job and how far it got.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanJobStatus {
    pub job: ScanJob,
    /// Versions queued for it.
    pub total: u64,
    /// Still queued (or being scanned).
    pub remaining: u64,
    /// Given up.
    pub failed: u64,
    pub cancelled: Option<OffsetDateTime>,
}

impl ScanJobStatus {
    /// `cancelled`, `done` (nothing left), or `running`.
    pub fn state(&self) -> &'static str {
        match (self.cancelled, self.remaining) {
            (Some(_), _) => "cancelled",
            (None, 0) => "done",
            (None, _) => "running",
        }
    }
}

pub(crate) const SELECT_JOBS: &str = "SELECT j.*,
       (SELECT COUNT(*) FROM scan_queue q WHERE q.scan_job = j.id AND NOT q.dead) AS remaining,
       (SELECT COUNT(*) FROM scan_queue q WHERE q.scan_job = j.id AND q.dead) AS failed
     FROM scan_jobs j";

pub(crate) fn job_from_row(row: &impl crate::rows::Columns) -> MetaResult<ScanJobStatus> {
    let count = |column: &str| row.int(column).map(crate::rows::to_u64);
    Ok(ScanJobStatus {
        job: ScanJob {
            id: row.text("id")?,
            bucket: row.text("bucket")?,
            prefix: row.text("prefix")?,
            criteria: serde_json::from_str(&row.text("criteria")?)?,
            principal: row.text("principal")?,
            created: crate::rows::from_ms(row.int("created_ms")?),
        },
        total: count("total")?,
        remaining: count("remaining")?,
        failed: count("failed")?,
        cancelled: row.opt_int("cancelled_ms")?.map(crate::rows::from_ms),
    })
}

/// Implements [`ScanJobStore`] for a SQL store from its writer and reader pools.
macro_rules! scan_job_store {
    ($store:ty, writer: $writer:ident, reader: $reader:ident) => {
        #[async_trait::async_trait]
        impl $crate::scan_jobs::ScanJobStore for $store {
            async fn create_scan_job(&self, job: &$crate::scan_jobs::ScanJob) -> $crate::MetaResult<()> {
                $crate::statements::bound!(
                    "INSERT INTO scan_jobs (id, bucket, prefix, criteria, principal, created_ms, total)
                     VALUES ($1, $2, $3, $4, $5, $6, 0)",
                    &job.id,
                    &job.bucket,
                    &job.prefix,
                    serde_json::to_string(&job.criteria)?,
                    &job.principal,
                    $crate::rows::to_ms(job.created),
                )
                .execute(&self.$writer)
                .await?;
                Ok(())
            }

            async fn queue_job_scans(
                &self,
                job_id: &str,
                bucket: &str,
                versions: &[(String, String)],
            ) -> $crate::MetaResult<()> {
                // Due in the order asked for, behind what was queued before.
                let now = $crate::rows::to_ms(time::OffsetDateTime::now_utc());
                $crate::transaction!(self.$writer, |tx| {
                    for (key, version_id) in versions {
                        $crate::statements::bound!(
                            "INSERT INTO scan_queue (bucket, key, version_id, scan_job, due_ms) VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (bucket, key, version_id) DO UPDATE SET scan_job = excluded.scan_job",
                            bucket,
                            key,
                            version_id,
                            job_id,
                            now,
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                    $crate::statements::bound!(
                        "UPDATE scan_jobs SET total = total + $1 WHERE id = $2",
                        i64::try_from(versions.len()).unwrap_or(i64::MAX),
                        job_id,
                    )
                    .execute(&mut *tx)
                    .await?;
                    Ok(())
                })
            }

            async fn list_scan_jobs(&self, limit: u32) -> $crate::MetaResult<Vec<$crate::scan_jobs::ScanJobStatus>> {
                let sql = format!("{} ORDER BY j.created_ms DESC, j.id DESC LIMIT $1", $crate::scan_jobs::SELECT_JOBS);
                let rows = sqlx::query(&sql).bind(i64::from(limit)).fetch_all(&self.$reader).await?;
                rows.iter().map($crate::scan_jobs::job_from_row).collect()
            }

            async fn get_scan_job(&self, id: &str) -> $crate::MetaResult<Option<$crate::scan_jobs::ScanJobStatus>> {
                let sql = format!("{} WHERE j.id = $1", $crate::scan_jobs::SELECT_JOBS);
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.$reader).await?;
                row.as_ref().map($crate::scan_jobs::job_from_row).transpose()
            }

            async fn cancel_scan_job(&self, id: &str, at: time::OffsetDateTime) -> $crate::MetaResult<bool> {
                $crate::transaction!(self.$writer, |tx| {
                    let cancelled = $crate::statements::bound!(
                        "UPDATE scan_jobs SET cancelled_ms = $1 WHERE id = $2 AND cancelled_ms IS NULL",
                        $crate::rows::to_ms(at),
                        id,
                    )
                    .execute(&mut *tx)
                    .await?;
                    if cancelled.rows_affected() == 0 {
                        return Ok(false);
                    }
                    sqlx::query(
                        "DELETE FROM scan_queue WHERE scan_job = $1 AND claimed_by IS NULL AND EXISTS (
                           SELECT 1 FROM objects o WHERE o.bucket = scan_queue.bucket AND o.key = scan_queue.key
                             AND o.version_id = scan_queue.version_id AND o.sensitivity IS NOT NULL)",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE scan_queue SET scan_job = NULL WHERE scan_job = $1").bind(id).execute(&mut *tx).await?;
                    Ok(true)
                })
            }
        }
    };
}
pub(crate) use scan_job_store;

/// Behaviour every `ScanJobStore` must show, run against each backend.
#[cfg(test)]
pub(crate) mod conformance {
    use std::sync::Arc;

    use time::Duration;

    use super::{ScanJob, ScanJobStore};
    use crate::conformance::{record, with_bucket};
    use crate::findings::{FindingsStore, ScanCompletion, ScanOutcome};
    use crate::{MetaStore, ScanStatus, Sensitivity};

    /// A job's versions are queued under its id and counted down as they are scanned; a version
    /// already queued joins it; cancelling drops what was scanned before and keeps what never was.
    pub async fn jobs_queue_count_down_and_cancel<S: ScanJobStore + FindingsStore + MetaStore>(store: Arc<S>) {
        let now = crate::findings::conformance::soon();
        let meta = with_bucket(store.clone()).await;
        for (key, blob) in [("a", "x1"), ("b", "x2"), ("c", "x3")] {
            meta.put_object(&record("b", key, blob)).await.unwrap();
        }
        store.set_scan_on_upload(true).await.unwrap();
        meta.put_object(&record("b", "d", "x4")).await.unwrap();
        let job = ScanJob {
            id: "sj-1".into(),
            bucket: "b".into(),
            prefix: String::new(),
            criteria: serde_json::json!({"sampling": 100}),
            principal: "arn:aws:iam::000000000000:root".into(),
            created: now,
        };
        store.create_scan_job(&job).await.unwrap();
        let versions: Vec<_> =
            ["a", "b", "d"].iter().map(|k| (k.to_string(), format!("v-x{}", k.as_bytes()[0] - b'a' + 1))).collect();
        store.queue_job_scans("sj-1", "b", &versions).await.unwrap();
        let status = store.get_scan_job("sj-1").await.unwrap().unwrap();
        assert_eq!((status.job.clone(), status.total, status.remaining, status.failed), (job.clone(), 3, 3, 0));
        assert_eq!(status.state(), "running");

        // Scan "a"; give up on "d" (it was queued by its upload and joined the job).
        let claimed = store.claim_scans("w", now, now + Duration::minutes(1), 10).await.unwrap();
        let mut keys: Vec<_> = claimed.iter().map(|s| s.key.clone()).collect();
        keys.sort();
        assert_eq!(keys, ["a", "b", "d"], "c was neither uploaded while scanning was on nor chosen");
        for scan in &claimed {
            match scan.key.as_str() {
                "a" => {
                    let status = ScanStatus { sensitivity: Some(Sensitivity::None), ..ScanStatus::default() };
                    let outcome = ScanOutcome { scan: scan.clone(), status, finding: None };
                    assert_eq!(store.complete_scan("w", &outcome).await.unwrap(), ScanCompletion::Recorded);
                }
                "d" => assert!(store.fail_scan("w", scan, "unreadable", now, true).await.unwrap()),
                _ => assert!(store.fail_scan("w", scan, "busy", now, false).await.unwrap()),
            }
        }
        let status = store.get_scan_job("sj-1").await.unwrap().unwrap();
        assert_eq!((status.total, status.remaining, status.failed), (3, 1, 1));
        // Queued again by a job, a dead version stays dead: a job brings back no bomb.
        store.queue_job_scans("sj-1", "b", &versions[2..]).await.unwrap();
        let status = store.get_scan_job("sj-1").await.unwrap().unwrap();
        assert_eq!((status.total, status.remaining, status.failed), (4, 1, 1));

        // Rescanning "a" was asked for too: cancelling drops it (scanned before), keeps "b".
        store.queue_job_scans("sj-1", "b", &versions[..1]).await.unwrap();
        assert!(store.cancel_scan_job("sj-1", now).await.unwrap());
        assert!(!store.cancel_scan_job("sj-1", now).await.unwrap(), "once");
        assert!(!store.cancel_scan_job("sj-nope", now).await.unwrap());
        let status = store.get_scan_job("sj-1").await.unwrap().unwrap();
        assert_eq!((status.state(), status.remaining, status.cancelled), ("cancelled", 0, Some(now)));
        let later = now + Duration::minutes(5);
        let left = store.claim_scans("w", later, later + Duration::minutes(1), 10).await.unwrap();
        let mut keys: Vec<_> = left.iter().map(|s| s.key.clone()).collect();
        keys.sort();
        assert_eq!(keys, ["b"], "never scanned: still queued (and d stays dead)");
        assert_eq!(store.list_scan_jobs(10).await.unwrap().len(), 1);
        assert!(store.get_scan_job("sj-nope").await.unwrap().is_none());
    }
}
