//! Lookup tables: `/etc/mail/aliases`, `virtusertable`, `mailertable`,
//! `access`, `quotas`, compiled into a memory-mapped index so that a lookup
//! never parses the text at delivery time.
//!
//! * [`Syntax::Aliases`] — aliases(5), see [`crate::aliases`]; a duplicate
//!   name warns and the last definition wins.
//! * [`Syntax::Makemap`] — sendmail's `makemap` input, see [`makemap`]; a
//!   duplicate key is an error and the first definition wins.
//! * [`index`] — the compiled index `NAME.mrdb` and its on-disk layout.
//! * [`class`] — the class files (`local-host-names`, `virtuser-domains`).
//! * [`source`] — where a reader takes the texts from: the disk, or an
//!   admin change being staged ([`crate::change`]).
//!
//! ## Staleness
//!
//! An admin edits the text and expects that to be enough.  An index whose
//! recorded size, mtime or inode differ from the text file is out of date:
//! a process that may write the directory rebuilds it at once; any other
//! reads the text file itself until someone rebuilds, and logs that it did.

pub mod class;
pub mod index;
pub mod makemap;
pub mod source;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::log;
pub use index::{Built, build, index_path};
use index::{Index, Stamp};
pub use source::Source;

/// How a table's text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Aliases,
    Makemap,
}

