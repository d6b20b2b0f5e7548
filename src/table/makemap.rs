//! The text of a `makemap` table (`virtusertable`, `mailertable`,
//! `access`, `quotas`, `genericstable`, `source-addresses`), as sendmail's
//! `makemap` reads it:
//!
//! * one entry a line: `key<white space>value`; white space before the key
//!   is skipped, around the value trimmed;
//! * lines starting with `#` are comments; blank lines are ignored;
//! * keys are compared lower-cased;
//! * a key without a value is an error (`missing value`); a duplicate key
//!   is an error and the first definition wins.
//!
//! The editors ([`set_entry`], [`remove_entry`]) change the lines this
//! reader finds and keep every other line (comments, blank lines, order)
//! byte for byte as the admin wrote it.

use super::{Entry, Parsed, Problem};

/// One entry line as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The key as written (`Info@Example.com`).
    pub written: String,
    /// The key as it is looked up: lower-cased.
    pub key: String,
    /// The value, trimmed; empty for a key without one (an error).
    pub value: String,
    /// 1-based.
    pub line: usize,
}

/// Every key line of `text` in file order, duplicates and keys without a
/// value included.
fn key_lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
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
        out.push(Line {
            written: key.to_string(),
            key: key.to_ascii_lowercase(),
            value: value.to_string(),
            line: i + 1,
        });
    }
    out
}

/// The entries of `text` in file order, duplicates included, and the
/// lines that are no entry (a key without a value).
pub(super) fn parse(text: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(text);
    let mut out = Parsed::default();
    for l in key_lines(&text) {
        if l.value.is_empty() {
            out.problems.push(Problem {
                line: l.line,
                text: format!("key {}: missing value", l.key),
                warning: false,
            });
            continue;
        }
        out.entries.push(Entry {
            key: l.key,
            value: l.value,
            line: l.line,
        });
    }
    out
}

/// Every entry of `text` as written, in file order, duplicates included.
pub fn entries(text: &str) -> Vec<Line> {
    key_lines(text)
        .into_iter()
        .filter(|l| !l.value.is_empty())
        .collect()
}

/// The entry for `key` (case-insensitive) that counts, the first: its
/// value and line.
pub fn get(text: &str, key: &str) -> Option<(String, usize)> {
    let key = key.to_ascii_lowercase();
    entries(text)
        .into_iter()
        .find(|l| l.key == key)
        .map(|l| (l.value, l.line))
}

/// `text` with the lines of `key` (entries and a value-less line alike)
/// left out, and `insert` in place of the first of them (appended when
/// there is none).
fn replace_key(text: &str, key: &str, insert: Option<String>) -> (String, bool) {
    let key = key.to_ascii_lowercase();
    let lines: Vec<usize> = key_lines(text)
        .into_iter()
        .filter(|l| l.key == key)
        .map(|l| l.line)
        .collect();
    let mut insert = insert;
    let mut out = String::with_capacity(text.len() + 64);
    for (i, l) in text.lines().enumerate() {
        if !lines.contains(&(i + 1)) {
            out.push_str(l);
            out.push('\n');
        } else if let Some(new) = insert.take() {
            out.push_str(&new);
            out.push('\n');
        }
    }
    if let Some(new) = insert {
        out.push_str(&new);
        out.push('\n');
    }
    (out, !lines.is_empty())
}

/// Set `key`'s value: its line is replaced where it stands (a later
/// duplicate goes), or the entry is appended.
pub fn set_entry(text: &str, key: &str, value: &str) -> String {
    replace_key(text, key, Some(format!("{key}\t{value}"))).0
}

/// Remove `key`'s entry; `None` when there was none.
pub fn remove_entry(text: &str, key: &str) -> Option<String> {
    let (out, hit) = replace_key(text, key, None);
    hit.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::{Syntax, parse as parse_table};
    use super::*;

    #[test]
    fn makemap_rules() {
        let p = parse_table(Syntax::Makemap, b"# c\nInfo@Example.com  alice\n\n@shop.example   %1@remote.test  \ndup@x a\ndup@x b\nlonely\n");
        assert_eq!(p.entries.len(), 3);
        assert_eq!(p.entries[0].key, "info@example.com");
        assert_eq!(p.entries[1].value, "%1@remote.test");
        assert_eq!(p.entries[2].value, "a", "first definition wins");
        assert_eq!(p.problems[0].text, "key dup@x: duplicate key");
        assert_eq!(p.problems[0].line, 6);
        assert_eq!(p.problems[1].line, 7);
    }

    #[test]
    fn makemap_edits_keep_comments_and_order() {
        let t = "# header\nb@x.com\tbob\n\n# a comment\nA@X.COM alice\n";
        let t2 = set_entry(t, "a@x.com", "carol");
        assert_eq!(
            t2,
            "# header\nb@x.com\tbob\n\n# a comment\na@x.com\tcarol\n"
        );
        let t3 = set_entry(&t2, "c@x.com", "dave");
        assert!(t3.ends_with("a@x.com\tcarol\nc@x.com\tdave\n"));
        assert_eq!(get(&t3, "C@x.com"), Some(("dave".into(), 6)));
        let t4 = remove_entry(&t3, "b@x.com").unwrap();
        assert_eq!(
            t4,
            "# header\n\n# a comment\na@x.com\tcarol\nc@x.com\tdave\n"
        );
        assert!(remove_entry(&t4, "zz").is_none());
    }

    // The editors find the lines the table reader reads: an indented entry
    // is one, a later duplicate (which the reader ignores) goes with the
    // first, a key without a value is replaced.
    #[test]
    fn makemap_edits_find_entries_as_the_reader_does() {
        let t = "  a@x.com\told\nb@x.com\nc@x.com one\nc@x.com two\n";
        assert_eq!(get(t, "a@x.com"), Some(("old".into(), 1)));
        assert_eq!(
            set_entry(t, "a@x.com", "new"),
            "a@x.com\tnew\nb@x.com\nc@x.com one\nc@x.com two\n"
        );
        assert_eq!(
            set_entry(t, "b@x.com", "bob"),
            "  a@x.com\told\nb@x.com\tbob\nc@x.com one\nc@x.com two\n"
        );
        assert_eq!(
            set_entry(t, "c@x.com", "three"),
            "  a@x.com\told\nb@x.com\nc@x.com\tthree\n"
        );
        assert_eq!(
            remove_entry(t, "C@X.com").unwrap(),
            "  a@x.com\told\nb@x.com\n"
        );
        assert_eq!(
            entries(t).iter().map(|l| l.line).collect::<Vec<_>>(),
            [1, 3, 4]
        );
    }
}
