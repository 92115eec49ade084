//! The scan queue's workers. Each claims one queued version at a time under a lease (renewed
//! while its scan runs), hands the version's blob file to its own low-priority scan thread
//! (which reads it whatever the scan gate says: the scan is what lifts it, and reads its format:
//! `latchkey_scan::formats`), and records the verdict under its claim. A failure is retried with
//! exponential backoff; past `max_attempts` the version is kept dead in the queue, unscanned,
//! and the failure audited.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use latchkey_audit::webhook::{Poster, Target};
use latchkey_meta::{AuditEvent, Finding, FindingsStore, QueuedScan, ScanCompletion, ScanOutcome};
use latchkey_object::ObjectService;
use latchkey_scan::formats::{self, Limits};
use latchkey_scan::{ENGINE_VERSION, Engine, Report};

use crate::identifiers::EngineSource;
use time::OffsetDateTime;

use crate::remediation::{Action, DiscoveryConfig};

/// How often an idle worker looks for queued versions (reading, not writing, the store).
const POLL: Duration = Duration::from_millis(250);
/// How often a running scan renews its claim, and sees whether its version was replaced.
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// The first retry waits this long; each later one twice as long, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How often the queue's depth is published as metrics.
const GAUGE_EVERY: Duration = Duration::from_secs(5);
/// The niceness of scan threads: under load, requests get the CPU first and scans what is left
/// (a queued scan waits; a request does not).
const SCAN_NICENESS: i32 = 10;

pub struct Discovery {
    findings: Arc<dyn FindingsStore>,
    objects: Arc<ObjectService>,
    engines: Arc<EngineSource>,
    config: DiscoveryConfig,
    webhooks: Arc<Vec<Target>>,
    poster: Poster,
    /// Names this process's claims (with each worker's number); unique per start, so that a
    /// restarted replica's old claims are not mistaken for its own.
    id: String,
}

/// Why a scan did not produce a report.
enum NotScanned {
    /// The version was replaced or deleted meanwhile.
    Superseded,
    /// Worth another attempt.
    Failed(String),
    /// Not worth another: it would fail the same way.
    Refused(String),
}

impl Discovery {
    pub fn new(
        findings: Arc<dyn FindingsStore>,
        objects: Arc<ObjectService>,
        engines: Arc<EngineSource>,
        config: DiscoveryConfig,
        webhooks: Vec<Target>,
        poster: Poster,
    ) -> Self {
        let id = format!("scan-{}", hex::encode(rand::random::<[u8; 8]>()));
        Self { findings, objects, engines, config, webhooks: Arc::new(webhooks), poster, id }
    }

