//! The login check: the one door through which a password (or an APOP
//! digest) lets someone in.  pop3d (USER/PASS, APOP, AUTH PLAIN and
//! LOGIN) and the SMTP server's AUTH go through it; anything else that
//! checks a mailbox password must too, so that every login has the same
//! names, the same refusals and the same slowing.
//!
//! ## The door
//!
//! * [`check`]: one attempt — a login name and a proof, with these
//!   [`Settings`] → the [`Identity`] to serve, or [`Refused`] (for the log
//!   only).  It runs in a short-lived child process, so hashes and
//!   account files never live in the process that goes on to serve the
//!   mailbox.  Reading `/etc/shadow` needs root: the servers call it from
//!   their root authority ([`crate::privsep`]), or in process when they
//!   were not started as root (tests; only what that user can read).
//! * [`Door`]: one client's attempts over one connection — [`check`],
//!   then after each failure the caller's log line, a pause that doubles
//!   with each failure, and the end of the connection after too many
//!   ([`Pace`]: from the server's own keys, `pop3_auth_fail_delay` and
//!   `pop3_max_auth_failures`, `smtp_auth_fail_delay` and
//!   `smtp_max_auth_failures`).
//!
//! Every failure looks the same to the client: the same reply (the
//! server's), after the same work — an unknown name costs a `crypt()`
//! like a known one, against a real hash from the same files — and the
//! same pause.  Only the log tells an unknown name from a wrong password,
//! and never names a login that does not exist ([`Refused::who`]).
//!
//! ## Login names
//!
//! `bob`, `info@example.com`, `info%example.com` and `info/example.com`
//! (the forms Outlook, Eudora-era and Netscape-era clients send; the first
//! `%` or `/` becomes `@`).  A name is at most 128 bytes of
//! `[A-Za-z0-9._+=-]` and one separator, and never becomes a path.
//!
//! * A bare name is a system account (`/var/mail/NAME` or `~/Maildir`) or
//!   a bare-named virtual account.
//! * An address is a virtual account of `/etc/mail/passwd` with that login,
//!   or else whatever mailbox mail for that address is delivered to —
//!   virtusertable, then aliases, exactly as delivery resolves it (without
//!   `.forward` files).  `info@example.com` logs into the mailbox of the
//!   user the virtusertable names; an address that reaches several
//!   mailboxes logs into none.  An address whose own virtusertable line
//!   names an account still logs into it when that account's mail is
//!   forwarded away (`mailroom forward set` without a copy): its owner
//!   must be able to fetch what is there and to undo the forward.
//!
//! A SASL authorization identity must be empty or the login itself: no
//! logging in as someone else.
//!
//! ## Passwords
//!
//! System accounts: the hash in `/etc/shadow`, checked with the system's
//! own `crypt(3)` (libcrypt: yescrypt, SHA-512, ...); locked (`!`, `*`),
//! empty and expired entries never match; root and accounts below
//! `pop3_first_uid` are refused.  Virtual accounts: their field in
//! `/etc/mail/passwd` — a crypt hash, `{CRYPT}hash`, or `{PLAIN}secret`
//! (the only form APOP can use).  See [`secret`].
//!
//! ## Other servers
//!
//! Dovecot (IMAP) asks the door through the `checkpassword` program
//! ([`checkpassword`]): the same check, names, refusals and log lines,
//! one attempt per run; [`lookup`] answers its userdb.

mod account;
pub mod checkpassword;
pub mod secret;

use std::path::PathBuf;
use std::time::Duration;

use crate::accounts::MailboxPath;
use crate::config::Config;
use crate::exit::Failure;

pub use account::{MAX_NAME, find_account, normalize};
pub(crate) use secret::system_crypt;
pub use secret::{apop_matches, crypt_matches, hex};

/// Keys read here, with defaults, for `mailroom check` and
/// `etc/mailroom.conf`.  (Named for pop3d, which had them first; they
/// hold for SMTP AUTH too.)
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "pop3_first_uid",
        "1000",
        "system accounts below this uid (and root) cannot log in",
    ),
    (
        "checkpassword_callers",
        "dovecot",
        "users besides root who may run the set-uid checkpassword program (Dovecot's auth user)",
    ),
];

/// The web panel's keys, with defaults, for `mailroom check` and
/// `etc/mailroom.conf`: its root helper is a login door too (who may
/// run it, as `checkpassword_callers` above; read by
/// `crate::admin::panel`, which the core modules do not import).
pub const PANEL_KEYS: &[(&str, &str, &str)] = &[
    (
        "panel_callers",
        "www-data",
        "users besides root who may run the set-uid panel-helper (the web server's user)",
    ),
    (
        "panel_admin_group",
        "mailadmin",
        "members of this Unix group are the web panel's box admins (see /etc/mail/panel-admins)",
    ),
    (
        "panel_session_idle",
        "30m",
        "a web panel session ends after this long without a request",
    ),
    (
        "panel_session_max",
        "8h",
        "a web panel session ends this long after its login, used or not",
    ),
];

