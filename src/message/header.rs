//! A message header kept as the raw bytes it arrived as.
//!
//! Submission edits headers (adds `Received:`, `Date:`, `Message-Id:`,
//! `From:`, removes `Bcc:`) by adding and dropping whole fields; the bytes of
//! every field it does not touch are kept exactly, including folding,
//! 8-bit text and odd spacing.  Nothing is ever re-serialised from a parsed
//! form, so signatures and encodings survive.

/// One header field: `Name: value`, possibly folded over several lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field name as written, without the colon or trailing spaces.
    pub name: String,
    /// The complete field: name, colon, value, continuation lines and the
    /// final LF.
    pub raw: Vec<u8>,
}

impl Field {
    /// Build a field from a name and a value that may contain `\n\t`
    /// continuations.  A final LF is added.
    pub fn new(name: &str, value: &str) -> Field {
        let mut raw = Vec::with_capacity(name.len() + value.len() + 3);
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value.as_bytes());
        raw.push(b'\n');
        Field {
            name: name.to_string(),
            raw,
        }
    }

    /// Is this field called `name` (case-insensitive)?
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The raw value: everything after the colon, continuation lines
    /// included, without the final LF.
    pub fn raw_value(&self) -> &[u8] {
        let colon = self.raw.iter().position(|&b| b == b':').unwrap_or(0);
        let mut v = &self.raw[colon + 1..];
        if v.last() == Some(&b'\n') {
            v = &v[..v.len() - 1];
        }
        v
    }

    /// The value unfolded (line breaks removed) and trimmed, as text;
    /// invalid UTF-8 is replaced.
    pub fn value(&self) -> String {
        let v = self.raw_value();
        let unfolded: Vec<u8> = v
            .iter()
            .copied()
            .filter(|&b| b != b'\n' && b != b'\r')
            .collect();
        String::from_utf8_lossy(&unfolded).trim().to_string()
    }
}

/// Is `line` (without its LF) the first line of a header field?  sendmail's
/// rule: a name of printable characters other than `:`, optional white
/// space, then `:`.
pub fn field_name(line: &[u8]) -> Option<&str> {
    let end = line
        .iter()
        .position(|&b| b <= b' ' || b == b':' || b == 0x7f)?;
    if end == 0 {
        return None;
    }
    let rest = &line[end..];
    let after_ws = rest.iter().position(|&b| b != b' ' && b != b'\t')?;
    if rest[after_ws] != b':' {
        return None;
    }
    std::str::from_utf8(&line[..end]).ok()
}

/// Is `line` a continuation of the previous field (starts with white space)?
pub fn is_continuation(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ') | Some(b'\t'))
}

/// All fields of a header, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub fields: Vec<Field>,
}

impl Header {
    /// Parse a complete header block (LF line ends, no separator line).
    /// Lines that are neither fields nor continuations are dropped; the
    /// collector never passes such lines here.
    pub fn parse(block: &[u8]) -> Header {
        let mut h = Header::default();
        for line in block.split_inclusive(|&b| b == b'\n') {
            let bare = line.strip_suffix(b"\n").unwrap_or(line);
            if is_continuation(bare)
                && let Some(last) = h.fields.last_mut()
            {
                last.raw.extend_from_slice(line);
                continue;
            }
            if let Some(name) = field_name(bare) {
                let mut raw = line.to_vec();
                if raw.last() != Some(&b'\n') {
                    raw.push(b'\n');
                }
                h.fields.push(Field {
                    name: name.to_string(),
                    raw,
                });
            }
        }
        h
    }

    /// Add a continuation line to the last field (used while collecting).
    pub fn continue_last(&mut self, line: &[u8]) -> bool {
        match self.fields.last_mut() {
            Some(f) => {
                f.raw.extend_from_slice(line);
                true
            }
            None => false,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.is(name))
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every field called `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
        self.fields.iter().filter(move |f| f.is(name))
    }

    /// Remove every field called `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|f| !f.is(name));
        before - self.fields.len()
    }

    /// Does any field name start with `prefix` (case-insensitive)?
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.fields.iter().any(|f| {
            f.name.len() >= prefix.len() && f.name[..prefix.len()].eq_ignore_ascii_case(prefix)
        })
    }

    /// The header as bytes, fields in order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.fields.iter().map(|f| f.raw.len()).sum());
        for f in &self.fields {
            out.extend_from_slice(&f.raw);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_fields_like_sendmail() {
        assert_eq!(field_name(b"Subject: hi"), Some("Subject"));
        assert_eq!(field_name(b"X-Odd  : spaced"), Some("X-Odd"));
        assert_eq!(field_name(b"Subject:"), Some("Subject"));
        assert_eq!(field_name(b"not a header"), None);
        assert_eq!(field_name(b": empty name"), None);
        assert_eq!(field_name(b" Subject: x"), None);
    }

    #[test]
    fn keeps_raw_bytes_and_folding() {
        let block = b"X-A: 1\n  cont space\n\tcont tab\nTo: dave\nX-U: h\xc3\xa9\n";
        let h = Header::parse(block);
        assert_eq!(h.fields.len(), 3);
        assert_eq!(h.to_bytes(), block.to_vec());
        assert_eq!(h.get("x-a").unwrap().value(), "1  cont space\tcont tab");
        assert_eq!(h.get("TO").unwrap().raw_value(), b" dave");
    }

    #[test]
    fn remove_and_prefix() {
        let mut h = Header::parse(b"Bcc: a\nTo: b\nbcc: c\nResent-To: d\n");
        assert!(h.has_prefix("resent-"));
        assert_eq!(h.remove("BCC"), 2);
        assert_eq!(h.to_bytes(), b"To: b\nResent-To: d\n".to_vec());
    }
}
