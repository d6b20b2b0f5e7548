//! `mailroom setup services [--remove] [--systemd | --inetd]`: turn on (or
//! off) the network services — SMTP on 25, submission on 587,
//! implicit-TLS submission on 465 (RFC 8314), POP3 on 110 and POP3S on
//! 995 — the way the box starts servers; `mailroom setup panel on|off`
//! does the same for the web control panel's own TLS port, 8443
//! (`panel --inetd`, for a box without a web server):
//!
//! * where systemd runs (it is PID 1: `/run/systemd/system` exists), the
//!   socket units `make install` put in the unit directory
//!   (`mailroom-smtp.socket` ..., `mailroom-panel.socket`, with their
//!   `@.service` templates,
//!   `Accept=yes`) are enabled and started with `systemctl enable --now`
//!   (`disable --now` with `--remove`);
//! * otherwise inetd lines go into `/etc/inetd.conf`: through Debian's
//!   `update-inetd` where it is installed (which also tells inetd), else
//!   by rewriting the file as every admin change is written
//!   ([`crate::change::Change`]) and sending the running inetd `SIGHUP`.
//!
//! Each service is reported — added, already there, left alone because
//! another program has its line or its port, removed — and then which
//! ports listen.  Running it twice changes nothing; `--remove` takes off
//! only what is ours.  The lines and units are those of `etc/inetd` and
//! `etc/systemd`, with this installation's program paths.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};

use crate::change::Change;
use crate::config::Config;
use crate::exit::{ExitCode, Failure, io_reason};

#[derive(Subcommand, Debug)]
pub enum SetupAction {
    /// Turn on SMTP (25), submission (587, and 465 with implicit TLS) and
    /// POP3 (110, 995): systemd socket units where systemd runs, else
    /// inetd lines.
    Services(ServicesArgs),
    /// Turn the web control panel's own TLS port (8443) on or off: a
    /// systemd socket unit where systemd runs, else an inetd line; one
    /// `panel --inetd` per connection, as pop3d.
    #[command(after_help = PANEL_HELP)]
    Panel(PanelArgs),
}

#[derive(Args, Debug)]
pub struct PanelArgs {
    /// on: serve the panel on port 8443; off: stop (only our socket unit
    /// or inetd line is touched).
    #[arg(value_enum)]
    pub switch: Switch,
    /// Use a systemd socket unit even if systemd does not seem to run.
    #[arg(long, conflicts_with = "inetd")]
    pub systemd: bool,
    /// Use inetd even where systemd runs.
    #[arg(long)]
    pub inetd: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

#[derive(Args, Debug)]
pub struct ServicesArgs {
    /// Turn them off again: disable our socket units, or remove our inetd
    /// lines (nothing else is touched).
    #[arg(long)]
    pub remove: bool,
    /// Use systemd socket units even if systemd does not seem to run.
    #[arg(long, conflicts_with = "inetd")]
    pub systemd: bool,
    /// Use inetd even where systemd runs.
    #[arg(long)]
    pub inetd: bool,
}

pub const SETUP_HELP: &str = "\
Ports 465 and 995 speak TLS from the first byte: they need the certificate
/etc/mail/tls/mail.crt and its key mail.key (tls_cert, tls_key in
mailroom.conf); until both exist their connections are refused.

Examples:
  mailroom setup services            # or: make install-services
  mailroom setup services --remove";

pub const PANEL_HELP: &str = "\
Port 8443 speaks TLS from the first byte with /etc/mail/tls/mail.crt and
mail.key (tls_cert, tls_key); until both exist its connections are refused.
Behind Apache or nginx the panel needs no port of its own: see
/usr/share/mailroom/web/.

Examples:
  mailroom setup panel on            # then https://HOST:8443/
  mailroom setup panel off";

/// One network service.
pub struct Service {
    /// What it is called in reports; for the network services, also their
    /// name in /etc/services.
    pub name: &'static str,
    /// The service field of its inetd.conf line: the /etc/services name,
    /// or the port number where /etc/services has none (8443).
    pub inetd_service: &'static str,
    pub port: u16,
    /// The socket unit (`NAME.socket`, with `NAME@.service`).
    pub unit: &'static str,
    pub program: Program,
    pub args: &'static [&'static str],
    /// openbsd-inetd's `wait` field: `nowait.N` raises its limit of
    /// processes started per minute (default 256), past which it turns the
    /// service off for ten minutes.
    pub wait: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Sendmail,
    Pop3d,
    Panel,
}

