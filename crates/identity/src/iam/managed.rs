//! Customer managed policies and their versions: CreatePolicy, GetPolicy, ListPolicies,
//! DeletePolicy, CreatePolicyVersion, GetPolicyVersion, ListPolicyVersions,
//! SetDefaultPolicyVersion, DeletePolicyVersion, ListEntitiesForPolicy. A policy is stored under
//! its name (unique in the account regardless of path) and named by its ARN
//! (`arn:aws:iam::ACCOUNT:policy{path}{name}`); the default version is the one that applies.

use latchkey_meta::EntryKind;
use latchkey_policy::{MANAGED_POLICY_MAX_BYTES, PolicyKind};
use time::OffsetDateTime;

use super::{
    Call, QueryError, QueryResult, create as create_entry, modify, name_and_path, policy_arn, policy_by_arn, remove,
    url_encoded, within_quota,
};
use crate::directory::Directory;
use crate::model::{Group, ManagedPolicy, PolicyVersion, Role, User, new_id};
use crate::paging::Pager;
use crate::query::{Api, ResponseWriter};

/// AWS's default quotas: customer managed policies in an account, versions kept per policy.
pub const MAX_POLICIES: usize = 1_500;
pub const MAX_VERSIONS: usize = 5;

/// Who uses one managed policy: as an attached policy, and as a permissions boundary.
#[derive(Default)]
pub struct Usage<'d> {
    pub users: Vec<&'d User>,
    pub groups: Vec<&'d Group>,
    pub roles: Vec<&'d Role>,
    pub boundaries: usize,
}

impl Usage<'_> {
    pub fn attachments(&self) -> usize {
        self.users.len() + self.groups.len() + self.roles.len()
    }
}

pub fn usage<'d>(directory: &'d Directory, arn: &str) -> Usage<'d> {
    let attached = |managed: &[String]| managed.iter().any(|a| a == arn);
    let bounded = |boundary: &Option<String>| boundary.as_deref() == Some(arn);
    let mut usage = Usage::default();
    for (user, _) in directory.users.values() {
        if attached(&user.policies.managed) {
            usage.users.push(user);
        }
        usage.boundaries += usize::from(bounded(&user.boundary));
    }
    for group in directory.groups.values().filter(|g| attached(&g.policies.managed)) {
        usage.groups.push(group);
    }
    for (role, _) in directory.roles.values() {
        if attached(&role.policies.managed) {
            usage.roles.push(role);
        }
        usage.boundaries += usize::from(bounded(&role.boundary));
    }
    usage.users.sort_by_key(|u| u.name.to_lowercase());
    usage.groups.sort_by_key(|g| g.name.to_lowercase());
    usage.roles.sort_by_key(|r| r.name.to_lowercase());
    usage
}

/// The `PolicyDocument` parameter, refused as AWS does unless it compiles as an identity policy
/// within the managed policy size limit.
fn document(call: &Call<'_>) -> Result<String, QueryError> {
    let document = call.params.required("PolicyDocument")?;
    latchkey_policy::parse(document, PolicyKind::Identity, MANAGED_POLICY_MAX_BYTES)
        .map_err(|e| QueryError::malformed_policy(e.to_string()))?;
    Ok(document.to_owned())
}

/// The policy `PolicyArn` names, once the caller may do `action` on it.
fn named_policy(call: &Call<'_>, action: &str) -> Result<(ManagedPolicy, String), QueryError> {
    let arn = call.params.required("PolicyArn")?;
    let policy = policy_by_arn(call, arn)?;
    call.authorize(action, arn)?;
    Ok((policy, arn.to_owned()))
}

