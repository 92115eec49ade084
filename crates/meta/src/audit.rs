//! The audit trail's hash chain behind [`AuditStore`].
//!
//! Events are recorded unchained (`MetaStore::record_audit`, and triggers in the same statement
//! as what they record), from any writer, so recording never waits on a chain head. They are
//! linked soon after, by one linker at a time (on PostgreSQL an advisory lock decides which
//! replica): each gets the next position (1, 2, 3...) and the hash [`link_hash`] of the
//! previous event's hash and its own fields. Any edit, deletion, insertion or reordering of a
//! linked event breaks the chain at or after it. Digests ([`AuditDigest`], signed by the
//! `latchkey-audit` crate) vouch for the head at intervals; retention removes events only up to
//! a digest, so a shortened chain still starts at a signed hash.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{AuditEvent, MetaResult, rows};

/// A linked event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedEvent {
    pub pos: i64,
    pub event: AuditEvent,
    pub hash: Vec<u8>,
}

/// A signed statement that the chain's events `first_pos..=last_pos` end in `last_hash`, after
/// the digest whose signature is `prev_signature` (none for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDigest {
    pub at: OffsetDateTime,
    pub first_pos: i64,
    pub last_pos: i64,
    pub last_hash: Vec<u8>,
    pub prev_signature: Option<Vec<u8>>,
    pub signature: Vec<u8>,
}

/// Which linked events to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only events after this position.
    pub after: i64,
    /// Only events recorded at or after this time.
    pub since: Option<OffsetDateTime>,
    pub principal: Option<String>,
    pub event: Option<String>,
    pub limit: u32,
    /// The newest matching events instead of the oldest (still answered oldest first).
    pub newest: bool,
}

impl AuditQuery {
    /// Every event after `after`, `limit` at a time.
    pub fn page(after: i64, limit: u32) -> AuditQuery {
        AuditQuery { after, limit, ..AuditQuery::default() }
    }
}

/// The hash before the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// An event's link: SHA-256 over the previous hash and the JSON array `[pos, at_ms, event,
/// share_id, principal, source_ip, user_agent, reason]` (nulls for absent fields).
pub fn link_hash(prev: &[u8], pos: i64, event: &AuditEvent) -> [u8; 32] {
    let fields = serde_json::json!([
        pos,
        rows::to_ms(event.at),
        event.event,
        event.share_id,
        event.principal,
        event.source_ip,
        event.user_agent,
        event.reason,
    ]);
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(fields.to_string().as_bytes());
    hasher.finalize().into()
}

/// The chain as read: what verification needs, and all that [`SqliteAuditReader`] offers.
#[async_trait]
pub trait AuditTrail: Send + Sync + 'static {
    /// The chain's head: the last linked event's position and hash (or the last digest's, when
    /// retention removed every event after it).
    async fn audit_head(&self) -> MetaResult<Option<(i64, Vec<u8>)>>;
    /// Linked events after position `query.after` that match it, in order, at most
    /// `query.limit`.
    async fn chained_audit(&self, query: &AuditQuery) -> MetaResult<Vec<ChainedEvent>>;
    /// Every digest, oldest first.
    async fn audit_digests(&self) -> MetaResult<Vec<AuditDigest>>;
    /// The newest digest.
    async fn latest_audit_digest(&self) -> MetaResult<Option<AuditDigest>>;
}

/// The chain as the server keeps it.
#[async_trait]
pub trait AuditStore: AuditTrail {
    /// Links up to `limit` unchained events, oldest first; how many. While another replica is
    /// linking, links none.
    async fn chain_audit(&self, limit: u32) -> MetaResult<u64>;
    /// Records a digest; `false` when one starting at the same position exists (another
    /// replica's).
    async fn record_audit_digest(&self, digest: &AuditDigest) -> MetaResult<bool>;
    /// Claims the firing of alarm `rule` for `group` in the window starting at `window_start`;
    /// `false` when it was claimed already (here or by another replica).
    async fn claim_alarm(&self, rule: &str, group: &str, window_start: OffsetDateTime) -> MetaResult<bool>;
    /// Forgets firings claimed before `before`; how many.
    async fn purge_alarm_firings(&self, before: OffsetDateTime) -> MetaResult<u64>;
}

