//! Behaviour every `MetaStore` must show, run against each backend by `conformance_tests!`.
//! Each check gets a fresh, empty store with one bucket, `b`.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::{
    Bucket, ContentHeaders, GrantRequest, Grantee, KeyRange, MetaError, MetaStore, MultipartUpload, ObjectRecord,
    PartRecord, Share, ShareFilter, Tag,
};

fn grantee() -> Grantee {
    Grantee { source_ip: "10.0.0.1".into(), user_agent: Some("test".into()) }
}

/// A new plain bucket (never versioned, no Object Lock) in us-east-1.
pub fn plain_bucket(name: &str) -> Bucket {
    Bucket {
        name: name.into(),
        region: "us-east-1".into(),
        created: OffsetDateTime::now_utc(),
        versioning: None,
        object_lock: None,
        mfa_delete: None,
    }
}

pub async fn with_bucket(store: Arc<dyn MetaStore>) -> Arc<dyn MetaStore> {
    let bucket = plain_bucket("b");
    store.create_bucket(&bucket).await.unwrap();
    store
}

pub fn record(bucket: &str, key: &str, blob: &str) -> ObjectRecord {
    ObjectRecord {
        bucket: bucket.into(),
        key: key.into(),
        version_id: format!("v-{blob}"),
        versioned: false,
        blob_id: blob.into(),
        size: 3,
        etag: "abc".into(),
        last_modified: OffsetDateTime::now_utc(),
        headers: ContentHeaders::default(),
        user_meta: BTreeMap::new(),
        tags: vec![],
        parts_count: None,
        part_sizes: Vec::new(),
        scan: Default::default(),
        lock: Default::default(),
    }
}

pub async fn overwrite_releases_the_old_blob_and_prefix_listing_is_bounded(store: Arc<dyn MetaStore>) {
    store.put_object(&record("b", "a/1", "x1")).await.unwrap();
    assert!(store.released_blobs(10).await.unwrap().is_empty());
    store.put_object(&record("b", "a/1", "x2")).await.unwrap();
    assert_eq!(store.released_blobs(10).await.unwrap(), ["x1"]);
    let asked: Vec<String> = ["x1", "x2", "nobody"].map(String::from).to_vec();
    let mut named = store.referenced_blobs(&asked).await.unwrap();
    named.sort();
    assert_eq!(named, ["x1", "x2"], "queued for release counts as named: the collector deletes it");
    store.forget_released(&["x1".to_string()]).await.unwrap();
    assert!(store.released_blobs(10).await.unwrap().is_empty());
    assert_eq!(store.referenced_blobs(&asked).await.unwrap(), ["x2"], "released and forgotten: an orphan");
    store.put_object(&record("b", "a0", "x3")).await.unwrap();
    store.put_object(&record("b", "a/\u{10FFFF}", "x4")).await.unwrap();
    let page = store.list_objects("b", KeyRange { prefix: "a/", after: None, from: None, limit: 10 }).await.unwrap();
    let keys: Vec<_> = page.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a/1", "a/\u{10FFFF}"]);
    let after =
        store.list_objects("b", KeyRange { prefix: "", after: Some("a/1"), from: None, limit: 10 }).await.unwrap();
    assert_eq!(after.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["a/\u{10FFFF}", "a0"]);
    // An inclusive lower bound at the successor of `a/` skips every key under it, U+10FFFF too.
    let skip = crate::prefix_successor("a/");
    let from = store.list_objects("b", KeyRange { prefix: "", after: None, from: skip.as_deref(), limit: 10 }).await;
    assert_eq!(from.unwrap().iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["a0"]);
    let at = store.list_objects("b", KeyRange { prefix: "", after: None, from: Some("a0"), limit: 10 }).await;
    assert_eq!(at.unwrap().iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["a0"]);
}

pub async fn reads_see_every_acknowledged_write(store: Arc<dyn MetaStore>) {
    store.put_object(&record("b", "k", "x1")).await.unwrap();
    assert_eq!(store.get_object("b", "k").await.unwrap().unwrap().blob_id, "x1");
    store.put_object(&record("b", "k", "x2")).await.unwrap();
    assert_eq!(store.get_object("b", "k").await.unwrap().unwrap().blob_id, "x2");
    store.set_object_tags("b", "k", &[Tag { key: "a".into(), value: "b".into() }]).await.unwrap();
    assert_eq!(store.get_object("b", "k").await.unwrap().unwrap().tags.len(), 1);
    store.delete_object("b", "k").await.unwrap();
    assert!(store.get_object("b", "k").await.unwrap().is_none());
}

