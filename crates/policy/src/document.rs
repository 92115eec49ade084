//! The compiled policy document: [`Policy`] and its [`Statement`]s, ready to evaluate.

use crate::condition::Condition;
use crate::pattern::Pattern;

/// The policy language version. A document without `Version` gets 2008-10-17 semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `2008-10-17`: `${...}` is literal text.
    V2008_10_17,
    /// `2012-10-17`: policy variables are substituted.
    V2012_10_17,
}

/// A parsed, validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `None` when the document has no `Version` element.
    pub version: Option<Version>,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

impl Policy {
    /// Whether `${...}` is a policy variable in this document.
    pub fn allows_variables(&self) -> bool {
        self.version == Some(Version::V2012_10_17)
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementEffect {
    Allow,
    Deny,
}

/// One statement. Its elements are compiled: patterns lowercased where AWS compares without
/// case, condition keys folded, literals parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: StatementEffect,
    pub(crate) actions: PatternList,
    /// `None` only in trust policies, which may leave Resource out (the role is the resource).
    pub(crate) resources: Option<PatternList>,
    /// `None` in identity, boundary and session policies.
    pub(crate) principals: Option<PrincipalList>,
    /// All must hold (AND across operators and keys).
    pub(crate) conditions: Vec<Condition>,
}

impl Statement {
    /// Whether the statement uses `NotAction`.
    pub fn has_not_action(&self) -> bool {
        self.actions.negated
    }

    /// Whether the statement uses `NotResource`.
    pub fn has_not_resource(&self) -> bool {
        self.resources.as_ref().is_some_and(|r| r.negated)
    }

    /// Whether the statement uses `NotPrincipal`.
    pub fn has_not_principal(&self) -> bool {
        self.principals.as_ref().is_some_and(|p| p.negated)
    }

    /// The Action (or NotAction) patterns as written.
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.actions.patterns.iter().map(Pattern::as_str)
    }

    /// The Resource (or NotResource) patterns as written; empty when the statement has neither.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.resources.iter().flat_map(|r| r.patterns.iter().map(Pattern::as_str))
    }
}

/// `Action`/`NotAction` or `Resource`/`NotResource`: patterns, any of which may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternList {
    /// `NotAction`/`NotResource`: the statement applies to everything the patterns do not match.
    pub negated: bool,
    pub patterns: Vec<Pattern>,
}

impl PatternList {
    /// Whether the statement covers `input` (applying `Not...` negation).
    pub fn covers(&self, input: &str, ctx: &crate::RequestContext) -> bool {
        self.patterns.iter().any(|p| p.is_match_all() || p.matches(input, ctx)) != self.negated
    }
}

/// `Principal`/`NotPrincipal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrincipalList {
    pub negated: bool,
    pub entries: Vec<PrincipalEntry>,
}

/// One principal named by a resource or trust policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalEntry {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous included.
    Everyone,
    /// An account id or `arn:aws:iam::ACCOUNT:root`.
    Account(String),
    /// A user, role or assumed-role ARN.
    Arn(String),
    /// `Service`, `Federated` or `CanonicalUser`: parsed, but no Latchkey principal is one.
    Foreign,
}

/// Condition keys that tie a statement to known callers or networks, so that a grant to `*`
/// guarded by one is not a grant to the public. Folded to lowercase, as keys are stored.
const NARROWING_KEYS: &[&str] = &[
    "aws:sourceip",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principalorgid",
    "aws:userid",
    "aws:username",
];

impl Policy {
    /// Whether the policy is public in S3's sense (GetBucketPolicyStatus `IsPublic`, and what
    /// BlockPublicPolicy and RestrictPublicBuckets act on): some `Allow` statement names
    /// everyone (`"*"`, `{"AWS": "*"}`, or any `NotPrincipal`) and none of its conditions ties
    /// the callers to fixed values of a key that names them or their network
    /// ([`NARROWING_KEYS`]: source address, VPC, account, ARN, organisation, user). A condition
    /// ties them only if it is a positive test of fixed values (`Condition::fixes_values`):
    /// `StringNotEquals`, `...IfExists`, `Null`, wildcards and address blocks wider than /8 do not.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == StatementEffect::Allow
                && s.grants_everyone()
                && !s.conditions.iter().any(|c| NARROWING_KEYS.contains(&&*c.key) && c.fixes_values())
        })
    }

    /// Whether some statement reads a key that starts with `prefix` (lowercase, as keys are
    /// folded), as a condition's key or in a policy variable (`${s3:ExistingObjectTag/team}` in
    /// a Resource or a condition value): what lets a caller skip gathering values that no policy
    /// reads, such as an object's tags (`s3:existingobjecttag/`).
    pub fn reads_key_prefix(&self, prefix: &str) -> bool {
        self.statements.iter().any(|s| {
            s.conditions.iter().any(|c| c.reads_key_prefix(prefix))
                || s.resources.iter().flat_map(|r| &r.patterns).any(|p| p.reads_key_prefix(prefix))
        })
    }

    /// Whether some `Allow` statement names everyone, whatever its conditions: the only
    /// statements that can grant anything to an anonymous caller.
    pub fn may_grant_anonymous(&self) -> bool {
        self.statements.iter().any(|s| s.effect == StatementEffect::Allow && s.grants_everyone())
    }
}

