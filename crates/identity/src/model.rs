//! The directory's documents: users, groups, roles and managed policies as stored (JSON in
//! `IdentityStore` entries), with the ARNs and ids AWS gives them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// An IAM tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Policies a user, group or role carries: inline documents by name, managed policies by ARN.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    #[serde(default)]
    pub managed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// AWS's unique id (`AIDA...`), stable across renames.
    pub id: String,
    pub path: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The permissions boundary: a managed policy's ARN.
    #[serde(default)]
    pub boundary: Option<String>,
    #[serde(default)]
    pub policies: Attached,
    /// The groups the user belongs to, by name.
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub id: String,
    pub path: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(default)]
    pub policies: Attached,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub id: String,
    pub path: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// Who may assume it (`sts:AssumeRole`).
    pub trust_policy: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Seconds, 3600 to 43200.
    pub max_session_duration: u32,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub boundary: Option<String>,
    #[serde(default)]
    pub policies: Attached,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// `v1`, `v2`, ...
    pub id: String,
    pub document: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

/// A customer managed policy: up to five versions, one of them the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedPolicy {
    pub name: String,
    pub id: String,
    pub path: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated: OffsetDateTime,
    pub default_version: String,
    pub versions: Vec<PolicyVersion>,
    /// The number the next version gets (AWS never reuses version ids).
    pub next_version: u32,
}

impl ManagedPolicy {
    pub fn default_document(&self) -> Option<&str> {
        self.versions.iter().find(|v| v.id == self.default_version).map(|v| v.document.as_str())
    }
}

/// The ARNs of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
}

impl Account {
    pub fn root_arn(&self) -> String {
        format!("arn:aws:iam::{}:root", self.id)
    }
    /// `arn:aws:iam::ACCOUNT:{kind}{path}{name}`, e.g. `user/`, `/engineering/`, `alice`.
    pub fn iam_arn(&self, kind: &str, path: &str, name: &str) -> String {
        format!("arn:aws:iam::{}:{kind}{path}{name}", self.id)
    }
    pub fn mfa_arn(&self, path: &str, name: &str) -> String {
        self.iam_arn("mfa", path, name)
    }
    pub fn assumed_role_arn(&self, role: &str, session: &str) -> String {
        format!("arn:aws:sts::{}:assumed-role/{role}/{session}", self.id)
    }
}

/// A new unique id as AWS shapes them: a four-letter prefix and 17 characters of upper-case
/// letters and digits (`AIDA` users, `AGPA` groups, `AROA` roles, `ANPA` policies, `AKIA` access
/// keys, `ASIA` session keys).
pub fn new_id(prefix: &str) -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rand_core::UnwrapErr(rand::rngs::SysRng);
    let mut id = String::with_capacity(21);
    id.push_str(prefix);
    for _ in 0..16 {
        id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    id
}

/// A new 40-character secret access key from the OS random source.
pub fn new_secret() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rand_core::UnwrapErr(rand::rngs::SysRng), 40)
}
