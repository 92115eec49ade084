//! Statement matching and AWS's combination logic across policy types, for one account.
//!
//! The rules, in the order they are applied (IAM User Guide, "Policy evaluation logic",
//! "Policy evaluation for requests within a single account"):
//! 1. Root user: "By default, all requests are implicitly denied with the exception of the AWS
//!    account root user, which has full access." Only an explicit deny in the resource (bucket)
//!    policy stops it; no identity, boundary or session policy applies to root.
//! 2. "An explicit deny in any of these policies overrides the allow": any matching `Deny` in an
//!    identity, resource, boundary or session policy is final.
//! 3. Anonymous requests: only a resource-based policy whose Principal is `*` can allow them
//!    ("This step is not necessary for a few services, such as Amazon S3, that allow some
//!    requests from anonymous users").
//! 4. A resource-based policy `Allow` that names the principal itself (its user ARN, its
//!    assumed-role session ARN, or `*`): "Permissions are granted directly to the user. Other
//!    policy types do not affect the decision" / "an implicit deny in a permissions boundary does
//!    not limit permissions granted to ... role session ARN". So: Allow.
//! 5. "An entity's permissions boundary allows it to perform only the actions that are allowed by
//!    both its identity-based policies and its permissions boundaries": a boundary with no
//!    matching Allow is an implicit deny. "The resulting session's permissions are the
//!    intersection of the role's identity-based policy and the session policies": session
//!    policies with no matching Allow are an implicit deny.
//! 6. An identity-based `Allow`, or a resource-based `Allow` naming the session's role ARN
//!    ("limited by ... the session policy"): Allow. An account principal (`123456789012`,
//!    `arn:aws:iam::123456789012:root`) in a resource policy delegates to the identity policies:
//!    it allows the root user directly and everyone else only through rule 6's identity allow.
//! 7. Otherwise: implicit deny.
//!
//! Trust policies are evaluated as the resource policy of the role, with the action
//! `sts:AssumeRole` and no identity policies needed for a principal the trust policy names.

use std::fmt;
use std::sync::Arc;

use crate::context::{Principal, PrincipalKind, RequestContext, fold_key};
use crate::document::{Policy, PrincipalEntry, PrincipalList, Statement, StatementEffect};

/// Where a policy comes from; carried into decisions so the caller can say which one decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicySource {
    UserInline,
    UserManaged,
    GroupInline,
    GroupManaged,
    RoleInline,
    RoleManaged,
    Bucket,
    Boundary,
    Session,
    Trust,
    Custom,
}

/// A compiled policy with the name and origin it is reported under.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    pub name: String,
    pub source: PolicySource,
    pub policy: Arc<Policy>,
}

/// The policies that apply to one request. Borrowed, so building a set per request is free.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicySet<'a> {
    /// The principal's identity-based policies (its own, and its groups' for a user).
    pub identity: &'a [NamedPolicy],
    /// The bucket policy, or a role's trust policy when evaluating `sts:AssumeRole`.
    pub resource: Option<&'a NamedPolicy>,
    /// The principal's permissions boundary.
    pub boundary: Option<&'a NamedPolicy>,
    /// The session policies passed when the session was created.
    pub session: &'a [NamedPolicy],
}

/// One request to authorize.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: &'a Principal,
    /// `service:Action`, any case.
    pub action: &'a str,
    /// The resource ARN (`arn:aws:s3:::bucket/key`).
    pub resource: &'a str,
    pub context: &'a RequestContext,
}

/// The outcome of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

/// Names a statement: which policy, which statement in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatementRef {
    pub policy_name: String,
    pub source: PolicySource,
    pub sid: Option<String>,
    /// Position in the policy's `Statement` array.
    pub index: usize,
}

/// The decision, and the statement that decided it (the deny, or the allow that granted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub effect: Effect,
    pub deciding: Option<StatementRef>,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}

/// The full account of an evaluation, for the policy simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub effect: Effect,
    pub deciding: Option<StatementRef>,
    /// Every statement that matched the request, Allow and Deny.
    pub matched: Vec<StatementRef>,
    /// Every statement that did not match, with the first reason it did not.
    pub failed: Vec<(StatementRef, String)>,
    /// The statements that applied to the action, resource and principal but whose Condition did
    /// not hold, with the condition that failed (a subset of `failed`).
    pub unmet_conditions: Vec<(StatementRef, String)>,
    /// Condition keys, as written, that those statements and the matching ones test but the
    /// request does not carry: what a simulation would need to be told (`MissingContextValues`).
    pub missing_keys: Vec<String>,
    /// The decision in AWS's words ("no identity-based policy allows the action").
    pub reason: String,
}

