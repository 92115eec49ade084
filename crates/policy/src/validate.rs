//! Warnings for policies that parse but probably do not mean what their author thinks.

use std::fmt;

use crate::context::RequestContext;
use crate::document::{Policy, Statement, StatementEffect};
use crate::parse::{DOCUMENT, MAX_POLICY_BYTES, PolicyError, PolicyKind, parse, segment};

/// A likely mistake in a valid policy, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub message: String,
    pub location: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.message, self.location)
    }
}

/// Condition keys Latchkey knows, folded. Keys ending in `/` take a tag key after them.
const KNOWN_KEYS: &[&str] = &[
    "aws:multifactorauthpresent",
    "aws:multifactorauthage",
    "aws:sourceip",
    "aws:securetransport",
    "aws:currenttime",
    "aws:epochtime",
    "aws:tokenissuetime",
    "aws:username",
    "aws:userid",
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principaltype",
    "aws:principaltag/",
    "aws:requesttag/",
    "aws:resourcetag/",
    "aws:tagkeys",
    "aws:calledvia",
    "aws:requestedregion",
    "aws:useragent",
    "aws:referer",
    "s3:prefix",
    "s3:delimiter",
    "s3:max-keys",
    "s3:existingobjecttag/",
    "s3:requestobjecttag/",
    "s3:requestobjecttagkeys",
    "s3:authtype",
    "s3:signatureage",
    "s3:signatureversion",
    "s3:x-amz-server-side-encryption",
    "s3:x-amz-acl",
    "s3:versionid",
    "sts:externalid",
    "sts:rolesessionname",
    "sts:transitivetagkeys",
    "latchkey:sharemaxuses",
    "latchkey:shareexpiresin",
    "latchkey:sharemethod",
    "latchkey:shareallowcidrs",
    "latchkey:objectsensitivity",
];

/// S3 actions on objects, whose resource is `arn:aws:s3:::bucket/key`.
const OBJECT_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAcl",
    "s3:GetObjectTagging",
    "s3:GetObjectAttributes",
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectTagging",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectTagging",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:RestoreObject",
];

/// Parses `json` as a policy of `kind` (up to [`MAX_POLICY_BYTES`]) and lists its likely mistakes.
pub fn validate(json: &str, kind: PolicyKind) -> Result<Vec<Warning>, PolicyError> {
    let policy = parse(json, kind, MAX_POLICY_BYTES)?;
    Ok(warnings(&policy))
}

fn warnings(policy: &Policy) -> Vec<Warning> {
    let mut out = Vec::new();
    if policy.version.is_none() {
        out.push(Warning {
            message: "policy has no Version, so it is read as 2008-10-17 and ${...} policy variables are literal \
                      text; add \"Version\": \"2012-10-17\""
                .into(),
            location: DOCUMENT.into(),
        });
    }
    for (i, statement) in policy.statements.iter().enumerate() {
        statement_warnings(statement, &format!("Statement[{i}]"), &mut out);
    }
    out
}

fn statement_warnings(statement: &Statement, at: &str, out: &mut Vec<Warning>) {
    let mut warn = |message: String, location: String| out.push(Warning { message, location });
    let allow = statement.effect == StatementEffect::Allow;
    if allow && statement.has_not_action() {
        warn(
            "Allow with NotAction allows every action not listed, in every service, including ones added later; \
             list the allowed actions in Action instead"
                .into(),
            format!("{at}.NotAction"),
        );
    }
    if allow && statement.has_not_resource() {
        warn(
            "Allow with NotResource allows the actions on every resource not listed, including ones created later; \
             list the allowed resources in Resource instead"
                .into(),
            format!("{at}.NotResource"),
        );
    }
    if !statement.has_not_action()
        && !statement.has_not_resource()
        && statement.resources().any(|r| r == "*")
        && let Some(action) = names_object_action(statement)
    {
        warn(
            format!(
                "{action:?} acts on objects but Resource is \"*\", every object in every bucket; name the objects, \
                 such as \"arn:aws:s3:::BUCKET/*\""
            ),
            format!("{at}.Resource"),
        );
    }
    for condition in &statement.conditions {
        let location = format!("{at}.Condition.{}.{}", segment(&condition.operator), segment(&condition.key_text));
        if !is_known_key(&condition.key) {
            warn(
                format!("unknown condition key {:?}; a key no request carries is always absent", condition.key_text),
                location.clone(),
            );
        }
        if !allow
            && &*condition.key == "aws:multifactorauthpresent"
            && condition.op.is_plain_bool()
            && condition.bool_values().contains(&false)
        {
            warn(
                "Deny with Bool aws:MultiFactorAuthPresent false never applies to long-term access keys, whose \
                 requests carry no such key; use BoolIfExists"
                    .into(),
                location,
            );
        }
    }
}

/// The first object action the statement names specifically (not through `*` or `s3:*`).
fn names_object_action(statement: &Statement) -> Option<&str> {
    let empty = RequestContext::new();
    statement
        .actions
        .patterns
        .iter()
        .filter(|p| !p.is_match_all() && !p.as_str().eq_ignore_ascii_case("s3:*"))
        .find_map(|pattern| {
            OBJECT_ACTIONS.iter().any(|action| pattern.matches(action, &empty)).then(|| pattern.as_str())
        })
}

fn is_known_key(folded: &str) -> bool {
    KNOWN_KEYS.iter().any(|known| match known.strip_suffix('/') {
        Some(prefix) => folded.strip_prefix(prefix).is_some_and(|tag| tag.starts_with('/') && tag.len() > 1),
        None => folded == *known,
    })
}
