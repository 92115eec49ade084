//! IAM users: CreateUser, GetUser, ListUsers, UpdateUser (rename and move), DeleteUser, TagUser,
//! UntagUser, ListUserTags.

use latchkey_meta::{EntryKind, EntryWrite};
use time::OffsetDateTime;

use super::{
    Call, QueryError, QueryResult, check_name, check_path, create as create_entry, internal, modify, name_and_path,
    policy_by_arn, reload, remove, target_user, user_arn, within_quota, write_tags,
};
use crate::model::{Tag, User, new_id};
use crate::paging::Pager;
use crate::query::{Api, ResponseWriter};

/// AWS's default quota of users in an account.
pub const MAX_USERS: usize = 5_000;

pub fn write_user(w: &mut ResponseWriter, call: &Call<'_>, user: &User) {
    w.text("Path", &user.path)
        .text("UserName", &user.name)
        .text("UserId", &user.id)
        .text("Arn", &user_arn(call, user))
        .timestamp("CreateDate", user.created);
    if let Some(boundary) = &user.boundary {
        w.element("PermissionsBoundary", |b| {
            b.text("PermissionsBoundaryType", "Policy").text("PermissionsBoundaryArn", boundary);
        });
    }
    if !user.tags.is_empty() {
        write_tags(w, &user.tags);
    }
}

fn parse_tags(call: &Call<'_>) -> Result<Vec<Tag>, QueryError> {
    let tags: Vec<Tag> = call.params.tags("Tags")?.into_iter().map(|(key, value)| Tag { key, value }).collect();
    if tags.len() > 50 {
        return Err(QueryError::limit_exceeded("A user can have at most 50 tags."));
    }
    Ok(tags)
}

pub async fn create(call: &Call<'_>) -> QueryResult {
    let (name, path) = name_and_path(call, "UserName", 64)?;
    let boundary = call.params.get("PermissionsBoundary");
    if let Some(arn) = boundary {
        policy_by_arn(call, arn)?;
    }
    let user = User {
        name: name.to_owned(),
        id: new_id("AIDA"),
        path: path.to_owned(),
        created: OffsetDateTime::now_utc(),
        tags: parse_tags(call)?,
        boundary: boundary.map(str::to_owned),
        policies: Default::default(),
        groups: Vec::new(),
    };
    call.authorize("iam:CreateUser", &user_arn(call, &user))?;
    within_quota(call.identity.directory().users.len(), MAX_USERS, "Users")?;
    create_entry(call, EntryKind::User, name, &user).await?;
    let mut w = ResponseWriter::new(Api::Iam, "CreateUser");
    w.element("User", |u| write_user(u, call, &user));
    Ok(w)
}

pub fn get(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:GetUser", &user_arn(call, &user))?;
    let mut w = ResponseWriter::new(Api::Iam, "GetUser");
    w.element("User", |u| write_user(u, call, &user));
    Ok(w)
}

pub fn list(call: &Call<'_>) -> QueryResult {
    let prefix = call.params.get("PathPrefix").unwrap_or("/");
    call.authorize("iam:ListUsers", &call.identity.account().iam_arn("user", prefix, "*"))?;
    let directory = call.identity.directory();
    let mut users: Vec<&User> =
        directory.users.values().map(|(user, _)| user).filter(|u| u.path.starts_with(prefix)).collect();
    users.sort_by_key(|u| u.name.to_lowercase());
    let page = Pager::new(&call.params)?.page(users, |u| u.name.to_lowercase());
    let mut w = ResponseWriter::new(Api::Iam, "ListUsers");
    w.list("Users", page.items, |m, user| write_user(m, call, user)).truncation(page.next_marker);
    Ok(w)
}