pub const SERVICES: &[Service] = &[
    Service {
        name: "smtp",
        inetd_service: "smtp",
        port: 25,
        unit: "mailroom-smtp",
        program: Program::Sendmail,
        args: &["-bs"],
        wait: "nowait.1000",
    },
    Service {
        name: "submission",
        inetd_service: "submission",
        port: 587,
        unit: "mailroom-submission",
        program: Program::Sendmail,
        args: &["-bs"],
        wait: "nowait.1000",
    },
    Service {
        name: "submissions",
        inetd_service: "submissions",
        port: 465,
        unit: "mailroom-submissions",
        program: Program::Sendmail,
        args: &["-bs", "--tls"],
        wait: "nowait.1000",
    },
    Service {
        name: "pop3",
        inetd_service: "pop3",
        port: 110,
        unit: "mailroom-pop3",
        program: Program::Pop3d,
        args: &[],
        wait: "nowait",
    },
    Service {
        name: "pop3s",
        inetd_service: "pop3s",
        port: 995,
        unit: "mailroom-pop3s",
        program: Program::Pop3d,
        args: &["--tls"],
        wait: "nowait",
    },
];

/// The web panel's own port: `panel --inetd` reads the TLS key as root,
/// then becomes `panel_user` (see src/panel).
pub const PANEL: &[Service] = &[Service {
    name: "panel",
    inetd_service: "8443",
    port: 8443,
    unit: "mailroom-panel",
    program: Program::Panel,
    args: &["--inetd"],
    wait: "nowait",
}];

/// Where this installation's programs are: `sendmail` beside `mailroom`
/// (both in `PREFIX/sbin`), `pop3d` and `panel` in
/// `PREFIX/libexec/mailroom`.
pub struct Programs {
    pub sendmail: PathBuf,
    pub pop3d: PathBuf,
    pub panel: PathBuf,
}

impl Programs {
    pub fn installed() -> Result<Programs, Failure> {
        let exe = std::fs::read_link("/proc/self/exe").map_err(|e| {
            Failure::new(
                ExitCode::OsErr,
                format!("cannot find myself: {}", io_reason(&e)),
            )
        })?;
        let sbin = exe.parent().unwrap_or(Path::new("/usr/sbin"));
        Ok(Programs::under(sbin))
    }

    /// The programs of an installation whose `sbin` directory is `sbin`
    /// (for a build not installed, where every program sits in one
    /// directory, that directory).
    pub fn under(sbin: &Path) -> Programs {
        let prefix = sbin.parent().unwrap_or(Path::new("/usr"));
        let libexec = prefix.join("libexec/mailroom");
        let built = !libexec.is_dir() && sbin.join("pop3d").is_file();
        let helpers = if built { sbin.to_path_buf() } else { libexec };
        Programs {
            sendmail: sbin.join("sendmail"),
            pop3d: helpers.join("pop3d"),
            panel: helpers.join("panel"),
        }
    }

    fn path(&self, p: Program) -> &Path {
        match p {
            Program::Sendmail => &self.sendmail,
            Program::Pop3d => &self.pop3d,
            Program::Panel => &self.panel,
        }
    }

    /// The inetd.conf line for `s` (fields separated by tabs).
    pub fn inetd_line(&self, s: &Service) -> String {
        let path = self.path(s.program);
        let argv0 = path.file_name().unwrap_or_default().to_string_lossy();
        let mut argv = vec![argv0.to_string()];
        argv.extend(s.args.iter().map(|a| a.to_string()));
        format!(
            "{}\tstream\ttcp\t{}\troot\t{}\t{}",
            s.inetd_service,
            s.wait,
            path.display(),
            argv.join(" ")
        )
    }
}

