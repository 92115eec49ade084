//! Access keys: CreateAccessKey, ListAccessKeys, UpdateAccessKey, DeleteAccessKey,
//! GetAccessKeyLastUsed. A secret is returned once, by CreateAccessKey, and stored sealed.

use latchkey_meta::{KeyRefusal, StoredAccessKey};
use time::OffsetDateTime;

use super::{Call, QueryError, QueryResult, internal, reload, target_user, user_arn};
use crate::model::{new_id, new_secret};
use crate::paging::Pager;
use crate::query::{Api, ResponseWriter};
use crate::seal::Purpose;

/// AWS's quota of access keys per user; the store keeps two slots per user.
pub const MAX_KEYS_PER_USER: usize = 2;

pub async fn create(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:CreateAccessKey", &user_arn(call, &user))?;
    let id = new_id("AKIA");
    let secret = new_secret();
    let created = OffsetDateTime::now_utc();
    let key = StoredAccessKey {
        access_key_id: id.clone(),
        user_name: user.name.clone(),
        secret_sealed: call.identity.master().seal(Purpose::AccessKeySecret, &id, secret.as_bytes()),
        active: true,
        created,
        last_used: None,
        last_used_service: None,
    };
    match call.identity.store().create_access_key(&key).await.map_err(internal)? {
        Ok(()) => {}
        Err(KeyRefusal::LimitExceeded) => {
            return Err(QueryError::limit_exceeded(format!(
                "Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}"
            )));
        }
        Err(KeyRefusal::DuplicateId) => return Err(QueryError::service_failure()),
    }
    reload(call).await?;
    let mut w = ResponseWriter::new(Api::Iam, "CreateAccessKey");
    w.element("AccessKey", |k| {
        k.text("UserName", &user.name)
            .text("AccessKeyId", &id)
            .text("Status", "Active")
            .text("SecretAccessKey", &secret)
            .timestamp("CreateDate", created);
    });
    Ok(w)
}

pub fn list(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:ListAccessKeys", &user_arn(call, &user))?;
    let directory = call.identity.directory();
    let lower = user.name.to_lowercase();
    let mut keys: Vec<_> = directory.keys.iter().filter(|(_, k)| k.user == lower).collect();
    keys.sort_by_key(|(id, _)| *id);
    let page = Pager::new(&call.params)?.page(keys, |(id, _)| id.to_string());
    let mut w = ResponseWriter::new(Api::Iam, "ListAccessKeys");
    w.list("AccessKeyMetadata", page.items, |m, (id, key)| {
        m.text("UserName", &user.name)
            .text("AccessKeyId", id)
            .text("Status", if key.active { "Active" } else { "Inactive" })
            .timestamp("CreateDate", key.created);
    })
    .truncation(page.next_marker)
    .text("UserName", &user.name);
    Ok(w)
}

/// The key `AccessKeyId` names, which must belong to the target user.
fn owned_key(call: &Call<'_>) -> Result<(crate::model::User, String), QueryError> {
    let user = target_user(call)?;
    let id = call.params.required("AccessKeyId")?.to_owned();
    let directory = call.identity.directory();
    match directory.keys.get(&id) {
        Some(key) if key.user == user.name.to_lowercase() => Ok((user, id)),
        _ => Err(QueryError::no_such_entity(format!("The Access Key with id {id} cannot be found."))),
    }
}

pub async fn update(call: &Call<'_>) -> QueryResult {
    let (user, id) = owned_key(call)?;
    call.authorize("iam:UpdateAccessKey", &user_arn(call, &user))?;
    let active = match call.params.required("Status")? {
        "Active" => true,
        "Inactive" => false,
        other => {
            return Err(QueryError::validation(format!(
                "1 validation error detected: Value '{other}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
            )));
        }
    };
    call.identity.store().set_access_key_active(&id, active).await.map_err(internal)?;
    reload(call).await?;
    Ok(ResponseWriter::new(Api::Iam, "UpdateAccessKey"))
}

pub async fn delete(call: &Call<'_>) -> QueryResult {
    let (user, id) = owned_key(call)?;
    call.authorize("iam:DeleteAccessKey", &user_arn(call, &user))?;
    call.identity.store().delete_access_key(&id).await.map_err(internal)?;
    reload(call).await?;
    Ok(ResponseWriter::new(Api::Iam, "DeleteAccessKey"))
}

pub fn last_used(call: &Call<'_>) -> QueryResult {
    let id = call.params.required("AccessKeyId")?;
    let directory = call.identity.directory();
    let key = directory
        .keys
        .get(id)
        .ok_or_else(|| QueryError::no_such_entity(format!("The Access Key with id {id} cannot be found.")))?;
    let (user, _) =
        directory.users.get(&key.user).ok_or_else(|| QueryError::no_such_entity("The key's user is gone."))?;
    call.authorize("iam:GetAccessKeyLastUsed", &user_arn(call, user))?;
    let mut w = ResponseWriter::new(Api::Iam, "GetAccessKeyLastUsed");
    w.text("UserName", &user.name).element("AccessKeyLastUsed", |u| match key.last_used() {
        Some((at, service)) => {
            u.timestamp("LastUsedDate", at).text("ServiceName", service).text("Region", call.region);
        }
        None => {
            u.text("ServiceName", "N/A").text("Region", "N/A");
        }
    });
    Ok(w)
}
