//! The request side of an evaluation: who is asking ([`Principal`]) and the condition keys the
//! request carries ([`RequestContext`]).

use smallvec::SmallVec;

/// What kind of identity signed the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// The account's root user (`arn:aws:iam::ACCOUNT:root`).
    Root,
    /// An IAM user (`arn:aws:iam::ACCOUNT:user/PATH/NAME`).
    User,
    /// An STS session of a role (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    AssumedRole,
    /// An unsigned request.
    Anonymous,
}

/// The authenticated caller. Latchkey is one account; its id is `account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub account: String,
    /// The caller's own ARN (for a session, the assumed-role ARN); empty when anonymous.
    pub arn: String,
    /// For an assumed-role session: the role's ARN (`arn:aws:iam::ACCOUNT:role/PATH/NAME`).
    pub role_arn: Option<String>,
}

impl Principal {
    /// The unsigned caller.
    pub fn anonymous() -> Principal {
        Principal { kind: PrincipalKind::Anonymous, account: String::new(), arn: String::new(), role_arn: None }
    }

    /// `aws:PrincipalType` as AWS reports it.
    pub fn principal_type(&self) -> &'static str {
        match self.kind {
            PrincipalKind::Root => "Account",
            PrincipalKind::User => "User",
            PrincipalKind::AssumedRole => "AssumedRole",
            PrincipalKind::Anonymous => "Anonymous",
        }
    }
}

/// The values of one key: most keys have one, which lives inline.
type Values = SmallVec<[String; 1]>;

/// Condition keys of one request and their values. Key names are case-insensitive: they are
/// folded to lowercase once, at insert. A sorted `Vec` keeps lookups a binary search over a
/// few dozen entries, cheaper than hashing. Every request builds one, so it allocates little:
/// room for a typical request's keys up front, single values inline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    entries: Vec<(String, Values)>,
}

/// What a typical S3 request carries (request, principal and time keys).
const TYPICAL_KEYS: usize = 20;

impl RequestContext {
    pub fn new() -> RequestContext {
        RequestContext { entries: Vec::with_capacity(TYPICAL_KEYS) }
    }

    /// Sets a single-valued key, replacing any previous values.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        let key = fold_key(key);
        let values: Values = smallvec::smallvec![value.into()];
        match self.entries.binary_search_by(|(k, _)| k.as_str().cmp(&key)) {
            Ok(i) => self.entries[i].1 = values,
            Err(i) => self.entries.insert(i, (key, values)),
        }
    }

    /// Sets a multivalued key (`aws:TagKeys`, `aws:CalledVia`...), replacing any previous values.
    /// No values at all is the same as the key being absent.
    pub fn insert_multi<I, S>(&mut self, key: &str, values: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let key = fold_key(key);
        let values: Values = values.into_iter().map(Into::into).collect();
        match (self.entries.binary_search_by(|(k, _)| k.as_str().cmp(&key)), values.is_empty()) {
            (Ok(i), true) => {
                self.entries.remove(i);
            }
            (Ok(i), false) => self.entries[i].1 = values,
            (Err(_), true) => {}
            (Err(i), false) => self.entries.insert(i, (key, values)),
        }
    }

    /// The values of `key` (any case), or `None` when the request does not carry it.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        let folded = key.chars().flat_map(char::to_lowercase);
        let i = self.entries.binary_search_by(|(k, _)| k.chars().cmp(folded.clone())).ok()?;
        Some(&self.entries[i].1)
    }

    /// Lookup of a key already folded at parse time (the evaluation fast path).
    pub(crate) fn get_folded(&self, folded: &str) -> Option<&[String]> {
        let i = self.entries.binary_search_by(|(k, _)| k.as_str().cmp(folded)).ok()?;
        Some(&self.entries[i].1)
    }

    /// Adds the keys AWS derives from the caller: `aws:PrincipalArn`, `aws:PrincipalAccount`,
    /// `aws:PrincipalType`, and for an IAM user `aws:username` (the last segment of its ARN).
    /// Nothing for an anonymous caller.
    pub fn insert_principal_keys(&mut self, principal: &Principal) {
        if principal.kind == PrincipalKind::Anonymous {
            return;
        }
        self.insert("aws:PrincipalArn", principal.arn.as_str());
        self.insert("aws:PrincipalAccount", principal.account.as_str());
        self.insert("aws:PrincipalType", principal.principal_type());
        if principal.kind == PrincipalKind::User
            && let Some((_, name)) = principal.arn.rsplit_once('/')
        {
            self.insert("aws:username", name);
        }
    }
}

/// Folds a condition key name to the form keys are stored and looked up in.
pub(crate) fn fold_key(key: &str) -> String {
    if key.is_ascii() {
        return key.to_ascii_lowercase();
    }
    key.chars().flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_and_replaced() {
        let mut ctx = RequestContext::new();
        ctx.insert("aws:PrincipalTag/Team", "blue");
        ctx.insert("AWS:principaltag/TEAM", "red");
        assert_eq!(ctx.get("aws:principaltag/team"), Some(&["red".to_string()][..]));
        assert_eq!(ctx.get_folded("aws:principaltag/team").map(<[String]>::len), Some(1));
        ctx.insert_multi("aws:PrincipalTag/Team", Vec::<String>::new());
        assert_eq!(ctx.get("aws:PrincipalTag/Team"), None);
    }

    #[test]
    fn principal_keys() {
        let mut ctx = RequestContext::new();
        let alice = Principal {
            kind: PrincipalKind::User,
            account: "123456789012".into(),
            arn: "arn:aws:iam::123456789012:user/dev/alice".into(),
            role_arn: None,
        };
        ctx.insert_principal_keys(&alice);
        assert_eq!(ctx.get("aws:username"), Some(&["alice".to_string()][..]));
        assert_eq!(ctx.get("aws:PrincipalType"), Some(&["User".to_string()][..]));
    }
}
