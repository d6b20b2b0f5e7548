//! Simple mailing lists: sendmail's own idiom (an alias, an `:include:`
//! file, an `owner-` alias) plus the headers and posting rule a list needs.
//!
//! ## On disk (written by `mailroom list`, read here)
//!
//! A list is known by its aliases name NAME (`team`, or `team-shop` for
//! `team@shop.example`, named like mailboxes).  In `/etc/mail/lists/`:
//!
//! * `NAME` — the members: one address per line, `#` comment lines and
//!   blank lines allowed, commas allowed.  Exactly what sendmail's
//!   `:include:` reads.
//! * `NAME.owner` — the owner address(es), same format.
//! * `NAME.conf` — the settings, `key = value` lines (`#` comments):
//!   `address = team@shop.example` (the list's address, for `List-Id:` and
//!   `List-Post:`) and `posting = members` (default) or `anyone`.
//!
//! and in `/etc/mail/aliases`:
//!
//! ```text
//! NAME: :include:/etc/mail/lists/NAME
//! owner-NAME: :include:/etc/mail/lists/NAME.owner
//! ```
//!
//! Because the `owner-` alias is not a single plain address, sendmail 8
//! and mailroom both send the list's mail with the envelope sender
//! `owner-NAME` (aliases(5)), so every bounce goes to the owner, never to
//! the poster.  `NAME.conf` existing is what makes an alias a list (the
//! resolver tags what it reaches through it; see [`crate::deliver`]).

use std::path::PathBuf;

use crate::address;
use crate::config::Config;

/// The directory of list files.
pub const DIR: &str = "/etc/mail/lists";

/// Largest members file read (as for `:include:`).
const MAX_FILE: usize = 1 << 20;

/// `/etc/mail/lists` under the configuration's root.
pub fn dir(cfg: &Config) -> PathBuf {
    cfg.paths.resolve(DIR)
}

/// The members file as written in the aliases file.
pub fn members_path(name: &str) -> String {
    format!("{DIR}/{name}")
}

/// The owner file as written in the aliases file.
pub fn owner_path(name: &str) -> String {
    format!("{DIR}/{name}.owner")
}

/// The settings file as written in the aliases file's directory.
pub fn conf_path(name: &str) -> String {
    format!("{DIR}/{name}.conf")
}

/// Is the alias `name` a list (does it have settings)?
pub fn is_list(cfg: &Config, name: &str) -> bool {
    valid_name(name) && cfg.paths.resolve(conf_path(name)).is_file()
}

/// A list name: `[a-z0-9][a-z0-9_-]*`, at most 64 characters (no dots, so
/// that `NAME.conf` and `NAME.owner` cannot be another list's members).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A list's settings (`NAME.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The list's address, `team@shop.example`.
    pub address: String,
    /// `posting = anyone`: no membership check.
    pub anyone_may_post: bool,
}

impl Settings {
    pub fn to_text(&self) -> String {
        format!(
            "# mailroom list settings (see 'mailroom list --help')\naddress = {}\nposting = {}\n",
            self.address,
            if self.anyone_may_post {
                "anyone"
            } else {
                "members"
            }
        )
    }

    pub fn parse(text: &str) -> Result<Settings, String> {
        let mut address = None;
        let mut anyone = false;
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let Some((k, v)) = l.split_once('=') else {
                return Err(format!("line {}: not key = value", i + 1));
            };
            match (k.trim(), v.trim()) {
                ("address", a) if valid_list_address(a) => address = Some(a.to_ascii_lowercase()),
                ("address", a) => return Err(format!("line {}: bad address {a:?}", i + 1)),
                ("posting", "members") => anyone = false,
                ("posting", "anyone") => anyone = true,
                ("posting", p) => {
                    return Err(format!(
                        "line {}: posting is members or anyone, not {p:?}",
                        i + 1
                    ));
                }
                (k, _) => return Err(format!("line {}: unknown key {k:?}", i + 1)),
            }
        }
        Ok(Settings {
            address: address.ok_or("no address = line")?,
            anyone_may_post: anyone,
        })
    }

    /// `List-Id:` (RFC 2919) and `List-Post:` (RFC 2369) fields.
    pub fn header_fields(&self) -> [String; 2] {
        [
            format!("List-Id: <{}>", self.address.replacen('@', ".", 1)),
            format!("List-Post: <mailto:{}>", self.address),
        ]
    }
}

fn valid_list_address(a: &str) -> bool {
    match a.split_once('@') {
        Some((l, d)) => {
            !l.is_empty()
                && !d.is_empty()
                && !d.contains('@')
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+-=@".contains(c))
        }
        None => false,
    }
}

/// The addresses of a members (or owner) file: every element of every
/// line that is not blank or a `#` comment, as `:include:` reads it.
pub fn parse_members(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        for e in crate::aliases::split_list(l) {
            let e = e.trim();
            if !e.is_empty() {
                out.push((e.to_string(), i + 1));
            }
        }
    }
    out
}

/// The form addresses are compared in: bare, qualified with `host`,
/// lower case; a leading `\` (no aliasing) does not count.
pub fn comparable(addr: &str, host: &str) -> String {
    let a = addr.trim().trim_start_matches('\\');
    let bare = match address::parse_one(a) {
        Ok(m) if !m.addr.is_empty() => m.addr,
        _ => a.trim_matches(['<', '>']).to_string(),
    };
    address::qualify(&bare, host).to_ascii_lowercase()
}

