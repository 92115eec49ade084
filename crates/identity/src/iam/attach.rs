//! Managed policies attached to users, groups and roles: Attach/Detach/ListAttached
//! {User,Group,Role}Policies. Attaching names an existing policy by ARN; its default version
//! then applies to the principal (to a group's members for a group).

use super::{Call, Holder, QueryError, QueryResult, capitalised, policy_by_arn};
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
    Ok(ResponseWriter::new(Api::Iam, action))
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
    let attached = held.policies.managed.iter().filter_map(|arn| match directory.policies.get(arn) {
        Some(policy) => policy.path.starts_with(prefix).then_some((policy.name.as_str(), arn)),
        // A policy deleted while attached: still listed, so that it can be seen and detached.
        None => Some((arn.rsplit('/').next().unwrap_or(arn), arn)),
    });
    let mut w = ResponseWriter::new(Api::Iam, action);
    w.list("AttachedPolicies", attached, |m, (name, arn)| {
        m.text("PolicyName", name).text("PolicyArn", arn);
    })
    .bool("IsTruncated", false);
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
