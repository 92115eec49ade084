//! Users' inline policies: PutUserPolicy, GetUserPolicy, ListUserPolicies, DeleteUserPolicy.
//! A document is refused with `MalformedPolicyDocument` (naming the problem and where) unless
//! the policy engine compiles it.

use latchkey_meta::EntryKind;
use latchkey_policy::PolicyKind;

use super::{Call, QueryError, QueryResult, check_name, modify, target_user, user_arn};
use crate::model::User;
use crate::query::{Api, ResponseWriter};

/// AWS's limit for a user's inline policy document.
const MAX_USER_INLINE: usize = 10_240;

pub async fn put(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:PutUserPolicy", &user_arn(call, &user))?;
    let name = call.params.required("PolicyName")?.to_owned();
    check_name("PolicyName", &name, 128)?;
    let document = call.params.required("PolicyDocument")?.to_owned();
    latchkey_policy::parse(&document, PolicyKind::Identity, MAX_USER_INLINE)
        .map_err(|e| QueryError::malformed_policy(e.to_string()))?;
    modify(call, EntryKind::User, &user.name, |u: &mut User| {
        u.policies.inline.insert(name.clone(), document.clone());
        Ok(())
    })
    .await?;
    Ok(ResponseWriter::new(Api::Iam, "PutUserPolicy"))
}

pub fn get(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:GetUserPolicy", &user_arn(call, &user))?;
    let name = call.params.required("PolicyName")?;
    let document = user
        .policies
        .inline
        .get(name)
        .ok_or_else(|| QueryError::no_such_entity(format!("The user policy with name {name} cannot be found.")))?;
    let encoded: String = form_urlencoded::byte_serialize(document.as_bytes()).collect();
    let mut w = ResponseWriter::new(Api::Iam, "GetUserPolicy");
    // AWS returns the document URL-encoded (RFC 3986); the CLI decodes it.
    w.text("UserName", &user.name).text("PolicyName", name).text("PolicyDocument", &encoded.replace('+', "%20"));
    Ok(w)
}

pub fn list(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:ListUserPolicies", &user_arn(call, &user))?;
    let mut w = ResponseWriter::new(Api::Iam, "ListUserPolicies");
    w.text_list("PolicyNames", user.policies.inline.keys().map(String::as_str)).bool("IsTruncated", false);
    Ok(w)
}

pub async fn delete(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:DeleteUserPolicy", &user_arn(call, &user))?;
    let name = call.params.required("PolicyName")?.to_owned();
    modify(call, EntryKind::User, &user.name, |u: &mut User| {
        u.policies
            .inline
            .remove(&name)
            .map(|_| ())
            .ok_or_else(|| QueryError::no_such_entity(format!("The user policy with name {name} cannot be found.")))
    })
    .await?;
    Ok(ResponseWriter::new(Api::Iam, "DeleteUserPolicy"))
}
