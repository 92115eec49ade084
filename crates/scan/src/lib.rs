//! Latchkey's sensitive-data scanner: finds credentials, financial data, personal data, national
//! identification numbers and the user's own identifiers in any byte stream, in bounded memory.
//!
//! No server dependencies, no I/O beyond the reader it is given, no async: the same engine scans
//! uploads, scan jobs and files for `latchkey scan`.
//!
//! - [`Engine`] compiles the managed identifiers ([`managed`]) and a [`ScanConfig`]'s custom ones
//!   once: every everywhere-pattern in one multi-pattern regex, every keyword in one
//!   Aho-Corasick automaton, keyword-gated patterns searched only just after their keywords.
//! - [`Scanner`] feeds a stream through it in windows that overlap by the longest possible match,
//!   so a match across a chunk border is reported exactly once.
//! - [`formats::scan`] reads a file's format first: CSV/TSV cells, JSON paths, gzip, zip
//!   archives (under limits that refuse bombs), docx/pptx/xlsx; binary content and PDF are
//!   reported as skipped.
//! - A match stands only if its identifier's check passes ([`checksum`]: Luhn, mod 97, Verhoeff,
//!   ...), it holds no ignore word and it is not on the allow-list; a [`Report`] keeps counts and
//!   the first locations with redacted samples ([`redact`]), never the matched value.
//!
//! ```
//! use latchkey_scan::{Engine, ScanConfig};
//!
//! let engine = Engine::new(&ScanConfig::default())?;
//! let report = engine.scan_bytes(b"name,card\nAda,4111 1111 1111 1111\n");
//! assert_eq!(report.finding_type().as_deref(), Some("SensitiveData:S3Object/Financial"));
//! let card = &report.findings[0];
//! assert_eq!((card.identifier.as_str(), card.count), ("CREDIT_CARD_NUMBER", 1));
//! assert_eq!((card.locations[0].line, card.locations[0].column), (2, 5));
//! assert_eq!(card.locations[0].sample, "41** **** **** **11");
//! # Ok::<(), latchkey_scan::ConfigError>(())
//! ```

pub mod checksum;
mod config;
mod cost;
mod engine;
pub mod formats;
mod identifier;
pub mod managed;
pub mod redact;
mod report;
mod scanner;

pub use config::{AllowList, CustomIdentifier, ScanConfig};
pub use engine::{ConfigError, Engine, Hit, Identifier, MAX_MATCH_LEN};
pub use identifier::{Category, Check, Definition, Severity};
pub use report::{Finding, Location, Place, Report, Skip};
pub use scanner::{DEFAULT_CHUNK, Scanner};

/// The engine's version, recorded with every finding (a finding made by another engine may be
/// worth a rescan).
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");
