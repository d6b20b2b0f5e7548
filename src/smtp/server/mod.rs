//! The SMTP server: `sendmail -bs`, in two roles decided by what standard
//! input is.
//!
//! * **A pipe or terminal** (or a Unix socket): a local program — Symfony
//!   Mailer, Swiftmailer, Nextcloud — submitting as the calling user,
//!   trusted like `sendmail -t`: any recipient, no AUTH, a bare LF is a
//!   line end.  Runs as the caller (set-group-id `mqueue`), in one process.
//! * **A TCP socket** (inetd or a systemd socket, one process per
//!   connection): a network client, whose address comes from
//!   `getpeername` ([`crate::wire::peer`]: an IPv4-mapped address is its
//!   IPv4 address).  On a submission port (`smtp_submission_ports`,
//!   default 587) or with `smtp_require_auth`, `MAIL` needs AUTH first;
//!   otherwise mail is accepted for the box's own domains, and relayed only
//!   as [`policy`] allows.  With `--tls`, or on port 465
//!   ([`SUBMISSIONS_PORT`]), it is submission with implicit TLS (RFC
//!   8314): the handshake first, then the dialogue inside TLS; never a
//!   byte in plain text.
//!
//! ## Processes (network role, started as root)
//!
//! ```text
//!  inetd ──▶ sendmail -bs (root): loads the tables, TLS key, the
//!              │ connection slot and the client's     ┌──────────────────────┐
//!              │ POP-before-SMTP stamp, then forks    │ network process      │
//!              │                                      │ (smtp_user, group    │
//!              ├── socketpair ───────────────────────▶│  mqueue): TLS, the   │
//!              ▼                                      │  whole dialogue,     │
//!            authority (root): answers AUTH           │  writes the queue,   │
//!            requests only (pop3d's account check,    │  starts qrun         │
//!            in a short-lived child)                  └──────────────────────┘
//! ```
//!
//! Nothing the client sends is parsed with root privileges (not even a TLS
//! handshake): the authority reads only framed requests
//! ([`crate::pop3::ctl`]).  Virtual accounts'
//! password hashes are dropped from the network process's memory.
//!
//! ## Modules
//!
//! [`session`] the dialogue; [`command`] command lines and ESMTP
//! parameters; [`policy`] acceptance and relaying; [`incoming`] DATA;
//! [`accept`] the queue entry; [`settings`]; [`slots`] the per-address
//! connection limit.

pub mod accept;
pub mod command;
pub mod incoming;
pub mod policy;
pub mod session;
pub mod settings;
pub mod slots;

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::config::{Config, DeliveryMode};
use crate::exit::{ExitCode, Failure};
use crate::log;
use crate::login;
use crate::pop3::ctl;
use crate::smtp::Reply;
use crate::wire::{self, Wire};
use policy::Policy;
use session::{Client, Session};
use settings::Settings;

/// What an AUTH attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this login.
    Ok(String),
    Fail,
    /// Failed, and too many times: close.
    Bye,
}

/// Who checks passwords: the login door ([`crate::login`]), in the root
/// authority or in this process.
pub enum Authenticator<'a> {
    /// The root authority, over a socketpair.
    Authority(UnixStream),
    /// This process (not started as root: only what it can read).
    InProcess(login::Door<'a>),
}

impl<'a> Authenticator<'a> {
    /// The door in this process, paced by `smtp_auth_fail_delay` and
    /// `smtp_max_auth_failures`.
    pub fn in_process(cfg: &'a Config, settings: &'a Settings) -> Authenticator<'a> {
        Authenticator::InProcess(login::Door::new(cfg, &settings.login, settings.pace()))
    }

    /// Check `authc`'s password (`authz` must be empty or the same: no
    /// logging in as someone else).
    pub fn check(&mut self, authz: &[u8], authc: &[u8], password: &[u8]) -> Verdict {
        match self {
            Authenticator::Authority(s) => {
                if ctl::send(s, &[b"AUTH", authz, authc, password]).is_err() {
                    return Verdict::Bye;
                }
                match ctl::receive(s, Duration::from_secs(300)) {
                    Ok(r) if r.first().map(Vec::as_slice) == Some(b"OK") && r.len() == 2 => {
                        Verdict::Ok(String::from_utf8_lossy(&r[1]).into_owned())
                    }
                    Ok(r) if r.first().map(Vec::as_slice) == Some(b"FAIL") => Verdict::Fail,
                    _ => Verdict::Bye,
                }
            }
            Authenticator::InProcess(door) => {
                match door.attempt(&login::Attempt::sasl(authz, authc, password), |_| {}) {
                    login::Outcome::LoggedIn(id) => Verdict::Ok(id.login),
                    login::Outcome::Failed => Verdict::Fail,
                    login::Outcome::TooManyFailures => Verdict::Bye,
                }
            }
        }
    }
}

