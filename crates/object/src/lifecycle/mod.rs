//! Lifecycle: a bucket's rules (`rules`: expiration of current versions, of noncurrent ones
//! with newer versions to keep, of lone delete markers, aborts of old multipart uploads, by
//! prefix, tags and size) and the worker that applies them (`worker`).

mod rules;
mod worker;

pub use rules::{
    Action, Expiration, LifecycleConfiguration, LifecycleRule, NoncurrentExpiration, RuleFilter, due_after,
};
pub use worker::{LifecycleSettings, LifecycleWorker, PassReport};
