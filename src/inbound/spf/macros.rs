//! SPF macro strings (RFC 7208 §7): parsing, and expansion against the
//! check's values.
//!
//! A macro string is what follows `include:`, `a:`, `exists:`,
//! `redirect=`... (a domain-spec), and the text of an explanation.  It is
//! parsed once, with the record ([`super::record`]), so that a bad macro
//! anywhere is a syntax error before anything is evaluated:
//!
//! | text | means |
//! |------|-------|
//! | `%{` letter \[digits\] \[`r`\] \[delimiters\] `}` | a value, split on the delimiters (default `.`), maybe reversed, its rightmost *digits* parts, joined with `.` |
//! | `%%` `%_` `%-` | `%`, a space, `%20` |
//! | any other visible ASCII but `%` | itself (and a space, in explanation text only) |
//!
//! The letters: `s` sender, `l` its local part, `o` its domain, `d` the
//! domain being checked, `i` the client address (IPv6 as 32 dotted
//! nibbles), `p` the client's validated host name, `v` `in-addr` or `ip6`,
//! `h` the HELO name; in explanation text only also `c` the address as
//! people write it, `r` this host's name, `t` the time.  An upper-case
//! letter is URL-escaped after expansion (RFC 3986's unreserved
//! characters stay, everything else is `%XX`).
//!
//! `%{p}` needs DNS lookups; the evaluator looks the name up only for a
//! string that uses it ([`MacroString::uses_p`]) and hands it in, so
//! expansion itself never waits.

use std::net::IpAddr;

/// Where a macro string stands: explanation text allows `c`, `r`, `t`
/// and spaces (§7.1, §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Domain,
    Explanation,
}

/// A parsed macro string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroString {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Literal text.
    Text(String),
    /// `%%`, `%_` or `%-`: a macro-expand in the grammar, fixed text.
    Escape(&'static str),
    Macro(Macro),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Macro {
    /// Lower case.
    letter: char,
    /// Keep this many rightmost parts (None: all).
    keep: Option<usize>,
    reverse: bool,
    /// Split on these (empty: `.`).
    delimiters: String,
    /// The letter was upper case: URL-escape the value.
    escape: bool,
}

/// The values macros expand to, for one check.
#[derive(Debug, Clone)]
pub struct Values<'a> {
    /// `<sender>` (with `postmaster@` for a sender without local part).
    pub sender: &'a str,
    /// The domain being checked now.
    pub domain: &'a str,
    /// The client (an IPv4-mapped address already made IPv4).
    pub ip: IpAddr,
    pub helo: &'a str,
    /// This host's name (`%{r}`).
    pub receiver: &'a str,
    /// Seconds since the epoch (`%{t}`).
    pub now: u64,
}

impl MacroString {
    /// Parse `text` as a macro string for `place`; Err says what is wrong.
    pub fn parse(text: &str, place: Place) -> Result<MacroString, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                let visible = ('\x21'..='\x7e').contains(&c);
                if !(visible || (c == ' ' && place == Place::Explanation)) {
                    return Err(format!("{c:?} is not allowed in a macro string"));
                }
                literal.push(c);
                continue;
            }
            let escape = match chars.next() {
                Some('%') => Some("%"),
                Some('_') => Some(" "),
                Some('-') => Some("%20"),
                Some('{') => None,
                Some(other) => return Err(format!("\"%\" followed by {other:?}")),
                None => return Err("\"%\" at the end".to_string()),
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            match escape {
                Some(e) => pieces.push(Piece::Escape(e)),
                None => pieces.push(Piece::Macro(parse_macro(&mut chars, place)?)),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(MacroString { pieces })
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Whether it ends in a macro-expand (`%{..}`, `%%`, `%_`, `%-`),
    /// which may end a domain-spec (§7.1 domain-end).
    pub fn ends_in_macro(&self) -> bool {
        matches!(self.pieces.last(), Some(Piece::Macro(_) | Piece::Escape(_)))
    }

    /// The literal text at its end, after the last macro-expand.
    pub fn trailing_text(&self) -> &str {
        match self.pieces.last() {
            Some(Piece::Text(t)) => t,
            _ => "",
        }
    }

    /// Whether expanding it needs the client's validated name (`%{p}`).
    pub fn uses_p(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Macro(m) if m.letter == 'p'))
    }

    /// Expand with `values`; `validated` is `%{p}` (None: "unknown").
    pub fn expand(&self, values: &Values<'_>, validated: Option<&str>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Escape(e) => out.push_str(e),
                Piece::Macro(m) => {
                    let raw = value(m.letter, values, validated);
                    let shaped = transform(&raw, m);
                    if m.escape {
                        url_escape(&shaped, &mut out);
                    } else {
                        out.push_str(&shaped);
                    }
                }
            }
        }
        out
    }
}

