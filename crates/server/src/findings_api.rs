//! `/-/findings`: the signed JSON API behind `latchkey findings list|show`, for root and
//! principals granted `latchkey:ReadFindings` on the bucket (`arn:aws:s3:::BUCKET`; `*` to list
//! every bucket's).
//!
//! - `GET /-/findings?bucket=B&prefix=P&after=ID&limit=N`: findings newest first (at most 1000,
//!   default 100), with `next_after` to page on;
//! - `GET /-/findings/{id}`: one finding, with its report (identifiers, counts, locations with
//!   redacted samples);
//! - `GET /-/findings/queue`: versions waiting for a scan, claimed, and given up;
//! - `POST /-/findings/jobs` (`{"bucket", "prefix", "sampling", "include_ext", "max_size"}`,
//!   `latchkey:CreateScanJob` on the bucket): an on-demand scan job, answered with its progress;
//!   `GET /-/findings/jobs` and `/-/findings/jobs/{id}`: jobs and their progress;
//!   `DELETE /-/findings/jobs/{id}` (`latchkey:CreateScanJob`): cancel one.

use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode, Uri};
use latchkey_discovery::finding_json;
use latchkey_discovery::jobs::{JobError, JobSpec, create_job, job_json};
use latchkey_identity::{Caller, ClientConnection, Identity};
use latchkey_meta::{FindingFilter, FindingsStore, ScanJobStore};
use latchkey_object::{ObjectError, ObjectService};
use latchkey_s3::json_api::{self, api_error, json};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use serde_json::json;
use time::OffsetDateTime;

pub const FINDINGS: &str = "/-/findings";
const QUEUE: &str = "/-/findings/queue";
const JOBS: &str = "/-/findings/jobs";
/// The IAM action that lets a principal other than root read findings and scan jobs.
const READ_ACTION: &str = "latchkey:ReadFindings";
/// The IAM action that lets a principal other than root start and cancel scan jobs.
const JOB_ACTION: &str = "latchkey:CreateScanJob";
const MAX_PAGE: u32 = 1000;

pub struct FindingsApi {
    identity: Arc<Identity>,
    findings: Arc<dyn FindingsStore>,
    jobs: Arc<dyn ScanJobStore>,
    objects: Arc<ObjectService>,
}

/// Who is asking, and from where.
struct Asker {
    caller: Caller,
    client: Option<ClientConnection>,
}

impl FindingsApi {
    pub fn new(
        identity: Arc<Identity>,
        findings: Arc<dyn FindingsStore>,
        jobs: Arc<dyn ScanJobStore>,
        objects: Arc<ObjectService>,
    ) -> FindingsApi {
        FindingsApi { identity, findings, jobs, objects }
    }

    /// Whether the asker may take `action` on `bucket` (`None`: every bucket); a refusal is
    /// audited.
    async fn may(&self, asker: &Asker, action: &str, bucket: Option<&str>) -> bool {
        let resource = bucket.map_or_else(|| "*".to_owned(), |b| format!("arn:aws:s3:::{b}"));
        let meta = self.objects.meta();
        json_api::permits(&self.identity, meta, &asker.caller, asker.client, action, &resource).await
    }

    /// Whether a listing may show the asker a row of `bucket`: allowed on every bucket (`*`) is
    /// not enough where a policy denies that bucket.
    fn may_see(&self, asker: &Asker, bucket: &str) -> bool {
        json_api::allows(&self.identity, &asker.caller, asker.client, READ_ACTION, &format!("arn:aws:s3:::{bucket}"))
    }

    /// `/-/findings/jobs[/{id}]`.
    async fn jobs(&self, mut req: S3Request<Body>, asker: &Asker, id: Option<&str>) -> S3Result<S3Response<Body>> {
        let denied = || Err(s3_error!(AccessDenied, "Access Denied"));
        match (&req.method, id) {
            (&Method::POST, None) => {
                let body = json_api::body(&mut req).await?;
                let spec: JobSpec = match serde_json::from_slice(&body) {
                    Ok(spec) => spec,
                    Err(e) => return api_error(StatusCode::BAD_REQUEST, "InvalidArgument", &e.to_string()),
                };
                if !self.may(asker, JOB_ACTION, Some(&spec.bucket)).await {
                    return denied();
                }
                let principal = asker.caller.principal(self.identity.account()).arn;
                match create_job(&self.objects, self.jobs.as_ref(), spec, principal).await {
                    Ok(status) => json(StatusCode::CREATED, &job_json(&status)),
                    Err(JobError::Invalid(message)) => api_error(StatusCode::BAD_REQUEST, "InvalidArgument", &message),
                    Err(JobError::Object(ObjectError::NoSuchBucket)) => {
                        api_error(StatusCode::NOT_FOUND, "NoSuchBucket", "The specified bucket does not exist")
                    }
                    Err(JobError::Object(e)) => {
                        tracing::error!(error = %e, "cannot create a scan job");
                        Err(s3_error!(InternalError))
                    }
                }
            }
            (&Method::GET, None) => {
                if !self.may(asker, READ_ACTION, None).await {
                    return denied();
                }
                let jobs = self.jobs.list_scan_jobs(MAX_PAGE).await.map_err(internal)?;
                let jobs: Vec<_> = jobs.iter().filter(|j| self.may_see(asker, &j.job.bucket)).map(job_json).collect();
                json(StatusCode::OK, &json!({ "jobs": jobs }))
            }
            (method @ (&Method::GET | &Method::DELETE), Some(id)) => {
                let job = self.jobs.get_scan_job(id).await.map_err(internal)?;
                let action = if method == Method::GET { READ_ACTION } else { JOB_ACTION };
                // Whether it exists is told only to who may act on its bucket.
                if !self.may(asker, action, Some(job.as_ref().map_or("-", |j| j.job.bucket.as_str()))).await {
                    return denied();
                }
                let Some(job) = job else {
                    return api_error(StatusCode::NOT_FOUND, "NoSuchScanJob", "no scan job has this id");
                };
                if method == Method::DELETE
                    && !self.jobs.cancel_scan_job(id, OffsetDateTime::now_utc()).await.map_err(internal)?
                {
                    return api_error(StatusCode::CONFLICT, "InvalidState", "the scan job was cancelled already");
                }
                let job = match method == Method::DELETE {
                    true => self.jobs.get_scan_job(id).await.map_err(internal)?.unwrap_or(job),
                    false => job,
                };
                json(StatusCode::OK, &job_json(&job))
            }
            _ => Err(s3_error!(MethodNotAllowed)),
        }
    }
}

