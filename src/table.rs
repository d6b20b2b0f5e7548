//! Lookup tables: `/etc/mail/aliases`, `virtusertable`, `mailertable`,
//! `access`, compiled into a memory-mapped index so that a lookup never
//! parses the text at delivery time.
//!
//! ## Text formats
//!
//! * [`Syntax::Aliases`] — aliases(5), see [`crate::aliases`]; a duplicate
//!   name warns and the last definition wins.
//! * [`Syntax::Makemap`] — sendmail's `makemap` input: `key<white space>value`
//!   per line, `#` comment lines, blank lines ignored; keys lower-cased; a
//!   duplicate key is an error and the first definition wins.
//!
//! ## The index, `NAME.mrdb`, next to `NAME`
//!
//! Replaced only by `rename(2)` (written to a temporary file, `fsync`ed,
//! renamed), so a process that has it mapped never sees it change.
//! Little-endian:
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0  | 8 | magic `MRDB0002` (`0001`: aliases names kept their quotes) |
//! | 8  | 8 | size of the text file it was built from |
//! | 16 | 8 | its mtime, seconds |
//! | 24 | 4 | its mtime, nanoseconds |
//! | 28 | 4 | number of slots (a power of two) |
//! | 32 | 8 | its inode |
//! | 40 | 8 | its device |
//! | 48 | 4 | number of records |
//! | 52 | 4 | syntax (1 aliases, 2 makemap) |
//! | 64 | 8 × slots | open-addressing slots: 4 bytes of the key's FNV-1a hash, 4 bytes record offset + 1 (0 = empty) |
//! | …  | … | records: key length (4), value length (4), line (4), key, value |
//!
//! ## Staleness
//!
//! An admin edits the text and expects that to be enough.  An index whose
//! recorded size, mtime or inode differ from the text file is out of date:
//! a process that may write the directory rebuilds it at once; any other
//! reads the text file itself until someone rebuilds, and logs that it did.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::log;

/// The format and the keying rules: an index built under other rules (an
/// older mailroom) is rebuilt as a stale one is, never trusted.
const MAGIC: &[u8; 8] = b"MRDB0002";
const HEADER: usize = 64;

/// How a table's text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Aliases,
    Makemap,
}

impl Syntax {
    fn code(self) -> u32 {
        match self {
            Syntax::Aliases => 1,
            Syntax::Makemap => 2,
        }
    }
}

/// One entry of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A problem in a table's text, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub text: String,
    pub warning: bool,
}

/// A parsed text file: the effective entries and what was wrong.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
}

/// Parse a table's text: the effective entries (a duplicate resolved by the
/// syntax's rule) and every problem.
pub fn parse(syntax: Syntax, text: &[u8]) -> Parsed {
    let raw = parse_raw(syntax, text);
    let mut problems = raw.problems;
    let mut pos: crate::fasthash::FxHashMap<&str, usize> = Default::default();
    pos.reserve(raw.entries.len());
    let mut keep = vec![true; raw.entries.len()];
    for (i, e) in raw.entries.iter().enumerate() {
        if let Some(prev) = pos.insert(&e.key, i) {
            match syntax {
                Syntax::Aliases => {
                    keep[prev] = false;
                    problems.push(crate::aliases::duplicate_warning(&e.key, e.line).into());
                }
                Syntax::Makemap => {
                    keep[i] = false;
                    pos.insert(&raw.entries[prev].key, prev);
                    problems.push(duplicate_key(&e.key, e.line));
                }
            }
        }
    }
    problems.sort_by_key(|p| p.line);
    let entries = raw
        .entries
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(e, _)| e.clone())
        .collect();
    Parsed { entries, problems }
}

