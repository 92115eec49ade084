//! `latchkey scan`: finds sensitive data in local files and directories, offline, with the
//! server's engine and the same `[[custom_identifiers]]` and `[allow_list]` tables. Exit codes
//! for scripts: 0 clean, 1 findings, 2 an error (a file that could not be read counts).

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use latchkey_scan::formats::{self, Limits};
use latchkey_scan::{Engine, Finding, Location, Place, Report, ScanConfig, Severity, Skip};
use serde::Serialize;
use serde_json::json;

#[derive(Args)]
pub struct ScanArgs {
    /// Files and directories to scan (directories recursively; symbolic links inside them are
    /// not followed)
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// How to print the results: a table, one JSON object, or SARIF 2.1 for code-scanning tools
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// A TOML file with `[[custom_identifiers]]`, `[allow_list]`, `disabled_identifiers` and
    /// `max_locations` (the server's configuration file can be given as it is)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Sarif,
}

/// One file's result, as `--format json` prints it.
#[derive(Serialize)]
struct FileResult {
    path: String,
    findings: Vec<Finding>,
    /// Why the file was not scanned (or, for an archive past its limits, not scanned to its
    /// end), or `null`.
    skipped: Option<String>,
    /// Entries of an archive that were not read, with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped_entries: Vec<Skip>,
}

impl FileResult {
    fn unscanned(path: String, reason: String) -> Self {
        FileResult { path, findings: Vec::new(), skipped: Some(reason), skipped_entries: Vec::new() }
    }

    fn scanned(path: String, report: Report) -> Self {
        let (whole, entries): (Vec<Skip>, Vec<Skip>) = report.skipped.into_iter().partition(|s| s.entry.is_none());
        let skipped = match report.refused {
            Some(reason) => Some(format!("refused: {reason}")),
            None => whole.into_iter().next().map(|s| s.reason),
        };
        FileResult { path, findings: report.findings, skipped, skipped_entries: entries }
    }
}

pub async fn run(args: ScanArgs) -> ExitCode {
    match tokio::task::spawn_blocking(move || scan(&args)).await {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("latchkey scan: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("latchkey scan: {e}");
            ExitCode::from(2)
        }
    }
}

fn scan(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str::<ScanConfig>(&text)
                .with_context(|| format!("{} is not a valid scan configuration", path.display()))?
        }
        None => ScanConfig::default(),
    };
    let engine = Engine::new(&config).context("the scan configuration is refused")?;
    let mut files = Vec::new();
    for path in &args.paths {
        collect(path, true, &mut files);
    }
    let progress = ProgressBar::new(files.len() as u64);
    progress.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}").expect("a valid template"));
    let mut results = Vec::new();
    let mut failed = false;
    for entry in files {
        let result = match entry {
            Entry::File(path) => {
                progress.set_message(path.display().to_string());
                let outcome = scan_file(&engine, &path);
                progress.inc(1);
                match outcome {
                    Ok(report) => FileResult::scanned(shown(&path), report),
                    Err(e) => {
                        failed = true;
                        FileResult::unscanned(shown(&path), format!("cannot read: {e}"))
                    }
                }
            }
            Entry::Passed(path, reason) => FileResult::unscanned(shown(&path), reason),
            Entry::Unreadable(path, reason) => {
                failed = true;
                FileResult::unscanned(shown(&path), reason)
            }
        };
        results.push(result);
    }
    progress.finish_and_clear();
    match args.format {
        Format::Table => print_table(&results),
        Format::Json => println!("{}", serde_json::to_string_pretty(&json!({ "files": results }))?),
        Format::Sarif => println!("{}", serde_json::to_string_pretty(&sarif(&engine, &results))?),
    }
    let found = results.iter().any(|r| !r.findings.is_empty());
    Ok(ExitCode::from(if failed { 2 } else { u8::from(found) }))
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// What `collect` finds under a path.
enum Entry {
    File(PathBuf),
    /// Left alone on purpose (a symbolic link inside a directory), with the reason.
    Passed(PathBuf, String),
    /// Cannot be scanned: an error, with the reason.
    Unreadable(PathBuf, String),
}

