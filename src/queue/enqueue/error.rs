//! Why a message was not queued, and how a command line says so.

use std::io;

use crate::config::Config;
use crate::exit::{ExitCode, Failure, io_reason};
use crate::message::CollectError;

/// Why a message was not queued.
#[derive(Debug)]
pub enum Error {
    /// The queue's file system is below `min_free_space`: nothing written.
    NoSpace(Failure),
    /// The queue could not be written (create, write, `fsync`, rename).
    Queue(io::Error),
    /// The message could not be read (standard input, the client).
    Read(io::Error),
    /// Larger than `message_size_limit`.
    TooBig(u64),
    /// A header block larger than the collector takes.
    HeaderTooBig(u64),
    /// An SMTP client over an outbound limit (`login X over 200
    /// messages/hour`): nothing queued; the alert queued about it, if one.
    OverLimit(String, Option<crate::queue::QueueId>),
}

impl Error {
    /// The error as a front end reports it on the command line.
    pub fn failure(&self, cfg: &Config) -> Failure {
        match self {
            Error::NoSpace(f) => f.clone(),
            Error::Queue(e) => queue_failure(cfg, e),
            Error::Read(e) => Failure::new(
                ExitCode::IoErr,
                format!("cannot read the message: {}", io_reason(e)),
            )
            .hint("nothing was queued; send again"),
            Error::TooBig(limit) => Failure::new(
                ExitCode::DataErr,
                format!("message not queued: Message exceeds maximum fixed size ({limit})"),
            )
            .hint("send a smaller message, or raise message_size_limit in /etc/mail/mailroom.conf"),
            Error::HeaderTooBig(limit) => Failure::new(
                ExitCode::DataErr,
                format!("message not queued: the header is larger than {limit} bytes"),
            )
            .hint("check the program that wrote the message"),
            Error::OverLimit(what, _) => Failure::new(
                ExitCode::TempFail,
                format!("message not queued: sending limit reached: {what}"),
            )
            .hint("try again later, or ask the admin to raise the limit in /etc/mail/limits"),
        }
    }

    /// A disk that is full (`ENOSPC`, `EDQUOT`, or below `min_free_space`):
    /// SMTP says `452 4.3.1` for it.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::NoSpace(_) => true,
            Error::Queue(e) => matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)),
            _ => false,
        }
    }
}

impl From<CollectError> for Error {
    fn from(e: CollectError) -> Error {
        match e {
            CollectError::Read(e) => Error::Read(e),
            CollectError::Write(e) => Error::Queue(e),
            CollectError::TooBig(l) => Error::TooBig(l),
            CollectError::HeaderTooBig(l) => Error::HeaderTooBig(l as u64),
        }
    }
}

/// Is there enough free space in the queue file system?
pub fn check_free_space(cfg: &Config) -> Result<(), Failure> {
    if cfg.min_free_space == 0 {
        return Ok(());
    }
    let st = match nix::sys::statvfs::statvfs(&cfg.queue_dir) {
        Ok(s) => s,
        Err(_) => return Ok(()), // the open will report the real problem
    };
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    if free < cfg.min_free_space {
        return Err(Failure::new(
            ExitCode::TempFail,
            format!(
                "message not queued: insufficient disk space in {} ({} bytes free, {} required)",
                cfg.queue_dir.display(),
                free,
                cfg.min_free_space
            ),
        )
        .hint("free some space and send again"));
    }
    Ok(())
}

/// A queue write that failed, as a command-line error: a full or
/// read-only disk is temporary (75), a queue we may not write is a broken
/// installation (73).
pub fn queue_failure(cfg: &Config, e: &io::Error) -> Failure {
    let code = match ExitCode::for_io(e) {
        // A file system remounted read-only (after errors, or for
        // maintenance) comes back: the caller should retry, as for a
        // full disk, not be told sendmail is installed wrongly.
        _ if e.raw_os_error() == Some(libc::EROFS) => ExitCode::TempFail,
        ExitCode::TempFail => ExitCode::TempFail,
        ExitCode::NoPerm | ExitCode::OsFile => ExitCode::CantCreat,
        _ => ExitCode::TempFail,
    };
    let hint = match code {
        ExitCode::CantCreat => format!(
            "check that {} exists and that sendmail is installed set-group-id mqueue (run 'make install' or 'mailroom check')",
            cfg.queue_dir.display()
        ),
        _ => "try again later".to_string(),
    };
    Failure::new(
        code,
        format!(
            "cannot queue message in {}: {}",
            cfg.queue_dir.display(),
            io_reason(e)
        ),
    )
    .hint(hint)
}