/// Every entry in file order, and the syntax problems (not duplicates).
fn parse_raw(syntax: Syntax, text: &[u8]) -> Parsed {
    match syntax {
        Syntax::Aliases => {
            let p = crate::aliases::parse_entries(text);
            Parsed {
                entries: p
                    .entries
                    .into_iter()
                    .map(|e| Entry {
                        key: e.name,
                        value: e.value,
                        line: e.line,
                    })
                    .collect(),
                problems: p.problems.into_iter().map(Problem::from).collect(),
            }
        }
        Syntax::Makemap => parse_makemap(text),
    }
}

impl From<crate::aliases::Problem> for Problem {
    fn from(x: crate::aliases::Problem) -> Problem {
        Problem {
            line: x.line,
            text: x.text,
            warning: x.warning,
        }
    }
}

fn duplicate_key(key: &str, line: usize) -> Problem {
    Problem {
        line,
        text: format!("key {key}: duplicate key"),
        warning: false,
    }
}

/// `makemap` input: key, white space, value.
fn parse_makemap(text: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(text);
    let mut out = Parsed::default();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.trim_start();
        let (key, value) = match line.find([' ', '\t']) {
            Some(at) => (&line[..at], line[at..].trim()),
            None => (line, ""),
        };
        let key = key.to_ascii_lowercase();
        if value.is_empty() {
            out.problems.push(Problem {
                line: i + 1,
                text: format!("key {key}: missing value"),
                warning: false,
            });
            continue;
        }
        out.entries.push(Entry {
            key,
            value: value.to_string(),
            line: i + 1,
        });
    }
    out
}

/// FNV-1a, 64 bits.
fn hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The index file for text file `text`.
pub fn index_path(text: &Path) -> PathBuf {
    let mut name = text.file_name().unwrap_or_default().to_os_string();
    name.push(".mrdb");
    text.with_file_name(name)
}

/// What identifies the text an index was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: i64,
    mtime_nsec: u32,
    ino: u64,
    dev: u64,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec() as u32,
            ino: m.ino(),
            dev: m.dev(),
        }
    }
}

/// The result of compiling a table.
#[derive(Debug, Clone)]
pub struct Built {
    /// Problems in the text (syntax, duplicates), by line.
    pub problems: Vec<Problem>,
    /// Entries in the text, duplicates included (sendmail's count).
    pub entries: usize,
    /// The longest value and the sum of key and value lengths (newaliases'
    /// summary line).
    pub longest: usize,
    pub total: usize,
    pub index: PathBuf,
}

/// Compile `text` into its index (temporary file, fsync, rename, directory
/// fsync).  The index is written even when there are problems, as sendmail
/// does.
pub fn build(text: &Path, syntax: Syntax) -> io::Result<Built> {
    let file = File::open(text)?;
    let meta = file.metadata()?;
    let bytes = fs::read(text)?;
    let raw = parse_raw(syntax, &bytes);
    let index = index_path(text);
    let mut problems = raw.problems;
    problems.extend(write_index(&index, syntax, Stamp::of(&meta), &raw.entries)?);
    problems.sort_by_key(|p| p.line);
    Ok(Built {
        problems,
        entries: raw.entries.len(),
        longest: raw.entries.iter().map(|e| e.value.len()).max().unwrap_or(0),
        total: raw
            .entries
            .iter()
            .map(|e| e.key.len() + e.value.len())
            .sum(),
        index,
    })
}

