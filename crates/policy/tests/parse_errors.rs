//! Each malformed policy shape is refused with a message naming the problem and its location.

use latchkey_policy::{MAX_POLICY_BYTES, PolicyKind, USER_INLINE_POLICY_MAX_BYTES, parse};

use PolicyKind::{Identity, Resource, Trust};

/// (policy, kind, a phrase the message must contain, the exact location)
const CASES: &[(&str, PolicyKind, &str, &str)] = &[
    ("[]", Identity, "must be a JSON object", "(document)"),
    ("{", Identity, "not valid JSON", "line 1 column 1"),
    (r#"{"Version":"2012-10-17"}"#, Identity, "no Statement", "(document)"),
    (r#"{"Version":"2012-10-17","Statement":[],"Extra":1}"#, Identity, "unknown policy element \"Extra\"", "Extra"),
    (r#"{"Version":"2012-10-18","Statement":[]}"#, Identity, "Version must be", "Version"),
    (r#"{"Version":"2012-10-17","Statement":[]}"#, Identity, "must not be empty", "Statement"),
    (r#"{"Version":"2012-10-17","Statement":"x"}"#, Identity, "object or an array", "Statement"),
    (
        r#"{"Version":"2012-10-17","Id":5,"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        Identity,
        "Id must be a string",
        "Id",
    ),
    (
        r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},7]}"#,
        Identity,
        "statement must be a JSON object",
        "Statement[1]",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Actions":"x"}}"#,
        Identity,
        "unknown statement element \"Actions\"",
        "Statement[0].Actions",
    ),
    (r#"{"Statement":{"Action":"*","Resource":"*"}}"#, Identity, "no Effect", "Statement[0]"),
    (
        r#"{"Statement":{"Effect":"allow","Action":"*","Resource":"*"}}"#,
        Identity,
        "Effect must be",
        "Statement[0].Effect",
    ),
    (r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#, Identity, "needs Action or NotAction", "Statement[0]"),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","NotAction":"s3:x","Resource":"*"}}"#,
        Identity,
        "both Action and NotAction",
        "Statement[0]",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":["s3:GetObject","GetObject"],"Resource":"*"}}"#,
        Identity,
        "must be \"service:Action\"",
        "Statement[0].Action[1]",
    ),
    (r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#, Identity, "empty array", "Statement[0].Action"),
    (
        r#"{"Statement":{"Effect":"Allow","Action":[1],"Resource":"*"}}"#,
        Identity,
        "must be a string",
        "Statement[0].Action[0]",
    ),
    (r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#, Identity, "needs Resource or NotResource", "Statement[0]"),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}}"#,
        Identity,
        "both Resource and NotResource",
        "Statement[0]",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"photos/*"}}"#,
        Identity,
        "must be an ARN",
        "Statement[0].Resource",
    ),
    (
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::${aws:username"}}"#,
        Identity,
        "unterminated policy variable",
        "Statement[0].Resource",
    ),
    (
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::${aws:username, shared}"}}"#,
        Identity,
        "single quotes",
        "Statement[0].Resource",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#,
        Identity,
        "Policy document should not specify a principal.",
        "Statement[0].Principal",
    ),
    (
        r#"{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"*"},"Action":"*","Resource":"*"}}"#,
        PolicyKind::Session,
        "Policy document should not specify a principal.",
        "Statement[0].NotPrincipal",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        Resource,
        "needs Principal or NotPrincipal",
        "Statement[0]",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole"}}"#,
        Trust,
        "needs Principal or NotPrincipal",
        "Statement[0]",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Principal":"alice","Action":"*","Resource":"*"}}"#,
        Resource,
        "principal must be",
        "Statement[0].Principal",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Principal":{"IAM":"x"},"Action":"*","Resource":"*"}}"#,
        Resource,
        "unknown principal type \"IAM\"",
        "Statement[0].Principal.IAM",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["*","alice"]},"Action":"*","Resource":"*"}}"#,
        Resource,
        "principal \"alice\"",
        "Statement[0].Principal.AWS[1]",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Principal":{},"Action":"*","Resource":"*"}}"#,
        Resource,
        "at least one principal",
        "Statement[0].Principal",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":[]}}"#,
        Identity,
        "Condition must be an object",
        "Statement[0].Condition",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqual":{"aws:username":"a"}}}}"#,
        Identity,
        "unknown condition operator \"StringEqual\"",
        "Statement[0].Condition.StringEqual",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"stringequals":{"aws:username":"a"}}}}"#,
        Identity,
        "unknown condition operator",
        "Statement[0].Condition.stringequals",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NullIfExists":{"aws:username":"true"}}}}"#,
        Identity,
        "Null takes neither",
        "Statement[0].Condition.NullIfExists",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":"a"}}}"#,
        Identity,
        "must map condition keys",
        "Statement[0].Condition.StringEquals",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{}}}}"#,
        Identity,
        "names no condition key",
        "Statement[0].Condition.StringEquals",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:username":[]}}}}"#,
        Identity,
        "has no values",
        "Statement[0].Condition.StringEquals.\"aws:username\"",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:username":{"a":1}}}}}"#,
        Identity,
        "string, number or boolean",
        "Statement[0].Condition.StringEquals.\"aws:username\"",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":["2026-12-05","tomorrow"]}}}}"#,
        Identity,
        "neither an ISO 8601 date nor epoch seconds",
        "Statement[0].Condition.DateLessThan.\"aws:CurrentTime\"[1]",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}}"#,
        Identity,
        "\"ten\" is not a number",
        "Statement[0].Condition.NumericLessThan.\"s3:max-keys\"",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}}"#,
        Identity,
        "not an IP address or CIDR block",
        "Statement[0].Condition.IpAddress.\"aws:SourceIp\"",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}}"#,
        Identity,
        "not true or false",
        "Statement[0].Condition.Bool.\"aws:SecureTransport\"",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"BinaryEquals":{"k:b":"!!"}}}}"#,
        Identity,
        "not base64",
        "Statement[0].Condition.BinaryEquals.\"k:b\"",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam"}}}}"#,
        Identity,
        "is not an ARN",
        "Statement[0].Condition.ArnLike.\"aws:PrincipalArn\"",
    ),
    (
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAllValues:Null":{"aws:TagKeys":"true"}}}}"#,
        Identity,
        "Null takes neither",
        "Statement[0].Condition.\"ForAllValues:Null\"",
    ),
    (
        r#"{"Statement":[{"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*"}]}"#,
        Identity,
        "duplicate Sid \"A\"",
        "Statement[1].Sid",
    ),
    (
        r#"{"Statement":{"Sid":1,"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        Identity,
        "Sid must be a string",
        "Statement[0].Sid",
    ),
];

