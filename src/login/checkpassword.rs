//! The qmail checkpassword interface, as Dovecot 2.3's `passdb` and
//! `userdb` drivers `checkpassword` speak it: how another mail server
//! (Dovecot's IMAP) asks the login door ([`super`]) about a login.  The
//! program is `checkpassword` ([`crate::cli::checkpassword`]); this module
//! is its protocol, without the descriptors, privileges and `exec`.
//!
//! ## The request
//!
//! On descriptor 3, at most [`MAX_REQUEST`] bytes, then end of file:
//!
//! ```text
//! LOGIN\0PASSWORD\0TIMESTAMP\0
//! ```
//!
//! TIMESTAMP (APOP's, in qmail) is empty from Dovecot and ignored; a
//! userdb lookup's PASSWORD is empty too.  The environment says which of
//! three questions it is ([`Mode`]): `AUTHORIZED=1` a userdb lookup (the
//! user is already authenticated: where is the mail?), `CREDENTIALS_LOOKUP=1`
//! a request for the password itself (CRAM-MD5 and the like: never
//! answered), otherwise a password check.  `TCPREMOTEIP` and `SERVICE`
//! name the client and the protocol for the log.
//!
//! ## The answer
//!
//! On success the program sets, for the reply program named by its
//! arguments (Dovecot's `checkpassword-reply`), and `exec`s it:
//!
//! ```text
//! USER=LOGIN                   the account's login (info-shop, info@example.com)
//! HOME=DIR                     Identity::home
//! userdb_uid=UID userdb_gid=GID  the mailbox owner's (vmail's for a virtual account)
//! userdb_mail=mbox:FOLDERS:INBOX=INBOX  or  maildir:DIR   where delivery writes
//! userdb_quota_rule=*:storage=BYTESB                    delivery's quota (0 = none)
//! EXTRA=userdb_uid userdb_gid userdb_mail userdb_quota_rule
//! AUTHORIZED=2                 on a userdb lookup only
//! ```
//!
//! Otherwise it exits with one of the [`exit`] codes: a wrong password,
//! an unknown login and an account that may not log in all give
//! [`exit::REFUSED`], after the same work and the same pause (the door's).

use std::path::Path;

use super::{Attempt, Door, Identity, Outcome, Pace, Settings};
use crate::accounts::MailboxPath;
use crate::config::Config;
use crate::log;

/// The longest request Dovecot sends (its own limit: longer is refused
/// before it reaches us).
pub const MAX_REQUEST: usize = 512;

/// The exit codes Dovecot reads (its `db-checkpassword.c`).
pub mod exit {
    /// Wrong password, unknown login, not allowed: "Authentication failed".
    pub const REFUSED: i32 = 1;
    /// Misused: not the protocol, or a caller that may not ask.  Dovecot
    /// logs it as an internal error.
    pub const MISUSE: i32 = 2;
    /// A userdb lookup for a login that names no account: "user unknown".
    pub const UNKNOWN_USER: i32 = 3;
    /// A temporary failure: Dovecot answers "Temporary authentication
    /// failure" and the client may try again.
    pub const TEMPORARY: i32 = 111;
}

/// The request on descriptor 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub login: Vec<u8>,
    pub password: Vec<u8>,
}

/// Parse the request; `None` when it is not one (too long, or fewer than
/// two NUL-terminated fields).
pub fn parse(bytes: &[u8]) -> Option<Request> {
    if bytes.len() > MAX_REQUEST {
        return None;
    }
    let mut fields = bytes.split(|&b| b == 0);
    let login = fields.next()?;
    let password = fields.next()?;
    // Both must be NUL-terminated: a third piece (the timestamp, maybe
    // empty) must follow.
    fields.next()?;
    Some(Request {
        login: login.to_vec(),
        password: password.to_vec(),
    })
}

/// Which question the caller asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Check the password (passdb).
    Authenticate,
    /// Where is this user's mail (userdb, `AUTHORIZED=1`).
    Lookup,
    /// Give the password itself (`CREDENTIALS_LOOKUP=1`): never answered;
    /// the shipped Dovecot configuration offers only plaintext mechanisms.
    Credentials,
}

