//! Privilege handling shared by the set-id and root-started programs.
//!
//! * `sendmail` is set-group-id `mqueue`: [`secure_start`] runs first in
//!   `main`, fixes the standard descriptors, the umask and the environment,
//!   and, when the caller asks to redirect files (`-C`, `-oQ`,
//!   `MAILROOM_ROOT`), gives the group privilege up for good before anything
//!   is read — sendmail's rule for `-C`.
//! * Programs started as root switch to a mailbox owner with
//!   [`become_user`], which checks that the switch really happened.

use std::ffi::CString;

/// Running with a real id different from the effective one (set-id).
pub fn is_elevated() -> bool {
    nix::unistd::getuid() != nix::unistd::geteuid()
        || nix::unistd::getgid() != nix::unistd::getegid()
}

/// What [`secure_start`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartState {
    /// The process was set-id when it started.
    pub was_elevated: bool,
    /// The set-id privilege was given up because the caller redirected
    /// files.
    pub dropped: bool,
}

/// Make a set-id start safe: descriptors 0–2 open, umask 027, and — when
/// elevated — a clean environment.  If `caller_redirects` (the caller
/// named a configuration file, queue directory or root), the privilege is
/// dropped permanently first.
pub fn secure_start(caller_redirects: bool) -> Result<StartState, String> {
    ensure_std_fds();
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o027) };
    let was_elevated = is_elevated();
    let mut dropped = false;
    if was_elevated {
        if caller_redirects {
            drop_privileges_permanently()?;
            dropped = true;
        } else {
            clean_environment();
        }
    }
    Ok(StartState {
        was_elevated,
        dropped,
    })
}

/// Give up set-uid and set-gid privileges for good (real, effective and
/// saved ids all become the real ids), and verify it.
pub fn drop_privileges_permanently() -> Result<(), String> {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setresgid: {}", e.desc()))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setresuid: {}", e.desc()))?;
    if is_elevated() {
        return Err("privileges still held after dropping them".to_string());
    }
    Ok(())
}

/// Replace the environment with a minimal, fixed one.  A set-id program
/// must not let `PATH`, `LD_*`, `TZ` tricks, `MAILROOM_*` or locale
/// variables from its caller steer it or its children.
pub fn clean_environment() {
    let vars: Vec<std::ffi::OsString> = std::env::vars_os().map(|(k, _)| k).collect();
    for k in vars {
        // SAFETY: single-threaded at this point of start-up.
        unsafe { std::env::remove_var(k) };
    }
    // SAFETY: as above.
    unsafe {
        std::env::set_var("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    }
}

/// Open `/dev/null` on any of descriptors 0, 1, 2 that is closed, so a file
/// opened later can never become someone's stdout.
pub fn ensure_std_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD on a small integer is harmless.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            let flags = if fd == 0 {
                libc::O_RDONLY
            } else {
                libc::O_WRONLY
            };
            // SAFETY: path is a valid C string literal.
            let n = unsafe { libc::open(c"/dev/null".as_ptr(), flags) };
            if n >= 0 && n != fd {
                // SAFETY: both descriptors are valid.
                unsafe {
                    libc::dup2(n, fd);
                    libc::close(n);
                }
            }
        }
    }
}

/// Switch a root process to `uid`/`gid` with `name`'s supplementary groups
/// (initgroups), permanently, and verify.  A process that is not root may
/// only "switch" to itself.
pub fn become_user(name: &str, uid: u32, gid: u32) -> Result<(), String> {
    let cur = nix::unistd::geteuid().as_raw();
    if cur != 0 {
        if cur == uid {
            return Ok(());
        }
        return Err(format!("cannot switch to uid {uid}: not running as root"));
    }
    if uid == 0 {
        return Err("refusing to run as root".to_string());
    }
    let cname = CString::new(name).map_err(|_| "bad user name".to_string())?;
    nix::unistd::initgroups(&cname, nix::unistd::Gid::from_raw(gid))
        .map_err(|e| format!("initgroups({name}): {}", e.desc()))?;
    let g = nix::unistd::Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).map_err(|e| format!("setresgid({gid}): {}", e.desc()))?;
    let u = nix::unistd::Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(|e| format!("setresuid({uid}): {}", e.desc()))?;
    // Verify: no way back to root, ids as asked.
    if nix::unistd::geteuid().as_raw() != uid
        || nix::unistd::getuid().as_raw() != uid
        || nix::unistd::getegid().as_raw() != gid
        || nix::unistd::setresuid(
            nix::unistd::Uid::from_raw(0),
            nix::unistd::Uid::from_raw(0),
            nix::unistd::Uid::from_raw(0),
        )
        .is_ok()
    {
        return Err(format!("switch to uid {uid} did not take effect"));
    }
    Ok(())
}
