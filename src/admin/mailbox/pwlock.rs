//! The system's lock on `/etc/passwd` and `/etc/shadow`, `lckpwdf(3)`:
//! held while a change edits them, so that useradd or passwd never write
//! them at the same time.

use std::io;

use crate::config::Config;
use crate::exit::{ExitCode, Failure, io_reason};

unsafe extern "C" {
    fn lckpwdf() -> libc::c_int;
    fn ulckpwdf() -> libc::c_int;
}

/// `lckpwdf()` held (on the real system only: a private root has its
/// own files and no business with the host's lock).
pub struct PwLock(bool);

impl PwLock {
    pub fn take(cfg: &Config) -> Result<PwLock, Failure> {
        if !cfg.paths.is_system() {
            return Ok(PwLock(false));
        }
        // SAFETY: plain libc call; waits at most 15 seconds.
        if unsafe { lckpwdf() } != 0 {
            let e = io::Error::last_os_error();
            let code = if e.kind() == io::ErrorKind::PermissionDenied {
                ExitCode::NoPerm
            } else {
                ExitCode::TempFail
            };
            return Err(Failure::new(
                code,
                format!(
                    "cannot lock /etc/passwd and /etc/shadow (lckpwdf): {}",
                    io_reason(&e)
                ),
            )
            .hint(if code == ExitCode::NoPerm {
                "run mailroom as root"
            } else {
                "another program (useradd, passwd) is changing them; try again"
            }));
        }
        Ok(PwLock(true))
    }
}

impl Drop for PwLock {
    fn drop(&mut self) {
        if self.0 {
            // SAFETY: plain libc call.
            unsafe { ulckpwdf() };
        }
    }
}
