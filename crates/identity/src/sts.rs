//! The STS query API: GetCallerIdentity and GetSessionToken (temporary credentials, with an MFA
//! code when the caller has a device: `aws:MultiFactorAuthPresent` is true only then).

use base64::Engine;
use latchkey_meta::SessionRecord;
use time::{Duration, OffsetDateTime};

use crate::api::{Call, QueryResult};
use crate::iam::internal;
use crate::model::Tag;
use crate::model::{new_id, new_secret};
use crate::query::{Api, QueryError, ResponseWriter};
use crate::seal::Purpose;
use crate::service::{Caller, SessionBody, SessionKind, token_hash};
use latchkey_policy::{Effect, PolicyKind, PolicySource};

/// Whether `action` is one of the STS actions served here (`dispatch`).
pub fn serves(action: &str) -> bool {
    matches!(action, "GetCallerIdentity" | "GetSessionToken" | "AssumeRole")
}

pub async fn dispatch(call: &Call<'_>, action: &str) -> QueryResult {
    match action {
        "GetCallerIdentity" => caller_identity(call),
        "GetSessionToken" => session_token(call).await,
        "AssumeRole" => assume_role(call).await,
        other => Err(QueryError::invalid_action(other, Api::Sts.version())),
    }
}

/// Always allowed, as on AWS: it says who the caller is and nothing else.
fn caller_identity(call: &Call<'_>) -> QueryResult {
    let principal = call.caller.principal(call.identity.account());
    let user_id = match &call.caller {
        Caller::Root => call.identity.account().id.clone(),
        Caller::User { policies, .. } => policies.unique_id.clone(),
        Caller::Session { session, policies, .. } => match session.body.kind {
            SessionKind::User => policies.unique_id.clone(),
            SessionKind::Role => {
                format!("{}:{}", policies.unique_id, session.body.session_name.as_deref().unwrap_or_default())
            }
        },
    };
    let mut w = ResponseWriter::new(Api::Sts, "GetCallerIdentity");
    w.text("UserId", &user_id).text("Account", &call.identity.account().id).text("Arn", &principal.arn);
    Ok(w)
}

async fn session_token(call: &Call<'_>) -> QueryResult {
    let (user, max) = match &call.caller {
        // AWS: root sessions last at most an hour.
        Caller::Root => (None, 3600),
        Caller::User { policies, .. } => (Some(policies.clone()), 129_600),
        Caller::Session { .. } => {
            return Err(QueryError::access_denied("Cannot call GetSessionToken with session credentials"));
        }
    };
    let user_name = user.as_ref().map(|p| p.principal.arn.rsplit('/').next().unwrap_or_default().to_owned());
    let duration = call.params.u32_in("DurationSeconds", 900, max)?.unwrap_or(max.min(43_200));
    let now = OffsetDateTime::now_utc();
    let mfa_at = match (call.params.get("SerialNumber"), call.params.get("TokenCode")) {
        (Some(serial), Some(code)) => Some(check_mfa(call, user_name.as_deref(), serial, code, now).await?),
        (None, None) => None,
        _ => return Err(QueryError::validation("SerialNumber and TokenCode must be given together.")),
    };
    let (Some(user), Some(user_name)) = (user, user_name) else {
        return Err(QueryError::access_denied("The root user's sessions are not supported; use an IAM user."));
    };
    let body = SessionBody {
        kind: SessionKind::User,
        name: user_name,
        principal_id: Some(user.unique_id.clone()),
        session_name: None,
        mfa_at,
        policy: None,
        tags: Vec::new(),
    };
    let (id, secret, token, expires) = store_session(call, &body, now, duration).await?;
    let mut w = ResponseWriter::new(Api::Sts, "GetSessionToken");
    w.element("Credentials", |c| {
        c.text("AccessKeyId", &id)
            .text("SecretAccessKey", &secret)
            .text("SessionToken", &token)
            .timestamp("Expiration", expires);
    });
    Ok(w)
}

/// AWS's limits for a session policy and for role chaining (a session assuming a role).
const MAX_SESSION_POLICY: usize = 2_048;
const CHAINED_MAX: u32 = 3600;

