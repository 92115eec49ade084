//! The identity service: who a request's access key belongs to, and whether that caller may do
//! what it asks. Decisions come from memory (the [`Directory`]); the store is read when it
//! announces a change, and for STS sessions not seen before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use latchkey_meta::{IdentityStore, MetaError, MfaDevice};
use latchkey_policy::{
    Decision, Effect, NamedPolicy, PolicyKind, PolicySet, PolicySource, Principal, PrincipalKind, Request,
    RequestContext,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::directory::{self, Directory, PrincipalPolicies};
use crate::model::{Account, Tag};
use crate::seal::{MasterKey, Purpose};

/// The root access key pair, which exists outside the store so that a fresh server can be
/// administered.
#[derive(Clone)]
pub struct RootCredentials {
    pub access_key_id: String,
    pub secret_key: String,
}

impl std::fmt::Debug for RootCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// What an STS session is, as stored (`SessionRecord::body`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionBody {
    /// `user` (GetSessionToken) or `role` (AssumeRole).
    pub kind: SessionKind,
    /// The user's or the role's name.
    pub name: String,
    /// The user's or the role's unique id (`AIDA...`, `AROA...`): a session ends with the
    /// principal it was issued to, and does not pass to a new one given the same name.
    #[serde(default)]
    pub principal_id: Option<String>,
    #[serde(default)]
    pub session_name: Option<String>,
    /// When the MFA code was checked, if one was.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub mfa_at: Option<OffsetDateTime>,
    /// The session policy (AssumeRole's `Policy`).
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    User,
    Role,
}

/// A session as the request path needs it.
pub struct Session {
    pub access_key_id: String,
    pub body: SessionBody,
    pub issued: OffsetDateTime,
    pub expires: OffsetDateTime,
    secret: Zeroizing<String>,
    token_hash: Vec<u8>,
    policy: Option<NamedPolicy>,
}

/// Who signed a request.
#[derive(Clone)]
pub enum Caller {
    Root,
    User { policies: Arc<PrincipalPolicies> },
    Session { session: Arc<Session>, policies: Arc<PrincipalPolicies>, principal: Principal },
}

impl Caller {
    pub fn principal(&self, account: &Account) -> Principal {
        match self {
            Caller::Root => Principal {
                kind: PrincipalKind::Root,
                account: account.id.clone(),
                arn: account.root_arn(),
                role_arn: None,
            },
            Caller::User { policies, .. } => policies.principal.clone(),
            Caller::Session { principal, .. } => principal.clone(),
        }
    }
}

/// Why a request's credentials are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such key, an inactive key, or a key whose user is gone.
    UnknownKey,
    /// A session past its expiry.
    Expired,
    /// A session key without its session token, or with another one.
    BadToken,
}

/// The session token hash kept in the store.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Sessions kept in memory at most; beyond, the cache starts over.
const CACHED_SESSIONS: usize = 16 * 1024;

/// Codes a device takes per [`MFA_WINDOW`]. A six-digit code has a million values and three are
/// valid at any moment (the step either side), so without a limit a caller holding the user's
/// keys could find one at request speed. Each code checked takes an attempt first, atomically in
/// the store (concurrent guesses cannot all slip through, on any replica); a right code gives
/// its attempt back. When none is left, no code is taken, not even the right one.
const MFA_ATTEMPTS: i64 = 5;
const MFA_WINDOW: Duration = Duration::from_secs(300);

