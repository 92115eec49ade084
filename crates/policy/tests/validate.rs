//! Warnings for classic mistakes, each with its location; clean policies get none.

use latchkey_policy::{PolicyKind, validate};

fn warnings(json: &str) -> Vec<(String, String)> {
    match validate(json, PolicyKind::Identity) {
        Ok(w) => w.into_iter().map(|w| (w.message, w.location)).collect(),
        Err(e) => panic!("{e}"),
    }
}

fn has(warnings: &[(String, String)], phrase: &str, location: &str) -> bool {
    warnings.iter().any(|(m, l)| m.contains(phrase) && l == location)
}

#[test]
fn clean_policy_has_no_warnings() {
    let w = warnings(
        r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*",
         "Condition":{"StringEquals":{"aws:PrincipalTag/Team":"x"},"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}},
        {"Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}},
        {"Effect":"Allow","Action":"s3:*","Resource":"*"},
        {"Effect":"Allow","Action":"latchkey:CreateShare","Resource":"*","Condition":{"NumericLessThanEquals":{"latchkey:ShareMaxUses":"5"}}}]}"#,
    );
    assert_eq!(w, Vec::<(String, String)>::new());
}

#[test]
fn deny_bool_mfa_false_recommends_bool_if_exists() {
    let w = warnings(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"},
        {"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"}}}]}"#,
    );
    assert!(has(&w, "use BoolIfExists", r#"Statement[1].Condition.Bool."aws:MultiFactorAuthPresent""#), "{w:?}");
    assert_eq!(w.len(), 1, "{w:?}");
}

#[test]
fn allow_with_not_action_or_not_resource_warns() {
    let w = warnings(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"arn:aws:s3:::b"},
        {"Effect":"Allow","Action":"s3:ListBucket","NotResource":"arn:aws:s3:::secret"},
        {"Effect":"Deny","NotAction":"s3:GetObject","NotResource":"arn:aws:s3:::b/*"}]}"#,
    );
    assert!(has(&w, "Allow with NotAction", "Statement[0].NotAction"), "{w:?}");
    assert!(has(&w, "Allow with NotResource", "Statement[1].NotResource"), "{w:?}");
    assert_eq!(w.len(), 2, "a Deny with NotAction/NotResource is the documented use: {w:?}");
}

#[test]
fn object_actions_on_every_resource_warn() {
    let w = warnings(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:ListBucket","s3:PutObject"],"Resource":"*"},
        {"Effect":"Allow","Action":"s3:DeleteObject*","Resource":["arn:aws:s3:::b/*","*"]},
        {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
    );
    assert!(has(&w, "\"s3:PutObject\" acts on objects", "Statement[0].Resource"), "{w:?}");
    assert!(has(&w, "\"s3:DeleteObject*\" acts on objects", "Statement[1].Resource"), "{w:?}");
    assert_eq!(w.len(), 2, "{w:?}");
}

#[test]
fn missing_version_warns() {
    let w = warnings(
        r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}}"#,
    );
    assert!(has(&w, "no Version", "(document)"), "{w:?}");
}

#[test]
fn unknown_condition_key_warns_and_known_tag_keys_do_not() {
    let w = warnings(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
        "Condition":{"StringEquals":{"aws:usrname":"a","s3:ExistingObjectTag/Owner":"a","aws:RequestTag/":"x"},
                     "ForAllValues:StringEquals":{"aws:TagKeys":"a"}}}}"#,
    );
    assert!(
        has(&w, "unknown condition key \"aws:usrname\"", r#"Statement[0].Condition.StringEquals."aws:usrname""#),
        "{w:?}"
    );
    assert!(
        has(
            &w,
            "unknown condition key \"aws:RequestTag/\"",
            r#"Statement[0].Condition.StringEquals."aws:RequestTag/""#
        ),
        "{w:?}"
    );
    assert_eq!(w.len(), 2, "{w:?}");
}

#[test]
fn validate_reports_parse_errors() {
    let err = validate(
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#,
        PolicyKind::Identity,
    );
    assert_eq!(err.err().map(|e| e.location), Some("Statement[0].Principal".to_string()));
}
