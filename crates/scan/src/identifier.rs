//! What an identifier is: an id, a category, a default severity, and the rule that finds it (a
//! pattern searched everywhere and/or one searched only after a keyword, a check on what
//! matched, keywords, a maximum match distance and ignore words). Managed and custom
//! identifiers are both turned into a [`Definition`] before the engine compiles them.

use serde::{Deserialize, Serialize};

/// What kind of data an identifier finds; decides the finding type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Credentials,
    Financial,
    Personal,
    NationalId,
    Custom,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Credentials => "credentials",
            Category::Financial => "financial",
            Category::Personal => "personal",
            Category::NationalId => "national_id",
            Category::Custom => "custom",
        }
    }

    /// The finding class Macie files this category under (national IDs are personal data).
    pub fn finding_class(self) -> &'static str {
        match self {
            Category::Credentials => "Credentials",
            Category::Financial => "Financial",
            Category::Personal | Category::NationalId => "Personal",
            Category::Custom => "CustomIdentifier",
        }
    }
}

/// How serious a finding is, as Macie grades them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    #[serde(alias = "low", alias = "LOW")]
    Low,
    #[serde(alias = "medium", alias = "MEDIUM")]
    Medium,
    #[serde(alias = "high", alias = "HIGH")]
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
        }
    }
}

/// A check on the matched bytes (separators included): a checksum, a range rule, a decode.
pub type Check = fn(&[u8]) -> bool;

/// One identifier, ready to compile.
#[derive(Clone, Debug)]
pub struct Definition {
    /// `CREDIT_CARD_NUMBER`, or a custom identifier's name.
    pub id: String,
    pub category: Category,
    pub severity: Severity,
    /// Searched over all the data.
    pub pattern: Option<String>,
    /// Searched only in the `max_distance` bytes after one of `keywords` (for shapes too common
    /// to search everywhere: nine digits, a date).
    pub near_keyword: Option<String>,
    /// Case-insensitive whole words. They gate `near_keyword`; for `pattern`, one within
    /// reach is noted on the match.
    pub keywords: Vec<String>,
    /// Bytes from the end of a keyword to the end of the match (Macie's maximum match distance).
    pub max_distance: usize,
    /// A match containing one of these (case-sensitive) is dropped.
    pub ignore_words: Vec<String>,
    pub check: Option<Check>,
}
