//! The compiled engine: every identifier's everywhere-pattern in one multi-pattern regex (one
//! pass over the data, whichever identifiers there are), the keywords in one Aho-Corasick
//! automaton, and the keyword-gated patterns searched only in the few bytes after a keyword.
//! [`Engine::search`] judges the matches that start in one window of a stream; the
//! [`crate::Scanner`] moves the window along.

use std::collections::HashSet;

use aho_corasick::AhoCorasick;
use regex_automata::meta::{self, Regex};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::{Anchored, Input, PatternID};
use regex_syntax::hir::Hir;

use crate::config::ScanConfig;
use crate::identifier::{Category, Check, Definition, Severity};

/// The longest match any pattern may make, in bytes: the window overlap that guarantees a match
/// across a chunk border is seen whole, once.
pub const MAX_MATCH_LEN: usize = 8 * 1024;

/// What a custom pattern's automaton may grow to before it is refused as too large. Real
/// identifiers take a few KiB (an email pattern 28 KiB); nested repetitions such as
/// `(?:\w{1,40}\s?){1,44}` take 140 KiB and thrash the lazy DFA on every byte of plain text
/// (6.5 s per MiB on their own, measured), so a pattern's size stands in for its scan cost.
const CUSTOM_NFA_LIMIT: usize = 96 * 1024;
/// What every custom pattern together may grow to: each is searched in the same pass, and their
/// costs add up (four patterns at the limit above scan plain text at about 4 MB/s, measured).
const CUSTOM_NFA_TOTAL: usize = 96 * 1024;
/// The most a custom pattern's nested repetitions may multiply to (`(?:\w{1,20} ?){1,5}` is 100).
/// Nesting is what makes a pattern's DFA explode: `(?:\w{1,20}\s?){1,25}` (500) is small as an
/// automaton yet scans plain text at 1 MB/s; real identifiers nest little (an IBAN's groups, 28).
const NESTED_REPETITION_LIMIT: u64 = 100;
/// What the nested repetitions of every custom pattern may add up to: their costs add up in the
/// one pass (ten patterns at 99 scan at 0.75 MB/s, two at about 10 MB/s, measured).
const NESTED_REPETITION_TOTAL: u64 = 200;
/// The allow-list's regexes, compiled together, may grow to this.
const ALLOW_LIST_NFA_LIMIT: usize = 256 * 1024;

/// Why an identifier or an allow-list entry cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{what} {name:?}: {reason}")]
pub struct ConfigError {
    pub what: &'static str,
    pub name: String,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(what: &'static str, name: &str, reason: impl Into<String>) -> Self {
        Self { what, name: name.to_owned(), reason: reason.into() }
    }
}

/// What the engine keeps of each identifier once its patterns are compiled.
#[derive(Debug)]
pub struct Identifier {
    pub id: String,
    pub category: Category,
    pub severity: Severity,
    pub(crate) max_distance: usize,
    ignore_words: Vec<Vec<u8>>,
    check: Option<Check>,
    near: Option<Regex>,
}

/// A match the engine accepted: the identifier (its index), where it is in the window, and
/// whether one of its keywords came before it within reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub identifier: usize,
    pub start: usize,
    pub end: usize,
    pub keyword: bool,
}

/// The compiled identifiers.
#[derive(Debug)]
pub struct Engine {
    pub(crate) identifiers: Vec<Identifier>,
    /// One pattern per identifier that is searched everywhere; `owner[pattern]` is its identifier.
    everywhere: Option<Regex>,
    owner: Vec<usize>,
    keywords: Option<AhoCorasick>,
    /// Per keyword pattern: the identifiers it belongs to, and whether its first and last bytes
    /// are word bytes (then it must stand as a whole word).
    keyword_owners: Vec<(Vec<usize>, bool, bool)>,
    allow_values: HashSet<Vec<u8>>,
    allow_patterns: Option<Regex>,
    /// Bytes a window must keep before the matches it judges (a keyword and its distance).
    pub(crate) back: usize,
    /// Bytes a window must have after the start of a match it judges: the longest match, plus
    /// `near_reach` to see the everywhere-matches that a keyword-gated one could overlap.
    pub(crate) reach: usize,
    /// The longest distance of a keyword-gated identifier.
    near_reach: usize,
    pub(crate) max_locations: usize,
}

