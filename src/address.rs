//! Mail addresses: RFC 5322 address lists as they appear in headers and on
//! sendmail's command line, reduced to addr-specs.
//!
//! Parsing is deliberately as liberal as sendmail 8's: obsolete route
//! addresses (`<@a,@b:user@host>`), comments anywhere, groups
//! (`undisclosed-recipients:;`), unqualified local names and quoted local
//! parts are all accepted.  What is refused gets sendmail's words:
//! `Unbalanced '<'`, `Unbalanced '"'`, `Unbalanced '('`, `User address
//! required`, `Hostname required`.
//!
//! Each parsed address keeps the text it was written as ([`Mailbox::display`]):
//! sendmail stores that form in its queue files and prints it in `mailq`,
//! and re-parses it when delivering.

use std::fmt;

/// One address from a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The element as written, trimmed (`Frank Q <frank@remote.test>`).
    pub display: String,
    /// The addr-spec without angle brackets, comments or route
    /// (`frank@remote.test`); empty for the null address `<>`.
    pub addr: String,
}

impl Mailbox {
    /// The local part and domain of [`Mailbox::addr`].
    pub fn parts(&self) -> (&str, Option<&str>) {
        split_addr(&self.addr)
    }
}

/// Why an address does not parse; the texts are sendmail 8's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrError {
    UnbalancedAngle,
    UnbalancedCloseAngle,
    UnbalancedQuote,
    UnbalancedParen,
    UserRequired,
    HostRequired,
    /// Control characters (CR, LF, NUL) inside an address.
    IllegalCharacter,
    /// An addr-spec longer than [`MAX_ADDRESS`] bytes.
    TooLong,
}

/// The longest addr-spec taken: twice RFC 5321's 256-octet path, the
/// SMTP server's limit too.  A hostile 100 KB argument is refused here,
/// before it reaches a queue file, a log line or a bounce.
pub const MAX_ADDRESS: usize = 512;

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrError::UnbalancedAngle => "Unbalanced '<'",
            AddrError::UnbalancedCloseAngle => "Unbalanced '>'",
            AddrError::UnbalancedQuote => "Unbalanced '\"'",
            AddrError::UnbalancedParen => "Unbalanced '('",
            AddrError::UserRequired => "User address required",
            AddrError::HostRequired => "Hostname required",
            AddrError::IllegalCharacter => "Illegal character in address",
            AddrError::TooLong => "Address too long (512 bytes max)",
        })
    }
}

impl std::error::Error for AddrError {}

/// Split a header value or command-line argument into its addresses.
/// Group syntax is understood: `team: a@x, b@y;` yields `a@x` and `b@y`,
/// `undisclosed-recipients:;` yields nothing.
pub fn parse_list(text: &str) -> Result<Vec<Mailbox>, AddrError> {
    let mut out = Vec::new();
    for element in split_elements(text)? {
        let element = element.trim();
        if element.is_empty() {
            continue;
        }
        let addr = extract_addr(element)?;
        if addr.is_empty() && !element.contains('<') {
            continue; // only comments or white space
        }
        out.push(Mailbox {
            display: element.to_string(),
            addr,
        });
    }
    Ok(out)
}

/// Parse exactly one address (an envelope sender such as `-f`'s).  `<>`
/// parses as the null address.
pub fn parse_one(text: &str) -> Result<Mailbox, AddrError> {
    let element = text.trim();
    let addr = extract_addr(element)?;
    Ok(Mailbox {
        display: element.to_string(),
        addr,
    })
}

/// Split at top-level commas, dropping group display names (`name:`) and
/// group terminators (`;`).
fn split_elements(text: &str) -> Result<Vec<String>, AddrError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let mut angle = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\0' | '\r' | '\n' => {
                // Folded header lines reach here unfolded; anything else
                // is a control character that never belongs in an address.
                if c == '\0' {
                    return Err(AddrError::IllegalCharacter);
                }
                cur.push(' ');
            }
            '"' => {
                cur.push(c);
                loop {
                    match chars.next() {
                        None => return Err(AddrError::UnbalancedQuote),
                        Some('\\') => {
                            cur.push('\\');
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        Some('"') => {
                            cur.push('"');
                            break;
                        }
                        Some(x) => cur.push(x),
                    }
                }
            }
            '(' => {
                cur.push(c);
                let mut depth = 1;
                while depth > 0 {
                    match chars.next() {
                        None => return Err(AddrError::UnbalancedParen),
                        Some('\\') => {
                            cur.push('\\');
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        Some(x) => {
                            if x == '(' {
                                depth += 1;
                            } else if x == ')' {
                                depth -= 1;
                            }
                            cur.push(x);
                        }
                    }
                }
            }
            '<' => {
                angle += 1;
                cur.push(c);
            }
            '>' => {
                if angle == 0 {
                    return Err(AddrError::UnbalancedCloseAngle);
                }
                angle -= 1;
                cur.push(c);
            }
            ',' if angle == 0 => {
                out.push(std::mem::take(&mut cur));
            }
            ':' if angle == 0 && is_group_name(&cur) => {
                // "group:" display name; the members follow.
                cur.clear();
            }
            ';' if angle == 0 => {
                out.push(std::mem::take(&mut cur));
            }
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            _ => cur.push(c),
        }
    }
    if angle > 0 {
        return Err(AddrError::UnbalancedAngle);
    }
    out.push(cur);
    Ok(out)
}

