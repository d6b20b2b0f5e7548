//! POP3 command lines (RFC 1939 §3): a keyword, then arguments separated
//! by single spaces; printable ASCII only.

/// A command as read: the keyword in upper case and the rest of the line.
#[derive(Debug, PartialEq, Eq)]
pub struct Command<'a> {
    pub keyword: String,
    pub rest: &'a str,
}

/// Parse a line (without its CRLF).  `Err` carries the reply text.
pub fn parse(line: &[u8]) -> Result<Command<'_>, &'static str> {
    if line
        .iter()
        .any(|&b| !(0x20..0x7f).contains(&b) && b != b'\t')
    {
        return Err("-ERR Invalid characters in command.");
    }
    // Printable ASCII: valid UTF-8.
    let text = std::str::from_utf8(line).map_err(|_| "-ERR Invalid characters in command.")?;
    let (kw, rest) = match text.split_once(' ') {
        Some((k, r)) => (k, r),
        None => (text, ""),
    };
    if kw.is_empty() || kw.len() > 8 || !kw.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err("-ERR Unknown command.");
    }
    Ok(Command {
        keyword: kw.to_ascii_uppercase(),
        rest,
    })
}

/// A message number argument, 1-based, within `count`; the 0-based index
/// or the reply.
pub fn message_number(arg: &str, count: usize) -> Result<usize, String> {
    if arg.is_empty() {
        return Err("-ERR Message number required.".into());
    }
    if !arg.bytes().all(|b| b.is_ascii_digit()) || arg.len() > 10 {
        return Err(format!("-ERR Invalid message number: {}", clip(arg)));
    }
    match arg.parse::<usize>() {
        Ok(n) if n >= 1 && n <= count => Ok(n - 1),
        _ => Err(format!("-ERR There's no message {}.", clip(arg))),
    }
}

/// One argument exactly: the argument, or the reply for noise after it.
pub fn one_arg(rest: &str) -> Result<&str, String> {
    match rest.split_once(' ') {
        None => Ok(rest),
        Some((a, _)) => Err(format!("-ERR Noise after message number: {}", clip(a))),
    }
}

/// At most 40 characters of client text in a reply (RFC 1939 §3).
pub fn clip(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_arguments_and_bad_bytes() {
        let c = parse(b"retr 1").unwrap();
        assert_eq!((c.keyword.as_str(), c.rest), ("RETR", "1"));
        let c = parse(b"PASS two words").unwrap();
        assert_eq!(c.rest, "two words");
        assert!(parse(b"US\0ER x").is_err());
        assert!(parse("USER b\u{e9}b".as_bytes()).is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"R3TR 1").is_err());
    }

    #[test]
    fn message_numbers_are_strict() {
        assert_eq!(message_number("1", 3), Ok(0));
        assert_eq!(message_number("3", 3), Ok(2));
        assert!(message_number("0", 3).is_err());
        assert!(message_number("4", 3).is_err());
        assert!(message_number("4294967297", 3).is_err());
        assert!(message_number("-1", 3).is_err());
        assert!(message_number("1x", 3).is_err());
        assert!(message_number("+1", 3).is_err());
        assert_eq!(
            one_arg("1 2"),
            Err("-ERR Noise after message number: 1".to_string())
        );
    }
}
