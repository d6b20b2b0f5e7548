//! Exit codes and the one error type every command-line front end returns.
//!
//! Callers of `sendmail` (PHP's `mail()`, cron, mutt, monitoring scripts)
//! read nothing but the exit status, so the codes are an API.  They are the
//! BSD `sysexits.h` values, used exactly as sendmail 8 uses them:
//!
//! | code | name            | used for |
//! |------|-----------------|----------|
//! | 0    | `EX_OK`         | the message is durably queued (or the command did what was asked) |
//! | 64   | `EX_USAGE`      | a bad flag, no recipients, an address that does not parse |
//! | 65   | `EX_DATAERR`    | bad input data: a message over the size limit, a malformed table line |
//! | 66   | `EX_NOINPUT`    | an input file (`-C`, an aliases file) cannot be opened |
//! | 67   | `EX_NOUSER`     | "User unknown" |
//! | 68   | `EX_NOHOST`     | host unknown |
//! | 69   | `EX_UNAVAILABLE`| a mode this build does not provide |
//! | 70   | `EX_SOFTWARE`   | an internal error, or errors in the aliases file (`newaliases`) |
//! | 71   | `EX_OSERR`      | fork/exec failures |
//! | 72   | `EX_OSFILE`     | a system file (passwd entry, spool) is missing |
//! | 73   | `EX_CANTCREAT`  | an output file (queue file, map) cannot be created |
//! | 74   | `EX_IOERR`      | an I/O error while reading or writing |
//! | 75   | `EX_TEMPFAIL`   | try again later: disk full, queue locked, lock timeout |
//! | 76   | `EX_PROTOCOL`   | remote protocol error |
//! | 77   | `EX_NOPERM`     | permission denied |
//! | 78   | `EX_CONFIG`     | configuration error |
//!
//! Every user-facing message has the form
//! `PROGRAM: <what failed>: <why>; <what to do>` on one line: see
//! [`Failure`].

use std::fmt;
use std::io;

/// A sysexits.h exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    Ok = 0,
    Usage = 64,
    DataErr = 65,
    NoInput = 66,
    NoUser = 67,
    NoHost = 68,
    Unavailable = 69,
    Software = 70,
    OsErr = 71,
    OsFile = 72,
    CantCreat = 73,
    IoErr = 74,
    TempFail = 75,
    Protocol = 76,
    NoPerm = 77,
    Config = 78,
}

impl ExitCode {
    /// The numeric status handed to `exit(2)`.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The exit code for a failed operating-system call: temporary when a
    /// retry may succeed (disk full, interrupted, out of memory), otherwise
    /// the closest permanent class.
    pub fn for_io(err: &io::Error) -> ExitCode {
        match err.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EAGAIN) | Some(libc::EINTR)
            | Some(libc::ENOMEM) | Some(libc::ENFILE) | Some(libc::EMFILE) | Some(libc::EBUSY) => {
                ExitCode::TempFail
            }
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => ExitCode::NoPerm,
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => ExitCode::OsFile,
            Some(libc::EIO) => ExitCode::IoErr,
            _ => ExitCode::IoErr,
        }
    }
}

/// A failure that ends a command: the exit code plus the text after the
/// program name.  Build it with [`Failure::new`] and extend it with
/// [`Failure::hint`]; it prints as `what: why; hint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ExitCode,
    /// `<what failed>: <why>` — already without the program prefix.
    pub message: String,
    /// `<what to do>`, when there is something the user can do.
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// Attach the "what to do" part of the message.
    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// A failed system call on `path`: `what PATH: reason`, with the exit
    /// code derived from the error.
    pub fn io(what: &str, path: &std::path::Path, err: &io::Error) -> Failure {
        Failure::new(
            ExitCode::for_io(err),
            format!("{what} {}: {}", path.display(), io_reason(err)),
        )
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(ExitCode::Usage, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// The text of an I/O error the way C programs print it ("No such file or
/// directory"), without Rust's " (os error 2)" suffix.
pub fn io_reason(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(errno) => {
            // strerror_r via nix keeps this thread-safe.
            nix::errno::Errno::from_raw(errno).desc().to_string()
        }
        None => err.to_string(),
    }
}

/// Print `program: failure` on stderr and exit with its code.
pub fn die(program: &str, failure: &Failure) -> ! {
    eprintln!("{program}: {failure}");
    std::process::exit(failure.code.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_reason_has_no_rust_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_reason(&e), "No such file or directory");
    }

    #[test]
    fn disk_full_is_temporary() {
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(ExitCode::for_io(&e), ExitCode::TempFail);
        assert_eq!(ExitCode::for_io(&e).code(), 75);
    }

    #[test]
    fn failure_prints_what_why_and_hint() {
        let f = Failure::new(ExitCode::Usage, "no recipients: none given").hint("name one");
        assert_eq!(f.to_string(), "no recipients: none given; name one");
    }
}
