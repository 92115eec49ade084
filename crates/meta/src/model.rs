//! The records the store keeps, independent of any backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    pub region: String,
    pub created: OffsetDateTime,
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

/// The current version of one object. `version_id` changes on every write, so anything bound to
/// "the object as it was" (share links) can tell when it was replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub blob_id: String,
    pub size: u64,
    /// Hex MD5 of the bytes, or `md5-of-md5s-N` for a multipart object; without quotes.
    pub etag: String,
    pub last_modified: OffsetDateTime,
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    pub tags: Vec<Tag>,
    pub parts_count: Option<u32>,
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

/// An access key that can sign requests. The secret must be kept retrievable: SigV4 verification
/// recomputes the signature from it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_key: String,
    pub principal: String,
    pub created: OffsetDateTime,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_key", &"<redacted>")
            .field("principal", &self.principal)
            .finish()
    }
}
