//! The records the store keeps, independent of any backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::object_lock::{LockConfiguration, ObjectLock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    pub region: String,
    pub created: OffsetDateTime,
    /// `None` until versioning is first enabled; a bucket never goes back to `None`.
    pub versioning: Option<Versioning>,
    /// Set once Object Lock is enabled; never removed.
    pub object_lock: Option<LockConfiguration>,
    /// MFA Delete: the MFA device it was turned on with, whose codes versioning changes and
    /// deletions of versions need; `None` while it is off.
    pub mfa_delete: Option<MfaDeleteDevice>,
}

/// The MFA device a bucket's MFA Delete is bound to: its serial, and its creation time, which a
/// device deleted and created again under the same serial does not share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaDeleteDevice {
    pub serial: String,
    pub created_ms: i64,
}

impl MfaDeleteDevice {
    pub fn new(serial: String, created: OffsetDateTime) -> Self {
        Self { serial, created_ms: crate::rows::to_ms(created) }
    }
}

/// A bucket's versioning state, once it was first enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// Every write makes a new version with its own id; older ones are kept.
    Enabled,
    /// Writes make the key's null version, replacing the previous null version; versions with
    /// their own id are kept.
    Suspended,
}

impl Versioning {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Suspended => "Suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Enabled, Self::Suspended].into_iter().find(|v| v.as_str() == s)
    }
}

/// The standard HTTP headers S3 stores with an object and returns on GET/HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentHeaders {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// Kept verbatim as the client sent it (an HTTP date).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// One version of an object. `version_id` is new on every write, so anything bound to "the
/// object as it was" (share links) can tell when it was replaced; S3 clients see it only when
/// `versioned` (see [`ObjectRecord::s3_version_id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    /// Written while the bucket's versioning was enabled; otherwise this is the key's null
    /// version (only one per key, replaced by the next null version).
    pub versioned: bool,
    pub blob_id: String,
    pub size: u64,
    /// Hex MD5 of the bytes, or `md5-of-md5s-N` for a multipart object; without quotes.
    pub etag: String,
    pub last_modified: OffsetDateTime,
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    /// The tags its writers set (the scanner's `latchkey:` tag is not among them: see
    /// [`ObjectRecord::tag_set`]).
    pub tags: Vec<Tag>,
    pub parts_count: Option<u32>,
    /// A multipart object's part sizes in order (GET `?partNumber=`); empty for other objects,
    /// and for multipart objects completed before sizes were recorded.
    pub part_sizes: Vec<u64>,
    /// What the sensitive-data scanner concluded about this version.
    pub scan: ScanStatus,
    /// Its Object Lock retention and legal hold.
    pub lock: ObjectLock,
}

/// The tag key under which the scanner shows an object's sensitivity.
pub const SENSITIVITY_TAG: &str = "latchkey:sensitivity";

/// The version id S3 clients see for an unversioned write.
pub const NULL_VERSION: &str = "null";

impl ObjectRecord {
    /// A delete marker (a record with no blob) for `bucket/key`, made at `at`.
    pub fn delete_marker(bucket: &str, key: &str, version_id: String, versioned: bool, at: OffsetDateTime) -> Self {
        ObjectRecord {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id,
            versioned,
            blob_id: String::new(),
            size: 0,
            etag: String::new(),
            last_modified: at,
            headers: Default::default(),
            user_meta: Default::default(),
            tags: Vec::new(),
            parts_count: None,
            part_sizes: Vec::new(),
            scan: Default::default(),
            lock: Default::default(),
        }
    }

    /// The version id as S3 shows it: the record's own, or `null`.
    pub fn s3_version_id(&self) -> &str {
        if self.versioned { &self.version_id } else { NULL_VERSION }
    }

    /// The object's tags as S3 shows them and policies read them: its writers' tags, and the
    /// scanner's `latchkey:sensitivity` when remediation tagged the version.
    pub fn tag_set(&self) -> Vec<Tag> {
        let mut tags = self.tags.clone();
        if let (true, Some(sensitivity)) = (self.scan.tagged, self.scan.sensitivity) {
            tags.push(Tag { key: SENSITIVITY_TAG.to_owned(), value: sensitivity.as_str().to_owned() });
        }
        tags
    }
}

/// The highest severity of sensitive data found in an object version, or `None` when a scan
/// found nothing (the values of the `latchkey:ObjectSensitivity` condition key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sensitivity {
    None,
    Low,
    Medium,
    High,
}

impl Sensitivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::None, Self::Low, Self::Medium, Self::High].into_iter().find(|v| v.as_str() == s)
    }
}