/// Write the index of `entries` (in file order); a repeated key follows the
/// syntax's rule (aliases: the last wins, makemap: the first) and is
/// reported.
fn write_index(
    index: &Path,
    syntax: Syntax,
    stamp: Stamp,
    entries: &[Entry],
) -> io::Result<Vec<Problem>> {
    let nslots = (entries.len().max(1) * 2).next_power_of_two();
    let mut slots = vec![0u64; nslots];
    let mut records: Vec<u8> = Vec::with_capacity(entries.len() * 48);
    let mut problems = Vec::new();
    let mut effective = 0u32;
    for e in entries {
        let h = hash(e.key.as_bytes());
        let mut i = (h as usize) & (nslots - 1);
        let mut duplicate_at = None;
        while slots[i] != 0 {
            if slots[i] >> 32 == h >> 32 {
                let off = ((slots[i] & 0xffff_ffff) - 1) as usize;
                let klen = u32::from_le_bytes(records[off..off + 4].try_into().unwrap()) as usize;
                if &records[off + 12..off + 12 + klen] == e.key.as_bytes() {
                    duplicate_at = Some(i);
                    break;
                }
            }
            i = (i + 1) & (nslots - 1);
        }
        if duplicate_at.is_some() {
            match syntax {
                Syntax::Aliases => {
                    problems.push(crate::aliases::duplicate_warning(&e.key, e.line).into())
                }
                Syntax::Makemap => {
                    problems.push(duplicate_key(&e.key, e.line));
                    continue;
                }
            }
        } else {
            effective += 1;
        }
        let offset = records.len() as u64;
        if offset >= u32::MAX as u64 - 1 {
            return Err(io::Error::other("table too large for the index format"));
        }
        records.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
        records.extend_from_slice(&(e.value.len() as u32).to_le_bytes());
        records.extend_from_slice(&(e.line as u32).to_le_bytes());
        records.extend_from_slice(e.key.as_bytes());
        records.extend_from_slice(e.value.as_bytes());
        slots[i] = ((h >> 32) << 32) | (offset + 1);
    }
    let dir = index.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        index.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let f = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut header = [0u8; HEADER];
        header[0..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&stamp.size.to_le_bytes());
        header[16..24].copy_from_slice(&stamp.mtime.to_le_bytes());
        header[24..28].copy_from_slice(&stamp.mtime_nsec.to_le_bytes());
        header[28..32].copy_from_slice(&(nslots as u32).to_le_bytes());
        header[32..40].copy_from_slice(&stamp.ino.to_le_bytes());
        header[40..48].copy_from_slice(&stamp.dev.to_le_bytes());
        header[48..52].copy_from_slice(&effective.to_le_bytes());
        header[52..56].copy_from_slice(&syntax.code().to_le_bytes());
        w.write_all(&header)?;
        let mut slot_bytes = Vec::with_capacity(nslots * 8);
        for s in &slots {
            slot_bytes.extend_from_slice(&s.to_le_bytes());
        }
        w.write_all(&slot_bytes)?;
        w.write_all(&records)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        fs::rename(&tmp, index)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| problems)
}

/// A hit: the value and the line of the text file it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    pub value: &'a str,
    pub line: usize,
}

enum Source {
    Index {
        map: Mmap,
        nslots: usize,
        records: usize,
    },
    Text(crate::fasthash::FxHashMap<String, (String, usize)>),
    Empty,
}

/// An open table.
pub struct Table {
    text: PathBuf,
    source: Source,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({})", self.text.display())
    }
}

impl Table {
    /// A table with nothing in it.
    pub fn empty(text: &Path) -> Table {
        Table {
            text: text.to_path_buf(),
            source: Source::Empty,
        }
    }

