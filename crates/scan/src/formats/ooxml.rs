//! OOXML documents (zip archives of XML parts): docx paragraphs, pptx slides' paragraphs, and
//! xlsx cells with their sheet, reference (`C7`) and column header (the sheet's first row).
//! Parts are streamed through quick-xml under the archive limits; a spreadsheet's shared strings
//! are held in memory up to `max_in_memory`.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Seek};
use std::sync::Arc;

use quick_xml::events::{BytesRef, BytesStart, Event};

use super::Walk;
use super::archive::zip_error;
use crate::report::{Place, Skip};

type Archive<'f, F> = zip::ZipArchive<&'f mut F>;

const DOCX: &str = "word/document.xml";
/// The most of a column header kept, in characters.
const MAX_HEADER: usize = 256;
const XLSX: &str = "xl/workbook.xml";
const PPTX: &str = "ppt/presentation.xml";

pub(crate) fn is_ooxml<F: Read + Seek>(archive: &Archive<'_, F>) -> bool {
    let names: Vec<&str> = archive.file_names().collect();
    names.contains(&"[Content_Types].xml") && [DOCX, XLSX, PPTX].iter().any(|part| names.contains(part))
}

/// Reads the document's text (or cells), then every other entry that is not XML markup
/// (embedded files, media) as an archive's entries are read: a secret stored inside a document
/// is found, and what cannot be read is said skipped.
pub(crate) fn scan<F: Read + Seek>(
    walk: &mut Walk<'_, '_>,
    label: &str,
    nested: bool,
    depth: u32,
    archive: &mut Archive<'_, F>,
) -> io::Result<()> {
    walk.scanner.begin(nested.then(|| label.to_owned()));
    let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    if names.iter().any(|n| n == XLSX) {
        workbook(walk, label, archive)?;
    } else {
        document(walk, label, archive, &names)?;
    }
    for index in 0..archive.len() {
        let markup = archive.name_for_index(index).is_some_and(|n| n.ends_with(".xml") || n.ends_with(".rels"));
        if !markup {
            walk.zip_entry(archive, index, label, depth)?;
        }
    }
    Ok(())
}

/// docx and pptx: the document's paragraphs, or each slide's in slide order.
fn document<F: Read + Seek>(
    walk: &mut Walk<'_, '_>,
    label: &str,
    archive: &mut Archive<'_, F>,
    names: &[String],
) -> io::Result<()> {
    let mut parts: Vec<(u64, String)> = if names.iter().any(|n| n == DOCX) {
        vec![(0, DOCX.to_owned())]
    } else {
        // Slides in their order: slide2 before slide10.
        names
            .iter()
            .filter_map(|n| {
                let number = n.strip_prefix("ppt/slides/slide")?.strip_suffix(".xml")?.parse().ok()?;
                Some((number, n.clone()))
            })
            .collect()
    };
    parts.sort();
    for (_, part) in parts {
        let place: Arc<str> = Arc::from(part.as_str());
        let outcome = open(walk, label, archive, &part).and_then(|mut xml| paragraphs(walk, &mut xml, place));
        walk.entry_outcome(format!("{label}/{part}"), outcome)?;
    }
    Ok(())
}

/// A part of the archive as an XML reader, its bytes counted against the limits.
fn open<'a, F: Read + Seek>(
    walk: &mut Walk<'_, '_>,
    label: &str,
    archive: &'a mut Archive<'_, F>,
    part: &str,
) -> io::Result<quick_xml::Reader<BufReader<impl Read + 'a>>> {
    walk.count_entry(label)?;
    let file = archive.by_name(part).map_err(zip_error)?;
    let compressed = file.compressed_size();
    let what = format!("{label}/{part}");
    let reader = walk.expansion(file, compressed, what.clone());
    Ok(quick_xml::Reader::from_reader(BufReader::new(XmlGuard { inner: reader, run: 0, what })))
}

/// The longest text or tag an XML part may hold: quick-xml holds a whole event in memory, and
/// no event reaches past the next `<`.
const MAX_XML_RUN: usize = 16 << 20;

/// Refuses a part with a run of more than [`MAX_XML_RUN`] bytes without `<`.
struct XmlGuard<R> {
    inner: R,
    run: usize,
    what: String,
}

impl<R: Read> Read for XmlGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = &buf[..n];
        // A text ends at `<`, and a tag's run to `<` covers it: `>` inside text proves nothing.
        self.run = match memchr::memrchr(b'<', read) {
            Some(last) => n - last - 1,
            None => self.run + n,
        };
        if self.run > MAX_XML_RUN {
            let mib = MAX_XML_RUN >> 20;
            return Err(super::Refused::error(format!("{}: a text or tag longer than {mib} MiB", self.what)));
        }
        Ok(n)
    }
}

/// A paragraph's text is fed in pieces of at most this much.
const FLUSH: usize = 1 << 20;

