//! Custom identifiers and the allow-list, read from the same TOML tables as the server's file:
//! keywords and distance as Macie applies them, and patterns refused by name when they are
//! invalid, unbounded or too large.

use latchkey_scan::{Engine, ScanConfig};

fn config(toml_text: &str) -> ScanConfig {
    toml::from_str(toml_text).expect("the test's TOML parses")
}

fn ids(engine: &Engine, text: &str) -> Vec<(String, u64)> {
    engine.scan_bytes(text.as_bytes()).findings.iter().map(|f| (f.identifier.clone(), f.count)).collect()
}

const ACCOUNT: &str = r#"
[[custom_identifiers]]
name = "acme-account"
regex = 'XYZ-\d{11}'
keywords = ["account"]
max_match_distance = 20
severity = "High"
"#;

#[test]
fn a_custom_identifier_with_a_keyword_is_found_only_near_it() {
    let engine = Engine::new(&config(ACCOUNT)).unwrap();
    assert_eq!(ids(&engine, "Account: XYZ-12345678901\n"), vec![("acme-account".to_owned(), 1)]);
    // Too far: more than 20 bytes from the keyword's end to the match's end.
    assert!(ids(&engine, "account holder name here XYZ-12345678901\n").is_empty());
    // After the match, or no keyword at all.
    assert!(ids(&engine, "XYZ-12345678901 account\n").is_empty());
    assert!(ids(&engine, "ref XYZ-12345678901\n").is_empty());
    // Part of another word is no keyword.
    assert!(ids(&engine, "accountant XYZ-12345678901\n").is_empty());
    let report = engine.scan_bytes(b"account XYZ-12345678901");
    assert_eq!(report.finding_type().as_deref(), Some("SensitiveData:S3Object/CustomIdentifier"));
    assert_eq!(report.findings[0].severity, latchkey_scan::Severity::High);
}

#[test]
fn without_keywords_a_custom_identifier_is_found_anywhere_unless_ignored() {
    let engine = Engine::new(&config(
        r#"
[[custom_identifiers]]
name = "employee"
regex = 'EMP-\d{6}'
ignore_words = ["EMP-000000"]
"#,
    ))
    .unwrap();
    assert_eq!(ids(&engine, "EMP-123456 and EMP-654321, EMP-000000"), vec![("employee".to_owned(), 2)]);
}

#[test]
fn every_allow_list_regex_is_tried_on_the_whole_value() {
    // Found by review: the first regex that matched a prefix decided alone.
    let engine =
        Engine::new(&config("[allow_list]\nregexes = ['[a-z]{1,20}', '[a-z]{1,20}@example\\.org']\n")).unwrap();
    assert!(ids(&engine, "ada@example.org").is_empty());
    assert_eq!(ids(&engine, "ada@example.net"), vec![("EMAIL_ADDRESS".to_owned(), 1)]);
}

#[test]
fn the_allow_list_suppresses_known_test_data() {
    let engine = Engine::new(&config(
        r#"
[allow_list]
values = ["4111 1111 1111 1111"]
regexes = ['5555-5555-5555-\d{4}']
"#,
    ))
    .unwrap();
    let text = "4111 1111 1111 1111 / 5555-5555-5555-4444 / 4012888888881881";
    let report = engine.scan_bytes(text.as_bytes());
    assert_eq!(report.findings[0].count, 1);
    assert_eq!(report.findings[0].locations[0].offset, 44);
}

fn refusal(toml_text: &str) -> String {
    Engine::new(&config(toml_text)).expect_err("the configuration is refused").to_string()
}