/// A `:` ends a group display name unless what precedes it could be part of
/// an address (an `@` — as in `@route:` — or a domain literal).
fn is_group_name(before: &str) -> bool {
    let t = strip_comments(before);
    let t = t.trim();
    !t.is_empty() && !t.contains('@') && !t.contains('[') && !t.contains(':')
}

/// Remove `(comments)` outside quoted strings.
fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    let mut depth = 0;
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            '\\' if depth > 0 => {
                chars.next();
            }
            '\\' => {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '"' if depth == 0 => {
                quoted = true;
                out.push(c);
            }
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The addr-spec inside one element: the content of the last `<...>` if
/// there is one (minus any source route), else the element itself; comments
/// and white space outside quotes removed.
fn extract_addr(element: &str) -> Result<String, AddrError> {
    if element.contains('\0') || element.contains('\n') || element.contains('\r') {
        return Err(AddrError::IllegalCharacter);
    }
    let text = strip_comments(element);
    let inner = match angle_content(&text)? {
        Some(inner) => inner,
        None => text,
    };
    let mut addr = squeeze_outside_quotes(&inner);
    // obsolete source route: <@a,@b:user@host>
    if addr.starts_with('@') {
        match addr.find(':') {
            Some(i) => addr = addr[i + 1..].to_string(),
            None => return Err(AddrError::UserRequired),
        }
    }
    if addr.is_empty() {
        return Ok(addr);
    }
    if addr.len() > MAX_ADDRESS {
        return Err(AddrError::TooLong);
    }
    let (local, domain) = split_addr(&addr);
    if local.is_empty() {
        return Err(AddrError::UserRequired);
    }
    if domain == Some("") {
        return Err(AddrError::HostRequired);
    }
    Ok(addr)
}

/// The text between the last top-level `<` and its `>`.
fn angle_content(text: &str) -> Result<Option<String>, AddrError> {
    let mut quoted = false;
    let mut start = None;
    let mut found = None;
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == '\\' {
            i += 1; // the next character is escaped, in quotes or not
        } else if quoted {
            if c == '"' {
                quoted = false;
            }
        } else if c == '"' {
            quoted = true;
        } else if c == '<' {
            start = Some(i);
        } else if c == '>' {
            match start {
                Some(s) => {
                    found = Some(bytes[s + 1..i].iter().collect::<String>());
                    start = None;
                }
                None => return Err(AddrError::UnbalancedCloseAngle),
            }
        }
        i += 1;
    }
    if quoted {
        return Err(AddrError::UnbalancedQuote);
    }
    if start.is_some() {
        return Err(AddrError::UnbalancedAngle);
    }
    Ok(found)
}

/// Drop white space outside quoted strings.
fn squeeze_outside_quotes(s: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if quoted {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                quoted = false;
            }
        } else if c == '"' {
            quoted = true;
            out.push(c);
        } else if c == '\\' {
            out.push(c);
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Split an addr-spec at its last `@` outside quotes: `("user", Some("host"))`
/// or `("user", None)` for an unqualified name.
pub fn split_addr(addr: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    let mut at = None;
    let mut escaped = false;
    for (i, c) in addr.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '@' if !quoted => at = Some(i),
            _ => {}
        }
    }
    match at {
        Some(i) => (&addr[..i], Some(&addr[i + 1..])),
        None => (addr, None),
    }
}

