//! Per-destination pacing: large receivers (Gmail, Outlook) answer a
//! sender that opens many connections or sends too fast with `421`s, so
//! the runner spreads a burst (a newsletter to 2,000 customers) over time
//! instead of sending it at once.
//!
//! Each destination domain has a rate of messages (one per transaction)
//! and of new connections, per period: `destination_rate` in
//! `mailroom.conf` for all (60 messages and 20 connections a minute), and
//! `To:DOMAIN` entries in `/etc/mail/limits` for one
//! (`To:gmail.com  messages=30/1m connections=5/1m`, or `unlimited`).
//!
//! ## How
//!
//! A token bucket per domain and measure, holding at most one period's
//! worth (so a quiet domain may take a full period's burst at once) and
//! refilled at the rate.  A transaction takes a message token; opening a
//! connection takes a connection token.  Recipients whose domain has no
//! message token left are deferred as *paced*: that is no attempt (no
//! retry back-off, no delay warning), and a queue pass comes back to the
//! job when the next token is due while it works on other jobs, so mail
//! to other domains is not delayed.  A connection that must wait a little
//! for its token waits; a long wait defers like a message.
//!
//! ## The file, `/var/spool/mailroom/pacing`
//!
//! One line per domain paced in the last day, `DOMAIN MSG-TOKENS
//! CONN-TOKENS TIME` (tokens as decimals, the time of the last refill in
//! seconds with a fraction), read and rewritten under an exclusive
//! `flock`.  Every queue run shares it.  A missing or unreadable file
//! starts every bucket full: pacing is advice, never a reason to keep
//! mail.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, parse_duration};
use crate::exit::Failure;
use crate::table::{Syntax, Table};

/// At most this many per period, or no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub count: f64,
    pub period: f64,
}

impl Rate {
    fn per_second(&self) -> f64 {
        self.count / self.period
    }

    /// `60 messages/minute` as people say it.
    pub fn words(&self, what: &str) -> String {
        let p = self.period as u64;
        let per = match p {
            60 => "minute".to_string(),
            3600 => "hour".to_string(),
            1 => "second".to_string(),
            _ => format!("{p} s"),
        };
        format!("{} {what}/{per}", self.count)
    }
}

/// A domain's rates.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rates {
    pub messages: Option<Rate>,
    pub connections: Option<Rate>,
}

/// `60 messages, 20 connections` (per minute), or with periods:
/// `100 messages/10s, 5 connections/minute`.
fn parse_default(s: &str) -> Option<Rates> {
    let mut r = Rates::default();
    for part in s.split(',') {
        let part = part.trim();
        let (n, rest) = part.split_once(char::is_whitespace)?;
        let rest: String = rest.split_whitespace().collect();
        let (what, period) = match rest.split_once('/') {
            Some((w, p)) => (w.to_string(), parse_period(p)?),
            None => (rest.clone(), 60.0),
        };
        let rate = Rate {
            count: n.parse::<u32>().ok()? as f64,
            period,
        };
        match what.trim_end_matches('s') {
            "message" => r.messages = Some(rate),
            "connection" => r.connections = Some(rate),
            _ => return None,
        }
    }
    Some(r)
}

/// `minute`, `hour`, `second`, or a duration (`10s`, `1m`).
fn parse_period(p: &str) -> Option<f64> {
    let secs = match p {
        "second" | "sec" => 1,
        "minute" | "min" => 60,
        "hour" => 3600,
        d => parse_duration(d, 1)?,
    };
    (secs > 0).then_some(secs as f64)
}

/// `messages=30/1m connections=5/minute`, or `unlimited` (over `base`).
/// Check a `To:DOMAIN` entry of `/etc/mail/limits` (`mailroom check`).
pub fn check_entry(value: &str) -> Result<(), String> {
    parse_entry(value, Rates::default()).map(|_| ())
}