pub fn share(id: &str, hash: &[u8], uses: u32, version: &str) -> Share {
    let now = OffsetDateTime::now_utc();
    Share {
        id: id.into(),
        token_hash: hash.to_vec(),
        method: "GET".into(),
        bucket: "b".into(),
        key: "k".into(),
        key_is_prefix: false,
        version_id: Some(version.into()),
        etag: Some("abc".into()),
        size: Some(3),
        created: now,
        expires: now + time::Duration::hours(1),
        max_uses: uses,
        uses_left: uses,
        allow_cidrs: vec![],
        disposition: "attachment".into(),
        label: None,
        principal: "root".into(),
        principal_id: Some("000000000000".into()),
        revoked: None,
        max_size: None,
        content_types: vec![],
        redirect: false,
    }
}

/// An upload link for `key` (a prefix when it ends with `/`).
fn upload_share(id: &str, hash: &[u8], uses: u32, key: &str) -> Share {
    Share {
        method: "PUT".into(),
        key: key.into(),
        key_is_prefix: key.ends_with('/'),
        version_id: None,
        etag: None,
        size: None,
        ..share(id, hash, uses, "")
    }
}

/// A batch of the writer task panics: its caller gets `Closed`, later redemptions are granted
/// (the writer goes on), and health reports ok until the store is closed.
pub async fn the_writer_survives_a_panicking_batch(store: Arc<dyn MetaStore>) {
    store.put_object(&record("b", "k", "x1")).await.unwrap();
    let version = store.get_object("b", "k").await.unwrap().unwrap().version_id;
    store.create_share(&share("s1", b"h1", 2, &version)).await.unwrap();
    let now = OffsetDateTime::now_utc();
    store.panic_next_batch();
    let lost = store.consume_share(b"h1", now, &grantee(), false).await;
    assert!(matches!(lost, Err(MetaError::Closed)), "{lost:?}");
    for _ in 0..2 {
        assert!(store.consume_share(b"h1", now, &grantee(), false).await.unwrap().is_some());
    }
    store.put_object(&record("b", "k2", "x2")).await.unwrap();
    store.health().await.unwrap();
    store.close().await;
    assert!(store.health().await.is_err(), "a closed store is not healthy");
}

