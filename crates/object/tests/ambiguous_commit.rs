//! A write whose store reports an error after (or instead of) committing: the object service
//! deletes the new blob only when the store certainly wrote nothing.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use latchkey_meta::{
    AuditEvent, Bucket, GrantRequest, GrantedUse, Grantee, KeyRange, ListedShare, MetaError, MetaResult, MetaStore,
    MultipartUpload, ObjectRecord, PartRecord, Share, ShareFilter, SqliteStore, Tag,
};
use latchkey_object::{CompletedPart, ObjectAttributes, ObjectError, ObjectService};
use latchkey_storage::{BlobStore, WriteLimits};
use time::OffsetDateTime;

/// How the next object write goes wrong.
#[derive(Clone, Copy)]
enum Fault {
    /// It commits, then the answer is lost (`Closed`).
    CommitThenClosed,
    /// It is lost before the writer ran it (`Closed`, nothing written).
    ClosedUnwritten,
    /// Its bucket is deleted first, so the store refuses it (`NoSuchBucket`).
    BucketDeleted,
}

/// A SQLite store whose next `put_object` or `complete_upload` suffers `fault`.
struct Faulty {
    inner: Arc<SqliteStore>,
    fault: Mutex<Option<Fault>>,
}

impl Faulty {
    /// Runs `write` (of `record`) with the pending fault, if any.
    async fn faulty(&self, record: &ObjectRecord, write: impl Future<Output = MetaResult<()>>) -> MetaResult<()> {
        let fault = self.fault.lock().unwrap().take();
        match fault {
            None => write.await,
            Some(Fault::CommitThenClosed) => {
                write.await?;
                Err(MetaError::Closed)
            }
            Some(Fault::ClosedUnwritten) => Err(MetaError::Closed),
            Some(Fault::BucketDeleted) => {
                self.inner.delete_bucket(&record.bucket).await?;
                write.await
            }
        }
    }
}

#[async_trait]
impl MetaStore for Faulty {
    async fn put_object(&self, record: &ObjectRecord) -> MetaResult<()> {
        self.faulty(record, self.inner.put_object(record)).await
    }
    async fn complete_upload(&self, upload_id: &str, record: &ObjectRecord) -> MetaResult<()> {
        self.faulty(record, self.inner.complete_upload(upload_id, record)).await
    }

    async fn create_bucket(&self, bucket: &Bucket) -> MetaResult<()> {
        self.inner.create_bucket(bucket).await
    }
    async fn delete_bucket(&self, name: &str) -> MetaResult<()> {
        self.inner.delete_bucket(name).await
    }
    async fn get_bucket(&self, name: &str) -> MetaResult<Option<Bucket>> {
        self.inner.get_bucket(name).await
    }
    async fn list_buckets(&self) -> MetaResult<Vec<Bucket>> {
        self.inner.list_buckets().await
    }
    async fn get_object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectRecord>> {
        self.inner.get_object(bucket, key).await
    }
    async fn delete_object(&self, bucket: &str, key: &str) -> MetaResult<bool> {
        self.inner.delete_object(bucket, key).await
    }
    async fn list_objects(&self, bucket: &str, range: KeyRange<'_>) -> MetaResult<Vec<ObjectRecord>> {
        self.inner.list_objects(bucket, range).await
    }
    async fn set_object_tags(&self, bucket: &str, key: &str, tags: &[Tag]) -> MetaResult<bool> {
        self.inner.set_object_tags(bucket, key, tags).await
    }
    async fn create_upload(&self, upload: &MultipartUpload) -> MetaResult<()> {
        self.inner.create_upload(upload).await
    }
    async fn get_upload(&self, upload_id: &str) -> MetaResult<Option<MultipartUpload>> {
        self.inner.get_upload(upload_id).await
    }
    async fn put_part(&self, part: &PartRecord) -> MetaResult<()> {
        self.inner.put_part(part).await
    }
    async fn list_parts(&self, upload_id: &str, after_part: i32, limit: u32) -> MetaResult<Vec<PartRecord>> {
        self.inner.list_parts(upload_id, after_part, limit).await
    }
    async fn list_uploads(
        &self,
        bucket: &str,
        range: KeyRange<'_>,
        upload_id_marker: Option<&str>,
    ) -> MetaResult<Vec<MultipartUpload>> {
        self.inner.list_uploads(bucket, range, upload_id_marker).await
    }
    async fn abort_upload(&self, upload_id: &str) -> MetaResult<()> {
        self.inner.abort_upload(upload_id).await
    }
    async fn released_blobs(&self, limit: u32) -> MetaResult<Vec<String>> {
        self.inner.released_blobs(limit).await
    }
    async fn forget_released(&self, blob_ids: &[String]) -> MetaResult<()> {
        self.inner.forget_released(blob_ids).await
    }
    async fn referenced_blobs(&self, blob_ids: &[String]) -> MetaResult<Vec<String>> {
        self.inner.referenced_blobs(blob_ids).await
    }
    async fn create_share(&self, share: &Share) -> MetaResult<()> {
        self.inner.create_share(share).await
    }
    async fn get_share(&self, id: &str) -> MetaResult<Option<Share>> {
        self.inner.get_share(id).await
    }
    async fn find_share(&self, token_hash: &[u8]) -> MetaResult<Option<Share>> {
        self.inner.find_share(token_hash).await
    }
    async fn list_shares(&self, filter: &ShareFilter) -> MetaResult<Vec<ListedShare>> {
        self.inner.list_shares(filter).await
    }
    async fn revoke_share(&self, id: &str, at: OffsetDateTime) -> MetaResult<bool> {
        self.inner.revoke_share(id, at).await
    }
    async fn consume_share(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
        to: &Grantee,
        address_checked: bool,
    ) -> MetaResult<Option<GrantedUse>> {
        self.inner.consume_share(token_hash, now, to, address_checked).await
    }
    async fn consume_upload_share(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
        to: &Grantee,
        record: &ObjectRecord,
        replace: bool,
    ) -> MetaResult<Option<Share>> {
        self.inner.consume_upload_share(token_hash, now, to, record, replace).await
    }
    async fn purge_shares(&self, before: OffsetDateTime) -> MetaResult<u64> {
        self.inner.purge_shares(before).await
    }
    async fn has_grant(&self, share_id: &str, to: &Grantee, since: OffsetDateTime) -> MetaResult<bool> {
        self.inner.has_grant(share_id, to, since).await
    }
    async fn reserve_grant(&self, request: &GrantRequest<'_>) -> MetaResult<Option<OffsetDateTime>> {
        self.inner.reserve_grant(request).await
    }
    async fn refund_grant(&self, share_id: &str, to: &Grantee, granted: OffsetDateTime, bytes: u64) -> MetaResult<()> {
        self.inner.refund_grant(share_id, to, granted, bytes).await
    }
    async fn record_audit(&self, event: &AuditEvent) -> MetaResult<()> {
        self.inner.record_audit(event).await
    }
    async fn purge_audit(&self, before: OffsetDateTime) -> MetaResult<u64> {
        self.inner.purge_audit(before).await
    }
    async fn health(&self) -> MetaResult<()> {
        self.inner.health().await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}

struct Setup {
    dir: tempfile::TempDir,
    store: Arc<Faulty>,
    service: ObjectService,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(SqliteStore::open(&dir.path().join("meta.db")).await.unwrap());
    let store = Arc::new(Faulty { inner: inner.clone(), fault: Mutex::new(None) });
    let service = ObjectService::new(store.clone(), inner, BlobStore::open(dir.path()).unwrap());
    service.create_bucket("b", "us-east-1", false).await.unwrap();
    Setup { dir, store, service }
}

impl Setup {
    async fn put(&self, fault: Fault, body: &'static [u8]) -> Result<ObjectRecord, ObjectError> {
        *self.store.fault.lock().unwrap() = Some(fault);
        let stream = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(body))]);
        self.service.put("b", "k", stream, WriteLimits::default(), ObjectAttributes::default()).await
    }

    fn blob_files(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("blobs"))
            .unwrap()
            .map(|fanout| std::fs::read_dir(fanout.unwrap().path()).unwrap().count())
            .sum()
    }

    async fn read(&self) -> Vec<u8> {
        let read = self.service.read("b", "k", |r| Ok::<_, ()>(0..r.size)).await.expect("the object reads back");
        let chunks: Vec<Bytes> = futures::TryStreamExt::try_collect(read.body).await.unwrap();
        chunks.concat()
    }
}

