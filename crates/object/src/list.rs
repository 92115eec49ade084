//! Listing keys (and, in versioned buckets, every version of them) with a prefix and a
//! delimiter, page by page, in S3's byte order.

use latchkey_meta::{KeyRange, ObjectRecord, ObjectVersion, prefix_successor};

use crate::{ObjectResult, ObjectService};

/// Rows fetched from the store per round trip while a page is assembled.
const BATCH: u32 = 1000;

#[derive(Debug, Clone, Default)]
pub struct ListRequest<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// List strictly after this key or common prefix (marker, start-after, continuation).
    pub after: Option<&'a str>,
    pub max_keys: u32,
}

/// A ListObjectVersions request: after `key_marker` (every version of it, or with
/// `version_marker` the versions older than that one).
#[derive(Debug, Clone, Default)]
pub struct VersionsRequest<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub key_marker: Option<&'a str>,
    pub version_marker: Option<&'a str>,
    pub max_keys: u32,
}

/// An entry of a listing: an object (or version), or the common prefix keys rolled up into.
#[derive(Debug, Clone)]
pub enum ListEntry<T = ObjectRecord> {
    Object(Box<T>),
    CommonPrefix(String),
}

impl<T: Listed> ListEntry<T> {
    /// The key or common prefix; where the next page resumes after this entry.
    pub fn position(&self) -> &str {
        match self {
            Self::Object(item) => item.key(),
            Self::CommonPrefix(prefix) => prefix,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ListPage<T = ObjectRecord> {
    pub entries: Vec<ListEntry<T>>,
    /// More entries follow the last one returned.
    pub truncated: bool,
}

/// A page of a version listing.
pub type VersionPage = ListPage<ObjectVersion>;

impl<T> Default for ListPage<T> {
    fn default() -> Self {
        Self { entries: Vec::new(), truncated: false }
    }
}

/// What a listing walks: rows with a key, each with where a listing resumes right after it.
pub trait Listed {
    fn key(&self) -> &str;
    /// The store position just past this row.
    fn resume(&self) -> Lower;
}

impl Listed for ObjectRecord {
    fn key(&self) -> &str {
        &self.key
    }
    fn resume(&self) -> Lower {
        Lower { key: self.key.clone(), rank: Rank::After }
    }
}

impl Listed for ObjectVersion {
    fn key(&self) -> &str {
        &self.record.key
    }
    fn resume(&self) -> Lower {
        Lower { key: self.record.key.clone(), rank: Rank::Below(std::cmp::Reverse(self.seq)) }
    }
}

/// Where a store query starts, ordered as positions in the listing, so that the listing loop
/// can check that every query starts later than the one before and therefore ends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lower {
    key: String,
    rank: Rank,
}

/// Where within its key a [`Lower`] starts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// At the key's first row.
    From,
    /// At the key's versions older than this position (newest come first).
    Below(std::cmp::Reverse<i64>),
    /// Past every row of the key.
    After,
}

impl Lower {
    /// The store query for rows at or past `lower`: a key range, and a position within a key.
    fn range<'a>(lower: Option<&'a Self>, prefix: &'a str) -> (KeyRange<'a>, Option<(&'a str, i64)>) {
        let mut range = KeyRange { prefix, after: None, from: None, limit: BATCH };
        let mut within = None;
        match lower {
            Some(Self { key, rank: Rank::After }) => range.after = Some(key),
            Some(Self { key, rank: Rank::From }) => range.from = Some(key),
            Some(Self { key, rank: Rank::Below(seq) }) => within = Some((key.as_str(), seq.0)),
            None => {}
        }
        (range, within)
    }
}

impl ObjectService {
    /// One page of at most `max_keys` entries (objects and rolled-up common prefixes together,
    /// as S3 counts them). A common prefix at or before `after` is never returned again, so
    /// resuming after a common prefix does not repeat it.
    pub async fn list(&self, bucket: &str, req: &ListRequest<'_>) -> ObjectResult<ListPage> {
        self.bucket(bucket).await?;
        let start = req.after.map(|key| Lower { key: key.to_owned(), rank: Rank::After });
        walk(req.prefix, req.delimiter, start, req.after, req.max_keys, |lower| {
            Box::pin(async move {
                let (range, _) = Lower::range(lower.as_ref(), req.prefix);
                Ok(self.meta().list_objects(bucket, range).await?)
            })
        })
        .await
    }

