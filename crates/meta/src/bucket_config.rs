//! Per-bucket settings behind [`BucketConfigStore`]: the bucket policy (JSON as the client sent
//! it), the public access block, the bucket's tags, its CORS rules and where its server access
//! log goes (JSON, as the S3 front accepted them).
//!
//! The row goes with its bucket (a foreign key with `ON DELETE CASCADE`). A bucket without a row
//! reads as [`BucketConfig::default`]: no policy, no tags, every public access flag on, so that a
//! bucket whose creation was cut short before its settings were written is not public. Every
//! change, a bucket's deletion included, bumps a generation counter in the same transaction (by
//! trigger); on PostgreSQL the bump is a `NOTIFY` on `latchkey_bucket_config`, so that every
//! replica reloads its in-memory copy ([`BucketConfigStore::config_changes`]).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{MetaResult, Tag};

/// S3's PublicAccessBlockConfiguration: the four flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// Every flag set to `on`.
    pub fn all(on: bool) -> PublicAccessBlock {
        PublicAccessBlock {
            block_public_acls: on,
            ignore_public_acls: on,
            block_public_policy: on,
            restrict_public_buckets: on,
        }
    }
}

/// One bucket's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketConfig {
    /// The bucket policy document, as accepted.
    pub policy: Option<String>,
    /// `None` once DeletePublicAccessBlock removed it.
    pub public_access_block: Option<PublicAccessBlock>,
    pub tags: Vec<Tag>,
    /// The CORS rules; `None`: no CORS configuration (no cross-origin request is admitted).
    pub cors: Option<String>,
    /// Where the server access log goes (PutBucketLogging); `None`: logging off.
    pub logging: Option<String>,
    /// The lifecycle rules (PutBucketLifecycleConfiguration); `None`: none.
    pub lifecycle: Option<String>,
}

impl Default for BucketConfig {
    fn default() -> Self {
        BucketConfig {
            policy: None,
            public_access_block: Some(PublicAccessBlock::all(true)),
            tags: Vec::new(),
            cors: None,
            logging: None,
            lifecycle: None,
        }
    }
}

/// One setting to replace; the others are left as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketSetting {
    Policy(Option<String>),
    PublicAccessBlock(Option<PublicAccessBlock>),
    Tags(Vec<Tag>),
    Cors(Option<String>),
    Logging(Option<String>),
    Lifecycle(Option<String>),
}

/// Every bucket's settings as of one moment.
#[derive(Debug, Clone, Default)]
pub struct BucketConfigSnapshot {
    pub generation: i64,
    /// Buckets with a row; every other bucket has [`BucketConfig::default`].
    pub configs: Vec<(String, BucketConfig)>,
}

