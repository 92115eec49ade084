//! What custom patterns cost a scan, tried before they are accepted. A scan searches every
//! everywhere-pattern in one lazy DFA; patterns whose DFA has too many states for ordinary
//! text (chained or nested repetitions of word characters, `(?:\w{1,12} ?){45}`) make it clear
//! its cache again and again, give up, and fall back to an engine that scans at seconds per
//! MiB. So the patterns are run, as the scan runs them, over a fixed text of plain words and
//! lines; if the lazy DFA gives up there, they are refused. The text and the settings are
//! fixed, so the verdict is the same on every machine and every run.

use regex_automata::Input;
use regex_automata::hybrid::dfa::DFA;
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_syntax::hir::Hir;

/// The lazy DFA's cache, as the meta regex sizes it by default.
const CACHE_CAPACITY: usize = 2 * 1024 * 1024;
/// How much text the patterns are tried on.
const TEXT_LEN: usize = 256 * 1024;

/// Whether the lazy DFA of `hirs` outgrows its cache on plain text: the scan would rebuild its
/// states again and again, and the slow engine that finds each match's span would run on every
/// one of the many matches (the measured cases: 0.5 to 7.5 s per MiB, against 0.03 s).
pub(crate) fn thrashes(hirs: &[Hir]) -> bool {
    if hirs.is_empty() {
        return false;
    }
    let config = thompson::Config::new().utf8(false).which_captures(WhichCaptures::None);
    let Ok(nfa) = thompson::Compiler::new().configure(config).build_many_from_hir(hirs) else {
        return true;
    };
    // Gives up at its second cache clear, whatever it made of the text: one clear is enough to
    // tell (the managed patterns alone never fill the cache on this text; costly ones fill it
    // again and again), and the check stays quick however costly the patterns are.
    let dfa_config = DFA::config()
        .cache_capacity(CACHE_CAPACITY)
        .minimum_cache_clear_count(Some(1))
        .minimum_bytes_per_state(Some(usize::MAX));
    let Ok(dfa) = DFA::builder().configure(dfa_config).build_from_nfa(nfa) else {
        return true;
    };
    let mut cache = dfa.create_cache();
    let text = plain_text();
    let mut input = Input::new(&text);
    loop {
        match dfa.try_search_fwd(&mut cache, &input) {
            Ok(Some(found)) if cache.clear_count() == 0 => {
                let next = found.offset().max(input.start() + 1);
                if next >= text.len() {
                    return false;
                }
                input.set_start(next);
            }
            Ok(None) => return cache.clear_count() > 0,
            // Cleared, or gave up: the automaton outgrew its cache on plain text.
            Ok(Some(_)) | Err(_) => return true,
        }
    }
}

/// Words of one to nine letters, some capitalised, some digits and punctuation, lines of about
/// a hundred bytes: what most documents are made of (a deterministic generator, no randomness).
fn plain_text() -> Vec<u8> {
    let mut text = Vec::with_capacity(TEXT_LEN + 16);
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut line = 0;
    while text.len() < TEXT_LEN {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let len = 1 + (seed >> 33) % 9;
        for k in 0..len {
            let letter = b'a' + ((seed >> (k * 5 + 3)) % 26) as u8;
            text.push(if k == 0 && (seed >> 60) == 0 { letter.to_ascii_uppercase() } else { letter });
        }
        match (seed >> 52) % 16 {
            0 => text.extend_from_slice(b" 42"),
            1 => text.push(b','),
            2 => text.push(b'.'),
            _ => {}
        }
        line += len + 1;
        if line > 100 {
            text.push(b'\n');
            line = 0;
        } else {
            text.push(b' ');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hir(pattern: &str) -> Hir {
        regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build().parse(pattern).unwrap()
    }

    #[test]
    fn chained_word_repetitions_thrash_and_ordinary_identifiers_do_not() {
        let managed: Vec<Hir> =
            crate::managed::definitions().iter().filter_map(|d| d.pattern.as_deref().map(hir)).collect();
        assert!(!thrashes(&managed), "the managed identifiers alone never do");
        // As a scan searches them: with the managed identifiers.
        let costly = |pattern: &str| {
            let mut with = managed.clone();
            with.push(hir(pattern));
            thrashes(&with)
        };
        let chained = format!("{}[^\\w \\n]", "\\w{1,12} ?".repeat(45));
        assert!(costly(&chained), "7.5 s per MiB when scanned");
        assert!(costly(r"(?:\w{1,40}\s?){1,44}#0"), "6.5 s per MiB");
        assert!(costly(r"(?:\w{1,10}\s?){1,10}#0"), "0.5 s per MiB");
        for ordinary in [
            r"EMP-[0-9]{6}",
            r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}",
            r"\b[a-z]{2,6}-[0-9]{2,4}\b",
            r"[a-z0-9._%+-]{1,64}@[a-z0-9.-]{1,255}\.[a-z]{2,63}",
        ] {
            assert!(!costly(ordinary), "{ordinary}");
        }
        assert!(plain_text().len() >= TEXT_LEN && plain_text() == plain_text(), "fixed");
    }
}