fn internal(e: latchkey_meta::MetaError) -> s3s::S3Error {
    tracing::error!(error = %e, "cannot read findings or scan jobs");
    s3_error!(InternalError)
}

/// The listing a query string asks for, or why it cannot be read.
fn list_filter(query: Option<&str>) -> Result<FindingFilter, String> {
    let mut filter = FindingFilter { limit: 100, ..FindingFilter::default() };
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*name {
            "bucket" => filter.bucket = Some(value.into_owned()),
            "prefix" => filter.prefix = Some(value.into_owned()),
            "after" => filter.after = Some(value.into_owned()),
            "limit" => {
                filter.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| format!("limit must be between 1 and {MAX_PAGE}"))?;
            }
            name if json_api::is_signature_param(name) => {}
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    if filter.prefix.is_some() && filter.bucket.is_none() {
        return Err("prefix needs a bucket".into());
    }
    Ok(filter)
}

#[async_trait::async_trait]
impl S3Route for FindingsApi {
    fn is_match(&self, _: &Method, uri: &Uri, _: &HeaderMap, _: &mut http::Extensions) -> bool {
        uri.path().strip_prefix(FINDINGS).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let caller = json_api::caller(&self.identity, &req).await?;
        let asker = Asker { caller, client: req.extensions.get::<ClientConnection>().copied() };
        let path = req.uri.path().to_owned();
        if let Some(rest) = path.strip_prefix(JOBS).filter(|rest| rest.is_empty() || rest.starts_with('/')) {
            return self.jobs(req, &asker, rest.strip_prefix('/')).await;
        }
        if req.method != Method::GET {
            return Err(s3_error!(MethodNotAllowed));
        }
        let denied = || Err(s3_error!(AccessDenied, "Access Denied"));
        if path == QUEUE {
            if !self.may(&asker, READ_ACTION, None).await {
                return denied();
            }
            let counts = self.findings.scan_queue_counts(OffsetDateTime::now_utc()).await.map_err(internal)?;
            return json(
                StatusCode::OK,
                &json!({"queued": counts.queued, "claimed": counts.claimed, "dead": counts.dead}),
            );
        }
        if let Some(id) = path.strip_prefix(FINDINGS).and_then(|rest| rest.strip_prefix('/')) {
            let finding = self.findings.get_finding(id).await.map_err(internal)?;
            // Whether it exists is told only to who may read its bucket's findings.
            let bucket = finding.as_ref().map_or("-", |f| f.bucket.as_str());
            if !self.may(&asker, READ_ACTION, Some(bucket)).await {
                return denied();
            }
            return match finding {
                Some(finding) => json(StatusCode::OK, &finding_json(&finding)),
                None => api_error(StatusCode::NOT_FOUND, "NoSuchFinding", "no finding has this id"),
            };
        }
        let filter = match list_filter(req.uri.query()) {
            Ok(filter) => filter,
            Err(message) => return api_error(StatusCode::BAD_REQUEST, "InvalidArgument", &message),
        };
        if !self.may(&asker, READ_ACTION, filter.bucket.as_deref()).await {
            return denied();
        }
        let page = self.findings.list_findings(&filter).await.map_err(internal)?;
        let next_after = page.last().map(|f| f.id.clone()).filter(|_| page.len() == filter.limit as usize);
        let findings: Vec<_> = page.iter().filter(|f| self.may_see(&asker, &f.bucket)).map(finding_json).collect();
        json(StatusCode::OK, &json!({ "findings": findings, "next_after": next_after }))
    }
}

#[cfg(test)]
mod tests {
    use super::list_filter;

    #[test]
    fn listing_parameters_are_checked() {
        let filter = list_filter(Some("bucket=b&prefix=docs%2F&after=f-1&limit=5")).unwrap();
        assert_eq!(
            (filter.bucket.as_deref(), filter.prefix.as_deref(), filter.after.as_deref(), filter.limit),
            (Some("b"), Some("docs/"), Some("f-1"), 5)
        );
        assert_eq!(list_filter(None).unwrap().limit, 100);
        assert!(list_filter(Some("limit=0")).unwrap_err().contains("limit"));
        assert!(list_filter(Some("limit=1001")).unwrap_err().contains("limit"));
        assert!(list_filter(Some("prefix=a")).unwrap_err().contains("needs a bucket"));
        assert!(list_filter(Some("bucket=b&colour=red")).unwrap_err().contains("\"colour\""));
        assert!(list_filter(Some("X-Amz-Signature=abc")).is_ok(), "signature parameters are not the API's");
    }
}
