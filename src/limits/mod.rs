//! Outbound limits: a hacked web site or a stolen password cannot make the
//! box send a flood, without a daemon and without losing a message.
//!
//! Every message enters the queue through one door
//! ([`crate::queue::enqueue`]), which asks [`check`] before it commits.
//!
//! ## Who is counted
//!
//! Only mail that leaves the box: a message counts once, and its
//! recipients outside the box's own domains count each.  Mail from the
//! box to its own mailboxes is not counted (it cannot harm the box's
//! reputation, and the mailbox quotas already bound it); nor are
//! mailroom's own messages (bounces, autoreplies), nor a list's or an
//! alias's copies (the poster is counted once, for the recipients they
//! named).  Each message is counted against every key that applies:
//!
//! | key | who | when |
//! |-----|-----|------|
//! | `user:LOGIN` | the local user who ran `sendmail` (PHP as `www-data`, a PHP-FPM pool's own user, cron) | a local program |
//! | `login:LOGIN` | the SMTP AUTH login (587, 465) | an authenticated SMTP client |
//! | `connect:ADDRESS` | a client relaying by `Connect:` RELAY or POP-before-SMTP | an unauthenticated client allowed to relay |
//! | `domain:DOMAIN` | the envelope sender's domain | any of the above |
//!
//! Windows are bucketed ([`counters`]): the last hour in five-minute
//! steps, the last day in hours.
//!
//! ## Over a limit
//!
//! The check and the count are one locked step, so concurrent submitters
//! never overshoot a limit together: the message that takes a key past
//! its limit is the first one over it.  A local program's message is
//! still accepted (a script must not break) but **held**: committed as a
//! held job (`hfID`, sendmail 8's quarantine), listed by `mailq` and
//! `mailroom queue`, never sent until the admin releases it.  An SMTP
//! client gets `451 4.7.0` naming the limit, and retries later.  Either
//! way the first hold of a key in an hour sends one alert to the
//! postmaster ([`alert`]).
//!
//! ## Settings
//!
//! Defaults in `mailroom.conf` ([`settings::KEYS`]); per-key overrides in
//! `/etc/mail/limits` (makemap style, compiled like the other tables):
//!
//! ```text
//! User:www-data              messages=1000/hour recipients=3000/hour
//! Login:news@shop.example    unlimited
//! Domain:shop.example        messages=5000/day
//! ```

pub mod alert;
pub mod counters;
pub mod settings;

use std::path::PathBuf;

pub use counters::{Count, Counters};
pub use settings::{Limit, Settings};

use crate::config::Config;
use crate::log;
use crate::table::{Syntax, Table};

/// Who hands a message in, for counting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A local program run by this user.
    User(String),
    /// An SMTP client logged in as this.
    Login(String),
    /// An unauthenticated SMTP client allowed to relay, at this address.
    Client(String),
}

impl Who {
    /// The counter and table key: `user:www-data`.
    pub fn key(&self) -> String {
        match self {
            Who::User(u) => format!("user:{}", u.to_ascii_lowercase()),
            Who::Login(l) => format!("login:{}", l.to_ascii_lowercase()),
            Who::Client(a) => format!("connect:{}", a.to_ascii_lowercase()),
        }
    }
}

/// One message at the door.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub who: Who,
    /// The envelope sender's domain, if it has one.
    pub sender_domain: Option<&'a str>,
    /// Recipients outside the box's own domains.
    pub remote_recipients: u32,
}

/// A key over its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Over {
    /// `user:www-data`.
    pub key: String,
    /// `200 messages/hour`.
    pub limit: String,
    /// The key's counts, this message included.
    pub hour: Count,
    pub day: Count,
    /// No alert about this key in the last hour: send one now.
    pub alert_due: bool,
}

impl Over {
    /// `user www-data over 200 messages/hour`, for logs and replies.
    pub fn text(&self) -> String {
        let (kind, name) = self.key.split_once(':').unwrap_or(("", &self.key));
        format!("{kind} {name} over {}", self.limit)
    }
}

/// The directory of the counters file.
pub fn counters_dir(cfg: &Config) -> PathBuf {
    crate::state::dir(cfg).join(crate::state::LIMITS)
}