impl Statement {
    /// Whether the Principal element covers every caller: `*` named, or a `NotPrincipal`.
    fn grants_everyone(&self) -> bool {
        self.principals
            .as_ref()
            .is_some_and(|p| p.negated || p.entries.iter().any(|e| matches!(e, PrincipalEntry::Everyone)))
    }
}

#[cfg(test)]
mod tests {
    use crate::{PolicyKind, parse};

    fn bucket_policy(statement: &str) -> crate::Policy {
        let json = format!(r#"{{"Version": "2012-10-17", "Statement": [{statement}]}}"#);
        parse(&json, PolicyKind::Resource, crate::MAX_POLICY_BYTES).unwrap()
    }

    const READ: &str = r#""Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*""#;

    #[test]
    fn a_grant_to_everyone_is_public_unless_narrowed() {
        let public = bucket_policy(&format!(r#"{{"Effect": "Allow", "Principal": "*", {READ}}}"#));
        assert!(public.is_public() && public.may_grant_anonymous());
        let aws_star = bucket_policy(&format!(r#"{{"Effect": "Allow", "Principal": {{"AWS": "*"}}, {READ}}}"#));
        assert!(aws_star.is_public());
        let not_principal = bucket_policy(&format!(
            r#"{{"Effect": "Allow", "NotPrincipal": {{"AWS": "arn:aws:iam::123456789012:user/a"}}, {READ}}}"#
        ));
        assert!(not_principal.is_public());
        let narrowed = bucket_policy(&format!(
            r#"{{"Effect": "Allow", "Principal": "*", {READ},
                "Condition": {{"IpAddress": {{"AWS:SourceIp": "10.0.0.0/8"}}}}}}"#
        ));
        assert!(!narrowed.is_public() && narrowed.may_grant_anonymous());
        // A condition on another key narrows nothing.
        let agent = bucket_policy(&format!(
            r#"{{"Effect": "Allow", "Principal": "*", {READ},
                "Condition": {{"StringLike": {{"aws:UserAgent": "curl*"}}}}}}"#
        ));
        assert!(agent.is_public());
    }

    #[test]
    fn denials_and_named_principals_are_not_public() {
        let deny = bucket_policy(&format!(r#"{{"Effect": "Deny", "Principal": "*", {READ}}}"#));
        assert!(!deny.is_public() && !deny.may_grant_anonymous());
        let user = bucket_policy(&format!(
            r#"{{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::123456789012:user/a"}}, {READ}}}"#
        ));
        assert!(!user.is_public() && !user.may_grant_anonymous());
    }

    #[test]
    fn keys_read_as_conditions_or_as_variables_are_found() {
        let tags = "s3:existingobjecttag/";
        let as_key = bucket_policy(&format!(
            r#"{{"Effect": "Allow", "Principal": "*", {READ},
                "Condition": {{"StringEquals": {{"s3:ExistingObjectTag/team": "a"}}}}}}"#
        ));
        let in_resource = bucket_policy(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::b/${s3:ExistingObjectTag/team}/*"}"#,
        );
        let in_value = bucket_policy(&format!(
            r#"{{"Effect": "Allow", "Principal": "*", {READ},
                "Condition": {{"StringEquals": {{"aws:PrincipalTag/team": "${{s3:ExistingObjectTag/team}}"}}}}}}"#
        ));
        let neither = bucket_policy(&format!(
            r#"{{"Effect": "Allow", "Principal": "*", {READ},
                "Condition": {{"StringEquals": {{"aws:PrincipalTag/team": "${{aws:username}}"}}}}}}"#
        ));
        assert!(as_key.reads_key_prefix(tags) && in_resource.reads_key_prefix(tags) && in_value.reads_key_prefix(tags));
        assert!(!neither.reads_key_prefix(tags));
    }
}