/// The login check's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// System accounts below this uid (and root) cannot log in.
    pub first_uid: u32,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Result<Settings, Failure> {
        Ok(Settings {
            first_uid: cfg.number("pop3_first_uid", 1000)?.min(u32::MAX as u64) as u32,
        })
    }
}

/// What the client offered as proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// USER/PASS, AUTH PLAIN, AUTH LOGIN.
    Password(Vec<u8>),
    /// APOP: the greeting's timestamp and the client's digest.
    Apop { timestamp: String, digest: String },
}

/// One login attempt, as the client made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The SASL authorization identity (empty, or the same as `name`).
    pub authzid: Vec<u8>,
    /// The login name, as sent.
    pub name: Vec<u8>,
    pub proof: Proof,
}

impl Attempt {
    /// A name and a password (USER/PASS, AUTH LOGIN).
    pub fn password(name: &[u8], password: &[u8]) -> Attempt {
        Attempt::sasl(b"", name, password)
    }

    /// AUTH PLAIN's three fields.
    pub fn sasl(authzid: &[u8], authcid: &[u8], password: &[u8]) -> Attempt {
        Attempt {
            authzid: authzid.to_vec(),
            name: authcid.to_vec(),
            proof: Proof::Password(password.to_vec()),
        }
    }

    /// APOP: a name and its digest of `timestamp` (the greeting's).
    pub fn apop(name: &[u8], timestamp: &str, digest: &[u8]) -> Attempt {
        Attempt {
            authzid: Vec::new(),
            name: name.to_vec(),
            proof: Proof::Apop {
                timestamp: timestamp.to_string(),
                digest: String::from_utf8_lossy(digest).into_owned(),
            },
        }
    }
}

/// An authenticated account: what the session needs to serve its mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account's login (system user name or virtual login).
    pub login: String,
    /// The system user the mailbox belongs to.
    pub owner: String,
    pub uid: u32,
    pub gid: u32,
    pub mailbox: MailboxPath,
    /// The directory of its mbox folders (`None` for a Maildir, whose
    /// folders are inside it): [`crate::accounts::Account::mbox_folders`].
    pub folders: Option<PathBuf>,
    /// Its home for other mail programs (Dovecot's indexes and Sieve
    /// scripts): the system user's home, or for a virtual account its
    /// folders directory (mbox) or its Maildir.
    pub home: PathBuf,
    /// Its size limit in bytes, 0 = none (what delivery applies).
    pub quota: u64,
}

/// Why a login failed, for the log only (the client hears the same in
/// every case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No such account (its name is not logged), or no usable attempt.
    Unknown,
    /// The account exists: wrong password, or not allowed to log in.
    Account(String),
}

impl Refused {
    /// Who failed, as a log line names them: the account's login, or
    /// `unknown user` — never a name that does not exist.
    pub fn who(&self) -> &str {
        match self {
            Refused::Account(login) => login,
            Refused::Unknown => "unknown user",
        }
    }
}

/// Check one attempt, in a child process: the identity, or why not.
pub fn check(cfg: &Config, settings: &Settings, attempt: &Attempt) -> Result<Identity, Refused> {
    if !(attempt.authzid.is_empty() || attempt.authzid == attempt.name) {
        return Err(Refused::Unknown);
    }
    let answer = crate::privs::in_child(|| {
        match account::verify(cfg, settings, &attempt.name, &attempt.proof) {
            Ok(id) => account::encode(&id),
            Err(Refused::Account(login)) if !login.contains('\n') => {
                format!("-{login}\n").into_bytes()
            }
            Err(_) => b"?\n".to_vec(),
        }
    })
    .map_err(|_| Refused::Unknown)?;
    match answer.strip_prefix(b"-") {
        Some(rest) => Err(Refused::Account(
            String::from_utf8_lossy(rest).trim_end().to_string(),
        )),
        None => account::decode(&answer).ok_or(Refused::Unknown),
    }
}

/// Look an account up by login name, with no proof, in a child process
/// as [`check`] does: for a program that asks where the mail of someone
/// already logged in (or addressed by LMTP) lives — Dovecot's userdb
/// through [`checkpassword`].  The same names and accounts as [`check`]:
/// never root or a system account below `pop3_first_uid`.
pub fn lookup(cfg: &Config, settings: &Settings, name: &[u8]) -> Option<Identity> {
    let answer = crate::privs::in_child(|| match account::lookup(cfg, settings, name) {
        Some(id) => account::encode(&id),
        None => b"?\n".to_vec(),
    })
    .ok()?;
    account::decode(&answer)
}

/// How a server slows a client's failed logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// The pause after the first failure; it doubles with each one (up
    /// to 32 times this).
    pub delay: Duration,
    /// Failures before the connection is closed.
    pub max_failures: u32,
}

impl Pace {
    /// The pause after the `failures`-th failure.
    pub fn pause(&self, failures: u32) -> Duration {
        self.delay
            .saturating_mul(1 << failures.saturating_sub(1).min(5))
    }
}

