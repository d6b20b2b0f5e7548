//! The web control panel's root side: what `panel-helper` (set-uid root,
//! run once per request by the unprivileged front end,
//! [`crate::panel`]) does with one request ([`crate::panel::protocol`]).
//!
//! ```text
//! request ─▶ op known? ─▶ login ──▶ login::attempt (the door, slowed) ─▶ roles ─▶ new session
//!                       └▶ session? (token → session::Store) ─▶ whoami / reads ─▶ access ─▶ records
//!                                       └▶ change: CSRF? ─▶ access ─▶ Change: stale? ─▶ the CLI's code ─▶ audit
//! ```
//!
//! The parts: [`session`] (sessions on disk), [`roles`] (who is a box or
//! domain admin), [`login`] (the login door with slowing across
//! requests), [`access`] (who may touch which object), [`records`]
//! (what pages show, and stamps), [`ops`] (the changes, through the
//! `mailroom` command's own functions), [`audit`] (the log lines).
//!
//! The helper trusts nothing the front end says but the client's address
//! (for logs only): the session is found by its token, the role comes
//! from the session, every object is checked, every change needs the
//! session's CSRF token (compared in constant time), and an unknown
//! operation is refused.  Its state lives in `/var/spool/mailroom/panel/`
//! ([`state_dir`]; in a private root the same path under it).

pub mod access;
pub mod audit;
pub mod login;
pub mod ops;
pub mod records;
pub mod roles;
pub mod session;

use std::path::PathBuf;

use crate::config::{Config, parse_duration};
use crate::exit::{ExitCode, Failure};
use crate::login::Pace;
use crate::panel::protocol::{Answer, Record, Role};
use session::{Session, Store, same_secret};

/// The panel's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Who besides root may run the helper.
    pub callers: Vec<String>,
    pub admin_group: String,
    /// Seconds.
    pub idle: i64,
    pub max: i64,
    pub login: crate::login::Settings,
    /// POP3's slowing of failed logins.
    pub pace: Pace,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Result<Settings, Failure> {
        let dur = |key: &str, default: &str| -> Result<i64, Failure> {
            let v = cfg.get(key).unwrap_or(default);
            parse_duration(v, 1)
                .filter(|s| *s > 0 && *s < 1 << 40)
                .map(|s| s as i64)
                .ok_or_else(|| cfg.bad_value(key, "not a duration (30m, 8h)"))
        };
        let pop3 = crate::pop3::settings::Settings::from_config(cfg)?;
        Ok(Settings {
            callers: cfg
                .get("panel_callers")
                .unwrap_or("www-data")
                .split([' ', ',', '\t'])
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect(),
            admin_group: cfg
                .get("panel_admin_group")
                .unwrap_or("mailadmin")
                .trim()
                .to_string(),
            idle: dur("panel_session_idle", "30m")?,
            max: dur("panel_session_max", "8h")?,
            login: pop3.login.clone(),
            pace: pop3.pace(),
        })
    }
}

/// The panel's state directory: sessions and login-failure counters.
pub fn state_dir(cfg: &Config) -> PathBuf {
    crate::state::dir(cfg).join(crate::state::PANEL)
}

/// The reads: they need a session, never a CSRF token.
const READS: &[&str] = &["whoami", "domains", "domain.show", "queue", "me"];

fn failed(message: impl Into<String>) -> Answer {
    Answer::Failed {
        message: message.into(),
    }
}

fn session_answer(store: &Store, s: &Session) -> Answer {
    Answer::Session {
        session: s.token.clone(),
        csrf: s.csrf.clone(),
        login: s.login.clone(),
        role: s.role,
        domains: s.domains.clone(),
        expires: store.expires(s),
    }
}

