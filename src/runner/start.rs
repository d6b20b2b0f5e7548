//! Starting a queue run: the helper program `qrun`, found next to the
//! installed programs, started for a message just queued.
//!
//! `sendmail` and the SMTP server hand each new job to a run of its own
//! (`qrun -qI<id>`), detached so that the caller — a PHP request, a cron
//! job, an SMTP client — never waits for delivery; with `-odi` the caller
//! waits.  Without an installed `qrun` the job simply waits for the next
//! periodic run.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::config::DeliveryMode;
use crate::exit::io_reason;
use crate::log;
use crate::queue::QueueId;

/// The directory of the helper programs: `PREFIX/libexec/mailroom` next to
/// `PREFIX/sbin/sendmail`, or — for an uninstalled build, where all
/// programs sit in one directory — the directory of this program.
pub fn libexec_dir() -> Option<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let dir = exe.parent()?;
    let installed = dir.parent()?.join("libexec/mailroom");
    if installed.is_dir() {
        Some(installed)
    } else {
        Some(dir.to_path_buf())
    }
}

/// The queue runner program, if installed.
pub fn qrun_program() -> Option<PathBuf> {
    libexec_dir().map(|d| d.join("qrun")).filter(|p| p.exists())
}

/// Hand a freshly queued message to the queue runner: detached
/// (background), waited for (interactive), or not at all (queue only).  If
/// no runner is installed the message simply waits for the next queue run.
pub fn start_delivery(id: &QueueId, mode: DeliveryMode) {
    if mode == DeliveryMode::QueueOnly {
        return;
    }
    let Some(qrun) = qrun_program() else {
        return;
    };
    let mut cmd = Command::new(&qrun);
    cmd.arg(format!("-qI{id}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match mode {
        DeliveryMode::Interactive => {
            let _ = cmd.status();
        }
        _ => {
            detach(&mut cmd);
            if let Err(e) = cmd.spawn() {
                log::warning(
                    Some(id.as_str()),
                    &format!(
                        "cannot start {}: {}; the next queue run delivers it",
                        qrun.display(),
                        io_reason(&e)
                    ),
                );
            }
        }
    }
}

/// Start one queue run over the whole queue, detached (what `sendmail -q`
/// does): after the admin released many jobs at once.
pub fn start_run() {
    let Some(qrun) = qrun_program() else {
        return;
    };
    let mut cmd = Command::new(&qrun);
    cmd.arg("-q")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    detach(&mut cmd);
    if let Err(e) = cmd.spawn() {
        log::warning(
            None,
            &format!(
                "cannot start {}: {}; the next queue run delivers the mail",
                qrun.display(),
                io_reason(&e)
            ),
        );
    }
}

/// Make `cmd`'s child a session of its own: a cron job or PHP request
/// finishing (and its session being killed) does not kill the delivery.
pub fn detach(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}
