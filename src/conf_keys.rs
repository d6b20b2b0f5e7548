//! Every `mailroom.conf` key, gathered from the modules that own them: the
//! settings most programs share ([`crate::config::KNOWN_KEYS`]), the queue
//! runner's ([`crate::runner::settings::KEYS`]), pop3d's
//! ([`crate::pop3::settings::KEYS`]), the outbound limits'
//! ([`crate::limits::settings::KEYS`]) and pacing
//! ([`crate::runner::pacing::KEYS`]), the login check's
//! ([`crate::login::KEYS`]), the web panel helper's
//! ([`crate::login::PANEL_KEYS`]) and front end's ([`crate::panel::KEYS`]),
//! the servers' certificates ([`crate::tls::KEYS`]), POP-before-SMTP's
//! ([`crate::state::stamps::KEYS`]), the SMTP server's
//! ([`crate::smtp::server::settings::KEYS`]), and the sender checks'
//! ([`crate::inbound::settings::KEYS`]).  Each entry is `(key,
//! default, meaning)`.
//!
//! One table, three readers: `mailroom check` reports keys not in it,
//! `mailroom.conf(5)` is generated from it, and a test keeps it and the
//! sample file `etc/mailroom.conf` equal both ways.

use crate::config::Config;

/// A key: its name, its default as an admin would write it (or a
/// parenthesised description), and what it means.
pub type Key = (&'static str, &'static str, &'static str);

/// The keys of one program or part, as `mailroom.conf(5)` groups them.
pub struct Section {
    pub title: &'static str,
    pub keys: &'static [Key],
}

/// Every section, in the order of `etc/mailroom.conf`.
pub const SECTIONS: &[Section] = &[
    Section {
        title: "Submission, the queue and local delivery",
        keys: crate::config::KNOWN_KEYS,
    },
    Section {
        title: "The queue runner (qrun)",
        keys: crate::runner::settings::KEYS,
    },
    Section {
        title: "Outbound limits (sendmail, the SMTP server)",
        keys: crate::limits::settings::KEYS,
    },
    Section {
        title: "Pacing per destination (qrun)",
        keys: crate::runner::pacing::KEYS,
    },
    Section {
        title: "The POP3 server (pop3d)",
        keys: crate::pop3::settings::KEYS,
    },
    Section {
        title: "Logins (pop3d and SMTP AUTH)",
        keys: crate::login::KEYS,
    },
    Section {
        title: "The web control panel (panel-helper)",
        keys: crate::login::PANEL_KEYS,
    },
    Section {
        title: "TLS certificates (pop3d and the SMTP server)",
        keys: crate::tls::KEYS,
    },
    Section {
        title: "The web control panel (panel)",
        keys: crate::panel::KEYS,
    },
    Section {
        title: "POP-before-SMTP",
        keys: crate::state::stamps::KEYS,
    },
    Section {
        title: "The SMTP server (sendmail -bs)",
        keys: crate::smtp::server::settings::KEYS,
    },
    Section {
        title: "Checking senders (port 25): blocklists, SPF, DKIM, DMARC",
        keys: crate::inbound::settings::KEYS,
    },
];

/// Every key of every section.
pub fn all() -> impl Iterator<Item = &'static Key> {
    SECTIONS.iter().flat_map(|s| s.keys.iter())
}

pub fn is_known(key: &str) -> bool {
    all().any(|(k, _, _)| *k == key)
}

/// The keys set in `cfg`'s file that this version does not know, with
/// their lines.
pub fn unknown(cfg: &Config) -> Vec<(&str, usize)> {
    cfg.settings
        .iter()
        .filter(|(k, _)| !is_known(k))
        .map(|(k, s)| (k.as_str(), s.line))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The `#key = value` lines of the sample file, in order.
    fn sample() -> Vec<(String, String)> {
        include_str!("../etc/mailroom.conf")
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| !l.starts_with(' ') && l.contains(" = "))
            .map(|l| {
                let (k, v) = l.split_once(" = ").unwrap();
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect()
    }

    #[test]
    fn the_sample_file_shows_every_key_and_only_known_keys() {
        let sample: BTreeMap<String, String> = sample().into_iter().collect();
        let table: Vec<&str> = all().map(|(k, _, _)| *k).collect();
        let undocumented: Vec<&&str> = table.iter().filter(|k| !sample.contains_key(**k)).collect();
        assert!(
            undocumented.is_empty(),
            "keys missing from etc/mailroom.conf: {undocumented:?}"
        );
        let unknown: Vec<&String> = sample.keys().filter(|k| !is_known(k)).collect();
        assert!(
            unknown.is_empty(),
            "etc/mailroom.conf shows keys no module reads: {unknown:?}"
        );
    }

    #[test]
    fn the_sample_file_shows_each_default_that_is_a_value() {
        // A default in parentheses describes (e.g. "(from /etc/mailname)");
        // the sample then shows an example value instead.  A value may be
        // followed by a remark in parentheses.
        let sample: BTreeMap<String, String> = sample().into_iter().collect();
        for (key, default, _) in all() {
            if default.starts_with('(') {
                continue;
            }
            let value = default.split(" (").next().unwrap_or(default);
            assert_eq!(
                sample.get(*key).map(String::as_str),
                Some(value),
                "etc/mailroom.conf shows another default for {key}"
            );
        }
    }

    #[test]
    fn keys_are_unique_lower_case_and_described() {
        let mut seen = std::collections::BTreeSet::new();
        for (key, default, meaning) in all() {
            assert!(seen.insert(*key), "{key} twice");
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{key}"
            );
            assert!(!default.is_empty() && !meaning.is_empty(), "{key}");
        }
    }

    #[test]
    fn unknown_keys_are_reported_with_their_lines() {
        let mut cfg = Config::defaults(crate::config::Paths::under("/nonexistent"));
        cfg.settings = crate::config::parse_settings(
            std::path::Path::new("f"),
            b"queue_warn = 1h\nmystery = 1\nsmtp_user = mail\npop3_user = nobody\nhostname = x\n",
        )
        .unwrap();
        assert_eq!(unknown(&cfg), vec![("mystery", 2)]);
    }
}