impl Mode {
    /// From the environment, as `get(NAME)` reads it.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Mode {
        if get("CREDENTIALS_LOOKUP").as_deref() == Some("1") {
            Mode::Credentials
        } else if get("AUTHORIZED").as_deref() == Some("1") {
            Mode::Lookup
        } else {
            Mode::Authenticate
        }
    }
}

/// What the program does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Set these variables and `exec` the reply program.
    Reply(Vec<(String, String)>),
    /// Exit with this code.
    Exit(i32),
}

/// Who asked, for the log: the client's address and Dovecot's service.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub address: String,
    pub service: String,
}

impl Caller {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Caller {
        let clean = |v: Option<String>| {
            v.filter(|s| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic()))
                .unwrap_or_else(|| "unknown".to_string())
        };
        Caller {
            address: clean(get("TCPREMOTEIP").or_else(|| get("REMOTE_IP"))),
            service: clean(get("SERVICE")),
        }
    }
}

/// Answer one request through the door: the password check with the
/// door's refusals, pause and log lines, or the lookup.
pub fn answer(
    cfg: &Config,
    settings: &Settings,
    pace: Pace,
    request: &Request,
    mode: Mode,
    caller: &Caller,
) -> Answer {
    let Caller { address, service } = caller;
    match mode {
        Mode::Credentials => {
            log::notice(
                None,
                &format!(
                    "credentials lookup refused ({service}): only plaintext logins are checked"
                ),
            );
            Answer::Exit(exit::REFUSED)
        }
        Mode::Lookup => match super::lookup(cfg, settings, &request.login) {
            Some(id) => reply(&id, true),
            None => Answer::Exit(exit::UNKNOWN_USER),
        },
        Mode::Authenticate => {
            let mut door = Door::new(cfg, settings, pace);
            let attempt = Attempt::password(&request.login, &request.password);
            match door.attempt(&attempt, |why| {
                log::notice(
                    None,
                    &format!("login failed: {} from {address} ({service})", why.who()),
                )
            }) {
                Outcome::LoggedIn(id) => {
                    log::info(
                        None,
                        &format!("login: {} from {address} ({service})", id.login),
                    );
                    reply(&id, false)
                }
                Outcome::Failed | Outcome::TooManyFailures => Answer::Exit(exit::REFUSED),
            }
        }
    }
}

/// The reply program's environment for `id`, or a temporary failure when
/// a path cannot be said in Dovecot's terms (logged).
fn reply(id: &Identity, lookup: bool) -> Answer {
    match environment(id) {
        Ok(mut vars) => {
            if lookup {
                vars.push(("AUTHORIZED".into(), "2".into()));
            }
            Answer::Reply(vars)
        }
        Err(why) => {
            log::err(None, &format!("{}: not said to Dovecot: {why}", id.login));
            Answer::Exit(exit::TEMPORARY)
        }
    }
}

/// `USER`, `HOME` and the userdb fields (see the module text).
pub fn environment(id: &Identity) -> Result<Vec<(String, String)>, String> {
    let mail = match (&id.mailbox, &id.folders) {
        (MailboxPath::Mbox(inbox), Some(folders)) => {
            format!("mbox:{}:INBOX={}", location(folders)?, location(inbox)?)
        }
        (MailboxPath::Mbox(inbox), None) => {
            return Err(format!("no folder directory for {}", inbox.display()));
        }
        (MailboxPath::Maildir(dir), _) => format!("maildir:{}", location(dir)?),
    };
    let home = location(&id.home)?;
    if id.login.contains(['\t', '\n']) {
        return Err("the login holds a tab or a line end".to_string());
    }
    Ok(vec![
        ("USER".into(), id.login.clone()),
        ("HOME".into(), home),
        ("userdb_uid".into(), id.uid.to_string()),
        ("userdb_gid".into(), id.gid.to_string()),
        ("userdb_mail".into(), mail),
        (
            "userdb_quota_rule".into(),
            format!("*:storage={}B", id.quota),
        ),
        (
            "EXTRA".into(),
            "userdb_uid userdb_gid userdb_mail userdb_quota_rule".into(),
        ),
    ])
}

