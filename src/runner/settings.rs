//! The queue runner's settings in mailroom.conf (all optional).

use std::time::Duration;

use crate::config::{Config, parse_duration};
use crate::exit::Failure;

/// Keys read here, with defaults, for `mailroom check` and
/// `etc/mailroom.conf`.
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "queue_warn",
        "4h",
        "send a delay warning (once) when a message has waited this long",
    ),
    (
        "queue_return",
        "5d",
        "bounce what is still undelivered after this long",
    ),
    (
        "queue_retry_min",
        "5m",
        "first retry interval; it doubles with each attempt",
    ),
    ("queue_retry_max", "4h", "longest retry interval"),
    (
        "queue_workers",
        "8",
        "messages delivered at once by one queue run",
    ),
    (
        "express_linger",
        "1s",
        "how long the run started for new mail waits for more before it ends (0: as soon as it is idle)",
    ),
    (
        "max_per_destination",
        "4",
        "connections at once to one remote host",
    ),
    (
        "runner_memory_limit",
        "1G",
        "data size limit of a queue run (0 = none): a message that makes it grow without end crashes it, and the crash guard sets the message aside",
    ),
    (
        "smarthost",
        "(none)",
        "send all remote mail through this host: [host]:port",
    ),
    (
        "smarthost_tls",
        "verify (smtps for port 465)",
        "may | encrypt | verify | smtps | none",
    ),
    (
        "smarthost_auth",
        "/etc/mail/smarthost-auth",
        "file (root-only) with the smarthost login: USER PASSWORD",
    ),
    (
        "smtp_tls",
        "may",
        "TLS towards MX hosts: may | encrypt | verify | none",
    ),
    ("smtp_helo_name", "(hostname)", "name given in EHLO"),
    (
        "smtp_connect_timeout",
        "30s",
        "how long to wait for a TCP connection",
    ),
    (
        "smtp_timeout_cap",
        "(RFC 5321 values)",
        "cap every SMTP timeout at this (tests)",
    ),
    (
        "dsn_rate_per_sender",
        "20",
        "most bounces/warnings sent to one sender per hour",
    ),
    (
        "dsn_rate_total",
        "500",
        "most bounces/warnings sent per hour in all",
    ),
    (
        "double_bounce_address",
        "postmaster",
        "who hears about bounces that could not be delivered",
    ),
];

#[derive(Debug, Clone)]
pub struct Settings {
    pub queue_warn: i64,
    pub queue_return: i64,
    pub retry_min: i64,
    pub retry_max: i64,
    pub workers: usize,
    /// How long an express run stays for more mail ([`super::express`]).
    pub express_linger: Duration,
    pub max_per_destination: usize,
    /// RLIMIT_DATA for the queue runner, bytes (0 = unlimited).
    pub memory_limit: u64,
    pub helo: String,
    pub connect_timeout: Duration,
    pub timeout_cap: Option<Duration>,
    pub dsn_per_sender: u32,
    pub dsn_total: u32,
    pub double_bounce: String,
    pub smarthost_auth: std::path::PathBuf,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Result<Settings, Failure> {
        let dur = |key: &str, default: &str| -> Result<i64, Failure> {
            let v = cfg.get(key).unwrap_or(default);
            parse_duration(v, 1)
                .map(|d| d as i64)
                .ok_or_else(|| cfg.bad_value(key, "not a duration"))
        };
        let num = |key: &str, default: u64| cfg.number(key, default);
        Ok(Settings {
            queue_warn: dur("queue_warn", "4h")?,
            queue_return: dur("queue_return", "5d")?,
            retry_min: dur("queue_retry_min", "5m")?.max(1),
            retry_max: dur("queue_retry_max", "4h")?.max(1),
            workers: num("queue_workers", 8)?.clamp(1, 256) as usize,
            express_linger: Duration::from_secs(dur("express_linger", "1s")?.clamp(0, 3600) as u64),
            max_per_destination: num("max_per_destination", 4)?.clamp(1, 256) as usize,
            memory_limit: match cfg.get("runner_memory_limit") {
                None => 1 << 30,
                Some(v) => crate::config::parse_size(v)
                    .ok_or_else(|| cfg.bad_value("runner_memory_limit", "not a size"))?,
            },
            helo: cfg
                .get("smtp_helo_name")
                .map(str::to_string)
                .unwrap_or_else(|| cfg.hostname.clone()),
            connect_timeout: Duration::from_secs(dur("smtp_connect_timeout", "30s")? as u64),
            timeout_cap: match cfg.get("smtp_timeout_cap") {
                Some(v) => Some(Duration::from_secs(
                    parse_duration(v, 1)
                        .ok_or_else(|| cfg.bad_value("smtp_timeout_cap", "not a duration"))?,
                )),
                None => None,
            },
            dsn_per_sender: num("dsn_rate_per_sender", 20)? as u32,
            dsn_total: num("dsn_rate_total", 500)? as u32,
            double_bounce: cfg
                .get("double_bounce_address")
                .unwrap_or("postmaster")
                .to_string(),
            smarthost_auth: cfg.paths.resolve(
                cfg.get("smarthost_auth")
                    .unwrap_or("/etc/mail/smarthost-auth"),
            ),
        })
    }

    /// How long to wait before attempt number `attempts + 1`.
    pub fn backoff(&self, attempts: u32) -> i64 {
        let shift = attempts.saturating_sub(1).min(30);
        self.retry_min
            .saturating_mul(1i64 << shift)
            .min(self.retry_max)
    }

    /// Is a job with `attempts` made, the last at `last`, due at `now`?
    /// A new job always is.
    pub fn due(&self, attempts: u32, last: i64, now: i64) -> bool {
        attempts == 0 || now >= last + self.backoff(attempts)
    }

    /// SMTP timeouts, capped when configured.
    pub fn timeouts(&self) -> crate::smtp::client::Timeouts {
        let mut t = match self.timeout_cap {
            Some(c) => crate::smtp::client::Timeouts::capped(c),
            None => crate::smtp::client::Timeouts::default(),
        };
        t.connect = t.connect.min(self.connect_timeout);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cfg = Config::defaults(crate::config::Paths::under("/nonexistent"));
        let s = Settings::from_config(&cfg).unwrap();
        assert_eq!(s.backoff(1), 300);
        assert_eq!(s.backoff(2), 600);
        assert_eq!(s.backoff(3), 1200);
        assert_eq!(s.backoff(20), 4 * 3600);
    }

    #[test]
    fn a_job_is_due_when_its_backoff_has_passed() {
        let cfg = Config::defaults(crate::config::Paths::under("/nonexistent"));
        let s = Settings::from_config(&cfg).unwrap();
        assert!(s.due(0, 0, 0), "a new job is due at once");
        assert!(!s.due(1, 1000, 1299));
        assert!(s.due(1, 1000, 1300));
        assert!(!s.due(3, 1000, 2199));
        assert!(s.due(3, 1000, 2200));
    }
}
