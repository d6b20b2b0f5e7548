//! pop3d: the inetd-style POP3 server (RFC 1939, 2449, 2595, 3206, 5034).
//!
//! inetd (or a systemd socket with `Accept=yes`) starts `pop3d` as root for
//! each connection, with the socket on descriptors 0 and 1 (`pop3d --tls`
//! for port 995).  Descriptor 2 may be the socket too, so nothing is ever
//! written to it: diagnostics go to syslog.  The program's argv and
//! configuration are [`crate::cli::pop3d`]; [`run`] serves one connection.
//!
//! ## Processes
//!
//! Privilege separation as [`crate::privsep`] draws it (popa3d's model):
//!
//! * The network process — `pop3_user`, no groups, shut in
//!   [`EMPTY_DIR`] — speaks the AUTHORIZATION state, TLS included
//!   ([`front`]), and sends the credentials as requests.
//! * The authority (root) never parses the client's words.  It answers
//!   each login through the login door ([`crate::login`]: the check in a
//!   short-lived child, so hashes never live in a process that later
//!   serves a mailbox; `login failed` and the pause after a failure).
//! * After a successful login the authority records it (POP-before-SMTP
//!   and LOGIN-DELAY, [`crate::state::stamps`]), gives up root for the
//!   mailbox's owner (with group `mail` for the spool's dotlocks when the
//!   mailbox is an mbox there), opens the maildrop ([`maildrop`]) and
//!   serves the TRANSACTION state ([`session`]): on the socket itself, or
//!   — when the network process holds a TLS session — through it.
//!
//! ## Logs (syslog, facility mail, tag `pop3d`)
//!
//! `connect from ADDR`; `login: LOGIN from ADDR`; `login failed: LOGIN from
//! ADDR` (or `unknown user` — never a name that does not exist, never a
//! password); `logout: LOGIN retr=N/BYTES top=N del=N/BYTES left=N/BYTES
//! (how)`.

pub mod command;
pub mod front;
pub mod maildrop;
pub mod session;
pub mod settings;

use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::accounts::MailboxPath;
use crate::config::Config;
use crate::exit::ExitCode;
use crate::log;
use crate::login::{self, Identity};
use crate::privsep::protocol::{Answer, Request};
use crate::privsep::{self, Group, Logins, NetworkUser, SplitError};
use crate::state::stamps;
use crate::wire::{self, Wire};
use maildrop::{Maildrop, OpenError};
use settings::Settings;

/// Where the network process is shut in (created by `make install`).
pub const EMPTY_DIR: &str = "/var/lib/mailroom/empty";

/// The client's address: from the socket, else what tcpserver or socat
/// put in the environment; an IPv4-mapped address as its IPv4 address
/// (the SMTP server names clients the same way, which POP-before-SMTP
/// relies on).
fn peer_address() -> String {
    if let Some(p) = wire::peer(0) {
        return p.ip.to_string();
    }
    for var in ["TCPREMOTEIP", "SOCAT_PEERADDR"] {
        if let Some(ip) = std::env::var(var)
            .ok()
            .and_then(|v| v.parse::<std::net::IpAddr>().ok())
        {
            return wire::unmapped(ip).to_string();
        }
    }
    "unknown".to_string()
}

/// Serve the connection on descriptors 0 and 1 (`implicit_tls`: `--tls`,
/// port 995), with a loaded configuration; returns the exit code.  The
/// program's front end is [`crate::cli::pop3d`].
pub fn run(cfg: &Config, settings: &Settings, implicit_tls: bool) -> i32 {
    let peer = peer_address();
    log::info(None, &format!("connect from {peer}"));
    let tls = settings.tls.load();
    if implicit_tls && tls.is_none() {
        log::err(
            None,
            &format!(
                "--tls needs {} and {}",
                settings.tls.cert.display(),
                settings.tls.key.display()
            ),
        );
        return ExitCode::Config.code();
    }
    // APOP only where it can succeed: some account has a plain secret.
    let apop = has_plain_secrets(cfg).then(|| {
        format!(
            "<{}.{}@{}>",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
            cfg.hostname
        )
    });
    let user = NetworkUser {
        key: "pop3_user",
        name: settings.unprivileged_user.clone(),
        group: Group::Own,
        shut_in: Some(cfg.paths.resolve(EMPTY_DIR)),
    };
    let split = privsep::split(
        &user,
        |chan| {
            let mut front = front::Front {
                wire: Wire::new(0, 1),
                tls,
                apop: apop.clone(),
                settings,
                ctl: chan,
            };
            front.run(implicit_tls);
        },
        || {},
        |chan| authority(cfg, settings, chan, apop.as_deref(), &peer),
    );
    match split {
        Ok(code) => code,
        Err(SplitError::Socketpair(e)) => {
            log::err(None, &format!("socketpair: {e}"));
            ExitCode::OsErr.code()
        }
        Err(SplitError::Fork(e)) => {
            log::err(None, &format!("fork: {}", e.desc()));
            ExitCode::OsErr.code()
        }
    }
}

/// Whether any virtual account has a `{PLAIN}` secret (so APOP can work).
fn has_plain_secrets(cfg: &Config) -> bool {
    std::fs::read_to_string(cfg.paths.etc_mail("passwd"))
        .map(|t| {
            crate::accounts::parse_virtual(&t)
                .iter()
                .any(|e| e.secret.len() > 7 && e.secret.starts_with("{PLAIN}"))
        })
        .unwrap_or(false)
}