/// Applies `change` to the stored policy, refusing if the name now belongs to another policy
/// (deleted and created again meanwhile, perhaps on another path).
async fn change_policy<F>(
    call: &Call<'_>,
    policy: &ManagedPolicy,
    arn: &str,
    mut change: F,
) -> Result<ManagedPolicy, QueryError>
where
    F: FnMut(&mut ManagedPolicy) -> Result<(), QueryError>,
{
    modify(call, EntryKind::Policy, &policy.name, |stored: &mut ManagedPolicy| {
        if stored.id != policy.id {
            return Err(QueryError::no_such_entity(format!("Policy {arn} does not exist or is not attachable.")));
        }
        change(stored)
    })
    .await
}

fn write_policy(w: &mut ResponseWriter, arn: &str, policy: &ManagedPolicy, usage: &Usage<'_>, description: bool) {
    w.text("PolicyName", &policy.name)
        .text("PolicyId", &policy.id)
        .text("Arn", arn)
        .text("Path", &policy.path)
        .text("DefaultVersionId", &policy.default_version)
        .number("AttachmentCount", usage.attachments() as u64)
        .number("PermissionsBoundaryUsageCount", usage.boundaries as u64)
        .bool("IsAttachable", true);
    // AWS shows the description in GetPolicy (and CreatePolicy), not in ListPolicies.
    if description {
        w.opt_text("Description", policy.description.as_deref());
    }
    w.timestamp("CreateDate", policy.created).timestamp("UpdateDate", policy.updated);
}

fn write_version(w: &mut ResponseWriter, policy: &ManagedPolicy, version: &PolicyVersion, with_document: bool) {
    if with_document {
        w.text("Document", &url_encoded(&version.document));
    }
    w.text("VersionId", &version.id)
        .bool("IsDefaultVersion", version.id == policy.default_version)
        .timestamp("CreateDate", version.created);
}

/// Adds a version (`v{next}`), the default one if `set_default`; at most [`MAX_VERSIONS`].
fn add_version(
    policy: &mut ManagedPolicy,
    document: &str,
    set_default: bool,
    now: OffsetDateTime,
) -> Result<String, QueryError> {
    if policy.versions.len() >= MAX_VERSIONS {
        return Err(QueryError::limit_exceeded(format!(
            "A managed policy can have up to {MAX_VERSIONS} versions. Before you create a new version, you must delete an existing version."
        )));
    }
    let id = format!("v{}", policy.next_version);
    policy.next_version += 1;
    policy.versions.push(PolicyVersion { id: id.clone(), document: document.to_owned(), created: now });
    if set_default {
        policy.default_version = id.clone();
    }
    policy.updated = now;
    Ok(id)
}

fn version_not_found(arn: &str, id: &str) -> QueryError {
    QueryError::no_such_entity(format!("Policy {arn} version {id} does not exist or is not attachable."))
}

fn set_default(policy: &mut ManagedPolicy, arn: &str, id: &str, now: OffsetDateTime) -> Result<(), QueryError> {
    if !policy.versions.iter().any(|v| v.id == id) {
        return Err(version_not_found(arn, id));
    }
    policy.default_version = id.to_owned();
    policy.updated = now;
    Ok(())
}

fn remove_version(policy: &mut ManagedPolicy, arn: &str, id: &str) -> Result<(), QueryError> {
    if policy.default_version == id {
        return Err(QueryError::delete_conflict("Cannot delete the default version of a policy."));
    }
    let before = policy.versions.len();
    policy.versions.retain(|v| v.id != id);
    if policy.versions.len() == before {
        return Err(version_not_found(arn, id));
    }
    Ok(())
}