#[test]
fn malformed_policies_name_problem_and_location() {
    let mut failures = Vec::new();
    for (json, kind, phrase, location) in CASES {
        match parse(json, *kind, MAX_POLICY_BYTES) {
            Ok(_) => failures.push(format!("accepted: {json}")),
            Err(e) if !e.message.contains(phrase) || e.location != *location => {
                failures.push(format!("{json}\n  expected {phrase:?} at {location}\n  got {e}"));
            }
            Err(e) => assert_eq!(e.to_string(), format!("{} at {}", e.message, e.location)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn size_limit_is_the_smaller_of_the_callers_and_20480() {
    let statement = r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}"#;
    let of_len = |n: usize| {
        let padding = " ".repeat(n.saturating_sub(statement.len() + 40));
        format!(r#"{{"Version":"2012-10-17","Statement":[{statement}{padding}]}}"#)
    };
    let small = of_len(2000);
    assert!(parse(&small, Identity, USER_INLINE_POLICY_MAX_BYTES).is_ok());
    let big = of_len(3000);
    let err = parse(&big, Identity, USER_INLINE_POLICY_MAX_BYTES).err().map(|e| (e.message, e.location));
    assert_eq!(
        err,
        Some((format!("policy document is {} bytes, over the limit of 2048 bytes", big.len()), "(document)".into()))
    );
    let huge = of_len(21_000);
    assert!(parse(&huge, Resource, usize::MAX).is_err());
    assert!(parse(&of_len(20_000), Identity, usize::MAX).is_ok());
}

#[test]
fn both_shapes_of_values_are_accepted() {
    let json = r#"{"Version":"2012-10-17","Id":"p1","Statement":[
        {"Sid":"One","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
         "Condition":{"NumericLessThan":{"s3:max-keys":10},"Bool":{"aws:SecureTransport":true}}},
        {"Effect":"Deny","NotAction":["s3:*"],"NotResource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}]}"#;
    let policy = parse(json, Identity, MAX_POLICY_BYTES).map_err(|e| e.to_string());
    assert_eq!(policy.as_ref().map(|p| p.statements.len()), Ok(2));
    assert_eq!(policy.as_ref().map(|p| p.id.clone()), Ok(Some("p1".to_string())));
    let trust = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sts:AssumeRole",
        "Principal":{"AWS":["arn:aws:iam::123456789012:root","123456789012","arn:aws:sts::123456789012:assumed-role/r/s"],
                     "Service":"ec2.amazonaws.com","Federated":"x","CanonicalUser":"y"}}}"#;
    assert!(parse(trust, Trust, MAX_POLICY_BYTES).is_ok());
}
