//! The scan queue's workers. Each claims one queued version at a time under a lease (renewed
//! while it streams), reads the version's bytes whatever the scan gate says (the scan is what
//! lifts it), feeds them to the engine on its own low-priority thread, and records the verdict
//! under its claim. A failure is retried with exponential backoff; past `max_attempts` the
//! version is kept dead in the queue and the failure audited.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use latchkey_audit::webhook::{Poster, Target};
use latchkey_meta::{AuditEvent, Finding, FindingsStore, QueuedScan, ScanCompletion, ScanOutcome};
use latchkey_object::{ObjectError, ObjectService};
use latchkey_scan::{ENGINE_VERSION, Engine, Report, Scanner};
use time::OffsetDateTime;

use crate::remediation::{Action, DiscoveryConfig};

/// How often an idle worker looks for queued versions.
const POLL: Duration = Duration::from_millis(250);
/// Retries wait 2^attempts seconds, at most this long.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The niceness of scan threads: under load, requests get the CPU first and scans what is left
/// (a queued scan waits; a request does not).
const SCAN_NICENESS: i32 = 10;
/// Chunks in flight between a worker and its scan thread.
const CHUNKS_AHEAD: usize = 2;

pub struct Discovery {
    findings: Arc<dyn FindingsStore>,
    objects: Arc<ObjectService>,
    engine: Arc<Engine>,
    config: DiscoveryConfig,
    webhooks: Arc<Vec<Target>>,
    poster: Poster,
    /// Names this process's claims; unique per start, so a restarted replica's old claims are
    /// not mistaken for its own.
    id: String,
}

impl Discovery {
    pub fn new(
        findings: Arc<dyn FindingsStore>,
        objects: Arc<ObjectService>,
        engine: Arc<Engine>,
        config: DiscoveryConfig,
        webhooks: Vec<Target>,
        poster: Poster,
    ) -> Self {
        let id = format!("scan-{}", hex::encode(rand::random::<[u8; 8]>()));
        Self { findings, objects, engine, config, webhooks: Arc::new(webhooks), poster, id }
    }

    /// Turns queueing on upload on or off as configured, and takes back claims no running
    /// worker can hold (see `FindingsStore::release_stale_scan_claims`).
    pub async fn prepare(&self) -> latchkey_meta::MetaResult<()> {
        self.findings.set_scan_on_upload(self.config.on_upload).await?;
        let released = self.findings.release_stale_scan_claims().await?;
        if released > 0 {
            tracing::info!(released, "scans a previous run left claimed are queued again");
        }
        Ok(())
    }

