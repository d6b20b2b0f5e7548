//! The compiled index of a table, `NAME.mrdb` next to its text `NAME`.
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
//! The size, mtime, inode and device identify the text it was built from:
//! an index whose text has changed since is stale (see [`super`]).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{Entry, Hit, Problem, Syntax, duplicate_key, parse_raw};

/// The format and the keying rules: an index built under other rules (an
/// older mailroom) is rebuilt as a stale one is, never trusted.
const MAGIC: &[u8; 8] = b"MRDB0002";
const HEADER: usize = 64;

impl Syntax {
    fn code(self) -> u32 {
        match self {
            Syntax::Aliases => 1,
            Syntax::Makemap => 2,
        }
    }
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
pub(super) struct Stamp {
    size: u64,
    mtime: i64,
    mtime_nsec: u32,
    ino: u64,
    dev: u64,
}

impl Stamp {
    pub(super) fn of(m: &fs::Metadata) -> Stamp {
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

/// A mapped index.
pub(super) struct Index {
    map: Mmap,
    nslots: usize,
    records: usize,
}

impl Index {
    /// Map the index if it is well-formed and built from exactly `stamp`.
    pub(super) fn open(index: &Path, stamp: Stamp) -> Option<Index> {
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
        Some(Index {
            map,
            nslots,
            records,
        })
    }

    /// How many keys it holds.
    pub(super) fn len(&self) -> usize {
        u32::from_le_bytes(self.map[48..52].try_into().unwrap()) as usize
    }

    /// The record a slot points at: (key, value, line).
    fn record(&self, slot: u64) -> Option<(&[u8], &str, usize)> {
        let off = self.records + ((slot & 0xffff_ffff) as usize - 1);
        let rec = self.map.get(off..off + 12)?;
        let klen = u32::from_le_bytes(rec[0..4].try_into().ok()?) as usize;
        let vlen = u32::from_le_bytes(rec[4..8].try_into().ok()?) as usize;
        let line = u32::from_le_bytes(rec[8..12].try_into().ok()?) as usize;
        let k = self.map.get(off + 12..off + 12 + klen)?;
        let v = self.map.get(off + 12 + klen..off + 12 + klen + vlen)?;
        Some((k, std::str::from_utf8(v).ok()?, line))
    }

    fn slot(&self, i: usize) -> Option<u64> {
        let at = HEADER + i * 8;
        Some(u64::from_le_bytes(
            self.map.get(at..at + 8)?.try_into().ok()?,
        ))
    }

    /// Look a (lower-cased) key up.
    pub(super) fn get(&self, key: &str) -> Option<Hit<'_>> {
        let h = hash(key.as_bytes());
        let tag = h >> 32;
        let mut i = (h as usize) & (self.nslots - 1);
        for _ in 0..self.nslots {
            let slot = self.slot(i)?;
            if slot == 0 {
                return None;
            }
            if slot >> 32 == tag
                && let Some((k, value, line)) = self.record(slot)
                && k == key.as_bytes()
            {
                return Some(Hit { value, line });
            }
            i = (i + 1) & (self.nslots - 1);
        }
        None
    }

    /// Every key with its value and line.
    pub(super) fn entries(&self) -> Vec<(String, String, usize)> {
        (0..self.nslots)
            .filter_map(|i| self.slot(i).filter(|s| *s != 0))
            .filter_map(|s| self.record(s))
            .map(|(k, v, l)| (String::from_utf8_lossy(k).into_owned(), v.to_string(), l))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Table;
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mr-table-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
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
}