    /// One page of ListObjectVersions: every version and delete marker, by key and newest first,
    /// with common prefixes, at most `max_keys` entries. A version marker is one this listing
    /// made ([`version_marker`]: it holds the position, so a page resumes right even when that
    /// version was deleted meanwhile), or a version id; a version id that no longer exists
    /// resumes after its key.
    pub async fn list_versions(&self, bucket: &str, req: &VersionsRequest<'_>) -> ObjectResult<VersionPage> {
        self.bucket(bucket).await?;
        let start = match (req.key_marker, req.version_marker) {
            (Some(key), Some(marker)) => {
                let seq = match marker.rsplit_once('.').and_then(|(_, seq)| seq.parse::<i64>().ok()) {
                    Some(seq) => Some(seq),
                    None => self.versions.get_version(bucket, key, marker).await?.map(|v| v.seq),
                };
                let rank = seq.map_or(Rank::After, |seq| Rank::Below(std::cmp::Reverse(seq)));
                Some(Lower { key: key.to_owned(), rank })
            }
            (Some(key), None) => Some(Lower { key: key.to_owned(), rank: Rank::After }),
            (None, _) => None,
        };
        walk(req.prefix, req.delimiter, start, req.key_marker, req.max_keys, |lower| {
            Box::pin(async move {
                let (range, within) = Lower::range(lower.as_ref(), req.prefix);
                Ok(self.versions.list_versions(bucket, range, within).await?)
            })
        })
        .await
    }
}

/// The version-id marker that resumes a listing right after `version`: its S3 version id and
/// its place in the key's history.
pub fn version_marker(version: &ObjectVersion) -> String {
    format!("{}.{}", version.record.s3_version_id(), version.seq)
}

/// Assembles one page from the rows `fetch` returns past a position (at most `BATCH` at a
/// time), rolling keys up into common prefixes at `delimiter`; a common prefix at or before
/// `floor` is not returned again. (`fetch` returns a boxed future: an async closure's would not
/// be known to be `Send`.)
async fn walk<'a, T: Listed>(
    prefix: &str,
    delimiter: Option<&str>,
    start: Option<Lower>,
    floor: Option<&str>,
    max_keys: u32,
    mut fetch: impl FnMut(Option<Lower>) -> futures::future::BoxFuture<'a, ObjectResult<Vec<T>>>,
) -> ObjectResult<ListPage<T>> {
    let mut page = ListPage::default();
    if max_keys == 0 {
        return Ok(page);
    }
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let mut floor = floor.map(str::to_owned);
    let mut lower = start;
    loop {
        let batch = fetch(lower.clone()).await?;
        let exhausted = batch.len() < BATCH as usize;
        let mut next = None;
        for row in batch {
            let common = delimiter.and_then(|d| {
                let key = row.key();
                let rest = &key[prefix.len()..];
                rest.find(d).map(|at| key[..prefix.len() + at + d.len()].to_owned())
            });
            let full = page.entries.len() == max_keys as usize;
            let Some(common) = common else {
                if full {
                    page.truncated = true;
                    return Ok(page);
                }
                floor = Some(row.key().to_owned());
                next = Some(row.resume());
                page.entries.push(ListEntry::Object(Box::new(row)));
                continue;
            };
            if floor.as_deref().is_none_or(|f| common.as_str() > f) {
                if full {
                    page.truncated = true;
                    return Ok(page);
                }
                floor = Some(common.clone());
                page.entries.push(ListEntry::CommonPrefix(common.clone()));
            }
            // Every key under the prefix rolls up into it: go on at the first key past them
            // all. Without one (the prefix is all U+10FFFF), no key is left to list.
            let Some(successor) = prefix_successor(&common) else { return Ok(page) };
            next = Some(Lower { key: successor, rank: Rank::From });
            break;
        }
        let skipped = next.as_ref().is_some_and(|n| n.rank == Rank::From);
        if exhausted && !skipped {
            return Ok(page);
        }
        // Rows come back past `lower`, and a successor sorts past its prefix's keys; a store
        // that broke this would make the listing loop, so it fails instead.
        if next.as_ref() <= lower.as_ref() {
            return Err(std::io::Error::other("a listing query did not start past the one before").into());
        }
        lower = next;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use latchkey_meta::SqliteStore;
    use latchkey_storage::{BlobStore, WriteLimits};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    use super::*;
    use crate::ObjectAttributes;

    async fn service_with(keys: &[&str]) -> (tempfile::TempDir, ObjectService) {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteStore::open(&dir.path().join("meta.db")).await.unwrap();
        let meta = Arc::new(meta);
        let service = ObjectService::new(meta.clone(), meta, BlobStore::open(dir.path()).unwrap());
        service.create_bucket("b", "us-east-1", false).await.unwrap();
        for key in keys {
            let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x"))]);
            service.put("b", key, body, WriteLimits::default(), ObjectAttributes::default()).await.unwrap();
        }
        (dir, service)
    }

    fn positions(page: &ListPage) -> Vec<&str> {
        page.entries.iter().map(ListEntry::position).collect()
    }

    #[tokio::test]
    async fn delimiter_rolls_up_and_pages_resume_without_repeats() {
        let (_dir, service) = service_with(&["a/1", "a/2", "b", "c/x/1", "c/y", "d"]).await;
        let mut req = ListRequest { prefix: "", delimiter: Some("/"), after: None, max_keys: 2 };
        let first = service.list("b", &req).await.unwrap();
        assert_eq!(positions(&first), ["a/", "b"]);
        assert!(first.truncated);
        req.after = Some("b");
        let second = service.list("b", &req).await.unwrap();
        assert_eq!(positions(&second), ["c/", "d"]);
        assert!(!second.truncated);
        // Resuming after a common prefix skips every key under it.
        req.after = Some("a/");
        assert_eq!(positions(&service.list("b", &req).await.unwrap()), ["b", "c/"]);
        let nested = ListRequest { prefix: "c/", delimiter: Some("/"), after: None, max_keys: 10 };
        assert_eq!(positions(&service.list("b", &nested).await.unwrap()), ["c/x/", "c/y"]);
    }

    /// `in/\u{10FFFF}x` sorts after `in/` followed by U+10FFFF, so skipping the prefix to that
    /// string met the key again, rolled it up again, and queried again, forever.
    #[tokio::test]
    async fn a_prefix_with_a_key_past_char_max_is_skipped_once() {
        let (_dir, service) = service_with(&["in/\u{10FFFF}x", "in/a", "z"]).await;
        let req = ListRequest { prefix: "", delimiter: Some("/"), after: None, max_keys: 1000 };
        let page = tokio::time::timeout(std::time::Duration::from_secs(10), service.list("b", &req))
            .await
            .expect("the listing ends")
            .unwrap();
        assert_eq!(positions(&page), ["in/", "z"]);
        assert!(!page.truncated);
        // A prefix of U+10FFFF alone has no successor: the listing stops after it.
        let (_dir, service) = service_with(&["a", "\u{10FFFF}/1", "\u{10FFFF}/\u{10FFFF}"]).await;
        let page = tokio::time::timeout(std::time::Duration::from_secs(10), service.list("b", &req)).await.unwrap();
        assert_eq!(positions(&page.unwrap()), ["a", "\u{10FFFF}/"]);
    }

    /// S3 delimiter listing, directly: the keys under `prefix` past `after`, each rolled up to its
    /// common prefix, without repeats and without common prefixes at or before `after`.
    fn model(keys: &BTreeSet<String>, req: &ListRequest<'_>) -> (Vec<(String, bool)>, bool) {
        let delimiter = req.delimiter.filter(|d| !d.is_empty());
        let mut entries: Vec<(String, bool)> = Vec::new();
        for key in keys.iter().filter(|k| k.starts_with(req.prefix) && req.after.is_none_or(|a| k.as_str() > a)) {
            let entry = match delimiter.and_then(|d| key[req.prefix.len()..].find(d).map(|at| (at, d))) {
                Some((at, d)) => (key[..req.prefix.len() + at + d.len()].to_owned(), true),
                None => (key.clone(), false),
            };
            if req.after.is_none_or(|a| entry.0.as_str() > a) && entries.last() != Some(&entry) {
                entries.push(entry);
            }
        }
        let truncated = entries.len() > req.max_keys as usize;
        entries.truncate(req.max_keys as usize);
        (entries, truncated)
    }

    fn unicode_text(max_chars: usize) -> impl Strategy<Value = String> {
        static CHARS: [char; 10] = ['a', 'b', '/', '\u{FFFF}', '\u{10FFFF}', '\u{E000}', '\u{D7FF}', 'é', '日', '😀'];
        prop::collection::vec(prop::sample::select(&CHARS[..]), 0..=max_chars).prop_map(String::from_iter)
    }

    /// Every page of every listing, paged to the end, is the model's page.
    #[test]
    fn delimiter_listings_page_like_the_model() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (_dir, service) = runtime.block_on(service_with(&[]));
        let cases = (
            prop::collection::btree_set(unicode_text(5).prop_filter("keys are not empty", |k| !k.is_empty()), 0..16),
            unicode_text(2),
            prop::option::of(prop::sample::select(&["/", "\u{10FFFF}", "é/", "b", "\u{FFFF}"][..])),
            prop::option::of(unicode_text(3)),
            1u32..5,
        );
        let buckets = std::sync::atomic::AtomicUsize::new(0);
        let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
        let outcome = runner.run(&cases, |(keys, prefix, delimiter, mut after, max_keys)| {
            runtime.block_on(async {
                let bucket = format!("p{}", buckets.fetch_add(1, Ordering::Relaxed));
                service.create_bucket(&bucket, "us-east-1", false).await.unwrap();
                let puts = keys.iter().map(|key| {
                    let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x"))]);
                    service.put(&bucket, key, body, WriteLimits::default(), ObjectAttributes::default())
                });
                futures::future::try_join_all(puts).await.unwrap();
                for _ in 0..=keys.len() {
                    let req = ListRequest { prefix: &prefix, delimiter, after: after.as_deref(), max_keys };
                    let listing = service.list(&bucket, &req);
                    let page = tokio::time::timeout(std::time::Duration::from_secs(10), listing).await;
                    let page = page.map_err(|_| TestCaseError::fail("the listing did not end"))?.unwrap();
                    let entries: Vec<(String, bool)> = page
                        .entries
                        .iter()
                        .map(|e| (e.position().to_owned(), matches!(e, ListEntry::CommonPrefix(_))))
                        .collect();
                    prop_assert_eq!((entries, page.truncated), model(&keys, &req));
                    if !page.truncated {
                        return Ok(());
                    }
                    after = page.entries.last().map(|e| e.position().to_owned());
                }
                Err(TestCaseError::fail("more pages than keys"))
            })
        });
        outcome.unwrap();
    }
}
