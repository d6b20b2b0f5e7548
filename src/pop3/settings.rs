//! pop3d's settings in mailroom.conf (all optional).  Those it shares
//! with the SMTP server belong to their owners: the login check's
//! ([`crate::login::Settings`]), the certificate ([`crate::tls::ServerCert`])
//! and the POP-before-SMTP window ([`crate::state::stamps`]).

use std::time::Duration;

use crate::config::{Config, parse_bool, parse_duration};
use crate::exit::Failure;

/// Keys read here, with defaults, for `mailroom check` and
/// `etc/mailroom.conf`.
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "pop3_require_tls",
        "no",
        "refuse USER/PASS and AUTH until the session is encrypted",
    ),
    (
        "pop3_user",
        "nobody",
        "the unprivileged user that talks to the network before login",
    ),
    (
        "pop3_login_timeout",
        "60s",
        "idle time allowed before login (3 times this in all)",
    ),
    (
        "pop3_idle_timeout",
        "10m",
        "idle time allowed after login (RFC 1939: at least 10 minutes)",
    ),
    (
        "pop3_auth_fail_delay",
        "1s",
        "pause after a failed login; it doubles with each failure",
    ),
    (
        "pop3_max_auth_failures",
        "3",
        "failed logins before the connection is closed",
    ),
    (
        "pop3_login_delay",
        "0",
        "least time between two logins of one account (0 = no limit; LOGIN-DELAY)",
    ),
];

/// pop3d's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub require_tls: bool,
    pub unprivileged_user: String,
    pub login_timeout: Duration,
    pub idle_timeout: Duration,
    pub auth_fail_delay: Duration,
    pub max_auth_failures: u32,
    pub login_delay: u64,
    /// How long a login's address may relay (0: no stamp is written).
    pub pop_before_smtp_window: u64,
    /// The login check's own settings.
    pub login: crate::login::Settings,
    /// The certificate for STLS and port 995.
    pub tls: crate::tls::ServerCert,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Result<Settings, Failure> {
        let dur = |key: &str, default: &str| -> Result<u64, Failure> {
            parse_duration(cfg.get(key).unwrap_or(default), 1)
                .ok_or_else(|| cfg.bad_value(key, "not a duration (e.g. 30s, 10m)"))
        };
        let num = |key: &str, default: u64| cfg.number(key, default);
        Ok(Settings {
            require_tls: match cfg.get("pop3_require_tls") {
                None => false,
                Some(v) => parse_bool(v)
                    .ok_or_else(|| cfg.bad_value("pop3_require_tls", "expected yes or no"))?,
            },
            unprivileged_user: cfg.get("pop3_user").unwrap_or("nobody").to_string(),
            login_timeout: Duration::from_secs(dur("pop3_login_timeout", "60s")?.max(1)),
            // RFC 1939 §3: an autologout timer MUST be at least 10 minutes
            // (shorter only where the admin insists).
            idle_timeout: Duration::from_secs(dur("pop3_idle_timeout", "10m")?.max(1)),
            auth_fail_delay: Duration::from_secs(dur("pop3_auth_fail_delay", "1s")?),
            max_auth_failures: num("pop3_max_auth_failures", 3)?.clamp(1, 100) as u32,
            login_delay: dur("pop3_login_delay", "0")?,
            pop_before_smtp_window: crate::state::stamps::pop_before_smtp_window(cfg)?,
            login: crate::login::Settings::from_config(cfg)?,
            tls: crate::tls::ServerCert::from_config(cfg),
        })
    }

    /// How failed logins are slowed (`pop3_auth_fail_delay`,
    /// `pop3_max_auth_failures`).
    pub fn pace(&self) -> crate::login::Pace {
        crate::login::Pace {
            delay: self.auth_fail_delay,
            max_failures: self.max_auth_failures,
        }
    }
}