/// Parses one pattern (as bytes, not UTF-8; ASCII classes unless it asks for Unicode with
/// `(?u)`) and checks that its matches are neither empty nor unbounded.
fn parse(what: &'static str, name: &str, pattern: &str) -> Result<Hir, ConfigError> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .nest_limit(64)
        .build()
        .parse(pattern)
        .map_err(|e| ConfigError::new(what, name, format!("the regex does not parse: {e}")))?;
    let properties = hir.properties();
    if properties.minimum_len().is_none_or(|len| len == 0) {
        return Err(ConfigError::new(what, name, "the regex can match empty text"));
    }
    match properties.maximum_len() {
        Some(len) if len <= MAX_MATCH_LEN => Ok(hir),
        _ => Err(ConfigError::new(
            what,
            name,
            format!(
                "the regex has no bound on the length of its matches (a `*`, `+` or `{{n,}}`), or one over \
                 {MAX_MATCH_LEN} bytes: use a bounded repetition such as `{{1,64}}`"
            ),
        )),
    }
}

fn build(hirs: &[Hir], nfa_limit: Option<usize>) -> Result<Regex, Box<meta::BuildError>> {
    let config = meta::Config::new().nfa_size_limit(nfa_limit).which_captures(WhichCaptures::Implicit);
    meta::Builder::new().configure(config).build_many_from_hir(hirs).map_err(Box::new)
}

/// The largest product of the maximum counts of repetitions nested in one another (1 for none;
/// a repetition alone does not count: `\d{11}` is cheap).
fn nested_repetition(hir: &Hir) -> u64 {
    use regex_syntax::hir::HirKind;
    /// The product along the deepest chain below `hir`, counting the repetitions met.
    fn walk(hir: &Hir) -> (u64, u32) {
        match hir.kind() {
            HirKind::Repetition(rep) => {
                let (inner, depth) = walk(&rep.sub);
                let max = u64::from(rep.max.unwrap_or(u32::MAX).max(1));
                (inner.saturating_mul(max), depth + 1)
            }
            HirKind::Capture(capture) => walk(&capture.sub),
            HirKind::Concat(subs) | HirKind::Alternation(subs) => {
                subs.iter().map(walk).max_by_key(|&(product, depth)| (depth > 1, product)).unwrap_or((1, 0))
            }
            _ => (1, 0),
        }
    }
    match walk(hir) {
        (product, depth) if depth > 1 => product,
        _ => 1,
    }
}

/// Compiles one custom pattern's automaton on its own, so that one too large is refused by name;
/// returns its size.
fn nfa_size(name: &str, hir: &Hir) -> Result<usize, ConfigError> {
    let config = thompson::Config::new().utf8(false).nfa_size_limit(Some(CUSTOM_NFA_LIMIT));
    let nfa = thompson::Compiler::new().configure(config).build_from_hir(hir).map_err(|e| {
        let reason = match e.size_limit() {
            Some(limit) => format!(
                "the regex compiles to more than {limit} bytes, too costly to search in every scan: simplify it \
                 or bound its repetitions lower"
            ),
            None => format!("the regex does not compile: {e}"),
        };
        ConfigError::new("custom identifier", name, reason)
    })?;
    Ok(nfa.memory_usage())
}