// ---------------------------------------------------------------------
// /etc/inetd.conf, as text.

/// A line's words, after Debian's `#<off># ` mark of a disabled service.
fn fields(line: &str) -> (bool, Vec<&str>) {
    let t = line.trim();
    match t.strip_prefix("#<off>#") {
        Some(rest) => (false, rest.split_whitespace().collect()),
        None if t.starts_with('#') => (false, Vec::new()),
        None => (true, t.split_whitespace().collect()),
    }
}

/// What inetd.conf has for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Nothing for its port.
    Nothing,
    /// Our line, enabled (true) or disabled with `#<off>#` (false).
    Ours(bool),
    /// Another program's enabled line for the port: left alone.
    Other(String),
}

/// Find `ours` (a line of [`Programs::inetd_line`]) or another enabled
/// line for the same port in `text`; `port_of` maps a service name or
/// alias to its port (/etc/services).
pub fn find(text: &str, ours: &str, port: u16, port_of: &dyn Fn(&str) -> Option<u16>) -> Found {
    let want: Vec<&str> = ours.split_whitespace().collect();
    let mut found = Found::Nothing;
    for line in text.lines() {
        let (enabled, f) = fields(line);
        if f.len() < 6 {
            continue;
        }
        if f == want {
            if enabled {
                return Found::Ours(true);
            }
            found = Found::Ours(false);
        } else if enabled && port_of(f[0]) == Some(port) && f[2].starts_with("tcp") {
            return Found::Other(line.trim().to_string());
        }
    }
    found
}

/// `text` with `lines` added: after a `#:MAIL:` group heading if there is
/// one (as update-inetd places them), else at the end.
pub fn add_lines(text: &str, lines: &[String]) -> String {
    let mut out: Vec<String> = text.lines().map(str::to_string).collect();
    let at = out
        .iter()
        .position(|l| l.starts_with("#:MAIL:"))
        .map(|h| {
            // The end of the group: the first blank line after the heading.
            out[h + 1..]
                .iter()
                .position(|l| l.trim().is_empty())
                .map_or(out.len(), |n| h + 1 + n)
        })
        .unwrap_or(out.len());
    for (n, l) in lines.iter().enumerate() {
        out.insert(at + n, l.clone());
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// `text` with our lines (enabled or disabled) and only those removed.
pub fn remove_lines(text: &str, ours: &[String]) -> String {
    let ours: Vec<Vec<&str>> = ours
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let (_, f) = fields(l);
            !ours.contains(&f)
        })
        .collect();
    let mut s = kept.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

/// `text` with our disabled (`#<off>#`) lines enabled.
fn enable_lines(text: &str, ours: &[String]) -> String {
    let ours: Vec<Vec<&str>> = ours
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let mut s: String = text
        .lines()
        .map(|l| match l.trim().strip_prefix("#<off>#") {
            Some(rest) if ours.contains(&rest.split_whitespace().collect()) => {
                rest.trim().to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    s.push('\n');
    s
}

/// Service names and aliases to ports, from `/etc/services` text.
pub fn service_ports(text: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut w = line.split_whitespace();
        let (Some(name), Some(pp)) = (w.next(), w.next()) else {
            continue;
        };
        let Some((port, proto)) = pp.split_once('/') else {
            continue;
        };
        let (Ok(port), "tcp") = (port.parse::<u16>(), proto) else {
            continue;
        };
        out.push((name.to_string(), port));
        out.extend(w.map(|a| (a.to_string(), port)));
    }
    out
}

// ---------------------------------------------------------------------
// Who listens where (/proc/net/tcp, /proc/net/tcp6).

/// The socket inodes listening on TCP `port` (any address).
fn listeners(port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() < 10 || w[3] != "0A" {
                continue;
            }
            let local_port = w[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port)
                && let Ok(inode) = w[9].parse()
            {
                out.push(inode);
            }
        }
    }
    out
}

/// The process holding socket `inode`: (pid, name).
fn holder(inode: u64) -> Option<(u32, String)> {
    let want = format!("socket:[{inode}]");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()))
        {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            return Some((pid, comm.trim().to_string()));
        }
    }
    None
}

