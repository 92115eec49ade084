//! Condition operators: every family AWS documents, the `IfExists` suffix, the `ForAnyValue:` and
//! `ForAllValues:` set qualifiers, and what each does when the request lacks the key.
//!
//! Semantics, from the IAM User Guide ("IAM JSON policy elements: Condition operators",
//! "Condition element", "Single-valued vs. multivalued context keys"):
//! - Several operators in one `Condition` block, and several keys under one operator, must all
//!   hold (AND). Several values for one key: any may match (OR). For a negated operator
//!   (`StringNotEquals`, `NotIpAddress`, `ArnNotLike`...) the request value must match *none* of
//!   them ("the effective permission works like a logical AND").
//! - "If the key that you specify in a policy condition is not present in the request context, the
//!   values do not match and the condition is false. If the policy condition requires that the key
//!   is not matched, such as StringNotLike or ArnNotLike, and the right key is not present, the
//!   condition is true. This logic applies to all condition operators except ...IfExists and Null
//!   check."
//! - `...IfExists`: "If the policy key is present in the context of the request, process the key
//!   as specified in the policy. If the key is not present, evaluate the condition element as true."
//! - `Null`: `true` holds when the key is absent, `false` when it is present.
//! - `ForAnyValue:`: true if some request value matches (for a negated operator: matches none of
//!   the policy values); "if there's no match or if the key doesn't exist, the condition returns
//!   false". `ForAllValues:`: true if every request value matches; "it also returns true if there
//!   are no context keys in the request".
//! - No qualifier on a key that has several values in this request: read as `ForAnyValue:`, but the
//!   absent-key rule above stays (negated: true).
//! - `StringLike`, `ArnEquals`, `ArnLike`: `*` and `?` wildcards. Arn operators compare each of the
//!   six colon-separated ARN components separately, so a wildcard never spans a colon before the
//!   resource part. `StringEquals` treats `*` literally.
//! - Date operators take ISO 8601 (`2026-12-05T10:00:00Z`, date-only `2026-12-05` as midnight UTC)
//!   or epoch seconds, compared as instants. Numeric operators compare exact decimals (no floating
//!   point), so `NumericEquals 0.1` is exactly one tenth.
//! - A request value the operator cannot read (a date that is not a date) matches no policy value;
//!   the negated operator then holds, so a `Deny` guarded by `NotIpAddress` still applies to it.
//! - Policy variables are substituted in String* and Arn* values only (Version 2012-10-17).

use std::cmp::Ordering;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ipnet::IpNet;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::context::{RequestContext, fold_key};
use crate::pattern::{Pattern, Syntax};

/// One key tested by one operator, e.g. `StringEquals: {"aws:username": ["a", "b"]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    /// The operator as written (`ForAllValues:StringLikeIfExists`).
    pub operator: Box<str>,
    /// The key as written (for messages) and folded (for lookups).
    pub key_text: Box<str>,
    pub key: Box<str>,
    pub op: Operator,
    test: Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Compare {
    fn holds(self, request_vs_policy: Ordering) -> bool {
        match self {
            Compare::Eq => request_vs_policy == Ordering::Equal,
            Compare::Lt => request_vs_policy == Ordering::Less,
            Compare::Le => request_vs_policy != Ordering::Greater,
            Compare::Gt => request_vs_policy == Ordering::Greater,
            Compare::Ge => request_vs_policy != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Compare),
    Date(Compare),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

/// Operator names (case-sensitive, as AWS), their family, and whether they are negated.
const OPERATORS: &[(&str, Family, bool)] = &[
    ("StringEquals", Family::StringEquals, false),
    ("StringNotEquals", Family::StringEquals, true),
    ("StringEqualsIgnoreCase", Family::StringEqualsIgnoreCase, false),
    ("StringNotEqualsIgnoreCase", Family::StringEqualsIgnoreCase, true),
    ("StringLike", Family::StringLike, false),
    ("StringNotLike", Family::StringLike, true),
    ("NumericEquals", Family::Numeric(Compare::Eq), false),
    ("NumericNotEquals", Family::Numeric(Compare::Eq), true),
    ("NumericLessThan", Family::Numeric(Compare::Lt), false),
    ("NumericLessThanEquals", Family::Numeric(Compare::Le), false),
    ("NumericGreaterThan", Family::Numeric(Compare::Gt), false),
    ("NumericGreaterThanEquals", Family::Numeric(Compare::Ge), false),
    ("DateEquals", Family::Date(Compare::Eq), false),
    ("DateNotEquals", Family::Date(Compare::Eq), true),
    ("DateLessThan", Family::Date(Compare::Lt), false),
    ("DateLessThanEquals", Family::Date(Compare::Le), false),
    ("DateGreaterThan", Family::Date(Compare::Gt), false),
    ("DateGreaterThanEquals", Family::Date(Compare::Ge), false),
    ("Bool", Family::Bool, false),
    ("BinaryEquals", Family::Binary, false),
    ("IpAddress", Family::Ip, false),
    ("NotIpAddress", Family::Ip, true),
    ("ArnEquals", Family::Arn, false),
    ("ArnNotEquals", Family::Arn, true),
    ("ArnLike", Family::Arn, false),
    ("ArnNotLike", Family::Arn, true),
    ("Null", Family::Null, false),
];

/// The compiled policy values of one condition, by family.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    String(Vec<Pattern>),
    Arn(Vec<[Pattern; 6]>),
    /// Validated decimal literals, compared exactly at evaluation.
    Numeric(Compare, Vec<String>),
    /// Instants in Unix nanoseconds.
    Date(Compare, Vec<i128>),
    Bool(Vec<bool>),
    Binary(Vec<Vec<u8>>),
    Ip(Vec<IpNet>),
    /// `true`: the key must be absent; `false`: present.
    Null(Vec<bool>),
}

/// A parsed operator name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operator {
    family: Family,
    negated: bool,
    if_exists: bool,
    set: SetQualifier,
}