pub async fn shares_are_consumed_atomically_and_only_while_valid(store: Arc<dyn MetaStore>) {
    store.put_object(&record("b", "k", "x1")).await.unwrap();
    let version = store.get_object("b", "k").await.unwrap().unwrap().version_id;
    store.create_share(&share("s5", b"h5", 5, &version)).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let attempts: Vec<_> = (0..40)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.consume_share(b"h5", now, &grantee(), false).await.unwrap().is_some() })
        })
        .collect();
    let mut granted = 0;
    for attempt in attempts {
        granted += usize::from(attempt.await.unwrap());
    }
    assert_eq!(granted, 5);
    assert_eq!(store.get_share("s5").await.unwrap().unwrap().uses_left, 0);
    let minute_ago = now - time::Duration::minutes(1);
    assert!(store.has_grant("s5", &grantee(), minute_ago).await.unwrap());
    let elsewhere = Grantee { source_ip: "10.0.0.2".into(), ..grantee() };
    assert!(!store.has_grant("s5", &elsewhere, minute_ago).await.unwrap());
    let other_agent = Grantee { user_agent: None, ..grantee() };
    assert!(!store.has_grant("s5", &other_agent, minute_ago).await.unwrap());
    assert!(!store.has_grant("s5", &grantee(), now + time::Duration::seconds(1)).await.unwrap());

    store.create_share(&share("s1", b"h1", 1, &version)).await.unwrap();
    let later = now + time::Duration::hours(2);
    assert!(store.consume_share(b"h1", later, &grantee(), false).await.unwrap().is_none(), "expired");
    assert!(store.revoke_share("s1", now).await.unwrap());
    assert!(!store.revoke_share("s1", now).await.unwrap());
    assert!(store.consume_share(b"h1", now, &grantee(), false).await.unwrap().is_none(), "revoked");

    store.create_share(&share("s2", b"h2", 1, &version)).await.unwrap();
    store.put_object(&record("b", "k", "x2")).await.unwrap();
    assert!(store.consume_share(b"h2", now, &grantee(), false).await.unwrap().is_none(), "object replaced");
    assert_eq!(store.get_share("s2").await.unwrap().unwrap().uses_left, 1, "a refusal consumes nothing");
    assert!(store.consume_share(b"unknown", now, &grantee(), false).await.unwrap().is_none());

    // s2's object was replaced: it is listed, as changed, but not as active.
    let active = store.list_shares(&ShareFilter { active_at: Some(now), ..Default::default() }).await.unwrap();
    assert!(active.is_empty(), "{active:?}");
    let listed = store.list_shares(&ShareFilter::default()).await.unwrap();
    let mut current: Vec<_> = listed.iter().map(|l| (l.share.id.as_str(), l.object_current)).collect();
    current.sort();
    assert_eq!(current, [("s1", false), ("s2", false), ("s5", false)]);

    let current = store.get_object("b", "k").await.unwrap().unwrap().version_id;
    let listed = Share { allow_cidrs: vec!["10.0.0.0/8".into()], ..share("s3", b"h3", 1, &current) };
    store.create_share(&listed).await.unwrap();
    assert!(store.consume_share(b"h3", now, &grantee(), false).await.unwrap().is_none(), "allow-list unchecked");
    let granted = store.consume_share(b"h3", now, &grantee(), true).await.unwrap().expect("allow-list checked");
    assert_eq!(granted.share.uses_left, 0);
    if let Some(object) = granted.object {
        assert_eq!(Some(object), store.get_object("b", "k").await.unwrap(), "the version the use was granted for");
    }
    assert!(store.has_grant("s3", &grantee(), now).await.unwrap());
    let listed = store.list_shares(&ShareFilter { active_at: Some(now), ..Default::default() }).await.unwrap();
    assert_eq!(listed.iter().map(|l| (l.share.id.as_str(), l.object_current)).collect::<Vec<_>>(), []);
    let listed = store.list_shares(&ShareFilter::default()).await.unwrap();
    assert!(listed.iter().any(|l| l.share.id == "s3" && l.object_current), "{listed:?}");
}

pub async fn upload_links_write_the_object_with_the_use(store: Arc<dyn MetaStore>) {
    let now = OffsetDateTime::now_utc();
    let blob_of = async |key: &str| store.get_object("b", key).await.unwrap().map(|r| r.blob_id);
    store.create_share(&upload_share("u2", b"u2", 2, "in/")).await.unwrap();
    assert!(
        store.consume_share(b"u2", now, &grantee(), false).await.unwrap().is_none(),
        "a download of an upload link"
    );
    let first = store.consume_upload_share(b"u2", now, &grantee(), &record("b", "in/a", "y1"), false).await;
    assert_eq!(first.unwrap().unwrap().id, "u2");
    assert_eq!(blob_of("in/a").await.as_deref(), Some("y1"));
    let clash = store.consume_upload_share(b"u2", now, &grantee(), &record("b", "in/a", "y2"), false).await;
    assert!(matches!(clash, Err(MetaError::ObjectExists)), "{clash:?}");
    let gone = store.consume_upload_share(b"u2", now, &grantee(), &record("nope", "in/b", "y3"), false).await;
    assert!(matches!(gone, Err(MetaError::NoSuchBucket)), "{gone:?}");
    assert_eq!(store.get_share("u2").await.unwrap().unwrap().uses_left, 1, "refused writes consume nothing");
    assert_eq!(blob_of("in/a").await.as_deref(), Some("y1"));
    assert!(
        store.consume_upload_share(b"u2", now, &grantee(), &record("b", "in/b", "y4"), false).await.unwrap().is_some()
    );
    let spent = store.consume_upload_share(b"u2", now, &grantee(), &record("b", "in/c", "y5"), false).await;
    assert!(spent.unwrap().is_none());
    assert_eq!(blob_of("in/c").await, None, "no use, no object");

    store.put_object(&record("b", "k", "x1")).await.unwrap();
    let version = store.get_object("b", "k").await.unwrap().unwrap().version_id;
    store.create_share(&share("g1", b"g1", 1, &version)).await.unwrap();
    let upload_via_download = store.consume_upload_share(b"g1", now, &grantee(), &record("b", "k", "y6"), true).await;
    assert!(upload_via_download.unwrap().is_none());
    assert_eq!(blob_of("k").await.as_deref(), Some("x1"));

    store.create_share(&upload_share("u1", b"u1", 1, "k")).await.unwrap();
    let racers: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let record = record("b", "k", &format!("r{i}"));
                store.consume_upload_share(b"u1", now, &grantee(), &record, true).await.unwrap().map(|_| record.blob_id)
            })
        })
        .collect();
    let mut winners = vec![];
    for racer in racers {
        winners.extend(racer.await.unwrap());
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(blob_of("k").await, winners.pop(), "the one granted upload replaced the object");
}

