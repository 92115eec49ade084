//! Inline policies of users and groups: Put/Get/List/Delete{User,Group}Policy. A document is
//! refused with `MalformedPolicyDocument` (naming the problem and where) unless the policy
//! engine compiles it.

use latchkey_policy::PolicyKind;

use super::{Call, Holder, QueryError, QueryResult, check_name, url_encoded};
use crate::paging::Pager;
use crate::query::{Api, ResponseWriter};

pub async fn put(call: &Call<'_>, holder: Holder, action: &'static str) -> QueryResult {
    let held = holder.find(call)?;
    call.authorize(&format!("iam:{action}"), &held.arn)?;
    let name = call.params.required("PolicyName")?.to_owned();
    check_name("PolicyName", &name, 128)?;
    let document = call.params.required("PolicyDocument")?.to_owned();
    latchkey_policy::parse(&document, PolicyKind::Identity, holder.inline_max())
        .map_err(|e| QueryError::malformed_policy(e.to_string()))?;
    holder
        .change(call, &held.name, |c| {
            c.policies().inline.insert(name.clone(), document.clone());
            Ok(())
        })
        .await?;
    Ok(ResponseWriter::new(Api::Iam, action))
}

pub fn get(call: &Call<'_>, holder: Holder, action: &'static str) -> QueryResult {
    let held = holder.find(call)?;
    call.authorize(&format!("iam:{action}"), &held.arn)?;
    let name = call.params.required("PolicyName")?;
    let document = held.policies.inline.get(name).ok_or_else(|| not_found(holder, name))?;
    let mut w = ResponseWriter::new(Api::Iam, action);
    w.text(holder.param(), &held.name).text("PolicyName", name).text("PolicyDocument", &url_encoded(document));
    Ok(w)
}

pub fn list(call: &Call<'_>, holder: Holder, action: &'static str) -> QueryResult {
    let held = holder.find(call)?;
    call.authorize(&format!("iam:{action}"), &held.arn)?;
    // Inline policy names are kept in order.
    let page = Pager::new(&call.params)?.page(held.policies.inline.keys(), |name| name.to_string());
    let mut w = ResponseWriter::new(Api::Iam, action);
    w.text_list("PolicyNames", page.items.into_iter().map(String::as_str)).truncation(page.next_marker);
    Ok(w)
}

pub async fn delete(call: &Call<'_>, holder: Holder, action: &'static str) -> QueryResult {
    let held = holder.find(call)?;
    call.authorize(&format!("iam:{action}"), &held.arn)?;
    let name = call.params.required("PolicyName")?.to_owned();
    holder
        .change(call, &held.name, |c| {
            c.policies().inline.remove(&name).map(drop).ok_or_else(|| not_found(holder, &name))
        })
        .await?;
    Ok(ResponseWriter::new(Api::Iam, action))
}

fn not_found(holder: Holder, name: &str) -> QueryError {
    QueryError::no_such_entity(format!("The {} policy with name {name} cannot be found.", holder.noun()))
}