/// Decides a request. Allocates only for the deciding statement's reference.
pub fn evaluate(set: &PolicySet, req: &Request) -> Decision {
    let verdict = decide(set, req, &mut Quiet);
    Decision { effect: verdict.effect, deciding: verdict.deciding.map(|(p, i)| statement_ref(p, i)) }
}

/// Decides a request and records why each statement did or did not match.
pub fn explain(set: &PolicySet, req: &Request) -> Explanation {
    let mut record =
        Record { req, matched: Vec::new(), failed: Vec::new(), unmet_conditions: Vec::new(), missing_keys: Vec::new() };
    let verdict = decide(set, req, &mut record);
    Explanation {
        effect: verdict.effect,
        deciding: verdict.deciding.map(|(p, i)| statement_ref(p, i)),
        matched: record.matched,
        failed: record.failed,
        unmet_conditions: record.unmet_conditions,
        missing_keys: record.missing_keys,
        reason: verdict.reason.to_string(),
    }
}

fn statement_ref(policy: &NamedPolicy, index: usize) -> StatementRef {
    StatementRef {
        policy_name: policy.name.clone(),
        source: policy.source,
        sid: policy.policy.statements.get(index).and_then(|s| s.sid.clone()),
        index,
    }
}

/// Which slot of the [`PolicySet`] a policy sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Identity,
    Resource,
    Boundary,
    Session,
}

/// How a resource policy's Principal element names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Grant {
    /// Through the account: delegates to the identity policies (root excepted).
    Account,
    /// Through the role of the caller's session: limited by boundary and session policies.
    Role,
    /// The caller itself, or everyone.
    Direct,
}

/// Why a statement does not apply.
enum Miss<'p> {
    Action,
    Resource,
    Principal,
    Condition(&'p crate::condition::Condition),
}

/// A statement that matched: which policy, which statement.
type Hit<'p> = (&'p NamedPolicy, usize);

/// What the evaluation concluded, with AWS's reason.
struct Verdict<'p> {
    effect: Effect,
    deciding: Option<Hit<'p>>,
    reason: Reason,
}

enum Reason {
    RootUser,
    ExplicitDeny(Slot, PolicySource),
    AnonymousNotAllowed,
    ResourceNamesPrincipal(PolicySource),
    NoBoundaryAllow,
    NoSessionAllow,
    IdentityAllow,
    ResourceNamesRole(PolicySource),
    NoIdentityAllow,
}

fn policy_phrase(slot: Slot, source: PolicySource) -> &'static str {
    match (slot, source) {
        (Slot::Resource, PolicySource::Bucket) => "a bucket policy",
        (Slot::Resource, PolicySource::Trust) => "a role trust policy",
        (Slot::Resource, _) => "a resource-based policy",
        (Slot::Identity, _) => "an identity-based policy",
        (Slot::Boundary, _) => "a permissions boundary",
        (Slot::Session, _) => "a session policy",
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::RootUser => f.write_str("the account's root user is allowed unless a resource-based policy denies"),
            Reason::ExplicitDeny(slot, source) => write!(f, "explicit deny in {}", policy_phrase(*slot, *source)),
            Reason::AnonymousNotAllowed => {
                f.write_str("no resource-based policy allows the action for anonymous requests (Principal \"*\")")
            }
            Reason::ResourceNamesPrincipal(source) => {
                write!(f, "allowed by {} that names the principal", policy_phrase(Slot::Resource, *source))
            }
            Reason::NoBoundaryAllow => f.write_str("no permissions boundary allows the action"),
            Reason::NoSessionAllow => f.write_str("no session policy allows the action"),
            Reason::IdentityAllow => f.write_str("allowed by an identity-based policy"),
            Reason::ResourceNamesRole(source) => {
                write!(f, "allowed by {} that names the session's role", policy_phrase(Slot::Resource, *source))
            }
            Reason::NoIdentityAllow => f.write_str("no identity-based policy allows the action"),
        }
    }
}

