//! Formats: CSV/TSV cells with headers as keywords, JSON paths, NDJSON lines, gzip, zip archives
//! (nested, encrypted entries skipped, bombs refused), docx paragraphs, pptx slides, xlsx cells;
//! PDF and binary content skipped with the reason.

use std::io::{Cursor, Write};

use latchkey_scan::formats::{self, Limits};
use latchkey_scan::{Engine, Place, Report, ScanConfig};
use zip::write::SimpleFileOptions;

const CARD: &str = "4111 1111 1111 1111";

fn engine() -> Engine {
    Engine::new(&ScanConfig::default()).unwrap()
}

fn scan_as(name: &str, bytes: &[u8]) -> Report {
    scan_with(name, bytes, &Limits::default())
}

fn scan_with(name: &str, bytes: &[u8], limits: &Limits) -> Report {
    formats::scan(&engine(), name, &mut Cursor::new(bytes.to_vec()), limits).unwrap()
}

fn places(report: &Report, identifier: &str) -> Vec<(Option<String>, Option<Place>)> {
    let finding = report.findings.iter().find(|f| f.identifier == identifier).unwrap_or_else(|| {
        panic!("no {identifier} in {:?}", report.findings.iter().map(|f| &f.identifier).collect::<Vec<_>>())
    });
    finding.locations.iter().map(|l| (l.entry.clone(), l.place.clone())).collect()
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        zip.start_file(*name, SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn gzip_of(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn csv_locations_are_cells_and_headers_are_keywords() {
    // A bare 9-digit SSN is keyword-gated: found under its column's header, not elsewhere.
    let csv = "name,ssn,note\nAda,\"536228726\",\"card, \"\"quoted\"\"\"\nBob,536 22 8727,x\n";
    let report = scan_as("people.csv", csv.as_bytes());
    assert!(scan_as("people.csv", b"name,id\nAda,536228726\n").findings.is_empty());
    let header = |h: &str| Some(h.into());
    assert_eq!(
        places(&report, "USA_SOCIAL_SECURITY_NUMBER"),
        [
            (None, Some(Place::Cell { row: 2, column: 2, header: header("ssn") })),
            (None, Some(Place::Cell { row: 3, column: 2, header: header("ssn") })),
        ]
    );
    let tsv = format!("who\tcard\nAda\t{CARD}\n");
    assert_eq!(
        places(&scan_as("x.TSV", tsv.as_bytes()), "CREDIT_CARD_NUMBER"),
        [(None, Some(Place::Cell { row: 2, column: 2, header: header("card") }))]
    );
}

#[test]
fn json_locations_are_paths_and_ndjson_ones_have_lines() {
    let doc =
        format!(r#"{{"customers": [{{"name": "Ada"}}, {{"name": "Bob", "card": "{CARD}"}}], "odd key": "{CARD}"}}"#);
    let report = scan_as("export.json", doc.as_bytes());
    let paths: Vec<_> = places(&report, "CREDIT_CARD_NUMBER").into_iter().map(|(_, p)| p.unwrap()).collect();
    assert_eq!(
        paths,
        [
            Place::JsonPath { path: "$.customers[1].card".into(), line: None },
            Place::JsonPath { path: "$[\"odd key\"]".into(), line: None },
        ]
    );
    let lines = format!("{{\"a\": 1}}\n{{\"card\": \"{CARD}\"}}\nnot json {CARD}\n");
    let report = scan_as("events.ndjson", lines.as_bytes());
    assert_eq!(
        places(&report, "CREDIT_CARD_NUMBER"),
        [
            (None, Some(Place::JsonPath { path: "$.card".into(), line: Some(2) })),
            (None, Some(Place::JsonPath { path: "$".into(), line: Some(3) })),
        ]
    );
    let broken = scan_as("broken.json", format!("{{\"card\": \"{CARD}\"").as_bytes());
    assert_eq!(broken.findings[0].count, 1, "invalid JSON is read as text");
    assert!(broken.skipped[0].reason.contains("not valid JSON"), "{:?}", broken.skipped);
}

#[test]
fn gzip_and_nested_zips_are_read_with_entry_names() {
    let inner = zip_of(&[("cards.csv", format!("card\n{CARD}\n").as_bytes())]);
    let outer = zip_of(&[
        ("docs/readme.txt", b"nothing here"),
        ("docs/inner.zip", &inner),
        ("logs/app.log.gz", &gzip_of(format!("paid with {CARD}\n").as_bytes())),
        ("photo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
    ]);
    let report = scan_as("bundle.zip", &outer);
    let found = places(&report, "CREDIT_CARD_NUMBER");
    let entries: Vec<_> = found.iter().map(|(entry, _)| entry.clone().unwrap()).collect();
    assert_eq!(entries, ["bundle.zip/docs/inner.zip/cards.csv", "bundle.zip/logs/app.log.gz"]);
    assert_eq!(found[0].1, Some(Place::Cell { row: 2, column: 1, header: Some("card".into()) }));
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert_eq!(report.skipped[0].entry.as_deref(), Some("bundle.zip/photo.png"));
    assert!(report.skipped[0].reason.contains("binary"));
    assert!(report.refused.is_none());

    let gz = scan_as("dump.csv.gz", &gzip_of(format!("card\n{CARD}\n").as_bytes()));
    assert_eq!(
        places(&gz, "CREDIT_CARD_NUMBER")[0].1,
        Some(Place::Cell { row: 2, column: 1, header: Some("card".into()) })
    );
}

#[test]
fn bombs_and_deep_nesting_are_refused_with_the_reason() {
    // 64 MiB of one letter compress about a thousand times: past the ratio, refused as it
    // expands. (Zeros would be skipped as binary after their first 8 KiB, never expanded.)
    let zeros = vec![b'a'; 64 << 20];
    let bomb = zip_of(&[("before.txt", format!("{CARD}\n").as_bytes()), ("zeros.txt", &zeros)]);
    assert!(bomb.len() < 1 << 20);
    let report = scan_as("bomb.zip", &bomb);
    let refused = report.refused.as_deref().unwrap();
    assert!(refused.contains("bomb.zip/zeros.txt") && refused.contains("100 times"), "{refused}");
    assert_eq!(report.findings[0].count, 1, "what came before the bomb is still reported");
    let gz = scan_as("zeros.gz", &gzip_of(&zeros));
    assert!(gz.refused.unwrap().contains("100 times"));

    let mut nested = zip_of(&[("deep.txt", format!("{CARD}\n").as_bytes())]);
    for level in 0..3 {
        nested = zip_of(&[(&format!("level{level}.zip"), &nested)]);
    }
    let report = scan_as("deep.zip", &nested);
    assert!(report.refused.unwrap().contains("nested more than 3 deep"));

    let many: Vec<(String, Vec<u8>)> = (0..20).map(|n| (format!("f{n}.txt"), b"x".to_vec())).collect();
    let many: Vec<(&str, &[u8])> = many.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let limits = Limits { max_entries: 10, ..Limits::default() };
    assert!(scan_with("many.zip", &zip_of(&many), &limits).refused.unwrap().contains("more than 10 archive entries"));
}

#[test]
fn pdf_and_binary_content_are_skipped_with_the_reason() {
    let pdf = scan_as("statement.pdf", b"%PDF-1.7\n...");
    assert!(pdf.findings.is_empty() && pdf.skipped[0].reason.contains("PDF"));
    assert_eq!(pdf.skipped[0].entry, None);
    let binary = scan_as("data.bin", format!("\0\x01{CARD}").as_bytes());
    assert!(binary.findings.is_empty() && binary.skipped[0].reason.contains("NUL"));
}

/// A minimal OOXML package: `[Content_Types].xml` and the given parts.
fn ooxml(parts: &[(&str, &str)]) -> Vec<u8> {
    let mut entries: Vec<(&str, &[u8])> = vec![("[Content_Types].xml", b"<Types/>")];
    entries.extend(parts.iter().map(|(name, xml)| (*name, xml.as_bytes())));
    zip_of(&entries)
}

#[test]
fn docx_and_pptx_text_is_read_by_paragraph() {
    let docx = ooxml(&[(
        "word/document.xml",
        &format!(
            r#"<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>Hello</w:t></w:r></w:p>
            <w:p><w:r><w:t>card </w:t></w:r><w:r><w:t>{}</w:t></w:r><w:r><w:t xml:space="preserve">{} &amp; more</w:t></w:r></w:p></w:body></w:document>"#,
            &CARD[..9],
            &CARD[9..]
        ),
    )]);
    let report = scan_as("letter.docx", &docx);
    assert_eq!(
        places(&report, "CREDIT_CARD_NUMBER"),
        [(None, Some(Place::Paragraph { part: "word/document.xml".into(), index: 2 }))]
    );
    let slide =
        |text: &str| format!(r#"<p:sld xmlns:a="a" xmlns:p="p"><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:sld>"#);
    let pptx = ooxml(&[
        ("ppt/presentation.xml", "<p:presentation/>"),
        ("ppt/slides/slide10.xml", &slide(&format!("card {CARD}"))),
        ("ppt/slides/slide2.xml", &slide("jane.doe@example.org")),
    ]);
    let report = scan_as("deck.pptx", &pptx);
    assert_eq!(
        places(&report, "EMAIL_ADDRESS")[0].1,
        Some(Place::Paragraph { part: "ppt/slides/slide2.xml".into(), index: 1 })
    );
    assert_eq!(
        places(&report, "CREDIT_CARD_NUMBER")[0].1,
        Some(Place::Paragraph { part: "ppt/slides/slide10.xml".into(), index: 1 })
    );
}

#[test]
fn xlsx_cells_are_located_by_sheet_reference_and_header() {
    let xlsx = ooxml(&[
        (
            "xl/workbook.xml",
            r#"<workbook><sheets><sheet name="Customers" sheetId="1" r:id="rId1" xmlns:r="r"/></sheets></workbook>"#,
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<Relationships><Relationship Id="rId1" Target="worksheets/sheet1.xml"/></Relationships>"#,
        ),
        (
            "xl/sharedStrings.xml",
            r#"<sst><si><t>name</t></si><si><t>card</t></si><si><t>Ada</t></si><si><r><t>4111 1111 </t></r><r><t>1111 1111</t></r></si></sst>"#,
        ),
        (
            "xl/worksheets/sheet1.xml",
            r#"<worksheet><sheetData>
              <row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>
              <row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row>
              <row r="3"><c r="A3" t="inlineStr"><is><t>Bob</t></is></c><c r="B3"><v>5555555555554444</v></c></row>
            </sheetData></worksheet>"#,
        ),
    ]);
    let report = scan_as("customers.xlsx", &xlsx);
    let cell =
        |cell: &str| Place::SheetCell { sheet: "Customers".into(), cell: cell.into(), header: Some("card".into()) };
    assert_eq!(places(&report, "CREDIT_CARD_NUMBER"), [(None, Some(cell("B2"))), (None, Some(cell("B3")))]);
}

/// Letters that do not compress a hundred times, so that an archive of them is not refused as a
/// bomb.
fn letters(n: usize) -> String {
    let mut seed = 7u32;
    (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + (seed >> 16) as u8 % 26)
        })
        .collect()
}

#[test]
fn fields_and_texts_of_any_length_stream_or_are_refused() {
    // A quoted field far longer than the parser's buffer, never closed: read in pieces.
    let long = format!("note,other\n\"{}{CARD} and on", "x ".repeat(200_000));
    let report = scan_as("notes.csv", long.as_bytes());
    assert_eq!(
        places(&report, "CREDIT_CARD_NUMBER"),
        [(None, Some(Place::Cell { row: 2, column: 1, header: Some("note".into()) }))]
    );
    // quick-xml holds a whole text in memory: one longer than 16 MiB is refused, not read.
    let text = letters(17 << 20);
    let docx = ooxml(&[("word/document.xml", &format!("<w:document><w:p><w:t>{text}</w:t></w:p></w:document>"))]);
    let refused = scan_as("huge.docx", &docx).refused.unwrap();
    assert!(refused.contains("huge.docx/word/document.xml") && refused.contains("16 MiB"), "{refused}");
    // A paragraph of many runs is fed in pieces; its place stays.
    let runs: String = (0..400).map(|_| format!("<w:r><w:t>{}</w:t></w:r>", letters(5000))).collect();
    let docx = ooxml(&[(
        "word/document.xml",
        &format!("<w:document><w:p>{runs}<w:r><w:t>card {CARD}</w:t></w:r></w:p></w:document>"),
    )]);
    let report = scan_as("long.docx", &docx);
    assert_eq!(report.refused, None);
    assert_eq!(
        places(&report, "CREDIT_CARD_NUMBER")[0].1,
        Some(Place::Paragraph { part: "word/document.xml".into(), index: 1 })
    );
}

#[test]
fn names_that_hold_secrets_are_redacted_and_no_keyword() {
    // No header row: the first row's card is no header, and never shown whole.
    let csv = format!("{CARD},Ada\n5555 5555 5555 4444,Bob\n");
    let report = scan_as("cards.csv", csv.as_bytes());
    let cards = report.findings.iter().find(|f| f.identifier == "CREDIT_CARD_NUMBER").unwrap();
    assert_eq!(cards.count, 2, "each card once: a header is not put before values when it holds one");
    assert!(cards.locations.iter().all(|l| matches!(&l.place, Some(Place::Cell { header: None, .. }))));
    // A JSON key that is a token: the path shows it redacted.
    let token = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5";
    let doc = format!(r#"{{"tokens": {{"{token}": {{"owner": "jane.doe@example.org"}}}}}}"#);
    let report = scan_as("t.json", doc.as_bytes());
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains(token), "{text}");
    assert!(report.findings.iter().any(|f| f.identifier == "EMAIL_ADDRESS"));
    // A file named after a secret, inside an archive: the entry name is redacted too.
    let zip = zip_of(&[(&format!("keys/{token}.txt"), format!("card {CARD}\n").as_bytes()), ("x.bin", b"\0\0")]);
    let text = serde_json::to_string(&scan_as("k.zip", &zip)).unwrap();
    assert!(!text.contains(token) && !text.contains(CARD), "{text}");
}

#[test]
fn a_document_hides_nothing_in_its_other_entries() {
    let docx = ooxml(&[
        ("word/document.xml", "<w:document><w:p><w:r><w:t>Hello</w:t></w:r></w:p></w:document>"),
        ("secrets/notes.txt", &format!("card {CARD}\n")),
        ("word/media/image1.png", "\u{89}PNG\r\n\u{1a}\n\0\0"),
    ]);
    let report = scan_as("letter.docx", &docx);
    assert_eq!(places(&report, "CREDIT_CARD_NUMBER")[0].0.as_deref(), Some("letter.docx/secrets/notes.txt"));
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(report.skipped[0].entry.as_deref().unwrap().ends_with("word/media/image1.png"));
}

#[test]
fn decoded_text_is_bounded_by_the_files_size_and_damage_keeps_what_was_read() {
    // One long string in many cells: the text decoded is bounded, and the scan refused.
    let long = letters(1 << 20);
    let cells: String = (1..=2000).map(|r| format!(r#"<row r="{r}"><c r="A{r}" t="s"><v>0</v></c></row>"#)).collect();
    let xlsx = ooxml(&[
        ("xl/workbook.xml", r#"<workbook><sheets><sheet name="S" r:id="rId1" xmlns:r="r"/></sheets></workbook>"#),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<Relationships><Relationship Id="rId1" Target="worksheets/sheet1.xml"/></Relationships>"#,
        ),
        ("xl/sharedStrings.xml", &format!("<sst><si><t>{long}</t></si></sst>")),
        ("xl/worksheets/sheet1.xml", &format!("<worksheet><sheetData>{cells}</sheetData></worksheet>")),
    ]);
    let started = std::time::Instant::now();
    let report = scan_as("amplified.xlsx", &xlsx);
    assert!(report.refused.as_deref().unwrap_or_default().contains("decodes to more than"), "{:?}", report.refused);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    // A gzip with garbage after its member: what was read stands, the rest is said skipped.
    let mut gz = gzip_of(format!("paid with {CARD}\n").as_bytes());
    gz.extend_from_slice(b"\x1f\x8bgarbage!");
    let report = scan_as("broken.log.gz", &gz);
    assert_eq!(report.findings.len(), 1);
    assert!(report.skipped[0].reason.starts_with("not read to its end"), "{:?}", report.skipped);
    // A million tiny JSON values under a long key: places stay few and short.
    let key = "k".repeat(100_000);
    let doc = format!(r#"{{"{key}": {{"a": [{}], "card": "{CARD}"}}}}"#, vec!["0"; 200_000].join(","));
    let report = scan_as("wide.json", doc.as_bytes());
    let Some(Place::JsonPath { path, .. }) = &places(&report, "CREDIT_CARD_NUMBER")[0].1 else { panic!() };
    assert!(path.len() <= 260 && path.ends_with('…'), "{}", path.len());
}

#[test]
fn a_zip_after_other_bytes_is_read_from_its_end() {
    // A self-extracting archive or data put before a zip: unzip reads it from its end.
    let mut prefixed = b"#!/bin/sh\necho self-extracting\nexit 0\n".repeat(300);
    prefixed.extend(zip_of(&[("secrets/cards.txt", format!("card {CARD}\n").as_bytes())]));
    let report = scan_as("installer.sh", &prefixed);
    assert_eq!(places(&report, "CREDIT_CARD_NUMBER")[0].0.as_deref(), Some("installer.sh/secrets/cards.txt"));
    // Text that merely holds the end record's signature stays text.
    let text = format!("the end record starts PK\x05\x06; card {CARD}\n");
    assert_eq!(places(&scan_as("notes.txt", text.as_bytes()), "CREDIT_CARD_NUMBER"), [(None, None)]);
}