/// Refuses custom identifiers whose everywhere-patterns, searched with the managed ones as a
/// scan searches them, make the lazy DFA give up on plain text (`cost.rs`), naming the first
/// that does.
fn check_scan_cost(managed: &[Definition], custom: &[Definition]) -> Result<(), ConfigError> {
    let everywhere = |d: &Definition| d.pattern.as_deref().map(|p| parse("identifier", &d.id, p));
    let mut hirs = managed.iter().filter_map(everywhere).collect::<Result<Vec<_>, _>>()?;
    let base = hirs.len();
    for definition in custom {
        if let Some(hir) = everywhere(definition).transpose()? {
            hirs.push(hir);
        }
    }
    if hirs.len() == base || !crate::cost::thrashes(&hirs) {
        return Ok(());
    }
    // Rare: find the first that tips it over.
    hirs.truncate(base);
    for definition in custom {
        let Some(hir) = everywhere(definition).transpose()? else { continue };
        hirs.push(hir);
        if crate::cost::thrashes(&hirs) {
            let reason = "searched with the others, its pattern is too costly for plain text (its automaton keeps \
                          growing, and scans would fall back to a slow search): bound its repetitions lower or give \
                          it keywords";
            return Err(ConfigError::new("custom identifier", &definition.id, reason));
        }
    }
    Ok(())
}

impl Engine {
    /// The managed identifiers, then `config`'s custom ones, with its allow-list.
    pub fn new(config: &ScanConfig) -> Result<Engine, ConfigError> {
        let mut definitions = crate::managed::definitions();
        if let Some(unknown) = config.disabled_identifiers.iter().find(|id| !definitions.iter().any(|d| &d.id == *id)) {
            return Err(ConfigError::new("managed identifier", unknown, "there is no managed identifier of that id"));
        }
        let custom = config.custom_definitions(&definitions)?;
        definitions.retain(|d| !config.disabled_identifiers.contains(&d.id));
        let (mut total, mut nested_total) = (0, 0);
        for definition in &custom {
            for pattern in [&definition.pattern, &definition.near_keyword].into_iter().flatten() {
                let hir = parse("custom identifier", &definition.id, pattern)?;
                let nesting = nested_repetition(&hir);
                if nesting > NESTED_REPETITION_LIMIT {
                    let reason = format!(
                        "its nested repetitions multiply to {nesting} (at most {NESTED_REPETITION_LIMIT}), too costly \
                         to search in every scan: bound the inner or the outer repetition lower"
                    );
                    return Err(ConfigError::new("custom identifier", &definition.id, reason));
                }
                nested_total += if nesting > 1 { nesting } else { 0 };
                if nested_total > NESTED_REPETITION_TOTAL {
                    let reason = format!(
                        "the nested repetitions of the custom identifiers up to this one multiply to more than \
                         {NESTED_REPETITION_TOTAL} together (each is searched in every scan): remove or simplify some"
                    );
                    return Err(ConfigError::new("custom identifier", &definition.id, reason));
                }
                total += nfa_size(&definition.id, &hir)?;
            }
            if total > CUSTOM_NFA_TOTAL {
                let reason = format!(
                    "the custom identifiers up to this one compile to more than {CUSTOM_NFA_TOTAL} bytes together \
                     (each is searched in every scan): remove or simplify some"
                );
                return Err(ConfigError::new("custom identifier", &definition.id, reason));
            }
        }
        check_scan_cost(&definitions, &custom)?;
        definitions.extend(custom);
        Engine::compile(definitions, config)
    }