/// The files under `path` in a stable order, and what is not scanned with the reason.
fn collect(path: &Path, given: bool, out: &mut Vec<Entry>) {
    let metadata = match if given { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) } {
        Ok(metadata) => metadata,
        Err(e) => return out.push(Entry::Unreadable(path.to_owned(), format!("cannot read: {e}"))),
    };
    if metadata.is_symlink() {
        return out.push(Entry::Passed(path.to_owned(), "symbolic link (not followed)".to_owned()));
    }
    if metadata.is_file() {
        return out.push(Entry::File(path.to_owned()));
    }
    if !metadata.is_dir() {
        return out.push(Entry::Unreadable(path.to_owned(), "not a regular file".to_owned()));
    }
    let entries = match std::fs::read_dir(path).and_then(|dir| dir.collect::<io::Result<Vec<_>>>()) {
        Ok(entries) => entries,
        Err(e) => return out.push(Entry::Unreadable(path.to_owned(), format!("cannot read: {e}"))),
    };
    let mut children: Vec<PathBuf> = entries.into_iter().map(|entry| entry.path()).collect();
    children.sort();
    for child in children {
        collect(&child, false, out);
    }
}

/// Scans a file in whatever format it is (`latchkey_scan::formats`).
fn scan_file(engine: &Engine, path: &Path) -> io::Result<Report> {
    let mut reader = BufReader::with_capacity(256 * 1024, File::open(path)?);
    formats::scan(engine, &path.to_string_lossy(), &mut reader, &Limits::default())
}

/// The table: names from the files (paths, entries, headers, samples) with their control
/// characters escaped, so that no file can write escape sequences to the terminal.
fn print_table(results: &[FileResult]) {
    println!("{:<40} {:<40} {:<8} {:>6}  FIRST AT  SAMPLE", "PATH", "IDENTIFIER", "SEVERITY", "COUNT");
    for result in results {
        let path = printable(&result.path);
        if let Some(reason) = &result.skipped {
            println!("{path:<40} skipped: {}", printable(reason));
        }
        for skip in &result.skipped_entries {
            let entry = skip.entry.as_deref().map_or_else(String::new, printable);
            println!("{path:<40} skipped {entry}: {}", printable(&skip.reason));
        }
        for finding in &result.findings {
            let first = finding.locations.first();
            let at = first.map_or_else(String::new, |l| printable(&shown_at(l)));
            let sample = first.map_or_else(String::new, |l| printable(&l.sample));
            println!(
                "{path:<40} {:<40} {:<8} {:>6}  {at:<8}  {sample}",
                finding.identifier,
                finding.severity.as_str(),
                finding.count,
            );
        }
    }
}

/// `text` with control characters (ESC, newlines) written as escapes.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// Where a location is, for the table: line:column, or the cell, path or paragraph, after the
/// archive entry if any.
fn shown_at(l: &Location) -> String {
    let at = match &l.place {
        None => format!("{}:{}", l.line, l.column),
        Some(Place::Cell { row, column, .. }) => format!("row {row} column {column}"),
        Some(Place::SheetCell { sheet, cell, .. }) => format!("{sheet}!{cell}"),
        Some(Place::JsonPath { path, line: Some(line) }) => format!("line {line} {path}"),
        Some(Place::JsonPath { path, line: None }) => path.clone(),
        Some(Place::Paragraph { part, index }) => format!("{part} paragraph {index}"),
    };
    match &l.entry {
        Some(entry) => format!("{entry}: {at}"),
        None => at,
    }
}

/// SARIF's level for a severity.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// The results as a SARIF 2.1.0 log: one rule per identifier, one result per location kept.
fn sarif(engine: &Engine, results: &[FileResult]) -> serde_json::Value {
    let rules: Vec<_> = engine
        .identifiers()
        .iter()
        .map(|identifier| {
            json!({
                "id": identifier.id,
                "shortDescription": { "text": format!("{} ({})", identifier.id, identifier.category.as_str()) },
                "defaultConfiguration": { "level": level(identifier.severity) },
                "properties": { "category": identifier.category.as_str(), "severity": identifier.severity.as_str() },
            })
        })
        .collect();
    let mut sarif_results = Vec::new();
    for result in results {
        for finding in &result.findings {
            for location in &finding.locations {
                // Lines and columns are the file's own only in plain text; a cell, a JSON path or
                // an archive entry goes in the properties instead.
                let plain = location.place.is_none() && location.entry.is_none();
                let mut physical = json!({ "artifactLocation": { "uri": result.path } });
                if plain {
                    physical["region"] = json!({
                        "startLine": location.line, "startColumn": location.column, "byteOffset": location.offset,
                    });
                }
                sarif_results.push(json!({
                    "ruleId": finding.identifier,
                    "level": level(finding.severity),
                    "message": { "text": format!("{} found ({} in this file): {}", finding.identifier, finding.count, location.sample) },
                    "locations": [{ "physicalLocation": physical }],
                    "properties": { "entry": location.entry, "place": location.place },
                }));
            }
        }
    }
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": { "driver": {
                "name": "latchkey-scan",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": sarif_results,
        }],
    })
}
