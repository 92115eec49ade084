//! Listing keys with a prefix and a delimiter, page by page, in S3's byte order.

use latchkey_meta::{KeyRange, ObjectRecord, prefix_successor};

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

#[derive(Debug, Clone)]
pub enum ListEntry {
    Object(Box<ObjectRecord>),
    CommonPrefix(String),
}

impl ListEntry {
    /// The key or common prefix; where the next page resumes after this entry.
    pub fn position(&self) -> &str {
        match self {
            Self::Object(record) => &record.key,
            Self::CommonPrefix(prefix) => prefix,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub entries: Vec<ListEntry>,
    /// More entries follow the last one returned.
    pub truncated: bool,
}

/// Where a store query starts: at `key` or strictly after it. Ordered by key, then exclusive
/// after inclusive, so that the listing loop can check that every query starts later than the
/// one before and therefore ends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Lower {
    key: String,
    exclusive: bool,
}

impl Lower {
    fn range<'a>(lower: Option<&'a Self>, prefix: &'a str) -> KeyRange<'a> {
        let (after, from) = match lower {
            Some(Self { key, exclusive: true }) => (Some(key.as_str()), None),
            Some(Self { key, exclusive: false }) => (None, Some(key.as_str())),
            None => (None, None),
        };
        KeyRange { prefix, after, from, limit: BATCH }
    }
}

impl ObjectService {
    /// One page of at most `max_keys` entries (objects and rolled-up common prefixes together,
    /// as S3 counts them). A common prefix at or before `after` is never returned again, so
    /// resuming after a common prefix does not repeat it.
    pub async fn list(&self, bucket: &str, req: &ListRequest<'_>) -> ObjectResult<ListPage> {
        self.bucket(bucket).await?;
        let mut page = ListPage::default();
        if req.max_keys == 0 {
            return Ok(page);
        }
        let delimiter = req.delimiter.filter(|d| !d.is_empty());
        let mut floor = req.after.map(str::to_owned);
        let mut lower = req.after.map(|key| Lower { key: key.to_owned(), exclusive: true });
        loop {
            let batch = self.meta().list_objects(bucket, Lower::range(lower.as_ref(), req.prefix)).await?;
            let exhausted = batch.len() < BATCH as usize;
            let mut next = None;
            for record in batch {
                let common = delimiter.and_then(|d| {
                    let rest = &record.key[req.prefix.len()..];
                    rest.find(d).map(|at| record.key[..req.prefix.len() + at + d.len()].to_owned())
                });
                let full = page.entries.len() == req.max_keys as usize;
                let Some(prefix) = common else {
                    if full {
                        page.truncated = true;
                        return Ok(page);
                    }
                    floor = Some(record.key.clone());
                    next = Some(Lower { key: record.key.clone(), exclusive: true });
                    page.entries.push(ListEntry::Object(Box::new(record)));
                    continue;
                };
                if floor.as_deref().is_none_or(|f| prefix.as_str() > f) {
                    if full {
                        page.truncated = true;
                        return Ok(page);
                    }
                    floor = Some(prefix.clone());
                    page.entries.push(ListEntry::CommonPrefix(prefix.clone()));
                }
                // Every key under the prefix rolls up into it: go on at the first key past them
                // all. Without one (the prefix is all U+10FFFF), no key is left to list.
                let Some(successor) = prefix_successor(&prefix) else { return Ok(page) };
                next = Some(Lower { key: successor, exclusive: false });
                break;
            }
            let skipped = next.as_ref().is_some_and(|n| !n.exclusive);
            if exhausted && !skipped {
                return Ok(page);
            }
            // Keys come back past `lower`, and a successor sorts past its prefix's keys; a store
            // that broke this would make the listing loop, so it fails instead.
            if next.as_ref() <= lower.as_ref() {
                return Err(std::io::Error::other("a listing query did not start past the one before").into());
            }
            lower = next;
        }
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
        let service = ObjectService::new(Arc::new(meta), BlobStore::open(dir.path()).unwrap());
        service.create_bucket("b", "us-east-1").await.unwrap();
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
                service.create_bucket(&bucket, "us-east-1").await.unwrap();
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
