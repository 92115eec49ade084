//! Sensitive-data discovery, behind [`FindingsStore`]: the scan queue and the findings.
//!
//! - The queue: triggers on `objects` queue every new version, in the transaction that writes it,
//!   while scanning on upload is on ([`FindingsStore::set_scan_on_upload`]), and drop a queued
//!   version once it is replaced or deleted. Workers on any replica claim rows under a lease
//!   ([`FindingsStore::claim_scans`]); a claim whose worker died runs out and the row is claimed
//!   again. A completion is recorded only under the claim that scanned it, in one transaction
//!   with the version's scan status and its finding, so a version is never recorded twice.
//! - Findings: one per object version in which sensitive data was found, kept after the object
//!   goes, listed newest first.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{MetaResult, ScanStatus};

#[async_trait]
pub trait FindingsStore: Send + Sync + 'static {
    /// Whether new object versions are queued for a scan from now on.
    async fn set_scan_on_upload(&self, on: bool) -> MetaResult<()>;
    /// Claims for `worker` up to `limit` queued versions due at `now` (never claimed, waiting
    /// out a retry, or left by a worker whose lease ran out), until `lease_until`; each claim
    /// counts as an attempt.
    async fn claim_scans(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> MetaResult<Vec<QueuedScan>>;
    /// Extends `worker`'s claim; `false` when it no longer holds it.
    async fn renew_scan_claim(&self, worker: &str, scan: &QueuedScan, lease_until: OffsetDateTime) -> MetaResult<bool>;
    /// Records a scan `worker` completed under its claim, in one transaction: the queue row
    /// goes, and if the version is still the object's current one, its status is set and its
    /// finding (if any) recorded.
    async fn complete_scan(&self, worker: &str, outcome: &ScanOutcome) -> MetaResult<ScanCompletion>;
    /// A failed attempt under `worker`'s claim: due again at `retry_at`, or kept dead with its
    /// error when `give_up`. `false` when the worker no longer held the claim (nothing changed).
    async fn fail_scan(
        &self,
        worker: &str,
        scan: &QueuedScan,
        error: &str,
        retry_at: OffsetDateTime,
        give_up: bool,
    ) -> MetaResult<bool>;
    /// When the next queued version is due (`None`: nothing is queued), read without writing,
    /// so that idle workers do not take the writer.
    async fn next_scan_due(&self) -> MetaResult<Option<OffsetDateTime>>;
    /// Releases claims whose workers cannot be running any more, so that they are claimed at
    /// once instead of when their lease runs out: on SQLite (one server per database, under its
    /// lock) every claim; on PostgreSQL none, since other replicas may hold them.
    async fn release_stale_scan_claims(&self) -> MetaResult<u64>;
    /// How many versions wait (due or not), are claimed, and are dead, at `now`.
    async fn scan_queue_counts(&self, now: OffsetDateTime) -> MetaResult<ScanQueueCounts>;
    /// Findings newest first.
    async fn list_findings(&self, filter: &FindingFilter) -> MetaResult<Vec<Finding>>;
    async fn get_finding(&self, id: &str) -> MetaResult<Option<Finding>>;
}

/// A queued object version, as claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedScan {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    /// Claims so far, this one included.
    pub attempts: u32,
}

/// What a scan of a claimed version concluded.
#[derive(Debug, Clone)]
pub struct ScanOutcome {
    pub scan: QueuedScan,
    pub status: ScanStatus,
    pub finding: Option<Finding>,
}

/// What became of a completed scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanCompletion {
    /// Status and finding recorded.
    Recorded,
    /// The version was replaced or deleted meanwhile: nothing recorded, the row is gone.
    Superseded,
    /// The worker's claim ran out and was taken, or the row was completed already: nothing
    /// recorded.
    ClaimLost,
}

/// Sensitive data found in one object version.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    /// As Macie names them: `SensitiveData:S3Object/Credentials` etc.
    pub finding_type: String,
    /// `Low`, `Medium` or `High`.
    pub severity: String,
    /// The scanner's report: identifiers, counts, locations with redacted samples.
    pub detail: serde_json::Value,
    /// The remediation applied (`tag`, `quarantine`, `notify`).
    pub actions: Vec<String>,
    pub scanned: OffsetDateTime,
    pub engine_version: String,
}

