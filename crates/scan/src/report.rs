//! What a scan reports: per identifier, how many matches and the first few locations (each with
//! a redacted sample), and for the whole object the finding type and severity as Macie names them.

use std::sync::Arc;

use serde::Serialize;

use crate::engine::Engine;
use crate::identifier::{Category, Severity};

/// Where a match starts: byte offset, and 1-based line and column (in bytes), in the text the
/// scanner read (for a structured format, the text it was decoded to); inside an archive, the
/// entry; in a structured format, the cell, path or paragraph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    pub offset: u64,
    pub line: u64,
    pub column: u64,
    /// The match redacted ([`crate::redact::sample`]).
    pub sample: String,
    /// Whether one of the identifier's keywords came just before it.
    pub keyword: bool,
    /// Inside an archive: the entry's path (nested archives joined with `/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<Place>,
}

/// Where in a structured format a match is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Place {
    /// CSV/TSV: 1-based row (the header row is 1) and column, with the column's header.
    Cell { row: u64, column: u64, header: Option<Arc<str>> },
    /// A spreadsheet's cell as Excel names it (`C7`), with its column's header (the first row).
    SheetCell { sheet: Arc<str>, cell: String, header: Option<Arc<str>> },
    /// JSON: the value's path (`$.customers[3].card`); NDJSON: with its 1-based line.
    JsonPath { path: String, line: Option<u64> },
    /// A document's paragraph (docx) or a slide's text (pptx): the part and the 1-based index.
    Paragraph { part: Arc<str>, index: u64 },
}

impl Place {
    /// The place with its names (header, sheet, path, part) passed through `redact`.
    pub(crate) fn redacted(self, mut redact: impl FnMut(&str) -> String) -> Place {
        match self {
            Place::Cell { row, column, header } => {
                Place::Cell { row, column, header: header.map(|h| Arc::from(redact(&h))) }
            }
            Place::SheetCell { sheet, cell, header } => {
                let sheet = Arc::from(redact(&sheet));
                let cell = redact(&cell);
                let header = header.map(|h| Arc::from(redact(&h)));
                Place::SheetCell { sheet, cell, header }
            }
            Place::JsonPath { path, line } => Place::JsonPath { path: redact(&path), line },
            Place::Paragraph { part, index } => Place::Paragraph { part: Arc::from(redact(&part)), index },
        }
    }
}

/// Something of a file or object that was not read, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skip {
    /// The archive entry (`None`: the whole file).
    pub entry: Option<String>,
    pub reason: String,
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
    /// What was not read (binary content, formats not read, archive entries past a limit).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skip>,
    /// Why the scan stopped before the end (an archive past its limits: a zip bomb), if it did;
    /// the findings are those made until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
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
        Report { bytes, findings: self.findings.into_iter().flatten().collect(), ..Report::default() }
    }
}