/// After `%{`: letter, transformers, delimiters, `}`.
fn parse_macro(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    place: Place,
) -> Result<Macro, String> {
    let letter = chars.next().ok_or("\"%{\" at the end")?;
    let lower = letter.to_ascii_lowercase();
    match lower {
        's' | 'l' | 'o' | 'd' | 'i' | 'p' | 'v' | 'h' => {}
        'c' | 'r' | 't' if place == Place::Explanation => {}
        'c' | 'r' | 't' => {
            return Err(format!(
                "the macro %{{{letter}}} is allowed only in explanation text"
            ));
        }
        _ => return Err(format!("no macro letter {letter:?}")),
    }
    let mut digits = String::new();
    while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
        digits.push(d);
        chars.next();
    }
    let keep = if digits.is_empty() {
        None
    } else {
        // More parts than any name has are all of them (§7.3).
        let n = digits.parse::<usize>().unwrap_or(usize::MAX);
        if n == 0 {
            return Err(format!("%{{{letter}0}}: the number of parts must not be 0"));
        }
        Some(n)
    };
    let reverse = chars.next_if(|c| c.eq_ignore_ascii_case(&'r')).is_some();
    let mut delimiters = String::new();
    loop {
        match chars.next() {
            Some('}') => break,
            Some(c) if ".-+,/_=".contains(c) => delimiters.push(c),
            Some(c) => return Err(format!("{c:?} in a macro after %{{{letter}")),
            None => return Err(format!("%{{{letter} is not closed")),
        }
    }
    Ok(Macro {
        letter: lower,
        keep,
        reverse,
        delimiters,
        escape: letter.is_ascii_uppercase(),
    })
}

/// A macro letter's value, before transformation (§7.3).
fn value(letter: char, v: &Values<'_>, validated: Option<&str>) -> String {
    let (local, sender_domain) = v
        .sender
        .rsplit_once('@')
        .unwrap_or(("postmaster", v.sender));
    match letter {
        's' => v.sender.to_string(),
        'l' => local.to_string(),
        'o' => sender_domain.to_string(),
        'd' => v.domain.to_string(),
        'i' => dotted(v.ip),
        'p' => validated.unwrap_or("unknown").to_string(),
        'v' => match v.ip {
            IpAddr::V4(_) => "in-addr".to_string(),
            IpAddr::V6(_) => "ip6".to_string(),
        },
        'h' => v.helo.to_string(),
        'c' => v.ip.to_string(),
        'r' => v.receiver.to_string(),
        't' => v.now.to_string(),
        _ => String::new(),
    }
}

/// `%{i}`: IPv4 as a dotted quad, IPv6 as 32 dotted nibbles, lower case
/// as RFC 7208 §7.4's example writes them.
pub fn dotted(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => {
            let hex: Vec<String> = a
                .octets()
                .iter()
                .flat_map(|b| [b >> 4, b & 0xf])
                // Upper case, as the OpenSPF suite (v-macro-ip6) and pyspf
                // write it; RFC 7208 fixes no case (its §7.4 example is
                // lower case) and DNS names ignore it.
                .map(|n| format!("{n:X}"))
                .collect();
            hex.join(".")
        }
    }
}

/// Split, reverse, keep the rightmost parts, join with "." (§7.3).
fn transform(raw: &str, m: &Macro) -> String {
    if m.keep.is_none() && !m.reverse && m.delimiters.is_empty() {
        return raw.to_string();
    }
    let delimiters = if m.delimiters.is_empty() {
        "."
    } else {
        m.delimiters.as_str()
    };
    let mut parts: Vec<&str> = raw.split(|c| delimiters.contains(c)).collect();
    if m.reverse {
        parts.reverse();
    }
    if let Some(n) = m.keep {
        let skip = parts.len().saturating_sub(n);
        parts.drain(..skip);
    }
    parts.join(".")
}

