//! IAM users: CreateUser, GetUser, ListUsers, DeleteUser, TagUser, UntagUser, ListUserTags.

use latchkey_meta::EntryKind;
use time::OffsetDateTime;

use super::{
    Call, QueryError, QueryResult, check_name, check_path, create as create_entry, internal, modify, target_user,
    user_arn,
};
use crate::model::{Tag, User, new_id};
use crate::query::{Api, ResponseWriter};

fn write_user(w: &mut ResponseWriter, call: &Call<'_>, user: &User) {
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

fn write_tags(w: &mut ResponseWriter, tags: &[Tag]) {
    w.list("Tags", tags, |m, tag| {
        m.text("Key", &tag.key).text("Value", &tag.value);
    });
}

fn parse_tags(call: &Call<'_>) -> Result<Vec<Tag>, QueryError> {
    let tags: Vec<Tag> = call.params.tags("Tags")?.into_iter().map(|(key, value)| Tag { key, value }).collect();
    if tags.len() > 50 {
        return Err(QueryError::limit_exceeded("A user can have at most 50 tags."));
    }
    Ok(tags)
}

pub async fn create(call: &Call<'_>) -> QueryResult {
    let name = call.params.required("UserName")?;
    check_name("UserName", name, 64)?;
    let path = call.params.get("Path").unwrap_or("/");
    check_path(path)?;
    let user = User {
        name: name.to_owned(),
        id: new_id("AIDA"),
        path: path.to_owned(),
        created: OffsetDateTime::now_utc(),
        tags: parse_tags(call)?,
        boundary: None,
        policies: Default::default(),
        groups: Vec::new(),
    };
    call.authorize("iam:CreateUser", &user_arn(call, &user))?;
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
    let mut w = ResponseWriter::new(Api::Iam, "ListUsers");
    w.list("Users", users, |m, user| write_user(m, call, user)).bool("IsTruncated", false);
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
    let entry = call
        .identity
        .store()
        .get_entry(EntryKind::User, &user.name)
        .await
        .map_err(internal)?
        .ok_or_else(|| QueryError::no_such_entity(format!("The user with name {} cannot be found.", user.name)))?;
    if !call.identity.store().delete_entry(EntryKind::User, &user.name, entry.revision).await.map_err(internal)? {
        return Err(QueryError::delete_conflict("The user changed while it was being deleted; try again."));
    }
    call.identity.reload().await.map_err(internal)?;
    Ok(ResponseWriter::new(Api::Iam, "DeleteUser"))
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
    let mut w = ResponseWriter::new(Api::Iam, "ListUserTags");
    write_tags(&mut w, &user.tags);
    w.bool("IsTruncated", false);
    Ok(w)
}