    /// Turns queueing on upload on or off as configured (for every replica sharing the store:
    /// they should share the setting), and takes back claims no running worker can hold (see
    /// `FindingsStore::release_stale_scan_claims`).
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
        let mut tasks: Vec<_> = (0..self.config.workers)
            .map(|n| {
                let me = self.clone();
                tokio::spawn(async move { me.work(n).await })
            })
            .collect();
        tasks.push(tokio::spawn(publish_queue_depth(self.findings.clone())));
        shutdown.await;
        for task in tasks {
            task.abort();
        }
    }

    async fn work(&self, n: usize) {
        let thread = match ScanThread::spawn(self.config.limits(), n) {
            Ok(thread) => thread,
            Err(e) => return tracing::error!(error = %e, "cannot start a scan thread"),
        };
        let worker = format!("{}-{n}", self.id);
        loop {
            let now = OffsetDateTime::now_utc();
            // Idle workers read; only a due version is worth a write transaction.
            match self.findings.next_scan_due().await {
                Ok(Some(due)) if due <= now => {}
                Ok(due) => {
                    let wait = due.map_or(POLL, |due| (due - now).try_into().unwrap_or(POLL).min(POLL));
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the scan queue");
                    tokio::time::sleep(POLL * 4).await;
                    continue;
                }
            }
            match self.findings.claim_scans(&worker, now, now + self.config.lease(), 1).await {
                Ok(claimed) => {
                    for scan in claimed {
                        self.scan(&worker, &thread, scan).await;
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
    async fn scan(&self, worker: &str, thread: &ScanThread, scan: QueuedScan) {
        let started = std::time::Instant::now();
        let report = match self.read_and_scan(worker, thread, &scan).await {
            Ok(report) => report,
            // The completion finds the version gone and drops the row.
            Err(NotScanned::Superseded) => Report::default(),
            Err(NotScanned::Failed(error)) => return self.failed(worker, &scan, &error, false).await,
            Err(NotScanned::Refused(error)) => return self.failed(worker, &scan, &error, true).await,
        };
        let (status, actions) = self.config.judge(&report);
        let finding = report.finding_type().map(|finding_type| Finding {
            id: format!("f-{}", hex::encode(rand::random::<[u8; 12]>())),
            bucket: scan.bucket.clone(),
            key: scan.key.clone(),
            version_id: scan.version_id.clone(),
            finding_type,
            severity: status.sensitivity.map_or("Low", |s| s.as_str()).to_owned(),
            detail: serde_json::to_value(&report).unwrap_or_default(),
            actions: actions.iter().map(|a| a.as_str().to_owned()).collect(),
            scanned: OffsetDateTime::now_utc(),
            engine_version: ENGINE_VERSION.to_owned(),
        });
        let outcome = ScanOutcome { scan, status, finding };
        match self.findings.complete_scan(worker, &outcome).await {
            Ok(ScanCompletion::Recorded) => {
                let result = if outcome.finding.is_some() { "finding" } else { "clean" };
                metrics::counter!("latchkey_scans_total", "outcome" => result).increment(1);
                metrics::counter!("latchkey_scanned_bytes_total").increment(report.bytes);
                metrics::histogram!("latchkey_scan_duration_seconds").record(started.elapsed().as_secs_f64());
                if !report.skipped.is_empty() {
                    let scan = &outcome.scan;
                    let what = format!("s3://{}/{} version {}", scan.bucket, scan.key, scan.version_id);
                    let parts: Vec<String> = report
                        .skipped
                        .iter()
                        .map(|s| {
                            format!("{}{}", s.entry.as_deref().map_or(String::new(), |e| format!("{e}: ")), s.reason)
                        })
                        .collect();
                    self.audit("scan.partial", format!("{what}: not read: {}", parts.join("; "))).await;
                }
                if let Some(finding) = outcome.finding {
                    self.announce(finding, actions.contains(&Action::Notify)).await;
                }
            }
            Ok(ScanCompletion::Superseded) => {
                metrics::counter!("latchkey_scans_total", "outcome" => "superseded").increment(1);
            }
            Ok(ScanCompletion::ClaimLost) => {
                tracing::warn!(bucket = %outcome.scan.bucket, "a scan outlived its claim; another worker took it");
            }
            Err(e) => self.failed(worker, &outcome.scan, &format!("cannot record the scan: {e}"), false).await,
        }
    }

    /// The version's report, renewing the claim while the scan thread reads.
    async fn read_and_scan(&self, worker: &str, thread: &ScanThread, scan: &QueuedScan) -> Result<Report, NotScanned> {
        if scan.attempts > self.config.max_attempts {
            // Claimed again and again without a verdict or a failure: the process died scanning it.
            let tries = scan.attempts - 1;
            return Err(NotScanned::Refused(format!("{tries} attempts ended without a verdict (a crash?)")));
        }
        let record = self.current(scan).await?;
        if record.size > self.config.max_scan_bytes {
            let max = self.config.max_scan_bytes;
            return Err(NotScanned::Refused(format!("{} bytes, more than max_scan_bytes ({max})", record.size)));
        }
        let file = match self.objects.open_for_scan(&record) {
            Ok(file) => file,
            // Released since the record was read: replaced; or else missing, which is no verdict.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.current(scan).await?;
                return Err(NotScanned::Failed("the object's bytes are missing".into()));
            }
            Err(e) => return Err(NotScanned::Failed(format!("cannot open the object's bytes: {e}"))),
        };
        let engine = self.engines.current().await.map_err(NotScanned::Failed)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let mut report = thread.start(engine, file, scan.key.clone(), cancel.clone())?;
        loop {
            tokio::select! {
                done = &mut report => {
                    return match done {
                        Ok(Ok(report)) if report.refused.is_some() => {
                            Err(NotScanned::Refused(report.refused.unwrap_or_default()))
                        }
                        Ok(Ok(report)) => Ok(report),
                        Ok(Err(e)) => Err(NotScanned::Failed(e)),
                        Err(_) => Err(NotScanned::Failed("the scan thread stopped".into())),
                    };
                }
                () = tokio::time::sleep(RENEW_EVERY) => {
                    let until = OffsetDateTime::now_utc() + self.config.lease();
                    match self.findings.renew_scan_claim(worker, scan, until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            cancel.store(true, Ordering::Relaxed);
                            self.current(scan).await?;
                            return Err(NotScanned::Failed("the claim was lost while scanning".into()));
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot renew a scan's claim"),
                    }
                }
            }
        }
    }

    /// The record of `scan`'s version while it exists (current, or kept by versioning).
    async fn current(&self, scan: &QueuedScan) -> Result<latchkey_meta::ObjectRecord, NotScanned> {
        match self.objects.live_version(&scan.bucket, &scan.key, &scan.version_id).await {
            Ok(Some(version)) => Ok(version.record),
            Ok(None) => Err(NotScanned::Superseded),
            Err(e) => Err(NotScanned::Failed(format!("cannot read the object's record: {e}"))),
        }
    }

    /// A failed attempt: retried after a backoff, or given up (dead, audited) after the last or
    /// when `refused` (another attempt would fail the same way).
    async fn failed(&self, worker: &str, scan: &QueuedScan, error: &str, refused: bool) {
        let give_up = refused || scan.attempts >= self.config.max_attempts;
        let backoff = FIRST_BACKOFF.saturating_mul(1 << scan.attempts.saturating_sub(1).min(16)).min(MAX_BACKOFF);
        let retry_at = OffsetDateTime::now_utc() + backoff;
        tracing::warn!(bucket = %scan.bucket, attempts = scan.attempts, give_up, error, "a scan failed");
        match self.findings.fail_scan(worker, scan, error, retry_at, give_up).await {
            Ok(true) => {
                let outcome = if give_up { "dead" } else { "failed" };
                metrics::counter!("latchkey_scans_total", "outcome" => outcome).increment(1);
                if give_up {
                    let what = format!("s3://{}/{} version {}", scan.bucket, scan.key, scan.version_id);
                    let reason = format!("{what}: given up after {} attempts: {error}", scan.attempts);
                    self.audit("scan.failed", reason).await;
                }
            }
            // The claim was taken or the version's row went with it: nothing to record.
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "cannot record a failed scan"),
        }
    }

    /// Audits a finding (`scan.finding`, which alarms can count) and, when a rule says
    /// `notify`, posts it to every webhook.
    async fn announce(&self, finding: Finding, notify: bool) {
        let what = format!("s3://{}/{} version {}", finding.bucket, finding.key, finding.version_id);
        let actions = if finding.actions.is_empty() { "none".to_owned() } else { finding.actions.join(", ") };
        let reason =
            format!("{what}: {} {} ({}), actions: {actions}", finding.finding_type, finding.severity, finding.id);
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

/// Publishes the queue's depth (`latchkey_scan_queue{state}`) every few seconds.
async fn publish_queue_depth(findings: Arc<dyn FindingsStore>) {
    loop {
        match findings.scan_queue_counts(OffsetDateTime::now_utc()).await {
            Ok(counts) => {
                for (state, n) in [("queued", counts.queued), ("claimed", counts.claimed), ("dead", counts.dead)] {
                    metrics::gauge!("latchkey_scan_queue", "state" => state).set(n as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot count the scan queue"),
        }
        tokio::time::sleep(GAUGE_EVERY).await;
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

/// One scan for a scan thread: the blob's file, the key (whose name tells its format), a flag
/// that stops it, and where its report goes.
struct ScanJob {
    /// The engine of the moment (custom identifiers change while the thread lives).
    engine: Arc<Engine>,
    file: File,
    name: String,
    cancel: Arc<AtomicBool>,
    report: tokio::sync::oneshot::Sender<Result<Report, String>>,
}

/// A thread that scans one file after another at a low priority.
struct ScanThread {
    jobs: std::sync::mpsc::Sender<ScanJob>,
}

impl ScanThread {
    fn spawn(limits: Limits, n: usize) -> io::Result<ScanThread> {
        let (jobs, incoming) = std::sync::mpsc::channel::<ScanJob>();
        std::thread::Builder::new().name(format!("latchkey-scan-{n}")).spawn(move || {
            lower_priority();
            for job in incoming {
                let ScanJob { engine, file, name, cancel, report } = job;
                let mut file = Cancellable { inner: file, cancel };
                // A panic on odd input fails that scan, not the thread.
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    formats::scan(&engine, &name, &mut file, &limits)
                        .map_err(|e| format!("cannot read the object: {e}"))
                }))
                .unwrap_or_else(|_| Err("the scanner panicked on this object".to_owned()));
                let _ = report.send(outcome);
            }
        })?;
        Ok(ScanThread { jobs })
    }

    /// Starts a scan; its report comes on the receiver.
    fn start(
        &self,
        engine: Arc<Engine>,
        file: File,
        name: String,
        cancel: Arc<AtomicBool>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Report, String>>, NotScanned> {
        let (report, receiver) = tokio::sync::oneshot::channel();
        self.jobs
            .send(ScanJob { engine, file, name, cancel, report })
            .map_err(|_| NotScanned::Failed("the scan thread is gone".into()))?;
        Ok(receiver)
    }
}

/// A file whose reads fail once `cancel` is set: a scan whose version was replaced stops.
struct Cancellable {
    inner: File,
    cancel: Arc<AtomicBool>,
}

impl Read for Cancellable {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("the scan was cancelled"));
        }
        self.inner.read(buf)
    }
}

impl Seek for Cancellable {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

/// Lowers the calling thread's priority (on Linux, niceness is per thread).
fn lower_priority() {
    let me = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(me), SCAN_NICENESS) {
        tracing::warn!(error = %e, "cannot lower a scan thread's priority");
    }
}