/// The authority: answer login attempts; after one succeeds, become the
/// mailbox's owner and serve the session.  Returns the exit code.
fn authority(
    cfg: &Config,
    settings: &Settings,
    mut chan: UnixStream,
    apop: Option<&str>,
    peer: &str,
) -> i32 {
    let mut door = login::Door::new(cfg, &settings.login, settings.pace());
    let logins = Logins {
        door: &mut door,
        wait: settings.login_timeout * 3 + Duration::from_secs(60),
        apop,
    };
    privsep::answer_logins(
        &mut chan,
        logins,
        |why| log::notice(None, &format!("login failed: {} from {peer}", why.who())),
        |chan, id| ControlFlow::Break(serve(cfg, settings, chan, &id, peer)),
    )
    .unwrap_or(0) // the client left, or failed too often
}

/// After a successful login: record it, become the owner, open the
/// maildrop, tell the network process, and serve the session.
fn serve(
    cfg: &Config,
    settings: &Settings,
    chan: &mut UnixStream,
    id: &Identity,
    peer: &str,
) -> i32 {
    let now = crate::date::now();
    if settings.login_delay > 0
        && let Ok(Some(last)) = stamps::update(
            cfg,
            stamps::POP3_LOGINS,
            &id.login,
            now,
            settings.login_delay as i64,
        )
        && now - last < settings.login_delay as i64
    {
        log::notice(
            None,
            &format!("login refused: {} from {peer}: LOGIN-DELAY", id.login),
        );
        let _ = Answer::LoginDelay.send(chan);
        return 0;
    }
    if settings.pop_before_smtp_window > 0
        && peer != "unknown"
        && let Err(e) = stamps::update(
            cfg,
            stamps::POP_BEFORE_SMTP,
            peer,
            now,
            settings.pop_before_smtp_window as i64,
        )
    {
        log::warning(
            None,
            &format!("cannot record the login for POP-before-SMTP: {e}"),
        );
    }
    log::info(None, &format!("login: {} from {peer}", id.login));
    // Become the mailbox's owner, keeping group mail for the spool's
    // dotlocks only when the mailbox is an mbox there.
    if nix::unistd::geteuid().is_root() {
        let mut groups = vec![id.gid];
        if let MailboxPath::Mbox(p) = &id.mailbox
            && p.starts_with(&cfg.mail_spool)
            && let Some(mail) = crate::users::group_id("mail")
        {
            groups.push(mail);
        }
        if id.uid == 0 {
            let _ = Answer::Permanent("Logins as root are not allowed.".into()).send(chan);
            return 0;
        }
        if let Err(e) = crate::privs::set_ids(id.uid, id.gid, &groups) {
            log::err(None, &format!("cannot become {}: {e}", id.owner));
            let _ = Answer::Temporary("Internal error.".into()).send(chan);
            return ExitCode::OsErr.code();
        }
    }
    // The session needs little of the code that got it here.
    crate::privs::shed_code_pages();
    let lock_timeout = Duration::from_secs(cfg.mailbox_lock_timeout.clamp(1, 60));
    let opened = match &id.mailbox {
        MailboxPath::Mbox(p) => {
            maildrop::mbox::Mbox::open(p, id.uid, lock_timeout).map(Maildrop::Mbox)
        }
        MailboxPath::Maildir(p) => {
            maildrop::maildir::Maildir::open(p, id.uid).map(Maildrop::Maildir)
        }
    };
    let drop = match opened {
        Ok(d) => d,
        Err(OpenError::InUse) => {
            log::info(
                None,
                &format!("{}: mailbox in use by another session", id.login),
            );
            let _ = Answer::InUse.send(chan);
            return 0;
        }
        Err(OpenError::Temp(e)) => {
            log::warning(None, &format!("{}: {e}", id.login));
            let _ =
                Answer::Temporary("Cannot open the mailbox; try again later.".into()).send(chan);
            return 0;
        }
        Err(OpenError::Perm(e)) => {
            log::err(None, &format!("{}: {e}", id.login));
            let text = "The mailbox cannot be opened; contact the administrator.";
            let _ = Answer::Permanent(text.into()).send(chan);
            return 0;
        }
    };
    if Answer::LoggedIn(id.login.clone()).send(chan).is_err() {
        return 0;
    }
    let Ok(Some(Request::Handoff { relay, early })) = Request::receive(chan, settings.idle_timeout)
    else {
        return 0;
    };
    let wire = if relay {
        let fd = chan.as_raw_fd();
        Wire::new(fd, fd).with_input(&early)
    } else {
        Wire::new(0, 1).with_input(&early)
    };
    let caps = front::Front::capabilities(settings, false, true);
    let mut session = session::Session::new(drop, wire, settings.idle_timeout, caps);
    let how = session.run();
    let c = &session.counts;
    let (left, left_bytes) = session.left();
    log::info(
        None,
        &format!(
            "logout: {} retr={}/{} top={} del={}/{} left={left}/{left_bytes} ({how})",
            id.login, c.retrieved, c.retrieved_bytes, c.top, c.deleted, c.deleted_bytes
        ),
    );
    // Close the channel: the relay, if any, then ends.
    let _ = chan.shutdown(std::net::Shutdown::Both);
    0
}