/// A read-only view of a PostgreSQL store's audit trail: no migration, no listener, so that an
/// auditor can verify with a role that may only read (a schema without the tables is an error).
pub struct PgAuditReader {
    pool: sqlx::PgPool,
}

impl PgAuditReader {
    pub async fn open(url: &str) -> MetaResult<PgAuditReader> {
        Ok(PgAuditReader { pool: sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await? })
    }
}

/// A read-only view of an SQLite store's audit trail, opened without the server's lock, so that
/// an auditor can verify a data dir while its server runs.
pub struct SqliteAuditReader {
    reader: sqlx::SqlitePool,
}

impl SqliteAuditReader {
    pub async fn open(path: &std::path::Path) -> MetaResult<SqliteAuditReader> {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
        Ok(SqliteAuditReader {
            reader: sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await?,
        })
    }
}

/// An unchained event as read for linking.
pub(crate) type Pending =
    (i64, i64, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);

/// The links of `pending` (seq and fields, oldest first) after `head`: (seq, position, hash).
/// A head whose hash was removed (NULL) links on from an empty hash, which verification then
/// reports as the broken link it is.
pub(crate) fn links(head: Option<(i64, Option<Vec<u8>>)>, pending: Vec<Pending>) -> Vec<(i64, i64, Vec<u8>)> {
    let (mut pos, mut prev) = head.map_or((0, GENESIS.to_vec()), |(pos, hash)| (pos, hash.unwrap_or_default()));
    pending
        .into_iter()
        .map(|(seq, at_ms, event, share_id, principal, source_ip, user_agent, reason)| {
            pos += 1;
            let event =
                AuditEvent { at: rows::from_ms(at_ms), event, share_id, principal, source_ip, user_agent, reason };
            prev = link_hash(&prev, pos, &event).to_vec();
            (seq, pos, prev.clone())
        })
        .collect()
}

/// The chain's head: the last linked event, or the last digest's end when retention removed
/// every event (the chain goes on from there).
pub(crate) const SELECT_HEAD: &str = "SELECT pos, hash FROM (
         SELECT pos, hash FROM (SELECT chain_pos AS pos, hash FROM audit_events
                                WHERE chain_pos IS NOT NULL ORDER BY chain_pos DESC LIMIT 1) AS linked
         UNION ALL
         SELECT pos, hash FROM (SELECT last_pos AS pos, last_hash AS hash FROM audit_digests
                                ORDER BY last_pos DESC LIMIT 1) AS digested
     ) AS head ORDER BY pos DESC LIMIT 1";
pub(crate) const SELECT_DIGESTS: &str =
    "SELECT at_ms, first_pos, last_pos, last_hash, prev_signature, signature FROM audit_digests";

/// A digest's row as `SELECT_DIGESTS` reads it.
pub(crate) type DigestRow = (i64, i64, i64, Vec<u8>, Option<Vec<u8>>, Vec<u8>);

pub(crate) fn digest_from_row(
    (at_ms, first_pos, last_pos, last_hash, prev_signature, signature): DigestRow,
) -> AuditDigest {
    AuditDigest { at: rows::from_ms(at_ms), first_pos, last_pos, last_hash, prev_signature, signature }
}

pub(crate) const SELECT_PENDING: &str = "SELECT seq, at_ms, event, share_id, principal, source_ip, user_agent, reason
     FROM audit_events WHERE chain_pos IS NULL ORDER BY seq LIMIT $1";