pub async fn create(call: &Call<'_>) -> QueryResult {
    let (name, path) = name_and_path(call, "PolicyName", 128)?;
    let description = call.params.get("Description");
    if description.is_some_and(|d| d.chars().count() > 1000) {
        return Err(QueryError::validation("The description of a policy can be at most 1000 characters."));
    }
    let document = document(call)?;
    let now = OffsetDateTime::now_utc();
    let policy = ManagedPolicy {
        name: name.to_owned(),
        id: new_id("ANPA"),
        path: path.to_owned(),
        description: description.map(str::to_owned),
        created: now,
        updated: now,
        default_version: "v1".to_owned(),
        versions: vec![PolicyVersion { id: "v1".to_owned(), document, created: now }],
        next_version: 2,
    };
    let arn = policy_arn(call, &policy);
    call.authorize("iam:CreatePolicy", &arn)?;
    within_quota(call.identity.directory().policies.len(), MAX_POLICIES, "Policies")?;
    create_entry(call, EntryKind::Policy, name, &policy).await?;
    let mut w = ResponseWriter::new(Api::Iam, "CreatePolicy");
    w.element("Policy", |p| write_policy(p, &arn, &policy, &Usage::default(), true));
    Ok(w)
}

pub fn get(call: &Call<'_>) -> QueryResult {
    let (policy, arn) = named_policy(call, "iam:GetPolicy")?;
    let directory = call.identity.directory();
    let mut w = ResponseWriter::new(Api::Iam, "GetPolicy");
    w.element("Policy", |p| write_policy(p, &arn, &policy, &usage(&directory, &arn), true));
    Ok(w)
}

