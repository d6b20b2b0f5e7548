//! SMTP command lines (RFC 5321 §4.1): a verb, then arguments; `MAIL
//! FROM:<path> params` and `RCPT TO:<path> params` with ESMTP parameters
//! (`KEY[=VALUE]`, RFC 5321 §4.1.2).
//!
//! As liberal as sendmail 8 where clients are known to stray: a space after
//! the colon (`MAIL FROM: <a@b>`) and a path without angle brackets are
//! accepted.

/// A command line split into its verb (upper case) and the rest.
#[derive(Debug, PartialEq, Eq)]
pub struct Command<'a> {
    pub verb: String,
    pub arg: &'a str,
}

/// Split a line (without CRLF).  `None` for bytes no command may hold
/// (controls, 8-bit), which get a 500.
pub fn split(line: &[u8]) -> Option<Command<'_>> {
    if line
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f || b >= 0x80)
    {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let text = text.trim_end();
    let (verb, arg) = match text.find([' ', '\t']) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    };
    Some(Command {
        verb: verb.to_ascii_uppercase(),
        arg,
    })
}

/// `MAIL FROM:` or `RCPT TO:`: the path (without brackets) and the
/// parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct PathArg {
    /// The address inside `<>` (empty for the null path), source route
    /// included.
    pub path: String,
    /// The path as replies show it: as the client wrote it, `<a@b>` or a
    /// bare `a@b` (sendmail echoes either).
    pub shown: String,
    pub params: Vec<(String, Option<String>)>,
}

/// Why a path argument is unusable: the reply code and text.
pub type Refusal = (u16, String);

/// Parse the argument of `MAIL` (`keyword` = `FROM`) or `RCPT` (`TO`).
pub fn path_arg(arg: &str, keyword: &str) -> Result<PathArg, Refusal> {
    let syntax = || {
        (
            501,
            format!(
                "5.5.2 Syntax error in parameters scanning \"{}\"",
                keyword.to_ascii_lowercase()
            ),
        )
    };
    let rest = match arg.get(..keyword.len()) {
        Some(k) if k.eq_ignore_ascii_case(keyword) => &arg[keyword.len()..],
        _ => return Err(syntax()),
    };
    let rest = rest
        .trim_start()
        .strip_prefix(':')
        .ok_or_else(syntax)?
        .trim_start();
    let (path, shown, params) = if let Some(inner) = rest.strip_prefix('<') {
        let Some(end) = closing_bracket(inner) else {
            let word = rest.split(' ').next().unwrap_or(rest);
            return Err((553, format!("5.0.0 {word}... Unbalanced '<'")));
        };
        let params = &inner[end + 1..];
        if params.starts_with('>') {
            let word = rest.split(' ').next().unwrap_or(rest);
            return Err((553, format!("5.0.0 {word}... Unbalanced '>'")));
        }
        (&inner[..end], &rest[..end + 2], params)
    } else {
        // No brackets: the path ends at the first space outside quotes
        // (`RCPT TO:"john smith"@host` is one path, as sendmail reads it).
        let (p, params) = match crate::address::unquoted_find(rest, ' ') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        (p, p, params)
    };
    if path.is_empty() && !rest.starts_with('<') {
        return Err(syntax());
    }
    if path.len() > 512 {
        return Err((501, "5.1.3 Path too long".to_string()));
    }
    let mut out = Vec::new();
    for p in params.split(' ').filter(|p| !p.is_empty()) {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (p, None),
        };
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(syntax());
        }
        out.push((k.to_ascii_uppercase(), v));
    }
    Ok(PathArg {
        path: path.to_string(),
        shown: shown.to_string(),
        params: out,
    })
}

/// The index of the `>` closing a path (quotes respected).
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Decode xtext (RFC 3461 §4): `+XX` is the byte XX.  `None` when malformed.
pub fn xtext_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c if (b'!'..=b'~').contains(&c) && c != b'=' => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_arguments() {
        let c = split(b"mail FROM:<a@b> SIZE=10").unwrap();
        assert_eq!(c.verb, "MAIL");
        assert_eq!(c.arg, "FROM:<a@b> SIZE=10");
        assert_eq!(split(b"QUIT").unwrap().arg, "");
        assert!(split(b"HELO \x01").is_none());
    }

    #[test]
    fn paths() {
        let p = path_arg("FROM:<a@b> SIZE=10 BODY=8BITMIME", "FROM").unwrap();
        assert_eq!(p.path, "a@b");
        assert_eq!(
            p.params,
            [
                ("SIZE".to_string(), Some("10".to_string())),
                ("BODY".to_string(), Some("8BITMIME".to_string()))
            ]
        );
        assert_eq!(path_arg("from: <>", "FROM").unwrap().path, "");
        assert_eq!(path_arg("TO:bob", "TO").unwrap().path, "bob");
        assert_eq!(path_arg("TO:<\"a>b\"@c>", "TO").unwrap().path, "\"a>b\"@c");
        // A quoted local part holds its space without brackets too.
        let p = path_arg("TO: \"john smith\"@c NOTIFY=NEVER", "TO").unwrap();
        assert_eq!(p.path, "\"john smith\"@c");
        assert_eq!(p.shown, "\"john smith\"@c");
        assert_eq!(
            p.params,
            [("NOTIFY".to_string(), Some("NEVER".to_string()))]
        );
        assert_eq!(
            path_arg("TO:<a@b", "TO").unwrap_err(),
            (553, "5.0.0 <a@b... Unbalanced '<'".to_string())
        );
        assert_eq!(
            path_arg("TO:<a@b>>", "TO").unwrap_err(),
            (553, "5.0.0 <a@b>>... Unbalanced '>'".to_string())
        );
        assert_eq!(path_arg("TO:a@b", "TO").unwrap().shown, "a@b");
        assert_eq!(path_arg("TO:<a@b> X=1", "TO").unwrap().shown, "<a@b>");
        assert!(path_arg("FROM:", "FROM").is_err());
        assert!(path_arg("TO <a@b>", "TO").is_err());
    }

    #[test]
    fn xtext() {
        assert_eq!(
            xtext_decode("rfc822;a+2Bb@c").as_deref(),
            Some("rfc822;a+b@c")
        );
        assert_eq!(xtext_decode("a+2"), None);
    }
}