/// Who listens on `port`, if anyone: "NAME (pid N)".
fn listening(port: u16) -> Option<String> {
    let inode = *listeners(port).first()?;
    Some(match holder(inode) {
        Some((pid, name)) => format!("{name} (pid {pid})"),
        None => "another process".to_string(),
    })
}

/// Wait up to five seconds for each port to listen (or, `off`, to stop).
fn settle(ports: &[u16], off: bool) -> Vec<u16> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let pending: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|p| listeners(*p).is_empty() != off)
            .collect();
        if pending.is_empty() || Instant::now() >= until {
            return pending;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------
// The command.

/// The outcome for one service.
struct Line {
    service: &'static Service,
    what: String,
    /// Left alone: the service could not be turned on or off.
    refused: bool,
    /// Its port is ours now (or, removing, was ours until now): it should
    /// listen (or stop listening).
    watched: bool,
}

impl Line {
    fn new(service: &'static Service, what: String, refused: bool, watched: bool) -> Line {
        Line {
            service,
            what,
            refused,
            watched,
        }
    }
}

/// Print one line per service; log those that changed something.
fn report(what: &str, lines: &[Line]) {
    for l in lines {
        println!(
            "  {:<12} port {:<4} {}",
            l.service.name, l.service.port, l.what
        );
        if l.watched && !l.what.starts_with("already") {
            crate::log::info(
                None,
                &format!(
                    "mailroom: setup {what}: {} port {}: {}",
                    l.service.name, l.service.port, l.what
                ),
            );
        }
    }
}

/// True when systemd is the init system (sd_booted(3)).
fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn run_tool(cmd: &mut Command) -> Result<(), String> {
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr)
            .trim()
            .replace('\n', "; ")),
        Err(e) => Err(io_reason(&e)),
    }
}

/// Which services a `setup` command turns on or off, and how.
struct Switching {
    /// The command's name in messages: "services" or "panel".
    what: &'static str,
    set: &'static [Service],
    remove: bool,
    systemd: bool,
    inetd: bool,
}

pub fn run(cfg: &Config, action: SetupAction) -> i32 {
    let switching = match action {
        SetupAction::Services(a) => Switching {
            what: "services",
            set: SERVICES,
            remove: a.remove,
            systemd: a.systemd,
            inetd: a.inetd,
        },
        SetupAction::Panel(a) => Switching {
            what: "panel",
            set: PANEL,
            remove: a.switch == Switch::Off,
            systemd: a.systemd,
            inetd: a.inetd,
        },
    };
    match services(cfg, &switching) {
        Ok(code) => code.code(),
        Err(f) => {
            eprintln!("mailroom: {f}");
            f.code.code()
        }
    }
}

fn services(cfg: &Config, args: &Switching) -> Result<ExitCode, Failure> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Failure::new(
            ExitCode::NoPerm,
            format!(
                "setup {}: only root can change how servers are started",
                args.what
            ),
        )
        .hint("run it as root"));
    }
    let programs = Programs::installed()?;
    let use_systemd = if args.systemd {
        true
    } else if args.inetd {
        false
    } else {
        systemd_runs()
    };
    let lines = if use_systemd {
        systemd(args.set, args.remove)?
    } else {
        inetd(cfg, &programs, args)?
    };
    report(args.what, &lines);
    let ports: Vec<u16> = lines
        .iter()
        .filter(|l| l.watched)
        .map(|l| l.service.port)
        .collect();
    let stuck = settle(&ports, args.remove);
    if args.remove {
        println!(
            "not listening any more: {}",
            list(ports.iter().filter(|p| !stuck.contains(p)))
        );
        if !stuck.is_empty() {
            println!("still listening: {}", list(stuck.iter()));
        }
    } else {
        println!(
            "listening: {}",
            list(ports.iter().filter(|p| !stuck.contains(p)))
        );
        if !stuck.is_empty() {
            println!(
                "not listening yet: {} (is {} running?)",
                list(stuck.iter()),
                if use_systemd { "systemd" } else { "inetd" }
            );
        }
        let crate::tls::ServerCert { cert, key } = crate::tls::ServerCert::from_config(cfg);
        if !(cert.exists() && key.exists()) {
            let ports = if args.what == "panel" {
                "port 8443 speaks"
            } else {
                "ports 465 and 995 speak"
            };
            println!(
                "note: {ports} TLS from the first byte and refuse connections until {} and {} exist",
                cert.display(),
                key.display()
            );
        }
    }
    Ok(if lines.iter().any(|l| l.refused) || !stuck.is_empty() {
        ExitCode::Unavailable
    } else {
        ExitCode::Ok
    })
}