impl Operator {
    /// Parses `[ForAnyValue:|ForAllValues:]Name[IfExists]`.
    pub(crate) fn parse(name: &str) -> Result<Operator, String> {
        let (set, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (SetQualifier::ForAnyValue, rest)
        } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (SetQualifier::ForAllValues, rest)
        } else {
            (SetQualifier::Single, name)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let &(_, family, negated) = OPERATORS
            .iter()
            .find(|(n, ..)| *n == base)
            .ok_or_else(|| format!("unknown condition operator {name:?}"))?;
        if family == Family::Null && (if_exists || set != SetQualifier::Single) {
            return Err(format!("condition operator {name:?}: Null takes neither IfExists nor a set qualifier"));
        }
        Ok(Operator { family, negated, if_exists, set })
    }

    /// `Bool` without `IfExists` or a set qualifier (for the MFA validation warning).
    pub(crate) fn is_plain_bool(&self) -> bool {
        self.family == Family::Bool && !self.if_exists && self.set == SetQualifier::Single
    }
}

impl Condition {
    /// Whether the condition reads a key starting with `prefix` (folded): as its key, or in a
    /// policy variable of its values.
    pub(crate) fn reads_key_prefix(&self, prefix: &str) -> bool {
        self.key.starts_with(prefix)
            || match &self.test {
                Test::String(patterns) => patterns.iter().any(|p| p.reads_key_prefix(prefix)),
                Test::Arn(patterns) => patterns.iter().flatten().any(|p| p.reads_key_prefix(prefix)),
                _ => false,
            }
    }

    /// Whether the condition holds only for requests whose key has one of a fixed set of values:
    /// a positive test (not negated, not `IfExists`, not `ForAllValues`, which holds when the key
    /// is absent, not `Null`) of fixed strings or ARNs (no wildcard, no variable) or of address
    /// blocks no wider than /8 (IPv4) or /32 (IPv6). Only such a condition on a key naming the
    /// caller or its network keeps a grant to `*` from being public.
    pub(crate) fn fixes_values(&self) -> bool {
        if self.op.negated || self.op.if_exists || self.op.set == SetQualifier::ForAllValues {
            return false;
        }
        match &self.test {
            Test::String(patterns) => patterns.iter().all(Pattern::is_fixed),
            Test::Arn(patterns) => patterns.iter().all(|parts| parts.iter().all(Pattern::is_fixed)),
            Test::Ip(blocks) => blocks.iter().all(|block| match block {
                IpNet::V4(v4) => v4.prefix_len() >= 8,
                IpNet::V6(v6) => v6.prefix_len() >= 32,
            }),
            _ => false,
        }
    }

