//! The aliases file, `/etc/mail/aliases`, read exactly as sendmail 8's
//! `newaliases` reads it (aliases(5)):
//!
//! * `name: value`; white space around the colon is ignored.  The name is
//!   read as sendmail reads a local address: case-insensitive (stored
//!   lower-cased), and a quoted name loses its quotes unless it holds white
//!   space ([`crate::address::dequote_local`]): `"Sales.Team"` is the name
//!   `sales.team`, `"John Smith"` the name `"john smith"`.  A quoted name
//!   that turns out to be an address elsewhere (`"a@b"`, `"a%b"`) is an
//!   error, `cannot alias non-local names`.
//! * The name ends at the first colon outside quotes, but the value starts
//!   after the line's first colon, as in sendmail: `"x:y": z` is the name
//!   `x:y` with the value `y": z` (which no address parses).
//! * A line whose first character is `#` is a comment; blank lines are
//!   ignored.  A `#` later in a line is *not* a comment.
//! * A line beginning with a space or tab continues the previous entry (the
//!   newline is dropped, the leading white space kept); so does a backslash
//!   right before the newline.  A comment line ends an entry: an indented
//!   line after it is lost, as in sendmail.
//! * The value is a list of addresses, local names, `\user`, `"|program"`,
//!   `/file` and `:include:/path` ([`split_list`]: commas outside quotes and
//!   angle brackets separate them); `:include:` and `.forward` files hold
//!   the same lists, a line at a time.
//! * A duplicate name warns and the **last** definition wins.
//! * The editors ([`set_entry`], [`remove_entry`]) find an entry with this
//!   same reader (continuation lines, quoted names and all) and keep every
//!   other line as the admin wrote it.
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
    /// The last line it takes (continuation lines included).
    pub last_line: usize,
}