/// Which findings a listing returns.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    /// Continue after this finding (the last of the previous page).
    pub after: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanQueueCounts {
    pub queued: u64,
    pub claimed: u64,
    pub dead: u64,
}

/// Claims due rows; `{lock}` is PostgreSQL's `FOR UPDATE SKIP LOCKED` (so that replicas claim
/// different rows without waiting) or nothing on SQLite, whose one writer runs it alone.
macro_rules! claim_scans_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE scan_queue SET claimed_by = $1, due_ms = $2, attempts = attempts + 1
             WHERE (bucket, key, version_id) IN (
               SELECT bucket, key, version_id FROM scan_queue WHERE NOT dead AND due_ms <= $3
               ORDER BY due_ms LIMIT $4 ",
            $lock,
            ")
             RETURNING bucket, key, version_id, attempts"
        )
    };
}
pub(crate) use claim_scans_sql;

pub(crate) fn finding_from_row(row: &impl crate::rows::Columns) -> MetaResult<Finding> {
    Ok(Finding {
        id: row.text("id")?,
        bucket: row.text("bucket")?,
        key: row.text("key")?,
        version_id: row.text("version_id")?,
        finding_type: row.text("finding_type")?,
        severity: row.text("severity")?,
        detail: serde_json::from_str(&row.text("detail")?)?,
        actions: serde_json::from_str(&row.text("actions")?)?,
        scanned: crate::rows::from_ms(row.int("scanned_ms")?),
        engine_version: row.text("engine_version")?,
    })
}

