//! The object service: what buckets and objects mean, independent of any wire protocol.
//!
//! It joins the metadata store (records) and blob storage (bytes) under one rule: a record is
//! committed only after its blob is durable, and a blob is deleted only after no record names
//! it. Every front end (the S3 API, share links) reads and writes objects through here.

mod integrity;
pub mod lifecycle;
mod list;
mod multipart;
mod object_lock;
mod versions;

pub use integrity::BlobCheck;
pub use list::{ListEntry, ListPage, ListRequest, VersionPage, VersionsRequest, version_marker};
pub use multipart::{CompletedPart, MultipartError};
pub use versions::Deletion;

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use latchkey_meta::{
    AuditEvent, Bucket, ContentHeaders, LockConfiguration, LockRefusal, MetaError, MetaStore, ObjectLock, ObjectRecord,
    Sensitivity, Tag, VersionStore, Versioning,
};
use latchkey_storage::{BlobStore, BlobStream, StorageError, WriteLimits};
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the object does not exist")]
    NoSuchKey,
    #[error("the version does not exist")]
    NoSuchVersion,
    /// The version asked for, or the key's latest entry (`latest`), is a delete marker.
    #[error("the version is a delete marker")]
    DeleteMarker { version_id: String, last_modified: OffsetDateTime, latest: bool },
    #[error(transparent)]
    Meta(MetaError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("multipart: {0}")]
    Multipart(#[from] multipart::MultipartError),
    /// The version a copy was asked for was replaced and its bytes are gone.
    #[error("the copy source changed")]
    SourceChanged,
    /// The scanner's verdict withholds the version's bytes (the reason is audited, never shown).
    #[error("the object is withheld: {0}")]
    Withheld(Withheld),
    /// A write or change asked for Object Lock settings in a bucket without Object Lock.
    #[error("the bucket has no Object Lock configuration")]
    NoLockConfiguration,
    /// Object Lock refuses the deletion or the change.
    #[error("object lock: {0}")]
    Locked(LockRefusal),
    /// The bucket's state does not allow the change (versioning of an Object Lock bucket).
    #[error("{0}")]
    InvalidBucketState(&'static str),
}

/// Why a version's bytes are not served: every read (GET, copy, share links) honours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// Remediation quarantined it.
    Quarantined,
    /// Its bucket is scan-gated and it has not been scanned yet.
    Unscanned,
    /// Its bucket is scan-gated and the scan found sensitive data.
    Sensitive(Sensitivity),
    /// Its bucket is scan-gated and the scan could not read all of it.
    Partial,
}

impl std::fmt::Display for Withheld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Quarantined => f.write_str("quarantined by the sensitive-data scanner"),
            Self::Unscanned => f.write_str("not scanned (yet, or given up: see scan.failed) in a scan-gated bucket"),
            Self::Partial => f.write_str("not all of it could be scanned, in a scan-gated bucket"),
            Self::Sensitive(s) => write!(f, "sensitive data ({}) in a scan-gated bucket", s.as_str()),
        }
    }
}

/// Buckets whose new versions are served only once scanned clean.
#[derive(Debug, Clone, Default)]
pub struct ScanGate {
    /// Bucket names; `*` gates every bucket.
    pub buckets: Vec<String>,
}

impl ScanGate {
    fn gates(&self, bucket: &str) -> bool {
        self.buckets.iter().any(|b| b == "*" || b == bucket)
    }

    /// Why `record`'s bytes may not be served, if they may not.
    pub fn withheld(&self, record: &ObjectRecord) -> Option<Withheld> {
        if record.scan.quarantined {
            return Some(Withheld::Quarantined);
        }
        if !self.gates(&record.bucket) {
            return None;
        }
        match record.scan.sensitivity {
            None => Some(Withheld::Unscanned),
            Some(Sensitivity::None) if record.scan.partial => Some(Withheld::Partial),
            Some(Sensitivity::None) => None,
            Some(found) => Some(Withheld::Sensitive(found)),
        }
    }
}

impl From<MetaError> for ObjectError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::NoSuchBucket => Self::NoSuchBucket,
            MetaError::ObjectLocked(why) => Self::Locked(why),
            other => Self::Meta(other),
        }
    }
}

