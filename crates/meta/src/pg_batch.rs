//! Group redemption for the PostgreSQL store. Download redemptions that wait at the same moment
//! are taken by one statement over arrays of jobs (`TAKE_USES`) and one commit, instead of a
//! statement, a round trip and a commit each; the caller is answered after the commit, so a use
//! is still durable before its first byte is sent.
//!
//! A statement updates a row at most once, so a link named twice in one batch is taken in
//! order, in a second round (`uses::next_round`), unless the first round took its last use: then
//! its repeats are refused without a statement (`uses::take_spent`). Rows from several
//! replicas' batches lock in no fixed order; if PostgreSQL breaks a deadlock by failing a batch,
//! its jobs are retried one by one. If a round panics, its callers get `Closed` and the task
//! goes on (`supervise.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sqlx::PgPool;
use sqlx::postgres::PgRow;
use tokio::sync::{mpsc, oneshot};

use crate::rows::{Columns, Prefixed, object_from_row, share_from_row, to_ms};
use crate::statements::take_uses_sql;
use crate::supervise::{Supervisor, WriterQueue};
use crate::uses::{UseJob, next_round, take_spent};
use crate::{GrantedUse, MetaError, MetaResult};

/// Jobs in one statement, at most.
const MAX_BATCH: usize = 256;

/// `take_uses_sql!` over arrays of jobs, returning with each share the object record its version
/// check matched (as `object_*` columns), so that a download needs no second query.
const TAKE_USES: &str = concat!(
    "WITH taken AS (",
    take_uses_sql!(
        from: " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::bool[])
                 AS j(now_ms, ip, ua, token_hash, method, address_checked)",
        now_ms: "j.now_ms", ip: "j.ip", ua: "j.ua", token_hash: "j.token_hash", method: "j.method",
        address_checked: "j.address_checked", returning: "shares.*"
    ),
    ") SELECT t.*, t.bucket AS object_bucket, t.key AS object_key, o.version_id AS object_version_id,
         o.blob_id AS object_blob_id, o.size AS object_size, o.etag AS object_etag,
         o.modified_ms AS object_modified_ms, o.headers AS object_headers, o.user_meta AS object_user_meta,
         o.tags AS object_tags, o.parts_count AS object_parts_count, o.sensitivity AS object_sensitivity,
         o.scan_partial AS object_scan_partial, o.sensitivity_tagged AS object_sensitivity_tagged,
         o.quarantined AS object_quarantined, o.versioned AS object_versioned, o.part_sizes AS object_part_sizes,
         o.lock_mode AS object_lock_mode, o.lock_until_ms AS object_lock_until_ms, o.legal_hold AS object_legal_hold
       FROM taken t
       LEFT JOIN objects o ON o.bucket = t.bucket AND o.key = t.key AND o.version_id = t.version_id"
);

/// Takes a use of each job's link (distinct links) in one statement; returns what was granted,
/// by token hash.
pub(crate) async fn take_uses(
    conn: impl sqlx::PgExecutor<'_>,
    jobs: &[&UseJob],
) -> MetaResult<HashMap<Vec<u8>, GrantedUse>> {
    let rows = sqlx::query(TAKE_USES)
        .bind(jobs.iter().map(|j| to_ms(j.now)).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.to.source_ip.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.to.user_agent.as_deref()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.token_hash.as_slice()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.method).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.address_checked).collect::<Vec<_>>())
        .fetch_all(conn)
        .await?;
    rows.iter().map(granted_from_row).collect()
}

fn granted_from_row(row: &PgRow) -> MetaResult<(Vec<u8>, GrantedUse)> {
    let share = share_from_row(row)?;
    let object = match row.opt_text("object_blob_id")? {
        Some(_) => Some(object_from_row(&Prefixed(row, "object_"))?),
        None => None,
    };
    Ok((share.token_hash.clone(), GrantedUse { share, object }))
}

type Reply = oneshot::Sender<MetaResult<Option<GrantedUse>>>;

pub(crate) struct PgBatcher {
    pub(crate) queue: WriterQueue<(UseJob, Reply)>,
}

impl PgBatcher {
    /// Starts the batching task on the current runtime.
    pub(crate) fn start(pool: PgPool) -> Self {
        let queue = WriterQueue::start("postgres redemption batcher", 4 * MAX_BATCH, |queue, supervisor| {
            take_batches(pool, queue, supervisor)
        });
        Self { queue }
    }

    pub(crate) async fn take(&self, job: UseJob) -> MetaResult<Option<GrantedUse>> {
        let (reply, answer) = oneshot::channel();
        self.queue.submit((job, reply), answer).await
    }
}

async fn take_batches(pool: PgPool, mut queue: mpsc::Receiver<(UseJob, Reply)>, supervisor: Arc<Supervisor>) {
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut waiting, MAX_BATCH).await > 0 {
        while !waiting.is_empty() {
            let round = next_round(&mut waiting, |(job, _)| job);
            let mut spent = HashSet::new();
            supervisor.run_batch(async { spent = take_round(&pool, round).await }).await;
            for (_, reply) in take_spent(&mut waiting, &spent, |(job, _)| job) {
                drop(reply.send(Ok(None)));
            }
        }
    }
}

/// Runs one round (distinct links) and answers its callers; returns the links whose last use
/// it took, whose repeats later in the batch need no statement to be refused.
async fn take_round(pool: &PgPool, round: Vec<(UseJob, Reply)>) -> HashSet<Vec<u8>> {
    let jobs: Vec<&UseJob> = round.iter().map(|(job, _)| job).collect();
    match take_uses(pool, &jobs).await {
        Ok(mut granted) => {
            let spent = granted.iter().filter(|(_, g)| g.share.uses_left == 0).map(|(hash, _)| hash.clone()).collect();
            for (job, reply) in round {
                drop(reply.send(Ok(granted.remove(&job.token_hash))));
            }
            spent
        }
        Err(MetaError::Backend(sqlx::Error::Database(e)))
            if round.len() > 1 && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
        {
            // A deadlock with another replica's batch: nothing of this one was written.
            for (job, reply) in round {
                let granted = take_uses(pool, &[&job]).await.map(|mut g| g.remove(&job.token_hash));
                drop(reply.send(granted));
            }
            HashSet::new()
        }
        Err(e) => {
            let message = e.to_string();
            for (_, reply) in round {
                drop(reply.send(Err(MetaError::Batch(message.clone()))));
            }
            HashSet::new()
        }
    }
}
