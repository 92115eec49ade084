//! What `explain` tells a policy simulator: the conditions that kept a statement from applying,
//! and the condition keys the request would have to carry.

use std::sync::Arc;

use latchkey_policy::{
    Effect, MAX_POLICY_BYTES, NamedPolicy, PolicyKind, PolicySet, PolicySource, Principal, PrincipalKind, Request,
    RequestContext, explain, parse,
};

const MFA_DELETE: &str = r#"{"Version": "2012-10-17", "Statement": [
    {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
    {"Sid": "DeleteWithMfa", "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/*",
     "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}},
    {"Sid": "NoDeleteFromOffice", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*",
     "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}"#;

fn alice() -> Principal {
    Principal {
        kind: PrincipalKind::User,
        account: "123456789012".into(),
        arn: "arn:aws:iam::123456789012:user/alice".into(),
        role_arn: None,
    }
}

fn explain_with(document: &str, action: &str, context: &RequestContext) -> latchkey_policy::Explanation {
    let policy = parse(document, PolicyKind::Identity, MAX_POLICY_BYTES).expect("the policy parses");
    let identity = [NamedPolicy { name: "p".into(), source: PolicySource::UserInline, policy: Arc::new(policy) }];
    let set = PolicySet { identity: &identity, ..PolicySet::default() };
    let who = alice();
    explain(&set, &Request { principal: &who, action, resource: "arn:aws:s3:::b/k", context })
}

/// Explains the delete with a request from 192.0.2.1 (outside the office) and these MFA keys.
fn explain_delete_from_home(mfa_present: &str) -> latchkey_policy::Explanation {
    let mut context = RequestContext::new();
    context.insert("AWS:MultiFactorAuthPresent", mfa_present);
    context.insert("aws:SourceIp", "192.0.2.1");
    explain_with(MFA_DELETE, "s3:deleteobject", &context)
}

#[test]
fn a_condition_on_an_absent_key_is_unmet_and_the_key_missing() {
    let explanation = explain_with(MFA_DELETE, "s3:deleteobject", &RequestContext::new());
    assert_eq!(explanation.effect, Effect::ImplicitDeny);
    let unmet: Vec<_> = explanation
        .unmet_conditions
        .iter()
        .map(|(statement, why)| (statement.sid.as_deref(), statement.index, why.as_str()))
        .collect();
    assert_eq!(
        unmet,
        [
            (Some("DeleteWithMfa"), 1, "aws:MultiFactorAuthPresent is not in the request"),
            (Some("NoDeleteFromOffice"), 2, "aws:SourceIp is not in the request"),
        ]
    );
    // The Read statement missed on its action: failed, but not for a condition.
    assert!(explanation.failed.iter().any(|(s, why)| s.index == 0 && why.contains("not matched by Action")));
    assert_eq!(explanation.failed.len(), 3);
    assert!(explanation.matched.is_empty());
    assert_eq!(explanation.missing_keys, ["aws:MultiFactorAuthPresent", "aws:SourceIp"]);
}

#[test]
fn a_statement_that_applies_through_if_exists_still_names_its_absent_key() {
    let document = r#"{"Version": "2012-10-17", "Statement": {"Sid": "Home", "Effect": "Allow",
        "Action": "s3:GetObject", "Resource": "*", "Condition": {"StringLikeIfExists": {"s3:prefix": "home/*"}}}}"#;
    let explanation = explain_with(document, "s3:getobject", &RequestContext::new());
    assert_eq!(explanation.effect, Effect::Allow);
    assert!(explanation.unmet_conditions.is_empty());
    assert_eq!(explanation.missing_keys, ["s3:prefix"]);
    let mut context = RequestContext::new();
    context.insert("s3:prefix", "home/a");
    assert!(explain_with(document, "s3:getobject", &context).missing_keys.is_empty());
}

#[test]
fn keys_the_request_carries_are_not_missing() {
    let explanation = explain_delete_from_home("true");
    assert_eq!(explanation.unmet_conditions.len(), 1, "the office deny: {:?}", explanation.unmet_conditions);
    assert_eq!(explanation.effect, Effect::Allow);
    assert_eq!(explanation.deciding.and_then(|s| s.sid).as_deref(), Some("DeleteWithMfa"));
    assert!(explanation.missing_keys.is_empty(), "{:?}", explanation.missing_keys);
}

#[test]
fn a_condition_that_fails_on_its_value_says_what_the_request_had() {
    let explanation = explain_delete_from_home("false");
    assert_eq!(explanation.effect, Effect::ImplicitDeny);
    let [(statement, why), _office] = explanation.unmet_conditions.as_slice() else {
        panic!("{:?}", explanation.unmet_conditions)
    };
    assert_eq!(statement.sid.as_deref(), Some("DeleteWithMfa"));
    assert_eq!(why, "condition Bool aws:MultiFactorAuthPresent: request has false");
    assert!(explanation.missing_keys.is_empty(), "{:?}", explanation.missing_keys);
}