pub async fn bucket_rules(store: Arc<dyn MetaStore>) {
    let again = plain_bucket("b");
    assert!(matches!(store.create_bucket(&again).await, Err(MetaError::BucketAlreadyExists)));
    assert!(matches!(store.put_object(&record("nope", "k", "x")).await, Err(MetaError::NoSuchBucket)));
    store.put_object(&record("b", "k", "x")).await.unwrap();
    assert!(matches!(store.delete_bucket("b").await, Err(MetaError::BucketNotEmpty)));
    assert!(store.delete_object("b", "k").await.unwrap());
    assert!(!store.delete_object("b", "k").await.unwrap());
    assert_eq!(store.released_blobs(10).await.unwrap(), ["x"]);
    store.delete_bucket("b").await.unwrap();
    assert!(store.get_bucket("b").await.unwrap().is_none());
    assert!(matches!(store.put_object(&record("b", "k", "y")).await, Err(MetaError::NoSuchBucket)));
}

/// Writes racing each other (which the SQLite store commits in batches) each get their own
/// outcome: one that cannot succeed fails alone, and a key written twice keeps one record and
/// releases the other's blob.
pub async fn racing_writes_fail_alone(store: Arc<dyn MetaStore>) {
    store.put_object(&record("b", "k", "x0")).await.unwrap();
    let version = store.get_object("b", "k").await.unwrap().unwrap().version_id;
    store.create_share(&share("one-use", b"h1", 1, &version)).await.unwrap();
    let mut writes = Vec::new();
    for i in 0..60 {
        let (store, bucket) = (store.clone(), if i % 3 == 0 { "nope" } else { "b" });
        writes.push(tokio::spawn(async move {
            (bucket, store.put_object(&record(bucket, &format!("k{}", i / 2), &format!("blob{i}"))).await)
        }));
    }
    let consumes: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.consume_share(b"h1", OffsetDateTime::now_utc(), &grantee(), false).await })
        })
        .collect();
    for write in writes {
        match write.await.unwrap() {
            ("b", outcome) => outcome.unwrap(),
            (_, outcome) => assert!(matches!(outcome, Err(MetaError::NoSuchBucket)), "{outcome:?}"),
        }
    }
    let mut granted = 0;
    for consume in consumes {
        granted += usize::from(consume.await.unwrap().unwrap().is_some());
    }
    assert_eq!(granted, 1, "a one-use link granted once");
    // Key k{k} had writes i = 2k and 2k + 1; at most one of two neighbours is a multiple of 3, so
    // every key got a record, and those where neither is were written twice.
    let records =
        store.list_objects("b", KeyRange { prefix: "k", after: Some("k"), from: None, limit: 100 }).await.unwrap();
    assert_eq!(records.len(), 30);
    let twice: Vec<usize> = (0..30).filter(|k| (2 * k) % 3 != 0 && (2 * k + 1) % 3 != 0).collect();
    let released = store.released_blobs(100).await.unwrap();
    assert_eq!(released.len(), twice.len(), "one blob released per key written twice: {released:?}");
    for record in &records {
        let k: usize = record.key[1..].parse().unwrap();
        let written = [format!("blob{}", 2 * k), format!("blob{}", 2 * k + 1)];
        assert!(written.contains(&record.blob_id), "{record:?}");
        if twice.contains(&k) {
            let replaced = written.iter().find(|blob| **blob != record.blob_id).unwrap();
            assert!(released.contains(replaced), "{replaced} was replaced, so it is released");
        }
    }
}

