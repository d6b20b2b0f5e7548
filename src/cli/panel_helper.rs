//! `panel-helper`, the web control panel's root side: the front end of
//! [`crate::admin::panel`] (sessions, roles, logins, who may touch what,
//! the changes), speaking [`crate::panel::protocol`].
//!
//! The panel's front end (`/usr/libexec/mailroom/panel`, run by the web
//! server as `www-data`) runs it once per request: one request line on
//! standard input, one answer on standard output, exit 0.  Every bad
//! request gets an answer (`failed`, `nosession`, ...), never a crash.
//!
//! ## Privileges
//!
//! It reads `/etc/shadow` and writes `/etc/mail`, `/etc/passwd` and
//! `/etc/shadow`, so it is installed set-uid root (mode 4750, group
//! `www-data` when that group exists), and
//!
//! * refuses (exit 2, nothing read) a caller that is neither root nor
//!   one of `panel_callers` (default `www-data`);
//! * clears its environment at once, and ignores `MAILROOM_ROOT`;
//! * sets its umask to 077 (its session files are root's alone); only
//!   for a change itself, made with the `mailroom` command's code, is it
//!   022, the command's usual one, so new files and directories get the
//!   modes the command gives them;
//! * reads at most [`MAX_REQUEST`] bytes: a longer request is refused;
//! * checks passwords in a child process, as pop3d does.
//!
//! Not set-uid (tests), `MAILROOM_ROOT` is honoured as by every program.

use std::io::{Read, Write};

use crate::config::{Config, Paths};
use crate::panel::protocol::{Answer, MAX_REQUEST};
use crate::{log, privs};

/// Exit code for a caller that may not run the program.
const REFUSED_CALLER: i32 = 2;

fn failed(message: impl Into<String>) -> Answer {
    Answer::Failed {
        message: message.into(),
    }
}

/// Write `answer`; the exit code.
fn say(answer: &Answer) -> i32 {
    let out = std::io::stdout();
    let mut out = out.lock();
    match out
        .write_all(answer.encode().as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => 0,
        Err(_) => crate::exit::ExitCode::IoErr.code(),
    }
}

/// Run `panel-helper`; the exit code.
pub fn main() -> i32 {
    privs::ensure_std_fds();
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o077) };
    let elevated = privs::is_elevated();
    let paths = Paths::from_env(!elevated);
    if elevated {
        privs::clean_environment();
    }
    let cfg = match Config::load(paths, None) {
        Ok(c) => c,
        Err(f) => return say(&failed(f.to_string())),
    };
    log::init("panel-helper", &cfg.log, &cfg.hostname);
    let settings = match crate::admin::panel::Settings::from_config(&cfg) {
        Ok(s) => s,
        Err(f) => return say(&failed(f.to_string())),
    };
    if elevated && !may_call(&settings.callers) {
        let uid = nix::unistd::getuid();
        log::err(
            None,
            &format!("uid {uid} may not run panel-helper (panel_callers)"),
        );
        eprintln!("panel-helper: uid {uid} may not run this program (panel_callers)");
        return REFUSED_CALLER;
    }
    let mut bytes = Vec::new();
    if std::io::stdin()
        .lock()
        .take(MAX_REQUEST as u64 + 2)
        .read_to_end(&mut bytes)
        .is_err()
    {
        return say(&failed("cannot read the request"));
    }
    let line = match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None => &bytes[..],
    };
    if line.len() > MAX_REQUEST {
        return say(&failed(format!(
            "the request is longer than {MAX_REQUEST} bytes"
        )));
    }
    let answer = std::panic::catch_unwind(|| crate::admin::panel::answer(&cfg, line))
        .unwrap_or_else(|_| failed("internal error (see the mail log)"));
    say(&answer)
}

/// The real uid is root or one of `panel_callers`.
fn may_call(callers: &[String]) -> bool {
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return true;
    }
    let Ok(Some(user)) = nix::unistd::User::from_uid(uid) else {
        return false;
    };
    callers.contains(&user.name)
}
