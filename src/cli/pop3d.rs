//! `pop3d`, the POP3 server's front end: its argv, its configuration, its
//! start-up; then [`crate::pop3::run`] serves the connection.
//!
//! `pop3d [--tls] [-C config]`, started as root by inetd (or a systemd
//! socket with `Accept=yes`) for each connection, the socket on
//! descriptors 0 and 1.  Descriptor 2 may be the socket too, so nothing is
//! ever written to it: a bad command line or configuration is logged to
//! syslog (and a configuration that cannot be read is answered with
//! `-ERR [SYS/PERM]`).  Not set-id: `MAILROOM_ROOT` is honoured unless it
//! was started set-id.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::{Config, LogTarget, Paths};
use crate::exit::ExitCode;
use crate::log;
use crate::pop3::settings::Settings;

/// Run `pop3d` with `args` (including `argv[0]`); returns the exit code.
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
                log::init("pop3d", &LogTarget::Syslog, "localhost");
                log::err(
                    None,
                    &format!("unknown argument {other:?}; usage: pop3d [--tls] [-C config]"),
                );
                return ExitCode::Usage.code();
            }
        }
        i += 1;
    }
    let paths = Paths::from_env(!crate::privs::is_elevated());
    let cfg = match Config::load(paths, config_file.as_deref()) {
        Ok(c) => c,
        Err(f) => {
            log::init("pop3d", &LogTarget::Syslog, "localhost");
            log::err(None, &f.to_string());
            let _ = crate::wire::write_all_fd(
                1,
                b"-ERR [SYS/PERM] The server is misconfigured.\r\n",
                Instant::now() + Duration::from_secs(5),
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
    crate::pop3::run(&cfg, &settings, implicit_tls)
}
