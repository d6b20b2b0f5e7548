//! `checkpassword`, the login door's program for Dovecot: the front end of
//! [`crate::login::checkpassword`] (the protocol, the answers, the exit
//! codes, all there).
//!
//! `checkpassword REPLY [ARGS...]`, started by Dovecot 2.3's auth process
//! (`passdb` and `userdb` driver `checkpassword`, which appends the path
//! of its `checkpassword-reply`) with the request on descriptor 3.
//!
//! ## Privileges
//!
//! Dovecot runs it as its `dovecot` user, which must not read
//! `/etc/shadow` or `/etc/mail/passwd`.  So it is installed set-uid root
//! (mode 4750, group `dovecot` when that group exists), and
//!
//! * refuses (exit 2) a caller that is neither root nor one of
//!   `checkpassword_callers` (default `dovecot`): no one else may use it
//!   to guess passwords;
//! * clears its environment at once (what it needs it reads first), and
//!   ignores `MAILROOM_ROOT`;
//! * checks the password in a child process, as pop3d does;
//! * gives up every privilege for good (real, effective and saved ids
//!   back to the caller's) before it `exec`s the reply program, with the
//!   caller's own environment plus the answer.  So `checkpassword-reply`
//!   runs exactly as Dovecot started it, and Dovecot's check that its
//!   `ORIG_UID` is still the real uid holds: no `INSECURE_SETUID`.
//!
//! The alternative, running Dovecot's whole auth process as root
//! (`service auth { user = root }`), would give root to a long-lived
//! process that parses every client's authentication exchange; this
//! program holds root only for one check and reads nothing from the
//! network.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;

use crate::config::{Config, Paths};
use crate::login::Settings;
use crate::login::checkpassword::{self, Answer, Caller, Mode, exit};
use crate::{log, privs};

/// The request's descriptor.
const REQUEST_FD: i32 = 3;

/// Run `checkpassword` with `args` (including `argv[0]`); returns the exit
/// code when it does not `exec` the reply program.
pub fn main(args: Vec<OsString>) -> i32 {
    // Before anything opens a file: is the request's descriptor there?
    // SAFETY: F_GETFD on a small integer is harmless.
    let have_request = unsafe { libc::fcntl(REQUEST_FD, libc::F_GETFD) } != -1;
    privs::ensure_std_fds();
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o077) };
    let elevated = privs::is_elevated();
    // The caller's environment goes to the reply program only.
    let callers_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let get = |k: &str| {
        callers_env
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.to_str().map(str::to_string))
    };
    let mode = Mode::from_env(get);
    let caller = Caller::from_env(get);
    if elevated {
        privs::clean_environment();
    }
    if args.len() < 2 || !have_request {
        eprintln!(
            "usage: checkpassword REPLY-PROGRAM [ARGS...], with the request on descriptor 3 \
             (qmail checkpassword interface; see Dovecot's passdb checkpassword)"
        );
        return exit::MISUSE;
    }
    let cfg = match Config::load(Paths::from_env(!elevated), None) {
        Ok(c) => c,
        Err(f) => {
            eprintln!("checkpassword: {f}");
            return exit::TEMPORARY;
        }
    };
    log::init("checkpassword", &cfg.log, &cfg.hostname);
    if elevated && !may_call(&cfg) {
        let uid = nix::unistd::getuid();
        log::err(
            None,
            &format!("uid {uid} may not run checkpassword (checkpassword_callers)"),
        );
        eprintln!("checkpassword: uid {uid} may not run this program (checkpassword_callers)");
        return exit::MISUSE;
    }
    let request = {
        // SAFETY: descriptor 3 is open (checked above) and ours to read
        // and close.
        let fd = unsafe { std::fs::File::from_raw_fd(REQUEST_FD) };
        let mut bytes = Vec::new();
        match fd
            .take(checkpassword::MAX_REQUEST as u64 + 1)
            .read_to_end(&mut bytes)
        {
            Ok(_) => checkpassword::parse(&bytes),
            Err(_) => None,
        }
    };
    let Some(request) = request else {
        log::err(
            None,
            "not a checkpassword request on descriptor 3 (LOGIN NUL PASSWORD NUL TIMESTAMP NUL, at most 512 bytes)",
        );
        return exit::MISUSE;
    };
    let (settings, pace) = match (
        Settings::from_config(&cfg),
        crate::pop3::settings::Settings::from_config(&cfg),
    ) {
        (Ok(s), Ok(p)) => (s, p.pace()),
        (Err(f), _) | (_, Err(f)) => {
            log::err(None, &format!("cannot read the settings: {f}"));
            return exit::TEMPORARY;
        }
    };
    let vars = match checkpassword::answer(&cfg, &settings, pace, &request, mode, &caller) {
        Answer::Exit(code) => return code,
        Answer::Reply(vars) => vars,
    };
    drop(request);
    if let Err(e) = privs::drop_privileges_permanently() {
        log::err(
            None,
            &format!("cannot give up root before the reply program: {e}"),
        );
        return exit::TEMPORARY;
    }
    let err = std::process::Command::new(&args[1])
        .args(&args[2..])
        .env_clear()
        .envs(callers_env)
        .envs(vars)
        .exec();
    log::err(
        None,
        &format!("cannot run {}: {err}", args[1].to_string_lossy()),
    );
    exit::TEMPORARY
}

/// The real uid is root or one of `checkpassword_callers`.
fn may_call(cfg: &Config) -> bool {
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return true;
    }
    let Ok(Some(user)) = nix::unistd::User::from_uid(uid) else {
        return false;
    };
    cfg.get("checkpassword_callers")
        .unwrap_or("dovecot")
        .split([' ', ',', '\t'])
        .any(|name| name == user.name)
}
