//! GetAccountSummary: how many users, groups, roles and managed policies the account has, with
//! the quotas this server enforces, under AWS's key names.

use latchkey_policy::MANAGED_POLICY_MAX_BYTES;

use super::{Call, Holder, QueryResult, attach, groups, internal, keys, managed, users};
use crate::query::{Api, ResponseWriter};

pub async fn summary(call: &Call<'_>) -> QueryResult {
    call.authorize("iam:GetAccountSummary", "*")?;
    let devices = call.identity.store().list_mfa_devices().await.map_err(internal)?;
    let directory = call.identity.directory();
    // AWS counts the versions of the policies that are attached somewhere.
    let versions_in_use: usize = directory
        .policies
        .iter()
        .filter(|(arn, _)| managed::usage(&directory, arn).attachments() > 0)
        .map(|(_, p)| p.versions.len())
        .sum();
    let entries: [(&str, usize); 21] = [
        ("Users", directory.users.len()),
        ("UsersQuota", users::MAX_USERS),
        ("Groups", directory.groups.len()),
        ("GroupsQuota", groups::MAX_GROUPS),
        ("Roles", directory.roles.len()),
        ("Policies", directory.policies.len()),
        ("PoliciesQuota", managed::MAX_POLICIES),
        ("PolicyVersionsInUse", versions_in_use),
        ("VersionsPerPolicyQuota", managed::MAX_VERSIONS),
        ("PolicySizeQuota", MANAGED_POLICY_MAX_BYTES),
        ("UserPolicySizeQuota", Holder::User.inline_max()),
        ("GroupPolicySizeQuota", Holder::Group.inline_max()),
        ("GroupsPerUserQuota", groups::MAX_GROUPS_PER_USER),
        ("AccessKeysPerUserQuota", keys::MAX_KEYS_PER_USER),
        ("AttachedPoliciesPerUserQuota", attach::MAX_ATTACHED),
        ("AttachedPoliciesPerGroupQuota", attach::MAX_ATTACHED),
        ("AttachedPoliciesPerRoleQuota", attach::MAX_ATTACHED),
        ("MFADevices", devices.len()),
        ("MFADevicesInUse", devices.iter().filter(|d| d.user_name.is_some()).count()),
        // The root user has no MFA device here, and always has its access key.
        ("AccountMFAEnabled", 0),
        ("AccountAccessKeysPresent", 1),
    ];
    let mut w = ResponseWriter::new(Api::Iam, "GetAccountSummary");
    w.element("SummaryMap", |map| {
        for (key, value) in entries {
            map.element("entry", |e| {
                e.text("key", key).number("value", value as u64);
            });
        }
    });
    Ok(w)
}