/// RFC 3986 percent-encoding: unreserved characters stay, every other
/// byte is `%XX` in upper-case hex (RFC 3986 §2.1).
fn url_escape(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7208 §7.4's values.
    fn rfc_values(ip: &str) -> Values<'static> {
        Values {
            sender: "strong-bad@email.example.com",
            domain: "email.example.com",
            ip: ip.parse().unwrap(),
            helo: "mx.example.org",
            receiver: "receiver.example.net",
            now: 1_400_000_000,
        }
    }

    fn expand(text: &str, ip: &str) -> String {
        MacroString::parse(text, Place::Domain)
            .unwrap()
            .expand(&rfc_values(ip), Some("mx.example.org"))
    }

    #[test]
    fn rfc_7208_section_7_4_examples() {
        let ip = "192.0.2.3";
        for (text, want) in [
            ("%{s}", "strong-bad@email.example.com"),
            ("%{o}", "email.example.com"),
            ("%{d}", "email.example.com"),
            ("%{d4}", "email.example.com"),
            ("%{d3}", "email.example.com"),
            ("%{d2}", "example.com"),
            ("%{d1}", "com"),
            ("%{dr}", "com.example.email"),
            ("%{d2r}", "example.email"),
            ("%{l}", "strong-bad"),
            ("%{l-}", "strong.bad"),
            ("%{lr}", "strong-bad"),
            ("%{lr-}", "bad.strong"),
            ("%{l1r-}", "strong"),
            (
                "%{ir}.%{v}._spf.%{d2}",
                "3.2.0.192.in-addr._spf.example.com",
            ),
            ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
            (
                "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
                "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
            ),
            (
                "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
                "3.2.0.192.in-addr.strong.lp._spf.example.com",
            ),
            (
                "%{d2}.trusted-domains.example.net",
                "example.com.trusted-domains.example.net",
            ),
        ] {
            assert_eq!(expand(text, ip), want, "{text}");
        }
        // §7.4's example, whose nibbles are lower case (see dotted()).
        assert!(
            expand("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01").eq_ignore_ascii_case(
                "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
            )
        );
    }

    #[test]
    fn upper_case_letters_are_url_escaped() {
        let v = Values {
            sender: "~jack&jill=up-a_b3.c@e8.example.com",
            ..rfc_values("192.0.2.3")
        };
        let m = MacroString::parse("l=%{L}", Place::Explanation).unwrap();
        assert_eq!(m.expand(&v, None), "l=~jack%26jill%3Dup-a_b3.c");
        let m = MacroString::parse("%{S}", Place::Domain).unwrap();
        assert_eq!(
            m.expand(&v, None),
            "~jack%26jill%3Dup-a_b3.c%40e8.example.com"
        );
    }

    #[test]
    fn escapes_delimiters_and_p() {
        assert_eq!(expand("a%%b%_c%-d", "192.0.2.3"), "a%b c%20d");
        let v = Values {
            sender: "foo-bar+zip+quux@e12.example.com",
            ..rfc_values("192.0.2.3")
        };
        let m = MacroString::parse("%{l2r+-}", Place::Domain).unwrap();
        assert_eq!(m.expand(&v, None), "bar.foo");
        let p = MacroString::parse("%{p}", Place::Domain).unwrap();
        assert!(p.uses_p());
        assert_eq!(p.expand(&v, None), "unknown");
        assert_eq!(p.expand(&v, Some("mx.example.com")), "mx.example.com");
        assert_eq!(expand("%{v}", "2001:db8::1"), "ip6");
    }

    #[test]
    fn explanation_only_macros() {
        let e = MacroString::parse("%{c} %{r} %{t}", Place::Explanation).unwrap();
        assert_eq!(
            e.expand(&rfc_values("2001:DB8::CB01"), None),
            "2001:db8::cb01 receiver.example.net 1400000000"
        );
        for letter in ["c", "r", "t"] {
            assert!(MacroString::parse(&format!("%{{{letter}}}"), Place::Domain).is_err());
        }
        assert!(MacroString::parse("a b", Place::Domain).is_err());
        assert!(MacroString::parse("a b", Place::Explanation).is_ok());
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "%(ir).sbl.example.com",
            "foo%.sbl.example.com",
            "%",
            "%{",
            "%{d",
            "%{a}.example.com",
            "%{d0}",
            "%{d2x}",
            "%{x}-files",
            "caf\u{e9}",
            "a\rb",
            "a\0b",
        ] {
            assert!(MacroString::parse(bad, Place::Domain).is_err(), "{bad:?}");
        }
        let m = MacroString::parse("%{d99999999999999999999999}", Place::Domain).unwrap();
        assert_eq!(
            m.expand(&rfc_values("192.0.2.3"), None),
            "email.example.com"
        );
    }

    #[test]
    fn domain_end() {
        let m = MacroString::parse("foo.%{d}", Place::Domain).unwrap();
        assert!(m.ends_in_macro());
        let m = MacroString::parse("%{d}.example.com.", Place::Domain).unwrap();
        assert!(!m.ends_in_macro());
        assert_eq!(m.trailing_text(), ".example.com.");
    }
}