    fn compile(definitions: Vec<Definition>, config: &ScanConfig) -> Result<Engine, ConfigError> {
        let mut everywhere = Vec::new();
        let mut owner = Vec::new();
        let mut keywords: Vec<(String, usize)> = Vec::new();
        let mut identifiers = Vec::new();
        // At least one byte before: `\b` at a window's start looks at it.
        let (mut back, mut reach, mut near_reach) = (1, 1, 0);
        for (index, definition) in definitions.into_iter().enumerate() {
            if let Some(pattern) = &definition.pattern {
                let hir = parse("identifier", &definition.id, pattern)?;
                reach = reach.max(hir.properties().maximum_len().unwrap_or(MAX_MATCH_LEN));
                everywhere.push(hir);
                owner.push(index);
            }
            let near = match &definition.near_keyword {
                Some(pattern) => {
                    let hir = parse("identifier", &definition.id, pattern)?;
                    let regex = build(&[hir], None).map_err(|e| {
                        ConfigError::new("identifier", &definition.id, format!("the regex does not compile: {e}"))
                    })?;
                    Some(regex)
                }
                None => None,
            };
            if near.is_some() {
                near_reach = near_reach.max(definition.max_distance);
            }
            if !definition.keywords.is_empty() {
                let longest = definition.keywords.iter().map(String::len).max().unwrap_or(0);
                back = back.max(longest + definition.max_distance + 1);
                reach = reach.max(definition.max_distance + 1);
            }
            keywords.extend(definition.keywords.iter().map(|k| (k.to_ascii_lowercase(), index)));
            identifiers.push(Identifier {
                id: definition.id,
                category: definition.category,
                severity: definition.severity,
                max_distance: definition.max_distance,
                ignore_words: definition.ignore_words.into_iter().map(String::into_bytes).collect(),
                check: definition.check,
                near,
            });
        }
        let everywhere = match everywhere.is_empty() {
            true => None,
            false => Some(build(&everywhere, None).map_err(|e| {
                ConfigError::new("identifiers", "all", format!("the patterns do not compile together: {e}"))
            })?),
        };
        // One automaton pattern per distinct keyword, owned by every identifier that lists it.
        keywords.sort();
        let mut distinct: Vec<String> = Vec::new();
        let mut keyword_owners: Vec<(Vec<usize>, bool, bool)> = Vec::new();
        for (keyword, index) in keywords {
            if distinct.last() != Some(&keyword) {
                let bytes = keyword.as_bytes();
                let word = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
                keyword_owners.push((Vec::new(), word(bytes.first()), word(bytes.last())));
                distinct.push(keyword);
            }
            let owners = &mut keyword_owners.last_mut().expect("pushed above").0;
            if !owners.contains(&index) {
                owners.push(index);
            }
        }
        let keywords = match distinct.is_empty() {
            true => None,
            false => Some(
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(&distinct)
                    .map_err(|e| ConfigError::new("keywords", "all", e.to_string()))?,
            ),
        };
        let allow_patterns = match config.allow_list.regexes.is_empty() {
            true => None,
            false => {
                // Each must match the whole value: anchored at its end here, at its start by the search.
                let hirs = config
                    .allow_list
                    .regexes
                    .iter()
                    .map(|p| parse("allow-list regex", p, &format!("(?:{p})\\z")))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(build(&hirs, Some(ALLOW_LIST_NFA_LIMIT)).map_err(|e| {
                    ConfigError::new("allow-list", "regexes", format!("the regexes do not compile: {e}"))
                })?)
            }
        };
        Ok(Engine {
            identifiers,
            everywhere,
            owner,
            keywords,
            keyword_owners,
            allow_values: config.allow_list.values.iter().map(|v| v.as_bytes().to_vec()).collect(),
            allow_patterns,
            back,
            reach: reach + near_reach + 1,
            near_reach,
            max_locations: config.max_locations,
        })
    }

    /// The identifiers, in the order their indices in [`Hit`] refer to.
    pub fn identifiers(&self) -> &[Identifier] {
        &self.identifiers
    }