impl Entry {
    /// The value for messages to people: white space runs (where
    /// continuation lines were joined) shown as one space.
    pub fn shown_value(&self) -> String {
        self.value.split_whitespace().collect::<Vec<_>>().join(" ")
    }
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

/// Every entry of the text in file order, duplicates included: what the
/// admin commands read and edit (an entry's lines are `line..=last_line`).
pub fn entries(text: &str) -> Vec<Entry> {
    parse_entries(text.as_bytes()).entries
}

/// Parse entries and syntax problems, without looking for duplicates
/// (the index builder finds those as it goes, for speed).
pub fn parse_entries(text: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(text);
    let mut out = Parsed::default();
    // The logical line being assembled: (first line, last line, text).
    let mut cur: Option<(usize, usize, std::borrow::Cow<'_, str>)> = None;
    let mut open = false; // can the current logical line be continued?
    let mut backslash = false;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let continues = backslash || (open && (line.starts_with(' ') || line.starts_with('\t')));
        if continues {
            if let Some((_, last, t)) = cur.as_mut() {
                *last = i + 1;
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
        if let Some((n, last, t)) = cur.take() {
            entry(&mut out, n, last, &t);
        }
        let mut t = std::borrow::Cow::Borrowed(line);
        backslash = line.ends_with('\\');
        if backslash {
            t.to_mut().pop();
        }
        cur = Some((i + 1, i + 1, t));
        open = true;
    }
    if let Some((n, last, t)) = cur.take() {
        entry(&mut out, n, last, &t);
    }
    out
}

/// One logical line: `name: value`.
fn entry(out: &mut Parsed, lineno: usize, last_line: usize, l: &str) {
    let mut problem = |text: String| {
        out.problems.push(Problem {
            line: lineno,
            text,
            warning: false,
        })
    };
    let Some(colon) = l.find(':') else {
        return problem("missing colon".to_string());
    };
    let Some(name_end) = crate::address::unquoted_find(l, ':') else {
        // The only colons are inside quotes: an unclosed one (sendmail
        // reads to the end of the line looking for it).
        return problem(if l.matches('"').count() % 2 == 1 {
            format!("{}... Unbalanced '\"'", l.trim())
        } else {
            "missing colon".to_string()
        });
    };
    let name = match name_key(l[..name_end].trim()) {
        Ok(name) => name,
        Err(texts) => {
            let texts = texts.unwrap_or_else(|| vec![format!("{:.40}... illegal alias name", l)]);
            return texts.into_iter().for_each(problem);
        }
    };
    let value = l[colon + 1..].trim_start_matches([' ', '\t']).trim_end();
    if value.is_empty() {
        return problem(format!(
            "{}:... missing value for alias",
            l[..name_end].trim()
        ));
    }
    out.entries.push(Entry {
        name,
        value: value.to_string(),
        line: lineno,
        last_line,
    });
}

/// The key of an aliases name as written (`"Sales.Team"` → `sales.team`),
/// or sendmail's complaints about it (`None`: no name at all).
pub fn name_key(written: &str) -> Result<String, Option<Vec<String>>> {
    if written.is_empty() {
        return Err(None);
    }
    let key = crate::address::dequote_local(written);
    if key.len() != written.len() {
        // A quoted name: what is inside must still be a local name.
        if key.is_empty() {
            return Err(Some(vec![
                format!("{written}... User address required"),
                format!("{written}... cannot alias non-local names"),
            ]));
        }
        if ['@', '%', '!']
            .iter()
            .any(|&c| crate::address::has_unquoted(&key, c))
        {
            return Err(Some(vec![format!(
                "{written}... cannot alias non-local names"
            )]));
        }
    }
    Ok(key.to_ascii_lowercase())
}

/// The line spans (first, last; 1-based) of every definition of the
/// name `name` (as written or as keyed: `"Sales.Team"` is `sales.team`).
fn spans(text: &str, name: &str) -> Vec<(usize, usize)> {
    let Ok(key) = name_key(name.trim()) else {
        return Vec::new();
    };
    entries(text)
        .into_iter()
        .filter(|e| e.name == key)
        .map(|e| (e.line, e.last_line))
        .collect()
}

/// `text` without the lines of `spans`, and `insert` in place of the
/// first one (appended when there is none).
fn replace_spans(text: &str, spans: &[(usize, usize)], insert: Option<String>) -> String {
    let mut insert = insert;
    let mut out = String::with_capacity(text.len() + 64);
    for (i, l) in text.lines().enumerate() {
        let n = i + 1;
        match spans
            .iter()
            .find(|(first, last)| (*first..=*last).contains(&n))
        {
            Some((first, _)) if n == *first => {
                if let Some(new) = insert.take() {
                    out.push_str(&new);
                    out.push('\n');
                }
            }
            Some(_) => {}
            None => {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    if let Some(new) = insert {
        out.push_str(&new);
        out.push('\n');
    }
    out
}

/// Set alias `name` to `value` in the text of an aliases file: its entry
/// is replaced where it stands (continuation lines included; a later
/// duplicate, which would win, goes), or the entry is appended.  Every
/// other line stays as the admin wrote it.
pub fn set_entry(text: &str, name: &str, value: &str) -> String {
    replace_spans(text, &spans(text, name), Some(format!("{name}: {value}")))
}

/// Remove alias `name` (every definition of it); `None` when there was
/// none.
pub fn remove_entry(text: &str, name: &str) -> Option<String> {
    let spans = spans(text, name);
    (!spans.is_empty()).then(|| replace_spans(text, &spans, None))
}

/// A value's elements, as sendmail splits an aliases value (and a line
/// of an `:include:` or `.forward` file): separated by commas (and line
/// breaks) outside quotes and angle brackets; leading white space
/// trimmed from each.
pub fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut angle = 0i32;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '<' if !quoted => {
                angle += 1;
                cur.push(c);
            }
            '>' if !quoted => {
                angle -= 1;
                cur.push(c);
            }
            ',' if !quoted && angle <= 0 => {
                out.push(std::mem::take(&mut cur));
            }
            '\n' | '\r' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    // Leading white space goes; trailing white space stays part of the
    // element, as sendmail prints it ("eve  ... deliverable").
    out.into_iter()
        .map(|s| s.trim_start().to_string())
        .filter(|s| !s.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_like_sendmail() {
        assert_eq!(
            split_list("\\bob, bob@gmail.example"),
            ["\\bob", "bob@gmail.example"]
        );
        assert_eq!(
            split_list("\"|/usr/bin/x --a, b\", eve,,  frank"),
            ["\"|/usr/bin/x --a, b\"", "eve", "frank"]
        );
        assert_eq!(split_list("eve  ,   frank"), ["eve  ", "frank"]);
        assert_eq!(split_list("Frank Q <f@x>, a"), ["Frank Q <f@x>", "a"]);
    }

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

    // Keys and complaints of real sendmail 8.17's newaliases for the same
    // lines (praliases showed the keys).
    #[test]
    fn quoted_names_are_keyed_as_sendmail_keys_them() {
        let file = concat!(
            "\"john smith\": john\n",
            "\"sales.team\": anna\n",
            "\"John.Smith\": carol\n",
            "\"Mixed Case\": dave\n",
            "\"esc\\\"q\": eve\n",
            "\"Q\\ uote\": frank\n",
            "\"tab\tx\": george\n",
            "\"x:y\": george\n",
            "\"a%b\": henry\n",
            "\"\": ivan\n",
            "\"  pad  \": henry\n",
            "\"a!b\": eve\n",
            "\"a@b\": eve\n",
            "\"dq\".\"x\": eve\n",
            ": eve\n",
            "\"unbal: eve\n",
            "\"POSTMASTER\": eve\n",
        );
        let p = parse(file.as_bytes());
        let keys: Vec<(&str, &str, usize)> = p
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str(), e.line))
            .collect();
        assert_eq!(
            keys,
            [
                ("\"john smith\"", "john", 1),
                ("sales.team", "anna", 2),
                ("john.smith", "carol", 3),
                ("\"mixed case\"", "dave", 4),
                ("esc\\\"q", "eve", 5),
                ("q\\ uote", "frank", 6),
                ("\"tab\tx\"", "george", 7),
                ("x:y", "y\": george", 8),
                ("\"  pad  \"", "henry", 11),
                ("\"dq\".\"x\"", "eve", 14),
                ("postmaster", "eve", 17),
            ]
        );
        let problems: Vec<(usize, &str)> = p
            .problems
            .iter()
            .map(|x| (x.line, x.text.as_str()))
            .collect();
        assert_eq!(
            problems,
            [
                (9, "\"a%b\"... cannot alias non-local names"),
                (10, "\"\"... User address required"),
                (10, "\"\"... cannot alias non-local names"),
                (12, "\"a!b\"... cannot alias non-local names"),
                (13, "\"a@b\"... cannot alias non-local names"),
                (15, ": eve... illegal alias name"),
                (16, "\"unbal: eve... Unbalanced '\"'"),
            ]
        );
    }

    #[test]
    fn entries_know_the_lines_they_take() {
        let p = parse(b"# top\nsales: bob,\n\tcarol\ncont: a, \\\n b\npostmaster: root\n");
        let spans: Vec<(&str, usize, usize)> = p
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.line, e.last_line))
            .collect();
        assert_eq!(
            spans,
            [("sales", 2, 3), ("cont", 4, 5), ("postmaster", 6, 6)]
        );
    }

    #[test]
    fn comment_ends_an_entry() {
        let p = parse(b"a: b,\n# c\n\tlost\n");
        assert_eq!(p.effective()[0].value, "b,");
    }

    #[test]
    fn aliases_edits_handle_continuations() {
        let t = "# top\nsales: bob,\n\tcarol\npostmaster: root\n";
        let e = &entries(t)[0];
        assert_eq!(
            (e.name.clone(), e.shown_value(), e.line, e.last_line),
            ("sales".into(), "bob, carol".into(), 2, 3)
        );
        assert_eq!(
            set_entry(t, "sales", "dave"),
            "# top\nsales: dave\npostmaster: root\n"
        );
        assert_eq!(
            remove_entry(t, "SALES").unwrap(),
            "# top\npostmaster: root\n"
        );
        assert!(set_entry(t, "new", "x").ends_with("postmaster: root\nnew: x\n"));
    }

    // The admin finds entries as newaliases and delivery do: a quoted name
    // by its key, a colon inside quotes, a backslash continuation.
    #[test]
    fn aliases_edits_find_entries_as_delivery_does() {
        let t = "\"Sales.Team\": bob\n\"a:b\" x: y\nlong: a, \\\n  b\n\"john smith\": carol\n";
        assert_eq!(
            set_entry(t, "sales.team", "dave"),
            "sales.team: dave\n\"a:b\" x: y\nlong: a, \\\n  b\n\"john smith\": carol\n"
        );
        assert_eq!(
            remove_entry(t, "LONG").unwrap(),
            "\"Sales.Team\": bob\n\"a:b\" x: y\n\"john smith\": carol\n"
        );
        assert_eq!(
            remove_entry(t, "\"John Smith\"").unwrap(),
            "\"Sales.Team\": bob\n\"a:b\" x: y\nlong: a, \\\n  b\n"
        );
        assert!(remove_entry(t, "a").is_none());
    }

    // sendmail uses the last definition: setting or removing a name must
    // not leave another definition of it behind to take over.
    #[test]
    fn aliases_edits_take_every_definition() {
        let t = "dup: a\nother: b\ndup: c\n";
        assert_eq!(set_entry(t, "dup", "d"), "dup: d\nother: b\n");
        assert_eq!(remove_entry(t, "dup").unwrap(), "other: b\n");
    }
}
