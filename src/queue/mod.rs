//! The mail queue, `/var/spool/mqueue`, in sendmail 8's own format, so that
//! sendmail's `mailq` reads ours and our runner delivers what sendmail left.
//!
//! * [`enqueue`] — the one door into the queue: every new job is made
//!   there.
//! * [`id`] — queue ids (`6AL5Krcl005170`).
//! * [`qf`] — the control file format, record by record.
//! * [`spool`] — files on disk, locking and the crash-ordering that makes
//!   "accepted" mean "durable".
//! * [`mailq`] — the `mailq` listing.
//!
//! The directory is `root:mqueue`, mode `2770` (setgid, so every file gets
//! the `mqueue` group): only root and the set-group-id `sendmail` can enter
//! it.  Files are mode `0640`.
//!
//! ## Everything in the queue directory
//!
//! | name | what | owned by |
//! |------|------|----------|
//! | `qfID` | a job's control file; its existence *is* the job | [`spool`], format in [`qf`] |
//! | `dfID` | the job's message body | [`spool`] |
//! | `tfID` | a control file being written (a new job, or a rewrite) | [`spool`] |
//! | `hfID` | a job the admin held (`mailroom queue hold`) | [`spool`] |
//! | `QfID` | a job set aside as unprocessable ("lost") | [`spool`], [`crate::runner::crashguard`] |
//! | `xfID` | crashes counted against a job, or its last attempt interrupted | [`crate::runner::crashguard`] |
//! | `.running/PID.N` | a live queue run's journal of what each worker is on (the directory goes with the last run) | [`crate::runner::crashguard`] |
//! | `.dsn-rate` | notices sent this hour, per address | `crate::runner` (notices) |
//! | `qf/`, `df/` | sendmail's optional split layout: control and data files there | [`spool`] |
//!
//! Every job file is made through the one door, [`enqueue`]; nothing else
//! creates a `qf`.

pub mod enqueue;
pub mod id;
pub mod mailq;
pub mod qf;
pub mod select;
pub mod spool;

pub use id::{IdGenerator, QueueId};
pub use qf::{Envelope, Notify, QHeader, Recipient, Ret};
pub use spool::{Draft, Job, Queue};

/// sendmail's priority factors (`RecipientFactor`, `ClassFactor`,
/// `RetryFactor`): lower runs first.
pub const RECIPIENT_FACTOR: i64 = 30000;
pub const CLASS_FACTOR: i64 = 1800;
pub const RETRY_FACTOR: i64 = 90000;

/// The initial priority of a message: size − class×1800 + recipients×30000.
pub fn initial_priority(size: u64, class: i64, recipients: usize) -> i64 {
    size as i64 - class * CLASS_FACTOR + recipients as i64 * RECIPIENT_FACTOR
}

/// The `Precedence:` class sendmail's standard configuration assigns
/// (first-class 0, special-delivery 100, list −30, bulk −60, junk −100).
pub fn precedence_class(value: Option<&str>) -> i64 {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("special-delivery") => 100,
        Some("list") => -30,
        Some("bulk") => -60,
        Some("junk") => -100,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_as_sendmail() {
        assert_eq!(initial_priority(35, 0, 2), 60035);
        assert_eq!(initial_priority(68, 0, 3), 90068);
        assert_eq!(precedence_class(Some(" Bulk ")), -60);
        assert_eq!(precedence_class(None), 0);
    }
}