/// The local part with surrounding quotes and backslash escapes removed
/// (`"john smith"` → `john smith`).
pub fn unquote_local(local: &str) -> String {
    let mut out = String::new();
    let mut chars = local.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {}
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// A local part as sendmail 8 hands it on for this host (its standard
/// configuration's `dequote` map, in ruleset Parse0, for unqualified names
/// and names in this host's own domains): a local part that is exactly one
/// quoted string loses its quotes, unless the string holds white space,
/// which only quotes can carry.  Backslash escapes stay as written.
///
/// `"sales.team"` → `sales.team`, `"esc\"q"` → `esc\"q`,
/// `"john smith"` → `"john smith"` (unchanged), `"john".smith` →
/// unchanged (not one quoted string).  The result is how the name is
/// looked up in the aliases, and how the aliases file's own names are
/// keyed ([`crate::aliases`]): so `"John.Smith"`, `"john.smith"` and
/// `john.smith` are one name, and `"John Smith"` is `"john smith"` (case
/// folds, spacing counts).
pub fn dequote_local(local: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let Some(inner) = local.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return Cow::Borrowed(local);
    };
    // One quoted string: no unescaped quote inside, no dangling backslash;
    // and nothing only quotes may carry (white space).
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' | ' ' | '\t' => return Cow::Borrowed(local),
            _ => {}
        }
    }
    if escaped {
        return Cow::Borrowed(local);
    }
    Cow::Borrowed(inner)
}

/// The characters of `s` outside quoted strings and backslash escapes,
/// with their byte indexes.
fn unquoted_chars(s: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut quoted = false;
    let mut escaped = false;
    s.char_indices().filter(move |&(_, c)| {
        if escaped {
            escaped = false;
            return false;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            _ => return !quoted,
        }
        false
    })
}

/// Does `s` hold `c` outside quoted strings and escapes?
pub fn has_unquoted(s: &str, c: char) -> bool {
    unquoted_find(s, c).is_some()
}

/// The byte index of the first `c` outside quoted strings and escapes.
pub fn unquoted_find(s: &str, c: char) -> Option<usize> {
    unquoted_chars(s).find(|&(_, x)| x == c).map(|(i, _)| i)
}

/// The byte index of the last `c` outside quoted strings and escapes.
pub fn unquoted_rfind(s: &str, c: char) -> Option<usize> {
    unquoted_chars(s)
        .filter(|&(_, x)| x == c)
        .last()
        .map(|(i, _)| i)
}

/// `addr` with `@domain` appended when it is unqualified.
pub fn qualify(addr: &str, domain: &str) -> String {
    if addr.is_empty() {
        return String::new();
    }
    match split_addr(addr) {
        (_, Some(_)) => addr.to_string(),
        (local, None) => format!("{local}@{domain}"),
    }
}

/// The key under which two spellings of one address are the same
/// recipient: the domain is case-insensitive; an unqualified local name is
/// case-insensitive too (sendmail lower-cases local user names).
pub fn dedup_key(addr: &str) -> String {
    match split_addr(addr) {
        (local, Some(d)) => format!("{local}@{}", d.to_ascii_lowercase()),
        (local, None) => local.to_ascii_lowercase(),
    }
}

