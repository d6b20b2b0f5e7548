//! The limits' settings: defaults in `mailroom.conf`, overrides per key in
//! `/etc/mail/limits`.
//!
//! A limit is written as a list of `N messages` and `N recipients`
//! (`limit_per_hour = 200 messages, 500 recipients`); in the table as
//! `messages=N/hour recipients=N/hour messages=N/day recipients=N/day`
//! (any of them; the others keep their defaults) or `unlimited`.

use super::Count;
use crate::config::{Config, parse_bool};
use crate::exit::Failure;
use crate::table::Table;

/// Keys read here, with defaults, for `mailroom check` and
/// `etc/mailroom.conf`.
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "limits",
        "yes",
        "count outbound mail per user, login, relaying client and sender domain, and hold or refuse what is over the limits",
    ),
    (
        "limit_per_hour",
        "200 messages, 500 recipients",
        "most outbound mail one user, SMTP login or relaying client may hand in per hour",
    ),
    (
        "limit_per_day",
        "1000 messages, 2000 recipients",
        "the same per day",
    ),
    (
        "limit_domain_per_hour",
        "1000 messages, 2500 recipients",
        "most outbound mail with one envelope-sender domain per hour",
    ),
    (
        "limit_domain_per_day",
        "5000 messages, 10000 recipients",
        "the same per day",
    ),
    (
        "limit_alert",
        "postmaster",
        "who is told (once an hour per offender) when mail is held or refused over a limit; off = nobody",
    ),
];

/// The most one key may send; `None` = no limit on that measure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    pub messages_per_hour: Option<u64>,
    pub recipients_per_hour: Option<u64>,
    pub messages_per_day: Option<u64>,
    pub recipients_per_day: Option<u64>,
}

impl Limit {
    /// The first measure over its limit, as `200 messages/hour`.
    pub fn exceeded(&self, hour: Count, day: Count) -> Option<String> {
        let checks = [
            (self.messages_per_hour, hour.messages, "messages/hour"),
            (self.recipients_per_hour, hour.recipients, "recipients/hour"),
            (self.messages_per_day, day.messages, "messages/day"),
            (self.recipients_per_day, day.recipients, "recipients/day"),
        ];
        checks
            .into_iter()
            .find_map(|(limit, n, what)| limit.filter(|l| n > *l).map(|l| format!("{l} {what}")))
    }
}

/// The limits' settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub enabled: bool,
    /// For users, logins and relaying clients.
    pub sender: Limit,
    /// For envelope-sender domains.
    pub domain: Limit,
    /// Who hears about holds and refusals (`None`: nobody).
    pub alert: Option<String>,
}

