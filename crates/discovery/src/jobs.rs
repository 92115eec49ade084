//! On-demand scan jobs: a bucket (or a prefix of it) scanned again, or for the first time, with
//! sampling, extension and size filters. Creating one walks the bucket's listing and queues the
//! chosen versions under the job's id; the workers scan them like uploads' and the job's progress
//! is read from the queue.

use std::hash::{Hash, Hasher};

use latchkey_meta::{KeyRange, ScanJob, ScanJobStatus, ScanJobStore};
use latchkey_object::{ObjectError, ObjectService};
use serde::Deserialize;
use time::OffsetDateTime;

/// Versions listed and queued per transaction.
const PAGE: u32 = 1000;

/// What a job scans (the JSON of `POST /-/findings/jobs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    /// The percentage of the chosen objects scanned (1 to 100), picked by a hash of the job and
    /// the key, so the same job picks the same objects.
    #[serde(default = "everything")]
    pub sampling: u8,
    /// Only keys ending in one of these extensions (`csv`, `.txt`: case and dot do not matter).
    #[serde(default)]
    pub include_ext: Vec<String>,
    /// Only objects of at most this many bytes.
    pub max_size: Option<u64>,
}

fn everything() -> u8 {
    100
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Object(#[from] ObjectError),
}

impl From<latchkey_meta::MetaError> for JobError {
    fn from(e: latchkey_meta::MetaError) -> Self {
        Self::Object(e.into())
    }
}

impl JobSpec {
    fn problem(&self) -> Option<String> {
        if !(1..=100).contains(&self.sampling) {
            return Some("sampling must be a percentage between 1 and 100".into());
        }
        if let Some(ext) = self.include_ext.iter().find(|e| e.trim_start_matches('.').is_empty()) {
            return Some(format!("include_ext {ext:?} names no extension"));
        }
        None
    }

    fn extensions(&self) -> Vec<String> {
        self.include_ext.iter().map(|e| format!(".{}", e.trim_start_matches('.').to_ascii_lowercase())).collect()
    }

    /// Whether the job scans the object of `key` and `size`.
    fn chooses(&self, job_id: &str, extensions: &[String], key: &str, size: u64) -> bool {
        let key_lower = key.to_ascii_lowercase();
        self.max_size.is_none_or(|max| size <= max)
            && (extensions.is_empty() || extensions.iter().any(|e| key_lower.ends_with(e.as_str())))
            && (self.sampling >= 100 || sample(job_id, key) < u64::from(self.sampling))
    }
}

/// A key's place in 0..100 for a job's sampling.
fn sample(job_id: &str, key: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (job_id, key).hash(&mut hasher);
    hasher.finish() % 100
}

/// Creates a job for `principal` and queues the versions it chooses.
pub async fn create_job(
    objects: &ObjectService,
    jobs: &dyn ScanJobStore,
    spec: JobSpec,
    principal: String,
) -> Result<ScanJobStatus, JobError> {
    if let Some(problem) = spec.problem() {
        return Err(JobError::Invalid(problem));
    }
    objects.bucket(&spec.bucket).await?;
    let extensions = spec.extensions();
    let job = ScanJob {
        id: format!("sj-{}", hex::encode(rand::random::<[u8; 8]>())),
        bucket: spec.bucket.clone(),
        prefix: spec.prefix.clone(),
        criteria: serde_json::json!({
            "sampling": spec.sampling,
            "include_ext": spec.include_ext,
            "max_size": spec.max_size,
        }),
        principal,
        created: OffsetDateTime::now_utc(),
    };
    jobs.create_scan_job(&job).await?;
    let mut after: Option<String> = None;
    loop {
        let range = KeyRange { prefix: &spec.prefix, after: after.as_deref(), from: None, limit: PAGE };
        let page = objects.meta().list_objects(&spec.bucket, range).await?;
        let chosen: Vec<(String, String)> = page
            .iter()
            .filter(|r| spec.chooses(&job.id, &extensions, &r.key, r.size))
            .map(|r| (r.key.clone(), r.version_id.clone()))
            .collect();
        if !chosen.is_empty() {
            jobs.queue_job_scans(&job.id, &spec.bucket, &chosen).await?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = Some(last.key.clone()),
            _ => break,
        }
    }
    jobs.get_scan_job(&job.id).await?.ok_or_else(|| JobError::Invalid("the job was not recorded".into()))
}

/// A job as the API shows it.
pub fn job_json(status: &ScanJobStatus) -> serde_json::Value {
    let rfc3339 = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let job = &status.job;
    serde_json::json!({
        "id": job.id,
        "bucket": job.bucket,
        "prefix": job.prefix,
        "criteria": job.criteria,
        "principal": job.principal,
        "created_at": rfc3339(job.created),
        "state": status.state(),
        "total": status.total,
        "scanned": status.total.saturating_sub(status.remaining + status.failed),
        "remaining": status.remaining,
        "failed": status.failed,
        "cancelled_at": status.cancelled.map(rfc3339),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> JobSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_job_chooses_by_extension_size_and_a_stable_sample() {
        let only_csv = spec(r#"{"bucket": "b", "include_ext": [".CSV", "txt"], "max_size": 100}"#);
        let ext = only_csv.extensions();
        assert!(only_csv.chooses("sj-1", &ext, "people.csv", 100));
        assert!(only_csv.chooses("sj-1", &ext, "NOTES.TXT", 1));
        assert!(!only_csv.chooses("sj-1", &ext, "people.csv", 101), "too large");
        assert!(!only_csv.chooses("sj-1", &ext, "people.csv.gz", 1));
        let half = spec(r#"{"bucket": "b", "sampling": 50}"#);
        let keys: Vec<String> = (0..2000).map(|n| format!("k{n}")).collect();
        let picked = keys.iter().filter(|k| half.chooses("sj-1", &[], k, 1)).count();
        assert!((850..1150).contains(&picked), "{picked} of 2000");
        let again = keys.iter().filter(|k| half.chooses("sj-1", &[], k, 1)).count();
        assert_eq!(picked, again, "the same job picks the same keys");
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        assert!(spec(r#"{"bucket": "b", "sampling": 0}"#).problem().unwrap().contains("sampling"));
        assert!(spec(r#"{"bucket": "b", "include_ext": ["."]}"#).problem().unwrap().contains("\".\""));
        assert!(serde_json::from_str::<JobSpec>(r#"{"bucket": "b", "sample": 5}"#).is_err());
        assert_eq!(spec(r#"{"bucket": "b"}"#).problem(), None);
    }
}