pub async fn completing_an_upload_is_one_transaction(store: Arc<dyn MetaStore>) {
    let upload = MultipartUpload {
        upload_id: "u1".into(),
        bucket: "b".into(),
        key: "big".into(),
        initiated: OffsetDateTime::now_utc(),
        headers: ContentHeaders::default(),
        user_meta: BTreeMap::new(),
        tags: vec![],
        lock: Default::default(),
    };
    store.create_upload(&upload).await.unwrap();
    for n in 1..=2 {
        let part = PartRecord {
            upload_id: "u1".into(),
            part_number: n,
            blob_id: format!("p{n}"),
            size: 5,
            etag: "e".into(),
            last_modified: OffsetDateTime::now_utc(),
        };
        store.put_part(&part).await.unwrap();
    }
    let parts: Vec<String> = ["p1", "p2", "p3"].map(String::from).to_vec();
    assert_eq!(store.referenced_blobs(&parts).await.unwrap().len(), 2, "an upload's parts are named");
    store.put_object(&record("b", "big", "old")).await.unwrap();
    store.complete_upload("u1", &record("b", "big", "new")).await.unwrap();
    let mut released = store.released_blobs(10).await.unwrap();
    released.sort();
    assert_eq!(released, ["old", "p1", "p2"]);
    assert!(store.get_upload("u1").await.unwrap().is_none());
    assert!(matches!(store.abort_upload("u1").await, Err(MetaError::NoSuchUpload)));
}

pub async fn spent_links_are_purged_after_retention(store: Arc<dyn MetaStore>) {
    store.put_object(&record("b", "k", "x1")).await.unwrap();
    let version = store.get_object("b", "k").await.unwrap().unwrap().version_id;
    let now = OffsetDateTime::now_utc();
    let mut expired = share("expired", b"he", 1, &version);
    expired.expires = now - time::Duration::minutes(5);
    store.create_share(&expired).await.unwrap();
    store.create_share(&share("revoked", b"hr", 1, &version)).await.unwrap();
    store.revoke_share("revoked", now - time::Duration::minutes(5)).await.unwrap();
    store.create_share(&share("spent", b"hs", 1, &version)).await.unwrap();
    store.consume_share(b"hs", now - time::Duration::minutes(5), &grantee(), false).await.unwrap().unwrap();
    store.create_share(&share("resumable", b"hu", 1, &version)).await.unwrap();
    store.consume_share(b"hu", now, &grantee(), false).await.unwrap().unwrap();
    store.create_share(&share("live", b"hl", 2, &version)).await.unwrap();

    let purged = store.purge_shares(now - time::Duration::minutes(1)).await.unwrap();
    assert_eq!(purged, 3);
    // Shares made in the same millisecond list in id order, so compare the set.
    let mut left: Vec<String> =
        store.list_shares(&ShareFilter::default()).await.unwrap().into_iter().map(|s| s.share.id).collect();
    left.sort();
    assert_eq!(left, ["live", "resumable"]);
    assert!(store.has_grant("resumable", &grantee(), now - time::Duration::minutes(1)).await.unwrap());
}

