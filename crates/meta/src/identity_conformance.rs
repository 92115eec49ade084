//! Behaviour every `IdentityStore` must show, run against each backend by
//! `identity_conformance_tests!`. Each check gets a fresh, empty store.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::{EntryKind, EntryWrite, IdentityStore, KeyRefusal, MfaDevice, SessionRecord, StoredAccessKey};

fn key(id: &str, user: &str) -> StoredAccessKey {
    StoredAccessKey {
        access_key_id: id.into(),
        user_name: user.into(),
        secret_sealed: format!("sealed-{id}").into_bytes(),
        active: true,
        created: OffsetDateTime::now_utc(),
        last_used: None,
        last_used_service: None,
    }
}

pub async fn directory_entries_are_written_only_at_the_revision_expected(store: Arc<dyn IdentityStore>) {
    let mut changes = store.directory_changes();
    let before = store.load_directory().await.unwrap().generation;
    assert_eq!(store.put_entry(EntryKind::User, "Alice", "{\"v\":1}", None).await.unwrap(), EntryWrite::Written(1));
    assert!(changes.has_changed().unwrap(), "a directory write is announced");
    changes.borrow_and_update();
    // IAM names are unique regardless of case; another kind is another namespace.
    assert_eq!(store.put_entry(EntryKind::User, "ALICE", "{}", None).await.unwrap(), EntryWrite::Conflict);
    assert_eq!(store.put_entry(EntryKind::Group, "alice", "{}", None).await.unwrap(), EntryWrite::Written(1));
    let entry = store.get_entry(EntryKind::User, "aLiCe").await.unwrap().unwrap();
    assert_eq!((entry.name.as_str(), entry.body.as_str(), entry.revision), ("Alice", "{\"v\":1}", 1));
    assert_eq!(store.put_entry(EntryKind::User, "Alice", "{\"v\":2}", Some(1)).await.unwrap(), EntryWrite::Written(2));
    // A writer that read revision 1 lost the race.
    assert_eq!(store.put_entry(EntryKind::User, "Alice", "{\"v\":3}", Some(1)).await.unwrap(), EntryWrite::Conflict);
    assert!(!store.delete_entry(EntryKind::User, "Alice", 1).await.unwrap());
    let snapshot = store.load_directory().await.unwrap();
    assert_eq!(snapshot.entries.len(), 2);
    assert!(snapshot.generation >= before + 3, "{} then {}", before, snapshot.generation);
    assert!(snapshot.entries.iter().any(|e| e.kind == EntryKind::User && e.body == "{\"v\":2}" && e.revision == 2));
    assert!(store.delete_entry(EntryKind::User, "alice", 2).await.unwrap());
    assert!(store.get_entry(EntryKind::User, "Alice").await.unwrap().is_none());
    assert!(changes.has_changed().unwrap());
    assert_eq!(store.put_entry(EntryKind::User, "Alice", "{}", Some(2)).await.unwrap(), EntryWrite::Conflict);
}

pub async fn a_renamed_user_keeps_its_keys_and_devices(store: Arc<dyn IdentityStore>) {
    assert_eq!(store.put_entry(EntryKind::User, "alice", "{\"v\":1}", None).await.unwrap(), EntryWrite::Written(1));
    assert_eq!(store.put_entry(EntryKind::User, "bob", "{}", None).await.unwrap(), EntryWrite::Written(1));
    assert_eq!(store.create_access_key(&key("AKIA1", "alice")).await.unwrap(), Ok(()));
    assert_eq!(store.create_access_key(&key("AKIA2", "bob")).await.unwrap(), Ok(()));
    let device =
        MfaDevice::new("arn:aws:iam::000000000000:mfa/phone".into(), b"sealed".to_vec(), OffsetDateTime::now_utc());
    assert!(store.create_mfa_device(&device).await.unwrap());
    assert!(store.enable_mfa_device(&device.serial, "alice", OffsetDateTime::now_utc(), 1).await.unwrap());
    // Taken in another case, or a stale revision: nothing moves.
    assert_eq!(store.rename_user("alice", "BOB", "{}", 1).await.unwrap(), EntryWrite::Conflict);
    assert_eq!(store.rename_user("alice", "carol", "{}", 7).await.unwrap(), EntryWrite::Conflict);
    assert!(store.get_entry(EntryKind::User, "carol").await.unwrap().is_none());
    let generation = store.load_directory().await.unwrap().generation;
    assert_eq!(store.rename_user("ALICE", "Carol", "{\"v\":2}", 1).await.unwrap(), EntryWrite::Written(2));
    assert!(store.get_entry(EntryKind::User, "alice").await.unwrap().is_none());
    let entry = store.get_entry(EntryKind::User, "carol").await.unwrap().unwrap();
    assert_eq!((entry.name.as_str(), entry.body.as_str(), entry.revision), ("Carol", "{\"v\":2}", 2));
    let snapshot = store.load_directory().await.unwrap();
    assert!(snapshot.generation > generation);
    let owners: Vec<(&str, &str)> =
        snapshot.access_keys.iter().map(|k| (k.access_key_id.as_str(), k.user_name.as_str())).collect();
    assert!(owners.contains(&("AKIA1", "Carol")) && owners.contains(&("AKIA2", "bob")), "{owners:?}");
    let device = store.get_mfa_device(&device.serial).await.unwrap().unwrap();
    assert_eq!(device.user_name.as_deref(), Some("Carol"));
    // A change of case only is a rename too.
    assert_eq!(store.rename_user("carol", "CAROL", "{}", 2).await.unwrap(), EntryWrite::Written(3));
    assert_eq!(store.get_entry(EntryKind::User, "carol").await.unwrap().unwrap().name, "CAROL");
}

