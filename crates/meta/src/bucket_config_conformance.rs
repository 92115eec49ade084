//! Behaviour every `BucketConfigStore` must show, run against each backend by
//! `bucket_config_conformance_tests!`. Each check gets a fresh, empty store.

use std::sync::Arc;

use crate::{BucketConfig, BucketConfigStore, BucketSetting, MetaError, MetaStore, PublicAccessBlock, Tag};

async fn create(store: &dyn MetaStore, name: &str) {
    let bucket = crate::conformance::plain_bucket(name);
    store.create_bucket(&bucket).await.unwrap();
}

async fn config_of(store: &dyn BucketConfigStore, bucket: &str) -> Option<BucketConfig> {
    let snapshot = store.load_bucket_configs().await.unwrap();
    snapshot.configs.into_iter().find(|(name, _)| name == bucket).map(|(_, config)| config)
}

pub async fn each_setting_is_replaced_alone_and_announced<S: MetaStore + BucketConfigStore>(store: Arc<S>) {
    create(store.as_ref(), "b").await;
    assert_eq!(config_of(store.as_ref(), "b").await, None, "a new bucket has no row");
    let mut changes = store.config_changes();
    let before = store.load_bucket_configs().await.unwrap().generation;

    let policy = r#"{"Statement":[]}"#.to_owned();
    store.set_bucket_setting("b", &BucketSetting::Policy(Some(policy.clone()))).await.unwrap();
    assert!(changes.has_changed().unwrap(), "a settings write is announced");
    changes.borrow_and_update();
    // The row a first setting creates has the defaults for the others: every flag on.
    let expected = BucketConfig { policy: Some(policy.clone()), ..BucketConfig::default() };
    assert_eq!(config_of(store.as_ref(), "b").await, Some(expected));

    let tags = vec![Tag { key: "Department".into(), value: "Finance".into() }];
    store.set_bucket_setting("b", &BucketSetting::Tags(tags.clone())).await.unwrap();
    store.set_bucket_setting("b", &BucketSetting::PublicAccessBlock(None)).await.unwrap();
    let config = config_of(store.as_ref(), "b").await.unwrap();
    let expected =
        BucketConfig { policy: Some(policy), public_access_block: None, tags: tags.clone(), ..BucketConfig::default() };
    assert_eq!(config, expected);

    let block = PublicAccessBlock { restrict_public_buckets: true, ..PublicAccessBlock::all(false) };
    store.set_bucket_setting("b", &BucketSetting::PublicAccessBlock(Some(block))).await.unwrap();
    store.set_bucket_setting("b", &BucketSetting::Policy(None)).await.unwrap();
    let cors = r#"[{"allowed_origins":["*"]}]"#.to_owned();
    store.set_bucket_setting("b", &BucketSetting::Cors(Some(cors.clone()))).await.unwrap();
    let logging = r#"{"target_bucket":"b","target_prefix":"logs/"}"#.to_owned();
    store.set_bucket_setting("b", &BucketSetting::Logging(Some(logging.clone()))).await.unwrap();
    let lifecycle = r#"{"rules":[]}"#.to_owned();
    store.set_bucket_setting("b", &BucketSetting::Lifecycle(Some(lifecycle.clone()))).await.unwrap();
    let config = config_of(store.as_ref(), "b").await.unwrap();
    let expected = BucketConfig {
        policy: None,
        public_access_block: Some(block),
        tags,
        cors: Some(cors),
        logging: Some(logging),
        lifecycle: Some(lifecycle),
    };
    assert_eq!(config, expected);
    store.set_bucket_setting("b", &BucketSetting::Cors(None)).await.unwrap();
    store.set_bucket_setting("b", &BucketSetting::Logging(None)).await.unwrap();
    store.set_bucket_setting("b", &BucketSetting::Lifecycle(None)).await.unwrap();
    let config = config_of(store.as_ref(), "b").await.unwrap();
    assert_eq!((config.cors, config.logging, config.lifecycle), (None, None, None));
    let after = store.load_bucket_configs().await.unwrap().generation;
    assert!(after >= before + 11, "every write bumps the generation: {before} then {after}");
}

pub async fn settings_need_a_bucket_and_go_with_it<S: MetaStore + BucketConfigStore>(store: Arc<S>) {
    let refused = store.set_bucket_setting("nope", &BucketSetting::Tags(Vec::new())).await;
    assert!(matches!(refused, Err(MetaError::NoSuchBucket)), "{refused:?}");
    create(store.as_ref(), "b").await;
    create(store.as_ref(), "c").await;
    store.set_bucket_setting("b", &BucketSetting::Policy(Some("{}".into()))).await.unwrap();
    store.set_bucket_setting("c", &BucketSetting::Policy(Some("{}".into()))).await.unwrap();
    let before = store.load_bucket_configs().await.unwrap().generation;
    let mut changes = store.config_changes();
    changes.borrow_and_update();
    store.delete_bucket("b").await.unwrap();
    assert!(changes.has_changed().unwrap(), "a bucket's deletion is announced");
    let snapshot = store.load_bucket_configs().await.unwrap();
    assert!(snapshot.generation > before, "the deletion bumps the generation");
    let names: Vec<_> = snapshot.configs.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["c"]);
    // A bucket created again under the name starts over.
    create(store.as_ref(), "b").await;
    assert_eq!(config_of(store.as_ref(), "b").await, None);
}

pub async fn a_public_policy_is_written_only_under_the_block_it_was_judged_with<S: MetaStore + BucketConfigStore>(
    store: Arc<S>,
) {
    let public = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#;
    create(store.as_ref(), "b").await;
    assert!(!store.set_public_policy("b", public, None).await.unwrap(), "no row: every flag is on");
    store.set_bucket_setting("b", &BucketSetting::PublicAccessBlock(None)).await.unwrap();
    let open = PublicAccessBlock::all(false);
    assert!(!store.set_public_policy("b", public, Some(open)).await.unwrap(), "judged with another block");
    assert!(store.set_public_policy("b", public, None).await.unwrap());
    assert_eq!(config_of(store.as_ref(), "b").await.unwrap().policy.as_deref(), Some(public));
    // BlockPublicPolicy set meanwhile: a policy judged before it is not written.
    store.set_bucket_setting("b", &BucketSetting::Policy(None)).await.unwrap();
    store.set_bucket_setting("b", &BucketSetting::PublicAccessBlock(Some(open))).await.unwrap();
    let blocking = PublicAccessBlock { block_public_policy: true, ..open };
    store.set_bucket_setting("b", &BucketSetting::PublicAccessBlock(Some(blocking))).await.unwrap();
    assert!(!store.set_public_policy("b", public, Some(open)).await.unwrap());
    assert_eq!(config_of(store.as_ref(), "b").await.unwrap().policy, None);
}

macro_rules! bucket_config_conformance_tests {
    ($open:expr, $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                if let Some((store, _guard)) = $open.await {
                    crate::bucket_config_conformance::$name(store).await;
                }
            }
        )*
    };
    ($open:expr) => {
        bucket_config_conformance_tests!(
            $open,
            each_setting_is_replaced_alone_and_announced,
            settings_need_a_bucket_and_go_with_it,
            a_public_policy_is_written_only_under_the_block_it_was_judged_with,
        );
    };
}
pub(crate) use bucket_config_conformance_tests;
