//! CSV and TSV: each record becomes a line of its values, each value after its column's header
//! (`card: 4111 ...`), fed with its row, column and header. The first record is the header row
//! (row 1), scanned too. Parsed with csv-core into a fixed buffer, so that a field of any length
//! (a quoted field never closed) streams through in bounded memory.

use std::io::{self, Read};
use std::sync::Arc;

use csv_core::ReadFieldResult;

use crate::report::Place;
use crate::scanner::Scanner;

/// The most of a header kept (as a keyword and in locations).
const MAX_HEADER: usize = 256;

pub(crate) fn scan(scanner: &mut Scanner<'_>, mut reader: impl Read, delimiter: u8) -> io::Result<()> {
    let mut csv = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    let (mut input, mut output) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let (mut start, mut end, mut eof) = (0, 0, false);
    let mut headers: Vec<Arc<str>> = Vec::new();
    let mut header_field = Vec::new();
    let (mut row, mut column, mut in_field) = (1u64, 0usize, false);
    while !scanner.exhausted() {
        if start == end && !eof {
            end = read_some(&mut reader, &mut input)?;
            start = 0;
            eof = end == 0;
        }
        let (result, read, written) = csv.read_field(&input[start..end], &mut output);
        start += read;
        if written > 0 || matches!(result, ReadFieldResult::Field { .. }) {
            if !in_field {
                in_field = true;
                let header = headers.get(column).filter(|h| !h.is_empty() && row > 1).cloned();
                let mut prefix = Vec::new();
                if let Some(header) = &header {
                    prefix.extend_from_slice(header.as_bytes());
                    prefix.extend_from_slice(b": ");
                }
                scanner.feed_at(Place::Cell { row, column: column as u64 + 1, header }, &prefix);
            }
            scanner.feed(&output[..written]);
            if row == 1 && header_field.len() < MAX_HEADER {
                header_field.extend_from_slice(&output[..written.min(MAX_HEADER - header_field.len())]);
            }
        }
        match result {
            ReadFieldResult::InputEmpty | ReadFieldResult::OutputFull => {}
            ReadFieldResult::Field { record_end } => {
                scanner.feed(if record_end { b"\n" } else { b"\t" });
                if row == 1 {
                    // A header that holds something itself (a file without a header row) is no
                    // keyword and no name for the column.
                    let clean = scanner.is_clean(&header_field);
                    let header =
                        if clean { String::from_utf8_lossy(&header_field).trim().to_owned() } else { String::new() };
                    headers.push(Arc::from(header));
                    header_field.clear();
                }
                in_field = false;
                column += 1;
                if record_end {
                    (row, column) = (row + 1, 0);
                }
            }
            ReadFieldResult::End => return Ok(()),
        }
    }
    Ok(())
}

fn read_some(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buffer) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
