//! Privilege handling shared by the set-id and root-started programs.
//!
//! * `sendmail` is set-group-id `mqueue`: [`secure_start`] runs first in
//!   `main`, fixes the standard descriptors, the umask and the environment,
//!   and, when a redirection is left to honour (root's `-C` or `-oQ`,
//!   `newaliases -oA` on the caller's own file), gives the group privilege
//!   up for good before anything is read — sendmail's rule for `-C`.  An
//!   ordinary user's `-C`, `-oQ` and `MAILROOM_ROOT` never get this far:
//!   `sendmail` ignores them (see `cli::sendmail`).
//! * Programs started as root switch to a mailbox owner with
//!   [`become_user`], which checks that the switch really happened.

mod files_as;
pub use files_as::FilesAs;

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

/// A set-uid-root program started by someone else: make every id root
/// (real, effective, saved), so that programs it starts and the files it
/// writes are root's, not its caller's.  Nothing happens unless the
/// effective uid is root.
pub fn become_fully_root() {
    if nix::unistd::geteuid().is_root() {
        let root_u = nix::unistd::Uid::from_raw(0);
        let root_g = nix::unistd::Gid::from_raw(0);
        let _ = nix::unistd::setresgid(root_g, root_g, root_g);
        let _ = nix::unistd::setresuid(root_u, root_u, root_u);
    }
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

static FORKED_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Record that this process is a child forked (without exec) from a
/// threaded one: locks other threads held at the fork stay held forever
/// here, so in-process coordination (log, mailbox turns) is bypassed.
pub fn mark_forked_child() {
    FORKED_CHILD.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// See [`mark_forked_child`].
pub fn in_forked_child() -> bool {
    FORKED_CHILD.load(std::sync::atomic::Ordering::Relaxed)
}

/// Close every descriptor above 2 except those in `keep` (in a child
/// forked from a threaded process, whose other threads' files it must not
/// hold open).
pub fn close_other_descriptors(keep: &[i32]) {
    let close_range = |first: i32, last: u32| {
        // SAFETY: close_range(2) only closes descriptors of this process.
        let r = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last, 0u32) };
        if r != 0 {
            // Kernels before 5.9: close them one by one.
            // SAFETY: sysconf is always safe to call.
            let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(1024, 65536) as u32;
            for fd in first as u32..=last.min(max) {
                // SAFETY: closing a descriptor we may not own is harmless here.
                unsafe { libc::close(fd as i32) };
            }
        }
    };
    let mut keep: Vec<i32> = keep.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    let mut next = 3;
    for fd in keep {
        if fd > next {
            close_range(next, (fd - 1) as u32);
        }
        next = next.max(fd + 1);
    }
    close_range(next, u32::MAX);
}

/// Switch a root process to `uid`/`gid` with `name`'s supplementary groups
/// (plus `extra_groups`), permanently, and verify.  A process that is not
/// root may only "switch" to itself, and stays as it is.
pub fn become_user(name: &str, uid: u32, gid: u32, extra_groups: &[u32]) -> Result<(), String> {
    let cur = nix::unistd::geteuid().as_raw();
    if cur != 0 {
        return Ok(());
    }
    if uid == 0 {
        return Err("refusing to run as root".to_string());
    }
    let groups = groups_for(name, gid, extra_groups)?;
    set_ids(uid, gid, &groups)
}

/// The group list for `name` (as initgroups would make it) plus extras.
pub fn groups_for(name: &str, gid: u32, extra_groups: &[u32]) -> Result<Vec<u32>, String> {
    let cname = CString::new(name).map_err(|_| "bad user name".to_string())?;
    let mut groups: Vec<u32> = nix::unistd::getgrouplist(&cname, nix::unistd::Gid::from_raw(gid))
        .map(|v| v.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|_| vec![gid]);
    for g in extra_groups {
        if !groups.contains(g) {
            groups.push(*g);
        }
    }
    Ok(groups)
}

/// Make `cmd` start in a process group of its own (so a timeout can kill
/// everything it starts) and, when `ids` is given, as that uid and gid
/// with those groups — set between fork and exec, so nothing of the
/// program's runs with ours.
pub fn start_as(cmd: &mut std::process::Command, ids: Option<(u32, u32, Vec<u32>)>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only system calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setpgid(0, 0);
            if let Some((uid, gid, groups)) = &ids {
                set_ids(*uid, *gid, groups).map_err(std::io::Error::other)?;
            }
            Ok(())
        });
    }
}

/// setgroups, setresgid, setresuid, then verify there is no way back.
/// Only system calls: safe between fork and exec.
pub fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> Result<(), String> {
    let gs: Vec<nix::unistd::Gid> = groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&gs).map_err(|e| format!("setgroups: {}", e.desc()))?;
    let g = nix::unistd::Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).map_err(|e| format!("setresgid({gid}): {}", e.desc()))?;
    let u = nix::unistd::Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(|e| format!("setresuid({uid}): {}", e.desc()))?;
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

