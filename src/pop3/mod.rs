//! pop3d: the inetd-style POP3 server (RFC 1939, 2449, 2595, 3206, 5034).
//!
//! inetd (or a systemd socket with `Accept=yes`) starts `pop3d` as root for
//! each connection, with the socket on descriptors 0 and 1 (`pop3d --tls`
//! for port 995).  Descriptor 2 may be the socket too, so nothing is ever
//! written to it: diagnostics go to syslog.
//!
//! ## Processes (popa3d's model)
//!
//! ```text
//!  inetd ──▶ pop3d (root): the authority ── socketpair ── network process
//!              │ forks per login attempt                 (pop3_user, chrooted
//!              ▼                                          to an empty directory)
//!            checker (root): reads /etc/shadow or         speaks AUTHORIZATION,
//!            /etc/mail/passwd, runs crypt(), answers      TLS, USER/PASS/AUTH
//!              │ yes: the authority records the login,
//!              ▼ becomes the mailbox owner, opens the maildrop
//!            session (the owner, + group mail for dotlocks): TRANSACTION
//! ```
//!
//! * The network process parses everything the client sends before login,
//!   without privileges ([`front`]).
//! * The authority never parses the client's words; it answers framed
//!   requests ([`ctl`]).  The password check runs in a short-lived child
//!   ([`crate::login::check`]), so hashes never live in a process that
//!   later serves a mailbox.
//! * After a successful login the authority records it (POP-before-SMTP,
//!   [`crate::state::stamps`]), gives up root for the mailbox's owner, opens the
//!   maildrop ([`maildrop`]) and serves the session ([`session`]): on the
//!   socket itself, or — when the network process holds a TLS session —
//!   through it.
//!
//! ## Logs (syslog, facility mail, tag `pop3d`)
//!
//! `connect from ADDR`; `login: LOGIN from ADDR`; `login failed: LOGIN from
//! ADDR` (or `unknown user` — never a name that does not exist, never a
//! password); `logout: LOGIN retr=N/BYTES top=N del=N/BYTES left=N/BYTES
//! (how)`.

pub mod command;
pub mod ctl;
pub mod front;
pub mod maildrop;
pub mod session;
pub mod settings;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::accounts::MailboxPath;
use crate::config::{Config, Paths};
use crate::exit::ExitCode;
use crate::log;
use crate::login::{self, Attempt, Identity, Outcome, Refused};
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