/// An object version's scan status. A new version starts unscanned (`sensitivity: None`,
/// nothing applied); only the scan queue's completion changes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStatus {
    /// `None` until the version has been scanned.
    pub sensitivity: Option<Sensitivity>,
    /// Some of it could not be read (binary or encrypted entries, formats not read): a scan
    /// that found nothing did not show it clean.
    pub partial: bool,
    /// Show `latchkey:sensitivity` among its tags.
    pub tagged: bool,
    /// Refuse every read of its bytes (GET, copy, share links, presigned URLs).
    pub quarantined: bool,
}

/// An entry of a key's history: a version with bytes, or a delete marker (whose `record` has no
/// blob: empty `blob_id`, size 0), and whether it is the key's latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub record: ObjectRecord,
    pub delete_marker: bool,
    pub latest: bool,
    /// Its place in the key's history, newer higher; it never changes (`i64::MAX` for a
    /// current version written as current, until it joins the history).
    pub seq: i64,
    /// It is the key's current version (in `objects`).
    pub current: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub initiated: OffsetDateTime,
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    pub tags: Vec<Tag>,
    /// The retention and legal hold the upload asked for (the bucket's default retention is
    /// applied at completion, when the version is made).
    pub lock: ObjectLock,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    pub upload_id: String,
    pub part_number: i32,
    pub blob_id: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: OffsetDateTime,
}

/// A share link. The token itself is never stored: `token_hash` is a keyed hash of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: String,
    pub token_hash: Vec<u8>,
    /// `GET` (download link) or `PUT` (upload link).
    pub method: String,
    pub bucket: String,
    /// The object's key; for an upload link with `key_is_prefix`, the prefix under which the
    /// uploader names the object.
    pub key: String,
    pub key_is_prefix: bool,
    /// The object version the link was made for; a later overwrite invalidates the link.
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size: Option<u64>,
    pub created: OffsetDateTime,
    pub expires: OffsetDateTime,
    pub max_uses: u32,
    pub uses_left: u32,
    pub allow_cidrs: Vec<String>,
    /// `attachment` or `inline`.
    pub disposition: String,
    pub label: Option<String>,
    /// The access key that made the link.
    pub principal: String,
    /// The creator's unique id (`AIDA...`, `AROA...`, the account id for root), or the session's
    /// key id (`ASIA...`) when it was minted with temporary credentials; `None` for links made
    /// before it was recorded.
    pub principal_id: Option<String>,
    pub revoked: Option<OffsetDateTime>,
    /// Upload links: the largest body accepted.
    pub max_size: Option<u64>,
    /// Upload links: the accepted media types (`image/png`, `image/*`); empty accepts any.
    pub content_types: Vec<String>,
    /// Download links: answer a redemption with a redirect to a short-lived presigned URL
    /// instead of the bytes.
    pub redirect: bool,
}

/// A use of a download link, granted: the share after the use, and the object record its version
/// check matched when the store read that in the same statement (`None`: look it up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedUse {
    pub share: Share,
    pub object: Option<ObjectRecord>,
}

/// Which shares a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ShareFilter {
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    /// Only shares that can still be redeemed (not expired, revoked or used up) at this time.
    pub active_at: Option<OffsetDateTime>,
}

/// A security event, stored and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: OffsetDateTime,
    /// `share.created`, `share.redeemed`, `share.denied`, `share.revoked`.
    pub event: String,
    pub share_id: Option<String>,
    pub principal: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// For denials, the true reason (never shown to the caller).
    pub reason: Option<String>,
}

/// A share as listed: with whether its object is still the version it was made for (always
/// true for an upload link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedShare {
    pub share: Share,
    pub object_current: bool,
}

/// Bytes a client asks to be served under a grant it holds (see `MetaStore::reserve_grant`).
#[derive(Debug, Clone, Copy)]
pub struct GrantRequest<'a> {
    pub share_id: &'a str,
    pub to: &'a Grantee,
    /// The earliest grant that may be continued.
    pub since: OffsetDateTime,
    pub now: OffsetDateTime,
    pub bytes: u64,
    /// The most bytes one grant may serve in all.
    pub budget: u64,
}

/// Who receives a consumed use: recorded with it, in the same transaction, as a grant (for
/// resuming) and as a `share.redeemed` audit event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grantee {
    pub source_ip: String,
    pub user_agent: Option<String>,
}

impl Grantee {
    /// The audit event of a use granted to this grantee at `at`.
    pub fn redeemed(&self, share_id: &str, at: OffsetDateTime) -> AuditEvent {
        AuditEvent {
            at,
            event: "share.redeemed".to_owned(),
            share_id: Some(share_id.to_owned()),
            principal: None,
            source_ip: Some(self.source_ip.clone()),
            user_agent: self.user_agent.clone(),
            reason: None,
        }
    }
}
