//! Listing keys with a prefix and a delimiter, page by page, in S3's byte order.

use latchkey_meta::{KeyRange, ObjectRecord};

use crate::{ObjectResult, ObjectService};

/// Rows fetched from the store per round trip while a page is assembled.
const BATCH: u32 = 1000;

/// Sorts after every key that starts with a common prefix, so one query can skip all of them.
const AFTER_ALL: char = char::MAX;

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
        let mut floor = req.after.map(str::to_owned);
        let mut cursor = floor.clone();
        loop {
            let range = KeyRange { prefix: req.prefix, after: cursor.as_deref(), limit: BATCH };
            let batch = self.meta().list_objects(bucket, range).await?;
            let exhausted = batch.len() < BATCH as usize;
            let mut rolled_up = false;
            for record in batch {
                let common = req.delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                    let rest = &record.key[req.prefix.len()..];
                    rest.find(d).map(|at| record.key[..req.prefix.len() + at + d.len()].to_owned())
                });
                let entry = match common {
                    Some(prefix) if floor.as_deref().is_some_and(|f| prefix.as_str() <= f) => {
                        cursor = Some(format!("{prefix}{AFTER_ALL}"));
                        rolled_up = true;
                        break;
                    }
                    Some(prefix) => ListEntry::CommonPrefix(prefix),
                    None => ListEntry::Object(Box::new(record)),
                };
                if page.entries.len() == req.max_keys as usize {
                    page.truncated = true;
                    return Ok(page);
                }
                let position = entry.position().to_owned();
                let is_prefix = matches!(entry, ListEntry::CommonPrefix(_));
                page.entries.push(entry);
                if is_prefix {
                    cursor = Some(format!("{position}{AFTER_ALL}"));
                    floor = Some(position);
                    rolled_up = true;
                    break;
                }
                cursor = Some(position.clone());
                floor = Some(position);
            }
            if exhausted && !rolled_up {
                return Ok(page);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use latchkey_meta::SqliteStore;
    use latchkey_storage::{BlobStore, WriteLimits};

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
}