pub async fn a_user_has_at_most_two_access_keys(store: Arc<dyn IdentityStore>) {
    assert_eq!(store.create_access_key(&key("AKIA1", "bob")).await.unwrap(), Ok(()));
    assert_eq!(store.create_access_key(&key("AKIA2", "bob")).await.unwrap(), Ok(()));
    assert_eq!(store.create_access_key(&key("AKIA3", "bob")).await.unwrap(), Err(KeyRefusal::LimitExceeded));
    assert_eq!(store.create_access_key(&key("AKIA1", "carol")).await.unwrap(), Err(KeyRefusal::DuplicateId));
    assert_eq!(store.create_access_key(&key("AKIA4", "carol")).await.unwrap(), Ok(()));
    let generation = store.load_directory().await.unwrap().generation;
    assert!(store.set_access_key_active("AKIA1", false).await.unwrap());
    assert!(!store.set_access_key_active("AKIA9", false).await.unwrap());
    let snapshot = store.load_directory().await.unwrap();
    assert!(snapshot.generation > generation, "deactivation changes the generation");
    let first = snapshot.access_keys.iter().find(|k| k.access_key_id == "AKIA1").unwrap();
    assert!(!first.active);
    assert_eq!(first.secret_sealed, b"sealed-AKIA1");
    // A deleted key frees its slot.
    assert!(store.delete_access_key("AKIA1").await.unwrap());
    assert!(!store.delete_access_key("AKIA1").await.unwrap());
    assert_eq!(store.create_access_key(&key("AKIA5", "bob")).await.unwrap(), Ok(()));
    assert_eq!(store.create_access_key(&key("AKIA6", "bob")).await.unwrap(), Err(KeyRefusal::LimitExceeded));
    let later = OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap();
    let earlier = later - Duration::hours(1);
    store.record_key_use(&[("AKIA2".into(), later, "s3".into())]).await.unwrap();
    store.record_key_use(&[("AKIA2".into(), earlier, "iam".into())]).await.unwrap();
    let snapshot = store.load_directory().await.unwrap();
    let used = snapshot.access_keys.iter().find(|k| k.access_key_id == "AKIA2").unwrap();
    assert_eq!((used.last_used, used.last_used_service.as_deref()), (Some(later), Some("s3")));
}