pub async fn a_grant_serves_its_budget_once(store: Arc<dyn MetaStore>) {
    store.put_object(&record("b", "k", "x1")).await.unwrap();
    let object = store.get_object("b", "k").await.unwrap().unwrap();
    let now = OffsetDateTime::now_utc();
    let since = now - time::Duration::minutes(1);
    store.create_share(&Share { size: Some(100), ..share("g", b"hg", 1, &object.version_id) }).await.unwrap();
    store.consume_share(b"hg", now, &grantee(), false).await.unwrap().unwrap();
    // The first transfer counted the size (100); the budget is 130.
    let reserve = async |to: &Grantee, bytes| {
        let request = GrantRequest { share_id: "g", to, since, now, bytes, budget: 130 };
        store.reserve_grant(&request).await.unwrap()
    };
    assert_eq!(reserve(&grantee(), 31).await, None, "past the budget");
    let elsewhere = Grantee { source_ip: "10.0.0.2".into(), ..grantee() };
    assert_eq!(reserve(&elsewhere, 1).await, None, "another address");
    let granted = reserve(&grantee(), 30).await.expect("within the budget");
    assert_eq!(reserve(&grantee(), 1).await, None, "spent");
    store.refund_grant("g", &grantee(), granted, 60).await.unwrap();
    assert_eq!(reserve(&grantee(), 60).await, Some(granted), "refunded bytes can be served again");
    assert_eq!(reserve(&grantee(), 1).await, None);
    store.refund_grant("g", &grantee(), granted, 10).await.unwrap();
    let later = now + time::Duration::hours(2);
    let client = grantee();
    let expired = GrantRequest { share_id: "g", to: &client, since, now: later, bytes: 1, budget: 130 };
    assert_eq!(store.reserve_grant(&expired).await.unwrap(), None, "expired");
    store.revoke_share("g", now).await.unwrap();
    assert_eq!(reserve(&grantee(), 1).await, None, "revoked");
}

/// One `#[tokio::test]` per check, each with a store from `$open` (an async expression giving
/// `Option<(Arc<dyn MetaStore>, guard)>`; `None` skips, with a message, when the backend is absent).
macro_rules! conformance_tests {
    ($open:expr) => {
        #[tokio::test]
        async fn overwrite_releases_the_old_blob_and_prefix_listing_is_bounded() {
            if let Some((store, _guard)) = $open.await {
                crate::conformance::overwrite_releases_the_old_blob_and_prefix_listing_is_bounded(
                    crate::conformance::with_bucket(store).await,
                )
                .await;
            }
        }
        #[tokio::test]
        async fn reads_see_every_acknowledged_write() {
            if let Some((store, _guard)) = $open.await {
                crate::conformance::reads_see_every_acknowledged_write(crate::conformance::with_bucket(store).await)
                    .await;
            }
        }
        #[tokio::test]
        async fn the_writer_survives_a_panicking_batch() {
            if let Some((store, _guard)) = $open.await {
                crate::conformance::the_writer_survives_a_panicking_batch(crate::conformance::with_bucket(store).await)
                    .await;
            }
        }
        #[tokio::test]
        async fn shares_are_consumed_atomically_and_only_while_valid() {
            if let Some((store, _guard)) = $open.await {
                crate::conformance::shares_are_consumed_atomically_and_only_while_valid(
                    crate::conformance::with_bucket(store).await,
                )
                .await;
            }
        }
        #[tokio::test]
        async fn spent_links_are_purged_after_retention() {
            if let Some((store, _guard)) = $open.await {
                crate::conformance::spent_links_are_purged_after_retention(
                    crate::conformance::with_bucket(store).await,
                )
                .await;
            }
        }
        #[tokio::test]
        async fn upload_links_write_the_object_with_the_use() {
            if let Some((store, _guard)) = $open.await {
                crate::conformance::upload_links_write_the_object_with_the_use(
                    crate::conformance::with_bucket(store).await,
                )
                .await;
            }
        }
        #[tokio::test]
        async fn a_grant_serves_its_budget_once() {
            if let Some((store, _guard)) = $open.await {
                crate::conformance::a_grant_serves_its_budget_once(crate::conformance::with_bucket(store).await).await;
            }
        }
        #[tokio::test]
        async fn bucket_rules() {
            if let Some((store, _guard)) = $open.await {
                crate::conformance::bucket_rules(crate::conformance::with_bucket(store).await).await;
            }
        }
        #[tokio::test]
        async fn racing_writes_fail_alone() {
            if let Some((store, _guard)) = $open.await {
                crate::conformance::racing_writes_fail_alone(crate::conformance::with_bucket(store).await).await;
            }
        }
        #[tokio::test]
        async fn completing_an_upload_is_one_transaction() {
            if let Some((store, _guard)) = $open.await {
                crate::conformance::completing_an_upload_is_one_transaction(
                    crate::conformance::with_bucket(store).await,
                )
                .await;
            }
        }
    };
}
pub(crate) use conformance_tests;
