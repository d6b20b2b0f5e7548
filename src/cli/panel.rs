//! `panel`, the web control panel's front end: which way it was started,
//! then [`crate::panel`] serves.
//!
//! * As a CGI program (`GATEWAY_INTERFACE` set, by Apache or fcgiwrap):
//!   one request ([`crate::panel::cgi`]).
//! * `panel --inetd [-C config]`, started as root by inetd or a systemd
//!   socket on the panel's own TLS port: reads the certificate, becomes
//!   `panel_user`, serves the connection ([`crate::panel::inetd`]).
//!   Descriptor 2 may be the socket: errors go to syslog only.

use std::path::PathBuf;

use crate::config::{Config, LogTarget, Paths};
use crate::exit::ExitCode;
use crate::log;
use crate::panel;

/// Run `panel` with `args` (including `argv[0]`); returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    crate::privs::ensure_std_fds();
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o077) };
    let mut inetd = false;
    let mut config_file: Option<PathBuf> = None;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--inetd" => inetd = true,
            "-C" if i + 1 < args.len() => {
                i += 1;
                config_file = Some(PathBuf::from(&args[i]));
            }
            other => {
                log::init("panel", &LogTarget::Syslog, "localhost");
                log::err(
                    None,
                    &format!("unknown argument {other:?}; usage: panel [--inetd] [-C config]"),
                );
                return ExitCode::Usage.code();
            }
        }
        i += 1;
    }
    let cgi = std::env::var_os("GATEWAY_INTERFACE").is_some();
    let paths = Paths::from_env(!crate::privs::is_elevated());
    let cfg = Config::load(paths, config_file.as_deref());
    match &cfg {
        Ok(c) => log::init("panel", &c.log, &c.hostname),
        Err(_) => log::init("panel", &LogTarget::Syslog, "localhost"),
    }
    if inetd {
        let cfg = match cfg {
            Ok(c) => c,
            Err(f) => {
                log::err(None, &format!("panel --inetd not started: {f}"));
                return f.code.code();
            }
        };
        let user = cfg
            .get("panel_user")
            .unwrap_or(panel::DEFAULT_USER)
            .to_string();
        return panel::inetd::run(&crate::tls::ServerCert::from_config(&cfg), &user);
    }
    if cgi {
        let mut helper = panel::client::Program::locate(false);
        return panel::cgi::run(&mut helper);
    }
    eprintln!(
        "panel: the web control panel runs as a CGI program (GATEWAY_INTERFACE) or as `panel --inetd`"
    );
    ExitCode::Usage.code()
}