/// Write one reply and give up (before a session exists).  Never on an
/// implicit-TLS connection: nothing is said there in plain text.
fn refuse_now(line: &str, implicit_tls: bool) {
    if implicit_tls {
        return;
    }
    let _ = wire::write_all_fd(
        1,
        format!("{line}\r\n").as_bytes(),
        Instant::now() + Duration::from_secs(10),
    );
}

/// `sendmail -bs`.  `caller`: the calling user's login (local role).
/// `implicit_tls`: `--tls`, submission with TLS from the first byte (the
/// same as a connection to [`SUBMISSIONS_PORT`]).
pub fn main(
    cfg: &Config,
    caller: Option<&str>,
    delivery: DeliveryMode,
    implicit_tls: bool,
) -> Result<ExitCode, Failure> {
    let peer = wire::peer(0);
    let implicit_tls = implicit_tls || peer.is_some_and(|p| p.local_port == SUBMISSIONS_PORT);
    let settings = match Settings::from_config(cfg) {
        Ok(s) => s,
        Err(f) => {
            log::err(None, &f.to_string());
            refuse_now(
                &format!("421 4.3.0 {} Server configuration error", cfg.hostname),
                implicit_tls,
            );
            return Err(f);
        }
    };
    match peer {
        None if implicit_tls => Err(Failure::usage(
            "-bs --tls: standard input is not a TCP connection",
        )
        .hint("--tls is for port 465: inetd or a systemd socket starts 'sendmail -bs --tls' for each connection")),
        None => {
            let login = caller.unwrap_or("unknown").to_string();
            let policy = Policy::load(cfg, settings.pop_before_smtp_window, false);
            let auth = Authenticator::in_process(cfg, &settings);
            let wire = Wire::new(0, 1);
            let mut s = Session::new(
                cfg,
                &settings,
                &policy,
                wire,
                Client::Program(login),
                None,
                auth,
            );
            s.delivery = delivery;
            s.run();
            Ok(ExitCode::Ok)
        }
        Some(peer) => network(cfg, &settings, peer, implicit_tls),
    }
}

/// RFC 8314's port for submission with implicit TLS ("submissions"): a
/// connection to it is served as `--tls` is.
pub const SUBMISSIONS_PORT: u16 = 465;

