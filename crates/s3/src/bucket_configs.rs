//! Every bucket's settings in memory, bucket policies compiled: what the Authorizer and the
//! envelope decide from, without a database read per request.
//!
//! [`BucketConfigs`] holds one snapshot of the store ([`BucketConfigStore`]), rebuilt whole when
//! the store announces a change (`maintain`: this process's writes at once, other replicas'
//! through PostgreSQL `LISTEN latchkey_bucket_config`), and by the operation that wrote before
//! it answers, so that its change applies to the next request here. A snapshot older than the
//! one in place (by the store's generation counter) never replaces it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use latchkey_meta::{BucketConfig, BucketConfigStore, BucketSetting, MetaError, PublicAccessBlock, Tag};
use latchkey_policy::{MAX_POLICY_BYTES, NamedPolicy, PolicyKind, PolicySource};

use crate::cors::CorsRule;
use crate::logging::LoggingTarget;

/// One bucket's settings, with its policy compiled.
#[derive(Debug)]
pub struct BucketRules {
    pub config: BucketConfig,
    pub policy: CompiledPolicy,
    /// The CORS rules, read; `None` without a configuration (or with one that no longer reads:
    /// then no cross-origin request is admitted).
    cors: Option<Vec<CorsRule>>,
    /// Where the server access log goes; `None`: logging off (or a target that no longer reads).
    logging: Option<LoggingTarget>,
}

/// A bucket's policy as the Authorizer uses it.
#[derive(Debug)]
pub enum CompiledPolicy {
    None,
    Compiled {
        policy: NamedPolicy,
        public: bool,
    },
    /// The stored document no longer compiles (a newer server's policy, a damaged row): the
    /// bucket refuses every request but replacing or deleting its policy, since ignoring the
    /// policy could drop a Deny.
    Broken,
}

impl BucketRules {
    fn build(bucket: &str, config: BucketConfig) -> BucketRules {
        let policy = match &config.policy {
            None => CompiledPolicy::None,
            Some(document) => match latchkey_policy::parse(document, PolicyKind::Resource, MAX_POLICY_BYTES) {
                Ok(policy) => CompiledPolicy::Compiled {
                    public: policy.is_public(),
                    policy: NamedPolicy {
                        name: format!("bucket policy of {bucket}"),
                        source: PolicySource::Bucket,
                        policy: Arc::new(policy),
                    },
                },
                Err(e) => {
                    tracing::error!(bucket, error = %e, "a stored bucket policy does not compile; the bucket refuses requests");
                    CompiledPolicy::Broken
                }
            },
        };
        let cors = config.cors.as_deref().and_then(|json| match serde_json::from_str(json) {
            Ok(rules) => Some(rules),
            Err(e) => {
                tracing::error!(bucket, error = %e, "stored CORS rules do not read; no cross-origin request is admitted");
                None
            }
        });
        let logging = config.logging.as_deref().and_then(|json| match serde_json::from_str(json) {
            Ok(target) => Some(target),
            Err(e) => {
                tracing::error!(bucket, error = %e, "a stored logging target does not read; the bucket is not logged");
                None
            }
        });
        BucketRules { config, policy, cors, logging }
    }

    /// The bucket's CORS rules, if it has a configuration.
    pub fn cors(&self) -> Option<&[CorsRule]> {
        self.cors.as_deref()
    }

    /// Where the bucket's server access log goes, if it is logged.
    pub fn logging(&self) -> Option<&LoggingTarget> {
        self.logging.as_ref()
    }

    /// Whether the policy is public (see `latchkey_policy::Policy::is_public`).
    pub fn is_public(&self) -> bool {
        matches!(self.policy, CompiledPolicy::Compiled { public: true, .. })
    }

    /// RestrictPublicBuckets: only the account's own principals get what the policy grants, so
    /// an anonymous caller gets nothing, whether or not the policy counts as public (a policy
    /// judged not public must not open a gap the flag closes).
    fn restricted(&self) -> bool {
        self.config.public_access_block.is_some_and(|b| b.restrict_public_buckets)
    }

    /// The resource policy a request is evaluated with: for an anonymous caller, none while
    /// RestrictPublicBuckets is set.
    pub fn policy_for(&self, anonymous: bool) -> Option<&NamedPolicy> {
        match &self.policy {
            CompiledPolicy::Compiled { policy, .. } if !(anonymous && self.restricted()) => Some(policy),
            _ => None,
        }
    }

    /// Whether an unsigned request could be allowed at all: some statement grants to everyone
    /// and RestrictPublicBuckets does not hold it back.
    pub fn admits_anonymous(&self) -> bool {
        self.policy_for(true).is_some_and(|p| p.policy.may_grant_anonymous())
    }

    /// Whether the bucket's policy tests the tags or sensitivity of the object a request acts on.
    pub fn reads_object_state(&self) -> bool {
        match &self.policy {
            CompiledPolicy::Compiled { policy, .. } => {
                latchkey_identity::directory::policy_reads_object_state(&policy.policy)
            }
            _ => false,
        }
    }

    pub fn tags(&self) -> &[Tag] {
        &self.config.tags
    }
}

/// A bucket without a stored row.
static DEFAULT_RULES: LazyLock<Arc<BucketRules>> = LazyLock::new(|| {
    Arc::new(BucketRules { config: BucketConfig::default(), policy: CompiledPolicy::None, cors: None, logging: None })
});