/// Implements [`AuditTrail`] for a store from one of its pools.
macro_rules! audit_trail {
    ($store:ty, $pool:ident) => {
        #[async_trait::async_trait]
        impl $crate::audit::AuditTrail for $store {
            async fn audit_head(&self) -> $crate::MetaResult<Option<(i64, Vec<u8>)>> {
                let head: Option<(i64, Option<Vec<u8>>)> =
                    sqlx::query_as($crate::audit::SELECT_HEAD).fetch_optional(&self.$pool).await?;
                Ok(head.map(|(pos, hash)| (pos, hash.unwrap_or_default())))
            }

            async fn chained_audit(
                &self,
                query: &$crate::audit::AuditQuery,
            ) -> $crate::MetaResult<Vec<$crate::audit::ChainedEvent>> {
                let order = if query.newest { "DESC" } else { "ASC" };
                let statement = format!(
                    "SELECT chain_pos, at_ms, event, share_id, principal, source_ip, user_agent, reason, hash
                 FROM audit_events WHERE chain_pos > $1
                 AND (CAST($2 AS BIGINT) IS NULL OR at_ms >= $2)
                 AND (CAST($3 AS TEXT) IS NULL OR principal = $3)
                 AND (CAST($4 AS TEXT) IS NULL OR event = $4)
                 ORDER BY chain_pos {order} LIMIT $5"
                );
                let mut rows: Vec<(
                    i64,
                    i64,
                    String,
                    Option<String>,
                    Option<String>,
                    Option<String>,
                    Option<String>,
                    Option<String>,
                    Option<Vec<u8>>,
                )> = sqlx::query_as(&statement)
                    .bind(query.after)
                    .bind(query.since.map($crate::rows::to_ms))
                    .bind(&query.principal)
                    .bind(&query.event)
                    .bind(i64::from(query.limit))
                    .fetch_all(&self.$pool)
                    .await?;
                if query.newest {
                    rows.reverse();
                }
                Ok(rows
                    .into_iter()
                    .map(|(pos, at_ms, event, share_id, principal, source_ip, user_agent, reason, hash)| {
                        let at = $crate::rows::from_ms(at_ms);
                        let event =
                            $crate::AuditEvent { at, event, share_id, principal, source_ip, user_agent, reason };
                        // A hash removed (NULL) verifies as a broken link, never as a read error.
                        $crate::audit::ChainedEvent { pos, event, hash: hash.unwrap_or_default() }
                    })
                    .collect())
            }

            async fn audit_digests(&self) -> $crate::MetaResult<Vec<$crate::audit::AuditDigest>> {
                let rows: Vec<$crate::audit::DigestRow> =
                    sqlx::query_as(&format!("{} ORDER BY first_pos", $crate::audit::SELECT_DIGESTS))
                        .fetch_all(&self.$pool)
                        .await?;
                Ok(rows.into_iter().map($crate::audit::digest_from_row).collect())
            }

            async fn latest_audit_digest(&self) -> $crate::MetaResult<Option<$crate::audit::AuditDigest>> {
                let row: Option<$crate::audit::DigestRow> =
                    sqlx::query_as(&format!("{} ORDER BY first_pos DESC LIMIT 1", $crate::audit::SELECT_DIGESTS))
                        .fetch_optional(&self.$pool)
                        .await?;
                Ok(row.map($crate::audit::digest_from_row))
            }
        }
    };
}
pub(crate) use audit_trail;

/// The statement that records a digest (`AuditStore::record_audit_digest`), bound.
macro_rules! insert_audit_digest {
    ($digest:expr) => {{
        let digest: &$crate::audit::AuditDigest = $digest;
        sqlx::query(
            "INSERT INTO audit_digests (at_ms, first_pos, last_pos, last_hash, prev_signature, signature)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (first_pos) DO NOTHING",
        )
        .bind($crate::rows::to_ms(digest.at))
        .bind(digest.first_pos)
        .bind(digest.last_pos)
        .bind(&digest.last_hash)
        .bind(&digest.prev_signature)
        .bind(&digest.signature)
    }};
}
pub(crate) use insert_audit_digest;

