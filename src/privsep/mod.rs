//! Privilege separation for the network servers, pop3d and the SMTP
//! server (`sendmail -bs` on a socket), the way popa3d and OpenSSH do it:
//! what the client sends is parsed by a process that can do almost
//! nothing; root keeps a small process that answers narrow, framed
//! requests.
//!
//! ```text
//!  inetd ──▶ pop3d or sendmail -bs (root): configuration, TLS key; the SMTP
//!              │ server also the connection slot, the access table and the
//!              │ client's POP-before-SMTP stamp (state::stamps)
//!              │
//!              │ split(): socket pair, fork
//!              ├─────────────────────────────────▶ network process
//!              │                                   pop3d: pop3_user, no groups,
//!              ▼                                     shut in /var/lib/mailroom/empty
//!            authority (root)  ◀── requests ────   sendmail -bs: smtp_user + group
//!              │ answers login requests              mqueue (writes the queue,
//!              │ (protocol), never the client's      starts qrun)
//!              │ words                             TLS, the whole dialogue,
//!              ▼                                   USER/PASS/APOP/AUTH
//!            checker (root, one per attempt): login::check reads
//!              /etc/shadow or /etc/mail/passwd, runs crypt(), answers, exits
//!
//!  then:  pop3d: after a login the authority records the stamps, becomes
//!           the mailbox's owner (+ group mail for mbox dotlocks), opens
//!           the maildrop and serves the session — on the socket, or
//!           through the network process when it holds TLS
//!         sendmail -bs: the authority answers AUTH until the network
//!           process ends; the session stays in the network process
//! ```
//!
//! * [`split`] forks: the child becomes the [`NetworkUser`] — verified:
//!   no way back to root, no other groups — and runs the network side;
//!   the parent is the authority.  What only the network side needs (a
//!   connection slot, the tables) is dropped in the authority at once.
//! * [`protocol`]: the requests and answers, in [`frame`]s; the
//!   authority trusts nothing in them beyond their syntax.
//! * [`answer_logins`]: the authority's loop — every login through the
//!   one door ([`crate::login::Door`]: the check, the failure's log line,
//!   the pause).
//!
//! A server not started as root has nothing to separate: pop3d still
//! splits but stays who it is; the SMTP server (also under a private
//! root, as in tests) keeps one process and checks AUTH in it.

pub mod authority;
pub mod frame;
pub mod protocol;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;

pub use authority::{Logins, answer_logins};

use crate::exit::ExitCode;
use crate::log;

/// The group the network process keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The user's own primary group, and no other (pop3d).
    Own,
    /// The queue's group `mqueue`, and no other (the SMTP server, which
    /// writes the queue and starts qrun as sendmail does): the process's
    /// effective group when it is not root (sendmail is set-group-id
    /// `mqueue`), else the group of that name.
    Queue,
}

/// Who the network process becomes.
#[derive(Debug, Clone)]
pub struct NetworkUser {
    /// The setting that names the user (`pop3_user`, `smtp_user`), for
    /// messages.
    pub key: &'static str,
    /// The user's name.
    pub name: String,
    pub group: Group,
    /// A directory to shut the process in (`chroot`), when it exists.
    pub shut_in: Option<PathBuf>,
}

impl NetworkUser {
    /// Give up root for this user, for good, and check that it took.  A
    /// process that is not root has nothing to give up.  Prepares the log
    /// first: a shut-in process cannot open it.
    pub fn become_it(&self) -> Result<(), String> {
        log::prepare_for_chroot();
        if !nix::unistd::geteuid().is_root() {
            return Ok(());
        }
        let user =
            crate::users::by_name(&self.name).ok_or_else(|| format!("no user {}", self.name))?;
        if user.uid == 0 {
            return Err(format!("{} must not be root", self.key));
        }
        let gid = match self.group {
            Group::Own => user.gid,
            Group::Queue => match nix::unistd::getegid().as_raw() {
                0 => crate::users::group_id("mqueue")
                    .filter(|&g| g != 0)
                    .ok_or("no group mqueue (run 'make install')")?,
                g => g,
            },
        };
        if let Some(dir) = &self.shut_in
            && dir.is_dir()
        {
            nix::unistd::chroot(dir)
                .map_err(|e| format!("chroot {}: {}", dir.display(), e.desc()))?;
            nix::unistd::chdir("/").map_err(|e| format!("chdir: {}", e.desc()))?;
        }
        crate::privs::set_ids(user.uid, gid, &[gid])?;
        verify_dropped(user.uid, gid)
    }
}

