//! Scanning a stream in bounded memory: bytes are fed in any pieces; every `chunk` bytes the
//! engine judges the matches that start in the window's new part, with enough bytes kept before
//! it (keywords within reach) and after it (the longest match), so that a match across a chunk
//! border is found exactly once. Memory stays at one chunk plus that overlap.
//!
//! A scanner can read several streams into one report (the entries of an archive: `begin`), and
//! pieces of a stream can carry where they come from in a structured format (`feed_at`: a cell,
//! a JSON path), which locations then name.

use std::collections::VecDeque;
use std::io::{self, Read};

use crate::engine::{Caches, Engine};
use crate::redact;
use crate::report::{Location, Place, Report, Tally};

/// Bytes judged per window.
pub const DEFAULT_CHUNK: usize = 1 << 20;

/// Places kept at most: past this many pieces in a window, it is judged early, so that tiny
/// pieces (a JSON array of a million numbers) cannot make places outgrow the window.
const MAX_PLACES: usize = 4096;

/// The longest name (header, JSON path, entry) a place or location keeps, in bytes.
pub const MAX_NAME: usize = 256;

/// One stream being scanned.
pub struct Scanner<'e> {
    engine: &'e Engine,
    caches: Caches,
    chunk: usize,
    /// The bytes kept: context before `from`, the part not yet judged, and the overlap.
    window: Vec<u8>,
    /// Stream offset of `window[0]`.
    base: u64,
    /// Matches starting before `window[from]` have been judged.
    from: usize,
    /// Where the everywhere-search resumes (the end of its last accepted match).
    resume: usize,
    /// Line of `window[counted]` (1-based), and the stream offset where that line starts.
    line: u64,
    line_start: u64,
    counted: usize,
    /// Bytes fed in all streams.
    bytes: u64,
    /// Bytes fed in this stream.
    fed: u64,
    /// The entry of an archive this stream is, if it is one.
    entry: Option<String>,
    /// Where pieces of this stream come from: stream offset and place, the first one still in
    /// the window's reach first.
    places: VecDeque<(u64, Place)>,
    /// Bytes the scan may be fed in all; past it, what is fed is dropped (`exhausted`).
    budget: u64,
    tally: Tally,
}

impl<'e> Scanner<'e> {
    pub fn new(engine: &'e Engine) -> Self {
        Self::with_chunk(engine, DEFAULT_CHUNK)
    }

    /// A scanner that judges `chunk` bytes at a time (at least one).
    pub fn with_chunk(engine: &'e Engine, chunk: usize) -> Self {
        Self {
            engine,
            caches: engine.caches(),
            chunk: chunk.max(1),
            window: Vec::new(),
            base: 0,
            from: 0,
            resume: 0,
            line: 1,
            line_start: 0,
            counted: 0,
            bytes: 0,
            fed: 0,
            entry: None,
            places: VecDeque::new(),
            budget: u64::MAX,
            tally: Tally::new(engine),
        }
    }

    /// Feeds past `bytes` in all are dropped: decoded formats can yield far more text than the
    /// file holds (a spreadsheet's one long string in every cell), and this bounds the work.
    pub fn set_budget(&mut self, bytes: u64) {
        self.budget = bytes;
    }

    /// Whether more was fed than the budget allows (and dropped).
    pub fn exhausted(&self) -> bool {
        self.bytes > self.budget
    }

    /// Ends the current stream (judging what is left of it) and starts another, the archive
    /// entry `entry`, into the same report.
    pub fn begin(&mut self, entry: Option<String>) {
        self.judge(true);
        self.window.clear();
        (self.base, self.from, self.resume, self.counted, self.fed) = (0, 0, 0, 0, 0);
        (self.line, self.line_start) = (1, 0);
        self.places.clear();
        self.entry = entry;
    }

    /// Scans the next bytes of the stream, which come from `place` (until the next `feed_at`;
    /// `feed` after it continues the same place).
    pub fn feed_at(&mut self, place: Place, data: &[u8]) {
        if self.places.len() >= MAX_PLACES && self.window.len() > self.from + self.engine.reach {
            self.judge(false);
        }
        self.places.push_back((self.fed, place));
        self.feed(data);
    }

    /// Whether `text` (a name: a header, a JSON key) holds nothing the engine would report, so
    /// that it may stand before values as a keyword.
    pub fn is_clean(&mut self, text: &[u8]) -> bool {
        let mut resume = 0;
        self.engine.search(text, 0, text.len(), &mut resume, &mut self.caches).is_empty()
    }

    /// `text` with what the engine would report in it redacted, cut to [`MAX_NAME`] bytes: names
    /// shown in locations never hold a whole secret.
    pub fn redacted(&mut self, text: &str) -> String {
        redact_with(self.engine, &mut self.caches, text)
    }

