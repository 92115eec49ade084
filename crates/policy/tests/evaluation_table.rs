//! Table-driven evaluation cases, each written from the AWS IAM User Guide (the `rule` says which
//! passage), with the decision AWS documents. `explain` must agree with `evaluate` on every case.

use std::sync::Arc;

use latchkey_policy::{
    Effect, MAX_POLICY_BYTES, NamedPolicy, PolicyKind, PolicySet, PolicySource, Principal, PrincipalKind, Request,
    RequestContext, evaluate, explain, parse,
};

const ACCOUNT: &str = "123456789012";
const OBJ: &str = "arn:aws:s3:::photos/alice/cat.jpg";
const ROLE: &str = "arn:aws:iam::123456789012:role/reader";
const ALLOW_GET: &str = r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}"#;
const ALLOW_ALL: &str = r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#;
const DENY_GET: &str = r#"{"Effect":"Deny","Action":"s3:GetObject","Resource":"*"}"#;
const ALLOW_PUT: &str = r#"{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}"#;

#[derive(Clone, Copy, Debug)]
enum Who {
    Root,
    Alice,
    Bob,
    /// Session `s1` of role `reader`.
    Session,
    /// Session `s2` of role `reader`.
    OtherSession,
    Anonymous,
}

use Effect::{Allow, ExplicitDeny, ImplicitDeny};
use Who::*;

#[derive(Clone, Copy)]
struct Case {
    rule: &'static str,
    /// Statement JSON (wrapped in a 2012-10-17 document) or a whole document (has "Statement").
    identity: &'static [&'static str],
    bucket: Option<&'static str>,
    trust: Option<&'static str>,
    boundary: Option<&'static str>,
    session: &'static [&'static str],
    who: Who,
    action: &'static str,
    resource: &'static str,
    context: &'static [(&'static str, &'static [&'static str])],
    expect: Effect,
}

const BASE: Case = Case {
    rule: "",
    identity: &[],
    bucket: None,
    trust: None,
    boundary: None,
    session: &[],
    who: Alice,
    action: "s3:GetObject",
    resource: OBJ,
    context: &[],
    expect: ImplicitDeny,
};

