//! Choosing jobs by who sent them and where they go, for the admin's
//! clean-up (`mailroom queue hold|release|delete|retry --user www-data`)
//! and the limits' alert.
//!
//! Who submitted a job is read from what its control file records: a
//! local program's login in the `$_` macro (`www-data@localhost`), an SMTP
//! client's AUTH login in `${auth_authen}` (and its `A` record), a client's
//! address in `$_` (`HELO [192.0.2.7]`).

use super::Envelope;
use crate::address;

/// What to match; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// `--from ADDRESS` (the envelope sender, case-insensitive) or
    /// `--from @DOMAIN` (its domain).
    pub from: Option<String>,
    /// `--user LOGIN`: submitted by this local user.
    pub user: Option<String>,
    /// `--login ADDRESS`: sent by this SMTP AUTH login.
    pub login: Option<String>,
    /// `--client ADDRESS`: sent by an SMTP client at this address.
    pub client: Option<String>,
    /// `--to-domain DOMAIN`: at least one recipient there.
    pub to_domain: Option<String>,
    /// `--subject GLOB`: the Subject: matches (`*` and `?`, case-insensitive).
    pub subject: Option<String>,
    /// `--older-than AGE`: created at least this many seconds ago.
    pub older_than: Option<i64>,
}

impl Selector {
    /// Does the job `env` match, `now`?
    pub fn matches(&self, env: &Envelope, now: i64) -> bool {
        if let Some(f) = &self.from {
            let sender = bare(&env.sender);
            let ok = match f.strip_prefix('@') {
                Some(d) => address::split_addr(&sender)
                    .1
                    .is_some_and(|sd| sd.eq_ignore_ascii_case(d)),
                None => sender.eq_ignore_ascii_case(bare(f).as_str()),
            };
            if !ok {
                return false;
            }
        }
        if let Some(u) = &self.user
            && submitting_user(env).is_none_or(|x| !x.eq_ignore_ascii_case(u))
        {
            return false;
        }
        if let Some(l) = &self.login
            && auth_login(env).is_none_or(|x| !x.eq_ignore_ascii_case(l))
        {
            return false;
        }
        if let Some(c) = &self.client
            && client_address(env).is_none_or(|x| !x.eq_ignore_ascii_case(c))
        {
            return false;
        }
        if let Some(d) = &self.to_domain {
            let d = d.trim_start_matches('@');
            let hit = env.recipients.iter().any(|r| {
                address::split_addr(&bare(&r.addr))
                    .1
                    .is_some_and(|rd| rd.trim_end_matches('.').eq_ignore_ascii_case(d))
            });
            if !hit {
                return false;
            }
        }
        if let Some(g) = &self.subject {
            let s = subject(env).unwrap_or_default();
            if !glob(&g.to_ascii_lowercase(), &s.to_ascii_lowercase()) {
                return false;
            }
        }
        if let Some(age) = self.older_than
            && now - env.created < age
        {
            return false;
        }
        true
    }
}

/// An address without its angle brackets and display name.
fn bare(a: &str) -> String {
    match address::parse_one(a) {
        Ok(m) => m.addr,
        Err(_) => a
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string(),
    }
}

/// The local user who ran `sendmail` for this job (`$_` = `USER@localhost`
/// with no client address).
pub fn submitting_user(env: &Envelope) -> Option<String> {
    let v = String::from_utf8_lossy(env.macro_value("_")?).into_owned();
    let user = v.strip_suffix("@localhost")?;
    (!user.contains([' ', '[', '@'])).then(|| user.to_string())
}

/// The SMTP AUTH login that sent this job.
pub fn auth_login(env: &Envelope) -> Option<String> {
    if let Some(v) = env.macro_value("auth_authen") {
        return Some(String::from_utf8_lossy(v).into_owned());
    }
    // Only an SMTP client's envelope names its login in `A`; a trusted
    // local program's `A` is its sender address, and it has no `$r`.
    env.macro_value("r")?;
    Some(bare(env.auth.as_deref()?))
}

/// The SMTP client's address (`$_` = `HELO [192.0.2.7]`).
pub fn client_address(env: &Envelope) -> Option<String> {
    let v = String::from_utf8_lossy(env.macro_value("_")?).into_owned();
    let (_, rest) = v.rsplit_once('[')?;
    let a = rest.strip_suffix(']')?;
    Some(a.strip_prefix("IPv6:").unwrap_or(a).to_string())
}

/// The job's `Subject:`, unfolded.
pub fn subject(env: &Envelope) -> Option<String> {
    env.headers
        .iter()
        .find(|h| h.is("Subject"))
        .map(|h| h.value())
}

/// `*` any run, `?` one character; the whole text must match.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{QHeader, Recipient};

    fn env(sender: &str, relay: &str, rcpts: &[&str], subject: &str) -> Envelope {
        Envelope {
            created: 1000,
            sender: sender.into(),
            macros: vec![("_".into(), relay.as_bytes().to_vec())],
            recipients: rcpts
                .iter()
                .map(|r| Recipient {
                    addr: r.to_string(),
                    ..Default::default()
                })
                .collect(),
            headers: vec![QHeader::new("", format!("Subject: {subject}").as_bytes())],
            ..Default::default()
        }
    }

    #[test]
    fn jobs_are_chosen_by_sender_user_destination_subject_and_age() {
        let php = env(
            "www-data",
            "www-data@localhost",
            &["<a@Gmail.com>", "<b@yahoo.example>"],
            "Cheap pills",
        );
        let sel = |f: fn(&mut Selector)| {
            let mut s = Selector::default();
            f(&mut s);
            s
        };
        assert!(Selector::default().matches(&php, 2000));
        assert!(sel(|s| s.user = Some("WWW-DATA".into())).matches(&php, 2000));
        assert!(!sel(|s| s.user = Some("eve".into())).matches(&php, 2000));
        assert!(sel(|s| s.to_domain = Some("gmail.com".into())).matches(&php, 2000));
        assert!(!sel(|s| s.to_domain = Some("outlook.com".into())).matches(&php, 2000));
        assert!(sel(|s| s.subject = Some("*pills".into())).matches(&php, 2000));
        assert!(!sel(|s| s.subject = Some("invoice*".into())).matches(&php, 2000));
        assert!(sel(|s| s.older_than = Some(600)).matches(&php, 2000));
        assert!(!sel(|s| s.older_than = Some(6000)).matches(&php, 2000));
        assert!(!sel(|s| s.login = Some("www-data".into())).matches(&php, 2000));
        let smtp = Envelope {
            auth: Some("<ceo@shop.example>".into()),
            macros: vec![
                ("_".into(), b"laptop [192.0.2.7]".to_vec()),
                ("r".into(), b"ESMTPSA".to_vec()),
            ],
            ..env("<ceo@shop.example>", "", &["<x@far.example>"], "Hi")
        };
        assert!(sel(|s| s.login = Some("ceo@shop.example".into())).matches(&smtp, 2000));
        assert!(sel(|s| s.client = Some("192.0.2.7".into())).matches(&smtp, 2000));
        assert!(sel(|s| s.from = Some("@SHOP.example".into())).matches(&smtp, 2000));
        assert!(sel(|s| s.from = Some("ceo@shop.example".into())).matches(&smtp, 2000));
        assert!(!sel(|s| s.user = Some("ceo".into())).matches(&smtp, 2000));
    }

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*win*", "you win a prize"));
    }
}
