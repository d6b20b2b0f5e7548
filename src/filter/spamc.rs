//! SpamAssassin through `spamc`: when `spamc = /usr/bin/spamc` is set,
//! every mailbox delivery first sends the message through
//! `spamc -x -u LOGIN`, run as the mailbox owner (never as root), and
//! files what comes back: spamd's `X-Spam-Status: ... score=N` then feeds
//! the spam rule and `spam-score` tests.
//!
//! `-x` makes spamc fail instead of quietly passing the message on when
//! spamd cannot be reached, so the failure is seen and logged; the
//! original message is then delivered unscanned — a scanner being down
//! never loses or delays mail.  `spamc_timeout` bounds the whole run (the
//! process group is killed after it).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::mailbox::{self, Message};
use crate::users::User;

/// Scan `msg` with `spamc` as `owner` (switching to it when `switch`);
/// the scanned message, or why there is none.
pub fn scan(
    spamc: &Path,
    timeout: Duration,
    switch: bool,
    owner: &User,
    login: &str,
    msg: &Message,
) -> Result<Message, String> {
    let root = switch && owner.uid != nix::unistd::geteuid().as_raw();
    let groups = if root {
        crate::privs::groups_for(&owner.name, owner.gid, &[])?
    } else {
        Vec::new()
    };
    let mut cmd = Command::new(spamc);
    cmd.arg("-x")
        .arg("-u")
        .arg(login)
        .arg("-t")
        .arg(timeout.as_secs().max(1).to_string())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    crate::privs::start_as(&mut cmd, root.then_some((owner.uid, owner.gid, groups)));
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot start {}: {}",
            spamc.display(),
            crate::exit::io_reason(&e)
        )
    })?;
    let pid = child.id() as i32;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let deadline = Instant::now() + timeout;
    // Feed and read from threads, so that a stuck spamc still meets the
    // deadline: killing it ends both.
    let (scanned, status) = std::thread::scope(|scope| {
        if let Some(mut w) = stdin {
            scope.spawn(move || {
                let _ = mailbox::write_message(
                    &mut w,
                    b"",
                    msg,
                    mailbox::Format {
                        quote_from: false,
                        strip_private: false,
                    },
                );
            });
        }
        let reader = scope.spawn(move || match stdout {
            Some(r) => Message::from_reader(r.take(msg.len() * 2 + (1 << 20))),
            None => Message::from_bytes(b""),
        });
        let status = wait(&mut child, pid, deadline);
        (reader.join(), status)
    });
    let status = status?;
    if !status.success() {
        return Err(match status.code() {
            Some(c) => format!("{} exited with {c}", spamc.display()),
            None => format!("{} was killed", spamc.display()),
        });
    }
    let scanned = scanned
        .map_err(|_| "reading spamc's output failed".to_string())?
        .map_err(|e| format!("reading spamc's output: {}", crate::exit::io_reason(&e)))?;
    // A well-behaved spamc returns at least the message it was given.
    if scanned.len() < msg.len() / 2 || scanned.is_empty() {
        return Err(format!(
            "{} returned {} bytes for a {}-byte message",
            spamc.display(),
            scanned.len(),
            msg.len()
        ));
    }
    Ok(scanned)
}

/// Wait until `deadline`, then kill the process group.
fn wait(
    child: &mut std::process::Child,
    pid: i32,
    deadline: Instant,
) -> Result<std::process::ExitStatus, String> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Ok(s),
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: signalling spamc's own process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                let _ = child.wait();
                return Err("spamc timed out".to_string());
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(format!("waiting for spamc: {}", crate::exit::io_reason(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> User {
        crate::users::by_uid(nix::unistd::getuid().as_raw()).unwrap_or(User {
            name: "me".into(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            gecos: String::new(),
            home: "/".into(),
            shell: "/bin/sh".into(),
        })
    }

    fn script(name: &str, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = std::env::temp_dir().join(format!("mr-spamc-{}-{name}", std::process::id()));
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn scans_fails_and_times_out() {
        let msg = Message::from_bytes(b"Subject: hi\n\nbody\n").unwrap();
        let run = |p: &Path, t: u64| scan(p, Duration::from_secs(t), false, &me(), "bob", &msg);
        // Arguments reach spamc; its output is the new message.
        let ok = script("ok", "echo \"X-Spam-Status: No, score=1.5 args=$*\"; cat");
        let m = run(&ok, 5).unwrap();
        let h = crate::message::Header::parse(&m.header_bytes().unwrap());
        assert_eq!(crate::filter::spam_score(&h), Some(1.5));
        assert!(
            h.get("X-Spam-Status")
                .unwrap()
                .value()
                .contains("args=-x -u bob -t 5")
        );
        assert!(h.has("Subject"));
        let fail = script("fail", "cat >/dev/null; exit 74");
        assert!(run(&fail, 5).unwrap_err().ends_with("exited with 74"));
        let empty = script("empty", "cat >/dev/null");
        assert!(run(&empty, 5).unwrap_err().contains("returned 0 bytes"));
        let slow = script("slow", "sleep 30");
        let t = Instant::now();
        assert_eq!(run(&slow, 1).unwrap_err(), "spamc timed out");
        assert!(t.elapsed() < Duration::from_secs(10));
        let missing = std::path::PathBuf::from("/nonexistent/spamc");
        assert!(
            run(&missing, 1)
                .unwrap_err()
                .starts_with("cannot start /nonexistent/spamc")
        );
        for p in [ok, fail, empty, slow] {
            let _ = std::fs::remove_file(p);
        }
    }
}