/// The compiled index a text file has, if any (by its name under
/// `/etc/mail`).
pub fn syntax_of(path: &Path) -> Option<Syntax> {
    match path.file_name()?.to_str()? {
        "aliases" => Some(Syntax::Aliases),
        "virtusertable" | "mailertable" | "access" | "quotas" | "genericstable"
        | "source-addresses" => Some(Syntax::Makemap),
        _ => None,
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
pub(super) fn parse_raw(syntax: Syntax, text: &[u8]) -> Parsed {
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
        Syntax::Makemap => makemap::parse(text),
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

pub(super) fn duplicate_key(key: &str, line: usize) -> Problem {
    Problem {
        line,
        text: format!("key {key}: duplicate key"),
        warning: false,
    }
}

/// A hit: the value and the line of the text file it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    pub value: &'a str,
    pub line: usize,
}

/// Where a table's entries are.
enum Backing {
    Index(Index),
    /// Key (lower-cased) → (value, line).
    Text(crate::fasthash::FxHashMap<String, (String, usize)>),
    Empty,
}

/// An open table.
pub struct Table {
    text: PathBuf,
    syntax: Syntax,
    backing: Backing,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({})", self.text.display())
    }
}

impl Table {
    /// A table with nothing in it.
    pub fn empty(text: &Path, syntax: Syntax) -> Table {
        Table {
            text: text.to_path_buf(),
            syntax,
            backing: Backing::Empty,
        }
    }

    /// Open the table whose text is `text`: its index when current; else
    /// rebuild the index when `may_rebuild` and the directory is writable;
    /// else the text itself.  A missing text file is an empty table.
    pub fn open(text: &Path, syntax: Syntax, may_rebuild: bool) -> Table {
        let meta = match fs::metadata(text) {
            Ok(m) => m,
            Err(_) => return Table::empty(text, syntax),
        };
        let index = index_path(text);
        let indexed = |i| Table {
            text: text.to_path_buf(),
            syntax,
            backing: Backing::Index(i),
        };
        if let Some(i) = Index::open(&index, Stamp::of(&meta)) {
            return indexed(i);
        }
        if may_rebuild {
            match build(text, syntax) {
                Ok(b) => {
                    log::info(
                        None,
                        &format!("{}: index rebuilt ({} entries)", text.display(), b.entries),
                    );
                    if let Ok(m) = fs::metadata(text)
                        && let Some(i) = Index::open(&index, Stamp::of(&m))
                    {
                        return indexed(i);
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
        Table::from_text(text, syntax, &bytes)
    }

    /// The table the text `bytes` of the file `text` makes, parsed and
    /// keyed exactly as its index would be (for a text an admin change has
    /// staged, see [`Source`]).
    pub fn from_text(text: &Path, syntax: Syntax, bytes: &[u8]) -> Table {
        let map = parse(syntax, bytes)
            .entries
            .into_iter()
            .map(|e| (e.key, (e.value, e.line)))
            .collect();
        Table {
            text: text.to_path_buf(),
            syntax,
            backing: Backing::Text(map),
        }
    }

    /// Add an entry as a line appended to the text would (an admin change
    /// planning many entries at once): an aliases name replaces an earlier
    /// definition, a makemap key does not.
    pub fn insert(&mut self, key: &str, value: &str, line: usize) {
        let map = match &mut self.backing {
            Backing::Text(m) => m,
            other => {
                let entries = match other {
                    Backing::Index(i) => i.entries(),
                    _ => Vec::new(),
                };
                *other = Backing::Text(entries.into_iter().map(|(k, v, l)| (k, (v, l))).collect());
                let Backing::Text(m) = other else {
                    unreachable!("just set")
                };
                m
            }
        };
        let key = key.to_ascii_lowercase();
        if self.syntax == Syntax::Aliases || !map.contains_key(&key) {
            map.insert(key, (value.to_string(), line));
        }
    }

    /// The text file this table comes from.
    pub fn path(&self) -> &Path {
        &self.text
    }

    /// Is the table served from an up-to-date index?
    pub fn is_indexed(&self) -> bool {
        matches!(self.backing, Backing::Index(_))
    }

    pub fn is_empty(&self) -> bool {
        match &self.backing {
            Backing::Empty => true,
            Backing::Text(m) => m.is_empty(),
            Backing::Index(i) => i.len() == 0,
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
        match &self.backing {
            Backing::Empty => None,
            Backing::Text(m) => m.get(key).map(|(v, l)| Hit {
                value: v.as_str(),
                line: *l,
            }),
            Backing::Index(i) => i.get(key),
        }
    }
}

/// `domain`'s mailertable entry: the domain itself, then each parent as
/// `.parent`, then `.`; the key that matched and its value.
pub fn mailertable_lookup(table: &Table, d: &str) -> Option<(String, String)> {
    if table.is_empty() {
        return None;
    }
    if let Some(h) = table.get(d) {
        return Some((d.to_string(), h.value.to_string()));
    }
    let mut rest = d;
    while let Some(i) = rest.find('.') {
        rest = &rest[i + 1..];
        let key = format!(".{rest}");
        if let Some(h) = table.get(&key) {
            return Some((key, h.value.to_string()));
        }
    }
    table
        .get(".")
        .map(|h| (".".to_string(), h.value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_text_is_empty() {
        let t = Table::open(Path::new("/nonexistent/aliases"), Syntax::Aliases, true);
        assert!(t.is_empty());
        assert!(t.get("x").is_none());
    }

    // A table made from a text answers as its index does, and takes
    // entries as appended lines would add them.
    #[test]
    fn a_table_from_text_keys_as_the_index() {
        let p = Path::new("/x/virtusertable");
        let mut t = Table::from_text(
            p,
            Syntax::Makemap,
            b"Info@Example.com alice
info@example.com bob
",
        );
        assert_eq!(
            t.get("INFO@example.com").unwrap(),
            Hit {
                value: "alice",
                line: 1
            }
        );
        t.insert("Info@example.com", "carol", 3);
        t.insert("new@example.com", "dave", 4);
        assert_eq!(t.get("info@example.com").unwrap().value, "alice");
        assert_eq!(
            t.get("new@example.com").unwrap(),
            Hit {
                value: "dave",
                line: 4
            }
        );
        let mut a = Table::from_text(
            Path::new("/x/aliases"),
            Syntax::Aliases,
            b"\"Sales.Team\": anna\n",
        );
        assert_eq!(a.get("sales.team").unwrap().value, "anna");
        a.insert("sales.team", "bob", 2);
        assert_eq!(
            a.get("sales.team").unwrap(),
            Hit {
                value: "bob",
                line: 2
            }
        );
        let mut e = Table::empty(p, Syntax::Makemap);
        e.insert("a@b.example", "c", 1);
        assert!(!e.is_empty());
    }
}
