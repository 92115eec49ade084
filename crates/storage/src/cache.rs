//! Small blobs kept in memory, so a hot small object is served without a trip to the blocking
//! pool and three system calls per GET.
//!
//! Coherence is free: a blob is immutable from the moment its record can name it, and an id is
//! never reused, so a cached blob is always the blob. Deleting a blob drops it from here too.

use std::sync::Mutex;

use bytes::Bytes;
use lru::LruCache;

/// Blobs up to this size are kept.
pub(crate) const SMALL_BLOB: u64 = 64 * 1024;

/// Bytes kept in all, at most.
const BUDGET: usize = 32 * 1024 * 1024;

pub(crate) struct SmallBlobs {
    state: Mutex<State>,
}

struct State {
    blobs: LruCache<String, Bytes>,
    bytes: usize,
}

impl SmallBlobs {
    pub(crate) fn new() -> Self {
        Self { state: Mutex::new(State { blobs: LruCache::unbounded(), bytes: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update keeps `bytes` equal to the sum it counts before it can panic, so a
        // poisoned lock still guards a consistent cache.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, id: &str) -> Option<Bytes> {
        self.lock().blobs.get(id).cloned()
    }

    /// Keeps a whole blob, evicting the least recently read ones over the budget.
    pub(crate) fn insert(&self, id: &str, blob: Bytes) {
        let mut state = self.lock();
        state.bytes += blob.len();
        if let Some(old) = state.blobs.put(id.to_owned(), blob) {
            state.bytes -= old.len();
        }
        while state.bytes > BUDGET {
            match state.blobs.pop_lru() {
                Some((_, evicted)) => state.bytes -= evicted.len(),
                None => break,
            }
        }
    }

    pub(crate) fn remove(&self, id: &str) {
        let mut state = self.lock();
        if let Some(blob) = state.blobs.pop(id) {
            state.bytes -= blob.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_evicts_the_least_recently_read() {
        let cache = SmallBlobs::new();
        let blob = Bytes::from(vec![7u8; SMALL_BLOB as usize]);
        let fit = BUDGET / blob.len();
        for i in 0..fit {
            cache.insert(&i.to_string(), blob.clone());
        }
        assert!(cache.get("0").is_some(), "reading 0 makes 1 the least recently read");
        cache.insert("one more", blob.clone());
        assert!(cache.get("1").is_none(), "the least recently read blob was evicted");
        assert!(cache.get("0").is_some() && cache.get("one more").is_some());
        assert_eq!(cache.lock().bytes, fit * blob.len());
        cache.remove("0");
        assert!(cache.get("0").is_none());
        assert_eq!(cache.lock().bytes, (fit - 1) * blob.len());
    }
}
