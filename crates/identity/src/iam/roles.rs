//! IAM roles: CreateRole, GetRole, ListRoles, UpdateRole, DeleteRole, UpdateAssumeRolePolicy,
//! TagRole, UntagRole, ListRoleTags. A role's trust policy says who may assume it
//! (`sts:AssumeRole`, in `sts.rs`).

use latchkey_meta::EntryKind;
use latchkey_policy::PolicyKind;
use time::OffsetDateTime;

use super::{Call, QueryError, QueryResult, check_name, check_path, create as create_entry, internal, modify};
use crate::model::{Role, Tag, new_id};
use crate::paging::Pager;
use crate::query::{Api, ResponseWriter};

/// AWS's limit for a trust policy document.
const MAX_TRUST_POLICY: usize = 2_048;

pub fn role_arn(call: &Call<'_>, role: &Role) -> String {
    call.identity.account().iam_arn("role", &role.path, &role.name)
}

/// The role `RoleName` names.
pub fn target_role(call: &Call<'_>) -> Result<Role, QueryError> {
    let name = call.params.required("RoleName")?;
    call.identity
        .directory()
        .role(name)
        .map(|(role, _)| role.clone())
        .ok_or_else(|| QueryError::no_such_entity(format!("The role with name {name} cannot be found.")))
}

fn check_trust_policy(document: &str) -> Result<(), QueryError> {
    latchkey_policy::parse(document, PolicyKind::Trust, MAX_TRUST_POLICY)
        .map(|_| ())
        .map_err(|e| QueryError::malformed_policy(e.to_string()))
}

fn max_session_duration(call: &Call<'_>) -> Result<Option<u32>, QueryError> {
    call.params.u32_in("MaxSessionDuration", 3600, 43_200)
}

fn write_role(w: &mut ResponseWriter, call: &Call<'_>, role: &Role) {
    let trust: String = form_urlencoded::byte_serialize(role.trust_policy.as_bytes()).collect();
    w.text("Path", &role.path)
        .text("RoleName", &role.name)
        .text("RoleId", &role.id)
        .text("Arn", &role_arn(call, role))
        .timestamp("CreateDate", role.created)
        .text("AssumeRolePolicyDocument", &trust.replace('+', "%20"))
        .opt_text("Description", role.description.as_deref())
        .number("MaxSessionDuration", u64::from(role.max_session_duration));
    if let Some(boundary) = &role.boundary {
        w.element("PermissionsBoundary", |b| {
            b.text("PermissionsBoundaryType", "Policy").text("PermissionsBoundaryArn", boundary);
        });
    }
    if !role.tags.is_empty() {
        super::write_tags(w, &role.tags);
    }
}

pub async fn create(call: &Call<'_>) -> QueryResult {
    let name = call.params.required("RoleName")?;
    check_name("RoleName", name, 64)?;
    let path = call.params.get("Path").unwrap_or("/");
    check_path(path)?;
    let trust_policy = call.params.required("AssumeRolePolicyDocument")?;
    check_trust_policy(trust_policy)?;
    let tags: Vec<Tag> = call.params.tags("Tags")?.into_iter().map(|(key, value)| Tag { key, value }).collect();
    let role = Role {
        name: name.to_owned(),
        id: new_id("AROA"),
        path: path.to_owned(),
        created: OffsetDateTime::now_utc(),
        trust_policy: trust_policy.to_owned(),
        description: call.params.get("Description").map(str::to_owned),
        max_session_duration: max_session_duration(call)?.unwrap_or(3600),
        tags,
        boundary: None,
        policies: Default::default(),
    };
    call.authorize("iam:CreateRole", &role_arn(call, &role))?;
    create_entry(call, EntryKind::Role, name, &role).await?;
    let mut w = ResponseWriter::new(Api::Iam, "CreateRole");
    w.element("Role", |r| write_role(r, call, &role));
    Ok(w)
}

pub fn get(call: &Call<'_>) -> QueryResult {
    let role = target_role(call)?;
    call.authorize("iam:GetRole", &role_arn(call, &role))?;
    let mut w = ResponseWriter::new(Api::Iam, "GetRole");
    w.element("Role", |r| write_role(r, call, &role));
    Ok(w)
}