impl From<io::Error> for ObjectError {
    fn from(e: io::Error) -> Self {
        Self::Storage(StorageError::Io(e))
    }
}

pub type ObjectResult<T> = Result<T, ObjectError>;

/// What a writer says about a new object besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct ObjectAttributes {
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    pub tags: Vec<Tag>,
    /// The retention and legal hold asked for (the bucket's default retention applies when it
    /// asks for none); only in a bucket with Object Lock.
    pub lock: ObjectLock,
}

/// Why a read did not start: the object service failed, or the caller's plan refused.
#[derive(Debug)]
pub enum ReadError<E> {
    Object(ObjectError),
    Refused(E),
}

/// An open read of one object version: its record, the byte range served, and the bytes.
pub struct ObjectRead {
    pub record: ObjectRecord,
    pub range: Range<u64>,
    pub body: BlobStream,
}

pub struct ObjectService {
    meta: Arc<dyn MetaStore>,
    versions: Arc<dyn VersionStore>,
    blobs: BlobStore,
    gate: ScanGate,
    /// Woken by deletions; replaced blobs wait for the collector's next tick.
    released: tokio::sync::Notify,
}

/// Released blobs deleted per collector pass.
const COLLECT_BATCH: u32 = 256;

/// How often the collector looks for blobs that overwrites released. Waking it per write would
/// cost every PUT a query; a second's delay costs only disk space.
const COLLECT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// How often a read retries when the blob it looked up was released by a concurrent overwrite
/// between the lookup and the open. Each retry sees a newer record, so two suffice in practice.
const READ_ATTEMPTS: usize = 4;

impl ObjectService {
    pub fn new(meta: Arc<dyn MetaStore>, versions: Arc<dyn VersionStore>, blobs: BlobStore) -> Self {
        Self { meta, versions, blobs, gate: ScanGate::default(), released: tokio::sync::Notify::new() }
    }

    /// Serves versions in `gate`'s buckets only once scanned clean.
    pub fn with_scan_gate(mut self, gate: ScanGate) -> Self {
        self.gate = gate;
        self
    }