    /// Open the table whose text is `text`: its index when current; else
    /// rebuild the index when `may_rebuild` and the directory is writable;
    /// else the text itself.  A missing text file is an empty table.
    pub fn open(text: &Path, syntax: Syntax, may_rebuild: bool) -> Table {
        let meta = match fs::metadata(text) {
            Ok(m) => m,
            Err(_) => return Table::empty(text),
        };
        let index = index_path(text);
        if let Some(src) = open_index(&index, Stamp::of(&meta)) {
            return Table {
                text: text.to_path_buf(),
                source: src,
            };
        }
        if may_rebuild {
            match build(text, syntax) {
                Ok(b) => {
                    log::info(
                        None,
                        &format!("{}: index rebuilt ({} entries)", text.display(), b.entries),
                    );
                    if let Ok(m) = fs::metadata(text)
                        && let Some(src) = open_index(&index, Stamp::of(&m))
                    {
                        return Table {
                            text: text.to_path_buf(),
                            source: src,
                        };
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                Err(e) => log::warning(
                    None,
                    &format!(
                        "{}: cannot rebuild the index: {}",
                        text.display(),
                        crate::exit::io_reason(&e)
                    ),
                ),
            }
        }
        // Read the text: slower, but never stale.
        let bytes = fs::read(text).unwrap_or_default();
        let parsed = parse(syntax, &bytes);
        if index.exists() || syntax == Syntax::Aliases {
            log::notice(
                None,
                &format!(
                    "{}: index {} is missing or older than the text; reading the text file",
                    text.display(),
                    index.display()
                ),
            );
        }
        let map = parsed
            .entries
            .into_iter()
            .map(|e| (e.key, (e.value, e.line)))
            .collect();
        Table {
            text: text.to_path_buf(),
            source: Source::Text(map),
        }
    }

    /// The text file this table comes from.
    pub fn path(&self) -> &Path {
        &self.text
    }

    /// Is the table served from an up-to-date index?
    pub fn is_indexed(&self) -> bool {
        matches!(self.source, Source::Index { .. })
    }

    pub fn is_empty(&self) -> bool {
        match &self.source {
            Source::Empty => true,
            Source::Text(m) => m.is_empty(),
            Source::Index { map, .. } => u32::from_le_bytes(map[48..52].try_into().unwrap()) == 0,
        }
    }

    /// Look `key` up; keys are compared lower-cased.
    pub fn get(&self, key: &str) -> Option<Hit<'_>> {
        let lower;
        let key = if key.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = key.to_ascii_lowercase();
            lower.as_str()
        } else {
            key
        };
        match &self.source {
            Source::Empty => None,
            Source::Text(m) => m.get(key).map(|(v, l)| Hit {
                value: v.as_str(),
                line: *l,
            }),
            Source::Index {
                map,
                nslots,
                records,
            } => {
                let h = hash(key.as_bytes());
                let tag = h >> 32;
                let mut i = (h as usize) & (nslots - 1);
                for _ in 0..*nslots {
                    let at = HEADER + i * 8;
                    let slot = u64::from_le_bytes(map[at..at + 8].try_into().ok()?);
                    if slot == 0 {
                        return None;
                    }
                    if slot >> 32 == tag {
                        let off = *records + ((slot & 0xffff_ffff) as usize - 1);
                        let rec = map.get(off..off + 12)?;
                        let klen = u32::from_le_bytes(rec[0..4].try_into().ok()?) as usize;
                        let vlen = u32::from_le_bytes(rec[4..8].try_into().ok()?) as usize;
                        let line = u32::from_le_bytes(rec[8..12].try_into().ok()?) as usize;
                        let k = map.get(off + 12..off + 12 + klen)?;
                        if k == key.as_bytes() {
                            let v = map.get(off + 12 + klen..off + 12 + klen + vlen)?;
                            return Some(Hit {
                                value: std::str::from_utf8(v).ok()?,
                                line,
                            });
                        }
                    }
                    i = (i + 1) & (nslots - 1);
                }
                None
            }
        }
    }
}