    /// Bytes fed so far, in every stream.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Scans the next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.bytes.saturating_add(data.len() as u64) > self.budget {
            self.bytes = self.budget.saturating_add(1);
            return;
        }
        let full = |scanner: &Self| scanner.from + scanner.chunk + scanner.engine.reach;
        while !data.is_empty() {
            let take = full(self).saturating_sub(self.window.len()).clamp(1, data.len());
            self.window.extend_from_slice(&data[..take]);
            self.bytes += take as u64;
            self.fed += take as u64;
            data = &data[take..];
            if self.window.len() >= full(self) {
                self.judge(false);
            }
        }
    }

    /// Judges what is left and reports.
    pub fn finish(mut self) -> Report {
        self.judge(true);
        self.tally.report(self.bytes)
    }

    /// Judges the matches that start in the window's new part, then drops what no later window
    /// needs.
    fn judge(&mut self, last: bool) {
        let limit = if last { self.window.len() } else { self.window.len() - self.engine.reach };
        let hits = self.engine.search(&self.window, self.from, limit, &mut self.resume, &mut self.caches);
        for hit in hits {
            let start = hit.start + redact::core_span(&self.window[hit.start..hit.end]).start;
            self.count_lines(start);
            let matched = &self.window[hit.start..hit.end];
            let offset = self.base + start as u64;
            let (line, column) = (self.line, offset - self.line_start + 1);
            let (engine, entry, places, caches) = (self.engine, &self.entry, &self.places, &mut self.caches);
            self.tally.add(self.engine, hit.identifier, || Location {
                offset,
                line,
                column,
                sample: redact::sample(matched),
                keyword: hit.keyword,
                entry: entry.as_deref().map(|e| redact_with(engine, caches, e)),
                place: place_of(places, offset).map(|p| p.redacted(|text| redact_with(engine, caches, text))),
            });
        }
        self.count_lines(limit);
        let keep = limit.saturating_sub(self.engine.back);
        self.window.drain(..keep);
        self.base += keep as u64;
        self.from = limit - keep;
        self.resume = self.resume.saturating_sub(keep);
        self.counted -= keep;
        // The place of the window's first byte stays; the ones before it go.
        while self.places.len() > 1 && self.places[1].0 <= self.base {
            self.places.pop_front();
        }
    }

    /// Counts the lines up to `window[to]`.
    fn count_lines(&mut self, to: usize) {
        if to <= self.counted {
            return;
        }
        for newline in memchr::memchr_iter(b'\n', &self.window[self.counted..to]) {
            self.line += 1;
            self.line_start = self.base + (self.counted + newline + 1) as u64;
        }
        self.counted = to;
    }
}

/// `text` with each match the engine accepts in it replaced by its redacted sample, cut to
/// [`MAX_NAME`] bytes.
fn redact_with(engine: &Engine, caches: &mut Caches, text: &str) -> String {
    let bytes = text.as_bytes();
    let mut resume = 0;
    let mut out = String::new();
    let mut at = 0;
    for hit in engine.search(bytes, 0, bytes.len(), &mut resume, caches) {
        if hit.start < at {
            continue;
        }
        out.push_str(&String::from_utf8_lossy(&bytes[at..hit.start]));
        out.push_str(&redact::sample(&bytes[hit.start..hit.end]));
        at = hit.end;
    }
    out.push_str(&String::from_utf8_lossy(&bytes[at..]));
    truncated(out)
}

/// `name` cut to [`MAX_NAME`] bytes (at a character boundary, marked with `…`).
fn truncated(name: String) -> String {
    match name.len() > MAX_NAME {
        true => capped(&name),
        false => name,
    }
}

/// The first [`MAX_NAME`] bytes of `name` (at a character boundary, marked with `…` when cut).
pub(crate) fn capped(name: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_owned();
    }
    let mut cut = MAX_NAME;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &name[..cut])
}

/// The place of the piece holding stream offset `offset`, if pieces have places.
fn place_of(places: &VecDeque<(u64, Place)>, offset: u64) -> Option<Place> {
    let after = places.partition_point(|(start, _)| *start <= offset);
    after.checked_sub(1).map(|i| places[i].1.clone())
}

impl Engine {
    /// Scans everything `reader` yields.
    pub fn scan_reader(&self, mut reader: impl Read) -> io::Result<Report> {
        let mut scanner = Scanner::new(self);
        let mut buffer = vec![0; 64 * 1024];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => return Ok(scanner.finish()),
                Ok(n) => scanner.feed(&buffer[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Scans bytes already in memory.
    pub fn scan_bytes(&self, data: &[u8]) -> Report {
        let mut scanner = Scanner::new(self);
        scanner.feed(data);
        scanner.finish()
    }
}
