//! The IAM query API's actions, one file per family: users and tags (`users.rs`), access keys
//! (`keys.rs`), inline policies of users, groups and roles (`inline.rs`), virtual MFA devices
//! (`mfa.rs`), groups and membership (`groups.rs`), roles and their trust policies
//! (`roles.rs`), managed policies and their versions (`managed.rs`), managed policy attachments
//! (`attach.rs`), permissions boundaries (`boundaries.rs`) and the account summary
//! (`account.rs`), the policy simulator (`simulate.rs`). The principals that carry policies are
//! reached through `holder.rs`.

mod account;
mod attach;
mod boundaries;
mod groups;
mod holder;
mod inline;
mod keys;
mod managed;
mod mfa;
mod roles;
mod simulate;
mod users;

use latchkey_meta::{EntryKind, EntryWrite};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{Call, QueryResult};
use crate::model::{ManagedPolicy, Tag, User};
use crate::paging::Pager;
use crate::query::{Api, QueryError, ResponseWriter};
use holder::Holder;

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
        "UpdateUser" => users::update(call).await,
        "PutUserPolicy" => inline::put(call, Holder::User, "PutUserPolicy").await,
        "GetUserPolicy" => inline::get(call, Holder::User, "GetUserPolicy"),
        "ListUserPolicies" => inline::list(call, Holder::User, "ListUserPolicies"),
        "DeleteUserPolicy" => inline::delete(call, Holder::User, "DeleteUserPolicy").await,
        "PutGroupPolicy" => inline::put(call, Holder::Group, "PutGroupPolicy").await,
        "GetGroupPolicy" => inline::get(call, Holder::Group, "GetGroupPolicy"),
        "ListGroupPolicies" => inline::list(call, Holder::Group, "ListGroupPolicies"),
        "DeleteGroupPolicy" => inline::delete(call, Holder::Group, "DeleteGroupPolicy").await,
        "PutRolePolicy" => inline::put(call, Holder::Role, "PutRolePolicy").await,
        "GetRolePolicy" => inline::get(call, Holder::Role, "GetRolePolicy"),
        "ListRolePolicies" => inline::list(call, Holder::Role, "ListRolePolicies"),
        "DeleteRolePolicy" => inline::delete(call, Holder::Role, "DeleteRolePolicy").await,
        "CreateGroup" => groups::create(call).await,
        "GetGroup" => groups::get(call),
        "ListGroups" => groups::list(call),
        "DeleteGroup" => groups::delete(call).await,
        "AddUserToGroup" => groups::add_user(call).await,
        "RemoveUserFromGroup" => groups::remove_user(call).await,
        "ListGroupsForUser" => groups::list_for_user(call),
        "CreatePolicy" => managed::create(call).await,
        "GetPolicy" => managed::get(call),
        "ListPolicies" => managed::list(call),
        "DeletePolicy" => managed::delete(call).await,
        "CreatePolicyVersion" => managed::create_version(call).await,
        "GetPolicyVersion" => managed::get_version(call),
        "ListPolicyVersions" => managed::list_versions(call),
        "SetDefaultPolicyVersion" => managed::set_default_version(call).await,
        "DeletePolicyVersion" => managed::delete_version(call).await,
        "ListEntitiesForPolicy" => managed::list_entities(call),
        "AttachUserPolicy" => attach::attach(call, Holder::User, "AttachUserPolicy").await,
        "DetachUserPolicy" => attach::detach(call, Holder::User, "DetachUserPolicy").await,
        "ListAttachedUserPolicies" => attach::list(call, Holder::User, "ListAttachedUserPolicies"),
        "AttachGroupPolicy" => attach::attach(call, Holder::Group, "AttachGroupPolicy").await,
        "DetachGroupPolicy" => attach::detach(call, Holder::Group, "DetachGroupPolicy").await,
        "ListAttachedGroupPolicies" => attach::list(call, Holder::Group, "ListAttachedGroupPolicies"),
        "AttachRolePolicy" => attach::attach(call, Holder::Role, "AttachRolePolicy").await,
        "DetachRolePolicy" => attach::detach(call, Holder::Role, "DetachRolePolicy").await,
        "ListAttachedRolePolicies" => attach::list(call, Holder::Role, "ListAttachedRolePolicies"),
        "PutUserPermissionsBoundary" => boundaries::put(call, Holder::User, "PutUserPermissionsBoundary").await,
        "DeleteUserPermissionsBoundary" => {
            boundaries::delete(call, Holder::User, "DeleteUserPermissionsBoundary").await
        }
        "PutRolePermissionsBoundary" => boundaries::put(call, Holder::Role, "PutRolePermissionsBoundary").await,
        "DeleteRolePermissionsBoundary" => {
            boundaries::delete(call, Holder::Role, "DeleteRolePermissionsBoundary").await
        }
        "GetAccountSummary" => account::summary(call).await,
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
        // Only a user (or a user's session) is a user by default; a role session must name one.
        None => match &call.caller {
            crate::Caller::User { policies, .. } => {
                policies.principal.arn.rsplit('/').next().unwrap_or_default().to_owned()
            }
            crate::Caller::Session { session, policies, .. } if session.body.kind == crate::SessionKind::User => {
                policies.principal.arn.rsplit('/').next().unwrap_or_default().to_owned()
            }
            crate::Caller::Session { .. } => {
                return Err(QueryError::validation("UserName is required when the caller is a role session."));
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

/// Deletes an entry as read now; `DeleteConflict` if it changed meanwhile (the caller's checks
/// were made on what it was).
async fn remove(call: &Call<'_>, kind: EntryKind, name: &str) -> Result<(), QueryError> {
    let store = call.identity.store();
    let entry = store.get_entry(kind, name).await.map_err(internal)?.ok_or_else(|| {
        QueryError::no_such_entity(format!("The {} with name {name} cannot be found.", kind.as_str()))
    })?;
    if !store.delete_entry(kind, name, entry.revision).await.map_err(internal)? {
        return Err(QueryError::delete_conflict(format!(
            "The {} changed while it was being deleted; try again.",
            kind.as_str()
        )));
    }
    reload(call).await
}

/// A policy document as AWS returns it: URL-encoded (RFC 3986, so spaces are `%20`); the CLI
/// and SDKs decode it.
fn url_encoded(document: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(document.as_bytes()).collect();
    encoded.replace('+', "%20")
}

fn policy_arn(call: &Call<'_>, policy: &ManagedPolicy) -> String {
    call.identity.account().iam_arn("policy", &policy.path, &policy.name)
}

/// The managed policy `arn` names, as AWS refuses an unknown one.
fn policy_by_arn(call: &Call<'_>, arn: &str) -> Result<ManagedPolicy, QueryError> {
    call.identity
        .directory()
        .policies
        .get(arn)
        .cloned()
        .ok_or_else(|| QueryError::no_such_entity(format!("Policy {arn} does not exist or is not attachable.")))
}

async fn reload(call: &Call<'_>) -> Result<(), QueryError> {
    call.identity.reload().await.map_err(internal)
}

/// `<Tags>` of a user or role.
fn write_tags<'a>(w: &mut ResponseWriter, tags: impl IntoIterator<Item = &'a Tag>) {
    w.list("Tags", tags, |m, tag| {
        m.text("Key", &tag.key).text("Value", &tag.value);
    });
}

/// ListUserTags and ListRoleTags: one page of `tags`, by key.
fn list_tags(call: &Call<'_>, action: &'static str, tags: &[Tag]) -> QueryResult {
    let mut sorted: Vec<&Tag> = tags.iter().collect();
    sorted.sort_by_key(|t| t.key.to_lowercase());
    let page = Pager::new(&call.params)?.page(sorted, |t| t.key.to_lowercase());
    let mut w = ResponseWriter::new(Api::Iam, action);
    write_tags(&mut w, page.items);
    w.truncation(page.next_marker);
    Ok(w)
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

/// The name (`param`, at most `max` characters) and `Path` (by default `/`) of an entity to
/// create, both checked.
fn name_and_path<'c>(call: &'c Call<'_>, param: &str, max: usize) -> Result<(&'c str, &'c str), QueryError> {
    let name = call.params.required(param)?;
    check_name(param, name, max)?;
    let path = call.params.get("Path").unwrap_or("/");
    check_path(path)?;
    Ok((name, path))
}

/// Refuses to create one more of `what` (`Users`, ...) when the account has `max` already.
fn within_quota(count: usize, max: usize, what: &str) -> Result<(), QueryError> {
    if count >= max {
        return Err(QueryError::limit_exceeded(format!("Cannot exceed quota for {what}PerAccount: {max}")));
    }
    Ok(())
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