/// `pop3d [--tls] [-C config]`.
pub fn main(args: Vec<String>) -> i32 {
    let mut implicit_tls = false;
    let mut config_file: Option<PathBuf> = None;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--tls" | "-s" => implicit_tls = true,
            "-C" if i + 1 < args.len() => {
                i += 1;
                config_file = Some(PathBuf::from(&args[i]));
            }
            other => {
                // stderr may be the client's socket: log only.
                log::init("pop3d", &crate::config::LogTarget::Syslog, "localhost");
                log::err(
                    None,
                    &format!("unknown argument {other:?}; usage: pop3d [--tls] [-C config]"),
                );
                return ExitCode::Usage.code();
            }
        }
        i += 1;
    }
    let paths = match std::env::var_os(crate::config::ROOT_ENV) {
        Some(r) if !r.is_empty() && !crate::privs::is_elevated() => Paths::under(PathBuf::from(r)),
        _ => Paths::system(),
    };
    let cfg = match Config::load(paths, config_file.as_deref()) {
        Ok(c) => c,
        Err(f) => {
            log::init("pop3d", &crate::config::LogTarget::Syslog, "localhost");
            log::err(None, &f.to_string());
            let _ = wire::write_all_fd(
                1,
                b"-ERR [SYS/PERM] The server is misconfigured.\r\n",
                std::time::Instant::now() + Duration::from_secs(5),
            );
            return f.code.code();
        }
    };
    log::init("pop3d", &cfg.log, &cfg.hostname);
    let settings = match Settings::from_config(&cfg) {
        Ok(s) => s,
        Err(f) => {
            log::err(None, &f.to_string());
            return f.code.code();
        }
    };
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o077) };
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
    let apop = has_plain_secrets(&cfg).then(|| {
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
    let (authority_end, network_end) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => {
            log::err(None, &format!("socketpair: {e}"));
            return ExitCode::OsErr.code();
        }
    };
    // SAFETY: single-threaded here; the child runs the network process
    // and exits.
    match unsafe { nix::unistd::fork() } {
        Err(e) => {
            log::err(None, &format!("fork: {}", e.desc()));
            ExitCode::OsErr.code()
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(authority_end);
            if let Err(e) = shut_in(&cfg, &settings) {
                log::err(None, &format!("cannot drop privileges: {e}"));
                // SAFETY: leave the child at once.
                unsafe { libc::_exit(ExitCode::OsErr.code()) };
            }
            let mut front = front::Front {
                wire: Wire::new(0, 1),
                tls,
                apop,
                settings: &settings,
                ctl: network_end,
            };
            front.run(implicit_tls);
            // SAFETY: leave without running destructors twice.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(network_end);
            let code = authority(&cfg, &settings, authority_end, apop.as_deref(), &peer);
            let _ = nix::sys::wait::waitpid(child, None);
            code
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

/// The network process gives up root: into the empty directory, as
/// `pop3_user`, with no groups.  (Not root: nothing to give up.)
fn shut_in(cfg: &Config, settings: &Settings) -> Result<(), String> {
    log::prepare_for_chroot();
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let user = crate::users::by_name(&settings.unprivileged_user)
        .ok_or_else(|| format!("no user {}", settings.unprivileged_user))?;
    if user.uid == 0 {
        return Err("pop3_user must not be root".into());
    }
    let empty = cfg.paths.resolve(EMPTY_DIR);
    if empty.is_dir() {
        nix::unistd::chroot(&empty)
            .map_err(|e| format!("chroot {}: {}", empty.display(), e.desc()))?;
        nix::unistd::chdir("/").map_err(|e| format!("chdir: {}", e.desc()))?;
    }
    crate::privs::set_ids(user.uid, user.gid, &[user.gid])
}

/// The authority: answer login attempts; after one succeeds, become the
/// mailbox's owner and serve the session.  Returns the exit code.
fn authority(
    cfg: &Config,
    settings: &Settings,
    mut ctl_end: UnixStream,
    apop: Option<&str>,
    peer: &str,
) -> i32 {
    let mut door = login::Door::new(cfg, &settings.login, settings.pace());
    let wait = settings.login_timeout * 3 + Duration::from_secs(60);
    loop {
        let Ok(req) = ctl::receive(&mut ctl_end, wait) else {
            return 0; // the client left
        };
        let field = |i: usize| req.get(i).map(Vec::as_slice).unwrap_or(b"");
        let attempt: Option<Attempt> = match field(0) {
            b"PASS" if req.len() == 3 => Some(Attempt::password(field(1), field(2))),
            b"PLAIN" if req.len() == 4 => Some(Attempt::sasl(field(1), field(2), field(3))),
            b"APOP" if req.len() == 3 => apop.map(|ts| Attempt::apop(field(1), ts, field(2))),
            _ => None,
        };
        let log_failure =
            |why: &Refused| log::notice(None, &format!("login failed: {} from {peer}", why.who()));
        let outcome = match &attempt {
            Some(a) => door.attempt(a, log_failure),
            None => door.refuse(Refused::Unknown, log_failure),
        };
        let id = match outcome {
            Outcome::LoggedIn(id) => id,
            Outcome::Failed => {
                let _ = ctl::send(&mut ctl_end, &[b"FAIL"]);
                continue;
            }
            Outcome::TooManyFailures => {
                let _ = ctl::send(&mut ctl_end, &[b"BYE"]);
                return 0;
            }
        };
        return serve(cfg, settings, ctl_end, &id, peer);
    }
}

/// After a successful login: record it, become the owner, open the
/// maildrop, tell the network process, and serve the session.
fn serve(
    cfg: &Config,
    settings: &Settings,
    mut ctl_end: UnixStream,
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
        let _ = ctl::send(&mut ctl_end, &[b"DELAY"]);
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
            let _ = ctl::send(&mut ctl_end, &[b"PERM", b"Logins as root are not allowed."]);
            return 0;
        }
        if let Err(e) = crate::privs::set_ids(id.uid, id.gid, &groups) {
            log::err(None, &format!("cannot become {}: {e}", id.owner));
            let _ = ctl::send(&mut ctl_end, &[b"TEMP", b"Internal error."]);
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
            let _ = ctl::send(&mut ctl_end, &[b"INUSE"]);
            return 0;
        }
        Err(OpenError::Temp(e)) => {
            log::warning(None, &format!("{}: {e}", id.login));
            let _ = ctl::send(
                &mut ctl_end,
                &[b"TEMP", b"Cannot open the mailbox; try again later."],
            );
            return 0;
        }
        Err(OpenError::Perm(e)) => {
            log::err(None, &format!("{}: {e}", id.login));
            let _ = ctl::send(
                &mut ctl_end,
                &[
                    b"PERM",
                    b"The mailbox cannot be opened; contact the administrator.",
                ],
            );
            return 0;
        }
    };
    if ctl::send(&mut ctl_end, &[b"OK"]).is_err() {
        return 0;
    }
    let Ok(handoff) = ctl::receive(&mut ctl_end, settings.idle_timeout) else {
        return 0;
    };
    if handoff.first().map(Vec::as_slice) != Some(b"HANDOFF") || handoff.len() < 3 {
        return 0;
    }
    let early = handoff[2..].join(&0u8);
    let wire = if handoff[1] == b"relay" {
        let fd = ctl_end.as_raw_fd();
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
    drop_ctl(ctl_end);
    0
}

/// Close the channel (the relay, if any, then ends).
fn drop_ctl(s: UnixStream) {
    let _ = s.shutdown(std::net::Shutdown::Both);
}