    /// `Withheld` when the scanner's verdict (quarantine, scan gate) keeps `record`'s bytes from
    /// being served, the refusal audited: what every read, and the minting of a link, asks.
    pub async fn check_servable(&self, record: &ObjectRecord) -> ObjectResult<()> {
        let Some(why) = self.gate.withheld(record) else { return Ok(()) };
        let event = AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: "object.withheld".into(),
            share_id: None,
            principal: None,
            source_ip: None,
            user_agent: None,
            reason: Some(format!("s3://{}/{} version {}: {why}", record.bucket, record.key, record.version_id)),
        };
        if let Err(e) = self.meta.record_audit(&event).await {
            tracing::error!(error = %e, "cannot record a withheld read");
        }
        Err(ObjectError::Withheld(why))
    }

    pub fn meta(&self) -> &dyn MetaStore {
        self.meta.as_ref()
    }

    /// Creates a bucket; one with Object Lock starts with versioning enabled, for good.
    pub async fn create_bucket(&self, name: &str, region: &str, object_lock: bool) -> ObjectResult<()> {
        let bucket = Bucket {
            name: name.to_owned(),
            region: region.to_owned(),
            created: OffsetDateTime::now_utc(),
            versioning: object_lock.then_some(Versioning::Enabled),
            object_lock: object_lock.then(LockConfiguration::default),
            mfa_delete: None,
        };
        Ok(self.meta.create_bucket(&bucket).await?)
    }

    pub async fn delete_bucket(&self, name: &str) -> ObjectResult<()> {
        self.meta.delete_bucket(name).await?;
        self.released.notify_one();
        Ok(())
    }

    pub async fn bucket(&self, name: &str) -> ObjectResult<Bucket> {
        self.meta.get_bucket(name).await?.ok_or(ObjectError::NoSuchBucket)
    }

    /// What a version written to `bucket` now is: whether it has its own id (versioning enabled)
    /// rather than being the key's null version, and its Object Lock (what it asked for, else the
    /// bucket's default retention). Asking for a lock in a bucket without Object Lock is refused.
    pub(crate) async fn new_version_terms(
        &self,
        bucket: &str,
        requested: ObjectLock,
    ) -> ObjectResult<(bool, ObjectLock)> {
        let bucket = self.bucket(bucket).await?;
        let lock = match bucket.object_lock {
            Some(config) => config.lock_for(requested, OffsetDateTime::now_utc()),
            None if requested == ObjectLock::default() => requested,
            None => return Err(ObjectError::NoLockConfiguration),
        };
        Ok((bucket.versioning == Some(Versioning::Enabled), lock))
    }

    /// The current record of an object; `NoSuchBucket` is told apart from `NoSuchKey` as S3 does,
    /// and a key whose latest entry is a delete marker answers `DeleteMarker`.
    pub async fn head(&self, bucket: &str, key: &str) -> ObjectResult<ObjectRecord> {
        match self.meta.get_object(bucket, key).await? {
            Some(record) => Ok(record),
            None => {
                if self.bucket(bucket).await?.versioning.is_some()
                    && let Some(latest) = self.versions.latest_version(bucket, key).await?
                    && latest.delete_marker
                {
                    return Err(ObjectError::DeleteMarker {
                        version_id: latest.record.s3_version_id().to_owned(),
                        last_modified: latest.record.last_modified,
                        latest: true,
                    });
                }
                Err(ObjectError::NoSuchKey)
            }
        }
    }

    /// Opens the current version of an object. `plan` sees the record and decides the range to
    /// serve, or refuses (a failed precondition, an unsatisfiable range); it may run more than
    /// once, because a read that races an overwrite retries with the newer record. A version the
    /// scanner's verdict withholds is refused (`Withheld`), and the refusal audited.
    pub async fn read<E>(
        &self,
        bucket: &str,
        key: &str,
        plan: impl Fn(&ObjectRecord) -> Result<Range<u64>, E>,
    ) -> Result<ObjectRead, ReadError<E>> {
        self.read_from(bucket, key, None, plan).await
    }

    /// [`ObjectService::read`], starting from `known`, a record the caller has just read from
    /// the store, if any: then the first attempt needs no lookup.
    pub async fn read_from<E>(
        &self,
        bucket: &str,
        key: &str,
        mut known: Option<ObjectRecord>,
        plan: impl Fn(&ObjectRecord) -> Result<Range<u64>, E>,
    ) -> Result<ObjectRead, ReadError<E>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let record = match known.take() {
                Some(record) => record,
                None => self.head(bucket, key).await.map_err(ReadError::Object)?,
            };
            self.check_servable(&record).await.map_err(ReadError::Object)?;
            let range = plan(&record).map_err(ReadError::Refused)?;
            match self.blobs.read(&record.blob_id, range.clone()).await {
                Ok(body) => return Ok(ObjectRead { record, range, body }),
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < READ_ATTEMPTS => continue,
                Err(e) => return Err(ReadError::Object(e.into())),
            }
        }
    }

    /// `record`'s bytes as a file, whatever the scan gate says: for the scanner alone (on its own
    /// thread: this blocks), whose verdict is what the gate waits for. `NotFound` once the
    /// version was replaced and its blob released.
    pub fn open_for_scan(&self, record: &ObjectRecord) -> io::Result<std::fs::File> {
        self.blobs.open_file(&record.blob_id)
    }

    /// Stores a new version of `bucket/key` from a stream of bytes. The previous version stays
    /// readable until the new one is durable and committed.
    pub async fn put<S, E>(
        &self,
        bucket: &str,
        key: &str,
        body: S,
        limits: WriteLimits,
        attrs: ObjectAttributes,
    ) -> ObjectResult<ObjectRecord>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let requested = attrs.lock;
        let mut record = self.write_blob(bucket, key, body, limits, attrs).await?;
        self.settle_terms(&mut record, requested).await?;
        self.commit(record, Commit::Put).await
    }

    /// Stores bytes as a new version of `bucket/key` like [`ObjectService::put`], but the record
    /// is written by `write`, which writes it in one transaction with whatever else it changes
    /// and returns `false` when it declined to write. A declined or refused write deletes the
    /// bytes again, so nothing is left behind; `Ok(None)` means declined. A failure that may
    /// have committed is settled as [`ObjectService::settle_failed_write`] says.
    pub async fn put_with<S, E>(
        &self,
        bucket: &str,
        key: &str,
        body: S,
        limits: WriteLimits,
        attrs: ObjectAttributes,
        write: impl AsyncFnOnce(&ObjectRecord) -> Result<bool, MetaError>,
    ) -> ObjectResult<Option<ObjectRecord>>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let requested = attrs.lock;
        let mut record = self.write_blob(bucket, key, body, limits, attrs).await?;
        self.settle_terms(&mut record, requested).await?;
        match write(&record).await {
            Ok(true) => Ok(Some(record)),
            Ok(false) => {
                self.blobs.delete(std::slice::from_ref(&record.blob_id)).await;
                Ok(None)
            }
            Err(e) => self.settle_failed_write(record, e).await.map(Some),
        }
    }

    /// Writes the bytes of a new version durably and returns the record that will name them.
    async fn write_blob<S, E>(
        &self,
        bucket: &str,
        key: &str,
        body: S,
        limits: WriteLimits,
        attrs: ObjectAttributes,
    ) -> ObjectResult<ObjectRecord>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Refuse early rather than store the bytes of a request that cannot succeed.
        let (versioned, lock) = self.new_version_terms(bucket, attrs.lock).await?;
        let blob = self.blobs.write(body, limits).await?;
        Ok(ObjectRecord {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: new_version_id(),
            versioned,
            blob_id: blob.blob_id,
            size: blob.size,
            etag: hex::encode(blob.md5),
            last_modified: OffsetDateTime::now_utc(),
            headers: attrs.headers,
            user_meta: attrs.user_meta,
            tags: attrs.tags,
            parts_count: None,
            part_sizes: Vec::new(),
            scan: Default::default(),
            lock,
        })
    }

    /// Decides again, once the bytes are durable and just before the commit, what the new
    /// version is (see [`ObjectService::new_version_terms`]): a write that straddled a change of
    /// the bucket's versioning or Object Lock commits under the state it meets (the store refuses
    /// one that still misses a change, `MetaError::VersioningChanged`). A refusal here deletes
    /// the fresh blob.
    pub(crate) async fn settle_terms(&self, record: &mut ObjectRecord, requested: ObjectLock) -> ObjectResult<()> {
        match self.new_version_terms(&record.bucket, requested).await {
            Ok((versioned, lock)) => {
                (record.versioned, record.lock) = (versioned, lock);
                Ok(())
            }
            Err(e) => {
                self.blobs.delete(std::slice::from_ref(&record.blob_id)).await;
                Err(e)
            }
        }
    }

    /// Copies exactly the version `source` (the record the caller checked its conditions
    /// against, current or not) to `bucket/key` with the given attributes. `SourceChanged` when
    /// that version was replaced and its bytes are gone: a newer version is never copied in its
    /// place.
    pub async fn copy(
        &self,
        source: &ObjectRecord,
        bucket: &str,
        key: &str,
        attrs: ObjectAttributes,
    ) -> ObjectResult<ObjectRecord> {
        self.check_servable(source).await?;
        let body = match self.blobs.read(&source.blob_id, 0..source.size).await {
            Ok(body) => body,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ObjectError::SourceChanged),
            Err(e) => return Err(e.into()),
        };
        let limits = WriteLimits { expected_size: Some(source.size), ..WriteLimits::default() };
        self.put(bucket, key, body, limits, attrs).await
    }

    pub async fn set_tags(&self, bucket: &str, key: &str, tags: &[Tag]) -> ObjectResult<()> {
        if self.meta.set_object_tags(bucket, key, tags).await? {
            return Ok(());
        }
        self.head(bucket, key).await.map(|_| ())
    }

    /// Wakes the collector: a deletion released blobs.
    pub(crate) fn released(&self) {
        self.released.notify_one();
    }

    /// Commits a record naming a fresh blob; blobs the commit released go to the collector. A
    /// failed commit is settled by [`ObjectService::settle_failed_write`].
    async fn commit(&self, record: ObjectRecord, how: Commit<'_>) -> ObjectResult<ObjectRecord> {
        let result = match how {
            Commit::Put => self.meta.put_object(&record).await,
            Commit::CompleteUpload(upload_id) => self.meta.complete_upload(upload_id, &record).await,
        };
        match result {
            Ok(()) => Ok(record),
            Err(e) => self.settle_failed_write(record, e).await,
        }
    }

    /// After the write of `record` failed with `e`. A refusal deletes its fresh blob, so it
    /// leaves nothing behind. Any other error may have come after the commit, when the record
    /// names the blob (and the one it replaced is queued for release): deleting the blob then
    /// would lose the object. So the record is read back; if it is ours, the write succeeded.
    /// Otherwise the blob stays, logged, for an orphan sweep.
    async fn settle_failed_write(&self, record: ObjectRecord, e: MetaError) -> ObjectResult<ObjectRecord> {
        if self.discard_blob(&record.blob_id, &e).await {
            return Err(e.into());
        }
        match self.meta.get_object(&record.bucket, &record.key).await {
            Ok(Some(current)) if current.version_id == record.version_id => {
                tracing::warn!(error = %e, blob_id = %record.blob_id, "a write failed after its commit; it stands");
                Ok(record)
            }
            _ => Err(e.into()),
        }
    }

    /// Deletes the blob of a write that failed with `e` if the store certainly wrote nothing,
    /// and says whether it did. Otherwise a committed record may name the blob: it is kept.
    async fn discard_blob(&self, blob_id: &str, e: &MetaError) -> bool {
        if e.wrote_nothing() {
            self.blobs.delete(&[blob_id.to_owned()]).await;
            return true;
        }
        tracing::error!(error = %e, blob_id, "a write failed after it may have committed; its blob is kept (for an orphan sweep if no record names it)");
        false
    }

    /// Deletes the files of released blobs, then forgets them; returns how many. A crash in
    /// between only means deleting an already missing file again.
    pub async fn collect_released(&self) -> ObjectResult<usize> {
        let mut total = 0;
        loop {
            let batch = self.meta.released_blobs(COLLECT_BATCH).await?;
            if batch.is_empty() {
                return Ok(total);
            }
            self.blobs.delete(&batch).await;
            self.meta.forget_released(&batch).await?;
            total += batch.len();
        }
    }

    /// Runs the collector until `shutdown` resolves: after deletions, and every second for the
    /// blobs that overwrites release.
    pub async fn run_collector(&self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            if let Err(e) = self.collect_released().await {
                tracing::warn!(error = %e, "blob collection failed; will retry");
            }
            tokio::select! {
                () = self.released.notified() => {}
                () = tokio::time::sleep(COLLECT_EVERY) => {}
                () = &mut shutdown => return,
            }
        }
    }
}