    /// The accepted matches that start in `window[from..limit]`, in order of start. No match
    /// starts before `resume` (the end of the last match accepted, which may reach into this
    /// window), which moves on. The bytes outside `from..limit` are context: keywords before,
    /// the rest of a match and the matches it could overlap after.
    pub fn search(&self, window: &[u8], from: usize, limit: usize, resume: &mut usize, cache: &mut Caches) -> Vec<Hit> {
        // The end of what earlier windows accepted: no match of this one starts inside it.
        let carried = *resume;
        let keywords = self.keyword_hits(window);
        let mut hits = Vec::new();
        // Everywhere-matches just past `limit` are judged too, not reported (the next window
        // does): a keyword-gated match before `limit` must yield to them as in one pass.
        let mut ahead = Vec::new();
        let horizon = if limit == window.len() { limit } else { (limit + self.near_reach).min(window.len()) };
        if let (Some(regex), Some(cache)) = (&self.everywhere, &mut cache.everywhere) {
            let mut at = from.max(*resume);
            while at < horizon {
                let input = Input::new(window).range(at..);
                let Some(found) = regex.search_with(cache, &input) else { break };
                if found.start() >= horizon {
                    break;
                }
                match self.accept_at(regex, cache, window, found.start(), found.pattern(), found.end(), &keywords) {
                    Ok(hit) if hit.start >= limit => {
                        at = hit.end;
                        ahead.push(hit);
                    }
                    Ok(hit) => {
                        at = hit.end;
                        *resume = hit.end;
                        hits.push(hit);
                    }
                    // A value on the allow-list or holding an ignore word is passed over whole.
                    Err(Verdict::Suppressed) => at = found.end(),
                    Err(_) => at = found.start() + 1,
                }
            }
        }
        // Keyword-gated matches: one that covers an everywhere-match whole takes its place (the
        // keyword says more than a shape: `NHS number 077 891 7851` is no phone number).
        let mut near_hits: Vec<Hit> = Vec::new();
        let mut searched = vec![0; self.identifiers.len()];
        for &(end, keyword) in &keywords {
            for &index in &self.keyword_owners[keyword].0 {
                let identifier = &self.identifiers[index];
                let Some(near) = &identifier.near else { continue };
                let stop = same_line(window, end, (end + identifier.max_distance).min(window.len()));
                // What an earlier keyword's range covered is not searched again (linear time on
                // a run of keywords), nor what a match accepted in an earlier window covers.
                let mut at = end.max(from).max(carried).max(searched[index]);
                searched[index] = searched[index].max(stop);
                while at < stop {
                    let input = Input::new(window).range(at..stop);
                    let Some(found) = near.search(&input) else { break };
                    if found.start() >= limit {
                        break;
                    }
                    let span = found.start()..found.end();
                    let overlaps = |h: &Hit| h.start < span.end && span.start < h.end;
                    // Everywhere-hits are in order and do not overlap: only those from the last
                    // one starting before the span can touch it.
                    let first = hits.partition_point(|h| h.end <= span.start);
                    let covers = |h: &Hit| h.start < span.start || h.end > span.end;
                    let blocked = near_hits.iter().any(overlaps)
                        || hits[first..].iter().take_while(|h| h.start < span.end).any(covers)
                        || ahead.iter().any(|h| overlaps(h) && covers(h));
                    if !blocked && self.judge(index, &window[span.clone()]) == Verdict::Accept {
                        hits.retain(|h| !overlaps(h));
                        ahead.retain(|h| !overlaps(h));
                        near_hits.push(Hit { identifier: index, start: span.start, end: span.end, keyword: true });
                        at = span.end;
                    } else {
                        at = span.start + 1;
                    }
                }
            }
        }
        if !near_hits.is_empty() {
            *resume = (*resume).max(near_hits.iter().map(|h| h.end).max().unwrap_or(0));
            hits.extend(near_hits);
            hits.sort_by_key(|h| h.start);
        }
        hits
    }