async fn assume_role(call: &Call<'_>) -> QueryResult {
    let arn = call.params.required("RoleArn")?;
    let session_name = call.params.required("RoleSessionName")?;
    let name_ok = (2..=64).contains(&session_name.len())
        && session_name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if !name_ok {
        return Err(QueryError::validation(format!(
            "1 validation error detected: Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64"
        )));
    }
    let (caller_mfa, chained, user_name) = match &call.caller {
        Caller::Root => return Err(QueryError::access_denied("Roles may not be assumed by root accounts.")),
        Caller::User { policies, .. } => {
            (None, false, Some(policies.principal.arn.rsplit('/').next().unwrap_or_default().to_owned()))
        }
        Caller::Session { session, .. } => (session.body.mfa_at, true, None),
    };
    let directory = call.identity.directory();
    let role_name = arn.rsplit('/').next().unwrap_or_default();
    let Some((role, _)) = directory
        .role(role_name)
        .filter(|(role, _)| call.identity.account().iam_arn("role", &role.path, &role.name) == arn)
    else {
        return Err(not_authorized(call, "sts:AssumeRole", arn));
    };
    let now = OffsetDateTime::now_utc();
    let mfa_at = match (call.params.get("SerialNumber"), call.params.get("TokenCode")) {
        (Some(serial), Some(code)) => Some(check_mfa(call, user_name.as_deref(), serial, code, now).await?),
        (None, None) => caller_mfa,
        _ => return Err(QueryError::validation("SerialNumber and TokenCode must be given together.")),
    };
    let max = if chained { CHAINED_MAX } else { role.max_session_duration };
    let duration = call.params.u32_in("DurationSeconds", 900, max)?.unwrap_or(3600.min(max));
    let policy = call.params.get("Policy").map(str::to_owned);
    if let Some(document) = &policy {
        latchkey_policy::parse(document, latchkey_policy::PolicyKind::Session, MAX_SESSION_POLICY)
            .map_err(|e| QueryError::malformed_policy(e.to_string()))?;
    }
    let tags: Vec<Tag> = call.params.tags("Tags")?.into_iter().map(|(key, value)| Tag { key, value }).collect();
    if tags.len() > 50 {
        return Err(QueryError::validation("A session can have at most 50 tags."));
    }
    // The trust policy is the role's resource policy for sts:AssumeRole: it alone admits a
    // principal it names; naming the account delegates to the caller's identity policies.
    let trust = crate::directory::compile(&role.name, PolicySource::Trust, &role.trust_policy, PolicyKind::Trust)
        .ok_or_else(QueryError::service_failure)?;
    let mut context = call.context.clone();
    context.insert("sts:RoleSessionName", session_name);
    if mfa_at.is_some() {
        context.insert("aws:MultiFactorAuthPresent", "true");
    }
    if let Some(external) = call.params.get("ExternalId") {
        context.insert("sts:ExternalId", external);
    }
    for tag in &tags {
        context.insert(&format!("aws:RequestTag/{}", tag.key), tag.value.as_str());
    }
    context.insert_multi("aws:TagKeys", tags.iter().map(|t| t.key.clone()));
    // Passing session tags also needs sts:TagSession, in the trust policy as AWS requires.
    let actions: &[&str] = if tags.is_empty() { &["sts:AssumeRole"] } else { &["sts:AssumeRole", "sts:TagSession"] };
    for action in actions {
        let decision = call.identity.authorize(&call.caller, action, arn, &context, Some(&trust));
        if decision.effect != Effect::Allow {
            return Err(not_authorized(call, action, arn));
        }
    }
    let body = SessionBody {
        kind: SessionKind::Role,
        name: role.name.clone(),
        principal_id: Some(role.id.clone()),
        session_name: Some(session_name.to_owned()),
        mfa_at,
        policy,
        tags,
    };
    let (id, secret, token, expires) = store_session(call, &body, now, duration).await?;
    let assumed_arn = call.identity.account().assumed_role_arn(&role.name, session_name);
    let mut w = ResponseWriter::new(Api::Sts, "AssumeRole");
    w.element("Credentials", |c| {
        c.text("AccessKeyId", &id)
            .text("SecretAccessKey", &secret)
            .text("SessionToken", &token)
            .timestamp("Expiration", expires);
    })
    .element("AssumedRoleUser", |u| {
        u.text("AssumedRoleId", &format!("{}:{session_name}", role.id)).text("Arn", &assumed_arn);
    });
    Ok(w)
}

fn not_authorized(call: &Call<'_>, action: &str, role_arn: &str) -> QueryError {
    let caller = call.caller.principal(call.identity.account()).arn;
    QueryError::access_denied(format!("User: {caller} is not authorized to perform: {action} on resource: {role_arn}"))
}

/// Stores a new session; returns its key id, secret, token and expiry.
async fn store_session(
    call: &Call<'_>,
    body: &SessionBody,
    now: OffsetDateTime,
    duration: u32,
) -> Result<(String, String, String, OffsetDateTime), QueryError> {
    let id = new_id("ASIA");
    let secret = new_secret();
    let token = session_token_value();
    let expires = now + Duration::seconds(i64::from(duration));
    let record = SessionRecord {
        access_key_id: id.clone(),
        secret_sealed: call.identity.master().seal(Purpose::SessionSecret, &id, secret.as_bytes()),
        token_hash: token_hash(&token),
        body: serde_json::to_string(body).map_err(|_| QueryError::service_failure())?,
        issued: now,
        expires,
    };
    call.identity.store().create_session(&record).await.map_err(internal)?;
    Ok((id, secret, token, expires))
}

/// Checks a TOTP code against the caller's enabled device and spends its time step
/// (`Identity::check_mfa`).
async fn check_mfa(
    call: &Call<'_>,
    user_name: Option<&str>,
    serial: &str,
    code: &str,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, QueryError> {
    match call.identity.check_mfa(user_name, serial, code, now).await.map_err(internal)? {
        true => Ok(now),
        false => {
            Err(QueryError::access_denied("MultiFactorAuthentication failed with invalid MFA one time pass code."))
        }
    }
}

/// A session token: 96 random bytes, base64 (AWS's are opaque and several hundred characters).
fn session_token_value() -> String {
    let parts: [[u8; 32]; 3] = [rand::random(), rand::random(), rand::random()];
    base64::engine::general_purpose::STANDARD.encode(parts.concat())
}