/// A display name for `From:`, quoted when it holds characters that are
/// special in addresses (as sendmail's MustQuoteChars).
pub fn quote_display_name(name: &str) -> String {
    let special = |c: char| "()<>@,;:\\\".[]'".contains(c);
    if name.chars().any(special) {
        let escaped: String = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_quoted_like_sendmail() {
        assert_eq!(quote_display_name("Dave Q. User"), "\"Dave Q. User\"");
        assert_eq!(quote_display_name("root"), "root");
        assert_eq!(quote_display_name("CronDaemon"), "CronDaemon");
    }

    fn addrs(s: &str) -> Vec<String> {
        parse_list(s).unwrap().into_iter().map(|m| m.addr).collect()
    }

    #[test]
    fn plain_and_named() {
        assert_eq!(addrs("eve, dave"), ["eve", "dave"]);
        assert_eq!(
            addrs("Frank Q <frank@remote.test>, \"Doe, John\" <jd@x.org>"),
            ["frank@remote.test", "jd@x.org"]
        );
        assert_eq!(addrs("bob@example.com (Bob Smith)"), ["bob@example.com"]);
        let m = &parse_list(" Frank Q <frank@remote.test> ").unwrap()[0];
        assert_eq!(m.display, "Frank Q <frank@remote.test>");
    }

    #[test]
    fn an_address_over_512_bytes_is_refused() {
        let long = format!("{}@example.com", "a".repeat(MAX_ADDRESS));
        assert_eq!(parse_one(&long).unwrap_err(), AddrError::TooLong);
        assert_eq!(parse_list(&long).unwrap_err(), AddrError::TooLong);
        let fits = format!("{}@example.com", "a".repeat(MAX_ADDRESS - 12));
        assert_eq!(parse_one(&fits).unwrap().addr, fits);
        // A long comment or display name is not the address.
        let named = format!("\"{}\" <bob@example.com>", "N".repeat(2000));
        assert_eq!(parse_one(&named).unwrap().addr, "bob@example.com");
    }

    #[test]
    fn include_is_not_a_group() {
        assert_eq!(addrs(":include:/tmp/x"), [":include:/tmp/x"]);
    }

    #[test]
    fn groups_and_routes() {
        assert_eq!(addrs("undisclosed-recipients:;"), Vec::<String>::new());
        assert_eq!(
            addrs("team: a@x.org, b@y.org;, c@z.org"),
            ["a@x.org", "b@y.org", "c@z.org"]
        );
        assert_eq!(
            addrs("<@relay.example,@b.example:user@host.example>"),
            ["user@host.example"]
        );
    }

    #[test]
    fn quoted_local_parts() {
        assert_eq!(
            addrs("\"john smith\"@example.com"),
            ["\"john smith\"@example.com"]
        );
        assert_eq!(split_addr("\"a@b\"@c.d"), ("\"a@b\"", Some("c.d")));
        // An escaped quote outside quotes opens nothing.
        assert_eq!(addrs("esc\\\"q, eve"), ["esc\\\"q", "eve"]);
        assert_eq!(addrs("<esc\\\"q@x.y>"), ["esc\\\"q@x.y"]);
        assert_eq!(unquote_local("\"john smith\""), "john smith");
    }

    // What sendmail 8.17's Parse0 made of each (the oracle's `-bt /parse`
    // and the keys its newaliases wrote).
    #[test]
    fn dequoting_as_sendmail_does() {
        for (written, dequoted) in [
            ("\"sales.team\"", "sales.team"),
            ("\"John.Smith\"", "John.Smith"),
            ("\"esc\\\"q\"", "esc\\\"q"),
            ("\"Q\\ uote\"", "Q\\ uote"),
            ("\"x:y\"", "x:y"),
            ("\"a@b\"", "a@b"),
            ("\"\"", ""),
            ("\"john smith\"", "\"john smith\""),
            ("\"  pad  \"", "\"  pad  \""),
            ("\"tab\tx\"", "\"tab\tx\""),
            ("\"john\".smith", "\"john\".smith"),
            ("\"dq\".\"x\"", "\"dq\".\"x\""),
            ("john.smith", "john.smith"),
            ("\\bob", "\\bob"),
            ("\"open\\\"", "\"open\\\""),
        ] {
            assert_eq!(dequote_local(written), dequoted, "{written}");
        }
    }

    #[test]
    fn characters_outside_quotes() {
        assert!(has_unquoted("a%b", '%'));
        assert!(!has_unquoted("\"a%b\"", '%'));
        assert!(!has_unquoted("a\\%b", '%'));
        assert_eq!(unquoted_find("\"a+b\"+c", '+'), Some(5));
        assert_eq!(unquoted_rfind("a%b\"%\"%c", '%'), Some(6));
        assert_eq!(unquoted_find("\"a:b\":c", ':'), Some(5));
    }

    #[test]
    fn errors_use_sendmails_words() {
        assert_eq!(
            parse_list("<foo@bar").unwrap_err().to_string(),
            "Unbalanced '<'"
        );
        assert_eq!(
            parse_list("\"foo@bar").unwrap_err().to_string(),
            "Unbalanced '\"'"
        );
        assert_eq!(
            parse_list("foo (bar").unwrap_err().to_string(),
            "Unbalanced '('"
        );
        assert_eq!(
            parse_list("@example.com").unwrap_err(),
            AddrError::UserRequired
        );
        assert_eq!(parse_list("user@").unwrap_err(), AddrError::HostRequired);
    }

    #[test]
    fn null_sender() {
        assert_eq!(parse_one("<>").unwrap().addr, "");
        assert_eq!(parse_one("<a@b.c>").unwrap().addr, "a@b.c");
    }

    #[test]
    fn dedup_keys() {
        assert_eq!(dedup_key("Bob@Example.COM"), "Bob@example.com");
        assert_eq!(dedup_key("Dave"), "dave");
        assert_eq!(qualify("dave", "example.com"), "dave@example.com");
        assert_eq!(qualify("a@b", "example.com"), "a@b");
    }
}
