//! Multipart uploads: parts are blobs of their own until completion concatenates them into the
//! object's blob and commits the record, dropping the upload, in one metadata transaction.

use bytes::Bytes;
use futures::Stream;
use latchkey_meta::{MultipartUpload, ObjectRecord, PartRecord};
use latchkey_storage::WriteLimits;
use md5::{Digest, Md5};
use time::OffsetDateTime;

use crate::{Commit, ObjectAttributes, ObjectError, ObjectResult, ObjectService, new_version_id};

/// S3's minimum size for every part but the last.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// S3's part-number range.
const PART_NUMBERS: std::ops::RangeInclusive<i32> = 1..=10_000;

#[derive(Debug, thiserror::Error)]
pub enum MultipartError {
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    #[error("part {0} was not uploaded or its ETag does not match")]
    InvalidPart(i32),
    #[error("the part list is not in ascending order")]
    InvalidPartOrder,
    #[error("part {0} is smaller than the 5 MiB minimum")]
    EntityTooSmall(i32),
    #[error("part numbers go from 1 to 10000")]
    InvalidPartNumber,
    #[error("a multipart upload needs at least one part")]
    NoParts,
}

/// One entry of a CompleteMultipartUpload request.
#[derive(Debug, Clone)]
pub struct CompletedPart {
    pub part_number: i32,
    /// As the client sent it; quotes are ignored.
    pub etag: String,
}

impl ObjectService {
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        attrs: ObjectAttributes,
    ) -> ObjectResult<MultipartUpload> {
        let upload = MultipartUpload {
            upload_id: new_version_id(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            initiated: OffsetDateTime::now_utc(),
            headers: attrs.headers,
            user_meta: attrs.user_meta,
            tags: attrs.tags,
            lock: attrs.lock,
        };
        // Refused now rather than at completion, after the parts were sent.
        self.new_version_terms(bucket, upload.lock).await?;
        self.meta().create_upload(&upload).await?;
        Ok(upload)
    }

    /// The upload, checked to belong to `bucket/key` (an id from another key is no such upload).
    pub async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> ObjectResult<MultipartUpload> {
        match self.meta().get_upload(upload_id).await? {
            Some(u) if u.bucket == bucket && u.key == key => Ok(u),
            _ => Err(MultipartError::NoSuchUpload.into()),
        }
    }

    pub async fn upload_part<S, E>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: S,
        limits: WriteLimits,
    ) -> ObjectResult<PartRecord>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if !PART_NUMBERS.contains(&part_number) {
            return Err(MultipartError::InvalidPartNumber.into());
        }
        self.upload(bucket, key, upload_id).await?;
        let blob = self.blobs.write(body, limits).await?;
        let part = PartRecord {
            upload_id: upload_id.to_owned(),
            part_number,
            blob_id: blob.blob_id,
            size: blob.size,
            etag: hex::encode(blob.md5),
            last_modified: OffsetDateTime::now_utc(),
        };
        match self.meta().put_part(&part).await {
            Ok(()) => Ok(part),
            Err(e) => {
                self.discard_blob(&part.blob_id, &e).await;
                Err(no_such_upload(e.into()))
            }
        }
    }

    pub async fn list_parts(&self, upload_id: &str, after_part: i32, limit: u32) -> ObjectResult<Vec<PartRecord>> {
        Ok(self.meta().list_parts(upload_id, after_part, limit).await?)
    }

    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> ObjectResult<()> {
        self.upload(bucket, key, upload_id).await?;
        self.meta().abort_upload(upload_id).await.map_err(|e| no_such_upload(e.into()))?;
        self.released.notify_one();
        Ok(())
    }

    /// Assembles the listed parts into the object. The ETag is S3's: the MD5 of the parts' binary
    /// MD5s, a dash, and the part count.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> ObjectResult<ObjectRecord> {
        let upload = self.upload(bucket, key, upload_id).await?;
        if parts.is_empty() {
            return Err(MultipartError::NoParts.into());
        }
        if parts.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
            return Err(MultipartError::InvalidPartOrder.into());
        }
        let stored = self.meta().list_parts(upload_id, 0, 10_000).await?;
        let mut chosen = Vec::with_capacity(parts.len());
        for (i, wanted) in parts.iter().enumerate() {
            let part = stored
                .iter()
                .find(|p| p.part_number == wanted.part_number && p.etag == wanted.etag.trim_matches('"'))
                .ok_or(MultipartError::InvalidPart(wanted.part_number))?;
            if i + 1 < parts.len() && part.size < MIN_PART_SIZE {
                return Err(MultipartError::EntityTooSmall(part.part_number).into());
            }
            chosen.push(part);
        }
        let mut md5s = Md5::new();
        for part in &chosen {
            md5s.update(hex::decode(&part.etag).map_err(|_| MultipartError::InvalidPart(part.part_number))?);
        }
        let blob_ids: Vec<String> = chosen.iter().map(|p| p.blob_id.clone()).collect();
        // Refused before the parts are copied; decided again once they are.
        let (versioned, lock) = self.new_version_terms(bucket, upload.lock).await?;
        let blob = self.blobs.concat(&blob_ids).await?;
        let mut record = ObjectRecord {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: new_version_id(),
            versioned,
            blob_id: blob.blob_id,
            size: blob.size,
            etag: format!("{}-{}", hex::encode(md5s.finalize()), chosen.len()),
            last_modified: OffsetDateTime::now_utc(),
            headers: upload.headers,
            user_meta: upload.user_meta,
            tags: upload.tags,
            parts_count: u32::try_from(chosen.len()).ok(),
            part_sizes: chosen.iter().map(|p| p.size).collect(),
            scan: Default::default(),
            lock,
        };
        self.settle_terms(&mut record, upload.lock).await?;
        self.commit(record, Commit::CompleteUpload(upload_id)).await.map_err(no_such_upload)
    }
}

/// A concurrent abort or completion surfaces from the store as `NoSuchUpload`.
fn no_such_upload(e: ObjectError) -> ObjectError {
    match e {
        ObjectError::Meta(latchkey_meta::MetaError::NoSuchUpload) => MultipartError::NoSuchUpload.into(),
        other => other,
    }
}