/// The statement that claims an alarm firing (`AuditStore::claim_alarm`), bound.
macro_rules! claim_alarm {
    ($rule:expr, $group:expr, $window_start:expr) => {
        sqlx::query(
            "INSERT INTO alarm_firings (rule, grp, window_start_ms, fired_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind($rule)
        .bind($group)
        .bind($crate::rows::to_ms($window_start))
        .bind($crate::rows::to_ms(time::OffsetDateTime::now_utc()))
    };
}
pub(crate) use claim_alarm;

pub(crate) const PURGE_ALARM_FIRINGS: &str = "DELETE FROM alarm_firings WHERE fired_ms < $1";

audit_trail!(SqliteAuditReader, reader);
audit_trail!(PgAuditReader, pool);

/// Behaviour every `AuditStore` must show, run against each backend.
#[cfg(test)]
pub(crate) mod conformance {
    use std::sync::Arc;

    use time::OffsetDateTime;

    use super::{AuditDigest, AuditQuery, AuditStore, GENESIS, link_hash};
    use crate::{AuditEvent, MetaStore};

    fn event(n: usize) -> AuditEvent {
        AuditEvent {
            at: OffsetDateTime::from_unix_timestamp(1_800_000_000 + n as i64).unwrap(),
            event: "policy.denied".into(),
            share_id: None,
            principal: Some(format!("arn:aws:iam::000000000000:user/u{n}")),
            source_ip: Some("192.0.2.1".into()),
            user_agent: None,
            reason: Some(format!("reason {n}")),
        }
    }

    /// Events recorded from many tasks are linked once each, in a gapless chain whose hashes
    /// recompute; digests are recorded once per starting position.
    pub async fn events_are_linked_into_one_chain<S: AuditStore + MetaStore>(store: Arc<S>) {
        let writers: Vec<_> = (0..40)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { store.record_audit(&event(n)).await.unwrap() })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let mut linked = 0;
        loop {
            let n = store.chain_audit(16).await.unwrap();
            if n == 0 {
                break;
            }
            linked += n;
        }
        assert_eq!(linked, 40);
        let chain = store.chained_audit(&AuditQuery::page(0, 1000)).await.unwrap();
        let mut prev = GENESIS.to_vec();
        for (i, linked) in chain.iter().enumerate() {
            assert_eq!(linked.pos, i as i64 + 1);
            assert_eq!(linked.hash, link_hash(&prev, linked.pos, &linked.event).to_vec());
            prev = linked.hash.clone();
        }
        assert_eq!(store.audit_head().await.unwrap(), Some((40, prev.clone())));
        assert_eq!(store.chained_audit(&AuditQuery::page(38, 10)).await.unwrap().len(), 2);
        let one = AuditQuery { principal: Some("arn:aws:iam::000000000000:user/u7".into()), ..AuditQuery::page(0, 10) };
        let found = store.chained_audit(&one).await.unwrap();
        assert_eq!((found.len(), found[0].event.reason.as_deref()), (1, Some("reason 7")));
        let since = OffsetDateTime::from_unix_timestamp(1_800_000_030).unwrap();
        let late = AuditQuery { since: Some(since), event: Some("policy.denied".into()), ..AuditQuery::page(0, 100) };
        assert_eq!(store.chained_audit(&late).await.unwrap().len(), 10);
        let newest = store.chained_audit(&AuditQuery { newest: true, ..AuditQuery::page(0, 3) }).await.unwrap();
        assert_eq!(newest.iter().map(|e| e.pos).collect::<Vec<_>>(), [38, 39, 40], "the last three, oldest first");
        let other = AuditQuery { event: Some("share.denied".into()), ..AuditQuery::page(0, 100) };
        assert!(store.chained_audit(&other).await.unwrap().is_empty());

        let digest = AuditDigest {
            at: OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap(),
            first_pos: 1,
            last_pos: 40,
            last_hash: prev,
            prev_signature: None,
            signature: vec![1; 64],
        };
        assert!(store.record_audit_digest(&digest).await.unwrap());
        assert!(!store.record_audit_digest(&AuditDigest { signature: vec![2; 64], ..digest.clone() }).await.unwrap());
        assert_eq!(store.audit_digests().await.unwrap(), [digest]);

        // An alarm firing is claimed once.
        let window = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert!(store.claim_alarm("denials", "192.0.2.1", window).await.unwrap());
        assert!(!store.claim_alarm("denials", "192.0.2.1", window).await.unwrap(), "claimed");
        assert!(store.claim_alarm("denials", "192.0.2.2", window).await.unwrap(), "another group");
        let later = OffsetDateTime::now_utc() + time::Duration::minutes(1);
        assert_eq!(store.purge_alarm_firings(later).await.unwrap(), 2);

        // Retention removes events only up to a digest made before its cutoff.
        store.record_audit(&event(99)).await.unwrap();
        assert_eq!(store.chain_audit(16).await.unwrap(), 1);
        let purged = store.purge_audit(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()).await.unwrap();
        assert_eq!(purged, 40, "the digested events; the 41st stays");
        assert_eq!(store.chained_audit(&AuditQuery::page(0, 10)).await.unwrap()[0].pos, 41);
    }
}
