//! IAM groups and their members: CreateGroup, GetGroup, ListGroups, DeleteGroup, AddUserToGroup,
//! RemoveUserFromGroup, ListGroupsForUser. Membership is stored on the user (`User.groups`), so
//! that a user's policies compile from its own entry; a group's members are found by looking.

use latchkey_meta::EntryKind;
use time::OffsetDateTime;

use super::{
    Call, QueryError, QueryResult, create as create_entry, modify, name_and_path, remove, target_user, user_arn, users,
    within_quota,
};
use crate::directory::Directory;
use crate::model::{Group, User, new_id};
use crate::paging::Pager;
use crate::query::{Api, ResponseWriter};

/// AWS's default quotas: groups in an account, and groups one user belongs to.
pub const MAX_GROUPS: usize = 300;
pub const MAX_GROUPS_PER_USER: usize = 10;

fn group_arn(call: &Call<'_>, group: &Group) -> String {
    call.identity.account().iam_arn("group", &group.path, &group.name)
}

fn write_group(w: &mut ResponseWriter, call: &Call<'_>, group: &Group) {
    w.text("Path", &group.path)
        .text("GroupName", &group.name)
        .text("GroupId", &group.id)
        .text("Arn", &group_arn(call, group))
        .timestamp("CreateDate", group.created);
}

fn named_group(call: &Call<'_>) -> Result<Group, QueryError> {
    let name = call.params.required("GroupName")?;
    call.identity
        .directory()
        .group(name)
        .cloned()
        .ok_or_else(|| QueryError::no_such_entity(format!("The group with name {name} cannot be found.")))
}

/// The users that name `group` among their groups, by name.
fn members<'d>(directory: &'d Directory, group: &str) -> Vec<&'d User> {
    let mut users: Vec<&User> = directory
        .users
        .values()
        .map(|(user, _)| user)
        .filter(|u| u.groups.iter().any(|g| g.eq_ignore_ascii_case(group)))
        .collect();
    users.sort_by_key(|u| u.name.to_lowercase());
    users
}

/// Adds `group` to a user's groups; already there is no change, as AWS answers it.
fn join(groups: &mut Vec<String>, group: &str) -> Result<(), QueryError> {
    if groups.iter().any(|g| g.eq_ignore_ascii_case(group)) {
        return Ok(());
    }
    if groups.len() >= MAX_GROUPS_PER_USER {
        return Err(QueryError::limit_exceeded(format!(
            "Cannot exceed quota for GroupsPerUser: {MAX_GROUPS_PER_USER}"
        )));
    }
    groups.push(group.to_owned());
    Ok(())
}

fn leave(groups: &mut Vec<String>, group: &str, user: &str) -> Result<(), QueryError> {
    let before = groups.len();
    groups.retain(|g| !g.eq_ignore_ascii_case(group));
    if groups.len() == before {
        return Err(QueryError::no_such_entity(format!("The user {user} is not in group {group}.")));
    }
    Ok(())
}

pub async fn create(call: &Call<'_>) -> QueryResult {
    let (name, path) = name_and_path(call, "GroupName", 128)?;
    let group = Group {
        name: name.to_owned(),
        id: new_id("AGPA"),
        path: path.to_owned(),
        created: OffsetDateTime::now_utc(),
        policies: Default::default(),
    };
    call.authorize("iam:CreateGroup", &group_arn(call, &group))?;
    within_quota(call.identity.directory().groups.len(), MAX_GROUPS, "Groups")?;
    create_entry(call, EntryKind::Group, name, &group).await?;
    let mut w = ResponseWriter::new(Api::Iam, "CreateGroup");
    w.element("Group", |g| write_group(g, call, &group));
    Ok(w)
}

pub fn get(call: &Call<'_>) -> QueryResult {
    let group = named_group(call)?;
    call.authorize("iam:GetGroup", &group_arn(call, &group))?;
    let directory = call.identity.directory();
    let mut w = ResponseWriter::new(Api::Iam, "GetGroup");
    let page = Pager::new(&call.params)?.page(members(&directory, &group.name), |u| u.name.to_lowercase());
    w.element("Group", |g| write_group(g, call, &group))
        .list("Users", page.items, |m, user| users::write_user(m, call, user))
        .truncation(page.next_marker);
    Ok(w)
}

pub fn list(call: &Call<'_>) -> QueryResult {
    let prefix = call.params.get("PathPrefix").unwrap_or("/");
    call.authorize("iam:ListGroups", &call.identity.account().iam_arn("group", prefix, "*"))?;
    let directory = call.identity.directory();
    let mut groups: Vec<&Group> = directory.groups.values().filter(|g| g.path.starts_with(prefix)).collect();
    groups.sort_by_key(|g| g.name.to_lowercase());
    let page = Pager::new(&call.params)?.page(groups, |g| g.name.to_lowercase());
    let mut w = ResponseWriter::new(Api::Iam, "ListGroups");
    w.list("Groups", page.items, |m, group| write_group(m, call, group)).truncation(page.next_marker);
    Ok(w)
}

