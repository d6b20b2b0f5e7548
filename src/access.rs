//! `/etc/mail/access`: sendmail's access database (`FEATURE(access_db)`),
//! consulted by the SMTP server.
//!
//! A `makemap` text file, `KEY VALUE` per line.  Keys, tried most specific
//! first, each first with its tag and then untagged (sendmail's legacy
//! form, which matches connections, senders and recipients alike):
//!
//! * `Connect:` the client address — `192.0.2.7`, then `192.0.2`, `192.0`,
//!   `192`; IPv6 as `IPv6:2001:db8::1` and its shorter `:`-prefixes.
//! * `From:` the envelope sender — `user@example.com`, `example.com` and its
//!   parent domains, `user@`.
//! * `To:` a recipient — the same forms as `From:`.
//!
//! Values: `OK` (accept, skip further checks), `RELAY` (accept, and for
//! `Connect:` let the client relay; for `To:` let mail to that domain be
//! relayed), `REJECT` (`550 5.7.1 Access denied`), `DISCARD` (accept and
//! throw away), `SKIP` (stop looking, no decision), and `ERROR:[D.S.N:]CODE
//! TEXT` (that reply).

use crate::config::Config;
use crate::resolve::virtuser::parse_error;
use crate::smtp::Reply;
use crate::table::{Syntax, Table};

/// What an entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Relay,
    Reject(Reply),
    Discard,
    Skip,
}

/// Where the verdict came from, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub verdict: Verdict,
    pub key: String,
    pub line: usize,
}

/// The access table.
#[derive(Debug)]
pub struct Access {
    table: Table,
}

impl Access {
    pub fn load(cfg: &Config) -> Access {
        Access {
            table: Table::open(&cfg.paths.etc_mail("access"), Syntax::Makemap, false),
        }
    }

    /// What the table says about a client address.
    pub fn connect(&self, ip: &str) -> Option<Found> {
        self.first("Connect:", &ip_keys(ip))
    }

    /// What the table says about an envelope sender.
    pub fn from(&self, addr: &str) -> Option<Found> {
        self.first("From:", &address_keys(addr))
    }

    /// What the table says about a recipient.
    pub fn to(&self, addr: &str) -> Option<Found> {
        self.first("To:", &address_keys(addr))
    }

    fn first(&self, tag: &str, keys: &[String]) -> Option<Found> {
        if self.table.is_empty() {
            return None;
        }
        for k in keys {
            for key in [format!("{tag}{k}"), k.clone()] {
                if let Some(hit) = self.table.get(&key) {
                    return Some(Found {
                        verdict: parse_value(hit.value),
                        key,
                        line: hit.line,
                    });
                }
            }
        }
        None
    }
}

/// An entry's value.  Unknown words count as `SKIP` (no decision), so a
/// typing mistake never opens a relay.
pub fn parse_value(value: &str) -> Verdict {
    let v = value.trim();
    let upper = v.to_ascii_uppercase();
    match upper.as_str() {
        "OK" => return Verdict::Ok,
        "RELAY" => return Verdict::Relay,
        "REJECT" => return Verdict::Reject(Reply::new(550, "5.7.1 Access denied")),
        "DISCARD" => return Verdict::Discard,
        "SKIP" => return Verdict::Skip,
        _ => {}
    }
    if upper.starts_with("ERROR:") {
        let spec = v[6..].trim().trim_matches('"');
        let e = parse_error(spec);
        let text = if e.text.is_empty() {
            "Access denied".to_string()
        } else {
            e.text
        };
        let code = if (400..600).contains(&e.code) {
            e.code
        } else {
            550
        };
        return Verdict::Reject(Reply::new(code, format!("{} {text}", e.dsn)));
    }
    Verdict::Skip
}

/// `192.0.2.7` → `192.0.2.7`, `192.0.2`, `192.0`, `192`; IPv6 likewise
/// with `IPv6:` and `:` as the separator.
pub fn ip_keys(ip: &str) -> Vec<String> {
    let (prefix, sep, body) = if ip.contains(':') {
        ("IPv6:", ':', ip.to_ascii_lowercase())
    } else {
        ("", '.', ip.to_string())
    };
    let mut out = Vec::new();
    let mut cur = body.as_str();
    loop {
        if !cur.is_empty() {
            out.push(format!("{prefix}{cur}"));
        }
        match cur.rfind(sep) {
            Some(i) => cur = cur[..i].trim_end_matches(sep),
            None => break,
        }
    }
    out
}

/// `user@sub.example.com` → itself, `sub.example.com`, `example.com`,
/// `com`, `user@`.
pub fn address_keys(addr: &str) -> Vec<String> {
    let addr = addr.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, domain) = crate::address::split_addr(addr);
    let mut out = Vec::new();
    if let Some(d) = domain {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        out.push(format!("{local}@{d}"));
        let mut cur = d.as_str();
        loop {
            out.push(cur.to_string());
            match cur.split_once('.') {
                Some((_, rest)) if !rest.is_empty() => cur = rest,
                _ => break,
            }
        }
    }
    if !local.is_empty() {
        out.push(format!("{local}@"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_and_ip_keys() {
        assert_eq!(
            ip_keys("192.0.2.7"),
            ["192.0.2.7", "192.0.2", "192.0", "192"]
        );
        assert_eq!(
            ip_keys("2001:DB8::1"),
            ["IPv6:2001:db8::1", "IPv6:2001:db8", "IPv6:2001"]
        );
        assert_eq!(
            address_keys("<Bob@Mail.Example.COM>"),
            [
                "Bob@mail.example.com",
                "mail.example.com",
                "example.com",
                "com",
                "Bob@"
            ]
        );
    }

    #[test]
    fn values() {
        assert_eq!(parse_value("RELAY"), Verdict::Relay);
        assert_eq!(parse_value("ok"), Verdict::Ok);
        assert_eq!(
            parse_value("REJECT"),
            Verdict::Reject(Reply::new(550, "5.7.1 Access denied"))
        );
        assert_eq!(
            parse_value("ERROR:5.7.1:550 Go away"),
            Verdict::Reject(Reply::new(550, "5.7.1 Go away"))
        );
        assert_eq!(
            parse_value("ERROR:\"421 Come back later\""),
            Verdict::Reject(Reply::new(421, "4.0.0 Come back later"))
        );
        assert_eq!(parse_value("RELAYY"), Verdict::Skip);
    }
}