/// One list, loaded.
#[derive(Debug, Clone)]
pub struct List {
    pub name: String,
    pub settings: Settings,
    /// The members as written.
    pub members: Vec<String>,
}

impl List {
    /// Read list `name`; `Ok(None)` when it is not a list.
    pub fn load(cfg: &Config, name: &str) -> Result<Option<List>, String> {
        if !valid_name(name) {
            return Ok(None);
        }
        let read = |p: String| -> Result<Option<String>, String> {
            let path = cfg.paths.resolve(&p);
            match crate::privs::read_file_as(&path, 0, 0, MAX_FILE) {
                Ok((b, _)) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {p}: {}", crate::exit::io_reason(&e))),
            }
        };
        let Some(conf) = read(conf_path(name))? else {
            return Ok(None);
        };
        let settings = Settings::parse(&conf).map_err(|e| format!("{}: {e}", conf_path(name)))?;
        let members = read(members_path(name))?
            .map(|t| parse_members(&t).into_iter().map(|(a, _)| a).collect())
            .unwrap_or_default();
        Ok(Some(List {
            name: name.to_string(),
            settings,
            members,
        }))
    }

    pub fn is_member(&self, addr: &str, host: &str) -> bool {
        let a = comparable(addr, host);
        !a.is_empty() && self.members.iter().any(|m| comparable(m, host) == a)
    }

    /// May a message from envelope sender `sender` (bare, "" for `<>`)
    /// with `From:` addresses `from` go to the members?  `Err` is why not.
    /// Mail from `<>`, MAILER-DAEMON, the list's owner address or the list
    /// itself is refused whatever the policy (it would loop).
    pub fn may_post(&self, sender: &str, from: &[String], host: &str) -> Result<(), String> {
        let s = comparable(sender, host);
        let local = s.split('@').next().unwrap_or("");
        let own = [
            comparable(&self.settings.address, host),
            comparable(&self.name, host),
        ];
        if s.is_empty()
            || local == "mailer-daemon"
            || local == format!("owner-{}", self.name)
            || own.contains(&s)
        {
            return Err(format!(
                "mail from {} is not posted to {} (it would loop)",
                if s.is_empty() { "<>" } else { &s },
                self.settings.address
            ));
        }
        if self.settings.anyone_may_post
            || self.is_member(sender, host)
            || from.iter().any(|f| self.is_member(f, host))
        {
            return Ok(());
        }
        Err(format!(
            "only members may post to {}",
            self.settings.address
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(anyone: bool) -> List {
        List {
            name: "team".into(),
            settings: Settings {
                address: "team@shop.example".into(),
                anyone_may_post: anyone,
            },
            members: parse_members("# staff\nalice\n\nBob@Example.COM, carol@shop.example\n")
                .into_iter()
                .map(|(a, _)| a)
                .collect(),
        }
    }

    #[test]
    fn members_file_reads_like_include() {
        let m = parse_members("# c\n alice \n\nbob@x.example, carol\n#x, y\n");
        assert_eq!(
            m,
            vec![
                ("alice".to_string(), 2),
                ("bob@x.example".to_string(), 4),
                ("carol".to_string(), 4)
            ]
        );
    }

    #[test]
    fn settings_round_trip_and_errors() {
        let s = Settings {
            address: "team@shop.example".into(),
            anyone_may_post: true,
        };
        assert_eq!(Settings::parse(&s.to_text()).unwrap(), s);
        assert!(Settings::parse("posting = members\n").is_err());
        assert!(Settings::parse("address = team@x.example\nposting = some\n").is_err());
        assert!(Settings::parse("address = nope\n").is_err());
        assert!(Settings::parse("address = a@b.example\ncolour = red\n").is_err());
        assert_eq!(
            s.header_fields(),
            [
                "List-Id: <team.shop.example>".to_string(),
                "List-Post: <mailto:team@shop.example>".to_string()
            ]
        );
    }

    #[test]
    fn members_only_by_envelope_or_from() {
        let l = list(false);
        let host = "mail.example";
        assert!(l.may_post("alice@MAIL.example", &[], host).is_ok());
        assert!(l.may_post("alice", &[], host).is_ok());
        assert!(l.may_post("<bob@example.com>", &[], host).is_ok());
        assert!(
            l.may_post("www-data", &["Carol@shop.example".into()], host)
                .is_ok()
        );
        let e = l.may_post("eve@evil.example", &[], host).unwrap_err();
        assert_eq!(e, "only members may post to team@shop.example");
        assert!(list(true).may_post("eve@evil.example", &[], host).is_ok());
    }

    #[test]
    fn loops_refused_whatever_the_policy() {
        let l = list(true);
        let host = "mail.example";
        for s in [
            "",
            "<>",
            "MAILER-DAEMON",
            "owner-team",
            "owner-team@shop.example",
            "team@shop.example",
        ] {
            assert!(l.may_post(s, &["alice".into()], host).is_err(), "{s}");
        }
    }

    #[test]
    fn names() {
        assert!(valid_name("team"));
        assert!(valid_name("team-shop"));
        assert!(!valid_name("team.owner"));
        assert!(!valid_name("Team"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
    }
}
