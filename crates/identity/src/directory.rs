//! The in-memory directory: every user, group, role, managed policy and access key, with each
//! principal's policies compiled once, so that a request is authorised without I/O.
//!
//! Built from an `IdentityStore` snapshot; replaced whole when the store announces a change
//! (see `service.rs`). A policy that no longer compiles (it was written by a newer version, or
//! by hand) poisons only the principals that carry it: they are refused everything, since
//! dropping a Deny would grant more than intended.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};

use latchkey_meta::{DirectorySnapshot, EntryKind};
use latchkey_policy::{NamedPolicy, PolicyKind, PolicySource, Principal, PrincipalKind};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::model::{Account, Attached, Group, ManagedPolicy, Role, Tag, User};
use crate::seal::{MasterKey, Purpose};

/// The most a stored policy document may hold: the largest any IAM API accepts.
pub const MAX_STORED_POLICY: usize = 20_480;

/// A user or role with its policies compiled.
#[derive(Debug)]
pub struct PrincipalPolicies {
    pub principal: Principal,
    /// Identity policies: own inline and managed, then each group's.
    pub identity: Vec<NamedPolicy>,
    pub boundary: Option<NamedPolicy>,
    pub tags: Vec<Tag>,
    /// The unique id (`aws:userid`).
    pub unique_id: String,
    /// A policy failed to compile: refuse everything.
    pub poisoned: bool,
    /// Some policy tests `s3:ExistingObjectTag/*` or `latchkey:ObjectSensitivity`: requests on
    /// objects need the object's record.
    pub reads_object_state: bool,
}

/// The condition key prefix of an object's stored tags, folded.
pub const EXISTING_OBJECT_TAG: &str = "s3:existingobjecttag/";

/// The condition key of an object version's scanned sensitivity, folded.
pub const OBJECT_SENSITIVITY: &str = "latchkey:objectsensitivity";

/// Whether `policy` tests what the object a request acts on holds: its tags or its sensitivity.
pub fn policy_reads_object_state(policy: &latchkey_policy::Policy) -> bool {
    policy.reads_key_prefix(EXISTING_OBJECT_TAG) || policy.reads_key_prefix(OBJECT_SENSITIVITY)
}

/// Whether any of `policies` tests the tags or sensitivity of the object a request acts on.
pub fn reads_object_state<'a>(policies: impl IntoIterator<Item = &'a NamedPolicy>) -> bool {
    policies.into_iter().any(|p| policy_reads_object_state(&p.policy))
}

/// An access key as the request path needs it.
pub struct KeyEntry {
    /// Lower-cased user name.
    pub user: String,
    pub active: bool,
    pub secret: Zeroizing<String>,
    pub created: OffsetDateTime,
    /// When the key was last used (Unix seconds, 0 for never) and for which service (an index
    /// into [`SERVICES`]): atomics, so that noting a use takes no lock on the request path.
    last_used: AtomicI64,
    last_service: AtomicU8,
    /// A use noted here that the store has not been told of.
    unwritten: AtomicBool,
}

/// The services a key is used for, as `last_service` numbers them.
pub const SERVICES: [&str; 3] = ["s3", "iam", "sts"];

impl KeyEntry {
    fn new(user: String, active: bool, secret: Zeroizing<String>, created: OffsetDateTime) -> KeyEntry {
        KeyEntry {
            user,
            active,
            secret,
            created,
            last_used: AtomicI64::new(0),
            last_service: AtomicU8::new(0),
            unwritten: AtomicBool::new(false),
        }
    }

    fn set_used(&self, at: i64, service: &str) {
        let index = SERVICES.iter().position(|s| *s == service).unwrap_or(0);
        self.last_service.store(index as u8, Ordering::Relaxed);
        self.last_used.store(at, Ordering::Relaxed);
    }

    /// Notes a use at `now` (Unix seconds) for `service` (one of [`SERVICES`]).
    pub fn note_use(&self, now: i64, service: &'static str) {
        // One store per second at most: the line is shared by every request with this key.
        if self.last_used.load(Ordering::Relaxed) < now {
            self.set_used(now, service);
            self.unwritten.store(true, Ordering::Relaxed);
        }
    }

