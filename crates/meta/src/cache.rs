//! A bounded read-through cache of object records for a store that is its database's only
//! writer (the SQLite store holds an exclusive lock for that). It spares the hot GET path a
//! round trip to the database thread.
//!
//! Coherence: every write invalidates its key *after* committing and *before* returning, so a
//! client that has its write acknowledged never reads the older record. A reader that looked up
//! the database before a write committed must not re-insert what it read: readers note the write
//! epoch before the lookup and insert only if no write happened since, checked under the same
//! lock that writers bump the epoch under.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use crate::ObjectRecord;

type Key = (String, String);

pub(crate) struct ObjectCache {
    state: Mutex<State>,
}

struct State {
    epoch: u64,
    records: LruCache<Key, ObjectRecord>,
}

/// Proof of the epoch a database read started in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch(u64);

impl ObjectCache {
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        Self { state: Mutex::new(State { epoch: 0, records: LruCache::new(capacity) }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the cache inconsistent (each operation is
        // one LRU call), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached record, or the epoch to present when inserting what the database returns.
    pub(crate) fn get(&self, bucket: &str, key: &str) -> Result<ObjectRecord, Epoch> {
        let mut state = self.lock();
        // Allocating the key is cheaper than the database round trip it saves.
        match state.records.get(&(bucket.to_owned(), key.to_owned())) {
            Some(record) => Ok(record.clone()),
            None => Err(Epoch(state.epoch)),
        }
    }

    pub(crate) fn insert(&self, read_in: Epoch, record: &ObjectRecord) {
        let mut state = self.lock();
        if state.epoch == read_in.0 {
            state.records.put((record.bucket.clone(), record.key.clone()), record.clone());
        }
    }

    pub(crate) fn invalidate(&self, bucket: &str, key: &str) {
        let mut state = self.lock();
        state.epoch += 1;
        state.records.pop(&(bucket.to_owned(), key.to_owned()));
    }

    pub(crate) fn invalidate_bucket(&self, bucket: &str) {
        let mut state = self.lock();
        state.epoch += 1;
        let stale: Vec<Key> = state.records.iter().filter(|((b, _), _)| b == bucket).map(|(k, _)| k.clone()).collect();
        for key in stale {
            state.records.pop(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ContentHeaders;

    fn record(version: &str) -> ObjectRecord {
        ObjectRecord {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version.into(),
            versioned: false,
            blob_id: version.into(),
            size: 1,
            etag: "e".into(),
            last_modified: time::OffsetDateTime::UNIX_EPOCH,
            headers: ContentHeaders::default(),
            user_meta: Default::default(),
            tags: vec![],
            parts_count: None,
            part_sizes: Vec::new(),
            scan: Default::default(),
            lock: Default::default(),
        }
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_cached() {
        let cache = ObjectCache::new(NonZeroUsize::new(4).unwrap());
        let Err(epoch) = cache.get("b", "k") else { panic!("empty cache hit") };
        // A write commits and invalidates while the reader still holds the old row.
        cache.invalidate("b", "k");
        cache.insert(epoch, &record("old"));
        assert!(cache.get("b", "k").is_err(), "stale record was cached");

        let Err(epoch) = cache.get("b", "k") else { panic!() };
        cache.insert(epoch, &record("new"));
        assert_eq!(cache.get("b", "k").unwrap().version_id, "new");
        cache.invalidate_bucket("b");
        assert!(cache.get("b", "k").is_err());
    }
}