/// Answer one request line (without its newline).
pub fn answer(cfg: &Config, line: &[u8]) -> Answer {
    let settings = match Settings::from_config(cfg) {
        Ok(s) => s,
        Err(f) => return failed(f.to_string()),
    };
    let Ok(text) = std::str::from_utf8(line) else {
        return failed("the request is not UTF-8 text");
    };
    let req = Record::decode(text);
    let op = req.str("op");
    // The first `from` is the client's (an operation's own `from`, an
    // autoreply's first day, comes after it).
    let from = audit::client(req.str("from"));
    let known = op == "login"
        || op == "logout"
        || op == "password.change"
        || READS.contains(&op)
        || ops::CHANGES.contains(&op);
    if !known {
        return failed(format!("unknown operation {:?}", audit::client_op(op)));
    }
    let store = match Store::open(state_dir(cfg), settings.idle, settings.max) {
        Ok(s) => s,
        Err(e) => {
            return failed(format!(
                "cannot open {}: {}",
                state_dir(cfg).display(),
                crate::exit::io_reason(&e)
            ));
        }
    };
    let now = crate::date::now();
    if op == "login" {
        return log_in(cfg, &settings, &store, &req, &from, now);
    }
    let Some(s) = store.find(req.str("session"), now) else {
        return Answer::NoSession;
    };
    match op {
        "whoami" => return session_answer(&store, &s),
        "domains" => return Answer::Data(records::domains(cfg, &s)),
        "domain.show" | "queue" => {
            let d = req.str("domain");
            if s.role == Role::User || !access::may_domain(&s, d) {
                return Answer::Missing;
            }
            let r = if op == "queue" {
                records::queue(cfg, d)
            } else {
                records::domain_show(cfg, &s, d)
            };
            return r.map_or_else(|f| failed(f.to_string()), Answer::Data);
        }
        "me" => return Answer::Data(records::me(cfg, &s)),
        _ => {}
    }
    // A change: the session's own form token, or nothing happens.
    if !req.get("csrf").is_some_and(|c| same_secret(c, &s.csrf)) {
        audit::change(&s, &from, op, "-", &Answer::NoSession);
        return Answer::NoSession;
    }
    // The files a change makes are the `mailroom` command's, with its
    // modes: under the helper's umask 077 a new /etc/mail/lists or a
    // virtual domain's mailbox directory would be root's alone, and
    // sendmail 8 or the mailbox's owner could not read it.  (Sessions
    // and counters are made with their modes given.)
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o022) };
    match op {
        "logout" => {
            store.end(&s.token);
            audit::logout(&s, &from);
            Answer::Done {
                notes: vec![format!("{}: logged out", s.login)],
            }
        }
        "password.change" => {
            let a = password_change(cfg, &settings, &store, &s, &req, &from, now);
            audit::change(&s, &from, op, &s.name, &a);
            a
        }
        _ => {
            // A password set (or a mailbox removed) by an admin ends the
            // account's sessions, as the user's own change does.
            let ends = matches!(op, "mailbox.password" | "mailbox.remove")
                .then(|| account_of(cfg, req.str("address")))
                .flatten();
            let out = ops::change(cfg, &s, op, &req);
            audit::change(&s, &from, op, &out.object, &out.answer);
            if let (Some(login), Answer::Done { .. }) = (&ends, &out.answer) {
                store.end_login(login, Some(&s));
            }
            out.answer
        }
    }
}

/// The account (a session's `login`) the mailbox `address` is.
fn account_of(cfg: &Config, address: &str) -> Option<String> {
    use crate::admin::mailbox::{Found, Tables};
    match Tables::load_readable(cfg).find(address).ok()? {
        Found::System { user, .. } => Some(user.name),
        Found::Virtual { login, .. } => Some(login),
    }
}

/// `login`: the door (slowed), the role, a new session.
fn log_in(
    cfg: &Config,
    settings: &Settings,
    store: &Store,
    req: &Record,
    from: &str,
    now: i64,
) -> Answer {
    let name = req.str("name").trim();
    let password = req.str("password");
    login::sweep(&state_dir(cfg), now);
    let counter = login::Counter::of(&state_dir(cfg), name.as_bytes());
    if name.is_empty() || password.is_empty() || password.len() > 1024 {
        login::refuse(settings.pace, &counter, from);
        return Answer::Refused;
    }
    let Some(id) = login::attempt(
        cfg,
        &settings.login,
        settings.pace,
        &counter,
        name.as_bytes(),
        password.as_bytes(),
        from,
    ) else {
        return Answer::Refused;
    };
    counter.clear();
    let typed = crate::login::normalize(name.as_bytes()).unwrap_or_else(|| id.login.clone());
    let grant = roles::grant(cfg, &settings.admin_group, &typed, &id.login);
    store.sweep(now);
    match store.create(&id.login, &typed, grant.role, &grant.domains, from, now) {
        Ok(s) => {
            audit::login(&id.login, from);
            session_answer(store, &s)
        }
        Err(e) => failed(format!(
            "cannot write the session into {}: {}",
            store.dir.display(),
            crate::exit::io_reason(&e)
        )),
    }
}

/// `password.change`: the old password checked at the door (a wrong one
/// counts as a failed login), the new one set by the `mailroom mailbox
/// passwd` code, and the session rotated: the old token ends.
fn password_change(
    cfg: &Config,
    settings: &Settings,
    store: &Store,
    s: &Session,
    req: &Record,
    from: &str,
    now: i64,
) -> Answer {
    let counter = login::Counter::of(&state_dir(cfg), s.name.as_bytes());
    let old = req.str("old");
    let checked = !old.is_empty()
        && login::attempt(
            cfg,
            &settings.login,
            settings.pace,
            &counter,
            s.name.as_bytes(),
            old.as_bytes(),
            from,
        )
        .is_some_and(|id| id.login == s.login);
    if !checked {
        return failed("the current password is not right");
    }
    counter.clear();
    let hash = match ops::hash(req.str("new")) {
        Ok(h) => h,
        Err(f) => return failed(f.to_string()),
    };
    let changed = crate::change::Change::begin(cfg)
        .and_then(|c| crate::admin::mailbox::passwd_in(cfg, c, &s.login, &hash));
    if let Err(f) = changed {
        return failed(f.to_string());
    }
    match store.rotate(s, now) {
        Ok(n) => session_answer(store, &n),
        Err(e) => failed(
            Failure::new(
                ExitCode::CantCreat,
                format!(
                    "the password was changed, but no new session could be written: {}",
                    crate::exit::io_reason(&e)
                ),
            )
            .hint("log in again")
            .to_string(),
        ),
    }
}
