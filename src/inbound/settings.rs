//! The sender checks' settings in mailroom.conf (all optional; the
//! defaults are for a small business host and README's "Checking senders"
//! says why).

use std::time::Duration;

use super::dnsbl::Sites;
use crate::config::{Config, parse_bool, parse_duration};
use crate::exit::Failure;

/// Keys read here, with defaults, for `mailroom check`, mailroom.conf(5)
/// and `etc/mailroom.conf`.
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "inbound_checks",
        "yes",
        "check SPF, DKIM and DMARC of mail from the internet on port 25 and write Authentication-Results (no: accept unchecked)",
    ),
    (
        "authserv_id",
        "(the host name)",
        "this host's name in Authentication-Results; such fields arriving from outside are removed",
    ),
    (
        "dnsbl",
        "(none)",
        "DNS blocklists checked at connect on port 25: ZONE[=FILTER][*WEIGHT] ..., e.g. zen.spamhaus.org=127.0.0.[2..11]*2 (needs your own resolver)",
    ),
    (
        "dnswl",
        "(none)",
        "DNS allow lists, same form; a match subtracts its weight (default 1), e.g. list.dnswl.org=127.0.[0..255].[1..3]*2",
    ),
    (
        "dnsbl_threshold",
        "1",
        "total weight at which a client is refused (554 5.7.1)",
    ),
    (
        "spf_fail",
        "refuse",
        "SPF fail at MAIL FROM: refuse (550 5.7.1) or mark (accept; the header says fail)",
    ),
    (
        "dmarc_reject",
        "refuse",
        "DMARC failure where the domain says p=reject: refuse (550 5.7.1 at the end of DATA), quarantine (to the Spam folder) or mark",
    ),
    (
        "dmarc_quarantine",
        "quarantine",
        "DMARC failure where the domain says p=quarantine: quarantine (to the Spam folder) or mark",
    ),
    (
        "own_domain_forgery",
        "refuse",
        "From: one of this box's domains, sent from outside without login and passing neither SPF nor DKIM for it: refuse, quarantine or mark",
    ),
    (
        "dns_failure",
        "tempfail",
        "a DNS failure while checking a sender: tempfail (451 4.7.0, the sender retries) or accept (checked as far as DNS answered)",
    ),
    (
        "inbound_resolver",
        "(the nameservers of /etc/resolv.conf)",
        "name servers for the sender checks, IP or IP:PORT ... (a caching resolver of your own, e.g. unbound on 127.0.0.1)",
    ),
    (
        "dns_timeout",
        "2s",
        "the longest wait for one DNS answer while checking a sender",
    ),
    (
        "inbound_check_time",
        "6s",
        "the longest the checks of one message (or one connect) may take in all; longer is a DNS failure",
    ),
];

/// What to do with a check's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Refuse at SMTP time (no backscatter).
    Refuse,
    /// Accept into the Spam folder (`spam_folder`).
    Quarantine,
    /// Accept; only the header says so.
    Mark,
}

impl Action {
    fn parse(
        cfg: &Config,
        key: &str,
        default: Action,
        allowed: &[Action],
    ) -> Result<Action, Failure> {
        let Some(v) = cfg.get(key) else {
            return Ok(default);
        };
        let a = match v.trim().to_ascii_lowercase().as_str() {
            "refuse" | "reject" => Action::Refuse,
            "quarantine" | "folder" | "spam" => Action::Quarantine,
            "mark" | "accept" | "none" => Action::Mark,
            _ => return Err(cfg.bad_value(key, &expected(allowed))),
        };
        if allowed.contains(&a) {
            Ok(a)
        } else {
            Err(cfg.bad_value(key, &expected(allowed)))
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Action::Refuse => "refuse",
            Action::Quarantine => "quarantine",
            Action::Mark => "mark",
        }
    }
}

fn expected(allowed: &[Action]) -> String {
    let words: Vec<&str> = allowed.iter().map(|a| a.word()).collect();
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("expected {} or {last}", rest.join(", "))
        }
        _ => format!("expected {}", words.join("")),
    }
}

