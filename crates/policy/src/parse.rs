//! JSON text to a compiled [`Policy`], or a [`PolicyError`] naming the problem and where it is
//! (`Statement[1].Condition.StringEquals."aws:username"`).

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::condition::{Condition, Operator};
use crate::document::{PatternList, Policy, PrincipalEntry, PrincipalList, Statement, StatementEffect, Version};
use crate::pattern::{Pattern, Syntax};

/// The largest policy document accepted at all: AWS's bucket policy limit.
pub const MAX_POLICY_BYTES: usize = 20_480;
/// AWS's limit for a customer managed identity policy.
pub const MANAGED_POLICY_MAX_BYTES: usize = 6_144;
/// AWS's limit for a user's inline policies.
pub const USER_INLINE_POLICY_MAX_BYTES: usize = 2_048;

/// What a policy is attached to; decides which elements it must and must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to a user, group or role: no Principal, Resource required.
    Identity,
    /// A bucket policy: Principal and Resource required.
    Resource,
    /// A role's trust policy: Principal required, Resource optional.
    Trust,
    /// A permissions boundary: like an identity policy.
    Boundary,
    /// A session policy passed to AssumeRole: like an identity policy.
    Session,
}

/// A policy that cannot be accepted: what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at {location}")]
pub struct PolicyError {
    pub message: String,
    pub location: String,
}

impl PolicyError {
    pub(crate) fn new(message: impl Into<String>, location: impl Into<String>) -> PolicyError {
        PolicyError { message: message.into(), location: location.into() }
    }
}

/// Where the whole document is the problem.
pub(crate) const DOCUMENT: &str = "(document)";

const STATEMENT_KEYS: &[&str] =
    &["Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "NotPrincipal", "Condition"];

/// Parses and compiles a policy of `kind`. Documents over `max_len` bytes (and over
/// [`MAX_POLICY_BYTES`] whatever `max_len` says) are refused.
pub fn parse(json: &str, kind: PolicyKind, max_len: usize) -> Result<Policy, PolicyError> {
    let limit = max_len.min(MAX_POLICY_BYTES);
    if json.len() > limit {
        return Err(PolicyError::new(
            format!("policy document is {} bytes, over the limit of {limit} bytes", json.len()),
            DOCUMENT,
        ));
    }
    let value: Value = serde_json::from_str(json).map_err(|e| {
        PolicyError::new(format!("policy is not valid JSON ({e})"), format!("line {} column {}", e.line(), e.column()))
    })?;
    let Value::Object(top) = value else {
        return Err(PolicyError::new("policy document must be a JSON object", DOCUMENT));
    };
    if let Some(key) = top.keys().find(|k| !["Version", "Id", "Statement"].contains(&k.as_str())) {
        return Err(PolicyError::new(format!("unknown policy element {key:?}"), segment(key)));
    }
    let version = match top.get("Version") {
        None => None,
        Some(Value::String(v)) if v == "2012-10-17" => Some(Version::V2012_10_17),
        Some(Value::String(v)) if v == "2008-10-17" => Some(Version::V2008_10_17),
        Some(_) => return Err(PolicyError::new("Version must be \"2012-10-17\" or \"2008-10-17\"", "Version")),
    };
    let id = optional_string(&top, "Id", "Id")?;
    let statements = match top.get("Statement") {
        None => return Err(PolicyError::new("policy has no Statement", DOCUMENT)),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(PolicyError::new("Statement must not be empty", "Statement"));
        }
        Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
        Some(one @ Value::Object(_)) => vec![one],
        Some(_) => return Err(PolicyError::new("Statement must be an object or an array of objects", "Statement")),
    };
    let variables = version == Some(Version::V2012_10_17);
    let mut sids = HashSet::new();
    let statements = statements
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let location = format!("Statement[{i}]");
            let statement = parse_statement(value, kind, variables, &location)?;
            if let Some(sid) = &statement.sid
                && !sids.insert(sid.clone())
            {
                return Err(PolicyError::new(format!("duplicate Sid {sid:?}"), format!("{location}.Sid")));
            }
            Ok(statement)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy { version, id, statements })
}

