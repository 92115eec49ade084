//! Verification of the audit trail: every digest's signature and its link to the one before,
//! then every event's hash recomputed in order, and each digest's hash met where the chain
//! reaches its last position. The first broken link is named; nothing is changed.

use std::collections::HashMap;

use latchkey_meta::{AuditDigest, AuditQuery, AuditTrail, GENESIS, MetaError, link_hash};

use crate::{PublicKey, digest_message};

/// What a verification covered.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Linked events checked.
    pub events: u64,
    /// Digests checked.
    pub digests: usize,
    /// The first and last positions present (none when no event is linked).
    pub first: Option<i64>,
    pub head: Option<i64>,
    /// Events after the last digest: linked, not yet signed.
    pub unsigned: i64,
    /// The newest digest, which an auditor can note and pin later (`expect`).
    pub latest: Option<AuditDigest>,
}

#[derive(Debug, thiserror::Error)]
pub enum Broken {
    #[error("audit event {pos}: {why}")]
    Event { pos: i64, why: String },
    #[error("audit digest starting at event {first_pos}: {why}")]
    Digest { first_pos: i64, why: String },
    #[error("the digest {0} the auditor expects is not among the digests: digests were removed or replaced")]
    Missing(String),
    #[error("cannot read the audit trail: {0}")]
    Store(#[from] MetaError),
}

fn broken(pos: i64, why: &str) -> Broken {
    Broken::Event { pos, why: why.to_owned() }
}

/// Checks the digests (one whose signature starts with `expect`, hex, must be among them), then
/// the chain.
pub async fn verify(store: &dyn AuditTrail, key: &PublicKey, expect: Option<&str>) -> Result<Verified, Broken> {
    let digests = store.audit_digests().await?;
    check_digests(&digests, key)?;
    if let Some(expect) = expect
        && !digests.iter().any(|d| hex::encode(&d.signature).starts_with(&expect.to_ascii_lowercase()))
    {
        return Err(Broken::Missing(expect.to_owned()));
    }
    let ends: HashMap<i64, &AuditDigest> = digests.iter().map(|d| (d.last_pos, d)).collect();
    let start = match store.chained_audit(&AuditQuery::page(0, 1)).await?.first() {
        None => None,
        Some(first) if first.pos == 1 => Some((0, GENESIS.to_vec())),
        // Retention removes events only up to a digest.
        Some(first) => match ends.get(&(first.pos - 1)) {
            Some(digest) => Some((digest.last_pos, digest.last_hash.clone())),
            None => {
                let why = "is the first left, but no digest ends right before it: earlier events were removed";
                return Err(broken(first.pos, why));
            }
        },
    };
    let first = start.as_ref().map(|(pos, _)| pos + 1);
    let (events, last) = match start {
        Some(start) => walk(store, start, &ends).await?,
        None => (0, None),
    };
    let head = last.map(|(pos, _)| pos);
    let signed = digests.last().map_or(0, |d| d.last_pos);
    if signed > head.unwrap_or(0) {
        return Err(broken(head.unwrap_or(0) + 1, "is missing: a digest signs events up to it"));
    }
    Ok(Verified {
        events,
        digests: digests.len(),
        first: first.filter(|_| events > 0),
        head,
        unsigned: head.unwrap_or(0) - signed,
        latest: digests.last().cloned(),
    })
}

/// Recomputes every link after `start` (a position and its hash) to the head, meeting each
/// digest's hash where the chain reaches its last position: how many events, and the last
/// one's position and hash (`None` when there is none after `start`).
pub(crate) async fn walk(
    store: &dyn AuditTrail,
    start: (i64, Vec<u8>),
    ends: &HashMap<i64, &AuditDigest>,
) -> Result<(u64, Option<(i64, Vec<u8>)>), Broken> {
    let (mut pos, mut prev) = start;
    let mut events = 0;
    loop {
        let page = store.chained_audit(&AuditQuery::page(pos, 1000)).await?;
        if page.is_empty() {
            return Ok((events, (events > 0).then_some((pos, prev))));
        }
        for linked in page {
            if linked.pos != pos + 1 {
                return Err(broken(pos + 1, "is missing: the chain jumps to a later event"));
            }
            if link_hash(&prev, linked.pos, &linked.event).as_slice() != linked.hash {
                let why = "does not match its contents and the event before it: it was edited, inserted or moved";
                return Err(broken(linked.pos, why));
            }
            if ends.get(&linked.pos).is_some_and(|d| d.last_hash != linked.hash) {
                return Err(broken(linked.pos, "differs from the hash its digest signed"));
            }
            events += 1;
            (pos, prev) = (linked.pos, linked.hash);
        }
    }
}

/// Each digest is signed by `key` and follows the one before it.
fn check_digests(digests: &[AuditDigest], key: &PublicKey) -> Result<(), Broken> {
    let mut prev: Option<&AuditDigest> = None;
    for digest in digests {
        let why = if !key.verifies(&digest_message(digest), &digest.signature) {
            Some("its signature does not verify with the public key")
        } else if digest.first_pos != prev.map_or(1, |p| p.last_pos + 1) || digest.last_pos < digest.first_pos {
            Some("it does not start where the digest before it ends")
        } else if digest.prev_signature.as_deref() != prev.map(|p| p.signature.as_slice()) {
            Some("it does not name the digest before it")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Broken::Digest { first_pos: digest.first_pos, why: why.to_owned() });
        }
        prev = Some(digest);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use latchkey_meta::{AuditEvent, MetaStore, SqliteStore};
    use time::OffsetDateTime;

    use super::*;
    use crate::{Linker, SigningKey};

    fn event(n: i64) -> AuditEvent {
        AuditEvent {
            at: OffsetDateTime::now_utc() - time::Duration::days(400 - n),
            event: "share.denied".into(),
            share_id: Some(format!("shr_{n}")),
            principal: None,
            source_ip: Some("192.0.2.7".into()),
            user_agent: Some("curl/8".into()),
            reason: Some("expired".into()),
        }
    }

    #[tokio::test]
    async fn linked_and_digested_events_verify_and_survive_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("meta.db")).await.unwrap());
        let key = Arc::new(SigningKey::load_or_create(dir.path()).unwrap());
        let public = key.public_key();
        let linker = Linker::new(store.clone(), store.clone(), key, Duration::from_secs(3600));
        for n in 0..5 {
            store.record_audit(&event(n)).await.unwrap();
        }
        assert_eq!(linker.link().await.unwrap(), 5);
        assert!(linker.digest(true).await.unwrap());
        assert!(!linker.digest(true).await.unwrap(), "nothing new to sign");
        for n in 5..8 {
            store.record_audit(&event(n)).await.unwrap();
        }
        linker.link().await.unwrap();
        assert!(!linker.digest(false).await.unwrap(), "not yet due");
        let done = verify(store.as_ref(), &public, None).await.unwrap();
        let first_digest = done.latest.clone().unwrap();
        assert_eq!(
            done,
            Verified {
                events: 8,
                digests: 1,
                first: Some(1),
                head: Some(8),
                unsigned: 3,
                latest: Some(first_digest.clone())
            }
        );
        let pinned = hex::encode(&first_digest.signature[..16]);
        assert!(verify(store.as_ref(), &public, Some(&pinned)).await.is_ok());
        assert!(matches!(verify(store.as_ref(), &public, Some("00ff")).await, Err(Broken::Missing(_))));
        assert!(linker.digest(true).await.unwrap());

        let stranger = SigningKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap().public_key();
        let refused = verify(store.as_ref(), &stranger, None).await.unwrap_err();
        assert!(matches!(refused, Broken::Digest { first_pos: 1, .. }), "{refused}");

        // Retention removes events up to the last digest made before its cutoff, and the chain
        // left still verifies from that digest's hash.
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.purge_audit(OffsetDateTime::now_utc()).await.unwrap(), 8);
        store.record_audit(&event(9)).await.unwrap();
        linker.link().await.unwrap();
        let done = verify(store.as_ref(), &public, None).await.unwrap();
        assert_eq!((done.events, done.first, done.head, done.unsigned), (1, Some(9), Some(9), 1));
    }
}
