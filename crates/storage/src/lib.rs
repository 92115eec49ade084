//! Blob storage: the bytes of objects and upload parts as immutable files under the data dir.
//!
//! A blob is named by a random id that Latchkey generates, never by an object key, so no key
//! (`../`, absolute paths, NUL, 1024 bytes of anything) can reach the file system. Blobs are
//! written once and never modified:
//!
//! 1. stream into `tmp/<id>` in batches of up to 256 KiB (memory stays bounded by the batch),
//!    each hashed for the ETag (`md5_lanes`) while the blocking pool writes it,
//! 2. `fsync` the file, `rename` it to `blobs/<id[..2]>/<id>`, `fsync` that directory,
//! 3. only then does the caller commit a metadata record naming the blob.
//!
//! A crash before step 3 leaves an unreferenced file, never a torn object. `tmp/` is emptied on
//! start; a blob renamed into `blobs/` whose record never committed is found by the orphan sweep
//! (`latchkey-object`), from [`BlobStore::aged_blobs`]. Readers stream fixed-size chunks, so
//! memory does not grow with object size.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

mod cache;
mod md5_block;
mod md5_lanes;

use bytes::Bytes;
use cache::{SMALL_BLOB, SmallBlobs};
use futures::{Stream, StreamExt, TryStreamExt};
use md5_block::Md5Stream;
use md5_lanes::Md5Lanes;

/// Size of the chunks blobs are read in: large enough to keep system calls and thread hops rare,
/// small enough that many concurrent downloads stay within a small memory budget.
const READ_CHUNK: usize = 512 * 1024;

/// Incoming bytes are gathered up to this much before a trip to the blocking pool writes them,
/// so a small object is created, written, synced and renamed in one trip.
const WRITE_BATCH: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O: {0}")]
    Io(#[from] io::Error),
    /// The incoming body failed (client went away, bad chunk signature, ...).
    #[error("request body: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
    #[error("the body is larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("the body ended after {got} of {expected} declared bytes")]
    Incomplete { got: u64, expected: u64 },
    #[error("the body does not match its declared MD5")]
    BadDigest,
}

/// A blob that is durably on disk but not yet referenced by any metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBlob {
    pub blob_id: String,
    pub size: u64,
    /// MD5 of the bytes, raw.
    pub md5: [u8; 16],
}

/// What the writer should check about the incoming bytes while it streams them.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteLimits {
    /// Exactly this many bytes must arrive (the declared Content-Length).
    pub expected_size: Option<u64>,
    /// Never accept more than this many bytes.
    pub max_size: Option<u64>,
    /// The MD5 the client declared (Content-MD5).
    pub expected_md5: Option<[u8; 16]>,
}

pub type BlobStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + Sync>>;

pub struct BlobStore {
    fan_out: Arc<FanOut>,
    small: SmallBlobs,
    md5: Md5Lanes,
    /// This process's own temporary directory, `tmp/<id>/`.
    tmp: PathBuf,
    /// Held, not read: the lock on `tmp/<id>.lock` tells other processes sharing the data dir
    /// that `tmp/<id>/` is alive.
    _tmp_lock: std::fs::File,
}

/// Removes the file of a write that failed: its temporary file, or its blob when it was found
/// wrong after its rename. A write abandoned mid-way (its request cancelled while the blocking
/// pool creates or renames its file) is told so by `abandoned`, set before the removal here, and
/// the blocking work checks it after creating or renaming: whichever comes last removes the
/// file, so nothing is left behind in `tmp/` or `blobs/`.
struct FailedWriteGuard {
    path: PathBuf,
    /// Where the blob goes once renamed: removed too, in case the rename finished (and saw no
    /// abandonment) just before the write was dropped.
    destination: Option<PathBuf>,
    armed: bool,
    abandoned: Arc<AtomicBool>,
}

impl Drop for FailedWriteGuard {
    fn drop(&mut self) {
        if self.armed {
            self.abandoned.store(true, Ordering::SeqCst);
            let _ = std::fs::remove_file(&self.path);
            if let Some(destination) = &self.destination {
                let _ = std::fs::remove_file(destination);
            }
        }
    }
}

/// Removes `path` and fails if the write it belongs to was abandoned meanwhile.
fn unless_abandoned(abandoned: &AtomicBool, path: &Path) -> io::Result<()> {
    if abandoned.load(Ordering::SeqCst) {
        let _ = std::fs::remove_file(path);
        return Err(io::Error::new(io::ErrorKind::Interrupted, "the write was abandoned"));
    }
    Ok(())
}