/// The metadata change that makes a fresh blob visible.
enum Commit<'a> {
    Put,
    CompleteUpload(&'a str),
}

fn new_version_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir.join("blobs"))
            .unwrap()
            .map(|fanout| std::fs::read_dir(fanout.unwrap().path()).unwrap().count())
            .sum()
    }

    /// A service over a fresh data dir, with bucket `b`.
    async fn service() -> (tempfile::TempDir, ObjectService) {
        let dir = tempfile::tempdir().unwrap();
        let meta = latchkey_meta::SqliteStore::open(&dir.path().join("meta.db")).await.unwrap();
        let meta = Arc::new(meta);
        let service = ObjectService::new(meta.clone(), meta, BlobStore::open(dir.path()).unwrap());
        service.create_bucket("b", "us-east-1", false).await.unwrap();
        (dir, service)
    }

    #[tokio::test]
    async fn replaced_and_deleted_blobs_are_collected() {
        let (dir, service) = service().await;
        for body in [&b"one"[..], b"two"] {
            put(&service, "k", body).await;
        }
        assert_eq!(blob_files(dir.path()), 2);
        assert_eq!(service.collect_released().await.unwrap(), 1);
        assert_eq!(blob_files(dir.path()), 1);
        let read = service.read("b", "k", |r| Ok::<_, ()>(0..r.size)).await.unwrap();
        assert_eq!(read.record.size, 3);
        service.delete("b", "k").await.unwrap();
        assert_eq!(service.collect_released().await.unwrap(), 1);
        assert_eq!(blob_files(dir.path()), 0);
    }

    /// A blob file no record names, as a crash between its rename and its commit leaves it,
    /// last written `age` ago.
    fn orphan(dir: &std::path::Path, id: &str, age: std::time::Duration) -> std::path::PathBuf {
        let shard = dir.join("blobs").join(&id[..2]);
        std::fs::create_dir_all(&shard).unwrap();
        let path = shard.join(id);
        let file = std::fs::File::create(&path).unwrap();
        file.set_modified(std::time::SystemTime::now() - age).unwrap();
        path
    }

    #[tokio::test]
    async fn old_orphans_are_swept_and_nothing_named_is_touched() {
        let (dir, service) = service().await;
        let hour = std::time::Duration::from_secs(3600);
        let kept = put(&service, "k", b"committed").await;
        let upload = service.create_upload("b", "big", ObjectAttributes::default()).await.unwrap();
        let stream = futures::stream::iter([Ok::<_, io::Error>(Bytes::from_static(b"part"))]);
        service.upload_part("b", "big", &upload.upload_id, 1, stream, WriteLimits::default()).await.unwrap();
        // Everything written so far is old, as after a long uptime.
        let shards = std::fs::read_dir(dir.path().join("blobs")).unwrap();
        for file in shards.flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap()) {
            let file = std::fs::File::options().write(true).open(file.unwrap().path()).unwrap();
            file.set_modified(std::time::SystemTime::now() - 2 * hour).unwrap();
        }
        let old = orphan(dir.path(), "00112233445566778899aabbccddeeff", 2 * hour);
        let fresh = orphan(dir.path(), "ffeeddccbbaa99887766554433221100", std::time::Duration::ZERO);
        let check = service.check_blobs(hour).await.unwrap();
        assert_eq!((check.records, check.orphans.clone()), (2, vec!["00112233445566778899aabbccddeeff".to_owned()]));
        assert!(old.exists(), "checking changes nothing");

        assert_eq!(service.sweep_orphans(hour).await.unwrap(), 1);
        assert!(!old.exists() && fresh.exists(), "only what is older than the grace period");
        assert_eq!(bytes_of(&service, "k").await, b"committed", "named blobs stay, however old");
        assert!(service.check_blobs(hour).await.unwrap().is_clean());
        assert_eq!(service.sweep_orphans(hour).await.unwrap(), 0);

        // A record whose blob is gone or cut short is reported.
        std::fs::remove_file(dir.path().join("blobs").join(&kept.blob_id[..2]).join(&kept.blob_id)).unwrap();
        let check = service.check_blobs(hour).await.unwrap();
        assert_eq!((check.missing, check.wrong_size.len()), (vec!["s3://b/k".to_owned()], 0));
    }

    async fn put(service: &ObjectService, key: &str, body: &'static [u8]) -> ObjectRecord {
        let stream = futures::stream::iter([Ok::<_, io::Error>(Bytes::from_static(body))]);
        service.put("b", key, stream, WriteLimits::default(), ObjectAttributes::default()).await.unwrap()
    }

    async fn bytes_of(service: &ObjectService, key: &str) -> Vec<u8> {
        let read = service.read("b", key, |r| Ok::<_, ()>(0..r.size)).await.unwrap();
        let chunks: Vec<Bytes> = futures::TryStreamExt::try_collect(read.body).await.unwrap();
        chunks.concat()
    }

    /// The source is replaced between the caller's condition check (on `approved`) and the
    /// copy: the copy has the approved bytes while they exist, and is refused once they are
    /// gone; it never has the newer bytes.
    #[tokio::test]
    async fn a_copy_takes_the_approved_version_or_none() {
        let (_dir, service) = service().await;
        let approved = put(&service, "src", b"approved").await;
        put(&service, "src", b"newer").await;
        let copied = service.copy(&approved, "b", "dst", ObjectAttributes::default()).await.unwrap();
        assert_eq!(copied.etag, approved.etag);
        assert_eq!(bytes_of(&service, "dst").await, b"approved");
        service.collect_released().await.unwrap();
        let refused = service.copy(&approved, "b", "dst2", ObjectAttributes::default()).await;
        assert!(matches!(refused, Err(ObjectError::SourceChanged)), "{refused:?}");
        assert!(matches!(service.head("b", "dst2").await, Err(ObjectError::NoSuchKey)));
    }
}