fn parse_statement(value: &Value, kind: PolicyKind, variables: bool, at: &str) -> Result<Statement, PolicyError> {
    let Value::Object(obj) = value else {
        return Err(PolicyError::new("statement must be a JSON object", at));
    };
    if let Some(key) = obj.keys().find(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
        return Err(PolicyError::new(format!("unknown statement element {key:?}"), format!("{at}.{}", segment(key))));
    }
    let sid = optional_string(obj, "Sid", &format!("{at}.Sid"))?;
    let effect = match obj.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => StatementEffect::Allow,
        Some(Value::String(e)) if e == "Deny" => StatementEffect::Deny,
        Some(_) => return Err(PolicyError::new("Effect must be \"Allow\" or \"Deny\"", format!("{at}.Effect"))),
        None => return Err(PolicyError::new("statement has no Effect", at)),
    };

    let (name, value) = one_of(obj, "Action", "NotAction", at)?
        .ok_or_else(|| PolicyError::new("statement needs Action or NotAction", at))?;
    let actions = pattern_list(name, value, at, |text| {
        check_action(text)?;
        Pattern::compile(text, Syntax { wildcards: true, variables: false, fold_case: true })
    })?;

    let resources = match one_of(obj, "Resource", "NotResource", at)? {
        Some((name, value)) => Some(pattern_list(name, value, at, |text| {
            check_resource(text)?;
            Pattern::compile(text, Syntax { wildcards: true, variables, fold_case: false })
        })?),
        None if kind == PolicyKind::Trust => None,
        None => return Err(PolicyError::new("statement needs Resource or NotResource", at)),
    };

    let principals = match (one_of(obj, "Principal", "NotPrincipal", at)?, kind) {
        (Some((name, _)), PolicyKind::Identity | PolicyKind::Boundary | PolicyKind::Session) => {
            return Err(PolicyError::new("Policy document should not specify a principal.", format!("{at}.{name}")));
        }
        (Some((name, value)), _) => Some(parse_principal(value, name == "NotPrincipal", &format!("{at}.{name}"))?),
        (None, PolicyKind::Resource | PolicyKind::Trust) => {
            return Err(PolicyError::new("statement needs Principal or NotPrincipal", at));
        }
        (None, _) => None,
    };

    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(value) => parse_conditions(value, variables, &format!("{at}.Condition"))?,
    };
    Ok(Statement { sid, effect, actions, resources, principals, conditions })
}

/// Exactly one of `name` / `Not{name}` or neither.
fn one_of<'v>(
    obj: &'v Map<String, Value>,
    name: &'static str,
    not_name: &'static str,
    at: &str,
) -> Result<Option<(&'static str, &'v Value)>, PolicyError> {
    match (obj.get(name), obj.get(not_name)) {
        (Some(_), Some(_)) => Err(PolicyError::new(format!("statement has both {name} and {not_name}"), at)),
        (Some(v), None) => Ok(Some((name, v))),
        (None, Some(v)) => Ok(Some((not_name, v))),
        (None, None) => Ok(None),
    }
}

fn pattern_list(
    name: &str,
    value: &Value,
    at: &str,
    compile: impl Fn(&str) -> Result<Pattern, String>,
) -> Result<PatternList, PolicyError> {
    let location = format!("{at}.{name}");
    let patterns = string_list(value, &location)?
        .iter()
        .map(|(text, loc)| compile(text).map_err(|m| PolicyError::new(m, loc.clone())))
        .collect::<Result<_, _>>()?;
    Ok(PatternList { negated: name.starts_with("Not"), patterns })
}

fn check_action(text: &str) -> Result<(), String> {
    if text == "*" {
        return Ok(());
    }
    match text.split_once(':') {
        Some((service, action)) if !service.is_empty() && !action.is_empty() && !text.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => Err(format!("action {text:?} must be \"service:Action\" (such as \"s3:GetObject\") or \"*\"")),
    }
}

fn check_resource(text: &str) -> Result<(), String> {
    if text == "*" || (text.starts_with("arn:") && text.matches(':').count() >= 5) {
        Ok(())
    } else {
        Err(format!("resource {text:?} must be an ARN (such as \"arn:aws:s3:::bucket/key\") or \"*\""))
    }
}

