//! A stream scanned in chunks of any size reports exactly what one pass over all of it reports:
//! a match across a chunk border is found once, with the same location.

use latchkey_scan::{Engine, Report, ScanConfig, Scanner};
use proptest::prelude::*;

/// Values that the engine finds, some with keywords before them.
const VALUES: &[&str] = &[
    "card 4111 1111 1111 1111",
    "ghp_Q7dK2mX9pL4vR8sT1wY6zB3nC5fH0jG2aE7u",
    "SIN: 130 456 783",
    "ada.lovelace@example.org",
    "Date of birth: 12 April 1985",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n",
    "SSN 536-22-1234",
];

/// Offset, line, column, sample and keyword of one location.
type At = (u64, u64, u64, String, bool);

fn locations(report: &Report) -> Vec<(String, u64, Vec<At>)> {
    report
        .findings
        .iter()
        .map(|f| {
            let at = f.locations.iter().map(|l| (l.offset, l.line, l.column, l.sample.clone(), l.keyword)).collect();
            (f.identifier.clone(), f.count, at)
        })
        .collect()
}

fn scan_in(engine: &Engine, data: &[u8], chunk: usize, piece: usize) -> Report {
    let mut scanner = Scanner::with_chunk(engine, chunk);
    for part in data.chunks(piece.max(1)) {
        scanner.feed(part);
    }
    scanner.finish()
}

/// Filler of `len` bytes that holds nothing sensitive.
fn filler(len: usize, seed: usize) -> String {
    let words = ["lorem ", "ipsum ", "dolor\n", "sit ", "amet, ", "42 ", "x-ray ", "\n"];
    let mut out = String::new();
    let mut i = seed;
    while out.len() < len {
        out.push_str(words[i % words.len()]);
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    out.truncate(len);
    out
}

/// `value` placed again and again so that each chunk border of 64 falls at each of its bytes
/// in turn, `around` on either side of it.
fn straddling(value: &str, around: char) -> String {
    let mut data = String::new();
    for shift in 0..value.len() {
        let target = (shift + 1) * 9 * 1024 + 64 - shift;
        data.push_str(&filler(target - data.len() - 1, shift));
        data.push(around);
        data.push_str(value);
        data.push(around);
    }
    data
}

#[test]
fn a_match_across_every_chunk_border_is_found_once() {
    let engine = Engine::new(&ScanConfig { max_locations: 1000, ..ScanConfig::default() }).unwrap();
    let card = "4111 1111 1111 1111";
    let mut data = straddling(card, ' ');
    data.push_str(&filler(10 * 1024, 99));
    let whole = scan_in(&engine, data.as_bytes(), usize::MAX / 2, data.len());
    assert_eq!(whole.findings.len(), 1);
    assert_eq!(whole.findings[0].count, card.len() as u64);
    for chunk in [1, 3, 64, 1000, 4096, 9 * 1024] {
        let chunked = scan_in(&engine, data.as_bytes(), chunk, 777);
        assert_eq!(locations(&chunked), locations(&whole), "chunk {chunk}");
    }
}

#[test]
fn keyword_gated_matches_across_a_border_are_judged_once() {
    // Found by review: a keyword-gated match accepted before the border was found again, from
    // a later start, after it.
    let engine = Engine::new(&ScanConfig { max_locations: 1000, ..ScanConfig::default() }).unwrap();
    for value in ["SIN 130 456 783 455 839", "TFN 123 456 782.555.0123", "card 4111 1111 1111 1111 1111"] {
        let data = straddling(value, '\n');
        let whole = scan_in(&engine, data.as_bytes(), usize::MAX / 2, data.len());
        for chunk in [64, 1000] {
            let chunked = scan_in(&engine, data.as_bytes(), chunk, 333);
            assert_eq!(locations(&chunked), locations(&whole), "{value:?}, chunk {chunk}");
        }
    }
}

#[test]
fn a_stream_far_larger_than_a_chunk_is_scanned_to_its_end() {
    let engine = Engine::new(&ScanConfig::default()).unwrap();
    let mut scanner = Scanner::with_chunk(&engine, 4096);
    let block = filler(1 << 20, 5);
    for _ in 0..64 {
        scanner.feed(block.as_bytes());
    }
    scanner.feed(b"\ncard 4111111111111111\n");
    let report = scanner.finish();
    assert_eq!(report.bytes, 64 * (1 << 20) + 23);
    assert_eq!(report.findings[0].locations[0].offset, 64 * (1 << 20) + 6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_chunking_reports_what_one_pass_reports(
        layout in proptest::collection::vec((0usize..VALUES.len(), 0usize..12_000), 1..8),
        chunk in 1usize..20_000,
        piece in 1usize..5_000,
    ) {
        let engine = Engine::new(&ScanConfig { max_locations: 1000, ..ScanConfig::default() }).unwrap();
        let mut data = String::new();
        for (i, (value, gap)) in layout.iter().enumerate() {
            data.push_str(&filler(*gap, i));
            data.push(' ');
            data.push_str(VALUES[*value]);
            data.push('\n');
        }
        let whole = scan_in(&engine, data.as_bytes(), usize::MAX / 2, data.len());
        let found: u64 = whole.findings.iter().map(|f| f.count).sum();
        prop_assert_eq!(found, layout.len() as u64);
        let chunked = scan_in(&engine, data.as_bytes(), chunk, piece);
        prop_assert_eq!(locations(&chunked), locations(&whole));
    }
}
