//! CSV and TSV: each record becomes a line of its values, each value after its column's header
//! (`card: 4111 ...`), fed with its row, column and header. The first record is the header row
//! (row 1), scanned too.

use std::io::{self, Read};
use std::sync::Arc;

use crate::report::Place;
use crate::scanner::Scanner;

pub(crate) fn scan(scanner: &mut Scanner<'_>, reader: impl Read, delimiter: u8) -> io::Result<()> {
    let mut csv = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(reader);
    let mut headers: Vec<Arc<str>> = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut row = 0u64;
    let mut line = Vec::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("CSV row {}: {e}", row + 1))),
        }
        row += 1;
        if row == 1 {
            headers = record.iter().map(|h| Arc::from(String::from_utf8_lossy(h).trim())).collect();
        }
        for (n, value) in record.iter().enumerate() {
            let header = headers.get(n).filter(|h| !h.is_empty() && row > 1).cloned();
            line.clear();
            if let Some(header) = &header {
                line.extend_from_slice(header.as_bytes());
                line.extend_from_slice(b": ");
            }
            line.extend_from_slice(value);
            line.push(if n + 1 == record.len() { b'\n' } else { b'\t' });
            scanner.feed_at(Place::Cell { row, column: n as u64 + 1, header }, &line);
        }
    }
}
