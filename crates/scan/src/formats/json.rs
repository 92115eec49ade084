//! JSON and NDJSON: every string and number becomes a line `key: value`, fed with its path
//! (`$.customers[3].card`; for NDJSON with its line). A JSON document larger than
//! `max_in_memory`, or one that does not parse, is read as text; so is an NDJSON line that does
//! not parse.

use std::io::{self, BufRead, BufReader, Read};

use serde_json::Value;

use super::Walk;
use crate::report::{Place, Skip};
use crate::scanner::{MAX_NAME, Scanner, capped};

/// A whole JSON document.
pub(crate) fn document(walk: &mut Walk<'_, '_>, entry: Option<String>, mut reader: impl Read) -> io::Result<()> {
    let mut bytes = Vec::new();
    (&mut reader).take(walk.limits.max_in_memory + 1).read_to_end(&mut bytes)?;
    let parsed = match bytes.len() as u64 > walk.limits.max_in_memory {
        true => None,
        false => serde_json::from_slice::<Value>(&bytes).ok(),
    };
    walk.scanner.begin(entry.clone());
    let Some(value) = parsed else {
        let reason = if bytes.len() as u64 > walk.limits.max_in_memory {
            format!("JSON larger than {} MiB read as text", walk.limits.max_in_memory >> 20)
        } else {
            "not valid JSON: read as text".to_owned()
        };
        walk.skipped.push(Skip { entry, reason });
        walk.scanner.feed(&bytes);
        let mut buffer = vec![0; 256 * 1024];
        while !walk.scanner.exhausted() {
            match reader.read(&mut buffer)? {
                0 => break,
                n => walk.scanner.feed(&buffer[..n]),
            }
        }
        return Ok(());
    };
    leaves(&mut walk.scanner, &value, &mut "$".to_owned(), None, None);
    Ok(())
}

const MAX_LINE: u64 = 16 << 20;

/// NDJSON: one document per line.
pub(crate) fn lines(scanner: &mut Scanner<'_>, reader: impl Read) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut line = Vec::new();
    let mut number = 0u64;
    while !scanner.exhausted() {
        line.clear();
        // A line longer than this is read in pieces (each read as text).
        if (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        number += 1;
        match serde_json::from_slice::<Value>(&line) {
            Ok(value) => leaves(scanner, &value, &mut "$".to_owned(), None, Some(number)),
            Err(_) => scanner.feed_at(Place::JsonPath { path: "$".into(), line: Some(number) }, &line),
        }
    }
    Ok(())
}

/// Feeds every string and number under `value`, at `path` (extended and restored on the way).
fn leaves(scanner: &mut Scanner<'_>, value: &Value, path: &mut String, key: Option<&str>, line: Option<u64>) {
    if scanner.exhausted() {
        return;
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                leaves(scanner, item, path, key, line);
                path.truncate(len);
            }
            return;
        }
        Value::Object(map) => {
            for (name, item) in map {
                let len = path.len();
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    path.push('.');
                    path.push_str(name);
                } else {
                    path.push_str(&format!("[{}]", Value::String(name.clone())));
                }
                leaves(scanner, item, path, Some(name), line);
                path.truncate(len);
            }
            return;
        }
        Value::Bool(_) | Value::Null => return,
    };
    // A key stands before its value as a keyword, unless it holds something itself.
    let piece = match key.filter(|k| k.len() <= MAX_NAME && scanner.is_clean(k.as_bytes())) {
        Some(key) => format!("{key}: {text}\n"),
        None => format!("{text}\n"),
    };
    scanner.feed_at(Place::JsonPath { path: capped(path), line }, piece.as_bytes());
}