    /// When and for what the key was last used, as far as this replica knows.
    pub fn last_used(&self) -> Option<(OffsetDateTime, &'static str)> {
        let at = self.last_used.load(Ordering::Relaxed);
        let service = SERVICES.get(usize::from(self.last_service.load(Ordering::Relaxed))).copied()?;
        (at > 0).then(|| OffsetDateTime::from_unix_timestamp(at).ok().map(|t| (t, service))).flatten()
    }

    /// The last use, if the store has not been told of it yet (and now it is being told).
    pub fn take_unwritten(&self) -> Option<(OffsetDateTime, &'static str)> {
        if self.unwritten.swap(false, Ordering::Relaxed) { self.last_used() } else { None }
    }
}

#[derive(Default)]
pub struct Directory {
    pub generation: i64,
    pub users: HashMap<String, (User, Arc<PrincipalPolicies>)>,
    pub groups: HashMap<String, Group>,
    pub roles: HashMap<String, (Role, Arc<PrincipalPolicies>)>,
    /// By ARN.
    pub policies: HashMap<String, ManagedPolicy>,
    pub keys: HashMap<String, KeyEntry>,
}

impl Directory {
    pub fn build(snapshot: DirectorySnapshot, account: &Account, master: &MasterKey) -> Directory {
        let mut directory = Directory { generation: snapshot.generation, ..Directory::default() };
        let mut users = Vec::new();
        let mut roles = Vec::new();
        for entry in &snapshot.entries {
            let malformed = |e: serde_json::Error| {
                tracing::error!(kind = entry.kind.as_str(), name = %entry.name, error = %e, "unreadable directory entry");
            };
            match entry.kind {
                EntryKind::User => match serde_json::from_str::<User>(&entry.body) {
                    Ok(user) => users.push(user),
                    Err(e) => malformed(e),
                },
                EntryKind::Group => match serde_json::from_str::<Group>(&entry.body) {
                    Ok(group) => {
                        directory.groups.insert(group.name.to_lowercase(), group);
                    }
                    Err(e) => malformed(e),
                },
                EntryKind::Role => match serde_json::from_str::<Role>(&entry.body) {
                    Ok(role) => roles.push(role),
                    Err(e) => malformed(e),
                },
                EntryKind::Policy => match serde_json::from_str::<ManagedPolicy>(&entry.body) {
                    Ok(policy) => {
                        directory.policies.insert(account.iam_arn("policy", &policy.path, &policy.name), policy);
                    }
                    Err(e) => malformed(e),
                },
            }
        }
        for user in users {
            let compiled = directory.compile_user(&user, account);
            directory.users.insert(user.name.to_lowercase(), (user, Arc::new(compiled)));
        }
        for role in roles {
            let compiled = directory.compile_role(&role, account);
            directory.roles.insert(role.name.to_lowercase(), (role, Arc::new(compiled)));
        }
        for key in snapshot.access_keys {
            let secret = match master.open(Purpose::AccessKeySecret, &key.access_key_id, &key.secret_sealed) {
                Ok(secret) => secret,
                Err(e) => {
                    tracing::error!(access_key_id = %key.access_key_id, error = %e, "cannot open an access key's secret");
                    continue;
                }
            };
            let Ok(secret) = String::from_utf8(secret.to_vec()) else { continue };
            let entry = KeyEntry::new(key.user_name.to_lowercase(), key.active, Zeroizing::new(secret), key.created);
            if let Some(at) = key.last_used {
                entry.set_used(at.unix_timestamp(), key.last_used_service.as_deref().unwrap_or("s3"));
            }
            directory.keys.insert(key.access_key_id, entry);
        }
        directory
    }

    pub fn user(&self, name: &str) -> Option<&(User, Arc<PrincipalPolicies>)> {
        self.users.get(&name.to_lowercase())
    }

    pub fn role(&self, name: &str) -> Option<&(Role, Arc<PrincipalPolicies>)> {
        self.roles.get(&name.to_lowercase())
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(&name.to_lowercase())
    }