/// Count `sub` against its keys; `Some` when a key is over its limit
/// (the first such key).  Mail that does not leave the box is not
/// counted.  Trouble with the counters file never stops mail: it is
/// logged and the message goes on uncounted.
pub fn check(cfg: &Config, sub: &Submission<'_>, now: i64) -> Option<Over> {
    let settings = match Settings::from_config(cfg) {
        Ok(s) => s,
        Err(f) => {
            log::err(None, &format!("limits not applied: {f}"));
            return None;
        }
    };
    if !settings.enabled || sub.remote_recipients == 0 {
        return None;
    }
    let table = Table::open(&cfg.paths.etc_mail("limits"), Syntax::Makemap, false);
    let mut keys = vec![(sub.who.key(), false)];
    if let Some(d) = sub.sender_domain {
        keys.push((format!("domain:{}", d.to_ascii_lowercase()), true));
    }
    let mut rules = Vec::new();
    for (key, is_domain) in keys {
        match settings.limit_for(&table, &key, is_domain) {
            Ok(Some(l)) => rules.push((key, l)),
            Ok(None) => {} // unlimited
            Err(why) => {
                log::warning(
                    None,
                    &format!("/etc/mail/limits: {key}: {why}; the defaults apply"),
                );
                let l = if is_domain {
                    settings.domain
                } else {
                    settings.sender
                };
                rules.push((key, l));
            }
        }
    }
    if rules.is_empty() {
        return None;
    }
    let dir = counters_dir(cfg);
    let counters = match Counters::lock(&dir) {
        Ok(c) => c,
        Err(e) => {
            log::err(
                None,
                &format!(
                    "cannot count outbound mail in {}: {}; the message is not limited",
                    dir.display(),
                    crate::exit::io_reason(&e)
                ),
            );
            return None;
        }
    };
    let mut over = None;
    for (key, limit) in rules {
        let record = match counters.count(&key, sub.remote_recipients, now) {
            Ok(r) => r,
            Err(e) => {
                log::err(
                    None,
                    &format!("cannot count {key}: {}", crate::exit::io_reason(&e)),
                );
                continue;
            }
        };
        let (hour, day) = record.totals();
        if over.is_none()
            && let Some(what) = limit.exceeded(hour, day)
        {
            let alert_due = record.last_alert + 3600 <= now;
            if alert_due {
                let _ = counters.alerted(&key, now);
            }
            over = Some(Over {
                key,
                limit: what,
                hour,
                day,
                alert_due,
            });
        }
    }
    over
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Paths;

    fn root(name: &str, conf: &str, limits: &str) -> (PathBuf, Config) {
        let r = std::env::temp_dir().join(format!("mr-limits-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&r);
        std::fs::create_dir_all(r.join("etc/mail")).unwrap();
        std::fs::create_dir_all(r.join("var/spool/mailroom")).unwrap();
        std::fs::write(r.join("etc/mail/mailroom.conf"), conf).unwrap();
        std::fs::write(r.join("etc/mail/limits"), limits).unwrap();
        let cfg = Config::load(Paths::under(&r), None).unwrap();
        (r, cfg)
    }

    fn php(rcpts: u32) -> Submission<'static> {
        Submission {
            who: Who::User("www-data".into()),
            sender_domain: Some("shop.example"),
            remote_recipients: rcpts,
        }
    }

    #[test]
    fn the_message_past_the_limit_is_over_and_alerts_once() {
        let (r, cfg) = root("over", "limit_per_hour = 3 messages, 100 recipients\n", "");
        let now = 1_800_000_000;
        for _ in 0..3 {
            assert_eq!(check(&cfg, &php(1), now), None);
        }
        let o = check(&cfg, &php(1), now).unwrap();
        assert_eq!(o.key, "user:www-data");
        assert_eq!(o.text(), "user www-data over 3 messages/hour");
        assert_eq!(o.hour.messages, 4);
        assert!(o.alert_due);
        let o = check(&cfg, &php(1), now + 60).unwrap();
        assert!(!o.alert_due, "one alert an hour");
        // Local mail is not counted at all.
        assert_eq!(check(&cfg, &php(0), now), None);
        std::fs::remove_dir_all(r).unwrap();
    }

    #[test]
    fn recipients_and_the_sender_domain_count_too() {
        let (r, cfg) = root(
            "rcpts",
            "limit_per_hour = 100 messages, 10 recipients\nlimit_domain_per_hour = 1 messages, 1000 recipients\n",
            "",
        );
        let now = 1_800_000_000;
        let o = check(&cfg, &php(11), now).unwrap();
        assert_eq!(o.text(), "user www-data over 10 recipients/hour");
        // Another user of the same domain: the domain's limit.
        let eve = Submission {
            who: Who::User("eve".into()),
            sender_domain: Some("SHOP.example"),
            remote_recipients: 1,
        };
        let o = check(&cfg, &eve, now).unwrap();
        assert_eq!(o.text(), "domain shop.example over 1 messages/hour");
        std::fs::remove_dir_all(r).unwrap();
    }

    #[test]
    fn overrides_in_the_limits_table_lift_or_lower_a_limit() {
        let (r, cfg) = root(
            "table",
            "limit_per_hour = 1 messages, 100 recipients\n",
            "User:news  unlimited\nLogin:ceo@shop.example messages=2/hour\n",
        );
        let now = 1_800_000_000;
        let news = Submission {
            who: Who::User("news".into()),
            sender_domain: None,
            remote_recipients: 1,
        };
        for _ in 0..50 {
            assert_eq!(check(&cfg, &news, now), None);
        }
        let ceo = Submission {
            who: Who::Login("CEO@shop.example".into()),
            sender_domain: None,
            remote_recipients: 1,
        };
        assert_eq!(check(&cfg, &ceo, now), None);
        assert_eq!(check(&cfg, &ceo, now), None);
        assert!(check(&cfg, &ceo, now).is_some());
        std::fs::remove_dir_all(r).unwrap();
    }

    #[test]
    fn limits_off_count_nothing() {
        let (r, cfg) = root("off", "limits = no\nlimit_per_hour = 0 messages\n", "");
        assert_eq!(check(&cfg, &php(1), 1_800_000_000), None);
        std::fs::remove_dir_all(r).unwrap();
    }
}
