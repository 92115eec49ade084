//! Group commit for the SQLite store's hottest writes: object records, share consumption and
//! audit events.
//!
//! Callers hand a job to one writer task and wait. The task takes every job that is waiting (up
//! to a batch), runs them in one transaction, commits once (one fsync), and only then answers
//! each caller, so a record or a consumed use is durable before the caller sends a byte. The
//! batch costs a few statements, not one per job: the object records go in one statement over a
//! JSON array, and the uses are taken by one statement per round of distinct links (a link named
//! twice in a batch is taken again in the next round, in arrival order). A batch that is one
//! statement runs without `BEGIN`/`COMMIT`, which are round trips to the connection's thread too.
//!
//! If a batch fails, nothing of it was written, and each of its jobs is run again alone, so a
//! job that cannot succeed (a record for a bucket deleted meanwhile) fails only its own caller,
//! with its own error. If a batch panics, its callers get `Closed` and the writer goes on
//! (`supervise.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::SqlitePool;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::rows::{share_from_row, to_i64, to_ms};
use crate::statements::{UPSERT_OBJECTS_JSON, insert_audit, take_uses_sql};
use crate::supervise::{Supervisor, WriterQueue};
use crate::uses::{UseJob, next_round};
use crate::{AuditEvent, Grantee, MetaError, MetaResult, ObjectRecord, Share, foreign_key_means};

/// Jobs that share one commit, at most.
const MAX_BATCH: usize = 512;

pub(crate) enum Job {
    PutObject { record: Box<ObjectRecord>, reply: oneshot::Sender<MetaResult<()>> },
    Consume { job: UseJob, reply: oneshot::Sender<MetaResult<Option<Share>>> },
    Audit { event: AuditEvent, reply: oneshot::Sender<MetaResult<()>> },
}

pub(crate) struct Batcher {
    pub(crate) queue: WriterQueue<Job>,
}

/// What a job produced inside the transaction, delivered after the commit.
enum Done {
    Written,
    Consumed(Option<Box<Share>>),
    Audited,
}

impl Batcher {
    /// Starts the writer task on the current runtime.
    pub(crate) fn start(writer: SqlitePool) -> Self {
        let queue = WriterQueue::start("sqlite group commit", 4 * MAX_BATCH, |queue, supervisor| {
            write_batches(writer, queue, supervisor)
        });
        Self { queue }
    }

    /// Writes an object record, replacing the key's current one (whose blob a trigger queues
    /// for collection).
    pub(crate) async fn put_object(&self, record: &ObjectRecord) -> MetaResult<()> {
        let (reply, answer) = oneshot::channel();
        self.queue.submit(Job::PutObject { record: Box::new(record.clone()), reply }, answer).await
    }

    pub(crate) async fn consume(&self, job: UseJob) -> MetaResult<Option<Share>> {
        let (reply, answer) = oneshot::channel();
        self.queue.submit(Job::Consume { job, reply }, answer).await
    }

    pub(crate) async fn audit(&self, event: &AuditEvent) -> MetaResult<()> {
        let (reply, answer) = oneshot::channel();
        self.queue.submit(Job::Audit { event: event.clone(), reply }, answer).await
    }
}

async fn write_batches(writer: SqlitePool, mut queue: mpsc::Receiver<Job>, supervisor: Arc<Supervisor>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if !supervisor.run_batch(write_batch(&writer, &mut batch)).await {
            batch.clear();
        }
    }
}

/// Runs a batch and answers its jobs, taking them out of `batch`.
async fn write_batch(writer: &SqlitePool, batch: &mut Vec<Job>) {
    match run_batch(writer, batch).await {
        Ok(done) => batch.drain(..).zip(done).for_each(|(job, done)| answer(job, Ok(done))),
        Err(e) if batch.len() == 1 => answer(batch.remove(0), Err(e)),
        Err(e) => {
            tracing::warn!(error = %e, jobs = batch.len(), "batched write failed; running its jobs one by one");
            for job in batch.drain(..) {
                let alone = run_batch(writer, std::slice::from_ref(&job)).await;
                answer(job, alone.map(|mut done| done.remove(0)));
            }
        }
    }
}

/// Sends a job's outcome to its caller (who may have gone away: then nobody is told).
fn answer(job: Job, outcome: MetaResult<Done>) {
    match job {
        Job::PutObject { reply, .. } => drop(reply.send(outcome.map(|_| ()))),
        Job::Consume { reply, .. } => drop(reply.send(outcome.map(|done| match done {
            Done::Consumed(share) => share.map(|s| *s),
            Done::Written | Done::Audited => unreachable!("a consume job yields what it consumed"),
        }))),
        Job::Audit { reply, .. } => drop(reply.send(outcome.map(|_| ()))),
    }
}