pub fn list(call: &Call<'_>) -> QueryResult {
    let prefix = call.params.get("PathPrefix").unwrap_or("/");
    call.authorize("iam:ListRoles", &call.identity.account().iam_arn("role", prefix, "*"))?;
    let directory = call.identity.directory();
    let mut roles: Vec<&Role> =
        directory.roles.values().map(|(role, _)| role).filter(|r| r.path.starts_with(prefix)).collect();
    roles.sort_by_key(|r| r.name.to_lowercase());
    let page = Pager::new(&call.params)?.page(roles, |r| r.name.to_lowercase());
    let mut w = ResponseWriter::new(Api::Iam, "ListRoles");
    w.list("Roles", page.items, |m, role| write_role(m, call, role)).truncation(page.next_marker);
    Ok(w)
}

pub async fn update(call: &Call<'_>) -> QueryResult {
    let role = target_role(call)?;
    call.authorize("iam:UpdateRole", &role_arn(call, &role))?;
    let description = call.params.get("Description").map(str::to_owned);
    let max = max_session_duration(call)?;
    modify(call, EntryKind::Role, &role.name, |r: &mut Role| {
        if let Some(description) = &description {
            r.description = Some(description.clone());
        }
        if let Some(max) = max {
            r.max_session_duration = max;
        }
        Ok(())
    })
    .await?;
    Ok(ResponseWriter::new(Api::Iam, "UpdateRole"))
}

pub async fn update_trust(call: &Call<'_>) -> QueryResult {
    let role = target_role(call)?;
    call.authorize("iam:UpdateAssumeRolePolicy", &role_arn(call, &role))?;
    let document = call.params.required("PolicyDocument")?.to_owned();
    check_trust_policy(&document)?;
    modify(call, EntryKind::Role, &role.name, |r: &mut Role| {
        r.trust_policy = document.clone();
        Ok(())
    })
    .await?;
    Ok(ResponseWriter::new(Api::Iam, "UpdateAssumeRolePolicy"))
}

pub async fn delete(call: &Call<'_>) -> QueryResult {
    let role = target_role(call)?;
    call.authorize("iam:DeleteRole", &role_arn(call, &role))?;
    if !role.policies.inline.is_empty() || !role.policies.managed.is_empty() || role.boundary.is_some() {
        return Err(QueryError::delete_conflict("Cannot delete entity, must remove policies first."));
    }
    let store = call.identity.store();
    let entry = store
        .get_entry(EntryKind::Role, &role.name)
        .await
        .map_err(internal)?
        .ok_or_else(|| QueryError::no_such_entity(format!("The role with name {} cannot be found.", role.name)))?;
    if !store.delete_entry(EntryKind::Role, &role.name, entry.revision).await.map_err(internal)? {
        return Err(QueryError::delete_conflict("The role changed while it was being deleted; try again."));
    }
    call.identity.reload().await.map_err(internal)?;
    Ok(ResponseWriter::new(Api::Iam, "DeleteRole"))
}

pub async fn tag(call: &Call<'_>) -> QueryResult {
    let role = target_role(call)?;
    call.authorize("iam:TagRole", &role_arn(call, &role))?;
    let tags = call.params.tags("Tags")?;
    modify(call, EntryKind::Role, &role.name, |r: &mut Role| {
        for (key, value) in &tags {
            r.tags.retain(|t| !t.key.eq_ignore_ascii_case(key));
            r.tags.push(Tag { key: key.clone(), value: value.clone() });
        }
        if r.tags.len() > 50 {
            return Err(QueryError::limit_exceeded("A role can have at most 50 tags."));
        }
        Ok(())
    })
    .await?;
    Ok(ResponseWriter::new(Api::Iam, "TagRole"))
}

pub async fn untag(call: &Call<'_>) -> QueryResult {
    let role = target_role(call)?;
    call.authorize("iam:UntagRole", &role_arn(call, &role))?;
    let keys: Vec<String> = call.params.members("TagKeys").into_iter().map(str::to_owned).collect();
    modify(call, EntryKind::Role, &role.name, |r: &mut Role| {
        r.tags.retain(|t| !keys.iter().any(|k| k.eq_ignore_ascii_case(&t.key)));
        Ok(())
    })
    .await?;
    Ok(ResponseWriter::new(Api::Iam, "UntagRole"))
}

pub fn list_tags(call: &Call<'_>) -> QueryResult {
    let role = target_role(call)?;
    call.authorize("iam:ListRoleTags", &role_arn(call, &role))?;
    super::list_tags(call, "ListRoleTags", &role.tags)
}
