//! The IAM query API's actions, one file per family: users and tags (`users.rs`), access keys
//! (`keys.rs`), inline policies (`inline.rs`), virtual MFA devices (`mfa.rs`), roles (`roles.rs`),
//! the policy simulator (`simulate.rs`).

mod inline;
mod keys;
mod mfa;
mod roles;
mod simulate;
mod users;

use latchkey_meta::{EntryKind, EntryWrite};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{Call, QueryResult};
use crate::model::User;
use crate::query::QueryError;

pub async fn dispatch(call: &Call<'_>, action: &str) -> QueryResult {
    match action {
        "CreateUser" => users::create(call).await,
        "GetUser" => users::get(call),
        "ListUsers" => users::list(call),
        "DeleteUser" => users::delete(call).await,
        "TagUser" => users::tag(call).await,
        "UntagUser" => users::untag(call).await,
        "ListUserTags" => users::list_tags(call),
        "CreateAccessKey" => keys::create(call).await,
        "ListAccessKeys" => keys::list(call),
        "UpdateAccessKey" => keys::update(call).await,
        "DeleteAccessKey" => keys::delete(call).await,
        "GetAccessKeyLastUsed" => keys::last_used(call),
        "PutUserPolicy" => inline::put(call).await,
        "GetUserPolicy" => inline::get(call),
        "ListUserPolicies" => inline::list(call),
        "DeleteUserPolicy" => inline::delete(call).await,
        "CreateVirtualMFADevice" => mfa::create(call).await,
        "EnableMFADevice" => mfa::enable(call).await,
        "DeactivateMFADevice" => mfa::deactivate(call).await,
        "ListMFADevices" => mfa::list(call).await,
        "ListVirtualMFADevices" => mfa::list_virtual(call).await,
        "DeleteVirtualMFADevice" => mfa::delete(call).await,
        "CreateRole" => roles::create(call).await,
        "GetRole" => roles::get(call),
        "ListRoles" => roles::list(call),
        "UpdateRole" => roles::update(call).await,
        "DeleteRole" => roles::delete(call).await,
        "UpdateAssumeRolePolicy" => roles::update_trust(call).await,
        "TagRole" => roles::tag(call).await,
        "UntagRole" => roles::untag(call).await,
        "ListRoleTags" => roles::list_tags(call),
        "SimulatePrincipalPolicy" => simulate::principal(call),
        "SimulateCustomPolicy" => simulate::custom(call),
        other => Err(QueryError::invalid_action(other, crate::query::Api::Iam.version())),
    }
}

/// The user an action names (`UserName`), or else the calling user, as AWS defaults it.
fn target_user(call: &Call<'_>) -> Result<User, QueryError> {
    let directory = call.identity.directory();
    let name = match call.params.get("UserName") {
        Some(name) => name.to_owned(),
        None => match &call.caller {
            crate::Caller::User { policies, .. } | crate::Caller::Session { policies, .. } => {
                policies.principal.arn.rsplit('/').next().unwrap_or_default().to_owned()
            }
            crate::Caller::Root => {
                return Err(QueryError::validation("UserName is required when the caller is the root user."));
            }
        },
    };
    directory
        .user(&name)
        .map(|(user, _)| user.clone())
        .ok_or_else(|| QueryError::no_such_entity(format!("The user with name {name} cannot be found.")))
}

fn user_arn(call: &Call<'_>, user: &User) -> String {
    call.identity.account().iam_arn("user", &user.path, &user.name)
}

/// Reads an entry, applies `change` and writes it back if nobody wrote it meanwhile (retrying
/// otherwise), then reloads the directory so the change applies to the next request here.
async fn modify<T, F>(call: &Call<'_>, kind: EntryKind, name: &str, mut change: F) -> Result<T, QueryError>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(&mut T) -> Result<(), QueryError>,
{
    let store = call.identity.store();
    for _ in 0..8 {
        let entry = store.get_entry(kind, name).await.map_err(internal)?.ok_or_else(|| {
            QueryError::no_such_entity(format!("The {} with name {name} cannot be found.", kind.as_str()))
        })?;
        let mut value: T = serde_json::from_str(&entry.body).map_err(|_| QueryError::service_failure())?;
        change(&mut value)?;
        let body = serde_json::to_string(&value).map_err(|_| QueryError::service_failure())?;
        if let EntryWrite::Written(_) =
            store.put_entry(kind, name, &body, Some(entry.revision)).await.map_err(internal)?
        {
            reload(call).await?;
            return Ok(value);
        }
    }
    Err(QueryError::service_failure())
}

/// Creates an entry; `EntityAlreadyExists` when one of this kind has the name (any case).
async fn create<T: Serialize>(call: &Call<'_>, kind: EntryKind, name: &str, value: &T) -> Result<(), QueryError> {
    let body = serde_json::to_string(value).map_err(|_| QueryError::service_failure())?;
    match call.identity.store().put_entry(kind, name, &body, None).await.map_err(internal)? {
        EntryWrite::Written(_) => reload(call).await,
        EntryWrite::Conflict => Err(QueryError::entity_already_exists(format!(
            "{} with name {name} already exists.",
            capitalised(kind.as_str())
        ))),
    }
}

async fn reload(call: &Call<'_>) -> Result<(), QueryError> {
    call.identity.reload().await.map_err(internal)
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

pub(crate) fn internal(e: latchkey_meta::MetaError) -> QueryError {
    tracing::error!(error = %e, "identity store failed");
    QueryError::service_failure()
}

/// IAM names: 1 to `max` characters of letters, digits and `+=,.@_-`.
fn check_name(param: &str, value: &str, max: usize) -> Result<(), QueryError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(QueryError::validation(format!(
            "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+ and have length between 1 and {max}",
            lower_first(param)
        )))
    }
}

/// IAM paths: `/`, or `/` + segments + `/`.
fn check_path(value: &str) -> Result<(), QueryError> {
    let ok = value.starts_with('/')
        && value.ends_with('/')
        && value.len() <= 512
        && value.chars().all(|c| ('!'..='~').contains(&c));
    if ok { Ok(()) } else { Err(QueryError::validation(format!("The specified value for path is invalid: {value}"))) }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}