const CASES: &[Case] = &[
    // --- Defaults, and deny wins across every policy type ---
    Case { rule: "all requests are implicitly denied by default", ..BASE },
    Case { rule: "an identity-based Allow allows", identity: &[ALLOW_GET], expect: Allow, ..BASE },
    Case {
        rule: "explicit deny overrides allow (same policy)",
        identity: &[
            r#"[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:GetObject","Resource":"*"}]"#,
        ],
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "deny in a group policy overrides the user's allow",
        identity: &[ALLOW_GET, DENY_GET],
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "deny in a bucket policy overrides an identity allow",
        identity: &[ALLOW_GET],
        bucket: Some(r#"{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#),
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "deny in a permissions boundary overrides",
        identity: &[ALLOW_GET],
        boundary: Some(
            r#"[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"s3:GetObject","Resource":"*"}]"#,
        ),
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "deny in a session policy overrides",
        who: Session,
        identity: &[ALLOW_GET],
        session: &[
            r#"[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"s3:GetObject","Resource":"*"}]"#,
        ],
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "identity deny overrides a bucket policy allow that names the user",
        identity: &[DENY_GET],
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "a deny for another action does not apply",
        identity: &[ALLOW_GET, r#"{"Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"}"#],
        expect: Allow,
        ..BASE
    },
    // --- Root and anonymous ---
    Case { rule: "root user has full access by default", who: Root, expect: Allow, ..BASE },
    Case {
        rule: "a bucket policy deny applies to root",
        who: Root,
        bucket: Some(r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}"#),
        expect: ExplicitDeny,
        ..BASE
    },
    Case { rule: "root has no identity policies to deny it", who: Root, identity: &[DENY_GET], expect: Allow, ..BASE },
    Case {
        rule: "anonymous: a bucket policy allowing Principal * allows",
        who: Anonymous,
        bucket: Some(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
        ),
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "anonymous: {\"AWS\":\"*\"} is everyone too",
        who: Anonymous,
        bucket: Some(r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"*"}"#),
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "anonymous is not a principal of the account",
        who: Anonymous,
        bucket: Some(r#"{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"s3:GetObject","Resource":"*"}"#),
        ..BASE
    },
    Case { rule: "anonymous has no identity policies", who: Anonymous, identity: &[ALLOW_GET], ..BASE },
    Case {
        rule: "anonymous: deny wins over the public allow",
        who: Anonymous,
        bucket: Some(
            r#"[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"},{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/alice/*"}]"#,
        ),
        expect: ExplicitDeny,
        ..BASE
    },
    // --- Resource-based grants: user ARN vs role ARN vs account ---
    Case {
        rule: "bucket policy naming the user ARN grants directly",
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "bucket policy naming another user grants nothing",
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        ..BASE
    },
    Case {
        rule: "account principal delegates to identity policies",
        bucket: Some(r#"{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"s3:GetObject","Resource":"*"}"#),
        ..BASE
    },
    Case {
        rule: "account principal plus identity allow",
        identity: &[ALLOW_GET],
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "account principal names root directly",
        who: Root,
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "role ARN in a bucket policy allows the role's sessions",
        who: Session,
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/reader"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "role ARN grant is limited by the permissions boundary",
        who: Session,
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/reader"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        boundary: Some(ALLOW_PUT),
        ..BASE
    },
    Case {
        rule: "role ARN grant is limited by session policies",
        who: Session,
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/reader"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        session: &[ALLOW_PUT],
        ..BASE
    },
    Case {
        rule: "session ARN grant is not limited by session policies",
        who: Session,
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::123456789012:assumed-role/reader/s1"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        session: &[ALLOW_PUT],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "user ARN grant is not limited by the permissions boundary",
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        boundary: Some(ALLOW_PUT),
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Principal * grants directly",
        bucket: Some(r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}"#),
        boundary: Some(ALLOW_PUT),
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "role ARN covers every session of the role",
        who: OtherSession,
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123456789012:role/reader"]},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "session ARN names only that session",
        who: OtherSession,
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::123456789012:assumed-role/reader/s1"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        ..BASE
    },
    Case {
        rule: "a user ARN does not name a session",
        who: Session,
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        ..BASE
    },
    Case {
        rule: "another account's principal is not us",
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:user/alice"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        ..BASE
    },
    Case {
        rule: "Service principals match no Latchkey principal",
        bucket: Some(
            r#"{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"s3:GetObject","Resource":"*"}"#,
        ),
        ..BASE
    },
    // --- Permissions boundaries ---
    Case {
        rule: "boundary and identity both allow",
        identity: &[ALLOW_GET],
        boundary: Some(ALLOW_GET),
        expect: Allow,
        ..BASE
    },
    Case { rule: "boundary does not allow: implicit deny", identity: &[ALLOW_GET], boundary: Some(ALLOW_PUT), ..BASE },
    Case { rule: "a boundary alone grants nothing", boundary: Some(ALLOW_GET), ..BASE },
    Case {
        rule: "boundary caps a broad identity policy",
        identity: &[r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#],
        boundary: Some(ALLOW_GET),
        action: "s3:PutObject",
        ..BASE
    },
    Case {
        rule: "inside the cap it is allowed",
        identity: &[r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#],
        boundary: Some(ALLOW_GET),
        expect: Allow,
        ..BASE
    },
    // --- Session policies ---
    Case {
        rule: "a session without session policies has the role's permissions",
        who: Session,
        identity: &[ALLOW_GET],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "session permissions are the intersection",
        who: Session,
        identity: &[ALLOW_GET],
        session: &[ALLOW_GET],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "session policy not allowing limits the role",
        who: Session,
        identity: &[ALLOW_GET],
        session: &[ALLOW_PUT],
        ..BASE
    },
    Case { rule: "session policies cannot grant more than the role", who: Session, session: &[ALLOW_GET], ..BASE },
    Case {
        rule: "any one session policy allowing is enough",
        who: Session,
        identity: &[ALLOW_GET],
        session: &[ALLOW_PUT, ALLOW_GET],
        expect: Allow,
        ..BASE
    },
    // --- NotAction, NotResource, NotPrincipal ---
    Case {
        rule: "Allow NotAction allows what is not listed",
        identity: &[r#"{"Effect":"Allow","NotAction":"s3:DeleteObject","Resource":"*"}"#],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Allow NotAction does not allow what is listed",
        identity: &[r#"{"Effect":"Allow","NotAction":"s3:DeleteObject","Resource":"*"}"#],
        action: "s3:DeleteObject",
        ..BASE
    },
    Case {
        rule: "Deny NotAction denies everything else",
        identity: &[ALLOW_ALL, r#"{"Effect":"Deny","NotAction":"s3:GetObject","Resource":"*"}"#],
        action: "s3:PutObject",
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "Deny NotAction spares what is listed",
        identity: &[ALLOW_ALL, r#"{"Effect":"Deny","NotAction":["s3:GetObject","s3:ListBucket"],"Resource":"*"}"#],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Allow NotResource allows other resources",
        identity: &[r#"{"Effect":"Allow","Action":"s3:GetObject","NotResource":"arn:aws:s3:::secret/*"}"#],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Allow NotResource excludes the listed resources",
        identity: &[r#"{"Effect":"Allow","Action":"s3:GetObject","NotResource":"arn:aws:s3:::secret/*"}"#],
        resource: "arn:aws:s3:::secret/plans",
        ..BASE
    },
    Case {
        rule: "Deny NotResource fences everything outside",
        identity: &[
            ALLOW_ALL,
            r#"{"Effect":"Deny","Action":"*","NotResource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]}"#,
        ],
        resource: "arn:aws:s3:::other/x",
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "Deny NotPrincipal spares the listed user",
        identity: &[ALLOW_GET],
        bucket: Some(
            r#"{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"*","Resource":"*"}"#,
        ),
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Deny NotPrincipal denies everyone else",
        who: Bob,
        identity: &[ALLOW_GET],
        bucket: Some(
            r#"{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"*","Resource":"*"}"#,
        ),
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "Deny NotPrincipal listing the role spares its sessions",
        who: Session,
        identity: &[ALLOW_GET],
        bucket: Some(
            r#"{"Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::123456789012:role/reader"]},"Action":"*","Resource":"*"}"#,
        ),
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Deny NotPrincipal applies to anonymous",
        who: Anonymous,
        bucket: Some(
            r#"[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"},{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"*","Resource":"*"}]"#,
        ),
        expect: ExplicitDeny,
        ..BASE
    },
    // --- String operators ---
    Case {
        rule: "StringEquals matches exactly",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"blue"}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["blue"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "StringEquals mismatch",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"blue"}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["red"])],
        ..BASE
    },
    Case {
        rule: "absent key: the condition is false",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"blue"}}}"#,
        ],
        ..BASE
    },
    Case {
        rule: "absent key: negated operators are true",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":"blue"}}}"#,
        ],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "negated operator with several values: matches none of them (AND)",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":["a","b"]}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["a"])],
        ..BASE
    },
    Case {
        rule: "negated operator with several values, none matching",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":["a","b"]}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["c"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "several values for one key: OR",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":["a","b"]}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["b"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "StringEqualsIgnoreCase ignores case",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEqualsIgnoreCase":{"aws:PrincipalTag/team":"BLUE"}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["blue"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "StringEquals is case-sensitive",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"BLUE"}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["blue"])],
        ..BASE
    },
    Case {
        rule: "StringNotEqualsIgnoreCase",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringNotEqualsIgnoreCase":{"aws:PrincipalTag/team":"BLUE"}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["blue"])],
        ..BASE
    },
    Case {
        rule: "StringEquals treats * literally",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"s3:prefix":"home/*"}}}"#,
        ],
        context: &[("s3:prefix", &["home/alice"])],
        ..BASE
    },
    Case {
        rule: "StringLike * wildcard",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringLike":{"s3:prefix":"home/*"}}}"#,
        ],
        context: &[("s3:prefix", &["home/alice/x"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "StringLike ? wildcard is one character",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringLike":{"s3:prefix":"v?"}}}"#,
        ],
        context: &[("s3:prefix", &["v10"])],
        ..BASE
    },
    Case {
        rule: "StringNotLike on an absent key is true",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringNotLike":{"s3:prefix":"private/*"}}}"#,
        ],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "...IfExists: absent key is true",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:PrincipalTag/team":"blue"}}}"#,
        ],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "...IfExists: present key is checked",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:PrincipalTag/team":"blue"}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["red"])],
        ..BASE
    },
    Case {
        rule: "condition key names are case-insensitive",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"AWS:PRINCIPALTAG/TEAM":"blue"}}}"#,
        ],
        context: &[("aws:principaltag/team", &["blue"])],
        expect: Allow,
        ..BASE
    },
    // --- Numeric ---
    Case {
        rule: "NumericLessThan",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":100}}}"#,
        ],
        context: &[("s3:max-keys", &["10"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "NumericLessThan is strict",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"100"}}}"#,
        ],
        context: &[("s3:max-keys", &["100"])],
        ..BASE
    },
    Case {
        rule: "NumericLessThanEquals compares values, not text",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NumericLessThanEquals":{"s3:max-keys":"100"}}}"#,
        ],
        context: &[("s3:max-keys", &["100.0"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "NumericGreaterThanEquals",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NumericGreaterThanEquals":{"aws:MultiFactorAuthAge":"0.5"}}}"#,
        ],
        context: &[("aws:MultiFactorAuthAge", &["0.50"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "NumericGreaterThan on an absent key is false",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NumericGreaterThan":{"s3:max-keys":"1"}}}"#,
        ],
        ..BASE
    },
    Case {
        rule: "NumericNotEquals on an absent key is true",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NumericNotEquals":{"s3:max-keys":"1"}}}"#,
        ],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "a request value that is not a number matches nothing",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NumericEquals":{"s3:max-keys":"1"}}}"#,
        ],
        context: &[("s3:max-keys", &["one"])],
        ..BASE
    },
    Case {
        rule: "NumericLessThan with a negative value",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"-1"}}}"#,
        ],
        context: &[("s3:max-keys", &["-2"])],
        expect: Allow,
        ..BASE
    },
    // --- Date ---
    Case {
        rule: "DateLessThan with ISO 8601",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}"#,
        ],
        context: &[("aws:CurrentTime", &["2026-12-05T10:00:00Z"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "DateGreaterThan",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}"#,
        ],
        context: &[("aws:CurrentTime", &["2026-12-05T10:00:00Z"])],
        ..BASE
    },
    Case {
        rule: "dates compare as instants: epoch seconds against ISO 8601",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"DateLessThan":{"aws:EpochTime":"1893456000"}}}"#,
        ],
        context: &[("aws:EpochTime", &["2026-12-05T10:00:00Z"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "a date-only value is midnight UTC",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"DateEquals":{"aws:CurrentTime":"2026-12-05"}}}"#,
        ],
        context: &[("aws:CurrentTime", &["2026-12-05T01:00:00+01:00"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "DateNotEquals on an absent key is true",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"DateNotEquals":{"aws:TokenIssueTime":"2026-12-05"}}}"#,
        ],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "DateGreaterThanEqualsIfExists on an absent key",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"DateGreaterThanEqualsIfExists":{"aws:TokenIssueTime":"2026-12-05"}}}"#,
        ],
        expect: Allow,
        ..BASE
    },
    // --- Bool, Binary, IP ---
    Case {
        rule: "Bool true",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#,
        ],
        context: &[("aws:SecureTransport", &["true"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Bool mismatch",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":true}}}"#,
        ],
        context: &[("aws:SecureTransport", &["false"])],
        ..BASE
    },
    Case {
        rule: "Deny Bool MFA false never matches long-term keys (key absent)",
        identity: &[
            ALLOW_GET,
            r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"}}}"#,
        ],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Deny BoolIfExists MFA false covers long-term keys",
        identity: &[
            ALLOW_GET,
            r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}"#,
        ],
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "BinaryEquals compares bytes",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"BinaryEquals":{"latchkey:ShareMethod":"R0VU"}}}"#,
        ],
        context: &[("latchkey:ShareMethod", &["R0VU"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "IpAddress in CIDR",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.7"]}}}"#,
        ],
        context: &[("aws:SourceIp", &["10.1.2.3"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "IpAddress outside",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#,
        ],
        context: &[("aws:SourceIp", &["11.0.0.1"])],
        ..BASE
    },
    Case {
        rule: "a bare address is a /32",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"192.0.2.7"}}}"#,
        ],
        context: &[("aws:SourceIp", &["192.0.2.7"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "IPv6 CIDR",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}}"#,
        ],
        context: &[("aws:SourceIp", &["2001:db8::1"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "an IPv4 client written as IPv6 (::ffff:) is in its IPv4 block",
        identity: &[
            ALLOW_GET,
            r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"198.51.100.0/24"}}}"#,
        ],
        context: &[("aws:SourceIp", &["::ffff:198.51.100.7"])],
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "Deny NotIpAddress denies outside callers",
        identity: &[
            ALLOW_GET,
            r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","172.16.0.0/12"]}}}"#,
        ],
        context: &[("aws:SourceIp", &["192.168.1.1"])],
        expect: ExplicitDeny,
        ..BASE
    },
    Case {
        rule: "Deny NotIpAddress spares inside callers",
        identity: &[
            ALLOW_GET,
            r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","172.16.0.0/12"]}}}"#,
        ],
        context: &[("aws:SourceIp", &["172.16.5.5"])],
        expect: Allow,
        ..BASE
    },
    // --- ARN ---
    Case {
        rule: "ArnLike with a wildcard in the resource part",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/*"}}}"#,
        ],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "ArnEquals takes wildcards per component too",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::*:user/alice"}}}"#,
        ],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "ArnLike mismatch",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}}}"#,
        ],
        ..BASE
    },
    Case {
        rule: "ArnNotLike on an absent key is true",
        who: Anonymous,
        bucket: Some(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}}"#,
        ),
        expect: Allow,
        ..BASE
    },
    // --- Null ---
    Case {
        rule: "Null true: key absent holds",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"Null":{"aws:TokenIssueTime":"true"}}}"#,
        ],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Null false: key must be present",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"Null":{"aws:TokenIssueTime":false}}}"#,
        ],
        ..BASE
    },
    // --- Set operators ---
    Case {
        rule: "ForAnyValue: some request value matches",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}}"#,
        ],
        context: &[("aws:TagKeys", &["b", "c"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "ForAnyValue: absent key is false",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}}"#,
        ],
        ..BASE
    },
    Case {
        rule: "ForAllValues: every request value must match",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}}"#,
        ],
        context: &[("aws:TagKeys", &["a", "c"])],
        ..BASE
    },
    Case {
        rule: "ForAllValues: subset matches",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}}"#,
        ],
        context: &[("aws:TagKeys", &["a", "b"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "ForAllValues: absent key is true",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}}"#,
        ],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "ForAllValues:StringLike",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"ForAllValues:StringLike":{"aws:TagKeys":"Created*"}}}"#,
        ],
        context: &[("aws:TagKeys", &["CreatedBy", "CreatedAt"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "no qualifier on a multivalued key reads as ForAnyValue",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:TagKeys":"b"}}}"#,
        ],
        context: &[("aws:TagKeys", &["a", "b"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "ForAnyValue with a negated operator: some value matches none",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["a","b"]}}}"#,
        ],
        context: &[("aws:TagKeys", &["a", "b"])],
        ..BASE
    },
    // --- AND across operators and keys ---
    Case {
        rule: "several operators: AND (one fails)",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#,
        ],
        context: &[("aws:SecureTransport", &["true"]), ("aws:SourceIp", &["8.8.8.8"])],
        ..BASE
    },
    Case {
        rule: "several keys under one operator: AND (both hold)",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"blue","s3:prefix":"x"}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["blue"]), ("s3:prefix", &["x"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "several keys under one operator: AND (one absent)",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"blue","s3:prefix":"x"}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["blue"])],
        ..BASE
    },
    // --- Policy variables ---
    Case {
        rule: "${aws:username} in Resource",
        identity: &[r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/${aws:username}/*"}"#],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "${aws:username} is the caller's own name only",
        who: Bob,
        identity: &[r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/${aws:username}/*"}"#],
        ..BASE
    },
    Case {
        rule: "a variable with no value matches nothing",
        who: Session,
        identity: &[r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/${aws:username}/*"}"#],
        ..BASE
    },
    Case {
        rule: "a variable's default applies when the key is absent",
        who: Session,
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/${aws:username, 'shared'}/*"}"#,
        ],
        resource: "arn:aws:s3:::photos/shared/a.jpg",
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "variables in condition values",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringLike":{"s3:prefix":"${aws:PrincipalTag/team}/*"}}}"#,
        ],
        context: &[("aws:PrincipalTag/team", &["blue"]), ("s3:prefix", &["blue/x"])],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "a variable's value is literal, not a wildcard",
        identity: &[
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/${aws:PrincipalTag/dir}/cat.jpg"}"#,
        ],
        context: &[("aws:PrincipalTag/dir", &["*"])],
        ..BASE
    },
    Case {
        rule: "${*} is a literal *",
        identity: &[r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/${*}"}"#],
        ..BASE
    },
    Case {
        rule: "${*} matches a literal *",
        identity: &[r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/${*}"}"#],
        resource: "arn:aws:s3:::photos/*",
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Version missing: ${...} is literal",
        identity: &[
            r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/${aws:username}/*"}}"#,
        ],
        ..BASE
    },
    Case {
        rule: "Version missing: the literal text matches",
        identity: &[
            r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/${aws:username}/*"}}"#,
        ],
        resource: "arn:aws:s3:::photos/${aws:username}/cat.jpg",
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Version 2008-10-17: ${...} is literal",
        identity: &[
            r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/${aws:username}/*"}}"#,
        ],
        ..BASE
    },
    // --- Wildcards and case rules ---
    Case {
        rule: "Action wildcard *",
        identity: &[r#"{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}"#],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Action wildcard does not cover other actions",
        identity: &[r#"{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}"#],
        action: "s3:PutObject",
        ..BASE
    },
    Case {
        rule: "Action is case-insensitive",
        identity: &[r#"{"Effect":"Allow","Action":"S3:GETOBJECT","Resource":"*"}"#],
        action: "s3:getObject",
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Action ? wildcard",
        identity: &[r#"{"Effect":"Allow","Action":"s3:?etObject","Resource":"*"}"#],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Resource is case-sensitive",
        identity: &[r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::Photos/*"}"#],
        ..BASE
    },
    Case {
        rule: "Resource wildcard in the middle",
        identity: &[r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*/cat.jpg"}"#],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "Resource ? wildcard",
        identity: &[r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photo?/alice/cat.jpg"}"#],
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "a bucket ARN does not cover its objects",
        identity: &[r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos"}"#],
        ..BASE
    },
    Case {
        rule: "Action * covers Latchkey's own actions",
        identity: &[ALLOW_ALL],
        action: "latchkey:CreateShare",
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "s3:* does not cover latchkey:CreateShare",
        identity: &[r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#],
        action: "latchkey:CreateShare",
        ..BASE
    },
    Case {
        rule: "latchkey:*Share covers RevokeShare",
        identity: &[r#"{"Effect":"Allow","Action":"latchkey:*Share","Resource":"*"}"#],
        action: "latchkey:RevokeShare",
        expect: Allow,
        ..BASE
    },
    // --- Trust policies (resource policy of the role, action sts:AssumeRole) ---
    Case {
        rule: "trust policy naming the user lets it assume the role",
        trust: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"sts:AssumeRole"}"#,
        ),
        action: "sts:AssumeRole",
        resource: ROLE,
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "trust policy naming the account needs an identity allow",
        trust: Some(r#"{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"sts:AssumeRole"}"#),
        action: "sts:AssumeRole",
        resource: ROLE,
        ..BASE
    },
    Case {
        rule: "trust policy naming the account, with an identity allow",
        identity: &[r#"{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::123456789012:role/*"}"#],
        trust: Some(r#"{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"sts:AssumeRole"}"#),
        action: "sts:AssumeRole",
        resource: ROLE,
        expect: Allow,
        ..BASE
    },
    Case {
        rule: "trust policy condition on sts:ExternalId",
        trust: Some(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"x-1"}}}"#,
        ),
        action: "sts:AssumeRole",
        resource: ROLE,
        context: &[("sts:ExternalId", &["x-2"])],
        ..BASE
    },
];

fn principal(who: Who) -> Principal {
    let (kind, arn, role_arn) = match who {
        Root => (PrincipalKind::Root, "arn:aws:iam::123456789012:root", None),
        Alice => (PrincipalKind::User, "arn:aws:iam::123456789012:user/alice", None),
        Bob => (PrincipalKind::User, "arn:aws:iam::123456789012:user/bob", None),
        Session => (PrincipalKind::AssumedRole, "arn:aws:sts::123456789012:assumed-role/reader/s1", Some(ROLE)),
        OtherSession => (PrincipalKind::AssumedRole, "arn:aws:sts::123456789012:assumed-role/reader/s2", Some(ROLE)),
        Anonymous => return Principal::anonymous(),
    };
    Principal { kind, account: ACCOUNT.into(), arn: arn.into(), role_arn: role_arn.map(Into::into) }
}

fn named(name: String, text: &str, kind: PolicyKind, source: PolicySource) -> NamedPolicy {
    let json = if text.contains("\"Statement\"") {
        text.to_string()
    } else {
        format!(r#"{{"Version":"2012-10-17","Statement":{text}}}"#)
    };
    let policy = parse(&json, kind, MAX_POLICY_BYTES).unwrap_or_else(|e| panic!("{name}: {e}\n{json}"));
    NamedPolicy { name, source, policy: Arc::new(policy) }
}

#[test]
fn evaluation_table() {
    assert!(CASES.len() >= 80, "only {} cases", CASES.len());
    let mut failures = Vec::new();
    for (n, case) in CASES.iter().enumerate() {
        let identity: Vec<NamedPolicy> = case
            .identity
            .iter()
            .enumerate()
            .map(|(i, t)| named(format!("identity-{i}"), t, PolicyKind::Identity, PolicySource::UserManaged))
            .collect();
        let resource = match (case.bucket, case.trust) {
            (Some(t), _) => Some(named("bucket".into(), t, PolicyKind::Resource, PolicySource::Bucket)),
            (None, Some(t)) => Some(named("trust".into(), t, PolicyKind::Trust, PolicySource::Trust)),
            (None, None) => None,
        };
        let boundary = case.boundary.map(|t| named("boundary".into(), t, PolicyKind::Boundary, PolicySource::Boundary));
        let session: Vec<NamedPolicy> = case
            .session
            .iter()
            .enumerate()
            .map(|(i, t)| named(format!("session-{i}"), t, PolicyKind::Session, PolicySource::Session))
            .collect();
        let set = PolicySet {
            identity: &identity,
            resource: resource.as_ref(),
            boundary: boundary.as_ref(),
            session: &session,
        };
        let who = principal(case.who);
        let mut context = RequestContext::new();
        context.insert_principal_keys(&who);
        for (key, values) in case.context {
            context.insert_multi(key, values.iter().copied());
        }
        let request = Request { principal: &who, action: case.action, resource: case.resource, context: &context };
        let decision = evaluate(&set, &request);
        let explanation = explain(&set, &request);
        if decision.effect != case.expect {
            failures.push(format!(
                "#{n} {}: expected {:?}, got {:?} ({})",
                case.rule, case.expect, decision.effect, explanation.reason
            ));
        }
        if explanation.effect != decision.effect || explanation.deciding != decision.deciding {
            failures.push(format!("#{n} {}: explain disagrees: {explanation:?} vs {decision:?}", case.rule));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}
