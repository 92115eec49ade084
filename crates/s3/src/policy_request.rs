//! What an S3 request asks for in IAM terms: the action (`s3:GetObject`...), the resource ARN and
//! the S3 condition keys, as AWS's "Actions, resources, and condition keys for Amazon S3" lists them.

use latchkey_identity::ClientConnection;
use latchkey_policy::RequestContext;
use s3s::access::S3AccessContext;
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};
use time::OffsetDateTime;

use crate::query;

/// The IAM action of an S3 operation (by s3s's operation name), on one version of an object when
/// `version_id` (the request names a `versionId`). Operations that AWS authorises under another
/// operation's action say so here (HEAD is GET, listing is `s3:ListBucket`...).
pub fn action(operation: &str, version_id: bool) -> String {
    let on_version = match operation {
        "HeadObject" | "GetObject" | "GetObjectAttributes" => Some("s3:GetObjectVersion"),
        "DeleteObject" => Some("s3:DeleteObjectVersion"),
        "GetObjectTagging" => Some("s3:GetObjectVersionTagging"),
        "PutObjectTagging" => Some("s3:PutObjectVersionTagging"),
        "DeleteObjectTagging" => Some("s3:DeleteObjectVersionTagging"),
        _ => None,
    };
    if let (true, Some(action)) = (version_id, on_version) {
        return action.to_owned();
    }
    let mapped = match operation {
        "HeadObject" | "GetObject" | "GetObjectAttributes" => "s3:GetObject",
        "CopyObject" | "CreateMultipartUpload" | "UploadPart" | "UploadPartCopy" | "CompleteMultipartUpload" => {
            "s3:PutObject"
        }
        "DeleteObjects" => "s3:DeleteObject",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "s3:ListBucket",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "ListBuckets" => "s3:ListAllMyBuckets",
        "ListParts" => "s3:ListMultipartUploadParts",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "GetBucketPolicyStatus" => "s3:GetBucketPolicyStatus",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "s3:PutBucketPublicAccessBlock",
        "GetPublicAccessBlock" => "s3:GetBucketPublicAccessBlock",
        "DeleteBucketTagging" => "s3:PutBucketTagging",
        "PutBucketCors" | "DeleteBucketCors" => "s3:PutBucketCORS",
        "GetBucketCors" => "s3:GetBucketCORS",
        "PutObjectLockConfiguration" => "s3:PutBucketObjectLockConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "s3:PutLifecycleConfiguration",
        "GetBucketLifecycleConfiguration" => "s3:GetLifecycleConfiguration",
        "GetObjectLockConfiguration" => "s3:GetBucketObjectLockConfiguration",
        "DeleteObjectTagging" => "s3:DeleteObjectTagging",
        other => return format!("s3:{other}"),
    };
    mapped.to_owned()
}

/// The ARN the request acts on: `arn:aws:s3:::bucket/key`, `arn:aws:s3:::bucket`, or `*` for
/// the service (ListBuckets).
pub fn resource(path: &S3Path) -> String {
    match path {
        S3Path::Root => "*".to_owned(),
        S3Path::Bucket { bucket } => format!("arn:aws:s3:::{bucket}"),
        S3Path::Object { bucket, key } => format!("arn:aws:s3:::{bucket}/{key}"),
    }
}

/// The source of CopyObject / UploadPartCopy as the action that reads it (`s3:GetObject`, or
/// `s3:GetObjectVersion` for a `?versionId=`) and its object ARN (`x-amz-copy-source`,
/// URL-encoded, optionally with a leading `/`). Parsed by s3s's own parser, so the object
/// authorised is the object copied (a key may hold a `?` that is not the start of `?versionId=`).
pub fn copy_source(cx: &S3AccessContext<'_>) -> Option<CopySourceCheck> {
    let raw = cx.headers().get("x-amz-copy-source")?.to_str().ok()?;
    match s3s::dto::CopySource::parse(raw).ok()? {
        s3s::dto::CopySource::Bucket { bucket, key, version_id } => {
            let action = if version_id.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
            Some(CopySourceCheck {
                action: action.to_owned(),
                resource: format!("arn:aws:s3:::{bucket}/{key}"),
                version_id: version_id.map(|v| v.to_string()),
            })
        }
        _ => None,
    }
}