pub async fn each_mfa_step_is_spent_once(store: Arc<dyn IdentityStore>) {
    let device =
        MfaDevice::new("arn:aws:iam::000000000000:mfa/phone".into(), b"seed".to_vec(), OffsetDateTime::now_utc());
    assert!(store.create_mfa_device(&device).await.unwrap());
    assert!(!store.create_mfa_device(&device).await.unwrap());
    let now = OffsetDateTime::now_utc();
    assert!(store.enable_mfa_device(&device.serial, "dave", now, 5).await.unwrap());
    assert!(!store.enable_mfa_device(&device.serial, "erin", now, 9).await.unwrap(), "enabled for dave already");
    assert!(!store.spend_mfa_step(&device.serial, 5).await.unwrap(), "the enabling codes' step is spent");
    assert!(store.spend_mfa_step(&device.serial, 6).await.unwrap());
    assert!(!store.spend_mfa_step(&device.serial, 6).await.unwrap());
    assert!(!store.spend_mfa_step(&device.serial, 4).await.unwrap());
    let stored = store.get_mfa_device(&device.serial).await.unwrap().unwrap();
    assert_eq!((stored.user_name.as_deref(), stored.last_step), (Some("dave"), 6));
    assert!(!store.delete_mfa_device(&device.serial).await.unwrap(), "an enabled device is not deleted");
    // Attempts are taken in windows: three per window here; the count starts again once a
    // window has passed, and a refunded attempt (a right code) can be taken again.
    let window = std::time::Duration::from_secs(300);
    let start = now - time::Duration::seconds(290);
    let second = |s: i64| start + time::Duration::seconds(s);
    for s in 0..3 {
        assert!(store.reserve_mfa_attempt(&device.serial, second(s), window, 3).await.unwrap());
    }
    assert!(!store.reserve_mfa_attempt(&device.serial, second(3), window, 3).await.unwrap(), "none left");
    let counted = store.get_mfa_device(&device.serial).await.unwrap().unwrap();
    assert_eq!((counted.failures, counted.failures_since.unix_timestamp()), (3, start.unix_timestamp()));
    store.refund_mfa_attempt(&device.serial).await.unwrap();
    assert!(store.reserve_mfa_attempt(&device.serial, second(4), window, 3).await.unwrap());
    assert!(!store.reserve_mfa_attempt(&device.serial, second(299), window, 3).await.unwrap());
    assert!(store.reserve_mfa_attempt(&device.serial, second(300), window, 3).await.unwrap(), "a new window");
    let restarted = store.get_mfa_device(&device.serial).await.unwrap().unwrap();
    assert_eq!((restarted.failures, restarted.failures_since.unix_timestamp()), (1, start.unix_timestamp() + 300));
    assert!(!store.reserve_mfa_attempt("arn:aws:iam::000000000000:mfa/none", now, window, 3).await.unwrap());
    assert!(!store.deactivate_mfa_device(&device.serial, "erin").await.unwrap());
    assert!(store.deactivate_mfa_device(&device.serial, "dave").await.unwrap());
    assert_eq!(store.list_mfa_devices().await.unwrap().len(), 1);
    assert!(store.delete_mfa_device(&device.serial).await.unwrap());
    assert!(store.get_mfa_device(&device.serial).await.unwrap().is_none());
}

pub async fn sessions_live_until_purged_after_expiry(store: Arc<dyn IdentityStore>) {
    let now = OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap();
    let session = |id: &str, expires: OffsetDateTime| SessionRecord {
        access_key_id: id.into(),
        secret_sealed: b"s".to_vec(),
        token_hash: vec![1, 2, 3],
        body: "{}".into(),
        issued: now - Duration::hours(1),
        expires,
    };
    store.create_session(&session("ASIA1", now - Duration::seconds(1))).await.unwrap();
    store.create_session(&session("ASIA2", now + Duration::hours(1))).await.unwrap();
    assert!(store.create_session(&session("ASIA2", now)).await.is_err(), "session ids are unique");
    assert_eq!(store.get_session("ASIA2").await.unwrap().unwrap(), session("ASIA2", now + Duration::hours(1)));
    assert_eq!(store.purge_sessions(now).await.unwrap(), 1);
    assert!(store.get_session("ASIA1").await.unwrap().is_none());
    assert!(store.get_session("ASIA2").await.unwrap().is_some());
}

pub async fn the_first_master_key_is_the_only_one(store: Arc<dyn IdentityStore>) {
    assert!(store.claim_master_key("aaaa").await.unwrap());
    assert!(store.claim_master_key("aaaa").await.unwrap());
    assert!(!store.claim_master_key("bbbb").await.unwrap());
}

macro_rules! identity_conformance_tests {
    ($open:expr, $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                if let Some((store, _guard)) = $open.await {
                    crate::identity_conformance::$name(store).await;
                }
            }
        )*
    };
    ($open:expr) => {
        identity_conformance_tests!(
            $open,
            directory_entries_are_written_only_at_the_revision_expected,
            a_renamed_user_keeps_its_keys_and_devices,
            a_user_has_at_most_two_access_keys,
            each_mfa_step_is_spent_once,
            sessions_live_until_purged_after_expiry,
            the_first_master_key_is_the_only_one,
        );
    };
}
pub(crate) use identity_conformance_tests;
