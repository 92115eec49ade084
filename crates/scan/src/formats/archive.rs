//! gzip streams and zip archives, read under the walk's [`Limits`](super::Limits): depth,
//! entries, expansion ratio and bytes expanded in all. Every decompressed byte passes through
//! [`Expansion`], so a bomb is refused as it expands, whatever its headers claim. Entries are
//! named `archive.zip/dir/file.csv` (nested archives joined the same way); encrypted entries and
//! directories are skipped, the former with the reason.

use std::cell::Cell;
use std::io::{self, Read, Seek};
use std::rc::Rc;

use super::{Refused, Walk, ooxml};
use crate::report::Skip;

/// Slack over the ratio: a small stream may expand more than `max_ratio` times.
const SLACK: u64 = 1 << 20;

impl Walk<'_, '_> {
    pub(crate) fn gzip(
        &mut self,
        name: &str,
        entry: Option<String>,
        reader: &mut dyn Read,
        depth: u32,
    ) -> io::Result<()> {
        let label = entry.clone().unwrap_or_else(|| name.to_owned());
        self.deeper(depth, &label)?;
        let read = Rc::new(Cell::new(0));
        let decoder = flate2::read::MultiGzDecoder::new(Counted { inner: reader, count: read.clone() });
        let mut expansion = self.expanding(decoder, Allowance::Ratio { ratio: self.limits.max_ratio, read }, label);
        let inner_name = name.strip_suffix(".gz").or_else(|| name.strip_suffix(".GZ")).unwrap_or(name);
        self.stream(inner_name, entry, &mut expansion, depth + 1)
    }

    pub(crate) fn zip(
        &mut self,
        name: &str,
        entry: Option<String>,
        file: &mut (impl Read + Seek),
        depth: u32,
    ) -> io::Result<()> {
        let label = entry.clone().unwrap_or_else(|| name.to_owned());
        let mut archive = match zip::ZipArchive::new(file) {
            Ok(archive) => archive,
            Err(e) => {
                self.skipped.push(Skip { entry, reason: format!("not a readable zip archive: {e}") });
                return Ok(());
            }
        };
        self.deeper(depth, &label)?;
        if ooxml::is_ooxml(&archive) {
            return ooxml::scan(self, &label, entry.is_some(), depth, &mut archive);
        }
        for index in 0..archive.len() {
            self.zip_entry(&mut archive, index, &label, depth)?;
        }
        Ok(())
    }

    /// Reads the archive's entry `index` as a stream of its own (skipping a directory; an
    /// encrypted, damaged or unreadable entry said skipped with the reason).
    pub(crate) fn zip_entry<F: Read + Seek>(
        &mut self,
        archive: &mut zip::ZipArchive<F>,
        index: usize,
        label: &str,
        depth: u32,
    ) -> io::Result<()> {
        if self.scanner.exhausted() {
            return Ok(());
        }
        let (path, encrypted, is_dir, compressed) = {
            let raw = archive.by_index_raw(index).map_err(zip_error)?;
            (raw.name().to_owned(), raw.encrypted(), raw.is_dir(), raw.compressed_size())
        };
        if is_dir {
            return Ok(());
        }
        let inner = format!("{label}/{path}");
        self.count_entry(label)?;
        if encrypted {
            self.skipped.push(Skip { entry: Some(inner), reason: "encrypted: not read".to_owned() });
            return Ok(());
        }
        let outcome = match archive.by_index(index) {
            Ok(reader) => {
                let mut expansion = self.expansion(reader, compressed, inner.clone());
                self.stream(&path, Some(inner.clone()), &mut expansion, depth + 1)
            }
            Err(e) => Err(zip_error(e)),
        };
        self.entry_outcome(inner, outcome)
    }

    /// An archive entry of `compressed` bytes, as it expands, refused past the limits.
    pub(crate) fn expansion<R: Read>(&self, inner: R, compressed: u64, what: String) -> impl Read + use<R> {
        let allowed = compressed.saturating_mul(self.limits.max_ratio).saturating_add(SLACK);
        self.expanding(inner, Allowance::Fixed(allowed), what)
    }

    fn expanding<R: Read>(&self, inner: R, allowance: Allowance, what: String) -> Expansion<R> {
        Expansion {
            inner,
            out: 0,
            allowance,
            ratio: self.limits.max_ratio,
            expanded: self.expanded.clone(),
            max_expanded: self.limits.max_expanded,
            what,
        }
    }

    /// Refuses an archive deeper than allowed.
    fn deeper(&self, depth: u32, label: &str) -> io::Result<()> {
        if depth >= self.limits.max_depth {
            return Err(Refused::error(format!(
                "{label}: archives nested more than {} deep are not expanded",
                self.limits.max_depth
            )));
        }
        Ok(())
    }

    pub(crate) fn count_entry(&mut self, label: &str) -> io::Result<()> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(Refused::error(format!("{label}: more than {} archive entries", self.limits.max_entries)));
        }
        Ok(())
    }
}

pub(crate) fn zip_error(e: zip::result::ZipError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zip: {e}"))
}

/// Counts the bytes read through it, where an [`Expansion`] can see them.
struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// How many decompressed bytes a stream may yield.
enum Allowance {
    /// A zip entry: its compressed size times the ratio.
    Fixed(u64),
    /// A gzip stream: the compressed bytes read so far times the ratio.
    Ratio { ratio: u64, read: Rc<Cell<u64>> },
}

/// Decompressed bytes, refused past the allowance (the ratio) or past what the whole file may
/// expand to (`expanded` counts every archive's bytes of the file).
struct Expansion<R> {
    inner: R,
    out: u64,
    allowance: Allowance,
    ratio: u64,
    expanded: Rc<Cell<u64>>,
    max_expanded: u64,
    what: String,
}

impl<R: Read> Read for Expansion<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        self.expanded.set(self.expanded.get() + n as u64);
        let allowed = match &self.allowance {
            Allowance::Fixed(allowed) => *allowed,
            Allowance::Ratio { ratio, read } => read.get().saturating_mul(*ratio).saturating_add(SLACK),
        };
        if self.out > allowed {
            let (what, ratio) = (&self.what, self.ratio);
            return Err(Refused::error(format!(
                "{what}: expands more than {ratio} times its compressed size (a bomb)"
            )));
        }
        if self.expanded.get() > self.max_expanded {
            let gib = self.max_expanded >> 30;
            return Err(Refused::error(format!("{}: the file expands to more than {gib} GiB", self.what)));
        }
        Ok(n)
    }
}
