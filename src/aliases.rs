//! The aliases file, `/etc/mail/aliases`, read exactly as sendmail 8's
//! `newaliases` reads it (aliases(5)):
//!
//! * `name: value`; white space around the colon is ignored; the name is
//!   case-insensitive (stored lower-cased); a quoted name (`"a b": x`)
//!   keeps its quotes.
//! * A line whose first character is `#` is a comment; blank lines are
//!   ignored.  A `#` later in a line is *not* a comment.
//! * A line beginning with a space or tab continues the previous entry (the
//!   newline is dropped, the leading white space kept); so does a backslash
//!   right before the newline.  A comment line ends an entry: an indented
//!   line after it is lost, as in sendmail.
//! * A duplicate name warns and the **last** definition wins.
//! * Errors are reported per line (`line 9: missing colon`, `line 10:
//!   empty:... missing value for alias`) and make `newaliases` exit 70, but
//!   the good entries are still used.
//!
//! `newaliases` ends with sendmail's summary line:
//! `/etc/mail/aliases: 22 aliases, longest 51 bytes, 506 bytes total`
//! (longest = the longest value; total = the sum of name and value lengths).

/// One `name: value` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The lower-cased name.
    pub name: String,
    /// The value as stored by sendmail (continuations joined).
    pub value: String,
    /// The line the entry starts on.
    pub line: usize,
}

/// A problem found while reading the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub text: String,
    /// Warnings (duplicates) do not make `newaliases` fail.
    pub warning: bool,
}

/// The parsed file: entries in file order (duplicates included) and
/// problems.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
}

impl Parsed {
    /// True when there are errors (not just warnings).
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| !p.warning)
    }

    /// The effective entries: one per name, the last definition winning,
    /// in the order of their final definition.
    pub fn effective(&self) -> Vec<&Entry> {
        let mut last: crate::fasthash::FxHashMap<&str, usize> = Default::default();
        last.reserve(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            last.insert(&e.name, i);
        }
        self.entries
            .iter()
            .enumerate()
            .filter(|(i, e)| last.get(e.name.as_str()) == Some(i))
            .map(|(_, e)| e)
            .collect()
    }

    /// sendmail's summary numbers: (aliases, longest value, total bytes).
    pub fn summary(&self) -> (usize, usize, usize) {
        let n = self.entries.len();
        let longest = self
            .entries
            .iter()
            .map(|e| e.value.len())
            .max()
            .unwrap_or(0);
        let total = self
            .entries
            .iter()
            .map(|e| e.name.len() + e.value.len())
            .sum();
        (n, longest, total)
    }
}

/// Parse the text of an aliases file, duplicates reported.
pub fn parse(text: &[u8]) -> Parsed {
    let mut out = parse_entries(text);
    let mut problems = duplicates(&out.entries);
    out.problems.append(&mut problems);
    out.problems.sort_by_key(|p| p.line);
    out
}

/// The duplicate-name warnings for `entries` (the later definition wins).
pub fn duplicates(entries: &[Entry]) -> Vec<Problem> {
    let mut seen: crate::fasthash::FxHashSet<&str> = Default::default();
    seen.reserve(entries.len());
    entries
        .iter()
        .filter(|e| !seen.insert(&e.name))
        .map(|e| duplicate_warning(&e.name, e.line))
        .collect()
}

/// sendmail's words for a repeated name.
pub fn duplicate_warning(name: &str, line: usize) -> Problem {
    Problem {
        line,
        text: format!("{name}... Warning: duplicate alias name {name}"),
        warning: true,
    }
}

/// Parse entries and syntax problems, without looking for duplicates
/// (the index builder finds those as it goes, for speed).
pub fn parse_entries(text: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(text);
    let mut out = Parsed::default();
    // The logical line being assembled: (first line number, text).
    let mut cur: Option<(usize, std::borrow::Cow<'_, str>)> = None;
    let mut open = false; // can the current logical line be continued?
    let mut backslash = false;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let continues = backslash || (open && (line.starts_with(' ') || line.starts_with('\t')));
        if continues {
            if let Some((_, t)) = cur.as_mut() {
                t.to_mut().push_str(line);
                backslash = t.ends_with('\\');
                if backslash {
                    t.to_mut().pop();
                }
            }
            continue;
        }
        if line.starts_with('#') {
            // A comment ends an entry: an indented line after it is lost.
            open = false;
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            continue; // indented, but nothing to continue
        }
        if let Some((n, t)) = cur.take() {
            entry(&mut out, n, &t);
        }
        let mut t = std::borrow::Cow::Borrowed(line);
        backslash = line.ends_with('\\');
        if backslash {
            t.to_mut().pop();
        }
        cur = Some((i + 1, t));
        open = true;
    }
    if let Some((n, t)) = cur.take() {
        entry(&mut out, n, &t);
    }
    out
}

/// One logical line: `name: value`.
fn entry(out: &mut Parsed, lineno: usize, l: &str) {
    let Some(colon) = find_colon(l) else {
        out.problems.push(Problem {
            line: lineno,
            text: "missing colon".to_string(),
            warning: false,
        });
        return;
    };
    let name = l[..colon].trim();
    let value = l[colon + 1..].trim_start_matches([' ', '\t']).trim_end();
    if name.is_empty() {
        out.problems.push(Problem {
            line: lineno,
            text: "missing name for alias".to_string(),
            warning: false,
        });
        return;
    }
    if value.is_empty() {
        out.problems.push(Problem {
            line: lineno,
            text: format!("{name}:... missing value for alias"),
            warning: false,
        });
        return;
    }
    out.entries.push(Entry {
        name: name.to_ascii_lowercase(),
        value: value.to_string(),
        line: lineno,
    });
}

/// The colon ending the name: the first one outside a quoted string.
fn find_colon(l: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in l.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ':' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // The same file the oracle (real sendmail 8.17) was given; its
    // newaliases reported errors on lines 9, 10 and a duplicate on 12, and
    // "10 aliases, longest 21 bytes, 131 bytes total".
    const FILE: &str = "# comment\npostmaster: root\nalice: bob\nMixedCase: eve\nspaced  :   eve  ,   frank\nlist: alice,\n\tfrank,\n  george\nnocolon eve\nempty:\ndup: eve\ndup: frank\n\"quoted lhs\": george\ncont: a, \\\n b\nx: eve # note\n";

    #[test]
    fn matches_sendmails_reading() {
        let p = parse(FILE.as_bytes());
        let lines: Vec<(usize, &str)> = p
            .problems
            .iter()
            .map(|x| (x.line, x.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (9, "missing colon"),
                (10, "empty:... missing value for alias"),
                (12, "dup... Warning: duplicate alias name dup")
            ]
        );
        assert_eq!(p.summary(), (10, 21, 131));
        let get = |k: &str| {
            p.effective()
                .into_iter()
                .find(|e| e.name == k)
                .map(|e| e.value.clone())
        };
        assert_eq!(get("list").unwrap(), "alice,\tfrank,  george");
        assert_eq!(get("cont").unwrap(), "a,  b");
        assert_eq!(get("spaced").unwrap(), "eve  ,   frank");
        assert_eq!(get("mixedcase").unwrap(), "eve");
        assert_eq!(get("dup").unwrap(), "frank");
        assert_eq!(get("x").unwrap(), "eve # note");
        assert_eq!(get("\"quoted lhs\"").unwrap(), "george");
        assert!(p.has_errors());
    }

    #[test]
    fn comment_ends_an_entry() {
        let p = parse(b"a: b,\n# c\n\tlost\n");
        assert_eq!(p.effective()[0].value, "b,");
    }
}