/// The read a copy makes of its source: an action on an object ARN, of one version or not.
pub struct CopySourceCheck {
    pub action: String,
    pub resource: String,
    pub version_id: Option<String>,
}

/// `s3:object-lock-mode`, `s3:object-lock-retain-until-date`,
/// `s3:object-lock-remaining-retention-days` (whole days left, rounded up) and
/// `s3:object-lock-legal-hold` of a request that asks for them.
fn insert_requested_lock(
    context: &mut RequestContext,
    mode: Option<&str>,
    until: Option<&str>,
    legal_hold: Option<&str>,
    now: OffsetDateTime,
) {
    if let Some(mode) = mode {
        context.insert("s3:object-lock-mode", mode);
    }
    if let Some(until) = until {
        context.insert("s3:object-lock-retain-until-date", until);
        let parsed = OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339);
        if let Ok(until) = parsed {
            let seconds = (until - now).whole_seconds().max(0);
            context.insert("s3:object-lock-remaining-retention-days", ((seconds + 86_399) / 86_400).to_string());
        }
    }
    if let Some(legal_hold) = legal_hold {
        context.insert("s3:object-lock-legal-hold", legal_hold);
    }
}

/// The actions on one version of an object, whose policy conditions read that version's state
/// (the Object Lock actions name a version with the same action as the current one).
pub fn acts_on_version(action: &str) -> bool {
    matches!(
        action,
        "s3:GetObjectVersion"
            | "s3:DeleteObjectVersion"
            | "s3:GetObjectVersionTagging"
            | "s3:PutObjectVersionTagging"
            | "s3:DeleteObjectVersionTagging"
            | "s3:BypassGovernanceRetention"
            | "s3:PutObjectRetention"
            | "s3:GetObjectRetention"
            | "s3:PutObjectLegalHold"
            | "s3:GetObjectLegalHold"
    )
}

/// The S3 condition keys of the request: how it was signed (`s3:authType`,
/// `s3:signatureversion`, `s3:signatureAge`), listing parameters (`s3:prefix`, `s3:delimiter`,
/// `s3:max-keys`), the version asked for (`s3:versionid`), the tags a write asks for (`s3:RequestObjectTag/*`,
/// `s3:RequestObjectTagKeys`), the requested server-side encryption, and the caller's address, transport
/// and user agent.
pub fn s3_context(
    cx: &S3AccessContext<'_>,
    query: &query::Params<'_>,
    client: Option<ClientConnection>,
    now: OffsetDateTime,
) -> S3Result<RequestContext> {
    let mut context = RequestContext::new();
    let header = |name: &str| cx.headers().get(name).and_then(|v| v.to_str().ok());

    let presigned_v4 = query.has("X-Amz-Signature");
    let presigned_v2 = query.has("Signature") && query.has("AWSAccessKeyId");
    let auth_header = header("authorization").unwrap_or_default();
    let (auth_type, version) = if presigned_v4 {
        ("REST-QUERY-STRING", "AWS4-HMAC-SHA256")
    } else if presigned_v2 {
        ("REST-QUERY-STRING", "AWS")
    } else if auth_header.starts_with("AWS4-HMAC-SHA256") {
        ("REST-HEADER", "AWS4-HMAC-SHA256")
    } else {
        ("REST-HEADER", "AWS")
    };
    context.insert("s3:authType", auth_type);
    context.insert("s3:signatureversion", version);
    // Milliseconds since the signature was made (SigV4: X-Amz-Date, in the query or a header).
    let signed_at = match query.get("X-Amz-Date") {
        Some(date) => parse_amz_date(&date),
        None => header("x-amz-date").and_then(parse_amz_date),
    };
    if let Some(signed_at) = signed_at {
        let age = (now - signed_at).whole_milliseconds().max(0);
        context.insert("s3:signatureAge", age.to_string());
    }
    let params = [
        ("s3:prefix", "prefix"),
        ("s3:delimiter", "delimiter"),
        ("s3:max-keys", "max-keys"),
        ("s3:versionid", "versionId"),
    ];
    for (key, name) in params {
        if let Some(value) = query.get(name) {
            context.insert(key, value.into_owned());
        }
    }
    // The tags a write stores from x-amz-tagging: only where the operation uses that header
    // (a CopyObject only when it replaces the source's tags), so that a header that is not
    // stored cannot meet a condition. PutObjectTagging's come from its body (the Authorizer).
    let stores_header_tags = match cx.s3_op().name() {
        "PutObject" | "CreateMultipartUpload" => true,
        "CopyObject" => header("x-amz-tagging-directive") == Some("REPLACE"),
        _ => false,
    };
    if stores_header_tags && let Some(tagging) = header("x-amz-tagging") {
        insert_request_tags(&mut context, form_urlencoded::parse(tagging.as_bytes()).into_owned().collect())?;
    }
    if let Some(sse) = header("x-amz-server-side-encryption") {
        context.insert("s3:x-amz-server-side-encryption", sse);
    }
    // The Object Lock a write asks for in its headers (PutObjectRetention and
    // PutObjectLegalHold carry theirs in the body: not yet in the context).
    if matches!(cx.s3_op().name(), "PutObject" | "CopyObject" | "CreateMultipartUpload") {
        insert_requested_lock(
            &mut context,
            header("x-amz-object-lock-mode"),
            header("x-amz-object-lock-retain-until-date"),
            header("x-amz-object-lock-legal-hold"),
            now,
        );
    }
    if let Some(client) = client {
        client.insert_keys(&mut context);
    }
    if let Some(agent) = header("user-agent") {
        context.insert("aws:UserAgent", agent);
    }
    Ok(context)
}