/// That this process is `uid` and `gid` — real, effective and saved —
/// with no other group, and not root.
pub fn verify_dropped(uid: u32, gid: u32) -> Result<(), String> {
    let u = nix::unistd::getresuid().map_err(|e| format!("getresuid: {}", e.desc()))?;
    let g = nix::unistd::getresgid().map_err(|e| format!("getresgid: {}", e.desc()))?;
    let uids = [u.real, u.effective, u.saved].map(|u| u.as_raw());
    let gids = [g.real, g.effective, g.saved].map(|g| g.as_raw());
    if uid == 0 || uids.contains(&0) {
        return Err("still root".into());
    }
    if uids != [uid; 3] || gids != [gid; 3] {
        return Err(format!(
            "ids are uid {uids:?} gid {gids:?}, not uid {uid} gid {gid}"
        ));
    }
    let groups = nix::unistd::getgroups().map_err(|e| format!("getgroups: {}", e.desc()))?;
    if let Some(other) = groups.iter().map(|g| g.as_raw()).find(|&g| g != gid) {
        return Err(format!("still in group {other}"));
    }
    Ok(())
}

/// Why [`split`] could not split.
#[derive(Debug)]
pub enum SplitError {
    Socketpair(std::io::Error),
    Fork(nix::errno::Errno),
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitError::Socketpair(e) => write!(f, "socketpair: {e}"),
            SplitError::Fork(e) => write!(f, "fork: {}", e.desc()),
        }
    }
}

/// Fork into the network process and the authority, joined by a socket
/// pair.  The child becomes `user` (when that fails: logged as `cannot
/// drop privileges: ...`, then `cannot_drop` — a server may tell its
/// client — and exit), runs `network`, and exits.  This process drops
/// `network` unrun — whatever it alone holds is released here — runs
/// `authority`, waits for the child, and returns what `authority`
/// returned.  Only for a process with one thread.
pub fn split<T>(
    user: &NetworkUser,
    network: impl FnOnce(UnixStream),
    cannot_drop: impl FnOnce(),
    authority: impl FnOnce(UnixStream) -> T,
) -> Result<T, SplitError> {
    let (authority_end, network_end) = UnixStream::pair().map_err(SplitError::Socketpair)?;
    // SAFETY: single-threaded (the caller's promise); the child runs the
    // network side and leaves with _exit, never returning into the
    // caller's code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(SplitError::Fork(e)),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(authority_end);
            drop(authority);
            if let Err(e) = user.become_it() {
                log::err(None, &format!("cannot drop privileges: {e}"));
                cannot_drop();
                // SAFETY: leave the child at once.
                unsafe { libc::_exit(ExitCode::OsErr.code()) };
            }
            network(network_end);
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(network_end);
            drop(network);
            let out = authority(authority_end);
            let _ = nix::sys::wait::waitpid(child, None);
            Ok(out)
        }
    }
}

/// For an authority that never serves the client itself (the SMTP
/// server's): close its copies of the client's socket, descriptors 0 and
/// 1, so that the connection ends when the network process ends.
pub fn let_go_of_client() {
    // SAFETY: closing our copies of the socket; the child has its own.
    unsafe {
        libc::close(0);
        libc::close(1);
    }
    crate::privs::ensure_std_fds();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> (u32, u32) {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    }

    #[test]
    fn the_drop_is_verified() {
        let (uid, gid) = me();
        // Root is never a dropped process, and no other ids pass.
        assert_eq!(verify_dropped(0, 0), Err("still root".to_string()));
        assert!(verify_dropped(uid + 1, gid).is_err());
        if uid != 0 {
            // An ordinary user with no other groups is what a drop leaves.
            let others = nix::unistd::getgroups()
                .unwrap()
                .iter()
                .any(|g| g.as_raw() != gid);
            assert_eq!(verify_dropped(uid, gid).is_ok(), !others);
        }
    }

    #[test]
    fn the_network_user_is_shut_in_without_root() {
        if !nix::unistd::geteuid().is_root() {
            // Not root: nothing to give up, and nothing changes.
            let user = NetworkUser {
                key: "pop3_user",
                name: "nobody".into(),
                group: Group::Own,
                shut_in: None,
            };
            assert_eq!(user.become_it(), Ok(()));
            return;
        }
        let Some(nobody) = crate::users::by_name("nobody") else {
            eprintln!("no user nobody: skipped");
            return;
        };
        let empty = std::env::temp_dir().join(format!("mr-privsep-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(empty.join("inside"), "").unwrap();
        let user = NetworkUser {
            key: "pop3_user",
            name: "nobody".into(),
            group: Group::Own,
            shut_in: Some(empty.clone()),
        };
        let report = crate::privs::in_child(|| {
            let r = user.become_it();
            let ids = nix::unistd::getresuid().unwrap();
            format!(
                "{r:?} {} {} {} {}",
                ids.real,
                ids.saved,
                std::path::Path::new("/inside").exists(),
                nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_ok()
            )
            .into_bytes()
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&empty);
        assert_eq!(
            String::from_utf8_lossy(&report),
            format!("Ok(()) {0} {0} true false", nobody.uid)
        );
        // Root itself may not be the network user.
        let root = NetworkUser {
            key: "smtp_user",
            name: "root".into(),
            group: Group::Queue,
            shut_in: None,
        };
        let refused = crate::privs::in_child(|| format!("{:?}", root.become_it()).into_bytes());
        assert_eq!(
            String::from_utf8_lossy(&refused.unwrap()),
            "Err(\"smtp_user must not be root\")"
        );
    }
}