/// Implements [`FindingsStore`] for a SQL store from its writer and reader pools, the claim
/// statement for its backend, whether stale claims may be released at start, and `$changed`,
/// called with `(store, bucket, key)` after a version's status may have changed (SQLite drops
/// its cached record).
macro_rules! findings_store {
    ($store:ty, writer: $writer:ident, reader: $reader:ident, claim: $claim:expr, release_stale: $release:expr,
     changed: $changed:expr) => {
        #[async_trait::async_trait]
        impl $crate::findings::FindingsStore for $store {
            async fn set_scan_on_upload(&self, on: bool) -> $crate::MetaResult<()> {
                sqlx::query("UPDATE scan_settings SET on_upload = $1 WHERE id = 1").bind(on).execute(&self.$writer).await?;
                Ok(())
            }

            async fn claim_scans(
                &self,
                worker: &str,
                now: time::OffsetDateTime,
                lease_until: time::OffsetDateTime,
                limit: u32,
            ) -> $crate::MetaResult<Vec<$crate::findings::QueuedScan>> {
                let rows: Vec<(String, String, String, i64)> = sqlx::query_as($claim)
                    .bind(worker)
                    .bind($crate::rows::to_ms(lease_until))
                    .bind($crate::rows::to_ms(now))
                    .bind(i64::from(limit))
                    .fetch_all(&self.$writer)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(bucket, key, version_id, attempts)| $crate::findings::QueuedScan {
                        bucket,
                        key,
                        version_id,
                        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    })
                    .collect())
            }

            async fn renew_scan_claim(
                &self,
                worker: &str,
                scan: &$crate::findings::QueuedScan,
                lease_until: time::OffsetDateTime,
            ) -> $crate::MetaResult<bool> {
                let done = $crate::statements::bound!(
                    "UPDATE scan_queue SET due_ms = $1
                     WHERE bucket = $2 AND key = $3 AND version_id = $4 AND claimed_by = $5",
                    $crate::rows::to_ms(lease_until),
                    &scan.bucket,
                    &scan.key,
                    &scan.version_id,
                    worker,
                )
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn complete_scan(
                &self,
                worker: &str,
                outcome: &$crate::findings::ScanOutcome,
            ) -> $crate::MetaResult<$crate::findings::ScanCompletion> {
                use $crate::findings::ScanCompletion;
                let scan = &outcome.scan;
                let completion = $crate::transaction!(self.$writer, |tx| {
                    let claimed = $crate::statements::bound!(
                        "DELETE FROM scan_queue WHERE bucket = $1 AND key = $2 AND version_id = $3 AND claimed_by = $4",
                        &scan.bucket,
                        &scan.key,
                        &scan.version_id,
                        worker,
                    )
                    .execute(&mut *tx)
                    .await?;
                    if claimed.rows_affected() == 0 {
                        // The triggers drop a replaced or deleted version's row, claimed or not
                        // (unless versioning keeps the version).
                        let current: Option<i64> = $crate::statements::bound!(
                            "SELECT 1 FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3
                             UNION ALL SELECT 1 FROM object_versions
                             WHERE bucket = $1 AND key = $2 AND version_id = $3 AND NOT delete_marker",
                            &scan.bucket,
                            &scan.key,
                            &scan.version_id,
                        )
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|_| 1);
                        return Ok(match current {
                            Some(_) => ScanCompletion::ClaimLost,
                            None => ScanCompletion::Superseded,
                        });
                    }
                    let status = &outcome.status;
                    let mut updated = 0;
                    // The version is current, or noncurrent in a versioned bucket.
                    for table in ["objects", "object_versions"] {
                        let update = format!(
                            "UPDATE {table} SET sensitivity = $1, scan_partial = $2, sensitivity_tagged = $3,
                               quarantined = $4
                             WHERE bucket = $5 AND key = $6 AND version_id = $7"
                        );
                        updated += $crate::statements::bound!(
                            &update,
                            status.sensitivity.map($crate::Sensitivity::as_str),
                            status.partial,
                            status.tagged,
                            status.quarantined,
                            &scan.bucket,
                            &scan.key,
                            &scan.version_id,
                        )
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                    if updated == 0 {
                        return Ok(ScanCompletion::Superseded);
                    }
                    if let Some(f) = &outcome.finding {
                        $crate::statements::bound!(
                            "INSERT INTO findings (id, bucket, key, version_id, finding_type, severity, detail, actions,
                               scanned_ms, engine_version)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                             ON CONFLICT (bucket, key, version_id) DO NOTHING",
                            &f.id,
                            &f.bucket,
                            &f.key,
                            &f.version_id,
                            &f.finding_type,
                            &f.severity,
                            serde_json::to_string(&f.detail)?,
                            serde_json::to_string(&f.actions)?,
                            $crate::rows::to_ms(f.scanned),
                            &f.engine_version,
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                    Ok(ScanCompletion::Recorded)
                });
                // Even on an error: the status may have committed before the answer was lost.
                ($changed)(self, scan.bucket.as_str(), scan.key.as_str());
                completion
            }

            async fn fail_scan(
                &self,
                worker: &str,
                scan: &$crate::findings::QueuedScan,
                error: &str,
                retry_at: time::OffsetDateTime,
                give_up: bool,
            ) -> $crate::MetaResult<bool> {
                let done = $crate::statements::bound!(
                    "UPDATE scan_queue SET claimed_by = NULL, due_ms = $1, last_error = $2, dead = $3
                     WHERE bucket = $4 AND key = $5 AND version_id = $6 AND claimed_by = $7",
                    $crate::rows::to_ms(retry_at),
                    error,
                    give_up,
                    &scan.bucket,
                    &scan.key,
                    &scan.version_id,
                    worker,
                )
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn next_scan_due(&self) -> $crate::MetaResult<Option<time::OffsetDateTime>> {
                let due: Option<i64> = sqlx::query_scalar("SELECT MIN(due_ms) FROM scan_queue WHERE NOT dead")
                    .fetch_one(&self.$reader)
                    .await?;
                Ok(due.map($crate::rows::from_ms))
            }

            async fn release_stale_scan_claims(&self) -> $crate::MetaResult<u64> {
                if !$release {
                    return Ok(0);
                }
                let done = sqlx::query(
                    "UPDATE scan_queue SET claimed_by = NULL, due_ms = 0 WHERE claimed_by IS NOT NULL AND NOT dead",
                )
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected())
            }

            async fn scan_queue_counts(
                &self,
                now: time::OffsetDateTime,
            ) -> $crate::MetaResult<$crate::findings::ScanQueueCounts> {
                let (queued, claimed, dead): (i64, i64, i64) = sqlx::query_as(
                    "SELECT
                       COUNT(*) FILTER (WHERE NOT dead AND (claimed_by IS NULL OR due_ms <= $1)),
                       COUNT(*) FILTER (WHERE NOT dead AND claimed_by IS NOT NULL AND due_ms > $1),
                       COUNT(*) FILTER (WHERE dead)
                     FROM scan_queue",
                )
                .bind($crate::rows::to_ms(now))
                .fetch_one(&self.$reader)
                .await?;
                let n = |v: i64| u64::try_from(v).unwrap_or(0);
                Ok($crate::findings::ScanQueueCounts { queued: n(queued), claimed: n(claimed), dead: n(dead) })
            }

            async fn list_findings(
                &self,
                filter: &$crate::findings::FindingFilter,
            ) -> $crate::MetaResult<Vec<$crate::findings::Finding>> {
                let prefix = filter.prefix.as_deref().unwrap_or("");
                let rows = $crate::statements::bound!(
                    "SELECT * FROM findings
                     WHERE (CAST($1 AS TEXT) IS NULL OR bucket = $1)
                       AND key >= $2 AND (CAST($3 AS TEXT) IS NULL OR key < $3)
                       AND (CAST($4 AS TEXT) IS NULL
                            OR (scanned_ms, id) < (SELECT scanned_ms, id FROM findings WHERE id = $4))
                     ORDER BY scanned_ms DESC, id DESC LIMIT $5",
                    filter.bucket.as_deref(),
                    prefix,
                    $crate::prefix_successor(prefix),
                    filter.after.as_deref(),
                    i64::from(filter.limit),
                )
                .fetch_all(&self.$reader)
                .await?;
                rows.iter().map($crate::findings::finding_from_row).collect()
            }

            async fn get_finding(&self, id: &str) -> $crate::MetaResult<Option<$crate::findings::Finding>> {
                let row = sqlx::query("SELECT * FROM findings WHERE id = $1").bind(id).fetch_optional(&self.$reader).await?;
                row.as_ref().map($crate::findings::finding_from_row).transpose()
            }
        }
    };
}
pub(crate) use findings_store;

