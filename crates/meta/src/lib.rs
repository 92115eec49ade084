//! The metadata store: every row Latchkey keeps (buckets, object records, multipart uploads,
//! access keys) behind one async interface, [`MetaStore`].
//!
//! Object bytes are not here: a record names the blob that holds them (see `latchkey-storage`).
//! Each method is one atomic transaction, so callers never see half of a change. The SQLite
//! implementation ([`SqliteStore`]) is the embedded default; a PostgreSQL one joins it later
//! behind the same trait.

mod cache;
mod model;
mod sqlite;

pub use model::{AccessKey, Bucket, ContentHeaders, MultipartUpload, ObjectRecord, PartRecord, Tag};
pub use sqlite::SqliteStore;

use async_trait::async_trait;

/// Why a store operation failed. Domain outcomes get their own variant so that the S3 layer can
/// map each to the right S3 error; everything else is `Backend`.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the bucket already exists")]
    BucketAlreadyExists,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    #[error("metadata backend: {0}")]
    Backend(#[from] sqlx::Error),
    #[error("metadata encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("metadata migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{path} is in use by another latchkey process; stop it or choose another data dir")]
    Locked { path: String },
    #[error("cannot lock {path}: {source}")]
    Lock { path: String, source: std::io::Error },
}

pub type MetaResult<T> = Result<T, MetaError>;

/// One page request over keys in a bucket: keys that start with `prefix` and sort strictly
/// after `after`, at most `limit` of them, in byte order.
#[derive(Debug, Clone, Copy)]
pub struct KeyRange<'a> {
    pub prefix: &'a str,
    pub after: Option<&'a str>,
    pub limit: u32,
}

/// What a completed multipart upload replaced and released: blob ids the caller may now delete.
#[derive(Debug, Default)]
pub struct Released {
    pub blob_ids: Vec<String>,
}

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn create_bucket(&self, bucket: &Bucket) -> MetaResult<()>;
    /// Deletes an empty bucket; any multipart uploads still open in it are dropped and their
    /// part blobs released.
    async fn delete_bucket(&self, name: &str) -> MetaResult<Released>;
    async fn get_bucket(&self, name: &str) -> MetaResult<Option<Bucket>>;
    async fn list_buckets(&self) -> MetaResult<Vec<Bucket>>;

    async fn get_object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectRecord>>;
    /// Inserts or replaces the record; releases the blob of the record it replaced.
    async fn put_object(&self, record: &ObjectRecord) -> MetaResult<Released>;
    /// Removes the record if present; releases its blob.
    async fn delete_object(&self, bucket: &str, key: &str) -> MetaResult<Released>;
    async fn list_objects(&self, bucket: &str, range: KeyRange<'_>) -> MetaResult<Vec<ObjectRecord>>;
    /// Replaces the tag set; `false` when the object does not exist.
    async fn set_object_tags(&self, bucket: &str, key: &str, tags: &[Tag]) -> MetaResult<bool>;

    async fn create_upload(&self, upload: &MultipartUpload) -> MetaResult<()>;
    async fn get_upload(&self, upload_id: &str) -> MetaResult<Option<MultipartUpload>>;
    /// Records a part (replacing an earlier upload of the same number, whose blob is released).
    async fn put_part(&self, part: &PartRecord) -> MetaResult<Released>;
    /// Parts in number order after `after_part`, at most `limit`.
    async fn list_parts(&self, upload_id: &str, after_part: i32, limit: u32) -> MetaResult<Vec<PartRecord>>;
    /// Open uploads whose key starts with `range.prefix`, ordered by (key, upload id), after the
    /// (key, upload id) marker.
    async fn list_uploads(
        &self,
        bucket: &str,
        range: KeyRange<'_>,
        upload_id_marker: Option<&str>,
    ) -> MetaResult<Vec<MultipartUpload>>;
    /// Drops the upload and its parts; releases the part blobs.
    async fn abort_upload(&self, upload_id: &str) -> MetaResult<Released>;
    /// In one transaction: writes `record`, drops the upload and its parts. Releases the part
    /// blobs and the blob of any record replaced.
    async fn complete_upload(&self, upload_id: &str, record: &ObjectRecord) -> MetaResult<Released>;

    async fn get_access_key(&self, access_key_id: &str) -> MetaResult<Option<AccessKey>>;
    async fn put_access_key(&self, key: &AccessKey) -> MetaResult<()>;

    /// Waits for in-flight statements and closes the connections.
    async fn close(&self);
}
