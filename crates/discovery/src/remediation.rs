//! What discovery does (`[discovery]` in the server's TOML) and what a scan's report leads to:
//! the version's status (its sensitivity, whether it is tagged, whether it is quarantined) and
//! the actions taken, from the remediation rules.

use std::time::Duration;

use latchkey_meta::{ScanStatus, Sensitivity};
use latchkey_object::ScanGate;
use latchkey_scan::formats::Limits;
use latchkey_scan::{Report, Severity};
use serde::Deserialize;

/// `[discovery]`: every key optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Queue every new object version for a scan (on by default).
    pub on_upload: bool,
    /// Scans run at once on this replica, each on its own low-priority thread.
    pub workers: usize,
    /// Buckets (`*`: all) whose new versions are served and shared only once scanned clean.
    pub gated_buckets: Vec<String>,
    /// Attempts before a version's scan is given up (kept dead in the queue, audited).
    pub max_attempts: u32,
    /// How long a claim lasts without renewal: a crashed replica's scans are taken up after it.
    pub lease_secs: u64,
    /// Objects larger than this are not scanned: given up at once, they stay unscanned (withheld
    /// in gated buckets).
    pub max_scan_bytes: u64,
    /// What findings lead to; the first rule is not the only one: every matching rule's actions
    /// are taken. Without rules, every finding is tagged.
    pub remediation: Vec<RemediationRule>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            on_upload: true,
            workers: 1,
            gated_buckets: Vec::new(),
            max_attempts: 5,
            lease_secs: 60,
            max_scan_bytes: 5 << 30,
            remediation: vec![RemediationRule {
                finding_types: vec!["*".into()],
                min_severity: Severity::Low,
                actions: vec![Action::Tag],
            }],
        }
    }
}

/// Finding classes a rule may name, as Macie names finding types (`SensitiveData:S3Object/` and
/// one of these).
const FINDING_CLASSES: &[&str] = &["Credentials", "Financial", "Personal", "CustomIdentifier"];
const FINDING_TYPE_PREFIX: &str = "SensitiveData:S3Object/";

/// One remediation rule: when a report holds a finding of one of `finding_types` at
/// `min_severity` or above, `actions` are taken.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationRule {
    /// `Credentials`, `Financial`, `Personal`, `CustomIdentifier` (with or without the
    /// `SensitiveData:S3Object/` prefix), or `*`.
    #[serde(default = "every_type")]
    pub finding_types: Vec<String>,
    #[serde(default = "lowest")]
    pub min_severity: Severity,
    pub actions: Vec<Action>,
}

fn every_type() -> Vec<String> {
    vec!["*".into()]
}

fn lowest() -> Severity {
    Severity::Low
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Show `latchkey:sensitivity=<severity>` among the object's tags.
    Tag,
    /// Refuse every read of the version (GET, copy, links, presigned URLs).
    Quarantine,
    /// POST the finding to every `[[webhooks]]` target.
    Notify,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Tag => "tag",
            Action::Quarantine => "quarantine",
            Action::Notify => "notify",
        }
    }
}

impl DiscoveryConfig {
    /// Why the settings cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if self.workers == 0 || self.workers > 64 {
            return Some("discovery.workers must be between 1 and 64".into());
        }
        if self.max_attempts == 0 {
            return Some("discovery.max_attempts must be at least 1".into());
        }
        if !(5..=3600).contains(&self.lease_secs) {
            return Some("discovery.lease_secs must be between 5 and 3600".into());
        }
        if !self.on_upload && !self.gated_buckets.is_empty() {
            return Some(
                "discovery.gated_buckets needs on_upload: a gated bucket's uploads would never be scanned, \
                 so never served"
                    .into(),
            );
        }
        if let Some(name) = self.gated_buckets.iter().find(|b| b.is_empty() || (b.contains('*') && *b != "*")) {
            return Some(format!("discovery.gated_buckets: {name:?} must be a bucket name or \"*\""));
        }
        for (n, rule) in self.remediation.iter().enumerate() {
            if rule.actions.is_empty() {
                return Some(format!("discovery.remediation[{n}] takes no action: give actions"));
            }
            let unknown = rule.finding_types.iter().find(|t| *t != "*" && class_of(t).is_none());
            if let Some(t) = unknown {
                return Some(format!(
                    "discovery.remediation[{n}]: unknown finding type {t:?} (expected one of {}, or *)",
                    FINDING_CLASSES.join(", ")
                ));
            }
        }
        None
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// What archives may hold before their scan is refused.
    pub fn limits(&self) -> Limits {
        Limits::default()
    }

    pub fn scan_gate(&self) -> ScanGate {
        ScanGate { buckets: self.gated_buckets.clone() }
    }

    /// What `report` leads to: the version's status and the actions taken (in rule order,
    /// each once).
    pub fn judge(&self, report: &Report) -> (ScanStatus, Vec<Action>) {
        let partial = !report.skipped.is_empty();
        let Some(severity) = report.severity() else {
            return (ScanStatus { sensitivity: Some(Sensitivity::None), partial, ..ScanStatus::default() }, Vec::new());
        };
        let mut actions = Vec::new();
        for rule in &self.remediation {
            if rule.matches(report) {
                for action in &rule.actions {
                    if !actions.contains(action) {
                        actions.push(*action);
                    }
                }
            }
        }
        let status = ScanStatus {
            sensitivity: Some(sensitivity(severity)),
            partial,
            tagged: actions.contains(&Action::Tag),
            quarantined: actions.contains(&Action::Quarantine),
        };
        (status, actions)
    }
}