async fn run_batch(writer: &SqlitePool, batch: &[Job]) -> MetaResult<Vec<Done>> {
    let records: Vec<&ObjectRecord> = batch
        .iter()
        .filter_map(|job| match job {
            Job::PutObject { record, .. } => Some(&**record),
            _ => None,
        })
        .collect();
    if records.len() == batch.len() {
        put_objects(writer, &records).await?;
        return Ok(batch.iter().map(|_| Done::Written).collect());
    }
    crate::transaction!(writer, |tx| {
        if !records.is_empty() {
            put_objects(&mut *tx, &records).await?;
        }
        let mut done: Vec<Option<Done>> = batch.iter().map(|_| None).collect();
        let mut pending = Vec::new();
        for (i, job) in batch.iter().enumerate() {
            match job {
                Job::PutObject { .. } => done[i] = Some(Done::Written),
                Job::Audit { event, .. } => {
                    record_audit(&mut tx, event).await?;
                    done[i] = Some(Done::Audited);
                }
                Job::Consume { job, .. } => pending.push((i, job)),
            }
        }
        // One statement per round of distinct links, in arrival order.
        while !pending.is_empty() {
            let round = next_round(&mut pending, |(_, job)| job);
            let jobs: Vec<&UseJob> = round.iter().map(|(_, job)| *job).collect();
            let mut taken = take_uses(&mut tx, &jobs).await?;
            for (i, job) in round {
                done[i] = Some(Done::Consumed(taken.remove(&job.token_hash).map(Box::new)));
            }
        }
        done.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| MetaError::Batch("a job was not run".into()))
    })
}

/// Writes object records in one statement (`UPSERT_OBJECTS_JSON`); a missing bucket fails the
/// foreign key.
async fn put_objects(conn: impl sqlx::SqliteExecutor<'_>, records: &[&ObjectRecord]) -> MetaResult<()> {
    let records = records.iter().map(|record| object_json(record)).collect::<MetaResult<Vec<_>>>()?;
    sqlx::query(UPSERT_OBJECTS_JSON)
        .bind(serde_json::Value::Array(records).to_string())
        .execute(conn)
        .await
        .map_err(|e| foreign_key_means(e, MetaError::NoSuchBucket))?;
    Ok(())
}

/// An object record as one element of `UPSERT_OBJECTS_JSON`'s array; the JSON columns travel as
/// strings, so they are stored exactly as the one-record insert stores them.
fn object_json(record: &ObjectRecord) -> MetaResult<serde_json::Value> {
    let lock = crate::rows::lock_columns(&record.lock);
    Ok(serde_json::json!({
        "b": record.bucket, "k": record.key, "v": record.version_id, "o": record.blob_id,
        "s": to_i64(record.size), "e": record.etag, "m": to_ms(record.last_modified),
        "h": serde_json::to_string(&record.headers)?, "u": serde_json::to_string(&record.user_meta)?,
        "t": serde_json::to_string(&record.tags)?, "p": record.parts_count, "x": record.versioned,
        "z": crate::rows::part_sizes_text(&record.part_sizes)?,
        "lm": lock.0, "lu": lock.1, "lh": lock.2,
    }))
}

/// Takes a use of each of a round's links (all distinct) in one statement: `take_uses_sql!` over
/// a JSON array of the jobs. Returns the shares taken, by token hash.
async fn take_uses(tx: &mut sqlx::SqliteConnection, jobs: &[&UseJob]) -> MetaResult<HashMap<Vec<u8>, Share>> {
    const TAKE_USES: &str = take_uses_sql!(
        from: " FROM (SELECT value ->> 'n' AS now_ms, value ->> 'i' AS ip, value ->> 'u' AS ua,
                   unhex(value ->> 'h') AS token_hash, value ->> 'm' AS method, value ->> 'c' AS address_checked
                 FROM json_each($1)) AS j",
        now_ms: "j.now_ms", ip: "j.ip", ua: "j.ua", token_hash: "j.token_hash", method: "j.method",
        address_checked: "j.address_checked", returning: "*"
    );
    let jobs: Vec<serde_json::Value> = jobs
        .iter()
        .map(|job| {
            serde_json::json!({
                "n": to_ms(job.now), "i": job.to.source_ip, "u": job.to.user_agent,
                "h": hex::encode(&job.token_hash), "m": job.method, "c": job.address_checked,
            })
        })
        .collect();
    let rows = sqlx::query(TAKE_USES).bind(serde_json::Value::Array(jobs).to_string()).fetch_all(&mut *tx).await?;
    rows.iter().map(|row| share_from_row(row).map(|share| (share.token_hash.clone(), share))).collect()
}

/// Takes one use of a link: `take_uses_sql!` over bound parameters (a plain indexed UPDATE;
/// measured faster on SQLite than a join with a one-row job table).
const TAKE_USE: &str = take_uses_sql!(from: "", now_ms: "$1", ip: "$2", ua: "$3", token_hash: "$4", method: "$5",
    address_checked: "$6", returning: "*");

/// Takes a use of a `method` link (and records its grant and audit event).
pub(crate) async fn consume(
    tx: &mut sqlx::SqliteConnection,
    token_hash: &[u8],
    method: &str,
    now: OffsetDateTime,
    to: &Grantee,
    address_checked: bool,
) -> MetaResult<Option<Share>> {
    let row = sqlx::query(TAKE_USE)
        .bind(to_ms(now))
        .bind(&to.source_ip)
        .bind(&to.user_agent)
        .bind(token_hash)
        .bind(method)
        .bind(address_checked)
        .fetch_optional(&mut *tx)
        .await?;
    row.as_ref().map(share_from_row).transpose()
}

async fn record_audit(tx: &mut sqlx::SqliteConnection, event: &AuditEvent) -> MetaResult<()> {
    insert_audit!(event).execute(&mut *tx).await?;
    Ok(())
}
