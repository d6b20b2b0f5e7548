//! `/etc/mail/access`: sendmail's access database (`FEATURE(access_db)`),
//! consulted by the SMTP server.
//!
//! A `makemap` text file, `KEY VALUE` per line.  Keys, tried most specific
//! first, each first with its tag and then untagged (sendmail's legacy
//! form, which matches connections, senders and recipients alike):
//!
//! * `Connect:` the client address — `192.0.2.7`, then `192.0.2`, `192.0`,
//!   `192`.  An IPv6 client is written as sendmail 8 (since 8.15) writes
//!   its `${client_addr}`: `IPv6:` and all eight groups in lower-case hex
//!   without leading zeros or `::` (`IPv6:2001:db8:0:0:0:0:0:1`), then
//!   each shorter prefix of whole groups (`IPv6:2001:db8:0:0:0:0:0`, ...,
//!   `IPv6:2001:db8`, `IPv6:2001`, `IPv6`).  So `Connect:IPv6:2001:db8
//!   RELAY` covers 2001:db8::/32.  One addition: the whole address in its
//!   compressed form (`IPv6:2001:db8::1`, what cf/README's examples and
//!   sendmail before 8.15 use) is tried right after the full form — sendmail
//!   8.17 silently never matches it, though the admin's intent is plain.
//!   A prefix written with `::` or with leading zeros matches nothing, in
//!   sendmail 8 as here.
//! * `From:` the envelope sender — `user@example.com`, `example.com` and its
//!   parent domains, `user@`.
//! * `To:` a recipient — the same forms as `From:`.
//!
//! Values: `OK` (accept, skip further checks), `RELAY` (accept, and for
//! `Connect:` let the client relay; for `To:` let mail to that domain be
//! relayed), `REJECT` (`550 5.7.1 Access denied`), `DISCARD` (accept and
//! throw away), `SKIP` (stop looking, no decision), and `ERROR:[D.S.N:]CODE
//! TEXT` (that reply).

use std::net::IpAddr;

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
    pub fn connect(&self, ip: &IpAddr) -> Option<Found> {
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

/// A client's address as sendmail 8 writes its `${client_addr}` — in
/// access keys, in logs (`relay=[IPv6:2001:db8:0:0:0:0:0:1]`), in its
/// `Hello` reply and in `Received:` (an RFC 5321 address literal between
/// brackets): `192.0.2.7`, or `IPv6:` and the eight groups uncompressed
/// (sendmail 8.15 and later, without `UseCompressedIPv6Addresses`).
/// Writing it the same way everywhere lets an admin copy an address from
/// the log into `/etc/mail/access`.
pub fn client_addr(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:x}")).collect();
            format!("IPv6:{}", groups.join(":"))
        }
    }
}

/// The `Connect:` keys for a client, most specific first: `192.0.2.7`,
/// `192.0.2`, `192.0`, `192`; for IPv6 the [`client_addr`] form and its
/// shorter prefixes of whole groups, down to `IPv6` (sendmail's
/// LookUpAddress), with the compressed form of the whole address second.
pub fn ip_keys(ip: &IpAddr) -> Vec<String> {
    let full = client_addr(ip);
    let sep = if ip.is_ipv4() { '.' } else { ':' };
    let mut out = vec![full.clone()];
    if let IpAddr::V6(v6) = ip {
        let compressed = format!("IPv6:{v6}");
        if compressed != full {
            out.push(compressed);
        }
    }
    let mut cur = full.as_str();
    while let Some(i) = cur.rfind(sep) {
        cur = &cur[..i];
        out.push(cur.to_string());
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
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            ip_keys(&ip("192.0.2.7")),
            ["192.0.2.7", "192.0.2", "192.0", "192"]
        );
        assert_eq!(
            ip_keys(&ip("2001:DB8::1")),
            [
                "IPv6:2001:db8:0:0:0:0:0:1",
                "IPv6:2001:db8::1",
                "IPv6:2001:db8:0:0:0:0:0",
                "IPv6:2001:db8:0:0:0:0",
                "IPv6:2001:db8:0:0:0",
                "IPv6:2001:db8:0:0",
                "IPv6:2001:db8:0",
                "IPv6:2001:db8",
                "IPv6:2001",
                "IPv6"
            ]
        );
        // Nothing to compress: one form only.
        assert_eq!(
            ip_keys(&ip("2001:db8:1:2:3:4:5:6"))[..2],
            ["IPv6:2001:db8:1:2:3:4:5:6", "IPv6:2001:db8:1:2:3:4:5"]
        );
        assert_eq!(client_addr(&ip("::1")), "IPv6:0:0:0:0:0:0:0:1");
        assert_eq!(
            client_addr(&ip("2001:0DB8:00a0::0bc")),
            "IPv6:2001:db8:a0:0:0:0:0:bc"
        );
        assert_eq!(client_addr(&ip("192.0.2.7")), "192.0.2.7");
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