    /// Compiles one key's values. On a bad literal, returns the index of the value and why.
    pub(crate) fn compile(
        operator_text: &str,
        operator: Operator,
        key_text: &str,
        values: &[String],
        variables: bool,
    ) -> Result<Condition, (usize, String)> {
        let string_syntax = |wildcards, fold_case| Syntax { wildcards, variables, fold_case };
        let test = match operator.family {
            Family::StringEquals | Family::StringEqualsIgnoreCase | Family::StringLike => {
                let syntax = string_syntax(
                    operator.family == Family::StringLike,
                    operator.family == Family::StringEqualsIgnoreCase,
                );
                Test::String(collect(values, |v| Pattern::compile(v, syntax))?)
            }
            Family::Arn => Test::Arn(collect(values, |v| {
                Pattern::compile(v, string_syntax(true, false))?
                    .split_arn()
                    .ok_or_else(|| format!("{v:?} is not an ARN (arn:partition:service:region:account:resource)"))
            })?),
            Family::Numeric(compare) => Test::Numeric(
                compare,
                collect(values, |v| match parse_decimal(v) {
                    Some(_) => Ok(v.to_string()),
                    None => Err(format!("{v:?} is not a number")),
                })?,
            ),
            Family::Date(compare) => Test::Date(
                compare,
                collect(values, |v| {
                    parse_date(v).ok_or_else(|| format!("{v:?} is neither an ISO 8601 date nor epoch seconds"))
                })?,
            ),
            Family::Bool => Test::Bool(collect(values, parse_bool)?),
            Family::Null => Test::Null(collect(values, parse_bool)?),
            Family::Binary => {
                Test::Binary(collect(values, |v| BASE64.decode(v).map_err(|_| format!("{v:?} is not base64")))?)
            }
            Family::Ip => Test::Ip(collect(values, |v| {
                v.parse::<IpNet>()
                    .or_else(|_| v.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{v:?} is not an IP address or CIDR block"))
            })?),
        };
        Ok(Condition {
            operator: operator_text.into(),
            key_text: key_text.into(),
            key: fold_key(key_text).into(),
            op: operator,
            test,
        })
    }

    /// The policy values of a Bool condition.
    pub(crate) fn bool_values(&self) -> &[bool] {
        match &self.test {
            Test::Bool(values) => values,
            _ => &[],
        }
    }

    /// Whether the condition holds for this request.
    pub(crate) fn holds(&self, ctx: &RequestContext) -> bool {
        let request = ctx.get_folded(&self.key);
        if let Test::Null(want_absent) = &self.test {
            return want_absent.iter().any(|&absent| absent == request.is_none());
        }
        let Some(request) = request else {
            return self.op.if_exists
                || match self.op.set {
                    SetQualifier::Single => self.op.negated,
                    SetQualifier::ForAnyValue => false,
                    SetQualifier::ForAllValues => true,
                };
        };
        // A negated operator holds for a request value that matches none of the policy values.
        let value_holds = |value: &String| self.matches_any_policy_value(value, ctx) != self.op.negated;
        match self.op.set {
            SetQualifier::Single | SetQualifier::ForAnyValue => request.iter().any(value_holds),
            SetQualifier::ForAllValues => request.iter().all(value_holds),
        }
    }

    /// Why the condition failed, for the policy simulator.
    pub(crate) fn describe_failure(&self, ctx: &RequestContext) -> String {
        match ctx.get_folded(&self.key) {
            None => format!("{} is not in the request", self.key_text),
            Some(values) => format!("condition {} {}: request has {}", self.operator, self.key_text, values.join(", ")),
        }
    }

    /// The positive (un-negated) operator: does `value` match any policy value?
    fn matches_any_policy_value(&self, value: &str, ctx: &RequestContext) -> bool {
        match &self.test {
            Test::String(patterns) => patterns.iter().any(|p| p.matches(value, ctx)),
            Test::Arn(arns) => {
                let mut parts = value.splitn(6, ':');
                let request: [&str; 6] = std::array::from_fn(|_| parts.next().unwrap_or_default());
                // Fewer than six components: the last ones are empty strings, which an ARN
                // pattern with a resource part would not match; refuse outright to be exact.
                value.matches(':').count() >= 5
                    && arns.iter().any(|arn| arn.iter().zip(request).all(|(p, r)| p.matches(r, ctx)))
            }
            Test::Numeric(compare, policy) => parse_decimal(value).is_some_and(|request| {
                policy.iter().filter_map(|p| parse_decimal(p)).any(|p| compare.holds(request.cmp(&p)))
            }),
            Test::Date(compare, policy) => {
                parse_date(value).is_some_and(|request| policy.iter().any(|p| compare.holds(request.cmp(p))))
            }
            Test::Bool(policy) => parse_bool(value).is_ok_and(|request| policy.contains(&request)),
            Test::Binary(policy) => BASE64.decode(value).is_ok_and(|request| policy.contains(&request)),
            // An IPv4 client written as IPv6 (`::ffff:192.0.2.1`, from a dual-stack socket or
            // proxy) is the IPv4 address to an IPv4 block.
            Test::Ip(policy) => value.parse::<IpAddr>().is_ok_and(|ip| {
                let canonical = ip.to_canonical();
                policy.iter().any(|net| net.contains(&ip) || (canonical != ip && net.contains(&canonical)))
            }),
            Test::Null(_) => false,
        }
    }
}

/// The types of request values, as the condition operators read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    Numeric,
    Boolean,
    Ip,
    Binary,
    Date,
}

