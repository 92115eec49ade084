//! Managed policies attached to users, groups and roles: Attach/Detach/ListAttached
//! {User,Group,Role}Policies. Attaching names an existing policy by ARN; its default version
//! then applies to the principal (to a group's members for a group).

use super::{Call, Holder, QueryError, QueryResult, capitalised, policy_by_arn};
use crate::paging::Pager;
use crate::query::{Api, ResponseWriter};

/// AWS's default quota of managed policies attached to one user, group or role.
pub const MAX_ATTACHED: usize = 10;

/// Adds `arn` to a principal's managed policies; attaching it again changes nothing, as AWS.
fn attach_to(managed: &mut Vec<String>, arn: &str, holder: Holder) -> Result<(), QueryError> {
    if managed.iter().any(|a| a == arn) {
        return Ok(());
    }
    if managed.len() >= MAX_ATTACHED {
        return Err(QueryError::limit_exceeded(format!(
            "Cannot exceed quota for PoliciesPer{}: {MAX_ATTACHED}",
            capitalised(holder.noun())
        )));
    }
    managed.push(arn.to_owned());
    Ok(())
}

/// Removes `arn`; also one whose policy is gone, so a dangling attachment can be cleared.
fn detach_from(managed: &mut Vec<String>, arn: &str) -> Result<(), QueryError> {
    let before = managed.len();
    managed.retain(|a| a != arn);
    if managed.len() == before {
        return Err(QueryError::no_such_entity(format!("Policy {arn} was not found.")));
    }
    Ok(())
}

pub async fn attach(call: &Call<'_>, holder: Holder, action: &'static str) -> QueryResult {
    let held = holder.find(call)?;
    call.authorize(&format!("iam:{action}"), &held.arn)?;
    let arn = call.params.required("PolicyArn")?;
    policy_by_arn(call, arn)?;
    holder.change(call, &held.name, |c| attach_to(&mut c.policies().managed, arn, holder)).await?;
    // Deleted meanwhile (DeletePolicy detaches after its delete, this checks after its write, so
    // one of the two sees the other): the attachment would pass to a new policy of this name.
    if !call.identity.directory().policies.contains_key(arn) {
        holder.change(call, &held.name, |c| detach_from(&mut c.policies().managed, arn)).await?;
        return Err(QueryError::no_such_entity(format!("Policy {arn} does not exist or is not attachable.")));
    }
    Ok(ResponseWriter::new(Api::Iam, action))
}

/// Detaches the deleted policy `arn` from whoever had it attached by the time of its deletion
/// (an attachment that raced the deletion), so that it does not pass to a new policy of its name.
pub async fn detach_deleted(call: &Call<'_>, arn: &str) -> Result<(), QueryError> {
    let holders: Vec<(Holder, String)> = {
        let directory = call.identity.directory();
        let usage = super::managed::usage(&directory, arn);
        let users = usage.users.iter().map(|u| (Holder::User, u.name.clone()));
        let groups = usage.groups.iter().map(|g| (Holder::Group, g.name.clone()));
        users.chain(groups).chain(usage.roles.iter().map(|r| (Holder::Role, r.name.clone()))).collect()
    };
    for (holder, name) in holders {
        match holder.change(call, &name, |c| detach_from(&mut c.policies().managed, arn)).await {
            Err(e) if e.code != "NoSuchEntity" => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

pub async fn detach(call: &Call<'_>, holder: Holder, action: &'static str) -> QueryResult {
    let held = holder.find(call)?;
    call.authorize(&format!("iam:{action}"), &held.arn)?;
    let arn = call.params.required("PolicyArn")?;
    holder.change(call, &held.name, |c| detach_from(&mut c.policies().managed, arn)).await?;
    Ok(ResponseWriter::new(Api::Iam, action))
}

pub fn list(call: &Call<'_>, holder: Holder, action: &'static str) -> QueryResult {
    let held = holder.find(call)?;
    call.authorize(&format!("iam:{action}"), &held.arn)?;
    let prefix = call.params.get("PathPrefix").unwrap_or("/");
    let directory = call.identity.directory();
    let mut attached: Vec<(&str, &String)> = held
        .policies
        .managed
        .iter()
        .filter_map(|arn| match directory.policies.get(arn) {
            Some(policy) => policy.path.starts_with(prefix).then_some((policy.name.as_str(), arn)),
            // A policy deleted while attached: still listed, so that it can be seen and detached.
            None => Some((arn.rsplit('/').next().unwrap_or(arn), arn)),
        })
        .collect();
    attached.sort_by(|a, b| a.1.cmp(b.1));
    let page = Pager::new(&call.params)?.page(attached, |(_, arn)| arn.to_string());
    let mut w = ResponseWriter::new(Api::Iam, action);
    w.list("AttachedPolicies", page.items, |m, (name, arn)| {
        m.text("PolicyName", name).text("PolicyArn", arn);
    })
    .truncation(page.next_marker);
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attaching_is_idempotent_and_capped_per_principal() {
        let mut managed = Vec::new();
        for i in 0..MAX_ATTACHED {
            attach_to(&mut managed, &format!("arn:aws:iam::000000000000:policy/p{i}"), Holder::Group).unwrap();
        }
        attach_to(&mut managed, "arn:aws:iam::000000000000:policy/p0", Holder::Group).unwrap();
        assert_eq!(managed.len(), MAX_ATTACHED);
        let refused = attach_to(&mut managed, "arn:aws:iam::000000000000:policy/more", Holder::Group).unwrap_err();
        assert_eq!(refused.code, "LimitExceeded");
        assert!(refused.message.contains("PoliciesPerGroup"), "{}", refused.message);
    }

    #[test]
    fn detaching_what_is_not_attached_is_no_such_entity() {
        let mut managed = vec!["arn:aws:iam::000000000000:policy/a".to_owned()];
        assert_eq!(detach_from(&mut managed, "arn:aws:iam::000000000000:policy/b").unwrap_err().code, "NoSuchEntity");
        detach_from(&mut managed, "arn:aws:iam::000000000000:policy/a").unwrap();
        assert!(managed.is_empty());
    }
}
