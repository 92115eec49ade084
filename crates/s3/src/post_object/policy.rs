//! The POST policy a signed form carries: decoded (s3s parses it), its expiration and lifetime
//! checked, every condition met by the form and every field named by a condition, as S3 checks
//! them. The file's length is checked as it is written (`content-length-range`).

use std::time::Duration;

use s3s::post_policy::{PostPolicy, PostPolicyCondition};
use s3s::{S3Result, s3_error};
use time::OffsetDateTime;

use super::form::Fields;

/// How far in the future a form's `x-amz-date` may be (a client's clock, as for SigV4 headers).
const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(15);

/// The largest object one POST may upload (S3's limit for a single upload).
pub(super) const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Form fields no condition needs to name (S3's list, with SigV2's own).
fn exempt(name: &str) -> bool {
    matches!(name, "x-amz-signature" | "signature" | "awsaccesskeyid" | "file" | "policy")
        || name.starts_with("x-ignore-")
}

/// The policy, decoded and checked against the form in `bucket` at `now`.
pub(super) fn checked(encoded: &str, fields: &Fields, bucket: &str, now: OffsetDateTime) -> S3Result<PostPolicy> {
    let policy =
        PostPolicy::from_base64(encoded).map_err(|e| s3_error!(InvalidPolicyDocument, "Invalid Policy: {e}"))?;
    if now >= expiration(&policy) {
        return Err(s3_error!(AccessDenied, "Invalid according to Policy: Policy expired."));
    }
    let value = |field: &str| if field == "bucket" { Some(bucket) } else { fields.get(field) };
    for condition in &policy.conditions {
        let met = match condition {
            PostPolicyCondition::Eq { field, value: expected } => value(field) == Some(expected.as_str()),
            PostPolicyCondition::StartsWith { field, prefix } => {
                value(field).unwrap_or_default().starts_with(prefix.as_str())
            }
            PostPolicyCondition::ContentLengthRange { .. } => true,
        };
        if !met {
            return Err(s3_error!(AccessDenied, "Invalid according to Policy: Policy Condition failed: {condition:?}"));
        }
    }
    for (name, _) in &fields.0 {
        let named = policy.conditions.iter().any(|c| match c {
            PostPolicyCondition::Eq { field, .. } | PostPolicyCondition::StartsWith { field, .. } => field == name,
            PostPolicyCondition::ContentLengthRange { .. } => false,
        });
        if !exempt(name) && !named {
            return Err(s3_error!(AccessDenied, "Invalid according to Policy: Extra input fields: {name}"));
        }
    }
    Ok(policy)
}

/// When a form was signed, as far as its signature vouches: its `x-amz-date` when the policy
/// pins it (`eq`, as SDKs write it), else the start of the credential's day: a date the form
/// may choose must not move it past a revocation or stretch its lifetime.
pub(super) fn vouched_signing_time(policy: &PostPolicy, fields: &Fields, claimed: OffsetDateTime) -> OffsetDateTime {
    let pinned = policy.conditions.iter().any(|c| {
        matches!(c, PostPolicyCondition::Eq { field, value } if field == "x-amz-date" && Some(value.as_str()) == fields.get("x-amz-date"))
    });
    if pinned { claimed } else { claimed.replace_time(time::Time::MIDNIGHT) }
}

/// When the policy stops working.
pub(super) fn expiration(policy: &PostPolicy) -> OffsetDateTime {
    policy.expiration.clone().into()
}

/// A signed policy is a credential like a presigned URL and lives no longer than one may:
/// `max` after it was signed (`x-amz-date`; SigV2 forms carry no date: `max` from now), and
/// not signed in the future.
pub(super) fn check_lifetime(
    policy: &PostPolicy,
    signed_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    max: Duration,
) -> S3Result<()> {
    if signed_at.is_some_and(|at| at > now + MAX_CLOCK_SKEW) {
        return Err(s3_error!(AccessDenied, "Invalid according to Policy: x-amz-date is in the future."));
    }
    let lifetime = expiration(policy) - signed_at.unwrap_or(now);
    if lifetime > max {
        return Err(s3_error!(
            AccessDenied,
            "Invalid according to Policy: a signed policy may expire at most {} seconds after it is signed.",
            max.as_secs()
        ));
    }
    Ok(())
}

/// The file's length bounds: every `content-length-range` holds (their intersection), within
/// S3's single-upload limit.
pub(super) fn length_range(policy: Option<&PostPolicy>) -> (u64, u64) {
    let ranges = policy.into_iter().flat_map(|p| &p.conditions).filter_map(|c| match c {
        PostPolicyCondition::ContentLengthRange { min, max } => Some((*min, *max)),
        _ => None,
    });
    ranges.fold((0, MAX_OBJECT_SIZE), |(low, high), (min, max)| (low.max(min), high.min(max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(conditions: &str, expiration: &str) -> PostPolicy {
        PostPolicy::from_json(&format!(r#"{{"expiration": "{expiration}", "conditions": {conditions}}}"#)).unwrap()
    }

    #[test]
    fn only_a_pinned_date_is_when_a_form_was_signed() {
        let claimed = time::macros::datetime!(2026-12-06 18:30 UTC);
        let mut fields = Fields::default();
        fields.0.push(("x-amz-date".into(), "20261206T183000Z".into()));
        let pinned = policy(r#"[{"x-amz-date": "20261206T183000Z"}]"#, "2026-12-07T00:00:00Z");
        assert_eq!(vouched_signing_time(&pinned, &fields, claimed), claimed);
        let open = policy(r#"[["starts-with", "$x-amz-date", ""]]"#, "2026-12-07T00:00:00Z");
        assert_eq!(vouched_signing_time(&open, &fields, claimed), time::macros::datetime!(2026-12-06 00:00 UTC));
    }

    #[test]
    fn every_length_range_holds() {
        let p =
            policy(r#"[["content-length-range", 0, 100], ["content-length-range", 5, 3000]]"#, "2030-01-01T00:00:00Z");
        assert_eq!(length_range(Some(&p)), (5, 100));
        assert_eq!(length_range(None), (0, MAX_OBJECT_SIZE));
    }

    #[test]
    fn a_signed_policy_lives_no_longer_than_a_presigned_url() {
        let now = time::macros::datetime!(2026-12-06 12:00 UTC);
        let week = Duration::from_secs(7 * 86400);
        let p = policy("[]", "2026-12-13T11:00:00Z");
        assert!(check_lifetime(&p, Some(now), now, week).is_ok());
        assert!(check_lifetime(&p, Some(now - time::Duration::days(1)), now, week).is_err(), "signed long ago");
        assert!(check_lifetime(&p, Some(now + time::Duration::hours(1)), now, week).is_err(), "signed in the future");
        assert!(check_lifetime(&p, None, now, Duration::from_secs(3600)).is_err());
        assert!(check_lifetime(&policy("[]", "2099-01-01T00:00:00Z"), None, now, week).is_err());
    }
}
