//! Latchkey's IAM policy engine: parses, validates, evaluates and explains AWS JSON policies.
//!
//! Pure: no I/O, no async. Identity, bucket, trust, boundary and session policies are compiled
//! once by [`parse`] (wildcards pre-lowercased where AWS ignores case, condition keys folded,
//! literals such as dates and CIDRs parsed) and then evaluated per request by [`evaluate`], which
//! allocates nothing unless a statement decides. [`explain`] is the slow path for a policy
//! simulator (with [`reads_as`] to check the values it is given); [`validate`] lists likely
//! mistakes in a policy that parses.
//!
//! ```
//! use std::sync::Arc;
//! use latchkey_policy::*;
//!
//! let policy = parse(
//!     r#"{"Version": "2012-10-17", "Statement": {
//!         "Effect": "Allow", "Action": "s3:GetObject",
//!         "Resource": "arn:aws:s3:::home/${aws:username}/*"}}"#,
//!     PolicyKind::Identity,
//!     MANAGED_POLICY_MAX_BYTES,
//! )?;
//! let attached = [NamedPolicy { name: "home".into(), source: PolicySource::UserManaged, policy: Arc::new(policy) }];
//! let alice = Principal {
//!     kind: PrincipalKind::User,
//!     account: "123456789012".into(),
//!     arn: "arn:aws:iam::123456789012:user/alice".into(),
//!     role_arn: None,
//! };
//! let mut context = RequestContext::new();
//! context.insert_principal_keys(&alice);
//! let set = PolicySet { identity: &attached, ..PolicySet::default() };
//! let request = |resource| Request { principal: &alice, action: "s3:getobject", resource, context: &context };
//!
//! assert_eq!(evaluate(&set, &request("arn:aws:s3:::home/alice/notes.txt")).effect, Effect::Allow);
//! let denied = explain(&set, &request("arn:aws:s3:::home/bob/notes.txt"));
//! assert_eq!(denied.effect, Effect::ImplicitDeny);
//! assert_eq!(denied.reason, "no identity-based policy allows the action");
//! # Ok::<(), PolicyError>(())
//! ```

mod condition;
mod context;
mod document;
mod evaluate;
mod parse;
mod pattern;
mod validate;

pub use condition::{ValueType, reads_as};
pub use context::{Principal, PrincipalKind, RequestContext};
pub use document::{Policy, Statement, StatementEffect, Version};
pub use evaluate::{
    Decision, Effect, Explanation, NamedPolicy, PolicySet, PolicySource, Request, StatementRef, evaluate, explain,
};
pub use parse::{
    MANAGED_POLICY_MAX_BYTES, MAX_POLICY_BYTES, PolicyError, PolicyKind, USER_INLINE_POLICY_MAX_BYTES, parse,
};
pub use validate::{Warning, validate};
