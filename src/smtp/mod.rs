//! SMTP: replies ([`Reply`]), the client the queue runner delivers with
//! ([`client`]), the server behind `sendmail -bs` ([`server`]), and the
//! message encoding both directions share ([`data`]).

pub mod client;
pub mod data;
pub mod server;

use std::fmt;

/// An SMTP reply: a code and its text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The enhanced status code at the start of the first line, if any.
    pub fn enhanced(&self) -> Option<&str> {
        let first = self.lines.first()?;
        let word = first.split_whitespace().next()?;
        let parts: Vec<&str> = word.split('.').collect();
        if parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            Some(word)
        } else {
            None
        }
    }

    /// The enhanced status code, or one derived from the reply code class
    /// (`X.0.0`).
    pub fn status(&self) -> String {
        match self.enhanced() {
            Some(e) => e.to_string(),
            None => format!("{}.0.0", self.code / 100),
        }
    }

    /// All lines on one line, as logs and bounces quote a reply.
    pub fn one_line(&self) -> String {
        let text = self.lines.join(" ");
        format!("{} {}", self.code, text.trim())
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

/// Parse one reply line: `(code, last, text)`; `None` when it is not one.
pub fn parse_reply_line(line: &str) -> Option<(u16, bool, &str)> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.len() < 3 || !line.as_bytes()[..3].iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = line[..3].parse().ok()?;
    if !(200..600).contains(&code) {
        return None;
    }
    match line.as_bytes().get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        assert_eq!(
            parse_reply_line("250-PIPELINING\r\n"),
            Some((250, false, "PIPELINING"))
        );
        assert_eq!(parse_reply_line("250 OK"), Some((250, true, "OK")));
        assert_eq!(parse_reply_line("250"), Some((250, true, "")));
        assert_eq!(parse_reply_line("hello"), None);
        assert_eq!(parse_reply_line("999 x"), None);
    }

    #[test]
    fn enhanced_codes() {
        let r = Reply::new(550, "5.1.1 <x@y>... User unknown");
        assert_eq!(r.enhanced(), Some("5.1.1"));
        assert_eq!(r.status(), "5.1.1");
        assert_eq!(Reply::new(451, "try later").status(), "4.0.0");
        assert_eq!(r.one_line(), "550 5.1.1 <x@y>... User unknown");
    }
}