/// Map the index if it is well-formed and built from exactly `stamp`.
fn open_index(index: &Path, stamp: Stamp) -> Option<Source> {
    let f = File::open(index).ok()?;
    // SAFETY: index files are only ever replaced by rename, never
    // truncated or written in place, so the mapping cannot shrink under us.
    let map = unsafe { Mmap::map(&f) }.ok()?;
    if map.len() < HEADER || &map[0..8] != MAGIC {
        return None;
    }
    let u64_at = |o: usize| u64::from_le_bytes(map[o..o + 8].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(map[o..o + 4].try_into().unwrap());
    let built = Stamp {
        size: u64_at(8),
        mtime: u64_at(16) as i64,
        mtime_nsec: u32_at(24),
        ino: u64_at(32),
        dev: u64_at(40),
    };
    if built != stamp {
        return None;
    }
    let nslots = u32_at(28) as usize;
    if nslots == 0 || !nslots.is_power_of_two() {
        return None;
    }
    let records = HEADER.checked_add(nslots.checked_mul(8)?)?;
    if records > map.len() {
        return None;
    }
    Some(Source::Index {
        map,
        nslots,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mr-table-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn makemap_rules() {
        let p = parse(Syntax::Makemap, b"# c\nInfo@Example.com  alice\n\n@shop.example   %1@remote.test  \ndup@x a\ndup@x b\nlonely\n");
        assert_eq!(p.entries.len(), 3);
        assert_eq!(p.entries[0].key, "info@example.com");
        assert_eq!(p.entries[1].value, "%1@remote.test");
        assert_eq!(p.entries[2].value, "a", "first definition wins");
        assert_eq!(p.problems[0].text, "key dup@x: duplicate key");
        assert_eq!(p.problems[0].line, 6);
        assert_eq!(p.problems[1].line, 7);
    }

    #[test]
    fn index_round_trip_and_staleness() {
        let d = tmp("idx");
        let text = d.join("virtusertable");
        fs::write(&text, "info@example.com alice\n@shop.example carol\n").unwrap();
        let t = Table::open(&text, Syntax::Makemap, true);
        assert!(t.is_indexed());
        assert_eq!(
            t.get("INFO@example.com").unwrap(),
            Hit {
                value: "alice",
                line: 1
            }
        );
        assert_eq!(t.get("@shop.example").unwrap().value, "carol");
        assert!(t.get("nobody@example.com").is_none());
        drop(t);

        // Edit the text: the index no longer matches; without rebuilding
        // rights the text itself is read.
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(&text, "info@example.com bob\n").unwrap();
        let t = Table::open(&text, Syntax::Makemap, false);
        assert!(!t.is_indexed());
        assert_eq!(t.get("info@example.com").unwrap().value, "bob");
        let t = Table::open(&text, Syntax::Makemap, true);
        assert!(t.is_indexed());
        assert_eq!(t.get("info@example.com").unwrap().value, "bob");
        assert!(t.get("@shop.example").is_none());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn many_entries() {
        let d = tmp("many");
        let text = d.join("aliases");
        let mut s = String::new();
        for i in 0..5000 {
            s.push_str(&format!("user{i}: target{i}\n"));
        }
        fs::write(&text, s).unwrap();
        let t = Table::open(&text, Syntax::Aliases, true);
        assert!(t.is_indexed());
        for i in (0..5000).step_by(97) {
            assert_eq!(
                t.get(&format!("user{i}")).unwrap().value,
                format!("target{i}")
            );
        }
        assert!(t.get("user5000").is_none());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_index_of_older_keying_rules_is_not_trusted() {
        let d = tmp("magic");
        let text = d.join("aliases");
        fs::write(&text, "\"sales.team\": anna\n").unwrap();
        let t = Table::open(&text, Syntax::Aliases, true);
        assert_eq!(t.get("sales.team").unwrap().value, "anna");
        drop(t);
        // As mailroom before quoted names were keyed as sendmail keys them
        // wrote it: same layout, older magic, the quotes kept in the key.
        let index = index_path(&text);
        let mut old = fs::read(&index).unwrap();
        old[0..8].copy_from_slice(b"MRDB0001");
        fs::write(&index, old).unwrap();
        let t = Table::open(&text, Syntax::Aliases, false);
        assert!(!t.is_indexed());
        assert_eq!(t.get("sales.team").unwrap().value, "anna");
        assert!(Table::open(&text, Syntax::Aliases, true).is_indexed());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_text_is_empty() {
        let t = Table::open(Path::new("/nonexistent/aliases"), Syntax::Aliases, true);
        assert!(t.is_empty());
        assert!(t.get("x").is_none());
    }
}