#[test]
fn bad_patterns_are_refused_naming_the_identifier() {
    let unbounded = refusal("[[custom_identifiers]]\nname = \"greedy\"\nregex = 'ID-\\d+'\n");
    assert!(unbounded.contains("\"greedy\"") && unbounded.contains("bounded repetition"), "{unbounded}");
    let invalid = refusal("[[custom_identifiers]]\nname = \"broken\"\nregex = 'ID-(\\d{3}'\n");
    assert!(invalid.contains("\"broken\"") && invalid.contains("does not parse"), "{invalid}");
    let lookahead = refusal("[[custom_identifiers]]\nname = \"peek\"\nregex = 'ID(?=-)'\n");
    assert!(lookahead.contains("\"peek\""), "{lookahead}");
    let empty = refusal("[[custom_identifiers]]\nname = \"nothing\"\nregex = 'a{0,3}'\n");
    assert!(empty.contains("empty text"), "{empty}");
    // Nested bounded repetitions: their DFA explodes on plain text (seconds per MiB).
    let nested = refusal("[[custom_identifiers]]\nname = \"blowup\"\nregex = '(?:\\w{1,40}\\s?){1,44}#0'\n");
    assert!(nested.contains("\"blowup\"") && nested.contains("multiply to 1760"), "{nested}");
    // A large automaton without nesting.
    let huge = refusal("[[custom_identifiers]]\nname = \"wide\"\nregex = '[a-z]{1,2000}#[0-9]{1,2000}'\n");
    assert!(huge.contains("\"wide\"") && huge.contains("compiles to more than"), "{huge}");
    let long = refusal(&format!("[[custom_identifiers]]\nname = \"long\"\nregex = '{}'\n", "a".repeat(513)));
    assert!(long.contains("longer than 512"), "{long}");
    let taken = refusal("[[custom_identifiers]]\nname = \"CREDIT_CARD_NUMBER\"\nregex = 'x{3}'\n");
    assert!(taken.contains("already taken"), "{taken}");
    let keyword = refusal("[[custom_identifiers]]\nname = \"k\"\nregex = 'x{3}'\nkeywords = [\"ab\"]\n");
    assert!(keyword.contains("3-90 characters"), "{keyword}");
    let distance = refusal(
        "[[custom_identifiers]]\nname = \"d\"\nregex = 'x{3}'\nkeywords = [\"abc\"]\nmax_match_distance = 301\n",
    );
    assert!(distance.contains("1-300"), "{distance}");
    let disabled = refusal("disabled_identifiers = [\"NOT_AN_ID\"]\n");
    assert!(disabled.contains("NOT_AN_ID"), "{disabled}");
}

/// Each custom pattern is searched in the one pass, so what they cost together is bounded too:
/// the identifier that crosses the bound is named.
#[test]
fn custom_identifiers_are_bounded_together() {
    let many = |regex: &str, n: usize| {
        let tables: String =
            (0..n).map(|i| format!("[[custom_identifiers]]\nname = \"c{i}\"\nregex = '{regex}'\n")).collect();
        Engine::new(&config(&tables)).map(drop).map_err(|e| e.to_string())
    };
    // Nested a little each, too much together.
    assert!(many("(?:[A-Z0-9]{4} ?){2,7}", 7).is_ok());
    let nested = many("(?:[A-Z0-9]{4} ?){2,7}", 8).unwrap_err();
    assert!(nested.contains("\"c7\"") && nested.contains("together"), "{nested}");
    // Costly on plain text, nested or not: tried on it, as a scan would search it (`cost.rs`).
    let costly = many("(?:\\w{1,10}\\s?){1,10}#0", 1).unwrap_err();
    assert!(costly.contains("\"c0\"") && costly.contains("too costly for plain text"), "{costly}");
    let chained = many(&format!("{}[^\\w \\n]", "\\w{1,12} ?".repeat(45)), 1).unwrap_err();
    assert!(chained.contains("too costly for plain text"), "{chained}");
    assert!(many("[a-z]{1,60}#[a-z]{1,60}", 4).is_ok());
    let sized = many("[a-z]{1,60}#[a-z]{1,60}", 40).unwrap_err();
    assert!(sized.contains("compile to more than") && sized.contains("together"), "{sized}");
    assert!(many("EMP-[0-9]{6}", 100).is_ok(), "ordinary identifiers fit by the hundred");
}

#[test]
fn managed_identifiers_can_be_turned_off() {
    let engine = Engine::new(&config("disabled_identifiers = [\"EMAIL_ADDRESS\"]\n")).unwrap();
    assert!(ids(&engine, "ada@example.org").is_empty());
}
