//! What a scan reports: per identifier, how many matches and the first few locations (each with
//! a redacted sample), and for the whole object the finding type and severity as Macie names them.

use serde::Serialize;

use crate::engine::Engine;
use crate::identifier::{Category, Severity};

/// Where a match starts: byte offset, and 1-based line and column (in bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    pub offset: u64,
    pub line: u64,
    pub column: u64,
    /// The match redacted ([`crate::redact::sample`]).
    pub sample: String,
    /// Whether one of the identifier's keywords came just before it.
    pub keyword: bool,
}

/// All matches of one identifier.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub identifier: String,
    pub category: Category,
    pub severity: Severity,
    pub count: u64,
    /// The first locations, up to the configured maximum.
    pub locations: Vec<Location>,
}

/// The result of scanning one stream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Bytes scanned.
    pub bytes: u64,
    /// One per identifier found, in the engine's order of identifiers.
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// `SensitiveData:S3Object/Credentials`, `.../Financial`, `.../Personal`,
    /// `.../CustomIdentifier`, or `.../Multiple` when findings fall in more than one.
    pub fn finding_type(&self) -> Option<String> {
        let mut classes: Vec<&str> = self.findings.iter().map(|f| f.category.finding_class()).collect();
        classes.sort_unstable();
        classes.dedup();
        match classes[..] {
            [] => None,
            [class] => Some(format!("SensitiveData:S3Object/{class}")),
            _ => Some("SensitiveData:S3Object/Multiple".to_owned()),
        }
    }

    /// The highest severity among the findings.
    pub fn severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// Findings as a scan gathers them, indexed like the engine's identifiers.
pub(crate) struct Tally {
    findings: Vec<Option<Finding>>,
    max_locations: usize,
}

impl Tally {
    pub fn new(engine: &Engine) -> Self {
        Self { findings: engine.identifiers().iter().map(|_| None).collect(), max_locations: engine.max_locations }
    }

    pub fn add(&mut self, engine: &Engine, identifier: usize, location: impl FnOnce() -> Location) {
        let finding = self.findings[identifier].get_or_insert_with(|| {
            let definition = &engine.identifiers()[identifier];
            Finding {
                identifier: definition.id.clone(),
                category: definition.category,
                severity: definition.severity,
                count: 0,
                locations: Vec::new(),
            }
        });
        finding.count += 1;
        if finding.locations.len() < self.max_locations {
            finding.locations.push(location());
        }
    }

    pub fn report(self, bytes: u64) -> Report {
        Report { bytes, findings: self.findings.into_iter().flatten().collect() }
    }
}