fn valid_blob_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn invalid_id(id: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("not a blob id: {id:?}"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl BlobStore {
    /// Opens the store under `data_dir`, creating its folders. Several processes may share a
    /// data dir: each writes its temporary files in a directory of its own, and on start removes
    /// those of processes that are gone (a crash's leftovers), never those of live ones.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let blobs = data_dir.join("blobs");
        let tmp_root = data_dir.join("tmp");
        std::fs::create_dir_all(&blobs)?;
        std::fs::create_dir_all(&tmp_root)?;
        remove_abandoned_tmp(&tmp_root)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let lock = std::fs::File::create(tmp_root.join(format!("{id}.lock")))?;
        lock.try_lock().map_err(|e| io::Error::other(format!("cannot lock a fresh temporary directory: {e}")))?;
        let tmp = tmp_root.join(&id);
        std::fs::create_dir(&tmp)?;
        let fan_out = Arc::new(FanOut { blobs, dirs: std::array::from_fn(|_| OnceLock::new()) });
        Ok(Self { fan_out, small: SmallBlobs::new(), md5: Md5Lanes::default(), tmp, _tmp_lock: lock })
    }

    fn blob_path(&self, id: &str) -> io::Result<PathBuf> {
        if !valid_blob_id(id) {
            return Err(invalid_id(id));
        }
        Ok(self.fan_out.blobs.join(&id[..2]).join(id))
    }

    /// Streams `body` into a new blob and makes it durable. On any error nothing is left behind.
    pub async fn write<S, E>(&self, body: S, limits: WriteLimits) -> Result<WrittenBlob, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let blob_id = uuid::Uuid::new_v4().simple().to_string();
        let tmp_path = self.tmp.join(&blob_id);
        let abandoned = Arc::new(AtomicBool::new(false));
        let mut guard =
            FailedWriteGuard { path: tmp_path.clone(), destination: None, armed: true, abandoned: abandoned.clone() };
        let mut file: Option<std::fs::File> = None;
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0;
        let mut md5 = Md5Stream::default();
        let mut size: u64 = 0;
        let cap = limits.max_size.into_iter().chain(limits.expected_size).min();
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StorageError::Body(e.into()))?;
            size += chunk.len() as u64;
            if let Some(limit) = cap
                && size > limit
            {
                return Err(StorageError::TooLarge { limit });
            }
            pending_len += chunk.len();
            pending.push(chunk);
            if pending_len >= WRITE_BATCH {
                // The batch is hashed while the blocking pool writes it.
                let (tmp, batch, gone) = (tmp_path.clone(), std::mem::take(&mut pending), abandoned.clone());
                let hashed = self.md5.update(md5, batch.clone());
                let (hashed, written) = tokio::join!(hashed, blocking(move || append(file, &tmp, &batch, &gone)));
                (md5, file) = (hashed?, Some(written?));
                pending_len = 0;
            }
        }
        if let Some(expected) = limits.expected_size
            && size != expected
        {
            return Err(StorageError::Incomplete { got: size, expected });
        }
        let final_path = self.blob_path(&blob_id)?;
        guard.destination = Some(final_path.clone());
        let (tmp, dest, fan_out, id) =
            (tmp_path.clone(), final_path.clone(), Arc::clone(&self.fan_out), blob_id.clone());
        let hashed = self.md5.update(md5, pending.clone());
        let persist = move || {
            persist(append(file, &tmp, &pending, &abandoned)?, &tmp, &dest, fan_out.dir(&id)?)?;
            unless_abandoned(&abandoned, &dest)
        };
        let (hashed, persisted) = tokio::join!(hashed, blocking(persist));
        persisted?;
        let md5 = hashed?.finish();
        if limits.expected_md5.is_some_and(|declared| declared != md5) {
            return Err(StorageError::BadDigest);
        }
        guard.armed = false;
        Ok(WrittenBlob { blob_id, size, md5 })
    }

    /// Writes a new blob holding the given blobs back to back (completing a multipart upload).
    pub async fn concat(&self, parts: &[String]) -> Result<WrittenBlob, StorageError> {
        let paths = parts.iter().map(|id| self.blob_path(id)).collect::<io::Result<Vec<_>>>()?;
        let chunks = futures::stream::iter(paths)
            .then(|path| async move {
                let len = tokio::fs::metadata(&path).await?.len();
                Ok::<_, io::Error>(read_stream(path, 0..len))
            })
            .try_flatten();
        self.write(chunks, WriteLimits::default()).await
    }

    /// Streams the bytes of `range` (already checked against the blob's size). Opening the file
    /// and reading the first chunk share one trip to the blocking pool, so a small object costs
    /// one, and a small blob read whole is kept in memory for the next read; a missing blob is
    /// reported here, not in the middle of a response.
    pub async fn read(&self, id: &str, range: Range<u64>) -> io::Result<BlobStream> {
        let path = self.blob_path(id)?;
        if let Some(blob) = self.small.get(id) {
            // Ranges were checked against the record, whose size is the blob's.
            let (start, end) = (range.start as usize, range.end as usize);
            if start > end || end > blob.len() {
                return Err(shorter_than_record());
            }
            let bytes = blob.slice(start..end);
            return Ok(Box::pin(futures::stream::iter((!bytes.is_empty()).then_some(Ok(bytes)))));
        }
        let whole_and_small = range.start == 0 && range.end <= SMALL_BLOB;
        let (file, first, whole) = blocking(move || {
            let mut file = std::fs::File::open(&path)?;
            let first = read_chunk(&mut file, range.start, range.end)?;
            let whole = whole_and_small && file.metadata()?.len() == range.end;
            Ok((file, first, whole))
        })
        .await?;
        if whole {
            self.small.insert(id, first.clone());
        }
        let rest = range.start + first.len() as u64..range.end;
        let first = (!first.is_empty()).then_some(Ok(first));
        Ok(Box::pin(futures::stream::iter(first).chain(chunks(file, rest))))
    }

    /// Opens a blob's file for reading, blocking: for a thread of its own (the scanner's) that
    /// reads it with seeks. Blobs are immutable, and an open file stays readable after the blob
    /// is released.
    pub fn open_file(&self, id: &str) -> io::Result<std::fs::File> {
        std::fs::File::open(self.blob_path(id)?)
    }

    /// The ids of the blobs in fan-out directory `shard` (`blobs/<shard as two hex digits>/`)
    /// last written before `cutoff`: a blob is written once, so this is when it was made.
    pub async fn aged_blobs(&self, shard: u8, cutoff: SystemTime) -> io::Result<Vec<String>> {
        let dir = self.fan_out.blobs.join(format!("{shard:02x}"));
        tokio::task::spawn_blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut aged = Vec::new();
            for entry in entries {
                let entry = entry?;
                let Some(id) = entry.file_name().to_str().filter(|id| valid_blob_id(id)).map(str::to_owned) else {
                    continue;
                };
                match entry.metadata() {
                    Ok(meta) if meta.is_file() && meta.modified()? < cutoff => aged.push(id),
                    Ok(_) => {}
                    // Deleted meanwhile (released, or swept by another replica).
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(aged)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// The length of a blob's file, or `None` when it is missing.
    pub fn blob_len(&self, id: &str) -> io::Result<Option<u64>> {
        match std::fs::metadata(self.blob_path(id)?) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes blobs that no record references any more. Missing files are not an error: a blob
    /// may have been released twice after a crash.
    pub async fn delete(&self, ids: &[String]) {
        for id in ids {
            let Ok(path) = self.blob_path(id) else { continue };
            self.small.remove(id);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(blob = %id, error = %e, "could not delete released blob"),
            }
        }
    }
}

/// Removes `tmp/<id>/` directories whose `<id>.lock` no live process holds.
fn remove_abandoned_tmp(tmp_root: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(tmp_root)? {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "lock") {
            continue;
        }
        let lock = std::fs::File::open(&path)?;
        if lock.try_lock().is_ok() {
            let dir = path.with_extension("");
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Creates `path` with `contents`, readable by the owner only, atomically: a concurrent reader
/// sees no file or the whole file. Returns `false`, changing nothing, when the file exists
/// already (another process won the race; read its file instead).
pub fn create_private_file(path: &Path, contents: &[u8]) -> io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let staging = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&staging)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    let linked = written.and_then(|()| std::fs::hard_link(&staging, path));
    std::fs::remove_file(&staging)?;
    match linked {
        Ok(()) => {
            sync_dir(path.parent().unwrap_or(Path::new(".")))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs file-system work on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(io::Error::other)?
}

/// Appends `chunks` to the temporary file, creating it on the first call (and removing it again
/// if the write was abandoned meanwhile).
fn append(
    file: Option<std::fs::File>,
    tmp: &Path,
    chunks: &[Bytes],
    abandoned: &AtomicBool,
) -> io::Result<std::fs::File> {
    let mut file = match file {
        Some(file) => file,
        None => {
            let file = std::fs::File::create(tmp)?;
            unless_abandoned(abandoned, tmp)?;
            file
        }
    };
    for chunk in chunks {
        file.write_all(chunk)?;
    }
    Ok(file)
}

/// fsync the file, move it into place, fsync the directory that now names it.
fn persist(file: std::fs::File, tmp: &Path, dest: &Path, dir: &std::fs::File) -> io::Result<()> {
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, dest)?;
    dir.sync_all()
}

/// `blobs/` and open handles on its 256 fan-out directories (`blobs/<id[..2]>/`), so making a
/// rename durable costs one fsync, not also an open and a close.
struct FanOut {
    blobs: PathBuf,
    dirs: [OnceLock<std::fs::File>; 256],
}

impl FanOut {
    /// The directory that names blob `id` (a valid id), created on first use.
    fn dir(&self, id: &str) -> io::Result<&std::fs::File> {
        let slot = u8::from_str_radix(&id[..2], 16).map_err(|_| invalid_id(id))?;
        let slot = &self.dirs[usize::from(slot)];
        if let Some(dir) = slot.get() {
            return Ok(dir);
        }
        let path = self.blobs.join(&id[..2]);
        let dir = match std::fs::File::open(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&path)?;
                sync_dir(&self.blobs)?;
                std::fs::File::open(&path)?
            }
            opened => opened?,
        };
        // Another thread may have opened it meanwhile: either handle names the same directory.
        Ok(slot.get_or_init(|| dir))
    }
}

fn read_stream(path: PathBuf, range: Range<u64>) -> impl Stream<Item = io::Result<Bytes>> + Send + Sync {
    futures::stream::once(blocking(move || std::fs::File::open(&path)))
        .map_ok(move |file| chunks(file, range.clone()))
        .try_flatten()
}

/// Reads `range` of `file` in chunks, each on the blocking pool, one chunk ahead of the consumer
/// at most (the consumer's polling is the back-pressure).
fn chunks(file: std::fs::File, range: Range<u64>) -> impl Stream<Item = io::Result<Bytes>> + Send + Sync {
    let state = (Some(file), range.start, range.end);
    futures::stream::try_unfold(state, |(file, pos, end)| async move {
        let Some(mut file) = file else { return Ok(None) };
        if pos >= end {
            return Ok(None);
        }
        let (file, chunk) = blocking(move || {
            let chunk = read_chunk(&mut file, pos, end)?;
            Ok((file, chunk))
        })
        .await?;
        let next = pos + chunk.len() as u64;
        Ok(Some((chunk, (Some(file), next, end))))
    })
}

fn shorter_than_record() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "blob is shorter than its record")
}

