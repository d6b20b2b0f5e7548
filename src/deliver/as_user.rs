//! Running a delivery as the target's owner: in a child that switches to
//! the owner's ids (with their groups, and `mail` for the spool's
//! dotlocks) before it touches anything of theirs, and reports back over a
//! pipe.  Only when the runner is root on the real system; otherwise the
//! work runs in-process, as whoever we are.
//!
//! ## The result pipe
//!
//! The child writes what it logged, one `L\tLEVEL\tTEXT` line each (it
//! must not call syslog itself: see [`as_user`]), then one result line:
//! `OK`, or `T|P \t Q|- \t DSN \t TEXT` (temporary or permanent, over
//! quota or not, the enhanced status, the text).  A child that dies
//! without a result line is a temporary failure, "delivery process died".

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};

use crate::config::Config;
use crate::mailbox::Failure;

/// Does this process switch to each target's user?  Only when it runs as
/// root on the real system; under a private root (tests, `make demo`) or
/// as another user it delivers as itself.
pub fn switches_users(cfg: &Config) -> bool {
    nix::unistd::geteuid().is_root() && cfg.paths.is_system()
}

/// Run `work` as the user (name, uid, gid) with `extra` groups when
/// `switch` (and the user is not who we already are): in this thread with
/// the owner's file identity ([`crate::privs::FilesAs`]), or, if that
/// cannot be had, in a child process that switches to them; directly
/// otherwise.  `work` is told whether it runs in this process (and may
/// share the mailbox with the process's other threads: [`mbox::turn`]).
/// For a child, this process's turn at `turn_for` is held meanwhile.
/// `keep` are the only open files the child keeps (see
/// [`Request::child_keeps`]).
///
/// The child is forked from a threaded runner: another thread may have
/// held a libc lock at the fork (the time zone's, the user database's,
/// syslog's), which the child would wait on forever.  So `work` calls no
/// such function: the `From ` line's local time and the user's groups are
/// worked out before the fork.
pub(super) fn as_user(
    keep: &[RawFd],
    switch: bool,
    (name, uid, gid): (&str, u32, u32),
    extra: &[u32],
    turn_for: Option<&std::path::Path>,
    work: impl FnOnce(bool) -> Result<(), Failure>,
) -> Result<(), Failure> {
    if !switch || uid == nix::unistd::geteuid().as_raw() {
        return work(true);
    }
    let groups = crate::privs::groups_for(name, gid, extra)
        .map_err(|e| Failure::temp("4.3.0", format!("cannot find the groups of {name}: {e}")))?;
    // File work (every caller's): this thread takes the owner's file
    // identity for it, no child needed ([`crate::privs::FilesAs`]).  A
    // child as before if the thread cannot.
    if let Ok(identity) = crate::privs::FilesAs::become_user(uid, gid, &groups) {
        crate::log::hold_in_this_thread(true);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(true)));
        drop(identity);
        crate::log::hold_in_this_thread(false);
        return result.unwrap_or_else(|_| Err(Failure::temp("4.3.0", "delivery failed")));
    }
    // A forked child cannot take the in-process turn; hold it here.
    let _turn = turn_for.and_then(crate::mailbox::mbox::turn);
    let (rd, wr) =
        nix::unistd::pipe().map_err(|e| Failure::temp("4.3.0", format!("pipe: {}", e.desc())))?;
    // SAFETY: the child switches ids, does the delivery and _exits; it
    // never returns into the caller's code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(Failure::temp("4.3.0", format!("fork: {}", e.desc()))),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(rd);
            // A copy of the runner's threads' descriptors would keep their
            // queue-file locks and pipe ends alive for as long as this
            // child lives; keep only the result pipe.  What it logs is
            // held and sent back with the result (another thread may have
            // held syslog's lock at the fork); the parent writes it.
            crate::privs::mark_forked_child();
            let mut kept = keep.to_vec();
            kept.push(wr.as_raw_fd());
            crate::privs::close_other_descriptors(&kept);
            let mut out = std::fs::File::from(wr);
            let result = match crate::privs::set_ids(uid, gid, &groups) {
                Ok(()) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(false)))
                    .unwrap_or_else(|_| Err(Failure::temp("4.3.0", "delivery process failed"))),
                Err(e) => Err(Failure::temp("4.3.0", format!("cannot become {name}: {e}"))),
            };
            // What it logged first, one `L` line each, then the result.
            let mut report = String::new();
            for (level, text) in crate::log::take_held() {
                report.push_str(&format!("L\t{}\t{text}\n", level.letter()));
            }
            let line = match result {
                Ok(()) => "OK\n".to_string(),
                Err(f) => format!(
                    "{}\t{}\t{}\t{}\n",
                    if f.temporary { "T" } else { "P" },
                    if f.over_quota { "Q" } else { "-" },
                    f.dsn,
                    f.text.replace(['\n', '\t'], " ")
                ),
            };
            report.push_str(&line);
            let _ = out.write_all(report.as_bytes());
            drop(out);
            // SAFETY: leave the child without unwinding into the parent's state.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(wr);
            let mut s = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut s);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut line = "";
            for l in s.lines() {
                match l.strip_prefix("L\t").and_then(|l| l.split_once('\t')) {
                    Some((level, text)) => {
                        let level = crate::log::Level::from_letter(level);
                        crate::log::log(level.unwrap_or(crate::log::Level::Notice), None, text);
                    }
                    None => line = l,
                }
            }
            if line == "OK" {
                return Ok(());
            }
            let parts: Vec<&str> = line.splitn(4, '\t').collect();
            if parts.len() == 4 {
                return Err(Failure {
                    temporary: parts[0] == "T",
                    over_quota: parts[1] == "Q",
                    dsn: parts[2].to_string(),
                    text: parts[3].to_string(),
                });
            }
            Err(Failure::temp("4.3.0", "delivery process died"))
        }
    }
}

pub(super) fn mail_gid() -> Vec<u32> {
    crate::users::group_id("mail").into_iter().collect()
}