pub fn list(call: &Call<'_>) -> QueryResult {
    let prefix = call.params.get("PathPrefix").unwrap_or("/");
    call.authorize("iam:ListPolicies", &call.identity.account().iam_arn("policy", prefix, "*"))?;
    // Only customer managed (`Local`) policies exist here; AWS's own are not served.
    let local = match call.params.get("Scope").unwrap_or("All") {
        "All" | "Local" => true,
        "AWS" => false,
        other => {
            return Err(QueryError::validation(format!(
                "1 validation error detected: Value '{other}' at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]"
            )));
        }
    };
    let only_attached = call.params.bool("OnlyAttached")?.unwrap_or(false);
    let use_filter = call.params.get("PolicyUsageFilter");
    if let Some(other) = use_filter.filter(|f| !["PermissionsPolicy", "PermissionsBoundary"].contains(f)) {
        return Err(QueryError::validation(format!(
            "1 validation error detected: Value '{other}' at 'policyUsageFilter' failed to satisfy constraint: Member must satisfy enum value set: [PermissionsPolicy, PermissionsBoundary]"
        )));
    }
    let directory = call.identity.directory();
    let mut shown: Vec<(&String, &ManagedPolicy, Usage<'_>)> = directory
        .policies
        .iter()
        .filter(|(_, p)| local && p.path.starts_with(prefix))
        .map(|(arn, p)| (arn, p, usage(&directory, arn)))
        .filter(|(_, _, u)| match use_filter {
            Some("PermissionsPolicy") => u.attachments() > 0,
            Some(_) => u.boundaries > 0,
            None => !only_attached || u.attachments() > 0,
        })
        .collect();
    shown.sort_by_key(|(_, p, _)| p.name.to_lowercase());
    let page = Pager::new(&call.params)?.page(shown, |(_, p, _)| p.name.to_lowercase());
    let mut w = ResponseWriter::new(Api::Iam, "ListPolicies");
    w.list("Policies", page.items, |m, (arn, policy, usage)| write_policy(m, arn, policy, &usage, false))
        .truncation(page.next_marker);
    Ok(w)
}

pub async fn delete(call: &Call<'_>) -> QueryResult {
    let (policy, arn) = named_policy(call, "iam:DeletePolicy")?;
    let in_use = {
        let directory = call.identity.directory();
        let usage = usage(&directory, &arn);
        usage.attachments() > 0 || usage.boundaries > 0
    };
    if in_use {
        return Err(QueryError::delete_conflict("Cannot delete a policy attached to entities."));
    }
    if policy.versions.len() > 1 {
        return Err(QueryError::delete_conflict(
            "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
        ));
    }
    remove(call, EntryKind::Policy, &policy.name).await?;
    super::attach::detach_deleted(call, &arn).await?;
    Ok(ResponseWriter::new(Api::Iam, "DeletePolicy"))
}

pub async fn create_version(call: &Call<'_>) -> QueryResult {
    let (policy, arn) = named_policy(call, "iam:CreatePolicyVersion")?;
    let document = document(call)?;
    let set_as_default = call.params.bool("SetAsDefault")?.unwrap_or(false);
    let mut id = String::new();
    let now = OffsetDateTime::now_utc();
    let stored = change_policy(call, &policy, &arn, |p| {
        id = add_version(p, &document, set_as_default, now)?;
        Ok(())
    })
    .await?;
    let version = stored.versions.iter().find(|v| v.id == id).ok_or_else(QueryError::service_failure)?;
    let mut w = ResponseWriter::new(Api::Iam, "CreatePolicyVersion");
    w.element("PolicyVersion", |v| write_version(v, &stored, version, false));
    Ok(w)
}

pub fn get_version(call: &Call<'_>) -> QueryResult {
    let (policy, arn) = named_policy(call, "iam:GetPolicyVersion")?;
    let id = call.params.required("VersionId")?;
    let version = policy.versions.iter().find(|v| v.id == id).ok_or_else(|| version_not_found(&arn, id))?;
    let mut w = ResponseWriter::new(Api::Iam, "GetPolicyVersion");
    w.element("PolicyVersion", |v| write_version(v, &policy, version, true));
    Ok(w)
}

pub fn list_versions(call: &Call<'_>) -> QueryResult {
    let (policy, _) = named_policy(call, "iam:ListPolicyVersions")?;
    let mut w = ResponseWriter::new(Api::Iam, "ListPolicyVersions");
    // Newest first, as AWS lists them: the key counts down.
    let page = Pager::new(&call.params)?.page(policy.versions.iter().rev(), |v| newest_first_key(&v.id));
    w.list("Versions", page.items, |m, version| write_version(m, &policy, version, false)).truncation(page.next_marker);
    Ok(w)
}

pub async fn set_default_version(call: &Call<'_>) -> QueryResult {
    let (policy, arn) = named_policy(call, "iam:SetDefaultPolicyVersion")?;
    let id = call.params.required("VersionId")?;
    let now = OffsetDateTime::now_utc();
    change_policy(call, &policy, &arn, |p| set_default(p, &arn, id, now)).await?;
    Ok(ResponseWriter::new(Api::Iam, "SetDefaultPolicyVersion"))
}

pub async fn delete_version(call: &Call<'_>) -> QueryResult {
    let (policy, arn) = named_policy(call, "iam:DeletePolicyVersion")?;
    let id = call.params.required("VersionId")?;
    change_policy(call, &policy, &arn, |p| remove_version(p, &arn, id)).await?;
    Ok(ResponseWriter::new(Api::Iam, "DeletePolicyVersion"))
}

/// A key that orders policy versions newest first (`v12` before `v9`).
fn newest_first_key(id: &str) -> String {
    let number = id.trim_start_matches('v').parse::<u64>().unwrap_or(0);
    format!("{:020}", u64::MAX - number)
}

pub fn list_entities(call: &Call<'_>) -> QueryResult {
    let (_, arn) = named_policy(call, "iam:ListEntitiesForPolicy")?;
    let prefix = call.params.get("PathPrefix").unwrap_or("/");
    let (users, groups, roles) = match call.params.get("EntityFilter") {
        None => (true, true, true),
        Some("User") => (true, false, false),
        Some("Group") => (false, true, false),
        Some("Role") => (false, false, true),
        // A customer managed policy is attached to principals only.
        Some("LocalManagedPolicy" | "AWSManagedPolicy") => (false, false, false),
        Some(other) => {
            return Err(QueryError::validation(format!(
                "1 validation error detected: Value '{other}' at 'entityFilter' failed to satisfy constraint: Member must satisfy enum value set: [User, Role, LocalManagedPolicy, Group, AWSManagedPolicy]"
            )));
        }
    };
    let directory = call.identity.directory();
    let usage = usage(&directory, &arn);
    // One listing of the three kinds (a page may end among any of them): (kind, name, id).
    let mut entities: Vec<(&str, &str, &str)> = Vec::new();
    entities
        .extend(usage.groups.iter().filter(|g| groups && g.path.starts_with(prefix)).map(|g| ("g", &*g.name, &*g.id)));
    entities
        .extend(usage.roles.iter().filter(|r| roles && r.path.starts_with(prefix)).map(|r| ("r", &*r.name, &*r.id)));
    entities
        .extend(usage.users.iter().filter(|u| users && u.path.starts_with(prefix)).map(|u| ("u", &*u.name, &*u.id)));
    let entity_key = |(kind, name, _): &(&str, &str, &str)| format!("{kind}/{}", name.to_lowercase());
    entities.sort_by_key(entity_key);
    let page = Pager::new(&call.params)?.page(entities, entity_key);
    let mut w = ResponseWriter::new(Api::Iam, "ListEntitiesForPolicy");
    for (kind, list, name_tag, id_tag) in [
        ("g", "PolicyGroups", "GroupName", "GroupId"),
        ("u", "PolicyUsers", "UserName", "UserId"),
        ("r", "PolicyRoles", "RoleName", "RoleId"),
    ] {
        w.list(list, page.items.iter().filter(|e| e.0 == kind), |m, (_, name, id)| {
            m.text(name_tag, name).text(id_tag, id);
        });
    }
    w.truncation(page.next_marker);
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:iam::000000000000:policy/p";

    fn policy() -> ManagedPolicy {
        let now = OffsetDateTime::now_utc();
        ManagedPolicy {
            name: "p".into(),
            id: "ANPA1".into(),
            path: "/".into(),
            description: None,
            created: now,
            updated: now,
            default_version: "v1".into(),
            versions: vec![PolicyVersion { id: "v1".into(), document: "{}".into(), created: now }],
            next_version: 2,
        }
    }

    #[test]
    fn versions_are_numbered_never_reused_and_capped_at_five() {
        let mut p = policy();
        let now = OffsetDateTime::now_utc();
        assert_eq!(add_version(&mut p, "a", false, now).unwrap(), "v2");
        assert_eq!(p.default_version, "v1");
        assert_eq!(add_version(&mut p, "b", true, now).unwrap(), "v3");
        assert_eq!(p.default_version, "v3");
        assert_eq!(p.default_document(), Some("b"));
        add_version(&mut p, "c", false, now).unwrap();
        add_version(&mut p, "d", false, now).unwrap();
        assert_eq!(add_version(&mut p, "e", false, now).unwrap_err().code, "LimitExceeded");
        assert_eq!(p.versions.len(), MAX_VERSIONS);
        remove_version(&mut p, ARN, "v2").unwrap();
        // The freed slot gets a new number, not v2 again.
        assert_eq!(add_version(&mut p, "e", false, now).unwrap(), "v6");
    }

    #[test]
    fn the_default_version_cannot_be_deleted_and_unknown_ones_are_no_such_entity() {
        let mut p = policy();
        let now = OffsetDateTime::now_utc();
        add_version(&mut p, "a", false, now).unwrap();
        assert_eq!(remove_version(&mut p, ARN, "v1").unwrap_err().code, "DeleteConflict");
        assert_eq!(remove_version(&mut p, ARN, "v9").unwrap_err().code, "NoSuchEntity");
        assert_eq!(set_default(&mut p, ARN, "v9", now).unwrap_err().code, "NoSuchEntity");
        set_default(&mut p, ARN, "v2", now).unwrap();
        assert_eq!(p.default_document(), Some("a"));
        remove_version(&mut p, ARN, "v1").unwrap();
        assert_eq!(p.versions.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["v2"]);
    }
}