    /// The match of pattern `pattern` at `start`, or, if its identifier refuses it, the first
    /// other everywhere-pattern that matches at `start` and is accepted.
    #[allow(clippy::too_many_arguments)]
    fn accept_at(
        &self,
        regex: &Regex,
        cache: &mut meta::Cache,
        window: &[u8],
        start: usize,
        pattern: PatternID,
        end: usize,
        keywords: &[(usize, usize)],
    ) -> Result<Hit, Verdict> {
        let index = self.owner[pattern.as_usize()];
        match self.judge(index, &window[start..end]) {
            Verdict::Accept => return Ok(self.hit(window, index, start, end, keywords)),
            Verdict::Suppressed => return Err(Verdict::Suppressed),
            Verdict::Refused => {}
        }
        for (other, &index) in self.owner.iter().enumerate().filter(|(other, _)| *other != pattern.as_usize()) {
            let input = Input::new(window).range(start..).anchored(Anchored::Pattern(PatternID::new_unchecked(other)));
            if let Some(found) = regex.search_with(cache, &input)
                && self.judge(index, &window[start..found.end()]) == Verdict::Accept
            {
                return Ok(self.hit(window, index, start, found.end(), keywords));
            }
        }
        Err(Verdict::Refused)
    }

    fn hit(&self, window: &[u8], identifier: usize, start: usize, end: usize, keywords: &[(usize, usize)]) -> Hit {
        let distance = self.identifiers[identifier].max_distance;
        let keyword = keywords.iter().any(|&(keyword_end, keyword)| {
            keyword_end <= start
                && end - keyword_end <= distance
                && memchr::memchr(b'\n', &window[keyword_end..start]).is_none()
                && self.keyword_owners[keyword].0.contains(&identifier)
        });
        Hit { identifier, start, end, keyword }
    }

    /// Whether a match of `identifier` stands: no ignore word in it, not on the allow-list, and
    /// its check passes.
    fn judge(&self, identifier: usize, matched: &[u8]) -> Verdict {
        let identifier = &self.identifiers[identifier];
        if identifier.ignore_words.iter().any(|word| memchr::memmem::find(matched, word).is_some()) {
            return Verdict::Suppressed;
        }
        let core = crate::redact::core(matched);
        if self.allow_values.contains(core) {
            return Verdict::Suppressed;
        }
        if let Some(allow) = &self.allow_patterns
            && allow.search(&Input::new(core).anchored(Anchored::Yes)).is_some()
        {
            return Verdict::Suppressed;
        }
        match identifier.check.is_none_or(|check| check(matched)) {
            true => Verdict::Accept,
            false => Verdict::Refused,
        }
    }

    /// Every whole-word keyword in `window`: (end, keyword pattern), in order of end.
    fn keyword_hits(&self, window: &[u8]) -> Vec<(usize, usize)> {
        let Some(keywords) = &self.keywords else { return Vec::new() };
        let word = |at: Option<&u8>| at.is_some_and(u8::is_ascii_alphanumeric);
        let mut hits: Vec<(usize, usize)> = keywords
            .find_overlapping_iter(window)
            .filter(|m| {
                let (_, starts_word, ends_word) = self.keyword_owners[m.pattern().as_usize()];
                let before = m.start().checked_sub(1).and_then(|i| window.get(i));
                !(starts_word && word(before) || ends_word && word(window.get(m.end())))
            })
            .map(|m| (m.end(), m.pattern().as_usize()))
            .collect();
        hits.sort_unstable();
        hits
    }

    /// The regex caches one scan reuses.
    pub fn caches(&self) -> Caches {
        Caches { everywhere: self.everywhere.as_ref().map(Regex::create_cache) }
    }
}

/// What becomes of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    /// Its check fails: another pattern may take the place.
    Refused,
    /// Known data (allow-list) or an ignore word: nothing at this place is reported.
    Suppressed,
}

/// Per-scan state of the everywhere-regex (its lazy DFA), kept across windows.
pub struct Caches {
    everywhere: Option<meta::Cache>,
}

/// `to`, or just past the first line break in `window[from..to]` (a pattern may end on it): a
/// keyword counts on its own line only (one on the line before is as likely to label
/// something else).
fn same_line(window: &[u8], from: usize, to: usize) -> usize {
    memchr::memchr(b'\n', &window[from..to]).map_or(to, |i| from + i + 1)
}