fn list<'a>(ports: impl Iterator<Item = &'a u16>) -> String {
    let v: Vec<String> = ports.map(u16::to_string).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

/// Enable (or disable) the socket units.
fn systemd(set: &'static [Service], remove: bool) -> Result<Vec<Line>, Failure> {
    println!("systemd socket units:");
    let mut out = Vec::new();
    for s in set {
        let socket = format!("{}.socket", s.unit);
        let state = |what: &str| {
            Command::new("systemctl")
                .args([what, "--quiet", &socket])
                .status()
                .is_ok_and(|st| st.success())
        };
        let (active, enabled) = (state("is-active"), state("is-enabled"));
        let (what, refused) = if remove {
            if !active && !enabled {
                ("was off".to_string(), false)
            } else {
                match run_tool(Command::new("systemctl").args(["disable", "--now", &socket])) {
                    Ok(()) => (format!("{socket} disabled and stopped"), false),
                    Err(e) => (format!("cannot turn {socket} off: {e}"), true),
                }
            }
        } else if active && enabled {
            (format!("already on ({socket})"), false)
        } else if let Some(who) = listening(s.port).filter(|_| !active) {
            (
                format!("left alone: port {} is taken by {who}", s.port),
                true,
            )
        } else {
            match run_tool(Command::new("systemctl").args(["enable", "--now", &socket])) {
                Ok(()) => (format!("{socket} enabled and started"), false),
                Err(e) => (
                    format!(
                        "cannot turn {socket} on: {e} (make install puts the units in PREFIX/lib/systemd/system)"
                    ),
                    true,
                ),
            }
        };
        // Removing, only a socket we turned off should stop listening.
        let watched = !refused && (!remove || active || enabled);
        out.push(Line::new(s, what, refused, watched));
    }
    Ok(out)
}

/// Add (or remove) our inetd lines.
fn inetd(cfg: &Config, programs: &Programs, args: &Switching) -> Result<Vec<Line>, Failure> {
    let remove = args.remove;
    let conf = cfg.paths.resolve("/etc/inetd.conf");
    let update_inetd = ["/usr/sbin/update-inetd", "/sbin/update-inetd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists() && cfg.paths.is_system());
    let has_inetd = [
        "/usr/sbin/inetd",
        "/usr/sbin/inetutils-inetd",
        "/usr/sbin/xinetd",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    if !conf.exists() && update_inetd.is_none() && !has_inetd && !remove {
        return Err(Failure::new(
            ExitCode::Unavailable,
            format!(
                "setup {}: systemd does not run here and there is no inetd",
                args.what
            ),
        )
        .hint("install one (apt-get install openbsd-inetd) and run this again"));
    }
    println!(
        "inetd ({}{}):",
        conf.display(),
        if update_inetd.is_some() {
            ", with update-inetd"
        } else {
            ""
        }
    );
    let services_text = std::fs::read_to_string("/etc/services").unwrap_or_default();
    let known = service_ports(&services_text);
    let port_of = |name: &str| {
        known
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .or_else(|| name.parse().ok())
    };
    let mut change = Change::begin(cfg)?;
    let mut text = change.text(&conf)?;
    let mut out = Vec::new();
    let mut to_add = Vec::new();
    let mut to_enable = Vec::new();
    let mut to_remove = Vec::new();
    for s in args.set {
        let ours = programs.inetd_line(s);
        let found = find(&text, &ours, s.port, &port_of);
        let (what, refused) = match (&found, remove) {
            (Found::Ours(_), true) => {
                to_remove.push((s, ours.clone()));
                ("removed".to_string(), false)
            }
            (_, true) => ("was not there".to_string(), false),
            (Found::Ours(true), false) => ("already there".to_string(), false),
            (Found::Ours(false), false) => {
                to_enable.push(ours.clone());
                ("enabled (its line was turned off)".to_string(), false)
            }
            (Found::Other(line), false) => (
                format!(
                    "left alone: {} has another line for it: {line}",
                    conf.display()
                ),
                true,
            ),
            (Found::Nothing, false) => match listening(s.port).filter(|who| !who.contains("inetd"))
            {
                Some(who) => (
                    format!("left alone: port {} is taken by {who}", s.port),
                    true,
                ),
                None => {
                    to_add.push(ours.clone());
                    ("added".to_string(), false)
                }
            },
        };
        let watched = !refused && (!remove || matches!(found, Found::Ours(_)));
        out.push(Line::new(s, what, refused, watched));
    }
    if let Some(tool) = &update_inetd {
        // update-inetd writes the file and tells inetd itself (the admin
        // lock, held by `change`, keeps two of us from racing).
        for line in to_add.iter().chain(&to_enable) {
            run_tool(
                Command::new(tool)
                    .args(["--group", "MAIL", "--add", line])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )
            .map_err(|e| {
                Failure::new(ExitCode::OsErr, format!("update-inetd --add failed: {e}"))
            })?;
        }
        for (s, line) in &to_remove {
            let w: Vec<&str> = line.split('\t').collect();
            let pattern = format!(
                "{}\\s+{}\\s*$",
                regex_escape(w[5]),
                regex_escape(w[6]).replace(' ', "\\s+")
            );
            run_tool(
                Command::new(tool)
                    .args([
                        "--multi",
                        "--pattern",
                        &pattern,
                        "--remove",
                        s.inetd_service,
                    ])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )
            .map_err(|e| {
                Failure::new(
                    ExitCode::OsErr,
                    format!("update-inetd --remove failed: {e}"),
                )
            })?;
        }
        drop(change);
        return Ok(out);
    }
    if !to_add.is_empty() {
        text = add_lines(&text, &to_add);
    }
    if !to_enable.is_empty() {
        text = enable_lines(&text, &to_enable);
    }
    if !to_remove.is_empty() {
        let ours: Vec<String> = to_remove.iter().map(|(_, l)| l.clone()).collect();
        text = remove_lines(&text, &ours);
    }
    if to_add.is_empty() && to_enable.is_empty() && to_remove.is_empty() {
        return Ok(out);
    }
    change.set(&conf, text);
    change.commit()?;
    if cfg.paths.is_system() {
        println!("  {}", reload_inetd());
    }
    Ok(out)
}

/// Tell the running inetd to read its file again (SIGHUP), as
/// update-inetd does: the pid in /run/inetd.pid, if that process is an
/// inetd.
fn reload_inetd() -> String {
    let pid = std::fs::read_to_string("/run/inetd.pid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let Some(pid) = pid else {
        return "inetd is not running (no /run/inetd.pid): start it to serve these lines".into();
    };
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if !comm.trim().ends_with("inetd") {
        return format!(
            "/run/inetd.pid names pid {pid}, which is not inetd: restart inetd by hand"
        );
    }
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    ) {
        Ok(()) => format!("inetd (pid {pid}) told to read {} again", "/etc/inetd.conf"),
        Err(e) => format!(
            "cannot signal inetd (pid {pid}): {}",
            io_reason(&io::Error::from(e))
        ),
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if "\\.^$|?*+()[]{}".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