/// `s3:RequestObjectTag/KEY` for each tag a request asks to store, and `s3:RequestObjectTagKeys`.
/// Keys that differ only in case are refused (`InvalidTag`): S3 would store both, but condition
/// keys are compared without case, so a policy could see only one of the two values.
pub fn insert_request_tags(context: &mut RequestContext, tags: Vec<(String, String)>) -> S3Result<()> {
    for (i, (key, _)) in tags.iter().enumerate() {
        if tags[..i].iter().any(|(earlier, _)| earlier.eq_ignore_ascii_case(key)) {
            return Err(s3_error!(
                InvalidTag,
                "Tag keys that differ only in case are not accepted: policies compare tag keys without case"
            ));
        }
    }
    for (key, value) in &tags {
        context.insert(&format!("s3:RequestObjectTag/{key}"), value.as_str());
    }
    context.insert_multi("s3:RequestObjectTagKeys", tags.into_iter().map(|(key, _)| key));
    Ok(())
}

/// `20261205T101500Z` as an instant.
fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(value, format).ok().map(|t| t.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_the_actions_aws_authorises_them_under() {
        assert_eq!(action("HeadObject", false), "s3:GetObject");
        assert_eq!(action("ListObjectsV2", false), "s3:ListBucket");
        assert_eq!(action("UploadPart", false), "s3:PutObject");
        assert_eq!(action("DeleteObject", false), "s3:DeleteObject");
        assert_eq!(action("ListBuckets", false), "s3:ListAllMyBuckets");
        assert_eq!(action("PutObjectTagging", false), "s3:PutObjectTagging");
        assert_eq!(action("GetObject", true), "s3:GetObjectVersion");
        assert_eq!(action("HeadObject", true), "s3:GetObjectVersion");
        assert_eq!(action("DeleteObject", true), "s3:DeleteObjectVersion");
        assert_eq!(action("PutObjectTagging", true), "s3:PutObjectVersionTagging");
        assert_eq!(action("PutObject", true), "s3:PutObject");
    }

    #[test]
    fn resources_are_s3_arns() {
        assert_eq!(resource(&S3Path::Root), "*");
        assert_eq!(resource(&S3Path::Bucket { bucket: "b".into() }), "arn:aws:s3:::b");
        assert_eq!(resource(&S3Path::Object { bucket: "b".into(), key: "a/b c".into() }), "arn:aws:s3:::b/a/b c");
    }

    #[test]
    fn amz_dates_parse() {
        let at = parse_amz_date("20261205T101500Z").unwrap();
        assert_eq!(at.unix_timestamp(), 1_796_465_700);
        assert!(parse_amz_date("2026-12-05").is_none());
    }
}