impl RemediationRule {
    /// Whether one of the report's findings is of the rule's types at its severity or above.
    fn matches(&self, report: &Report) -> bool {
        report.findings.iter().any(|f| {
            f.severity >= self.min_severity
                && self.finding_types.iter().any(|t| t == "*" || class_of(t) == Some(f.category.finding_class()))
        })
    }
}

/// The finding class a rule's type names.
fn class_of(finding_type: &str) -> Option<&'static str> {
    let class = finding_type.strip_prefix(FINDING_TYPE_PREFIX).unwrap_or(finding_type);
    FINDING_CLASSES.iter().copied().find(|c| c.eq_ignore_ascii_case(class))
}

pub(crate) fn sensitivity(severity: Severity) -> Sensitivity {
    match severity {
        Severity::Low => Sensitivity::Low,
        Severity::Medium => Sensitivity::Medium,
        Severity::High => Sensitivity::High,
    }
}

#[cfg(test)]
mod tests {
    use latchkey_scan::{Engine, ScanConfig};

    use super::*;

    fn config(toml_text: &str) -> DiscoveryConfig {
        let config: DiscoveryConfig = toml::from_str(toml_text).unwrap();
        assert_eq!(config.problem(), None);
        config
    }

    fn report(text: &str) -> Report {
        Engine::new(&ScanConfig::default()).unwrap().scan_bytes(text.as_bytes())
    }

    const KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\naFDrBz9vFqU4yTlLhcIqU5u2dLOTYUGDP1rPV1K+W3Yrn4PtQ6kDJzKJxd8xXpmH\n-----END RSA PRIVATE KEY-----\n";

    #[test]
    fn every_matching_rule_acts_and_a_clean_report_is_marked_clean() {
        let rules = config(
            r#"
            [[remediation]]
            finding_types = ["Credentials"]
            min_severity = "High"
            actions = ["quarantine", "notify"]
            [[remediation]]
            finding_types = ["*"]
            actions = ["tag", "notify"]
            "#,
        );
        let (status, actions) = rules.judge(&report(KEY));
        assert_eq!(actions, [Action::Quarantine, Action::Notify, Action::Tag]);
        assert_eq!(
            status,
            ScanStatus { sensitivity: Some(Sensitivity::High), partial: false, tagged: true, quarantined: true }
        );

        let (status, actions) = rules.judge(&report("write to jane.doe@example.org\n"));
        assert_eq!(actions, [Action::Tag, Action::Notify], "personal data is not credentials");
        assert!(!status.quarantined && status.tagged);

        let (status, actions) = rules.judge(&report("nothing to see here\n"));
        assert!(actions.is_empty());
        assert_eq!(status, ScanStatus { sensitivity: Some(Sensitivity::None), ..ScanStatus::default() });
    }

    #[test]
    fn by_default_findings_are_tagged_and_uploads_scanned() {
        let defaults = DiscoveryConfig::default();
        assert!(defaults.on_upload && defaults.gated_buckets.is_empty());
        let (status, actions) = defaults.judge(&report(KEY));
        assert_eq!(actions, [Action::Tag]);
        assert!(status.tagged && !status.quarantined);
    }

    #[test]
    fn unusable_settings_are_named() {
        let problem = |text: &str| toml::from_str::<DiscoveryConfig>(text).unwrap().problem().unwrap();
        assert!(problem("workers = 0").contains("workers"));
        assert!(problem("on_upload = false\ngated_buckets = [\"in\"]").contains("needs on_upload"));
        assert!(problem("gated_buckets = [\"logs-*\"]").contains("\"logs-*\""));
        let unknown = problem("[[remediation]]\nfinding_types = [\"Secrets\"]\nactions = [\"tag\"]");
        assert!(unknown.contains("\"Secrets\"") && unknown.contains("Credentials"), "{unknown}");
        assert!(problem("[[remediation]]\nactions = []").contains("takes no action"));
        assert!(toml::from_str::<DiscoveryConfig>("[[remediation]]\nactions = [\"delete\"]").is_err());
        let full =
            config("[[remediation]]\nfinding_types = [\"SensitiveData:S3Object/Financial\"]\nactions = [\"tag\"]");
        assert_eq!(full.remediation[0].finding_types, ["SensitiveData:S3Object/Financial"]);
    }
}
