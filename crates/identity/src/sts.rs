//! The STS query API: GetCallerIdentity and GetSessionToken (temporary credentials, with an MFA
//! code when the caller has a device: `aws:MultiFactorAuthPresent` is true only then).

use base64::Engine;
use latchkey_meta::SessionRecord;
use time::{Duration, OffsetDateTime};

use crate::api::{Call, QueryResult};
use crate::iam::internal;
use crate::model::{new_id, new_secret};
use crate::query::{Api, QueryError, ResponseWriter};
use crate::seal::Purpose;
use crate::service::{Caller, SessionBody, SessionKind, token_hash};

pub async fn dispatch(call: &Call<'_>, action: &str) -> QueryResult {
    match action {
        "GetCallerIdentity" => caller_identity(call),
        "GetSessionToken" => session_token(call).await,
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
    let (user_name, max) = match &call.caller {
        // AWS: root sessions last at most an hour.
        Caller::Root => (None, 3600),
        Caller::User { policies, .. } => {
            (Some(policies.principal.arn.rsplit('/').next().unwrap_or_default().to_owned()), 129_600)
        }
        Caller::Session { .. } => {
            return Err(QueryError::access_denied("Cannot call GetSessionToken with session credentials"));
        }
    };
    let duration = call.params.u32_in("DurationSeconds", 900, max)?.unwrap_or(max.min(43_200));
    let now = OffsetDateTime::now_utc();
    let mfa_at = match (call.params.get("SerialNumber"), call.params.get("TokenCode")) {
        (Some(serial), Some(code)) => Some(check_mfa(call, user_name.as_deref(), serial, code, now).await?),
        (None, None) => None,
        _ => return Err(QueryError::validation("SerialNumber and TokenCode must be given together.")),
    };
    let Some(user_name) = user_name else {
        return Err(QueryError::access_denied("The root user's sessions are not supported; use an IAM user."));
    };
    let id = new_id("ASIA");
    let secret = new_secret();
    let token = session_token_value();
    let expires = now + Duration::seconds(i64::from(duration));
    let body = SessionBody {
        kind: SessionKind::User,
        name: user_name,
        session_name: None,
        mfa_at,
        policy: None,
        tags: Vec::new(),
    };
    let record = SessionRecord {
        access_key_id: id.clone(),
        secret_sealed: call.identity.master().seal(Purpose::SessionSecret, &id, secret.as_bytes()),
        token_hash: token_hash(&token),
        body: serde_json::to_string(&body).map_err(|_| QueryError::service_failure())?,
        issued: now,
        expires,
    };
    call.identity.store().create_session(&record).await.map_err(internal)?;
    let mut w = ResponseWriter::new(Api::Sts, "GetSessionToken");
    w.element("Credentials", |c| {
        c.text("AccessKeyId", &id)
            .text("SecretAccessKey", &secret)
            .text("SessionToken", &token)
            .timestamp("Expiration", expires);
    });
    Ok(w)
}

/// Checks a TOTP code against the caller's enabled device and spends its time step, so the same
/// code is refused the second time, on every replica.
async fn check_mfa(
    call: &Call<'_>,
    user_name: Option<&str>,
    serial: &str,
    code: &str,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, QueryError> {
    let invalid = || QueryError::access_denied("MultiFactorAuthentication failed with invalid MFA one time pass code.");
    let device = call.identity.store().get_mfa_device(serial).await.map_err(internal)?.ok_or_else(invalid)?;
    let owner_matches = match (user_name, device.user_name.as_deref()) {
        (Some(user), Some(owner)) => user.eq_ignore_ascii_case(owner),
        _ => false,
    };
    if !owner_matches {
        return Err(invalid());
    }
    let seed =
        call.identity.master().open(Purpose::MfaSeed, &device.serial, &device.seed_sealed).map_err(|_| invalid())?;
    let last = u64::try_from(device.last_step).ok();
    let step = crate::mfa::verify(&seed, code, now.unix_timestamp().max(0) as u64, last).map_err(|_| invalid())?;
    let step = i64::try_from(step).map_err(|_| invalid())?;
    if !call.identity.store().spend_mfa_step(&device.serial, step).await.map_err(internal)? {
        return Err(invalid());
    }
    Ok(now)
}

/// A session token: 96 random bytes, base64 (AWS's are opaque and several hundred characters).
fn session_token_value() -> String {
    let parts: [[u8; 32]; 3] = [rand::random(), rand::random(), rand::random()];
    base64::engine::general_purpose::STANDARD.encode(parts.concat())
}