/// Behaviour every `FindingsStore` must show, run against each backend.
#[cfg(test)]
pub(crate) mod conformance {
    use std::sync::Arc;

    use time::{Duration, OffsetDateTime};

    use super::{FindingFilter, FindingsStore, QueuedScan, ScanCompletion, ScanOutcome};
    use crate::conformance::{record, with_bucket};
    use crate::{MetaStore, ScanStatus, Sensitivity};

    /// A moment (whole milliseconds, as stored) by which every version written in a test is due.
    pub fn soon() -> OffsetDateTime {
        crate::rows::from_ms(crate::rows::to_ms(OffsetDateTime::now_utc() + Duration::seconds(10)))
    }

    fn finding(scan: &QueuedScan, id: &str, at: OffsetDateTime) -> super::Finding {
        super::Finding {
            id: id.into(),
            bucket: scan.bucket.clone(),
            key: scan.key.clone(),
            version_id: scan.version_id.clone(),
            finding_type: "SensitiveData:S3Object/Credentials".into(),
            severity: "High".into(),
            detail: serde_json::json!({"identifiers": [{"id": "PEM_PRIVATE_KEY", "count": 1}]}),
            actions: vec!["tag".into(), "quarantine".into()],
            scanned: at,
            engine_version: "1".into(),
        }
    }