fn parse_principal(value: &Value, negated: bool, at: &str) -> Result<PrincipalList, PolicyError> {
    let entries = match value {
        Value::String(s) if s == "*" => vec![PrincipalEntry::Everyone],
        Value::Object(map) if map.is_empty() => {
            return Err(PolicyError::new("principal must name at least one principal", at));
        }
        Value::Object(map) => {
            let mut entries = Vec::new();
            for (kind, names) in map {
                let location = format!("{at}.{}", segment(kind));
                let names = string_list(names, &location)?;
                match kind.as_str() {
                    "AWS" => {
                        for (name, loc) in names {
                            entries.push(aws_principal(&name).map_err(|m| PolicyError::new(m, loc))?);
                        }
                    }
                    "Service" | "Federated" | "CanonicalUser" => entries.push(PrincipalEntry::Foreign),
                    _ => {
                        return Err(PolicyError::new(
                            format!(
                                "unknown principal type {kind:?} (expected AWS, Service, Federated or CanonicalUser)"
                            ),
                            location,
                        ));
                    }
                }
            }
            entries
        }
        _ => {
            return Err(PolicyError::new("principal must be \"*\" or an object such as {\"AWS\": \"ARN\"}", at));
        }
    };
    Ok(PrincipalList { negated, entries })
}

/// `"*"`, a 12-digit account id, `arn:PARTITION:iam::ACCOUNT:root`, or an IAM/STS principal ARN.
fn aws_principal(name: &str) -> Result<PrincipalEntry, String> {
    if name == "*" {
        return Ok(PrincipalEntry::Everyone);
    }
    if name.len() == 12 && name.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(PrincipalEntry::Account(name.to_string()));
    }
    let parts: Vec<&str> = name.splitn(6, ':').collect();
    match parts[..] {
        ["arn", partition, "iam", "", account, "root"] if !partition.is_empty() && !account.is_empty() => {
            Ok(PrincipalEntry::Account(account.to_string()))
        }
        ["arn", partition, "iam" | "sts", "", account, resource]
            if !partition.is_empty() && !account.is_empty() && !resource.is_empty() =>
        {
            Ok(PrincipalEntry::Arn(name.to_string()))
        }
        _ => Err(format!("principal {name:?} must be \"*\", an account id, or an IAM or STS ARN")),
    }
}

fn parse_conditions(value: &Value, variables: bool, at: &str) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(operators) = value else {
        return Err(PolicyError::new("Condition must be an object of operators", at));
    };
    let mut conditions = Vec::new();
    for (operator_text, keys) in operators {
        let op_at = format!("{at}.{}", segment(operator_text));
        let operator = Operator::parse(operator_text).map_err(|m| PolicyError::new(m, &op_at))?;
        let Value::Object(keys) = keys else {
            return Err(PolicyError::new("condition operator must map condition keys to values", op_at));
        };
        if keys.is_empty() {
            return Err(PolicyError::new("condition operator names no condition key", op_at));
        }
        for (key, values) in keys {
            let key_at = format!("{op_at}.{}", segment(key));
            if key.is_empty() {
                return Err(PolicyError::new("empty condition key", key_at));
            }
            let (values, locations): (Vec<String>, Vec<String>) =
                condition_values(values, &key_at)?.into_iter().unzip();
            let condition = Condition::compile(operator_text, operator, key, &values, variables)
                .map_err(|(i, m)| PolicyError::new(m, locations[i].clone()))?;
            conditions.push(condition);
        }
    }
    Ok(conditions)
}

/// Condition values: strings, numbers and booleans (normalised to strings), alone or in an array.
fn condition_values(value: &Value, at: &str) -> Result<Vec<(String, String)>, PolicyError> {
    let scalar = |v: &Value, loc: String| match v {
        Value::String(s) => Ok((s.clone(), loc)),
        Value::Number(n) => Ok((n.to_string(), loc)),
        Value::Bool(b) => Ok((b.to_string(), loc)),
        _ => Err(PolicyError::new("condition value must be a string, number or boolean", loc)),
    };
    match value {
        Value::Array(items) if items.is_empty() => Err(PolicyError::new("condition key has no values", at)),
        Value::Array(items) => items.iter().enumerate().map(|(i, v)| scalar(v, format!("{at}[{i}]"))).collect(),
        other => Ok(vec![scalar(other, at.to_string())?]),
    }
}

/// A string, or a non-empty array of strings; each with its location.
fn string_list(value: &Value, at: &str) -> Result<Vec<(String, String)>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![(s.clone(), at.to_string())]),
        Value::Array(items) if items.is_empty() => Err(PolicyError::new("must not be an empty array", at)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok((s.clone(), format!("{at}[{i}]"))),
                _ => Err(PolicyError::new("must be a string", format!("{at}[{i}]"))),
            })
            .collect(),
        _ => Err(PolicyError::new("must be a string or an array of strings", at)),
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, PolicyError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(PolicyError::new(format!("{key} must be a string"), at)),
    }
}

/// A location segment: bare when it is a plain word, JSON-quoted otherwise (`"aws:username"`).
pub(crate) fn segment(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}