/// The network role.  Diagnostics must never reach the client: stderr
/// may be the socket.
fn network(
    cfg: &Config,
    settings: &Settings,
    peer: wire::Peer,
    implicit_tls: bool,
) -> Result<ExitCode, Failure> {
    let ip = peer.ip;
    let shown = format!("[{}]", crate::access::client_addr(&ip));
    // Implicit TLS is submission (RFC 8314 §3.3): AUTH before MAIL, as on 587.
    let submission = implicit_tls
        || settings.require_auth
        || settings.submission_ports.contains(&peer.local_port);
    let tls = settings.tls.load();
    if implicit_tls && tls.is_none() {
        // Never plain text where the client expects TLS: close unanswered.
        log::err(
            None,
            &format!(
                "implicit TLS (port {}) needs {} and {}: connection from {shown} closed",
                peer.local_port,
                settings.tls.cert.display(),
                settings.tls.key.display()
            ),
        );
        return Ok(ExitCode::Config);
    }
    // Refused before the dialogue: said at once in plain text, or, on an
    // implicit-TLS connection, inside TLS by the unprivileged network
    // process (root never parses a TLS handshake).
    let mut refusal: Option<Reply> = None;
    let slot = match slots::acquire(cfg, &ip, settings.max_connections_per_ip) {
        slots::Slot::Full => {
            log::notice(
                None,
                &format!(
                    "rejecting connection from {shown}: {} connections already",
                    settings.max_connections_per_ip
                ),
            );
            refusal = Some(Reply::new(
                421,
                format!(
                    "4.7.0 {} Too many connections from {shown}; try again later",
                    cfg.hostname
                ),
            ));
            slots::Slot::Unguarded
        }
        s => s,
    };
    let mut policy = Policy::load(cfg, settings.pop_before_smtp_window, false);
    if refusal.is_none()
        && let Some(f) = policy.connect(&ip)
        && let crate::access::Verdict::Reject(r) = &f.verdict
    {
        log::notice(
            None,
            &format!(
                "ruleset=check_relay, arg1={shown}, relay={shown}, reject={} (access {} line {})",
                r.one_line(),
                f.key,
                f.line
            ),
        );
        refusal = Some(r.clone());
    }
    if let Some(r) = &refusal
        && !implicit_tls
    {
        refuse_now(&format!("{} {}", r.code, r.lines.join(" ")), false);
        return Ok(if r.is_temporary() {
            ExitCode::TempFail
        } else {
            ExitCode::Ok
        });
    }
    // While still root: the stamps are root's.
    policy.look_up_pop_login(&ip);
    let client = Client::Network { ip, submission };
    let start = |s: &mut Session| {
        s.implicit_tls = implicit_tls;
        s.refusal = refusal.clone();
    };
    // The privilege split needs root and the system's layout (a private
    // root, as in tests, keeps one process).
    if !nix::unistd::geteuid().is_root() || !cfg.paths.is_system() {
        let auth = Authenticator::in_process(cfg, settings);
        let mut s = Session::new(cfg, settings, &policy, Wire::new(0, 1), client, tls, auth);
        s.slot = slot.into_file();
        start(&mut s);
        s.run();
        return Ok(ExitCode::Ok);
    }
    let (authority_end, network_end) = UnixStream::pair()
        .map_err(|e| Failure::new(ExitCode::OsErr, format!("socketpair: {e}")))?;
    let queue_gid = match nix::unistd::getegid().as_raw() {
        0 => crate::users::group_id("mqueue").unwrap_or(0),
        g => g,
    };
    log::prepare_for_chroot();
    // SAFETY: single-threaded here; the child runs the network process
    // and leaves with _exit.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(Failure::new(ExitCode::OsErr, format!("fork: {}", e.desc()))),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(authority_end);
            if let Err(e) = become_network_user(settings, queue_gid) {
                log::err(None, &format!("cannot drop privileges: {e}"));
                refuse_now(
                    &format!("421 4.3.0 {} Server configuration error", cfg.hostname),
                    implicit_tls,
                );
                // SAFETY: leave the child at once.
                unsafe { libc::_exit(ExitCode::OsErr.code()) };
            }
            let mut s = Session::new(
                cfg,
                settings,
                &policy,
                Wire::new(0, 1),
                client,
                tls,
                Authenticator::Authority(network_end),
            );
            s.slot = slot.into_file();
            start(&mut s);
            s.run();
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(network_end);
            // The network process alone holds the connection slot, and
            // gives it up as its session ends.
            drop(slot);
            // The authority needs neither the client's socket nor the tables.
            drop(policy);
            // SAFETY: closing our copies of the socket; the child has its own.
            unsafe {
                libc::close(0);
                libc::close(1);
            }
            crate::privs::ensure_std_fds();
            authority(cfg, settings, authority_end, &shown);
            let _ = nix::sys::wait::waitpid(child, None);
            Ok(ExitCode::Ok)
        }
    }
}

/// The network process: `smtp_user`, group `mqueue` (to write the queue
/// and start qrun), nothing else.
fn become_network_user(settings: &Settings, queue_gid: u32) -> Result<(), String> {
    let user = crate::users::by_name(&settings.unprivileged_user)
        .ok_or_else(|| format!("no user {}", settings.unprivileged_user))?;
    if user.uid == 0 {
        return Err("smtp_user must not be root".into());
    }
    if queue_gid == 0 {
        return Err("no group mqueue (run 'make install')".into());
    }
    crate::privs::set_ids(user.uid, queue_gid, &[queue_gid])
}

/// The authority: answer AUTH requests until the network process ends.
fn authority(cfg: &Config, settings: &Settings, mut ctl_end: UnixStream, shown: &str) {
    let mut door = login::Door::new(cfg, &settings.login, settings.pace());
    // The network process enforces the client's timeouts; this only
    // bounds a wedged one.
    let wait = settings.timeout * 12;
    loop {
        let Ok(req) = ctl::receive(&mut ctl_end, wait) else {
            return;
        };
        let field = |i: usize| req.get(i).map(Vec::as_slice).unwrap_or(b"");
        let outcome = if field(0) == b"AUTH" && req.len() == 4 {
            door.attempt(&login::Attempt::sasl(field(1), field(2), field(3)), |_| {})
        } else {
            door.refuse(login::Refused::Unknown, |_| {})
        };
        let answer: Vec<&[u8]> = match &outcome {
            login::Outcome::LoggedIn(id) => {
                log::info(None, &format!("AUTH: {} from {shown}", id.login));
                vec![b"OK", id.login.as_bytes()]
            }
            login::Outcome::Failed => vec![b"FAIL"],
            login::Outcome::TooManyFailures => vec![b"BYE"],
        };
        if ctl::send(&mut ctl_end, &answer).is_err() {
            return;
        }
    }
}

/// Start delivery of an accepted message, as `mode` says (`-odi` from a
/// local program: delivered before the next reply; a network client never
/// waits for delivery).
pub fn start_delivery(mode: DeliveryMode, id: &crate::queue::QueueId) {
    crate::runner::start::start_delivery(id, mode);
}