pub async fn delete(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:DeleteUser", &user_arn(call, &user))?;
    let directory = call.identity.directory();
    let lower = user.name.to_lowercase();
    let has_keys = directory.keys.values().any(|k| k.user == lower);
    let devices = call.identity.store().list_mfa_devices().await.map_err(internal)?;
    let has_mfa = devices.iter().any(|d| d.user_name.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(&user.name)));
    let attached = !user.policies.inline.is_empty() || !user.policies.managed.is_empty() || user.boundary.is_some();
    if has_keys || has_mfa || attached || !user.groups.is_empty() {
        return Err(QueryError::delete_conflict("Cannot delete entity, must remove referenced objects first."));
    }
    remove(call, EntryKind::User, &user.name).await?;
    Ok(ResponseWriter::new(Api::Iam, "DeleteUser"))
}

pub async fn update(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:UpdateUser", &user_arn(call, &user))?;
    let new_name = call.params.get("NewUserName").unwrap_or(&user.name).to_owned();
    check_name("NewUserName", &new_name, 64)?;
    let new_path = call.params.get("NewPath").unwrap_or(&user.path).to_owned();
    check_path(&new_path)?;
    // The user's ARN changes with its name and path: the caller must be allowed both.
    let moved = User { name: new_name.clone(), path: new_path.clone(), ..user.clone() };
    call.authorize("iam:UpdateUser", &user_arn(call, &moved))?;
    if new_name == user.name {
        modify(call, EntryKind::User, &user.name, |u: &mut User| {
            u.path = new_path.clone();
            Ok(())
        })
        .await?;
    } else {
        rename(call, &user.name, &new_name, &new_path).await?;
    }
    Ok(ResponseWriter::new(Api::Iam, "UpdateUser"))
}

/// Moves a user to a new name in one store transaction, with its access keys and MFA devices;
/// its groups, policies and boundary are in its entry and move with it.
async fn rename(call: &Call<'_>, old: &str, new: &str, path: &str) -> Result<(), QueryError> {
    let store = call.identity.store();
    for _ in 0..8 {
        let entry = store
            .get_entry(EntryKind::User, old)
            .await
            .map_err(internal)?
            .ok_or_else(|| QueryError::no_such_entity(format!("The user with name {old} cannot be found.")))?;
        let mut user: User = serde_json::from_str(&entry.body).map_err(|_| QueryError::service_failure())?;
        user.name = new.to_owned();
        user.path = path.to_owned();
        let body = serde_json::to_string(&user).map_err(|_| QueryError::service_failure())?;
        if let EntryWrite::Written(_) = store.rename_user(old, new, &body, entry.revision).await.map_err(internal)? {
            return reload(call).await;
        }
        // Refused: the new name is taken, or the user changed meanwhile (then try again).
        let taken =
            !new.eq_ignore_ascii_case(old) && store.get_entry(EntryKind::User, new).await.map_err(internal)?.is_some();
        if taken {
            return Err(QueryError::entity_already_exists(format!("User with name {new} already exists.")));
        }
    }
    Err(QueryError::service_failure())
}

pub async fn tag(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:TagUser", &user_arn(call, &user))?;
    let tags = parse_tags(call)?;
    modify(call, EntryKind::User, &user.name, |u: &mut User| {
        for tag in &tags {
            u.tags.retain(|t| !t.key.eq_ignore_ascii_case(&tag.key));
            u.tags.push(tag.clone());
        }
        if u.tags.len() > 50 {
            return Err(QueryError::limit_exceeded("A user can have at most 50 tags."));
        }
        Ok(())
    })
    .await?;
    Ok(ResponseWriter::new(Api::Iam, "TagUser"))
}

pub async fn untag(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:UntagUser", &user_arn(call, &user))?;
    let keys: Vec<String> = call.params.members("TagKeys").into_iter().map(str::to_owned).collect();
    modify(call, EntryKind::User, &user.name, |u: &mut User| {
        u.tags.retain(|t| !keys.iter().any(|k| k.eq_ignore_ascii_case(&t.key)));
        Ok(())
    })
    .await?;
    Ok(ResponseWriter::new(Api::Iam, "UntagUser"))
}

pub fn list_tags(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:ListUserTags", &user_arn(call, &user))?;
    super::list_tags(call, "ListUserTags", &user.tags)
}