#[tokio::test]
async fn an_error_after_the_commit_keeps_the_object() {
    let s = setup().await;
    let record = s.put(Fault::CommitThenClosed, b"committed").await.expect("the committed write stands");
    assert_eq!(s.store.get_object("b", "k").await.unwrap().unwrap().version_id, record.version_id);
    assert_eq!(s.blob_files(), 1);
    assert_eq!(s.read().await, b"committed");
}

#[tokio::test]
async fn an_ambiguous_error_without_a_commit_keeps_the_blob_and_fails() {
    let s = setup().await;
    let outcome = s.put(Fault::ClosedUnwritten, b"lost").await;
    assert!(matches!(outcome, Err(ObjectError::Meta(MetaError::Closed))), "{outcome:?}");
    assert!(s.store.get_object("b", "k").await.unwrap().is_none());
    assert_eq!(s.blob_files(), 1, "the blob waits for an orphan sweep");
}

#[tokio::test]
async fn a_refused_write_removes_its_blob() {
    let s = setup().await;
    let outcome = s.put(Fault::BucketDeleted, b"refused").await;
    assert!(matches!(outcome, Err(ObjectError::NoSuchBucket)), "{outcome:?}");
    assert_eq!(s.blob_files(), 0);
}

#[tokio::test]
async fn an_error_after_a_multipart_commit_keeps_the_object() {
    let s = setup().await;
    let upload = s.service.create_upload("b", "k", ObjectAttributes::default()).await.unwrap();
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"one part"))]);
    let part = s.service.upload_part("b", "k", &upload.upload_id, 1, body, WriteLimits::default()).await.unwrap();
    *s.store.fault.lock().unwrap() = Some(Fault::CommitThenClosed);
    let parts = [CompletedPart { part_number: 1, etag: part.etag }];
    s.service.complete_upload("b", "k", &upload.upload_id, &parts).await.expect("the committed completion stands");
    assert_eq!(s.read().await, b"one part");
}

/// A share upload's write (`put_with`) that commits and then reports an error.
#[tokio::test]
async fn an_error_after_a_put_with_commit_keeps_the_object() {
    let s = setup().await;
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"uploaded"))]);
    let write = async |record: &ObjectRecord| {
        s.store.inner.put_object(record).await?;
        Err(MetaError::Closed)
    };
    let stored = s.service.put_with("b", "k", body, WriteLimits::default(), ObjectAttributes::default(), write).await;
    assert!(stored.expect("the committed write stands").is_some());
    assert_eq!(s.read().await, b"uploaded");
}