/// The sender checks' settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub enabled: bool,
    /// The authserv-id of our Authentication-Results (RFC 8601 §2.5).
    pub authserv_id: String,
    pub blocklists: Sites,
    pub allowlists: Sites,
    pub dnsbl_threshold: i32,
    pub spf_fail: Action,
    pub dmarc_reject: Action,
    pub dmarc_quarantine: Action,
    pub own_domain_forgery: Action,
    /// A DNS failure defers the message (451) rather than accepting it.
    pub dns_failure_defers: bool,
    /// Name servers of the checks' own (`inbound_resolver`); empty: the
    /// system's.
    pub resolvers: Vec<std::net::SocketAddr>,
    pub dns_timeout: Duration,
    pub check_time: Duration,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Result<Settings, Failure> {
        let secs = |key: &str, default: &str| -> Result<Duration, Failure> {
            let v = cfg.get(key).unwrap_or(default).trim();
            let ms = match v.strip_suffix("ms") {
                Some(n) => n.trim().parse::<u64>().ok(),
                None => parse_duration(v, 1).map(|s| s * 1000),
            };
            ms.filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| cfg.bad_value(key, "not a duration (e.g. 500ms, 2s)"))
        };
        let sites = |key: &str, negative: bool| -> Result<Sites, Failure> {
            Sites::parse(cfg.get(key).unwrap_or(""), negative)
                .map_err(|why| cfg.bad_value(key, &why))
        };
        use Action::*;
        Ok(Settings {
            enabled: match cfg.get("inbound_checks") {
                None => true,
                Some(v) => parse_bool(v)
                    .ok_or_else(|| cfg.bad_value("inbound_checks", "expected yes or no"))?,
            },
            authserv_id: super::authserv_id(cfg),
            blocklists: sites("dnsbl", false)?,
            allowlists: sites("dnswl", true)?,
            dnsbl_threshold: match cfg.get("dnsbl_threshold") {
                None => 1,
                Some(v) => v
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| cfg.bad_value("dnsbl_threshold", "expected a number from 1"))?,
            },
            spf_fail: Action::parse(cfg, "spf_fail", Refuse, &[Refuse, Mark])?,
            dmarc_reject: Action::parse(cfg, "dmarc_reject", Refuse, &[Refuse, Quarantine, Mark])?,
            dmarc_quarantine: Action::parse(
                cfg,
                "dmarc_quarantine",
                Quarantine,
                &[Quarantine, Mark],
            )?,
            own_domain_forgery: Action::parse(
                cfg,
                "own_domain_forgery",
                Refuse,
                &[Refuse, Quarantine, Mark],
            )?,
            dns_failure_defers: match cfg
                .get("dns_failure")
                .map(|v| v.trim().to_ascii_lowercase())
            {
                None => true,
                Some(v) if v == "tempfail" || v == "defer" => true,
                Some(v) if v == "accept" => false,
                Some(_) => return Err(cfg.bad_value("dns_failure", "expected tempfail or accept")),
            },
            resolvers: match cfg.get("inbound_resolver") {
                None => Vec::new(),
                Some(v) => v
                    .split([' ', ','])
                    .filter(|w| !w.is_empty())
                    .map(parse_server)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        cfg.bad_value(
                            "inbound_resolver",
                            "expected addresses, IP or IP:PORT ([IPv6]:PORT)",
                        )
                    })?,
            },
            dns_timeout: secs("dns_timeout", "2s")?,
            check_time: secs("inbound_check_time", "6s")?,
        })
    }
}

/// `192.0.2.1`, `192.0.2.1:5353`, `2001:db8::1`, `[2001:db8::1]:5353`.
fn parse_server(s: &str) -> Option<std::net::SocketAddr> {
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return Some(a);
    }
    s.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers_take_a_port_or_53() {
        assert_eq!(
            parse_server("192.0.2.1"),
            Some("192.0.2.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_server("2001:db8::1"),
            Some("[2001:db8::1]:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_server("resolver.example"), None);
    }

    #[test]
    fn the_expected_words_read_as_a_list() {
        use Action::*;
        assert_eq!(expected(&[Refuse, Mark]), "expected refuse or mark");
        assert_eq!(
            expected(&[Refuse, Quarantine, Mark]),
            "expected refuse, quarantine or mark"
        );
    }
}
