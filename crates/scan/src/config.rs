//! What a user configures: custom identifiers (`[[custom_identifiers]]`, Macie's fields and
//! limits), an allow-list of known test data, managed identifiers to turn off, and how many
//! locations a finding keeps. The server's TOML file and `latchkey scan --config` read the same
//! tables.

use serde::{Deserialize, Serialize};

use crate::engine::ConfigError;
use crate::identifier::{Category, Definition, Severity};

/// The scanner's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ScanConfig {
    pub custom_identifiers: Vec<CustomIdentifier>,
    pub allow_list: AllowList,
    /// Managed identifier ids not to search for.
    pub disabled_identifiers: Vec<String>,
    /// Locations kept per identifier (the count goes on).
    pub max_locations: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            custom_identifiers: Vec::new(),
            allow_list: AllowList::default(),
            disabled_identifiers: Vec::new(),
            max_locations: 15,
        }
    }
}

/// Values never reported: exact text, or regexes that match all of it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllowList {
    pub values: Vec<String>,
    pub regexes: Vec<String>,
}

/// An identifier of the user's own, as Macie's custom data identifiers have it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomIdentifier {
    pub name: String,
    pub regex: String,
    /// When given, a match counts only if one of them (case-insensitive, a whole word) ends at
    /// most `max_match_distance` bytes before the match ends, and precedes it.
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default = "default_distance")]
    pub max_match_distance: usize,
    /// A match that contains one of them (case-sensitive) is dropped.
    #[serde(default)]
    pub ignore_words: Vec<String>,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    #[serde(default = "default_category")]
    pub category: Category,
}

fn default_distance() -> usize {
    50
}

fn default_severity() -> Severity {
    Severity::Medium
}

fn default_category() -> Category {
    Category::Custom
}

/// Macie's limits on a custom data identifier.
const REGEX_MAX_CHARS: usize = 512;
const KEYWORDS_MAX: usize = 50;
const KEYWORD_CHARS: std::ops::RangeInclusive<usize> = 3..=90;
const IGNORE_WORDS_MAX: usize = 10;
const IGNORE_WORD_CHARS: std::ops::RangeInclusive<usize> = 4..=90;
const DISTANCE: std::ops::RangeInclusive<usize> = 1..=300;

impl CustomIdentifier {
    /// 1-128 letters, digits, `_`, `-` or `.`, at least one a letter or digit (so that no name
    /// is `.` or `..`, which URLs cannot carry as a path segment).
    pub fn valid_name(name: &str) -> bool {
        (1..=128).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && name.bytes().any(|b| b.is_ascii_alphanumeric())
    }

    fn definition(&self) -> Result<Definition, ConfigError> {
        let refuse = |reason: String| Err(ConfigError::new("custom identifier", &self.name, reason));
        if !Self::valid_name(&self.name) {
            return refuse("the name must be 1-128 letters, digits, `_`, `-` or `.`, with a letter or digit".into());
        }
        if self.regex.chars().count() > REGEX_MAX_CHARS {
            return refuse(format!("the regex is longer than {REGEX_MAX_CHARS} characters"));
        }
        if self.keywords.len() > KEYWORDS_MAX {
            return refuse(format!("more than {KEYWORDS_MAX} keywords"));
        }
        if let Some(keyword) = self.keywords.iter().find(|k| !KEYWORD_CHARS.contains(&k.chars().count())) {
            return refuse(format!("the keyword {keyword:?} is not 3-90 characters long"));
        }
        if !DISTANCE.contains(&self.max_match_distance) {
            return refuse("max_match_distance must be 1-300".into());
        }
        if self.ignore_words.len() > IGNORE_WORDS_MAX {
            return refuse(format!("more than {IGNORE_WORDS_MAX} ignore words"));
        }
        if let Some(word) = self.ignore_words.iter().find(|w| !IGNORE_WORD_CHARS.contains(&w.chars().count())) {
            return refuse(format!("the ignore word {word:?} is not 4-90 characters long"));
        }
        let gated = !self.keywords.is_empty();
        Ok(Definition {
            id: self.name.clone(),
            category: self.category,
            severity: self.severity,
            pattern: (!gated).then(|| self.regex.clone()),
            near_keyword: gated.then(|| self.regex.clone()),
            keywords: self.keywords.clone(),
            max_distance: self.max_match_distance,
            ignore_words: self.ignore_words.clone(),
            check: None,
        })
    }
}

impl ScanConfig {
    /// The custom identifiers, checked against Macie's limits and for names already taken (by
    /// one of `managed`, turned off or not, or an earlier custom one).
    pub(crate) fn custom_definitions(&self, managed: &[Definition]) -> Result<Vec<Definition>, ConfigError> {
        let mut definitions: Vec<Definition> = Vec::new();
        for custom in &self.custom_identifiers {
            let taken = managed.iter().chain(&definitions).any(|d| d.id.eq_ignore_ascii_case(&custom.name));
            if taken {
                return Err(ConfigError::new("custom identifier", &custom.name, "the name is already taken"));
            }
            definitions.push(custom.definition()?);
        }
        Ok(definitions)
    }
}