pub async fn delete(call: &Call<'_>) -> QueryResult {
    let group = named_group(call)?;
    call.authorize("iam:DeleteGroup", &group_arn(call, &group))?;
    let has_members = !members(&call.identity.directory(), &group.name).is_empty();
    let has_policies = !group.policies.inline.is_empty() || !group.policies.managed.is_empty();
    if has_members || has_policies {
        return Err(QueryError::delete_conflict("Cannot delete entity, must remove referenced objects first."));
    }
    remove(call, EntryKind::Group, &group.name).await?;
    // Users added while it was being deleted (AddUserToGroup checks after its write too, so one
    // of the two sees the other): their membership would pass to a new group of this name.
    let stragglers: Vec<String> =
        members(&call.identity.directory(), &group.name).into_iter().map(|u| u.name.clone()).collect();
    for user in stragglers {
        match modify(call, EntryKind::User, &user, |u: &mut User| leave(&mut u.groups, &group.name, &user)).await {
            Err(e) if e.code != "NoSuchEntity" => return Err(e),
            _ => {}
        }
    }
    Ok(ResponseWriter::new(Api::Iam, "DeleteGroup"))
}

pub async fn add_user(call: &Call<'_>) -> QueryResult {
    let (group, user) = change_membership(call, "AddUserToGroup", |groups, group, _| join(groups, group)).await?;
    // Deleted (or replaced) meanwhile: see `delete`.
    if call.identity.directory().group(&group.name).is_none_or(|now| now.id != group.id) {
        let undo = modify(call, EntryKind::User, &user, |u: &mut User| leave(&mut u.groups, &group.name, &user));
        match undo.await {
            Err(e) if e.code != "NoSuchEntity" => return Err(e),
            _ => {}
        }
        return Err(QueryError::no_such_entity(format!("The group with name {} cannot be found.", group.name)));
    }
    Ok(ResponseWriter::new(Api::Iam, "AddUserToGroup"))
}

pub async fn remove_user(call: &Call<'_>) -> QueryResult {
    change_membership(call, "RemoveUserFromGroup", leave).await?;
    Ok(ResponseWriter::new(Api::Iam, "RemoveUserFromGroup"))
}

/// Applies `change(user's groups, group, user)` to the user `UserName` (authorised on the group,
/// whose ARN AWS checks for both actions): the group as it was, and the user's name.
async fn change_membership<F>(call: &Call<'_>, action: &'static str, change: F) -> Result<(Group, String), QueryError>
where
    F: Fn(&mut Vec<String>, &str, &str) -> Result<(), QueryError>,
{
    let group = named_group(call)?;
    call.authorize(&format!("iam:{action}"), &group_arn(call, &group))?;
    call.params.required("UserName")?;
    let user = target_user(call)?;
    modify(call, EntryKind::User, &user.name, |u: &mut User| change(&mut u.groups, &group.name, &user.name)).await?;
    Ok((group, user.name))
}

pub fn list_for_user(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:ListGroupsForUser", &user_arn(call, &user))?;
    let directory = call.identity.directory();
    let mut groups: Vec<&Group> = user.groups.iter().filter_map(|name| directory.group(name)).collect();
    groups.sort_by_key(|g| g.name.to_lowercase());
    let page = Pager::new(&call.params)?.page(groups, |g| g.name.to_lowercase());
    let mut w = ResponseWriter::new(Api::Iam, "ListGroupsForUser");
    w.list("Groups", page.items, |m, group| write_group(m, call, group)).truncation(page.next_marker);
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joining_is_idempotent_regardless_of_case_and_capped() {
        let mut groups = vec!["Admins".to_owned()];
        join(&mut groups, "admins").unwrap();
        assert_eq!(groups, ["Admins"]);
        for i in 1..MAX_GROUPS_PER_USER {
            join(&mut groups, &format!("g{i}")).unwrap();
        }
        assert_eq!(groups.len(), MAX_GROUPS_PER_USER);
        assert_eq!(join(&mut groups, "one-more").unwrap_err().code, "LimitExceeded");
        // A group the user is in already is still fine at the cap.
        join(&mut groups, "g3").unwrap();
    }

    #[test]
    fn leaving_a_group_one_is_not_in_is_no_such_entity() {
        let mut groups = vec!["Admins".to_owned(), "Readers".to_owned()];
        leave(&mut groups, "ADMINS", "alice").unwrap();
        assert_eq!(groups, ["Readers"]);
        let refused = leave(&mut groups, "Admins", "alice").unwrap_err();
        assert_eq!((refused.code, groups.len()), ("NoSuchEntity", 1));
    }
}
