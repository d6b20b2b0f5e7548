//! Starting a queue run: the helper program `qrun`, found next to the
//! installed programs, started for a message just queued.
//!
//! `sendmail` and the SMTP server announce each new job to the express
//! run ([`super::express`]), starting one (`qrun --express`, detached) when
//! none is active, so that the caller — a PHP request, a cron job, an SMTP
//! client — never waits for delivery; with `-odi` the caller waits for a
//! run of its own (`qrun -qI<id>`).  Without an installed `qrun` the job
//! simply waits for the next periodic run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::DeliveryMode;
use crate::exit::io_reason;
use crate::log;
use crate::queue::QueueId;

use super::express::{self, Announced};

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

/// Hand a freshly queued message (in the queue at `queue_dir`) to the
/// queue runner: the express run (background), a run of its own waited
/// for (interactive), or none (queue only).  If no runner is installed
/// the message simply waits for the next queue run.
pub fn start_delivery(queue_dir: &Path, id: &QueueId, mode: DeliveryMode) {
    if mode == DeliveryMode::QueueOnly {
        return;
    }
    let Some(qrun) = qrun_program() else {
        return;
    };
    let mut cmd = Command::new(&qrun);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if mode == DeliveryMode::Interactive {
        let _ = cmd.arg(format!("-qI{id}")).status();
        return;
    }
    match express::announce(queue_dir, id) {
        Announced::Taken => return,
        Announced::StartRun => cmd.arg("--express"),
        Announced::Unavailable => cmd.arg(format!("-qI{id}")),
    };
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