/// Unmap this process's pages of program code (its own and its
/// libraries'): start-up, configuration and login code is not needed by a
/// long session, and the pages the session does use come back on first
/// use, from the page cache.  Only read-only, executable file mappings are
/// touched, so nothing is lost.  Keeps a session's resident size to what
/// it really uses.
pub fn shed_code_pages() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(3).unwrap_or("");
        if perms != "r-xp" || !path.starts_with('/') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        // SAFETY: a private, read-only file mapping: MADV_DONTNEED only
        // drops our page-table entries; the next access maps the same
        // file page again.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
    }
}

/// Run `work` in a short-lived child process and return what it returns:
/// what the child saw (a password hash, a whole account file) dies with
/// it, and only the answer reaches this process.  Only for a process
/// with one thread.
pub fn in_child(work: impl FnOnce() -> Vec<u8>) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let (rd, wr) = nix::unistd::pipe().map_err(std::io::Error::from)?;
    // SAFETY: the caller is single-threaded; the child runs `work` and
    // leaves with _exit, never returning into the caller's code.
    match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
        nix::unistd::ForkResult::Child => {
            drop(rd);
            close_inherited(std::os::fd::AsRawFd::as_raw_fd(&wr));
            let answer =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_default();
            let mut out = std::fs::File::from(wr);
            let code = if out.write_all(&answer).is_ok() { 0 } else { 1 };
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            let mut answer = Vec::new();
            let read = std::fs::File::from(rd).read_to_end(&mut answer);
            let _ = nix::sys::wait::waitpid(child, None);
            read.map(|_| answer)
        }
    }
}

/// In a fresh child: close every descriptor but 0, 1, 2 and `keep`.  What
/// the child runs (often as another user) never sees the parent's open
/// files, and holds none of their locks: a parent that closes a locked
/// file releases the lock at once, not when the child ends.
fn close_inherited(keep: i32) {
    // SAFETY: closing descriptors in a child that uses none but `keep`.
    unsafe {
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
    }
}

/// Read a file with the privileges of `uid`/`gid`: in a child process that
/// becomes that user when this one is root (so a user's `.forward` or
/// `:include:` can never make root read `/etc/shadow`), directly otherwise.
/// Returns the contents and the file's metadata.  At most `limit` bytes.
pub fn read_file_as(
    path: &std::path::Path,
    uid: u32,
    gid: u32,
    limit: usize,
) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let open_and_read = || -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)?;
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let mut buf = Vec::new();
        f.take(limit as u64).read_to_end(&mut buf)?;
        Ok((buf, meta))
    };
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 || uid == 0 {
        return open_and_read();
    }
    // What root cannot find, the user cannot either: no child for the
    // common case of a file that is not there (most users have no
    // `.forward`).  Anything else, even an error, is left to the child.
    if let Err(e) = std::fs::symlink_metadata(path)
        && matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
    {
        return Err(e);
    }
    // Root reading for someone else: a child becomes them, reads, and
    // sends the bytes back; the metadata is then taken from the path
    // (O_NOFOLLOW) by the parent, which only trusts it together with what
    // the child could read.
    let (rd, wr) = nix::unistd::pipe().map_err(std::io::Error::from)?;
    // SAFETY: the child only calls async-signal-safe-enough functions
    // before _exit (set*id, open, read, write).
    match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let g = nix::unistd::Gid::from_raw(gid);
            let u = nix::unistd::Uid::from_raw(uid);
            let ok = nix::unistd::setgroups(&[g]).is_ok()
                && nix::unistd::setresgid(g, g, g).is_ok()
                && nix::unistd::setresuid(u, u, u).is_ok();
            let mut out = std::fs::File::from(wr);
            let code = if !ok {
                2
            } else {
                match open_and_read() {
                    Ok((buf, _)) => {
                        use std::io::Write;
                        if out.write_all(&buf).is_ok() { 0 } else { 3 }
                    }
                    Err(e) => 10 + e.raw_os_error().unwrap_or(0).min(200),
                }
            };
            // SAFETY: terminate the child without running destructors.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            let mut buf = Vec::new();
            let mut f = std::fs::File::from(rd);
            let _ = (&mut f).take(limit as u64).read_to_end(&mut buf);
            let status = nix::sys::wait::waitpid(child, None).map_err(std::io::Error::from)?;
            match status {
                nix::sys::wait::WaitStatus::Exited(_, 0) => {
                    let meta = std::fs::symlink_metadata(path)?;
                    Ok((buf, meta))
                }
                nix::sys::wait::WaitStatus::Exited(_, c) if c >= 10 => {
                    Err(std::io::Error::from_raw_os_error(c - 10))
                }
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "cannot read the file as its owner",
                )),
            }
        }
    }
}