/// Whether the operators of `value_type` can read `text` as a request value (one they cannot
/// read matches no policy value); a policy simulator checks the values it is given with it.
pub fn reads_as(value_type: ValueType, text: &str) -> bool {
    match value_type {
        ValueType::String => true,
        ValueType::Numeric => parse_decimal(text).is_some(),
        ValueType::Boolean => parse_bool(text).is_ok(),
        ValueType::Ip => text.parse::<IpAddr>().is_ok(),
        ValueType::Binary => BASE64.decode(text).is_ok(),
        ValueType::Date => parse_date(text).is_some(),
    }
}

fn collect<T>(values: &[String], f: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, (usize, String)> {
    values.iter().enumerate().map(|(i, v)| f(v).map_err(|m| (i, m))).collect()
}

fn parse_bool(v: &str) -> Result<bool, String> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(format!("{v:?} is not true or false"))
    }
}

/// An exact decimal borrowed from its text: sign, integer digits without leading zeros,
/// fraction digits without trailing zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal<'a> {
    negative: bool,
    int: &'a str,
    frac: &'a str,
}

impl Ord for Decimal<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let magnitude = || {
            (self.int.len().cmp(&other.int.len()))
                .then_with(|| self.int.cmp(other.int))
                // Without trailing zeros, fraction digits compare lexicographically.
                .then_with(|| self.frac.cmp(other.frac))
        };
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => magnitude(),
            (true, true) => magnitude().reverse(),
        }
    }
}

impl PartialOrd for Decimal<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn parse_decimal(text: &str) -> Option<Decimal<'_>> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    // Negative zero is zero.
    let negative = negative && !(int.is_empty() && frac.is_empty());
    Some(Decimal { negative, int, frac })
}

/// An ISO 8601 instant, a date (midnight UTC), or epoch seconds, as Unix nanoseconds.
fn parse_date(text: &str) -> Option<i128> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().ok().map(|s| i128::from(s) * 1_000_000_000);
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Ok(t) = PrimitiveDateTime::parse(text, &naive) {
        return Some(t.assume_utc().unix_timestamp_nanos());
    }
    let date_only = format_description!("[year]-[month]-[day]");
    Date::parse(text, &date_only).ok().map(|d| d.midnight().assume_utc().unix_timestamp_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_values_read_as_their_type() {
        for (value_type, good, bad) in [
            (ValueType::Numeric, "-0.25", "1e3"),
            (ValueType::Boolean, "TRUE", "yes"),
            (ValueType::Ip, "2001:db8::1", "10.0.0.0/8"),
            (ValueType::Binary, "aGk=", "not base64!"),
            (ValueType::Date, "2026-12-05", "5 December"),
        ] {
            assert!(reads_as(value_type, good), "{value_type:?} {good}");
            assert!(!reads_as(value_type, bad), "{value_type:?} {bad}");
        }
        assert!(reads_as(ValueType::String, ""));
    }

    #[test]
    fn decimals_compare_exactly() {
        let d = |s| parse_decimal(s);
        assert_eq!(d("0.10").cmp(&d("0.1")), Ordering::Equal);
        assert_eq!(d("-0").cmp(&d("0")), Ordering::Equal);
        assert!(d("10") > d("9.999"));
        assert!(d("-10") < d("-9"));
        assert!(d("0.05") < d("0.5"));
        assert!(d("1e3").is_none() && d("").is_none() && d(".").is_none() && d("-").is_none());
    }

    #[test]
    fn dates_in_every_accepted_form() {
        let midnight = parse_date("2026-12-05");
        assert!(midnight.is_some());
        assert_eq!(midnight, parse_date("2026-12-05T00:00:00Z"));
        assert_eq!(midnight, parse_date("2026-12-05T00:00:00"));
        assert_eq!(midnight, parse_date("2026-12-05T01:00:00+01:00"));
        assert_eq!(parse_date("0"), Some(0));
        assert_eq!(parse_date("not a date"), None);
        assert_eq!(parse_date("2026-13-01"), None);
    }

    #[test]
    fn null_rejects_qualifiers() {
        assert!(Operator::parse("NullIfExists").is_err());
        assert!(Operator::parse("ForAllValues:Null").is_err());
        assert!(Operator::parse("ForAnyValue:StringNotLikeIfExists").is_ok());
        assert!(Operator::parse("stringequals").is_err());
    }
}