/// docx and pptx: each `<p>` paragraph's `<t>` text, fed as a line with its index.
fn paragraphs(
    walk: &mut Walk<'_, '_>,
    xml: &mut quick_xml::Reader<impl io::BufRead>,
    part: Arc<str>,
) -> io::Result<()> {
    let mut buf = Vec::new();
    let mut text = String::new();
    let (mut index, mut in_text, mut placed) = (0u64, false, false);
    // Feeds the text so far: the paragraph's first piece with its place.
    let flush = |walk: &mut Walk<'_, '_>, text: &mut String, placed: &mut bool, index: u64| {
        match *placed {
            true => walk.scanner.feed(text.as_bytes()),
            false => walk.scanner.feed_at(Place::Paragraph { part: part.clone(), index }, text.as_bytes()),
        }
        *placed = true;
        text.clear();
    };
    loop {
        if walk.scanner.exhausted() {
            return Ok(());
        }
        match xml.read_event_into(&mut buf).map_err(read_error)? {
            Event::Start(e) if e.local_name().as_ref() == b"p" => {
                text.clear();
                index += 1;
                placed = false;
            }
            Event::Start(e) if e.local_name().as_ref() == b"t" => in_text = true,
            Event::End(e) if e.local_name().as_ref() == b"t" => in_text = false,
            Event::Empty(e) if matches!(e.local_name().as_ref(), b"tab" | b"br") => text.push('\t'),
            Event::Text(t) if in_text => {
                text.push_str(&t.decode().map_err(xml_error)?);
                if text.len() > FLUSH {
                    flush(walk, &mut text, &mut placed, index);
                }
            }
            Event::GeneralRef(r) if in_text => push_ref(&mut text, &r)?,
            Event::End(e) if e.local_name().as_ref() == b"p" => {
                text.push('\n');
                flush(walk, &mut text, &mut placed, index);
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

/// xlsx: every sheet's cells, each after its column's header.
fn workbook<F: Read + Seek>(walk: &mut Walk<'_, '_>, label: &str, archive: &mut Archive<'_, F>) -> io::Result<()> {
    let has_shared = archive.file_names().any(|n| n == "xl/sharedStrings.xml");
    let shared = match has_shared {
        true => shared_strings(walk, label, archive)?,
        false => Vec::new(),
    };
    for (sheet, part) in sheets(walk, label, archive)? {
        let outcome = open(walk, label, archive, &part)
            .and_then(|mut xml| cells(walk, &mut xml, Arc::from(sheet.as_str()), &shared));
        walk.entry_outcome(format!("{label}/{part}"), outcome)?;
    }
    Ok(())
}

/// The workbook's sheets in order: (name, part), the part found through the relationships.
fn sheets<F: Read + Seek>(
    walk: &mut Walk<'_, '_>,
    label: &str,
    archive: &mut Archive<'_, F>,
) -> io::Result<Vec<(String, String)>> {
    let mut targets = HashMap::new();
    let mut xml = open(walk, label, archive, "xl/_rels/workbook.xml.rels")?;
    let mut buf = Vec::new();
    loop {
        match xml.read_event_into(&mut buf).map_err(read_error)? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"Relationship" => {
                if let (Some(id), Some(target)) = (attribute(&e, b"Id")?, attribute(&e, b"Target")?) {
                    let part = match target.strip_prefix('/') {
                        Some(absolute) => absolute.to_owned(),
                        None => format!("xl/{target}"),
                    };
                    targets.insert(id, part);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    drop(xml);
    let mut sheets = Vec::new();
    let mut xml = open(walk, label, archive, XLSX)?;
    loop {
        match xml.read_event_into(&mut buf).map_err(read_error)? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"sheet" => {
                let name = attribute(&e, b"name")?.unwrap_or_default();
                let part = attribute(&e, b"id")?.and_then(|id| targets.get(&id).cloned());
                match part {
                    Some(part) => sheets.push((name, part)),
                    None => walk.skipped.push(Skip {
                        entry: Some(format!("{label}/{XLSX}")),
                        reason: format!("sheet {name:?} names no part"),
                    }),
                }
            }
            Event::Eof => return Ok(sheets),
            _ => {}
        }
        buf.clear();
    }
}

/// The shared strings (`<si>`, each the text of its `<t>` runs), if they fit in memory.
fn shared_strings<F: Read + Seek>(
    walk: &mut Walk<'_, '_>,
    label: &str,
    archive: &mut Archive<'_, F>,
) -> io::Result<Vec<String>> {
    let limit = walk.limits.max_in_memory;
    let mut xml = open(walk, label, archive, "xl/sharedStrings.xml")?;
    let (mut strings, mut held) = (Vec::new(), 0u64);
    let (mut buf, mut in_text) = (Vec::new(), false);
    loop {
        match xml.read_event_into(&mut buf).map_err(read_error)? {
            Event::Start(e) if e.local_name().as_ref() == b"si" => {
                // Each string costs its text and its own keeping.
                held += std::mem::size_of::<String>() as u64;
                strings.push(String::new());
            }
            Event::Start(e) if e.local_name().as_ref() == b"t" => in_text = true,
            Event::End(e) if e.local_name().as_ref() == b"t" => in_text = false,
            Event::Text(t) if in_text => {
                let text = t.decode().map_err(xml_error)?;
                held += text.len() as u64;
                if let Some(last) = strings.last_mut() {
                    last.push_str(&text);
                }
            }
            Event::GeneralRef(r) if in_text => {
                if let Some(last) = strings.last_mut() {
                    held += 4;
                    push_ref(last, &r)?;
                }
            }
            Event::Eof => return Ok(strings),
            _ => {}
        }
        if held > limit {
            return Err(super::Refused::error(format!("{label}: shared strings larger than {} MiB", limit >> 20)));
        }
        buf.clear();
    }
}

/// A sheet's cells: `<c r="B7" t="s"><v>3</v></c>` (a shared string), `t="inlineStr"` with
/// `<is><t>`, or a value.
fn cells(
    walk: &mut Walk<'_, '_>,
    xml: &mut quick_xml::Reader<impl io::BufRead>,
    sheet: Arc<str>,
    shared: &[String],
) -> io::Result<()> {
    let mut headers: HashMap<String, Arc<str>> = HashMap::new();
    let (mut buf, mut value) = (Vec::new(), String::new());
    let mut cell: Option<(String, bool)> = None;
    let (mut first_row, mut row_number, mut in_value) = (None::<String>, String::new(), false);
    let (mut line, mut row_has_cells) = (String::new(), false);
    loop {
        if walk.scanner.exhausted() {
            return Ok(());
        }
        match xml.read_event_into(&mut buf).map_err(read_error)? {
            Event::Start(e) if e.local_name().as_ref() == b"row" => {
                row_number = attribute(&e, b"r")?.unwrap_or_default();
                first_row.get_or_insert_with(|| row_number.clone());
            }
            // A row's cells are one line.
            Event::End(e) if e.local_name().as_ref() == b"row" && row_has_cells => {
                row_has_cells = false;
                walk.scanner.feed(b"\n");
            }
            Event::Start(e) if e.local_name().as_ref() == b"c" => {
                let reference = attribute(&e, b"r")?.unwrap_or_default();
                let is_shared = attribute(&e, b"t")?.as_deref() == Some("s");
                cell = Some((reference, is_shared));
                value.clear();
            }
            Event::Start(e) if matches!(e.local_name().as_ref(), b"v" | b"t") => in_value = true,
            Event::End(e) if matches!(e.local_name().as_ref(), b"v" | b"t") => in_value = false,
            Event::Text(t) if in_value => value.push_str(&t.decode().map_err(xml_error)?),
            Event::GeneralRef(r) if in_value => push_ref(&mut value, &r)?,
            Event::End(e) if e.local_name().as_ref() == b"c" => {
                let Some((reference, is_shared)) = cell.take() else { continue };
                let text = match is_shared {
                    true => value.trim().parse::<usize>().ok().and_then(|i| shared.get(i)).cloned().unwrap_or_default(),
                    false => value.clone(),
                };
                if text.is_empty() {
                    continue;
                }
                let column: String = reference.chars().take_while(char::is_ascii_alphabetic).collect();
                let in_header_row = first_row.as_deref() == Some(row_number.as_str());
                if in_header_row && walk.scanner.is_clean(text.as_bytes()) {
                    let header: String = text.trim().chars().take(MAX_HEADER).collect();
                    headers.insert(column.clone(), Arc::from(header));
                }
                let header = headers.get(&column).filter(|_| !in_header_row).cloned();
                line.clear();
                if let Some(header) = &header {
                    line.push_str(header);
                    line.push_str(": ");
                }
                line.push_str(&text);
                line.push('\t');
                row_has_cells = true;
                walk.scanner
                    .feed_at(Place::SheetCell { sheet: sheet.clone(), cell: reference, header }, line.as_bytes());
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

fn attribute(e: &BytesStart<'_>, name: &[u8]) -> io::Result<Option<String>> {
    for attr in e.attributes() {
        let attr = attr.map_err(xml_error)?;
        if attr.key.local_name().as_ref() == name {
            return Ok(Some(
                attr.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(xml_error)?.into_owned(),
            ));
        }
    }
    Ok(None)
}

/// An entity (`&amp;`) or character reference (`&#233;`) in text.
fn push_ref(text: &mut String, r: &BytesRef<'_>) -> io::Result<()> {
    if let Some(c) = r.resolve_char_ref().map_err(xml_error)? {
        text.push(c);
        return Ok(());
    }
    let name = r.decode().map_err(xml_error)?;
    text.push_str(match &*name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => "",
    });
    Ok(())
}

/// A failed read of a part: a limit reached below the XML reader stays a refusal.
fn read_error(e: quick_xml::Error) -> io::Error {
    if let quick_xml::Error::Io(io) = &e
        && let Some(refused) = io.get_ref().and_then(|inner| inner.downcast_ref::<super::Refused>())
    {
        return super::Refused::error(refused.0.clone());
    }
    xml_error(e)
}

fn xml_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("XML: {e}"))
}