#[async_trait]
pub trait BucketConfigStore: Send + Sync + 'static {
    /// Every bucket's settings, read in one transaction.
    async fn load_bucket_configs(&self) -> MetaResult<BucketConfigSnapshot>;
    /// Replaces one setting of `bucket`; `MetaError::NoSuchBucket` when there is no such bucket.
    async fn set_bucket_setting(&self, bucket: &str, setting: &BucketSetting) -> MetaResult<()>;
    /// Replaces the policy of `bucket` with a public `policy` only if its public access block is
    /// still `judged_with`, the block the policy was allowed under (BlockPublicPolicy can be set
    /// at the same moment on another replica); `false` otherwise, and for a bucket without a
    /// row (whose default block refuses public policies).
    async fn set_public_policy(
        &self,
        bucket: &str,
        policy: &str,
        judged_with: Option<PublicAccessBlock>,
    ) -> MetaResult<bool>;
    /// Bumped by every change to any bucket's settings or a bucket's deletion, on any replica
    /// (this process's own as soon as they commit; other replicas' through PostgreSQL
    /// notifications, and after a lost notification connection).
    fn config_changes(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// The upsert that replaces `setting`, and its binds after the bucket: a new row's policy,
/// public access block, tags, CORS rules and logging target (the defaults with `setting` applied). Only the
/// setting's own column is updated on an existing row, so concurrent changes of different
/// settings all stand.
pub(crate) fn upsert(setting: &BucketSetting) -> MetaResult<(&'static str, [Option<String>; 6])> {
    let mut config = BucketConfig::default();
    let statement = match setting {
        BucketSetting::Policy(policy) => {
            config.policy = policy.clone();
            "INSERT INTO bucket_config (bucket, policy, public_access_block, tags, cors, logging, lifecycle)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (bucket) DO UPDATE SET policy = excluded.policy"
        }
        BucketSetting::PublicAccessBlock(block) => {
            config.public_access_block = *block;
            "INSERT INTO bucket_config (bucket, policy, public_access_block, tags, cors, logging, lifecycle)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (bucket) DO UPDATE SET public_access_block = excluded.public_access_block"
        }
        BucketSetting::Tags(tags) => {
            config.tags = tags.clone();
            "INSERT INTO bucket_config (bucket, policy, public_access_block, tags, cors, logging, lifecycle)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (bucket) DO UPDATE SET tags = excluded.tags"
        }
        BucketSetting::Cors(cors) => {
            config.cors = cors.clone();
            "INSERT INTO bucket_config (bucket, policy, public_access_block, tags, cors, logging, lifecycle)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (bucket) DO UPDATE SET cors = excluded.cors"
        }
        BucketSetting::Logging(logging) => {
            config.logging = logging.clone();
            "INSERT INTO bucket_config (bucket, policy, public_access_block, tags, cors, logging, lifecycle)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (bucket) DO UPDATE SET logging = excluded.logging"
        }
        BucketSetting::Lifecycle(lifecycle) => {
            config.lifecycle = lifecycle.clone();
            "INSERT INTO bucket_config (bucket, policy, public_access_block, tags, cors, logging, lifecycle)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (bucket) DO UPDATE SET lifecycle = excluded.lifecycle"
        }
    };
    let block = config.public_access_block.as_ref().map(serde_json::to_string).transpose()?;
    let tags = Some(serde_json::to_string(&config.tags)?);
    Ok((statement, [config.policy, block, tags, config.cors, config.logging, config.lifecycle]))
}

/// A row as a bucket's name and settings.
pub(crate) fn config_from_row(row: &impl crate::rows::Columns) -> MetaResult<(String, BucketConfig)> {
    let public_access_block = row.opt_text("public_access_block")?.map(|j| serde_json::from_str(&j)).transpose()?;
    let config = BucketConfig {
        policy: row.opt_text("policy")?,
        public_access_block,
        tags: serde_json::from_str(&row.text("tags")?)?,
        cors: row.opt_text("cors")?,
        logging: row.opt_text("logging")?,
        lifecycle: row.opt_text("lifecycle")?,
    };
    Ok((row.text("bucket")?, config))
}

/// Implements [`BucketConfigStore`] for a SQL store from its writer and reader pools and its
/// `config_changes` sender field. One text per statement serves both backends.
macro_rules! bucket_config_store {
    ($store:ty, writer: $writer:ident, reader: $reader:ident, changes: $changes:ident) => {
        #[async_trait::async_trait]
        impl $crate::bucket_config::BucketConfigStore for $store {
            async fn load_bucket_configs(&self) -> $crate::MetaResult<$crate::bucket_config::BucketConfigSnapshot> {
                $crate::transaction!(self.$reader, |tx| {
                    let generation: i64 =
                        sqlx::query_scalar("SELECT generation FROM bucket_config_generation WHERE id = 1")
                            .fetch_one(&mut *tx)
                            .await?;
                    let rows = sqlx::query(
                        "SELECT bucket, policy, public_access_block, tags, cors, logging, lifecycle FROM bucket_config",
                    )
                    .fetch_all(&mut *tx)
                    .await?;
                    let configs =
                        rows.iter().map($crate::bucket_config::config_from_row).collect::<$crate::MetaResult<_>>()?;
                    Ok($crate::bucket_config::BucketConfigSnapshot { generation, configs })
                })
            }

            async fn set_bucket_setting(
                &self,
                bucket: &str,
                setting: &$crate::bucket_config::BucketSetting,
            ) -> $crate::MetaResult<()> {
                let (statement, [policy, block, tags, cors, logging, lifecycle]) =
                    $crate::bucket_config::upsert(setting)?;
                let query = sqlx::query(statement)
                    .bind(bucket)
                    .bind(policy)
                    .bind(block)
                    .bind(tags)
                    .bind(cors)
                    .bind(logging)
                    .bind(lifecycle);
                query
                    .execute(&self.$writer)
                    .await
                    .map_err(|e| $crate::foreign_key_means(e, $crate::MetaError::NoSuchBucket))?;
                self.$changes.send_modify(|g| *g += 1);
                Ok(())
            }

            async fn set_public_policy(
                &self,
                bucket: &str,
                policy: &str,
                judged_with: Option<$crate::bucket_config::PublicAccessBlock>,
            ) -> $crate::MetaResult<bool> {
                let block = judged_with.as_ref().map(serde_json::to_string).transpose()?;
                let done = sqlx::query(
                    "UPDATE bucket_config SET policy = $2
                     WHERE bucket = $1 AND public_access_block IS NOT DISTINCT FROM $3",
                )
                .bind(bucket)
                .bind(policy)
                .bind(block)
                .execute(&self.$writer)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                self.$changes.send_modify(|g| *g += 1);
                Ok(true)
            }

            fn config_changes(&self) -> tokio::sync::watch::Receiver<u64> {
                self.$changes.subscribe()
            }
        }
    };
}
pub(crate) use bucket_config_store;
