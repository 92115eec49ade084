//! Permissions boundaries of users and roles: Put/Delete{User,Role}PermissionsBoundary. A
//! boundary is a managed policy's ARN; it caps what the principal's identity policies grant.

use super::{Call, Holder, QueryError, QueryResult, policy_by_arn};
use crate::query::{Api, ResponseWriter};

pub async fn put(call: &Call<'_>, holder: Holder, action: &'static str) -> QueryResult {
    let held = holder.find(call)?;
    call.authorize(&format!("iam:{action}"), &held.arn)?;
    let arn = call.params.required("PermissionsBoundary")?;
    policy_by_arn(call, arn)?;
    set(call, holder, &held.name, Some(arn)).await?;
    Ok(ResponseWriter::new(Api::Iam, action))
}

/// Removing a boundary that is not there changes nothing.
pub async fn delete(call: &Call<'_>, holder: Holder, action: &'static str) -> QueryResult {
    let held = holder.find(call)?;
    call.authorize(&format!("iam:{action}"), &held.arn)?;
    set(call, holder, &held.name, None).await?;
    Ok(ResponseWriter::new(Api::Iam, action))
}

async fn set(call: &Call<'_>, holder: Holder, name: &str, arn: Option<&str>) -> Result<(), QueryError> {
    holder
        .change(call, name, |c| {
            let boundary = c.boundary().ok_or_else(|| {
                QueryError::invalid_input(format!("A {} cannot have a permissions boundary.", holder.noun()))
            })?;
            *boundary = arn.map(str::to_owned);
            Ok(())
        })
        .await
}
