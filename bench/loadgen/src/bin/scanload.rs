//! `scanload`: the scanner engine on its own, for `bench/scan.sh`. `scanload patterns` prints the
//! managed identifiers' everywhere-patterns, one per line, as ripgrep reads them (`-f`), with
//! Unicode off as the engine compiles them; `scanload scan FILE` scans a file with every managed
//! identifier, checks on, on the calling thread, and prints bytes, seconds and matches as JSON.

use std::fs::File;
use std::time::Instant;

use clap::{Parser, Subcommand};
use latchkey_scan::{Engine, ScanConfig};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Patterns {
        /// Only the patterns that cannot match a newline (for ripgrep's line mode).
        #[arg(long)]
        single_line: bool,
    },
    Scan {
        file: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Patterns { single_line } => {
            for definition in latchkey_scan::managed::definitions() {
                let Some(pattern) = definition.pattern else { continue };
                let multi_line = pattern.contains(r"\n") || pattern.contains(r"\s");
                if !(single_line && multi_line) {
                    println!("(?-u){pattern}");
                }
            }
        }
        Command::Scan { file } => {
            let engine = Engine::new(&ScanConfig::default())?;
            let started = Instant::now();
            let report = engine.scan_reader(File::open(file)?)?;
            let seconds = started.elapsed().as_secs_f64();
            let matches: u64 = report.findings.iter().map(|f| f.count).sum();
            println!("{}", serde_json::json!({ "bytes": report.bytes, "seconds": seconds, "matches": matches }));
        }
    }
    Ok(())
}
