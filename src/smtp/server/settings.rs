//! The SMTP server's settings in mailroom.conf (all optional).  The TLS
//! files ([`crate::tls::ServerCert`]), the login check's settings
//! ([`crate::login::Settings`]) and the POP-before-SMTP window are shared
//! with pop3d.

use std::time::Duration;

use crate::config::{Config, parse_bool, parse_duration};
use crate::exit::Failure;

/// Keys read here, with defaults, for `mailroom check` and
/// `etc/mailroom.conf`.
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "smtp_user",
        "mail",
        "the unprivileged user that talks to the network (with group mqueue to queue mail)",
    ),
    (
        "smtp_submission_ports",
        "587",
        "local ports where every sender must log in (AUTH) before sending",
    ),
    (
        "smtp_require_auth",
        "no",
        "require AUTH on every port (a box that receives no mail from the internet)",
    ),
    (
        "smtp_max_recipients",
        "100",
        "recipients per message (more get 452 4.5.3)",
    ),
    (
        "smtp_max_errors",
        "20",
        "failed commands per connection before 421 and close",
    ),
    (
        "smtp_max_connections_per_ip",
        "10",
        "simultaneous connections from one client address (0 = no limit)",
    ),
    (
        "smtp_timeout",
        "5m",
        "idle time allowed for a command or a DATA block (RFC 5321 §4.5.3.2)",
    ),
    (
        "smtp_greet_pause",
        "300ms",
        "pause before the greeting over TCP; a client that talks first is refused (554)",
    ),
    (
        "smtp_auth_fail_delay",
        "1s",
        "pause after a failed AUTH; it doubles with each failure",
    ),
    (
        "smtp_max_auth_failures",
        "3",
        "failed AUTH attempts before the connection is closed",
    ),
];

/// The SMTP server's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub unprivileged_user: String,
    pub submission_ports: Vec<u16>,
    pub require_auth: bool,
    pub max_recipients: usize,
    pub max_errors: u32,
    pub max_connections_per_ip: u32,
    pub timeout: Duration,
    pub greet_pause: Duration,
    pub auth_fail_delay: Duration,
    pub max_auth_failures: u32,
    /// How long a POP3 login lets its address relay
    /// ([`crate::state::stamps::pop_before_smtp_window`]).
    pub pop_before_smtp_window: u64,
    /// The certificate for STARTTLS and port 465 (pop3d's too).
    pub tls: crate::tls::ServerCert,
    /// The login check's settings (AUTH checks as pop3d does).
    pub login: crate::login::Settings,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Result<Settings, Failure> {
        let num = |key: &str, default: u64| cfg.number(key, default);
        let millis = |key: &str, default: &str| -> Result<Duration, Failure> {
            let v = cfg.get(key).unwrap_or(default).trim();
            let ms = match v.strip_suffix("ms") {
                Some(n) => n.trim().parse::<u64>().ok(),
                None => parse_duration(v, 1).map(|s| s * 1000),
            };
            ms.map(Duration::from_millis)
                .ok_or_else(|| cfg.bad_value(key, "not a duration (e.g. 300ms, 5s, 5m)"))
        };
        let ports = match cfg.get("smtp_submission_ports") {
            None => vec![587],
            Some(v) => v
                .split([',', ' '])
                .filter(|p| !p.is_empty())
                .map(|p| p.parse::<u16>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| cfg.bad_value("smtp_submission_ports", "expected port numbers"))?,
        };
        Ok(Settings {
            unprivileged_user: cfg.get("smtp_user").unwrap_or("mail").to_string(),
            submission_ports: ports,
            require_auth: match cfg.get("smtp_require_auth") {
                None => false,
                Some(v) => parse_bool(v)
                    .ok_or_else(|| cfg.bad_value("smtp_require_auth", "expected yes or no"))?,
            },
            max_recipients: num("smtp_max_recipients", 100)?.clamp(1, 100_000) as usize,
            max_errors: num("smtp_max_errors", 20)?.clamp(1, 10_000) as u32,
            max_connections_per_ip: num("smtp_max_connections_per_ip", 10)?.min(10_000) as u32,
            // RFC 5321 §4.5.3.2: at least 5 minutes for commands and DATA
            // blocks; shorter only where the admin insists.
            timeout: millis("smtp_timeout", "5m")?.max(Duration::from_secs(1)),
            greet_pause: millis("smtp_greet_pause", "300ms")?,
            auth_fail_delay: millis("smtp_auth_fail_delay", "1s")?,
            max_auth_failures: num("smtp_max_auth_failures", 3)?.clamp(1, 100) as u32,
            pop_before_smtp_window: crate::state::stamps::pop_before_smtp_window(cfg)?,
            login: crate::login::Settings::from_config(cfg)?,
            tls: crate::tls::ServerCert::from_config(cfg),
        })
    }

    /// How failed AUTH attempts are slowed (`smtp_auth_fail_delay`,
    /// `smtp_max_auth_failures`).
    pub fn pace(&self) -> crate::login::Pace {
        crate::login::Pace {
            delay: self.auth_fail_delay,
            max_failures: self.max_auth_failures,
        }
    }
}
