//! Reading what a file or an object is: plain text; CSV and TSV (locations as row, column and
//! header); JSON and NDJSON (locations as JSON paths); gzip; zip archives, recursively; OOXML
//! documents (docx and pptx text, xlsx cells). PDF and other binary content are reported as
//! skipped with the reason, never silently.
//!
//! Structured formats are decoded to text the engine reads as it reads any text, each value
//! preceded by its name (a CSV column's header, a JSON key, a spreadsheet column's header), so
//! that names act as keywords as they do for Macie (`ssn: 123-45-6789`), and each piece fed with
//! its place ([`crate::Place`]). Archives are read under [`Limits`]; past one, the scan stops and
//! the report says why (`refused`): a zip bomb is refused, not expanded.

mod archive;
mod delimited;
mod json;
mod ooxml;

use std::io::{self, Read, Seek};

use crate::engine::Engine;
use crate::report::{Report, Skip};
use crate::scanner::Scanner;

/// What archives may hold before their scan is refused.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Archives inside archives, at most this deep (the file itself is depth 0).
    pub max_depth: u32,
    /// Archive entries read in all, per file.
    pub max_entries: u64,
    /// A compressed stream or entry may expand at most this many times its compressed size
    /// (plus 1 MiB).
    pub max_ratio: u64,
    /// Bytes decompressed in all, per file.
    pub max_expanded: u64,
    /// The most read into memory to be parsed whole: a nested archive (to seek in it), a JSON
    /// document, a spreadsheet's shared strings. Larger JSON is read as text.
    pub max_in_memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_depth: 3, max_entries: 10_000, max_ratio: 100, max_expanded: 8 << 30, max_in_memory: 64 << 20 }
    }
}

/// How a stream is read, told by its name and first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Delimited(u8),
    Json,
    Ndjson,
    Gzip,
    Zip,
    Unread(&'static str),
}

/// Text a file may decode to beyond `max_ratio` times its size.
const BUDGET_SLACK: u64 = 64 << 20;

/// Bytes looked at to tell a format.
const HEAD: usize = 8192;

pub(crate) fn detect(name: &str, head: &[u8]) -> Format {
    if head.starts_with(b"\x1f\x8b") {
        return Format::Gzip;
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Format::Zip;
    }
    if head.starts_with(b"%PDF-") {
        return Format::Unread("a PDF document: PDF text is not read by this version of the scanner");
    }
    if head.contains(&0) {
        return Format::Unread("binary content (a NUL byte in the first 8 KiB)");
    }
    match extension(name).as_deref() {
        Some("csv") => Format::Delimited(b','),
        Some("tsv" | "tab") => Format::Delimited(b'\t'),
        Some("json") => Format::Json,
        Some("ndjson" | "jsonl") => Format::Ndjson,
        _ => Format::Text,
    }
}

/// The name's extension, lower-cased.
pub(crate) fn extension(name: &str) -> Option<String> {
    let file = name.rsplit('/').next().unwrap_or(name);
    file.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase())
}

/// Scans a file (or an object's blob) named `name`, whatever its format.
pub fn scan(engine: &Engine, name: &str, file: &mut (impl Read + Seek), limits: &Limits) -> io::Result<Report> {
    let size = file.seek(io::SeekFrom::End(0))?;
    file.rewind()?;
    let mut scanner = Scanner::new(engine);
    let budget = size.saturating_mul(limits.max_ratio).saturating_add(BUDGET_SLACK).min(limits.max_expanded);
    scanner.set_budget(budget);
    let mut walk = Walk { scanner, limits, entries: 0, expanded: Default::default(), skipped: Vec::new() };
    let mut outcome = walk.seekable(name, None, file, 0);
    if outcome.is_ok() && walk.scanner.exhausted() {
        let mib = budget >> 20;
        outcome = Err(Refused::error(format!("{name}: decodes to more than {mib} MiB of text (a bomb?)")));
    }
    // Entry names and reasons are shown: nothing the engine would report stays whole in them.
    let Walk { mut scanner, skipped, .. } = walk;
    let skipped = skipped
        .into_iter()
        .map(|s| Skip { entry: s.entry.map(|e| scanner.redacted(&e)), reason: scanner.redacted(&s.reason) })
        .collect();
    let refused = match &outcome {
        Err(e) => Refused::reason(e).map(|reason| scanner.redacted(&reason)),
        Ok(()) => None,
    };
    let mut report = scanner.finish();
    report.skipped = skipped;
    match (outcome, refused) {
        (Ok(()), _) => Ok(report),
        (Err(_), Some(reason)) => {
            report.refused = Some(reason);
            Ok(report)
        }
        // A file damaged past some point: what was read stands, and the rest is said skipped.
        (Err(e), None)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof
            ) =>
        {
            report.skipped.push(Skip { entry: None, reason: format!("not read to its end: {e}") });
            Ok(report)
        }
        (Err(e), None) => Err(e),
    }
}

/// A limit reached: the scan stops, and the report says why.
#[derive(Debug)]
pub(crate) struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    pub(crate) fn error(reason: String) -> io::Error {
        io::Error::other(Refused(reason))
    }

    fn reason(e: &io::Error) -> Option<String> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Refused>()).map(|r| r.0.clone())
    }
}

/// One file's scan: the scanner every stream feeds, and the limits' counters.
pub(crate) struct Walk<'e, 'l> {
    pub(crate) scanner: Scanner<'e>,
    pub(crate) limits: &'l Limits,
    pub(crate) entries: u64,
    /// Bytes decompressed so far, by every archive of the file.
    pub(crate) expanded: std::rc::Rc<std::cell::Cell<u64>>,
    pub(crate) skipped: Vec<Skip>,
}

