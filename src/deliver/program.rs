//! `|program` targets: the message on standard input, as the
//! controlling user, in a process group of its own that is killed after
//! `program_timeout`; exit 0 is delivered, 75 (EX_TEMPFAIL) deferred,
//! anything else failed with what the program said.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::as_user::switches_users;
use crate::config::Config;
use crate::mailbox::{self, Failure, Message};
use crate::resolve::Owner;

/// Wait for `child` until `deadline`; then kill its process group.
/// `None` when it had to be killed.
fn wait_until(
    child: &mut std::process::Child,
    pid: i32,
    deadline: Instant,
) -> Result<Option<std::process::ExitStatus>, Failure> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Ok(Some(s)),
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: signalling the program's own process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                let _ = child.wait();
                return Ok(None);
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(Failure::temp(
                    "4.3.0",
                    format!("waiting for the program: {}", crate::exit::io_reason(&e)),
                ));
            }
        }
    }
}

/// Most program output kept for the bounce.
const PROGRAM_OUTPUT: usize = 4096;

/// Read a pipe to its end in a thread, keeping the first bytes.
fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut r) = r {
            let mut buf = [0u8; 8192];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = PROGRAM_OUTPUT - kept.len().min(PROGRAM_OUTPUT);
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        kept
    })
}

/// Run `|command` as `owner` with the message on standard input.
pub(super) fn to_program(
    cfg: &Config,
    command: &str,
    owner: &Owner,
    sender: &str,
    recipient: &str,
    prepend: &[u8],
    msg: &Message,
) -> Result<(), Failure> {
    let root = switches_users(cfg) && owner.uid != nix::unistd::geteuid().as_raw();
    let groups = if root {
        crate::privs::groups_for(&owner.name, owner.gid, &[])
            .map_err(|e| Failure::temp("4.3.0", e))?
    } else {
        Vec::new()
    };
    let home = if Path::new(&owner.home).is_dir() {
        owner.home.clone()
    } else {
        "/".to_string()
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &owner.home)
        .env("USER", &owner.name)
        .env("LOGNAME", &owner.name)
        .env("SHELL", "/bin/sh")
        .env("SENDER", sender)
        .env("RECIPIENT", recipient)
        .current_dir(&home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::privs::start_as(&mut cmd, root.then_some((owner.uid, owner.gid, groups)));
    let mut child = cmd.spawn().map_err(|e| {
        Failure::temp(
            "4.3.0",
            format!("cannot start the program: {}", crate::exit::io_reason(&e)),
        )
    })?;
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_thread = drain(stdout.take());
    let err_thread = drain(stderr.take());
    // Feed the message from its own thread, so that a program that never
    // reads it still meets its timeout (it is killed; the write then fails
    // with EPIPE).  A program that stops reading early is not an error by
    // itself: its exit status decides.
    let deadline = Instant::now() + Duration::from_secs(cfg.program_timeout.max(1));
    let status = std::thread::scope(|scope| {
        if let Some(mut w) = stdin.take() {
            scope.spawn(move || {
                let _ = mailbox::write_message(
                    &mut w,
                    prepend,
                    msg,
                    mailbox::Format {
                        quote_from: false,
                        strip_private: false,
                    },
                );
            });
        }
        wait_until(&mut child, pid, deadline)
    })?;
    let mut output = out_thread.join().unwrap_or_default();
    output.extend(err_thread.join().unwrap_or_default());
    let said = String::from_utf8_lossy(&output)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect::<Vec<_>>()
        .join(" / ");
    let with_output = |text: String| {
        if said.is_empty() {
            text
        } else {
            format!("{text}: {said}")
        }
    };
    let Some(status) = status else {
        return Err(Failure::temp(
            "4.3.0",
            with_output(format!(
                "program timed out after {} seconds",
                cfg.program_timeout
            )),
        ));
    };
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        return Err(Failure::temp(
            "4.3.0",
            with_output(format!("program killed by signal {sig}")),
        ));
    }
    match status.code().unwrap_or(1) {
        0 | 99 => Ok(()),
        // Temporary by sysexits (EX_TEMPFAIL, EX_OSERR, EX_IOERR) and by
        // qmail's convention (111).
        75 => Err(Failure::temp(
            "4.3.0",
            with_output("program deferred (exit 75)".to_string()),
        )),
        71 | 74 | 111 => Err(Failure::temp(
            "4.3.0",
            with_output(format!(
                "program failed temporarily (exit {})",
                status.code().unwrap_or(0)
            )),
        )),
        code => {
            let text = match code {
                64 => "usage error",
                65 => "data format error",
                66 => "cannot open input",
                67 => "User unknown",
                68 => "Host unknown",
                69 => "Service unavailable",
                70 => "internal software error",
                72 => "critical OS file missing",
                73 => "can't create (user) output file",
                76 => "remote error in protocol",
                77 => "permission denied",
                78 => "configuration error",
                _ => "",
            };
            let dsn = match code {
                67 => "5.1.1",
                68 => "5.1.2",
                77 => "5.7.1",
                _ => "5.3.0",
            };
            let t = if text.is_empty() {
                format!("unknown mailer error {code}")
            } else {
                format!("{text} (exit {code})")
            };
            Err(Failure::perm(dsn, with_output(t)))
        }
    }
}