#[derive(Default)]
struct Snapshot {
    generation: i64,
    buckets: HashMap<String, Arc<BucketRules>>,
    /// Whether some bucket is logged (requests then note what its log line needs).
    logging: bool,
}

pub struct BucketConfigs {
    store: Arc<dyn BucketConfigStore>,
    current: RwLock<Arc<Snapshot>>,
}

impl BucketConfigs {
    /// Loads every bucket's settings.
    pub async fn open(store: Arc<dyn BucketConfigStore>) -> Result<Arc<BucketConfigs>, MetaError> {
        let configs = Arc::new(BucketConfigs { store, current: RwLock::new(Arc::new(Snapshot::default())) });
        configs.reload().await?;
        Ok(configs)
    }

    /// Replaces one setting of `bucket` in the store, then reloads, so that the change applies
    /// to this process's next request. A failed reload is logged: the write stands, and the
    /// change still arrives through `maintain`.
    pub async fn set(&self, bucket: &str, setting: BucketSetting) -> Result<(), MetaError> {
        self.store.set_bucket_setting(bucket, &setting).await?;
        self.reload_after_write().await;
        Ok(())
    }

    /// Writes a public `policy` for `bucket` if its public access block is still `judged_with`
    /// (see `BucketConfigStore::set_public_policy`), then reloads; `false` when it was not.
    pub async fn set_public_policy(
        &self,
        bucket: &str,
        policy: &str,
        judged_with: Option<PublicAccessBlock>,
    ) -> Result<bool, MetaError> {
        let written = self.store.set_public_policy(bucket, policy, judged_with).await?;
        self.reload_after_write().await;
        Ok(written)
    }

    /// The settings of `bucket` (the defaults for a bucket without stored settings, or none).
    pub fn get(&self, bucket: &str) -> Arc<BucketRules> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        current.buckets.get(bucket).cloned().unwrap_or_else(|| DEFAULT_RULES.clone())
    }

    /// Whether any bucket has its server access log on.
    pub fn any_logging(&self) -> bool {
        self.current.read().unwrap_or_else(|p| p.into_inner()).logging
    }

    /// Reads the store and replaces the snapshot (unless a newer one is in place already).
    pub async fn reload(&self) -> Result<(), MetaError> {
        let loaded = self.store.load_bucket_configs().await?;
        let buckets: HashMap<String, Arc<BucketRules>> = loaded
            .configs
            .into_iter()
            .map(|(bucket, config)| {
                let rules = Arc::new(BucketRules::build(&bucket, config));
                (bucket, rules)
            })
            .collect();
        let logging = buckets.values().any(|rules| rules.logging.is_some());
        let built = Arc::new(Snapshot { generation: loaded.generation, buckets, logging });
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if built.generation >= current.generation {
            *current = built;
        }
        Ok(())
    }

    /// Reloads after a write of this process (a setting, a bucket's deletion), so that the change
    /// applies to its next request; a failure is logged, and the change still arrives through
    /// `maintain`.
    pub async fn reload_after_write(&self) {
        if let Err(e) = self.reload().await {
            tracing::error!(error = %e, "cannot reload bucket settings after a change");
        }
    }

    /// Keeps the snapshot current until `shutdown` resolves.
    pub async fn maintain(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        follow_changes(self.store.config_changes(), shutdown, || async {
            if let Err(e) = self.reload().await {
                tracing::error!(error = %e, "cannot reload bucket settings");
            }
        })
        .await;
    }
}

/// Runs `reload` on every change a store announces through `changes`, until `shutdown`
/// resolves or the store is gone.
pub(crate) async fn follow_changes<F: std::future::Future<Output = ()>>(
    mut changes: tokio::sync::watch::Receiver<u64>,
    shutdown: impl std::future::Future<Output = ()>,
    reload: impl Fn() -> F,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                changes.borrow_and_update();
                reload().await;
            }
            () = &mut shutdown => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_meta::PublicAccessBlock;

    fn rules(policy: &str, block: Option<PublicAccessBlock>) -> BucketRules {
        let config =
            BucketConfig { policy: Some(policy.to_owned()), public_access_block: block, ..BucketConfig::default() };
        BucketRules::build("b", config)
    }

    const PUBLIC_READ: &str = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*",
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}}"#;

    #[test]
    fn restrict_public_buckets_withholds_a_public_policy_from_anonymous_callers_only() {
        let open = rules(PUBLIC_READ, None);
        assert!(open.is_public() && open.admits_anonymous());
        assert!(open.policy_for(true).is_some());
        let restricted = rules(
            PUBLIC_READ,
            Some(PublicAccessBlock { restrict_public_buckets: true, ..PublicAccessBlock::all(false) }),
        );
        assert!(!restricted.admits_anonymous());
        assert!(restricted.policy_for(true).is_none());
        assert!(restricted.policy_for(false).is_some(), "signed callers still get the policy");
    }

    #[test]
    fn a_policy_that_does_not_compile_is_broken_not_ignored() {
        let broken = rules("{\"Statement\": 1}", None);
        assert!(matches!(broken.policy, CompiledPolicy::Broken));
        assert!(broken.policy_for(false).is_none() && !broken.admits_anonymous());
    }
}
