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