/// Observes statements as they are matched. The fast path ignores everything and stops at the
/// first deny; the simulator records everything and visits every statement.
trait Trace<'p> {
    const EXHAUSTIVE: bool;
    fn matched(&mut self, policy: &'p NamedPolicy, index: usize);
    fn missed(&mut self, policy: &'p NamedPolicy, index: usize, statement: &'p Statement, miss: Miss<'p>);
}

struct Quiet;

impl<'p> Trace<'p> for Quiet {
    const EXHAUSTIVE: bool = false;
    fn matched(&mut self, _: &'p NamedPolicy, _: usize) {}
    fn missed(&mut self, _: &'p NamedPolicy, _: usize, _: &'p Statement, _: Miss<'p>) {}
}

struct Record<'r> {
    req: &'r Request<'r>,
    matched: Vec<StatementRef>,
    failed: Vec<(StatementRef, String)>,
    unmet_conditions: Vec<(StatementRef, String)>,
    missing_keys: Vec<String>,
}

impl Record<'_> {
    /// Notes the condition keys of `statement` that the request lacks, once each (any case).
    fn note_missing_keys(&mut self, statement: &Statement) {
        for condition in &statement.conditions {
            let known = |key: &String| fold_key(key) == *condition.key;
            if self.req.context.get_folded(&condition.key).is_none() && !self.missing_keys.iter().any(known) {
                self.missing_keys.push(condition.key_text.to_string());
            }
        }
    }
}

impl<'p> Trace<'p> for Record<'_> {
    const EXHAUSTIVE: bool = true;

    fn matched(&mut self, policy: &'p NamedPolicy, index: usize) {
        self.matched.push(statement_ref(policy, index));
        if let Some(statement) = policy.policy.statements.get(index) {
            self.note_missing_keys(statement);
        }
    }

    fn missed(&mut self, policy: &'p NamedPolicy, index: usize, statement: &'p Statement, miss: Miss<'p>) {
        let not = |negated: bool| if negated { "Not" } else { "" };
        let why = match miss {
            Miss::Action => {
                format!("action {} is not matched by {}Action", self.req.action, not(statement.has_not_action()))
            }
            Miss::Resource => {
                format!(
                    "resource {} is not matched by {}Resource",
                    self.req.resource,
                    not(statement.has_not_resource())
                )
            }
            Miss::Principal => {
                let who = match self.req.principal.kind {
                    PrincipalKind::Anonymous => "anonymous",
                    _ => self.req.principal.arn.as_str(),
                };
                format!("principal {who} is not matched by {}Principal", not(statement.has_not_principal()))
            }
            Miss::Condition(condition) => {
                let why = condition.describe_failure(self.req.context);
                self.unmet_conditions.push((statement_ref(policy, index), why.clone()));
                self.note_missing_keys(statement);
                why
            }
        };
        self.failed.push((statement_ref(policy, index), why));
    }
}

/// The matching statements found so far, by kind.
#[derive(Default)]
struct Scan<'p> {
    deny: Option<(Hit<'p>, Slot)>,
    identity_allow: Option<Hit<'p>>,
    boundary_allow: Option<Hit<'p>>,
    session_allow: Option<Hit<'p>>,
    /// The strongest resource-policy allow and how it names the caller.
    resource_allow: Option<(Hit<'p>, Grant)>,
}

impl<'p> Scan<'p> {
    /// Whether another Allow in `slot` could change the decision (the fast path skips it if not).
    fn allow_settled(&self, slot: Slot) -> bool {
        match slot {
            Slot::Identity => self.identity_allow.is_some(),
            Slot::Boundary => self.boundary_allow.is_some(),
            Slot::Session => self.session_allow.is_some(),
            Slot::Resource => matches!(self.resource_allow, Some((_, Grant::Direct))),
        }
    }

    fn record_allow(&mut self, slot: Slot, hit: Hit<'p>, grant: Grant) {
        let first = |place: &mut Option<Hit<'p>>| {
            place.get_or_insert(hit);
        };
        match slot {
            Slot::Identity => first(&mut self.identity_allow),
            Slot::Boundary => first(&mut self.boundary_allow),
            Slot::Session => first(&mut self.session_allow),
            Slot::Resource => {
                if self.resource_allow.is_none_or(|(_, best)| grant > best) {
                    self.resource_allow = Some((hit, grant));
                }
            }
        }
    }

    /// Scans one policy; true when a deny was found and the trace does not need the rest.
    fn policy<T: Trace<'p>>(&mut self, named: &'p NamedPolicy, slot: Slot, req: &Request, trace: &mut T) -> bool {
        for (index, statement) in named.policy.statements.iter().enumerate() {
            if !T::EXHAUSTIVE && statement.effect == StatementEffect::Allow && self.allow_settled(slot) {
                continue;
            }
            match statement_applies(statement, slot, req) {
                Err(miss) => trace.missed(named, index, statement, miss),
                Ok(grant) => {
                    trace.matched(named, index);
                    match statement.effect {
                        StatementEffect::Deny => {
                            self.deny.get_or_insert(((named, index), slot));
                            if !T::EXHAUSTIVE {
                                return true;
                            }
                        }
                        StatementEffect::Allow => self.record_allow(slot, (named, index), grant),
                    }
                }
            }
        }
        false
    }
}