/// Reads up to one chunk of `pos..end` (blocking).
fn read_chunk(file: &mut std::fs::File, pos: u64, end: u64) -> io::Result<Bytes> {
    let want = usize::try_from(end.saturating_sub(pos)).unwrap_or(usize::MAX).min(READ_CHUNK);
    if want == 0 {
        return Ok(Bytes::new());
    }
    file.seek(SeekFrom::Start(pos))?;
    let mut buf = Vec::with_capacity(want);
    file.take(want as u64).read_to_end(&mut buf)?;
    if buf.len() < want {
        return Err(shorter_than_record());
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_created_after_its_write_was_abandoned_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("blob");
        let abandoned = AtomicBool::new(true);
        let err = append(None, &tmp, &[Bytes::from_static(b"late")], &abandoned).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        assert!(!tmp.exists(), "the request that owned it is gone: nobody else would remove it");
        let kept = AtomicBool::new(false);
        append(None, &tmp, &[Bytes::from_static(b"on time")], &kept).unwrap();
        assert_eq!(std::fs::read(&tmp).unwrap(), b"on time");
    }

    fn body(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> + Send {
        futures::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    async fn collect(stream: BlobStream) -> Vec<u8> {
        stream
            .try_fold(Vec::new(), |mut acc, b| async move {
                acc.extend_from_slice(&b);
                Ok(acc)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn write_then_read_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let blob = store.write(body(&[b"hello ", b"world"]), WriteLimits::default()).await.unwrap();
        assert_eq!(blob.size, 11);
        assert_eq!(hex::encode(blob.md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(collect(store.read(&blob.blob_id, 0..11).await.unwrap()).await, b"hello world");
        assert_eq!(collect(store.read(&blob.blob_id, 6..9).await.unwrap()).await, b"wor");
        let joined = store.concat(&[blob.blob_id.clone(), blob.blob_id.clone()]).await.unwrap();
        assert_eq!(collect(store.read(&joined.blob_id, 0..22).await.unwrap()).await, b"hello worldhello world");
    }

    #[tokio::test]
    async fn small_blobs_read_whole_are_served_from_memory_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let small = store.write(body(&[b"hello ", b"world"]), WriteLimits::default()).await.unwrap();
        let path = store.blob_path(&small.blob_id).unwrap();
        // A part of a blob is not kept; the whole blob is.
        assert_eq!(collect(store.read(&small.blob_id, 6..9).await.unwrap()).await, b"wor");
        assert!(store.small.get(&small.blob_id).is_none());
        assert_eq!(collect(store.read(&small.blob_id, 0..11).await.unwrap()).await, b"hello world");
        // With the file gone behind the store's back, reads are served from memory...
        std::fs::remove_file(&path).unwrap();
        assert_eq!(collect(store.read(&small.blob_id, 0..11).await.unwrap()).await, b"hello world");
        assert_eq!(collect(store.read(&small.blob_id, 6..9).await.unwrap()).await, b"wor");
        assert_eq!(store.read(&small.blob_id, 6..12).await.err().unwrap().kind(), io::ErrorKind::UnexpectedEof);
        // ...until the store deletes the blob.
        store.delete(std::slice::from_ref(&small.blob_id)).await;
        assert_eq!(store.read(&small.blob_id, 0..11).await.err().unwrap().kind(), io::ErrorKind::NotFound);

        let big = vec![1u8; SMALL_BLOB as usize + 1];
        let stream = futures::stream::iter([Ok::<_, io::Error>(Bytes::from(big.clone()))]);
        let big_blob = store.write(stream, WriteLimits::default()).await.unwrap();
        assert_eq!(collect(store.read(&big_blob.blob_id, 0..big.len() as u64).await.unwrap()).await, big);
        assert!(store.small.get(&big_blob.blob_id).is_none(), "blobs over the limit stay on disk only");
    }

    #[tokio::test]
    async fn failed_writes_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "client went away")),
        ]);
        assert!(matches!(store.write(broken, WriteLimits::default()).await, Err(StorageError::Body(_))));
        let short = WriteLimits { expected_size: Some(100), ..WriteLimits::default() };
        assert!(matches!(store.write(body(&[b"abc"]), short).await, Err(StorageError::Incomplete { .. })));
        let capped = WriteLimits { max_size: Some(2), ..WriteLimits::default() };
        assert!(matches!(store.write(body(&[b"abc"]), capped).await, Err(StorageError::TooLarge { .. })));
        let wrong_md5 = WriteLimits { expected_md5: Some([0; 16]), ..WriteLimits::default() };
        assert!(matches!(store.write(body(&[b"abc"]), wrong_md5).await, Err(StorageError::BadDigest)));
        assert_eq!(std::fs::read_dir(&store.tmp).unwrap().count(), 0);
        // A body found wrong after its rename leaves at most an empty fan-out directory.
        let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
            .unwrap()
            .flat_map(|fan_out| std::fs::read_dir(fan_out.unwrap().path()).unwrap())
            .collect();
        assert!(blobs.is_empty(), "left behind: {blobs:?}");
    }

    #[test]
    fn processes_sharing_a_data_dir_keep_their_own_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = BlobStore::open(dir.path()).unwrap();
        std::fs::write(first.tmp.join("in-flight"), b"upload in progress").unwrap();
        let second = BlobStore::open(dir.path()).unwrap();
        assert!(first.tmp.join("in-flight").exists(), "a live process's temporary file was removed");
        let abandoned = first.tmp.clone();
        drop(first);
        let _third = BlobStore::open(dir.path()).unwrap();
        assert!(!abandoned.exists(), "a dead process's temporary files were kept");
        assert!(second.tmp.exists());
    }

    #[test]
    fn private_files_are_created_once_and_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        assert!(create_private_file(&path, b"first").unwrap());
        assert!(!create_private_file(&path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "staging files are cleaned up");
    }

    #[tokio::test]
    async fn ids_that_are_not_ours_never_reach_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        for id in ["../../etc/passwd", "/etc/passwd", "a\0b", "0123456789abcdef0123456789abcde/"] {
            assert_eq!(store.read(id, 0..1).await.err().unwrap().kind(), io::ErrorKind::InvalidInput);
        }
    }
}
