//! The account files as text being edited: `/etc/passwd`, `/etc/shadow`
//! and `/etc/mail/passwd` lines found by their first field and changed in
//! place, every other line kept byte for byte.

use std::collections::HashMap;
use std::path::PathBuf;

/// A file being edited.
#[derive(Debug)]
pub(super) struct Text {
    pub(super) path: PathBuf,
    pub(super) text: String,
    lines: usize,
    pub(super) dirty: bool,
    /// New lines holding a password hash, after `text`: the hash may come
    /// later (an import validates everything before hashing).
    secrets: Vec<SecretLine>,
}

/// `LOGIN:HASH REST`, the hash to come.
#[derive(Debug)]
struct SecretLine {
    login: String,
    hash: Option<String>,
    rest: String,
}

impl Text {
    pub(super) fn new(path: PathBuf, text: String) -> Text {
        Text {
            path,
            lines: text.lines().count(),
            text,
            dirty: false,
            secrets: Vec::new(),
        }
    }

    /// Add a line with a hash (locked, `!`, until it is known); its number.
    pub(super) fn push_secret(&mut self, login: &str, hash: Option<&str>, rest: String) -> usize {
        self.secrets.push(SecretLine {
            login: login.to_string(),
            hash: hash.map(str::to_string),
            rest,
        });
        self.dirty = true;
        self.lines + self.secrets.len()
    }

    /// The whole new content.
    pub(super) fn render(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + self.secrets.len() * 140);
        out.push_str(&self.text);
        if !out.is_empty() && !out.ends_with('\n') && !self.secrets.is_empty() {
            out.push('\n');
        }
        for s in &self.secrets {
            out.push_str(&s.login);
            out.push(':');
            out.push_str(s.hash.as_deref().unwrap_or("!"));
            out.push_str(&s.rest);
            out.push('\n');
        }
        out
    }

    /// Append a line; its number.
    pub(super) fn append(&mut self, line: &str) -> usize {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        self.text.push_str(line);
        self.text.push('\n');
        self.lines += 1;
        self.dirty = true;
        self.lines
    }

    pub(super) fn replace(&mut self, text: String) {
        if text != self.text {
            self.lines = text.lines().count();
            self.text = text;
            self.dirty = true;
        }
    }

    /// Fill in the hashes of lines added without one, by login.
    pub(super) fn set_hashes(&mut self, hashes: &HashMap<String, String>) {
        for s in self.secrets.iter_mut() {
            if let Some(h) = hashes.get(&s.login) {
                s.hash = Some(h.clone());
            }
        }
    }
}

/// Whether a line (without its newline) is `name`'s passwd/shadow-style line.
fn colon_line_of(name: &str) -> impl Fn(&str) -> bool + '_ {
    move |body| body.split(':').next() == Some(name) && body.contains(':')
}

/// Whether a line is virtual login `login`'s line in `/etc/mail/passwd`
/// (fields: 0 login, 1 secret, 2 mailbox, 3 quota, 4 full name; the last
/// may hold colons).  Logins compare without case; `#` lines are comments.
fn virtual_line_of(login: &str) -> impl Fn(&str) -> bool + '_ {
    move |body| {
        !body.trim_start().starts_with('#')
            && body.contains(':')
            && body
                .split(':')
                .next()
                .is_some_and(|f| f.trim().eq_ignore_ascii_case(login))
    }
}

/// The lines of passwd(5) text that are `name`'s entries, found by the
/// one passwd reader ([`crate::users::parse_passwd`]).
fn passwd_lines(text: &str, name: &str) -> Vec<usize> {
    crate::users::parse_passwd(text)
        .into_iter()
        .filter(|e| e.user.name == name)
        .map(|e| e.line)
        .collect()
}

/// Remove `name`'s entries from passwd(5) text; `None` when it has none.
pub(super) fn remove_passwd_entry(text: &str, name: &str) -> Option<String> {
    let lines = passwd_lines(text, name);
    remove_lines_of(text, |n, _| lines.contains(&n))
}

/// Set fields of `name`'s passwd(5) entry (the first, the one that
/// counts); `None` when it has none.
pub(super) fn set_passwd_fields(text: &str, name: &str, set: &[(usize, &str)]) -> Option<String> {
    let first = passwd_lines(text, name).first().copied();
    set_fields_of(text, |n, _| Some(n) == first, usize::MAX, set)
}

/// Remove the shadow-style line of `name`; `None` when absent.
pub fn remove_colon_line(text: &str, name: &str) -> Option<String> {
    remove_lines_of(text, |_, l| colon_line_of(name)(l))
}