/// What a login attempt at the [`Door`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    LoggedIn(Identity),
    /// Failed; the client may try again.
    Failed,
    /// Failed, and too many times: close the connection.
    TooManyFailures,
}

/// One client's logins over one connection: each attempt is [`check`]ed;
/// each failure is logged by the caller, paused for, and counted.
pub struct Door<'a> {
    cfg: &'a Config,
    settings: &'a Settings,
    pace: Pace,
    failures: u32,
}

impl<'a> Door<'a> {
    pub fn new(cfg: &'a Config, settings: &'a Settings, pace: Pace) -> Door<'a> {
        Door {
            cfg,
            settings,
            pace,
            failures: 0,
        }
    }

    /// Try `attempt`.  On failure `log` is called with the reason (each
    /// server words its own log line), then comes the pause.
    pub fn attempt(&mut self, attempt: &Attempt, log: impl FnOnce(&Refused)) -> Outcome {
        match check(self.cfg, self.settings, attempt) {
            Ok(id) => Outcome::LoggedIn(id),
            Err(why) => self.refuse(why, log),
        }
    }

    /// A request that cannot succeed (malformed, or APOP where no
    /// timestamp was offered): a failed attempt like any other — logged,
    /// paused for and counted.
    pub fn refuse(&mut self, why: Refused, log: impl FnOnce(&Refused)) -> Outcome {
        self.failures += 1;
        log(&why);
        std::thread::sleep(self.pace.pause(self.failures));
        if self.failures >= self.pace.max_failures {
            Outcome::TooManyFailures
        } else {
            Outcome::Failed
        }
    }
}

/// A private root with one system account, for the tests of the door
/// and of those who use it.
#[cfg(test)]
pub(crate) mod testing {
    use crate::config::Config;
    use std::path::PathBuf;

    /// "secret", hashed by the system's crypt (SHA-512, salt "saltsalt").
    const SECRET_HASH: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

    /// A private root with system user bob (password "secret", uid 4242).
    pub(crate) fn root(name: &str) -> (PathBuf, Config) {
        // libcrypt is loaded here, before any check forks.
        assert!(super::system_crypt().is_some(), "libcrypt");
        let root = std::env::temp_dir().join(format!("mr-login-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc/mail")).unwrap();
        std::fs::create_dir_all(root.join("var/mail")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbob:x:4242:4242:Bob:/home/bob:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/shadow"),
            format!("root:*:19000:0:99999:7:::\nbob:{SECRET_HASH}:19000:0:99999:7:::\n"),
        )
        .unwrap();
        let cfg = Config::defaults(crate::config::Paths::under(&root));
        (root, cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::root;
    use super::*;

    #[test]
    fn an_unknown_name_fails_exactly_as_a_wrong_password() {
        let (root, cfg) = root("same");
        let settings = Settings { first_uid: 100 };
        let pace = Pace {
            delay: Duration::ZERO,
            max_failures: 3,
        };
        let mut door = Door::new(&cfg, &settings, pace);
        let mut logged = Vec::new();
        let wrong = door.attempt(&Attempt::password(b"bob", b"guess"), |w| {
            logged.push(w.clone())
        });
        let unknown = door.attempt(&Attempt::password(b"nobody-here", b"guess"), |w| {
            logged.push(w.clone())
        });
        assert_eq!(wrong, Outcome::Failed);
        assert_eq!(unknown, Outcome::Failed);
        // Only the log tells them apart, and never names the unknown one.
        assert_eq!(logged, [Refused::Account("bob".into()), Refused::Unknown]);
        assert_eq!(logged[1].who(), "unknown user");
        // Someone else's authorization identity is no login either.
        assert_eq!(
            door.attempt(&Attempt::sasl(b"root", b"bob", b"secret"), |_| {}),
            Outcome::TooManyFailures
        );
        // A fresh connection, the right password.
        let mut door = Door::new(&cfg, &settings, pace);
        match door.attempt(&Attempt::sasl(b"bob", b"bob", b"secret"), |_| {
            panic!("refused")
        }) {
            Outcome::LoggedIn(id) => {
                assert_eq!((id.login.as_str(), id.uid), ("bob", 4242));
                assert_eq!(id.mailbox, MailboxPath::Mbox(root.join("var/mail/bob")));
            }
            other => panic!("{other:?}"),
        }
        // Below pop3_first_uid: refused as a wrong password is.
        let strict = Settings { first_uid: 5000 };
        let mut door = Door::new(&cfg, &strict, pace);
        let mut who = String::new();
        assert_eq!(
            door.attempt(&Attempt::password(b"bob", b"secret"), |w| {
                who = w.who().to_string()
            }),
            Outcome::Failed
        );
        assert_eq!(who, "bob");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn the_pause_doubles_up_to_32_times() {
        let pace = Pace {
            delay: Duration::from_millis(500),
            max_failures: 10,
        };
        let pauses: Vec<u64> = (1..=8).map(|n| pace.pause(n).as_millis() as u64).collect();
        assert_eq!(pauses, [500, 1000, 2000, 4000, 8000, 16000, 16000, 16000]);
    }
}