fn decide<'p, T: Trace<'p>>(set: &PolicySet<'p>, req: &Request, trace: &mut T) -> Verdict<'p> {
    let mut scan = Scan::default();
    let kind = req.principal.kind;
    // Rules 1 and 3: root and anonymous callers have no identity, boundary or session policies.
    let own_policies = !matches!(kind, PrincipalKind::Root | PrincipalKind::Anonymous);
    let slots = set
        .identity
        .iter()
        .map(|p| (p, Slot::Identity))
        .filter(|_| own_policies)
        .chain(set.resource.map(|p| (p, Slot::Resource)))
        .chain(set.boundary.filter(|_| own_policies).map(|p| (p, Slot::Boundary)))
        .chain(set.session.iter().filter(|_| own_policies).map(|p| (p, Slot::Session)));
    for (policy, slot) in slots {
        if scan.policy(policy, slot, req, trace) {
            break;
        }
    }

    let verdict = |effect, deciding, reason| Verdict { effect, deciding, reason };
    // Rule 2 (and the deny half of 1 and 3).
    if let Some((hit, slot)) = scan.deny {
        return verdict(Effect::ExplicitDeny, Some(hit), Reason::ExplicitDeny(slot, hit.0.source));
    }
    if kind == PrincipalKind::Root {
        return verdict(Effect::Allow, None, Reason::RootUser);
    }
    // Rules 3 and 4.
    if let Some((hit, Grant::Direct)) = scan.resource_allow {
        return verdict(Effect::Allow, Some(hit), Reason::ResourceNamesPrincipal(hit.0.source));
    }
    if kind == PrincipalKind::Anonymous {
        return verdict(Effect::ImplicitDeny, None, Reason::AnonymousNotAllowed);
    }
    // Rule 5.
    if set.boundary.is_some() && scan.boundary_allow.is_none() {
        return verdict(Effect::ImplicitDeny, None, Reason::NoBoundaryAllow);
    }
    if !set.session.is_empty() && scan.session_allow.is_none() {
        return verdict(Effect::ImplicitDeny, None, Reason::NoSessionAllow);
    }
    // Rule 6.
    if let Some(hit) = scan.identity_allow {
        return verdict(Effect::Allow, Some(hit), Reason::IdentityAllow);
    }
    if let Some((hit, Grant::Role)) = scan.resource_allow {
        return verdict(Effect::Allow, Some(hit), Reason::ResourceNamesRole(hit.0.source));
    }
    // Rule 7.
    verdict(Effect::ImplicitDeny, None, Reason::NoIdentityAllow)
}

/// Whether `statement` applies to `req`: Action, then Resource, then Principal (resource-based
/// policies only), then Condition, cheapest and most selective first.
fn statement_applies<'p>(statement: &'p Statement, slot: Slot, req: &Request) -> Result<Grant, Miss<'p>> {
    if !statement.actions.covers(req.action, req.context) {
        return Err(Miss::Action);
    }
    if let Some(resources) = &statement.resources
        && !resources.covers(req.resource, req.context)
    {
        return Err(Miss::Resource);
    }
    let grant = match (&statement.principals, slot) {
        (Some(principals), Slot::Resource) => principal_grant(principals, req.principal).ok_or(Miss::Principal)?,
        _ => Grant::Direct,
    };
    match statement.conditions.iter().find(|c| !c.holds(req.context)) {
        Some(failed) => Err(Miss::Condition(failed)),
        None => Ok(grant),
    }
}

/// How a Principal/NotPrincipal element names `principal`, or `None` when it does not.
fn principal_grant(list: &PrincipalList, principal: &Principal) -> Option<Grant> {
    let best = list.entries.iter().filter_map(|entry| entry_grant(entry, principal)).max();
    match (list.negated, best) {
        (false, best) => best,
        // NotPrincipal: everyone not listed, as if they were named directly.
        (true, None) => Some(Grant::Direct),
        (true, Some(_)) => None,
    }
}

fn entry_grant(entry: &PrincipalEntry, principal: &Principal) -> Option<Grant> {
    let anonymous = principal.kind == PrincipalKind::Anonymous;
    match entry {
        PrincipalEntry::Everyone => Some(Grant::Direct),
        PrincipalEntry::Account(account) if !anonymous && *account == principal.account => {
            Some(if principal.kind == PrincipalKind::Root { Grant::Direct } else { Grant::Account })
        }
        PrincipalEntry::Arn(arn) if !anonymous && *arn == principal.arn => Some(Grant::Direct),
        PrincipalEntry::Arn(arn) if principal.role_arn.as_deref() == Some(arn.as_str()) => Some(Grant::Role),
        _ => None,
    }
}