    /// Runs the workers until `shutdown` resolves; a scan in progress then stops unrecorded
    /// (its claim runs out, or is released at the next start, and it is scanned again).
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let workers: Vec<_> = (0..self.config.workers)
            .map(|n| {
                let me = self.clone();
                tokio::spawn(async move { me.work(ScanThread::spawn(me.engine.clone(), n)).await })
            })
            .collect();
        shutdown.await;
        for worker in workers {
            worker.abort();
        }
    }

    async fn work(&self, thread: std::io::Result<ScanThread>) {
        let thread = match thread {
            Ok(thread) => thread,
            Err(e) => return tracing::error!(error = %e, "cannot start a scan thread"),
        };
        loop {
            let now = OffsetDateTime::now_utc();
            match self.findings.claim_scans(&self.id, now, now + self.config.lease(), 1).await {
                Ok(claimed) if claimed.is_empty() => tokio::time::sleep(POLL).await,
                Ok(claimed) => {
                    for scan in claimed {
                        self.scan(&thread, scan).await;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim queued scans");
                    tokio::time::sleep(POLL * 4).await;
                }
            }
        }
    }

    /// Scans one claimed version and records what came of it.
    async fn scan(&self, thread: &ScanThread, scan: QueuedScan) {
        let started = std::time::Instant::now();
        let report = match self.read_and_scan(thread, &scan).await {
            Ok(Some(report)) => report,
            // Replaced or deleted meanwhile: the completion finds that and drops the row.
            Ok(None) => Report::default(),
            Err(error) => return self.failed(&scan, &error).await,
        };
        let (status, actions) = self.config.judge(&report);
        let finding = report.finding_type().map(|finding_type| Finding {
            id: format!("f-{}", hex::encode(rand::random::<[u8; 12]>())),
            bucket: scan.bucket.clone(),
            key: scan.key.clone(),
            version_id: scan.version_id.clone(),
            finding_type,
            severity: report.severity().map_or("Low", |s| crate::remediation::sensitivity(s).as_str()).to_owned(),
            detail: serde_json::to_value(&report).unwrap_or_default(),
            actions: actions.iter().map(|a| a.as_str().to_owned()).collect(),
            scanned: OffsetDateTime::now_utc(),
            engine_version: ENGINE_VERSION.to_owned(),
        });
        let outcome = ScanOutcome { scan, status, finding };
        match self.findings.complete_scan(&self.id, &outcome).await {
            Ok(ScanCompletion::Recorded) => {
                metrics::counter!("latchkey_scans_total", "outcome" => if outcome.finding.is_some() { "finding" } else { "clean" })
                    .increment(1);
                metrics::counter!("latchkey_scanned_bytes_total").increment(report.bytes);
                metrics::histogram!("latchkey_scan_duration_seconds").record(started.elapsed().as_secs_f64());
                if let Some(finding) = outcome.finding {
                    self.announce(finding, actions.contains(&Action::Notify)).await;
                }
            }
            Ok(ScanCompletion::Superseded) => {
                metrics::counter!("latchkey_scans_total", "outcome" => "superseded").increment(1)
            }
            Ok(ScanCompletion::ClaimLost) => {
                tracing::warn!(bucket = %outcome.scan.bucket, "a scan outlived its claim; another worker has it");
            }
            Err(e) => self.failed(&outcome.scan, &format!("cannot record the scan: {e}")).await,
        }
    }

    /// The version's report, or `None` when it is no longer the object's current version.
    async fn read_and_scan(&self, thread: &ScanThread, scan: &QueuedScan) -> Result<Option<Report>, String> {
        let record = match self.objects.head(&scan.bucket, &scan.key).await {
            Ok(record) if record.version_id == scan.version_id => record,
            Ok(_) | Err(ObjectError::NoSuchKey | ObjectError::NoSuchBucket) => return Ok(None),
            Err(e) => return Err(format!("cannot read the object's record: {e}")),
        };
        let mut body = match self.objects.open_for_scan(&record).await {
            Ok(body) => body,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot open the object's bytes: {e}")),
        };
        let (chunks, report) = thread.start().map_err(|()| "the scan thread is gone".to_owned())?;
        let renew_every = self.config.lease() / 3;
        let mut renewed = tokio::time::Instant::now();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("cannot read the object's bytes: {e}")),
            };
            if chunks.send(chunk).await.is_err() {
                return Err("the scan thread stopped".into());
            }
            if renewed.elapsed() >= renew_every {
                let until = OffsetDateTime::now_utc() + self.config.lease();
                match self.findings.renew_scan_claim(&self.id, scan, until).await {
                    Ok(true) => renewed = tokio::time::Instant::now(),
                    Ok(false) => return Err("the claim was lost while scanning".into()),
                    Err(e) => tracing::warn!(error = %e, "cannot renew a scan's claim"),
                }
            }
        }
        drop(chunks);
        report.await.map(Some).map_err(|_| "the scan thread stopped".to_owned())
    }

    /// A failed attempt: retried after a backoff, or given up (dead, audited) after the last.
    async fn failed(&self, scan: &QueuedScan, error: &str) {
        let give_up = scan.attempts >= self.config.max_attempts;
        let backoff = Duration::from_secs(1 << scan.attempts.min(16)).min(MAX_BACKOFF);
        let retry_at = OffsetDateTime::now_utc() + backoff;
        tracing::warn!(bucket = %scan.bucket, attempts = scan.attempts, give_up, error, "a scan failed");
        metrics::counter!("latchkey_scans_total", "outcome" => if give_up { "dead" } else { "failed" }).increment(1);
        if let Err(e) = self.findings.fail_scan(&self.id, scan, error, retry_at, give_up).await {
            tracing::error!(error = %e, "cannot record a failed scan");
        }
        if give_up {
            let what = format!("s3://{}/{} version {}", scan.bucket, scan.key, scan.version_id);
            self.audit("scan.failed", format!("{what}: given up after {} attempts: {error}", scan.attempts)).await;
        }
    }

    /// Audits a finding (`scan.finding`, which alarms can count) and, when a rule says
    /// `notify`, posts it to every webhook.
    async fn announce(&self, finding: Finding, notify: bool) {
        let what = format!("s3://{}/{} version {}", finding.bucket, finding.key, finding.version_id);
        let reason = format!(
            "{what}: {} {} ({}), actions: {}",
            finding.finding_type,
            finding.severity,
            finding.id,
            if finding.actions.is_empty() { "none".to_owned() } else { finding.actions.join(", ") }
        );
        self.audit("scan.finding", reason).await;
        if !notify || self.webhooks.is_empty() {
            return;
        }
        let body = Bytes::from(serde_json::to_vec(&finding_json(&finding)).unwrap_or_default());
        let (webhooks, poster) = (self.webhooks.clone(), self.poster.clone());
        // Delivery retries for a while; the worker goes on meanwhile.
        tokio::spawn(async move {
            for target in webhooks.iter() {
                let (taken, outcome) = poster.deliver(target, &finding.id, body.clone()).await;
                if !taken {
                    tracing::warn!(webhook = %target.url, finding = %finding.id, outcome, "a finding was not delivered");
                }
            }
        });
    }

    async fn audit(&self, event: &str, reason: String) {
        let event = AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: event.into(),
            share_id: None,
            principal: None,
            source_ip: None,
            user_agent: None,
            reason: Some(reason),
        };
        if let Err(e) = self.objects.meta().record_audit(&event).await {
            tracing::error!(error = %e, "cannot audit a scan");
        }
    }
}