impl Walk<'_, '_> {
    /// A stream that can seek (a file, an archive read into memory).
    pub(crate) fn seekable(
        &mut self,
        name: &str,
        entry: Option<String>,
        file: &mut (impl Read + Seek),
        depth: u32,
    ) -> io::Result<()> {
        let head = read_head(file)?;
        file.rewind()?;
        match detect(name, &head) {
            Format::Zip => self.zip(name, entry, file, depth),
            Format::Gzip => self.stream(name, entry, &mut *file, depth),
            // A zip need not start the file (a self-extracting archive, data put before it):
            // unzip reads it from its end, and so does this.
            _ if ends_as_zip(file)? => self.zip(name, entry, file, depth),
            _ => self.stream(name, entry, &mut *file, depth),
        }
    }

    /// A stream read once, front to back. (Behind `dyn`: archives in archives would otherwise
    /// nest its type without end.)
    pub(crate) fn stream(
        &mut self,
        name: &str,
        entry: Option<String>,
        reader: &mut dyn Read,
        depth: u32,
    ) -> io::Result<()> {
        let head = read_head(reader)?;
        let mut reader = io::Cursor::new(head.clone()).chain(reader);
        match detect(name, &head) {
            Format::Text => self.text(entry, reader),
            Format::Delimited(delimiter) => {
                self.scanner.begin(entry);
                delimited::scan(&mut self.scanner, reader, delimiter)
            }
            Format::Json => json::document(self, entry, reader),
            Format::Ndjson => {
                self.scanner.begin(entry);
                json::lines(&mut self.scanner, reader)
            }
            Format::Gzip => self.gzip(name, entry, &mut reader, depth),
            Format::Zip => {
                // A zip needs its central directory, at the end: read it into memory.
                let bytes =
                    self.in_memory(reader, entry.as_deref().unwrap_or(name), "a zip archive inside a stream")?;
                match bytes {
                    Some(bytes) => self.zip(name, entry, &mut io::Cursor::new(bytes), depth),
                    None => Ok(()),
                }
            }
            Format::Unread(reason) => {
                self.skipped.push(Skip { entry, reason: reason.to_owned() });
                Ok(())
            }
        }
    }

    fn text(&mut self, entry: Option<String>, mut reader: impl Read) -> io::Result<()> {
        self.scanner.begin(entry);
        let mut buffer = vec![0; 256 * 1024];
        while !self.scanner.exhausted() {
            match reader.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => self.scanner.feed(&buffer[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether an archive entry's failure stops the file's scan: a refusal does; a damaged or
    /// unreadable entry is said skipped, and the scan goes on.
    pub(crate) fn entry_outcome(&mut self, entry: String, outcome: io::Result<()>) -> io::Result<()> {
        match outcome {
            Err(e) if Refused::reason(&e).is_none() => {
                self.skipped.push(Skip { entry: Some(entry), reason: format!("not read: {e}") });
                Ok(())
            }
            other => other,
        }
    }

    /// Reads a whole stream into memory if it fits; otherwise records why it was skipped.
    pub(crate) fn in_memory(&mut self, mut reader: impl Read, label: &str, what: &str) -> io::Result<Option<Vec<u8>>> {
        let mut bytes = Vec::new();
        (&mut reader).take(self.limits.max_in_memory + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > self.limits.max_in_memory {
            let reason = format!("{what} larger than {} MiB is not read", self.limits.max_in_memory >> 20);
            self.skipped.push(Skip { entry: Some(label.to_owned()), reason });
            return Ok(None);
        }
        Ok(Some(bytes))
    }
}

/// Whether the file ends with a zip archive (its end record, and entries the zip reader
/// accepts); the file is rewound either way.
fn ends_as_zip(file: &mut (impl Read + Seek)) -> io::Result<bool> {
    // The end record is 22 bytes, and a comment of at most 65,535 follows it.
    const TAIL: u64 = 22 + 65_535;
    let size = file.seek(io::SeekFrom::End(0))?;
    file.seek(io::SeekFrom::Start(size.saturating_sub(TAIL)))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let found = memchr::memmem::rfind(&tail, b"PK\x05\x06").is_some() && {
        file.rewind()?;
        // Text that happens to hold the signature reads as an empty archive: not one.
        zip::ZipArchive::new(&mut *file).is_ok_and(|archive| !archive.is_empty())
    };
    file.rewind()?;
    Ok(found)
}

/// The first bytes of a stream (fewer if it is shorter).
fn read_head(reader: &mut (impl Read + ?Sized)) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD);
    match reader.take(HEAD as u64).read_to_end(&mut head) {
        // What was read before damage is scanned; the next read meets the damage again.
        Err(_) if !head.is_empty() => Ok(head),
        Err(e) => Err(e),
        Ok(_) => Ok(head),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_first_bytes_then_by_name() {
        assert_eq!(detect("x.csv", b"\x1f\x8b\x08"), Format::Gzip);
        assert_eq!(detect("x.txt", b"PK\x03\x04...."), Format::Zip);
        assert!(matches!(detect("report.pdf", b"%PDF-1.7"), Format::Unread(r) if r.contains("PDF")));
        assert!(matches!(detect("a.csv", b"a,b\0"), Format::Unread(r) if r.contains("NUL")));
        assert_eq!(detect("dir.v2/People.CSV", b"a,b"), Format::Delimited(b','));
        assert_eq!(detect("x.tsv", b"a\tb"), Format::Delimited(b'\t'));
        assert_eq!(detect("x.json", b"{}"), Format::Json);
        assert_eq!(detect("x.jsonl", b"{}"), Format::Ndjson);
        assert_eq!(detect("dir.v2/README", b"hello"), Format::Text);
    }
}