/// Set fields of `name`'s shadow-style line; `None` when absent.
pub(super) fn set_colon_fields(text: &str, name: &str, set: &[(usize, &str)]) -> Option<String> {
    set_fields_of(text, |_, l| colon_line_of(name)(l), usize::MAX, set)
}

/// Set fields of virtual login `login`'s line; `None` when absent.
pub(super) fn set_virtual_fields(text: &str, login: &str, set: &[(usize, &str)]) -> Option<String> {
    set_fields_of(text, |_, l| virtual_line_of(login)(l), 5, set)
}

/// Remove virtual login `login`'s line; `None` when absent.
pub(super) fn remove_virtual_line(text: &str, login: &str) -> Option<String> {
    remove_lines_of(text, |_, l| virtual_line_of(login)(l))
}

/// Remove every line `is_it` picks (it sees the 1-based line number and
/// the line without its newline), keeping the others byte for byte;
/// `None` when none is.
fn remove_lines_of(text: &str, is_it: impl Fn(usize, &str) -> bool) -> Option<String> {
    let mut hit = false;
    let mut out = String::with_capacity(text.len());
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if is_it(i + 1, l.strip_suffix('\n').unwrap_or(l)) {
            hit = true;
            continue;
        }
        out.push_str(l);
    }
    hit.then_some(out)
}

/// Set fields (split at most into `max_fields`) of the first line `is_it`
/// picks, keeping every other line byte for byte; `None` when none is.
fn set_fields_of(
    text: &str,
    is_it: impl Fn(usize, &str) -> bool,
    max_fields: usize,
    set: &[(usize, &str)],
) -> Option<String> {
    let mut hit = false;
    let mut out = String::with_capacity(text.len() + 128);
    for (i, l) in text.split_inclusive('\n').enumerate() {
        let (body, nl) = match l.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (l, ""),
        };
        if !hit && is_it(i + 1, body) {
            hit = true;
            let mut f: Vec<&str> = body.splitn(max_fields, ':').collect();
            for &(i, v) in set {
                while f.len() <= i {
                    f.push("");
                }
                f[i] = v;
            }
            out.push_str(&f.join(":"));
            out.push_str(nl);
        } else {
            out.push_str(l);
        }
    }
    hit.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_edits() {
        let t = "root:x:0:0::/root:/bin/sh\nbob:old:1:2:3:4:5:6:\nbobby:x\n";
        assert_eq!(
            remove_colon_line(t, "bob").unwrap(),
            "root:x:0:0::/root:/bin/sh\nbobby:x\n"
        );
        assert!(remove_colon_line(t, "bo").is_none());
        assert_eq!(
            set_colon_fields(t, "bob", &[(1, "$6$new"), (2, "99")]).unwrap(),
            "root:x:0:0::/root:/bin/sh\nbob:$6$new:99:2:3:4:5:6:\nbobby:x\n"
        );
        assert_eq!(
            set_colon_fields(t, "bobby", &[(2, "7")]).unwrap(),
            "root:x:0:0::/root:/bin/sh\nbob:old:1:2:3:4:5:6:\nbobby:x:7".to_string() + "\n"
        );
        let v = "# c\nInfo@X.com:{PLAIN}a:/m:1M:Full: Name\n";
        assert_eq!(
            set_virtual_fields(v, "info@x.com", &[(1, "$6$h"), (3, "")]).unwrap(),
            "# c\nInfo@X.com:$6$h:/m::Full: Name\n"
        );
        assert_eq!(remove_virtual_line(v, "info@x.com").unwrap(), "# c\n");
        // The passwd file's entries are found by the passwd reader: a
        // comment or a broken line that starts with the name is none.
        let p = "# bob:x:1:1::/:/bin/sh\nbob:broken\nbob:x:1000:1000::/home/bob:/bin/sh\nbob:x:1001:1::/:/bin/sh\n";
        assert_eq!(
            set_passwd_fields(p, "bob", &[(1, "*")]).unwrap(),
            "# bob:x:1:1::/:/bin/sh\nbob:broken\nbob:*:1000:1000::/home/bob:/bin/sh\nbob:x:1001:1::/:/bin/sh\n"
        );
        assert_eq!(
            remove_passwd_entry(p, "bob").unwrap(),
            "# bob:x:1:1::/:/bin/sh\nbob:broken\n"
        );
        assert!(remove_passwd_entry(p, "bo").is_none());
    }
}