fn parse_entry(value: &str, base: Rates) -> Result<Rates, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("unlimited") {
        return Ok(Rates::default());
    }
    let mut r = base;
    for term in value.split_whitespace() {
        let bad =
            || format!("{term:?}: expected messages=N/PERIOD, connections=N/PERIOD or unlimited");
        let (what, rate) = term.split_once('=').ok_or_else(bad)?;
        let slot = match what.to_ascii_lowercase().as_str() {
            "messages" => &mut r.messages,
            "connections" => &mut r.connections,
            _ => return Err(bad()),
        };
        if rate.eq_ignore_ascii_case("unlimited") {
            *slot = None;
            continue;
        }
        let (n, per) = rate.split_once('/').ok_or_else(bad)?;
        *slot = Some(Rate {
            count: n.parse::<u32>().map_err(|_| bad())? as f64,
            period: parse_period(per).ok_or_else(bad)?,
        });
    }
    Ok(r)
}

/// Which token a pacing step takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Message,
    Connection,
}

/// The pacing of one queue run: the rates, and the shared buckets.
/// The key read here, with its default, for `mailroom check` and
/// `etc/mailroom.conf`.
pub const KEYS: &[(&str, &str, &str)] = &[(
    "destination_rate",
    "60 messages, 20 connections",
    "per destination domain and minute, what the queue runner sends at most (To:DOMAIN in /etc/mail/limits for one domain; unlimited = no pacing)",
)];

pub struct Pacer {
    default: Rates,
    table: Table,
    path: PathBuf,
}

impl Pacer {
    pub fn new(cfg: &Config, may_rebuild: bool) -> Result<Pacer, Failure> {
        let v = cfg.get("destination_rate").unwrap_or(KEYS[0].1);
        let default = if v.trim().eq_ignore_ascii_case("unlimited") {
            Rates::default()
        } else {
            parse_default(v).ok_or_else(|| {
                cfg.bad_value(
                    "destination_rate",
                    "expected e.g. \"60 messages, 20 connections\" (per minute) or unlimited",
                )
            })?
        };
        Ok(Pacer {
            default,
            table: Table::open(&cfg.paths.etc_mail("limits"), Syntax::Makemap, may_rebuild),
            path: crate::state::dir(cfg).join(crate::state::PACING),
        })
    }

    /// The rates of `domain`.
    pub fn rates(&self, domain: &str) -> Rates {
        match self
            .table
            .get(&format!("to:{}", domain.to_ascii_lowercase()))
        {
            None => self.default,
            Some(hit) => match parse_entry(hit.value, self.default) {
                Ok(r) => r,
                Err(why) => {
                    crate::log::warning(
                        None,
                        &format!("/etc/mail/limits: To:{domain}: {why}; the default applies"),
                    );
                    self.default
                }
            },
        }
    }

    /// Take a `token` of `domain` at `now` (seconds), or say how long until
    /// one is due.
    pub fn take(&self, domain: &str, token: Token, now: f64) -> Result<(), Duration> {
        let rates = self.rates(domain);
        let rate = match token {
            Token::Message => rates.messages,
            Token::Connection => rates.connections,
        };
        let Some(rate) = rate else {
            return Ok(());
        };
        let domain = domain.to_ascii_lowercase();
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&self.path)
        };
        let opened = open().or_else(|_| {
            // `make install` makes the directory; a private root may not
            // have it yet.
            if let Some(d) = self.path.parent() {
                std::fs::create_dir_all(d)?;
            }
            open()
        });
        let Ok(mut f) = opened else {
            return Ok(());
        };
        // SAFETY: plain flock on a valid descriptor; released on close.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        let mut text = String::new();
        let _ = f.read_to_string(&mut text);
        let mut buckets: BTreeMap<String, (f64, f64, f64)> = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let d = w.next()?.to_string();
                let m: f64 = w.next()?.parse().ok()?;
                let c: f64 = w.next()?.parse().ok()?;
                let t: f64 = w.next()?.parse().ok()?;
                (m.is_finite() && c.is_finite() && t.is_finite()).then_some((d, (m, c, t)))
            })
            .filter(|(_, (_, _, t))| now - t < 86400.0)
            .collect();
        let full = |r: Option<Rate>| r.map_or(f64::MAX, |r| r.count);
        let (mut m, mut c, t) = buckets.get(&domain).copied().unwrap_or((
            full(rates.messages),
            full(rates.connections),
            now,
        ));
        let elapsed = (now - t).max(0.0);
        if let Some(r) = rates.messages {
            m = (m + elapsed * r.per_second()).min(r.count);
        }
        if let Some(r) = rates.connections {
            c = (c + elapsed * r.per_second()).min(r.count);
        }
        let tokens = match token {
            Token::Message => &mut m,
            Token::Connection => &mut c,
        };
        let result = if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - *tokens) / rate.per_second()).max(0.001),
            ))
        };
        // Never back in time: a caller that read the clock before it
        // waited for the lock must not make the next one refill twice.
        buckets.insert(domain, (m, c, now.max(t)));
        let mut out = String::new();
        for (d, (m, c, t)) in &buckets {
            out.push_str(&format!("{d} {m:.3} {c:.3} {t:.3}\n"));
        }
        if f.seek(std::io::SeekFrom::Start(0)).is_ok() && f.set_len(0).is_ok() {
            let _ = f.write_all(out.as_bytes());
        }
        result
    }
}