/// A path as a part of a Dovecot mail location: absolute, and without the
/// characters Dovecot would read as a separator (`:`), a variable (`%`)
/// or the end of a field (tab, line end).
fn location(path: &Path) -> Result<String, String> {
    let s = path
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
    let s = s.strip_suffix('/').filter(|t| !t.is_empty()).unwrap_or(s);
    if !s.starts_with('/') || s.contains([':', '%', '\t', '\n']) {
        return Err(format!(
            "{s} cannot be given to Dovecot (relative, or holds ':', '%', a tab or a line end)"
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::testing::root;
    use super::*;
    use std::time::Duration;

    const NO_PAUSE: Pace = Pace {
        delay: Duration::ZERO,
        max_failures: 3,
    };

    fn req(login: &str, password: &str) -> Request {
        parse(format!("{login}\0{password}\0\0").as_bytes()).unwrap()
    }

    fn vars(a: &Answer) -> std::collections::HashMap<&str, &str> {
        match a {
            Answer::Reply(v) => v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_are_two_nul_terminated_fields_within_512_bytes() {
        assert_eq!(
            parse(b"bob\0secret\0\0"),
            Some(Request {
                login: b"bob".to_vec(),
                password: b"secret".to_vec()
            })
        );
        // qmail's timestamp, and Dovecot's userdb form (empty password).
        assert_eq!(parse(b"bob\0pw\0<1.2@host>\0").unwrap().password, b"pw");
        assert_eq!(parse(b"bob\0\0").unwrap().password, b"");
        for bad in [&b""[..], b"bob", b"bob\0", b"bob\0secret"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        let mut long = vec![b'a'; MAX_REQUEST - 4];
        long.extend_from_slice(b"\0p\0\0");
        assert!(parse(&long).is_some());
        long.insert(0, b'a');
        assert_eq!(parse(&long), None);
    }

    #[test]
    fn the_mode_comes_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Mode::from_env(env(&[])), Mode::Authenticate);
        assert_eq!(Mode::from_env(env(&[("AUTHORIZED", "1")])), Mode::Lookup);
        assert_eq!(
            Mode::from_env(env(&[("AUTHORIZED", "1"), ("CREDENTIALS_LOOKUP", "1")])),
            Mode::Credentials
        );
        // AUTHORIZED=2 is our own answer, not a question.
        assert_eq!(
            Mode::from_env(env(&[("AUTHORIZED", "2")])),
            Mode::Authenticate
        );
        let c = Caller::from_env(env(&[("TCPREMOTEIP", "192.0.2.7"), ("SERVICE", "imap")]));
        assert_eq!(
            (c.address.as_str(), c.service.as_str()),
            ("192.0.2.7", "imap")
        );
        let c = Caller::from_env(env(&[("TCPREMOTEIP", "a b\n")]));
        assert_eq!(
            (c.address.as_str(), c.service.as_str()),
            ("unknown", "unknown")
        );
    }

    #[test]
    fn a_good_password_answers_with_the_users_mailbox_and_quota() {
        let (root, cfg) = root("cp-ok");
        std::fs::write(root.join("etc/mail/quotas"), "bob 10M\n").unwrap();
        let settings = Settings { first_uid: 100 };
        let caller = Caller::default();
        let a = answer(
            &cfg,
            &settings,
            NO_PAUSE,
            &req("Bob", "secret"),
            Mode::Authenticate,
            &caller,
        );
        let v = vars(&a);
        assert_eq!(v["USER"], "bob");
        assert_eq!(v["HOME"], root.join("home/bob").to_str().unwrap());
        assert_eq!((v["userdb_uid"], v["userdb_gid"]), ("4242", "4242"));
        // bob has no home directory here: his folders sit beside the inbox.
        let inbox = root.join("var/mail/bob");
        assert_eq!(
            v["userdb_mail"],
            format!("mbox:{0}.folders:INBOX={0}", inbox.display())
        );
        assert_eq!(v["userdb_quota_rule"], "*:storage=10485760B");
        assert_eq!(
            v["EXTRA"],
            "userdb_uid userdb_gid userdb_mail userdb_quota_rule"
        );
        assert!(!v.contains_key("AUTHORIZED"));
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn wrong_password_unknown_login_and_forbidden_account_exit_1_alike() {
        let (root, cfg) = root("cp-refused");
        let settings = Settings { first_uid: 100 };
        let caller = Caller::default();
        let ask = |s: &Settings, login: &str, pw: &str| {
            answer(
                &cfg,
                s,
                NO_PAUSE,
                &req(login, pw),
                Mode::Authenticate,
                &caller,
            )
        };
        let refused = Answer::Exit(exit::REFUSED);
        assert_eq!(ask(&settings, "bob", "guess"), refused);
        assert_eq!(ask(&settings, "nobody-here", "guess"), refused);
        assert_eq!(ask(&settings, "nobody@example.com", "secret"), refused);
        assert_eq!(ask(&settings, "../etc/passwd", "secret"), refused);
        assert_eq!(ask(&settings, "root", ""), refused);
        assert_eq!(ask(&Settings { first_uid: 5000 }, "bob", "secret"), refused);
        // No password questions: the door checks passwords, nobody reads them.
        assert_eq!(
            answer(
                &cfg,
                &settings,
                NO_PAUSE,
                &req("bob", ""),
                Mode::Credentials,
                &caller
            ),
            refused
        );
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_lookup_answers_authorized_2_or_exits_3_for_an_unknown_login() {
        let (root, cfg) = root("cp-lookup");
        std::fs::write(
            root.join("etc/mail/passwd"),
            "info@shop.example:{PLAIN}pw:/var/mail/virtual/shop.example/info/:1G:\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbob:x:4242:4242:Bob:/home/bob:/bin/sh\nvmail:x:5000:5000::/nonexistent:/bin/false\n",
        )
        .unwrap();
        let settings = Settings { first_uid: 100 };
        let caller = Caller::default();
        let look = |login: &str| {
            answer(
                &cfg,
                &settings,
                NO_PAUSE,
                &req(login, ""),
                Mode::Lookup,
                &caller,
            )
        };
        let a = look("bob");
        assert_eq!(vars(&a)["AUTHORIZED"], "2");
        assert_eq!(vars(&a)["USER"], "bob");
        // Every login form of the virtual account, no password needed.
        for form in [
            "info@shop.example",
            "info%shop.example",
            "INFO/shop.example",
        ] {
            let a = look(form);
            let v = vars(&a);
            assert_eq!(v["USER"], "info@shop.example", "{form}");
            let md = root.join("var/mail/virtual/shop.example/info");
            assert_eq!(v["userdb_mail"], format!("maildir:{}", md.display()));
            assert_eq!(v["HOME"], md.to_str().unwrap());
            assert_eq!((v["userdb_uid"], v["userdb_gid"]), ("5000", "5000"));
            assert_eq!(v["userdb_quota_rule"], "*:storage=1073741824B");
        }
        assert_eq!(look("nobody-here"), Answer::Exit(exit::UNKNOWN_USER));
        assert_eq!(look("root"), Answer::Exit(exit::UNKNOWN_USER));
        assert_eq!(look("a/b/c"), Answer::Exit(exit::UNKNOWN_USER));
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn paths_dovecot_would_misread_are_a_temporary_failure() {
        let id = Identity {
            login: "bob".into(),
            owner: "bob".into(),
            uid: 4242,
            gid: 4242,
            mailbox: MailboxPath::Mbox("/var/mail/bob".into()),
            folders: Some("/home/bob/mail".into()),
            home: "/home/bob".into(),
            quota: 0,
        };
        let v = environment(&id).unwrap();
        assert!(v.contains(&(
            "userdb_mail".into(),
            "mbox:/home/bob/mail:INBOX=/var/mail/bob".into()
        )));
        assert!(v.contains(&("userdb_quota_rule".into(), "*:storage=0B".into())));
        for bad in [
            "/var/mail/a:b",
            "/var/mail/%u",
            "relative/box",
            "/var/mail/a\tb",
        ] {
            let id = Identity {
                mailbox: MailboxPath::Mbox(bad.into()),
                ..id.clone()
            };
            assert!(environment(&id).is_err(), "{bad}");
            assert_eq!(reply(&id, false), Answer::Exit(exit::TEMPORARY));
        }
    }
}