    /// Compiles `attached` into `out`; `false` when one of them does not compile or is missing.
    fn compile_attached(
        &self,
        attached: &Attached,
        inline: PolicySource,
        managed: PolicySource,
        out: &mut Vec<NamedPolicy>,
    ) -> bool {
        let mut whole = true;
        for (name, document) in &attached.inline {
            match compile(name, inline, document, PolicyKind::Identity) {
                Some(policy) => out.push(policy),
                None => whole = false,
            }
        }
        for arn in &attached.managed {
            match self.policies.get(arn).and_then(|p| p.default_document().map(|d| (p, d))) {
                Some((policy, document)) => match compile(&policy.name, managed, document, PolicyKind::Identity) {
                    Some(policy) => out.push(policy),
                    None => whole = false,
                },
                // A managed policy deleted while attached (a race) grants nothing.
                None => tracing::warn!(policy = %arn, "attached policy not found"),
            }
        }
        whole
    }

    fn boundary(&self, arn: Option<&str>) -> (Option<NamedPolicy>, bool) {
        let Some(arn) = arn else { return (None, true) };
        match self.policies.get(arn).and_then(|p| p.default_document().map(|d| (p, d))) {
            Some((policy, document)) => {
                let compiled = compile(&policy.name, PolicySource::Boundary, document, PolicyKind::Boundary);
                let ok = compiled.is_some();
                (compiled, ok)
            }
            // A boundary that is gone allows nothing: keep the principal bounded.
            None => (None, false),
        }
    }

    fn compile_user(&self, user: &User, account: &Account) -> PrincipalPolicies {
        let mut identity = Vec::new();
        let mut whole =
            self.compile_attached(&user.policies, PolicySource::UserInline, PolicySource::UserManaged, &mut identity);
        for group in &user.groups {
            if let Some(group) = self.groups.get(&group.to_lowercase()) {
                whole &= self.compile_attached(
                    &group.policies,
                    PolicySource::GroupInline,
                    PolicySource::GroupManaged,
                    &mut identity,
                );
            }
        }
        let (boundary, boundary_ok) = self.boundary(user.boundary.as_deref());
        PrincipalPolicies {
            principal: Principal {
                kind: PrincipalKind::User,
                account: account.id.clone(),
                arn: account.iam_arn("user", &user.path, &user.name),
                role_arn: None,
            },
            tags: user.tags.clone(),
            unique_id: user.id.clone(),
            poisoned: !(whole && boundary_ok),
            reads_object_state: reads_object_state(identity.iter().chain(boundary.as_ref())),
            identity,
            boundary,
        }
    }

    fn compile_role(&self, role: &Role, account: &Account) -> PrincipalPolicies {
        let mut identity = Vec::new();
        let whole =
            self.compile_attached(&role.policies, PolicySource::RoleInline, PolicySource::RoleManaged, &mut identity);
        let (boundary, boundary_ok) = self.boundary(role.boundary.as_deref());
        PrincipalPolicies {
            principal: Principal {
                kind: PrincipalKind::AssumedRole,
                account: account.id.clone(),
                arn: account.iam_arn("role", &role.path, &role.name),
                role_arn: Some(account.iam_arn("role", &role.path, &role.name)),
            },
            tags: role.tags.clone(),
            unique_id: role.id.clone(),
            poisoned: !(whole && boundary_ok),
            reads_object_state: reads_object_state(identity.iter().chain(boundary.as_ref())),
            identity,
            boundary,
        }
    }
}

/// Compiles a stored document; `None` (logged) when it does not parse.
pub fn compile(name: &str, source: PolicySource, document: &str, kind: PolicyKind) -> Option<NamedPolicy> {
    match latchkey_policy::parse(document, kind, MAX_STORED_POLICY) {
        Ok(policy) => Some(NamedPolicy { name: name.to_owned(), source, policy: Arc::new(policy) }),
        Err(e) => {
            tracing::error!(policy = name, error = %e, "a stored policy does not compile");
            None
        }
    }
}