/// Seconds since the epoch, with a fraction.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Paths;

    #[test]
    fn rates_parse() {
        let r = parse_default("60 messages, 20 connections").unwrap();
        assert_eq!(
            r.messages,
            Some(Rate {
                count: 60.0,
                period: 60.0
            })
        );
        assert_eq!(
            r.connections,
            Some(Rate {
                count: 20.0,
                period: 60.0
            })
        );
        let r = parse_default("100 messages /10s").unwrap();
        assert_eq!(parse_default("100 messages/10s"), Some(r));
        assert_eq!(
            r.messages,
            Some(Rate {
                count: 100.0,
                period: 10.0
            })
        );
        assert!(parse_default("fast").is_none());
        let e = parse_entry("messages=30/1m connections=unlimited", r).unwrap();
        assert_eq!(
            e.messages,
            Some(Rate {
                count: 30.0,
                period: 60.0
            })
        );
        assert_eq!(e.connections, None);
        assert_eq!(parse_entry("unlimited", r).unwrap(), Rates::default());
        assert!(parse_entry("messages=lots", r).is_err());
        assert_eq!(
            Rate {
                count: 60.0,
                period: 60.0
            }
            .words("messages"),
            "60 messages/minute"
        );
    }

    #[test]
    fn a_burst_takes_a_periods_worth_then_the_rate() {
        let root = std::env::temp_dir().join(format!("mr-pacing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc/mail")).unwrap();
        std::fs::create_dir_all(root.join("var/spool/mailroom")).unwrap();
        std::fs::write(
            root.join("etc/mail/mailroom.conf"),
            "destination_rate = 10 messages/10s, 2 connections/10s\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/mail/limits"),
            "To:slow.example messages=1/10s\nTo:free.example unlimited\n",
        )
        .unwrap();
        let cfg = Config::load(Paths::under(&root), None).unwrap();
        let p = Pacer::new(&cfg, false).unwrap();
        let t = 1_800_000_000.0;
        for _ in 0..10 {
            assert_eq!(p.take("gmail.example", Token::Message, t), Ok(()));
        }
        let wait = p.take("gmail.example", Token::Message, t).unwrap_err();
        assert!((0.9..=1.1).contains(&wait.as_secs_f64()), "{wait:?}");
        // One second later, one more.
        assert_eq!(p.take("gmail.example", Token::Message, t + 1.0), Ok(()));
        assert!(p.take("gmail.example", Token::Message, t + 1.0).is_err());
        // Connections have their own bucket; other domains their own.
        assert_eq!(p.take("gmail.example", Token::Connection, t + 1.0), Ok(()));
        assert_eq!(p.take("other.example", Token::Message, t + 1.0), Ok(()));
        // Per-domain entries.
        assert_eq!(p.take("slow.example", Token::Message, t), Ok(()));
        assert!(p.take("slow.example", Token::Message, t + 5.0).is_err());
        for _ in 0..100 {
            assert_eq!(p.take("free.example", Token::Message, t), Ok(()));
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
