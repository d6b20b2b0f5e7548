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
//! Privilege separation as [`crate::privsep`] draws it.  The root process
//! loads the tables and the TLS key, takes the connection slot
//! ([`slots`]), applies `Connect:` access rules and looks the client up in
//! pop3d's POP-before-SMTP stamps (root's alone), then splits:
//!
//! * the network process — `smtp_user` with group `mqueue`, nothing else
//!   — holds the slot and the tables and runs the whole dialogue, TLS
//!   included, and the sender checks with their DNS lookups
//!   ([`crate::inbound`]); it writes the queue and starts qrun as
//!   `sendmail` does;
//! * the authority (root) only answers AUTH requests, through the login
//!   door ([`crate::login`]: the same names, checks and slowing as
//!   pop3d), and logs `AUTH: LOGIN from [ADDR]`.
//!
//! Nothing the client sends is parsed with root privileges (not even a TLS
//! handshake).  Started without root, or under a private root (tests), it
//! stays one process and checks AUTH itself ([`Authenticator::InProcess`]).
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

use std::ops::ControlFlow;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::access;
use crate::config::{Config, DeliveryMode};
use crate::exit::{ExitCode, Failure};
use crate::inbound::Gate;
use crate::log;
use crate::login;
use crate::privsep::protocol::{Answer, Request};
use crate::privsep::{self, Group, Logins, NetworkUser};
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
                let request = Request::Password {
                    authzid: authz.to_vec(),
                    name: authc.to_vec(),
                    password: password.to_vec(),
                };
                if request.send(s).is_err() {
                    return Verdict::Bye;
                }
                match Answer::receive(s, Duration::from_secs(300)) {
                    Ok(Some(Answer::LoggedIn(login))) if !login.is_empty() => Verdict::Ok(login),
                    Ok(Some(Answer::Failed)) => Verdict::Fail,
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

/// A setting the server cannot work with: logged, and the client told
/// `421 4.3.0` (never in plain text where it expects TLS).
fn configuration_error(cfg: &Config, f: Failure, implicit_tls: bool) -> Failure {
    log::err(None, &f.to_string());
    refuse_now(
        &format!("421 4.3.0 {} Server configuration error", cfg.hostname),
        implicit_tls,
    );
    f
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
        Err(f) => return Err(configuration_error(cfg, f, implicit_tls)),
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
        && let access::Verdict::Reject(r) = &f.verdict
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
    // The sender checks: for the MX role only, and not for a client the
    // access table trusts (`Connect:` OK or RELAY).
    let trusted = policy
        .connect(&ip)
        .is_some_and(|f| matches!(f.verdict, access::Verdict::Ok | access::Verdict::Relay));
    let gate = if submission || trusted {
        None
    } else {
        match Gate::load(cfg) {
            Ok(g) => g,
            Err(f) => return Err(configuration_error(cfg, f, implicit_tls)),
        }
    };
    let client = Client::Network { ip, submission };
    let serve = move |auth| {
        let mut s = Session::new(cfg, settings, &policy, Wire::new(0, 1), client, tls, auth);
        s.slot = slot.into_file();
        s.implicit_tls = implicit_tls;
        s.refusal = refusal;
        s.gate = gate;
        s.run();
    };
    // The privilege split needs root and the system's layout (a private
    // root, as in tests, keeps one process).
    if !nix::unistd::geteuid().is_root() || !cfg.paths.is_system() {
        serve(Authenticator::in_process(cfg, settings));
        return Ok(ExitCode::Ok);
    }
    let user = NetworkUser {
        key: "smtp_user",
        name: settings.unprivileged_user.clone(),
        group: Group::Queue,
        shut_in: None,
    };
    // The network process alone holds the connection slot (and gives it
    // up as its session ends) and the tables: `serve` owns them, and the
    // authority drops it unrun.
    privsep::split(
        &user,
        |chan| serve(Authenticator::Authority(chan)),
        || {
            refuse_now(
                &format!("421 4.3.0 {} Server configuration error", cfg.hostname),
                implicit_tls,
            )
        },
        |chan| {
            privsep::let_go_of_client();
            authority(cfg, settings, chan, &shown)
        },
    )
    .map_err(|e| Failure::new(ExitCode::OsErr, e.to_string()))?;
    Ok(ExitCode::Ok)
}

/// The authority: answer AUTH requests until the network process ends.
fn authority(cfg: &Config, settings: &Settings, mut chan: UnixStream, shown: &str) {
    let mut door = login::Door::new(cfg, &settings.login, settings.pace());
    let logins = Logins {
        door: &mut door,
        wait: settings.timeout * 12,
        apop: None,
    };
    privsep::answer_logins(
        &mut chan,
        logins,
        |_| {},
        |chan, id| {
            log::info(None, &format!("AUTH: {} from {shown}", id.login));
            match Answer::LoggedIn(id.login).send(chan) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        },
    );
}

/// Start delivery of an accepted message, as `mode` says (`-odi` from a
/// local program: delivered before the next reply; a network client never
/// waits for delivery).
pub fn start_delivery(cfg: &Config, mode: DeliveryMode, id: &crate::queue::QueueId) {
    crate::runner::start::start_delivery(&cfg.queue_dir, id, mode);
}
