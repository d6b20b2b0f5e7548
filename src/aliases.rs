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
        let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
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

/// Parse the text of an aliases file.
pub fn parse(text: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(text);
    let mut out = Parsed::default();
    // Logical lines: (first physical line number, joined text).
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut open = false; // can the current logical line be continued?
    let mut backslash = false;
    for (i, raw) in text.split('\n').enumerate() {
        let lineno = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if backslash {
            // previous line ended with a backslash: join unconditionally
            if let Some(last) = logical.last_mut() {
                last.1.push_str(line);
            }
            backslash = strip_trailing_backslash(logical.last_mut());
            continue;
        }
        if line.starts_with('#') {
            open = false;
            continue;
        }
        if line.trim().is_empty() {
            // a blank line is skipped; it does not end an entry in
            // sendmail, but nothing indented follows blank lines in practice
            if line.is_empty() {
                continue;
            }
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if open {
                if let Some(last) = logical.last_mut() {
                    last.1.push_str(line);
                }
                backslash = strip_trailing_backslash(logical.last_mut());
            }
            continue;
        }
        logical.push((lineno, line.to_string()));
        open = true;
        backslash = strip_trailing_backslash(logical.last_mut());
    }

    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (lineno, l) in logical {
        let Some(colon) = find_colon(&l) else {
            out.problems.push(Problem {
                line: lineno,
                text: "missing colon".to_string(),
                warning: false,
            });
            continue;
        };
        let name = l[..colon].trim();
        let value = l[colon + 1..].trim_start_matches([' ', '\t']).trim_end();
        if name.is_empty() {
            out.problems.push(Problem {
                line: lineno,
                text: "missing name for alias".to_string(),
                warning: false,
            });
            continue;
        }
        if value.is_empty() {
            out.problems.push(Problem {
                line: lineno,
                text: format!("{}:... missing value for alias", name),
                warning: false,
            });
            continue;
        }
        let key = name.to_ascii_lowercase();
        if !seen.insert(key.clone()) {
            out.problems.push(Problem {
                line: lineno,
                text: format!("{key}... Warning: duplicate alias name {key}"),
                warning: true,
            });
        }
        out.entries.push(Entry {
            name: key,
            value: value.to_string(),
            line: lineno,
        });
    }
    out
}

/// Remove a trailing backslash (continuation mark) from the current logical
/// line; true if there was one.
fn strip_trailing_backslash(last: Option<&mut (usize, String)>) -> bool {
    match last {
        Some(l) if l.1.ends_with('\\') => {
            l.1.pop();
            true
        }
        _ => false,
    }
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