pub struct Identity {
    store: Arc<dyn IdentityStore>,
    master: MasterKey,
    account: Account,
    root: RootCredentials,
    directory: RwLock<Arc<Directory>>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl Identity {
    /// Checks the master key against the one the store was first used with, seals any legacy
    /// plaintext keys, and loads the directory.
    pub async fn open(
        store: Arc<dyn IdentityStore>,
        master: MasterKey,
        account: Account,
        root: RootCredentials,
    ) -> anyhow::Result<Arc<Identity>> {
        if !store.claim_master_key(&master.fingerprint()).await? {
            anyhow::bail!(
                "the master key does not match the one this metadata store was created with; \
                 start every replica with the same LATCHKEY_MASTER_KEY (or the same master-key file)"
            );
        }
        let moved =
            store.adopt_legacy_keys(&|id, secret| master.seal(Purpose::AccessKeySecret, id, secret.as_bytes())).await?;
        if moved > 0 {
            tracing::info!(keys = moved, "sealed the plaintext secrets of pre-IAM access keys");
        }
        let identity = Arc::new(Identity {
            store,
            master,
            account,
            root,
            directory: RwLock::new(Arc::new(Directory::default())),
            sessions: Mutex::new(HashMap::new()),
        });
        identity.reload().await?;
        Ok(identity)
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    pub fn store(&self) -> &dyn IdentityStore {
        self.store.as_ref()
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Whether `code` is right now for the MFA device `serial` enabled for the IAM user
    /// `user_name` ([`Identity::check_mfa_device`]).
    pub async fn check_mfa(
        &self,
        user_name: Option<&str>,
        serial: &str,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<bool, MetaError> {
        Ok(self.check_mfa_device(user_name, serial, code, now).await?.is_some())
    }

    /// The MFA device `serial` enabled for the IAM user `user_name`, if `code` is right for it
    /// now; a right code's time step is spent, so the same code is refused the second time, on
    /// every replica. Attempts are limited ([`MFA_ATTEMPTS`]).
    pub async fn check_mfa_device(
        &self,
        user_name: Option<&str>,
        serial: &str,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<Option<MfaDevice>, MetaError> {
        let store = self.store();
        let Some(device) = store.get_mfa_device(serial).await? else { return Ok(None) };
        let owner_matches = match (user_name, device.user_name.as_deref()) {
            (Some(user), Some(owner)) => user.eq_ignore_ascii_case(owner),
            _ => false,
        };
        if !owner_matches || !store.reserve_mfa_attempt(&device.serial, now, MFA_WINDOW, MFA_ATTEMPTS).await? {
            return Ok(None);
        }
        let Ok(seed) = self.master.open(Purpose::MfaSeed, &device.serial, &device.seed_sealed) else {
            return Ok(None);
        };
        let last = u64::try_from(device.last_step).ok();
        let unix = now.unix_timestamp().max(0) as u64;
        let step = crate::mfa::verify(&seed, code, unix, last).ok().and_then(|s| i64::try_from(s).ok());
        let spent = match step {
            Some(step) => store.spend_mfa_step(&device.serial, step).await?,
            None => false,
        };
        if !spent {
            return Ok(None);
        }
        store.refund_mfa_attempt(&device.serial).await?;
        Ok(Some(device))
    }

    /// The IAM user whose MFA devices a caller may use: a user, or a user's own session.
    pub fn mfa_user(caller: &Caller) -> Option<&str> {
        match caller {
            Caller::User { policies, .. } => policies.principal.arn.rsplit('/').next(),
            Caller::Session { session, policies, .. } if session.body.kind == SessionKind::User => {
                policies.principal.arn.rsplit('/').next()
            }
            _ => None,
        }
    }

    pub fn directory(&self) -> Arc<Directory> {
        self.directory.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `access_key_id` is a key this replica knows (root's, an IAM user's, or a session
    /// it has seen), from memory: what may have a rate limit of its own, where made-up ids (which
    /// cost nothing to invent) are limited only with their sender's address.
    pub fn knows_access_key(&self, access_key_id: &str) -> bool {
        access_key_id == self.root.access_key_id
            || self.directory().keys.contains_key(access_key_id)
            || self.sessions.lock().unwrap_or_else(|p| p.into_inner()).contains_key(access_key_id)
    }

    /// Reads the store and replaces the directory (unless a newer one is in place already). Key
    /// uses noted in the directory being replaced are written first.
    pub async fn reload(&self) -> Result<(), MetaError> {
        self.flush_key_uses().await;
        let snapshot = self.store.load_directory().await?;
        let built = Arc::new(Directory::build(snapshot, &self.account, &self.master));
        let mut current = self.directory.write().unwrap_or_else(|p| p.into_inner());
        if built.generation >= current.generation {
            *current = built;
        }
        Ok(())
    }

    /// Keeps the directory current and writes key uses, until `shutdown` resolves.
    pub async fn maintain(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let mut changes = self.store.directory_changes();
        let mut flush = tokio::time::interval(Duration::from_secs(5));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    changes.borrow_and_update();
                    if let Err(e) = self.reload().await {
                        tracing::error!(error = %e, "cannot reload the identity directory");
                    }
                }
                _ = flush.tick() => {
                    self.flush_key_uses().await;
                    self.purge_sessions().await;
                }
                () = &mut shutdown => break,
            }
        }
        self.flush_key_uses().await;
    }

    /// Writes the key uses noted since the last flush.
    async fn flush_key_uses(&self) {
        let directory = self.directory();
        let uses: Vec<_> = directory
            .keys
            .iter()
            .filter_map(|(id, key)| key.take_unwritten().map(|(at, service)| (id.clone(), at, service.to_owned())))
            .collect();
        if uses.is_empty() {
            return;
        }
        if let Err(e) = self.store.record_key_use(&uses).await {
            tracing::warn!(error = %e, "cannot record access key use");
        }
    }

    /// Deletes sessions that expired over a day ago (a refused expired session answers
    /// `ExpiredToken` for that day, then `InvalidClientTokenId`).
    async fn purge_sessions(&self) {
        if let Err(e) = self.store.purge_sessions(OffsetDateTime::now_utc() - time::Duration::days(1)).await {
            tracing::warn!(error = %e, "cannot purge expired sessions");
        }
    }

    /// The secret that verifies a signature by `access_key_id`, for `service` (`s3`, `iam`, `sts`).
    pub async fn secret(&self, access_key_id: &str, service: &'static str) -> Result<Zeroizing<String>, Refusal> {
        if bool::from(access_key_id.as_bytes().ct_eq(self.root.access_key_id.as_bytes())) {
            return Ok(Zeroizing::new(self.root.secret_key.clone()));
        }
        if let Some(session) = self.session(access_key_id).await? {
            return Ok(session.secret.clone());
        }
        let directory = self.directory();
        let key = directory.keys.get(access_key_id).ok_or(Refusal::UnknownKey)?;
        if !key.active || !directory.users.contains_key(&key.user) {
            return Err(Refusal::UnknownKey);
        }
        key.note_use(OffsetDateTime::now_utc().unix_timestamp(), service);
        Ok(key.secret.clone())
    }

    /// The caller behind a verified signature. `session_token` is the request's
    /// `X-Amz-Security-Token`. Checked again here, after the signature, because a key can be
    /// deactivated or a user deleted between the two.
    pub async fn caller(&self, access_key_id: &str, session_token: Option<&str>) -> Result<Caller, Refusal> {
        if bool::from(access_key_id.as_bytes().ct_eq(self.root.access_key_id.as_bytes())) {
            return Ok(Caller::Root);
        }
        let directory = self.directory();
        if let Some(session) = self.session(access_key_id).await? {
            let given = token_hash(session_token.ok_or(Refusal::BadToken)?);
            if !bool::from(given.ct_eq(&session.token_hash)) {
                return Err(Refusal::BadToken);
            }
            return self.session_caller(&directory, session);
        }
        let key = directory.keys.get(access_key_id).ok_or(Refusal::UnknownKey)?;
        let (_, policies) = directory.users.get(&key.user).ok_or(Refusal::UnknownKey)?;
        if !key.active {
            return Err(Refusal::UnknownKey);
        }
        Ok(Caller::User { policies: policies.clone() })
    }

    /// The caller a session stands for: its user, or its role as the assumed-role principal, as
    /// long as that is still the user or role it was issued to (same unique id).
    fn session_caller(&self, directory: &Directory, session: Arc<Session>) -> Result<Caller, Refusal> {
        let same_principal =
            |policies: &PrincipalPolicies| session.body.principal_id.as_deref() == Some(policies.unique_id.as_str());
        let (policies, principal) = match session.body.kind {
            SessionKind::User => {
                let (_, policies) = directory.user(&session.body.name).ok_or(Refusal::UnknownKey)?;
                if !same_principal(policies) {
                    return Err(Refusal::UnknownKey);
                }
                (policies.clone(), policies.principal.clone())
            }
            SessionKind::Role => {
                let (role, policies) = directory.role(&session.body.name).ok_or(Refusal::UnknownKey)?;
                if !same_principal(policies) {
                    return Err(Refusal::UnknownKey);
                }
                let session_name = session.body.session_name.as_deref().unwrap_or_default();
                let principal = Principal {
                    kind: PrincipalKind::AssumedRole,
                    account: self.account.id.clone(),
                    arn: self.account.assumed_role_arn(&role.name, session_name),
                    role_arn: policies.principal.role_arn.clone(),
                };
                (policies.clone(), principal)
            }
        };
        Ok(Caller::Session { session, policies, principal })
    }

    /// The caller behind a still valid session key, without its token: for what a session made
    /// that outlives the request (a share link minted with temporary credentials carries the
    /// session's permission, session policy included, and dies with the session).
    pub async fn session_holder(&self, access_key_id: &str) -> Option<Caller> {
        let session = self.session(access_key_id).await.ok()??;
        self.session_caller(&self.directory(), session).ok()
    }

    /// The session `access_key_id` names, if it is a session key; `Expired` once it has expired.
    async fn session(&self, access_key_id: &str) -> Result<Option<Arc<Session>>, Refusal> {
        if !access_key_id.starts_with("ASIA") {
            return Ok(None);
        }
        let cached = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(access_key_id).cloned();
        let session = match cached {
            Some(session) => session,
            None => {
                let record = match self.store.get_session(access_key_id).await {
                    Ok(Some(record)) => record,
                    Ok(None) => return Err(Refusal::UnknownKey),
                    Err(e) => {
                        tracing::error!(error = %e, "session lookup failed");
                        return Err(Refusal::UnknownKey);
                    }
                };
                let secret = self
                    .master
                    .open(Purpose::SessionSecret, &record.access_key_id, &record.secret_sealed)
                    .map_err(|_| Refusal::UnknownKey)?;
                let secret = String::from_utf8(secret.to_vec()).map_err(|_| Refusal::UnknownKey)?;
                let body: SessionBody = serde_json::from_str(&record.body).map_err(|_| Refusal::UnknownKey)?;
                let policy = match &body.policy {
                    Some(document) => Some(
                        directory::compile("session policy", PolicySource::Session, document, PolicyKind::Session)
                            .ok_or(Refusal::UnknownKey)?,
                    ),
                    None => None,
                };
                let session = Arc::new(Session {
                    access_key_id: record.access_key_id,
                    body,
                    issued: record.issued,
                    expires: record.expires,
                    secret: Zeroizing::new(secret),
                    token_hash: record.token_hash,
                    policy,
                });
                let mut cache = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= CACHED_SESSIONS {
                    cache.clear();
                }
                cache.insert(access_key_id.to_owned(), session.clone());
                session
            }
        };
        if session.expires <= OffsetDateTime::now_utc() {
            return Err(Refusal::Expired);
        }
        Ok(Some(session))
    }

    /// Whether the caller's policies (identity, boundary, session) test the tags of the object
    /// a request acts on, so that the request must look them up.
    pub fn reads_object_state(&self, caller: &Caller) -> bool {
        match caller {
            Caller::Root => false,
            Caller::User { policies, .. } => policies.reads_object_state,
            Caller::Session { session, policies, .. } => {
                policies.reads_object_state || directory::reads_object_state(session.policy.as_ref())
            }
        }
    }

    /// Adds the keys the caller brings to `context`: principal ARN, account and type, user name
    /// and id, principal tags, and for sessions MFA and token issue time.
    pub fn caller_context(&self, caller: &Caller, context: &mut RequestContext) {
        let principal = caller.principal(&self.account);
        context.insert_principal_keys(&principal);
        let now = OffsetDateTime::now_utc();
        match caller {
            Caller::Root => {
                context.insert("aws:userid", self.account.id.as_str());
            }
            Caller::User { policies, .. } => {
                context.insert("aws:userid", policies.unique_id.as_str());
                insert_tags(context, &policies.tags);
            }
            Caller::Session { session, policies, .. } => {
                match session.body.kind {
                    SessionKind::User => {
                        context.insert("aws:userid", policies.unique_id.as_str());
                        insert_tags(context, &policies.tags);
                        if let Some((_, name)) = policies.principal.arn.rsplit_once('/') {
                            context.insert("aws:username", name);
                        }
                    }
                    SessionKind::Role => {
                        let session_name = session.body.session_name.as_deref().unwrap_or_default();
                        context.insert("aws:userid", format!("{}:{session_name}", policies.unique_id));
                        insert_tags(context, &policies.tags);
                        // Session tags override the role's tags of the same key.
                        insert_tags(context, &session.body.tags);
                    }
                }
                context
                    .insert("aws:MultiFactorAuthPresent", if session.body.mfa_at.is_some() { "true" } else { "false" });
                if let Some(at) = session.body.mfa_at {
                    context.insert("aws:MultiFactorAuthAge", (now - at).whole_seconds().max(0).to_string());
                }
                if let Ok(issued) = session.issued.format(&time::format_description::well_known::Rfc3339) {
                    context.insert("aws:TokenIssueTime", issued);
                }
            }
        }
        if let Ok(current) = now.format(&time::format_description::well_known::Rfc3339) {
            context.insert("aws:CurrentTime", current);
        }
        context.insert("aws:EpochTime", now.unix_timestamp().to_string());
    }

    /// Decides whether `caller` may perform `action` on `resource` (an ARN), given the request's
    /// `context` (completed with the caller's keys by [`Identity::caller_context`]) and the
    /// resource's own policy (a bucket policy), if any.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        context: &RequestContext,
        resource_policy: Option<&NamedPolicy>,
    ) -> Decision {
        let principal = caller.principal(&self.account);
        let request = Request { principal: &principal, action, resource, context };
        let (identity, boundary, session): (&[NamedPolicy], _, &[NamedPolicy]) = match caller {
            Caller::Root => (&[], None, &[]),
            Caller::User { policies, .. } => (&policies.identity, policies.boundary.as_ref(), &[]),
            Caller::Session { session, policies, .. } => {
                (&policies.identity, policies.boundary.as_ref(), session.policy.as_slice())
            }
        };
        let poisoned = match caller {
            Caller::Root => false,
            Caller::User { policies, .. } | Caller::Session { policies, .. } => policies.poisoned,
        };
        if poisoned {
            return Decision { effect: Effect::ImplicitDeny, deciding: None };
        }
        let set = PolicySet { identity, resource: resource_policy, boundary, session };
        latchkey_policy::evaluate(&set, &request)
    }

    /// Decides whether an unsigned request may perform `action` on `resource`: only a resource
    /// policy that grants to everyone can allow it (the engine's rule for anonymous callers).
    pub fn authorize_anonymous(
        &self,
        action: &str,
        resource: &str,
        context: &RequestContext,
        resource_policy: Option<&NamedPolicy>,
    ) -> Decision {
        let principal = Principal::anonymous();
        let request = Request { principal: &principal, action, resource, context };
        latchkey_policy::evaluate(&PolicySet { resource: resource_policy, ..PolicySet::default() }, &request)
    }
}

impl Identity {
    /// The caller's unique id: the user's or role's (`AIDA...`, `AROA...`), the account id for
    /// root.
    pub fn unique_id(&self, caller: &Caller) -> String {
        match caller {
            Caller::Root => self.account.id.clone(),
            Caller::User { policies, .. } | Caller::Session { policies, .. } => policies.unique_id.clone(),
        }
    }

    /// The caller a recorded principal ARN stands for now: the root user, or a user or role as
    /// the directory has it today (`None` once it is deleted). Share links carry their creator's
    /// permission this way. A session's ARN stands for its role; a user session's is the user's.
    pub fn principal_caller(&self, arn: &str) -> Option<Caller> {
        if arn == self.account.root_arn() || bool::from(arn.as_bytes().ct_eq(self.root.access_key_id.as_bytes())) {
            return Some(Caller::Root);
        }
        let directory = self.directory();
        let (kind, rest) = arn.strip_prefix(&format!("arn:aws:iam::{}:", self.account.id)).map_or_else(
            || arn.strip_prefix(&format!("arn:aws:sts::{}:", self.account.id)).and_then(|r| r.split_once('/')),
            |r| r.split_once('/'),
        )?;
        match kind {
            "user" => {
                let (_, policies) = directory.user(rest.rsplit('/').next()?)?;
                Some(Caller::User { policies: policies.clone() })
            }
            "role" | "assumed-role" => {
                let role = if kind == "role" { rest.rsplit('/').next()? } else { rest.split('/').next()? };
                let (_, policies) = directory.role(role)?;
                Some(Caller::User { policies: policies.clone() })
            }
            _ => None,
        }
    }
}

fn insert_tags(context: &mut RequestContext, tags: &[Tag]) {
    for tag in tags {
        context.insert(&format!("aws:PrincipalTag/{}", tag.key), tag.value.as_str());
    }
}