    /// Versions are queued only while scanning on upload is on; a claim is exclusive until its
    /// lease runs out; a completion records status and finding once, under the claim only.
    pub async fn queued_versions_are_claimed_scanned_and_recorded_once<S: FindingsStore + MetaStore>(store: Arc<S>) {
        let now = soon();
        let lease = now + Duration::minutes(1);
        let meta = with_bucket(store.clone()).await;
        meta.put_object(&record("b", "before", "x0")).await.unwrap();
        store.set_scan_on_upload(true).await.unwrap();
        meta.put_object(&record("b", "key.pem", "x1")).await.unwrap();
        let claimed = store.claim_scans("w1", now, lease, 10).await.unwrap();
        assert_eq!(claimed.len(), 1, "only the version written while scanning is on: {claimed:?}");
        let scan = claimed[0].clone();
        assert_eq!((scan.key.as_str(), scan.version_id.as_str(), scan.attempts), ("key.pem", "v-x1", 1));
        assert!(store.claim_scans("w2", now, lease, 10).await.unwrap().is_empty(), "claimed rows are not due");
        let counts = store.scan_queue_counts(now).await.unwrap();
        assert_eq!((counts.queued, counts.claimed, counts.dead), (0, 1, 0));

        // Past the lease another worker takes it; the first worker's completion then records nothing.
        let later = lease + Duration::seconds(1);
        let retaken = store.claim_scans("w2", later, later + Duration::minutes(1), 10).await.unwrap();
        assert_eq!(retaken.len(), 1);
        assert_eq!(retaken[0].attempts, 2, "every claim is an attempt");
        let status =
            ScanStatus { sensitivity: Some(Sensitivity::High), partial: true, tagged: true, quarantined: true };
        let outcome = ScanOutcome { scan: scan.clone(), status, finding: Some(finding(&scan, "f1", now)) };
        assert!(!store.renew_scan_claim("w1", &scan, later).await.unwrap());
        assert_eq!(store.complete_scan("w1", &outcome).await.unwrap(), ScanCompletion::ClaimLost);
        assert!(store.get_finding("f1").await.unwrap().is_none());
        assert!(store.renew_scan_claim("w2", &scan, later + Duration::minutes(2)).await.unwrap());
        assert_eq!(store.complete_scan("w2", &outcome).await.unwrap(), ScanCompletion::Recorded);
        assert_eq!(store.complete_scan("w2", &outcome).await.unwrap(), ScanCompletion::ClaimLost, "once");

        let object = meta.get_object("b", "key.pem").await.unwrap().unwrap();
        assert_eq!(object.scan, status, "the status reads back (and no cached record hides it)");
        let tags = object.tag_set();
        assert_eq!((tags[0].key.as_str(), tags[0].value.as_str()), ("latchkey:sensitivity", "High"));
        assert_eq!(store.get_finding("f1").await.unwrap().unwrap(), finding(&scan, "f1", now));

        // A new version starts unscanned and is queued; the old one's finding stays.
        meta.put_object(&record("b", "key.pem", "x2")).await.unwrap();
        let object = meta.get_object("b", "key.pem").await.unwrap().unwrap();
        assert_eq!(object.scan, ScanStatus::default());
        assert!(object.tag_set().is_empty());
        let next = store.claim_scans("w1", later, later + Duration::minutes(1), 10).await.unwrap();
        assert_eq!(next.iter().map(|s| s.version_id.as_str()).collect::<Vec<_>>(), ["v-x2"]);
        assert!(store.get_finding("f1").await.unwrap().is_some());

        // Replaced while being scanned: superseded, nothing recorded.
        meta.put_object(&record("b", "key.pem", "x3")).await.unwrap();
        let stale = ScanOutcome { scan: next[0].clone(), status, finding: Some(finding(&next[0], "f2", now)) };
        assert_eq!(store.complete_scan("w1", &stale).await.unwrap(), ScanCompletion::Superseded);
        assert!(store.get_finding("f2").await.unwrap().is_none());

        store.set_scan_on_upload(false).await.unwrap();
        meta.put_object(&record("b", "off", "x4")).await.unwrap();
        let left = store.claim_scans("w1", later, later + Duration::minutes(1), 10).await.unwrap();
        assert_eq!(left.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), ["key.pem"], "x3 only: {left:?}");
    }

    /// A failed attempt waits for its retry time; one given up is kept dead, not claimed again;
    /// a deleted object's queued version goes.
    pub async fn failed_scans_retry_then_stay_dead<S: FindingsStore + MetaStore>(store: Arc<S>) {
        let now = soon();
        let meta = with_bucket(store.clone()).await;
        store.set_scan_on_upload(true).await.unwrap();
        meta.put_object(&record("b", "k", "x1")).await.unwrap();
        meta.put_object(&record("b", "gone", "x2")).await.unwrap();
        meta.delete_object("b", "gone").await.unwrap();
        let scan = store.claim_scans("w", now, now + Duration::minutes(1), 10).await.unwrap().remove(0);
        assert_eq!(scan.key, "k", "the deleted object's version left the queue");
        assert!(store.next_scan_due().await.unwrap().is_some_and(|due| due > now), "claimed: due at its lease's end");
        assert!(store.fail_scan("w", &scan, "blob unreadable", now + Duration::seconds(30), false).await.unwrap());
        assert!(!store.fail_scan("other", &scan, "x", now, true).await.unwrap(), "only under the claim");
        assert_eq!(store.next_scan_due().await.unwrap(), Some(now + Duration::seconds(30)));
        assert!(store.claim_scans("w", now, now + Duration::minutes(1), 10).await.unwrap().is_empty());
        let retry = now + Duration::seconds(31);
        let again = store.claim_scans("w", retry, retry + Duration::minutes(1), 10).await.unwrap().remove(0);
        assert_eq!(again.attempts, 2);
        assert!(store.fail_scan("w", &again, "blob unreadable", retry, true).await.unwrap());
        assert_eq!(store.next_scan_due().await.unwrap(), None, "dead rows are not due");
        let far = now + Duration::days(1);
        assert!(store.claim_scans("w", far, far, 10).await.unwrap().is_empty(), "dead rows stay unclaimed");
        let counts = store.scan_queue_counts(far).await.unwrap();
        assert_eq!((counts.queued, counts.claimed, counts.dead), (0, 0, 1));
    }

    /// Findings list newest first, by bucket and prefix, in pages.
    pub async fn findings_list_newest_first_in_pages<S: FindingsStore + MetaStore>(store: Arc<S>) {
        let now = soon();
        let meta = with_bucket(store.clone()).await;
        store.set_scan_on_upload(true).await.unwrap();
        for (n, key) in ["docs/a", "docs/b", "other"].iter().enumerate() {
            meta.put_object(&record("b", key, &format!("x{n}"))).await.unwrap();
        }
        let claimed = store.claim_scans("w", now, now + Duration::minutes(1), 10).await.unwrap();
        assert_eq!(claimed.len(), 3);
        for (n, scan) in claimed.iter().enumerate() {
            let at = now + Duration::seconds(n as i64);
            let status = ScanStatus { sensitivity: Some(Sensitivity::Low), ..ScanStatus::default() };
            let f = finding(scan, &format!("f-{}", scan.key), at);
            let outcome = ScanOutcome { scan: scan.clone(), status, finding: Some(f) };
            assert_eq!(store.complete_scan("w", &outcome).await.unwrap(), ScanCompletion::Recorded);
        }
        let order: Vec<String> = claimed.iter().rev().map(|s| format!("f-{}", s.key)).collect();
        let all = store.list_findings(&FindingFilter { limit: 10, ..FindingFilter::default() }).await.unwrap();
        assert_eq!(all.iter().map(|f| f.id.clone()).collect::<Vec<_>>(), order);
        let page = FindingFilter { limit: 1, prefix: Some("docs/".into()), ..FindingFilter::default() };
        let first = store.list_findings(&page).await.unwrap();
        let second =
            store.list_findings(&FindingFilter { after: Some(first[0].id.clone()), ..page.clone() }).await.unwrap();
        let third =
            store.list_findings(&FindingFilter { after: Some(second[0].id.clone()), ..page.clone() }).await.unwrap();
        let mut docs = [first[0].key.clone(), second[0].key.clone()];
        docs.sort();
        assert_eq!(docs, ["docs/a", "docs/b"]);
        assert!(third.is_empty());
        let elsewhere = FindingFilter { bucket: Some("nope".into()), limit: 10, ..FindingFilter::default() };
        assert!(store.list_findings(&elsewhere).await.unwrap().is_empty());
    }
}