/// `200 messages, 500 recipients` → (messages, recipients).
fn parse_pair(s: &str) -> Option<(Option<u64>, Option<u64>)> {
    let mut out = (None, None);
    for part in s.split(',') {
        let mut w = part.split_whitespace();
        let (Some(n), Some(what), None) = (w.next(), w.next(), w.next()) else {
            return None;
        };
        let n: u64 = n.parse().ok()?;
        match what.to_ascii_lowercase().as_str() {
            "message" | "messages" => out.0 = Some(n),
            "recipient" | "recipients" => out.1 = Some(n),
            _ => return None,
        }
    }
    Some(out)
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Result<Settings, Failure> {
        let pair = |key: &str, default: &str| {
            let v = cfg.get(key).unwrap_or(default);
            parse_pair(v)
                .ok_or_else(|| cfg.bad_value(key, "expected e.g. \"200 messages, 500 recipients\""))
        };
        let limit = |h: &str, hd: &str, d: &str, dd: &str| -> Result<Limit, Failure> {
            let (mh, rh) = pair(h, hd)?;
            let (md, rd) = pair(d, dd)?;
            Ok(Limit {
                messages_per_hour: mh,
                recipients_per_hour: rh,
                messages_per_day: md,
                recipients_per_day: rd,
            })
        };
        let enabled = match cfg.get("limits") {
            None => true,
            Some(v) => {
                parse_bool(v).ok_or_else(|| cfg.bad_value("limits", "expected yes or no"))?
            }
        };
        let alert = match cfg.get("limit_alert").unwrap_or("postmaster").trim() {
            "" | "off" | "none" => None,
            a => Some(a.to_string()),
        };
        Ok(Settings {
            enabled,
            sender: limit("limit_per_hour", KEYS[1].1, "limit_per_day", KEYS[2].1)?,
            domain: limit(
                "limit_domain_per_hour",
                KEYS[3].1,
                "limit_domain_per_day",
                KEYS[4].1,
            )?,
            alert,
        })
    }

    /// The limit of `key` (`user:www-data`): its `/etc/mail/limits` entry
    /// over the defaults; `Ok(None)` for `unlimited`; `Err` for an entry
    /// that does not parse.
    pub fn limit_for(
        &self,
        table: &Table,
        key: &str,
        is_domain: bool,
    ) -> Result<Option<Limit>, String> {
        let base = if is_domain { self.domain } else { self.sender };
        match table.get(key) {
            None => Ok(Some(base)),
            Some(hit) => entry(base, hit.value),
        }
    }

    /// Check one `/etc/mail/limits` entry as the door and the queue runner
    /// read it (`mailroom check`): `Err` says what is wrong.
    pub fn check_entry(&self, key: &str, value: &str) -> Result<(), String> {
        let kind = key.split_once(':').map(|(k, _)| k.to_ascii_lowercase());
        let read = match kind.as_deref() {
            Some("user" | "login" | "connect") => entry(self.sender, value).map(|_| ()),
            Some("domain") => entry(self.domain, value).map(|_| ()),
            Some("to") => crate::runner::pacing::check_entry(value),
            _ => {
                return Err(format!(
                    "{key}: never used: a key is User:NAME, Login:NAME, Connect:ADDRESS, Domain:DOMAIN or To:DOMAIN"
                ));
            }
        };
        read.map_err(|why| format!("{why}; the default applies"))
    }
}

/// A table entry's limit over `base`: `messages=N/hour recipients=N/day
/// ...` (each term replaces one measure) or `unlimited` (`None`).
fn entry(mut l: Limit, value: &str) -> Result<Option<Limit>, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    for term in value.split_whitespace() {
        let bad =
            || format!("{term:?}: expected messages=N/hour, recipients=N/day ... or unlimited");
        let (what, rate) = term.split_once('=').ok_or_else(bad)?;
        let (n, per) = rate.split_once('/').ok_or_else(bad)?;
        let n = if n.eq_ignore_ascii_case("unlimited") {
            None
        } else {
            Some(n.parse::<u64>().map_err(|_| bad())?)
        };
        let slot = match (
            what.to_ascii_lowercase().as_str(),
            per.to_ascii_lowercase().as_str(),
        ) {
            ("messages", "hour") => &mut l.messages_per_hour,
            ("recipients", "hour") => &mut l.recipients_per_hour,
            ("messages", "day") => &mut l.messages_per_day,
            ("recipients", "day") => &mut l.recipients_per_day,
            _ => return Err(bad()),
        };
        *slot = n;
    }
    Ok(Some(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_limits() {
        assert_eq!(
            parse_pair("200 messages, 500 recipients"),
            Some((Some(200), Some(500)))
        );
        assert_eq!(parse_pair("7 messages"), Some((Some(7), None)));
        assert_eq!(parse_pair("lots"), None);
        let l = Limit {
            messages_per_hour: Some(2),
            recipients_per_hour: Some(5),
            messages_per_day: None,
            recipients_per_day: Some(100),
        };
        let c = |m, r| Count {
            messages: m,
            recipients: r,
        };
        assert_eq!(l.exceeded(c(2, 5), c(2, 5)), None);
        assert_eq!(
            l.exceeded(c(3, 3), c(3, 3)).as_deref(),
            Some("2 messages/hour")
        );
        assert_eq!(
            l.exceeded(c(1, 6), c(1, 6)).as_deref(),
            Some("5 recipients/hour")
        );
        assert_eq!(
            l.exceeded(c(1, 1), c(500, 101)).as_deref(),
            Some("100 recipients/day")
        );
    }
}