/// A finding as the findings API and webhooks show it.
pub fn finding_json(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "id": f.id,
        "bucket": f.bucket,
        "key": f.key,
        "version_id": f.version_id,
        "type": f.finding_type,
        "severity": f.severity,
        "actions": f.actions,
        "scanned_at": f.scanned.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "engine_version": f.engine_version,
        "report": f.detail,
    })
}

/// One scan's bytes on their way to a scan thread, and its report on the way back.
struct ScanJob {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    report: tokio::sync::oneshot::Sender<Report>,
}

/// A thread that scans one stream after another at a low priority.
struct ScanThread {
    jobs: std::sync::mpsc::Sender<ScanJob>,
}

impl ScanThread {
    fn spawn(engine: Arc<Engine>, n: usize) -> std::io::Result<ScanThread> {
        let (jobs, incoming) = std::sync::mpsc::channel::<ScanJob>();
        std::thread::Builder::new().name(format!("latchkey-scan-{n}")).spawn(move || {
            lower_priority();
            for mut job in incoming {
                let mut scanner = Scanner::new(&engine);
                while let Some(chunk) = job.chunks.blocking_recv() {
                    scanner.feed(&chunk);
                }
                let _ = job.report.send(scanner.finish());
            }
        })?;
        Ok(ScanThread { jobs })
    }

    /// Starts a scan: where its chunks go, and its report once the sender is dropped.
    fn start(&self) -> Result<(tokio::sync::mpsc::Sender<Bytes>, tokio::sync::oneshot::Receiver<Report>), ()> {
        let (chunks_in, chunks) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
        let (report, report_out) = tokio::sync::oneshot::channel();
        self.jobs.send(ScanJob { chunks, report }).map_err(|_| ())?;
        Ok((chunks_in, report_out))
    }
}

/// Lowers the calling thread's priority (on Linux, niceness is per thread).
fn lower_priority() {
    let me = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(me), SCAN_NICENESS) {
        tracing::warn!(error = %e, "cannot lower a scan thread's priority");
    }
}
