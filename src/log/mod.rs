//! Log lines, in sendmail 8's format so that existing log analyzers
//! (pflogsumm's sendmail cousins, logwatch, fail2ban) read them.
//!
//! Facility `mail`, the process id in the tag, and the message
//! `QUEUEID: text` (or just `text` when no message is concerned):
//!
//! ```text
//! sendmail[28434]: 6AL5Q6p0028434: from=<sender@example.com>, size=68, class=0, nrcpts=3, msgid=<...>, relay=root@localhost
//! sendmail[28434]: 6AL5Q6p0028434: to=<eve@example.com>, delay=00:00:00, mailer=local, pri=90068, stat=queued
//! ```
//!
//! Every line each program writes, with what it means, is listed in
//! [`catalog`] (`mailroom-log(5)` is made from it, and a test keeps it
//! and the code equal).  By default lines go to syslog(3); with
//! `log = /path` in `mailroom.conf` they are appended to a file in the
//! layout syslogd would give them (tests and `make demo` use this).

pub mod catalog;

use std::ffi::CString;
use std::io::Write;
use std::sync::OnceLock;

use crate::config::LogTarget;

/// syslog priorities used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Err,
    Warning,
    Notice,
    Info,
}

impl Level {
    /// One letter for it, to pass a line through a pipe.
    pub fn letter(self) -> char {
        match self {
            Level::Err => 'E',
            Level::Warning => 'W',
            Level::Notice => 'N',
            Level::Info => 'I',
        }
    }

    pub fn from_letter(c: &str) -> Option<Level> {
        Some(match c {
            "E" => Level::Err,
            "W" => Level::Warning,
            "N" => Level::Notice,
            "I" => Level::Info,
            _ => return None,
        })
    }

    fn syslog(self) -> libc::c_int {
        match self {
            Level::Err => libc::LOG_ERR,
            Level::Warning => libc::LOG_WARNING,
            Level::Notice => libc::LOG_NOTICE,
            Level::Info => libc::LOG_INFO,
        }
    }
}

struct Logger {
    ident: String,
    target: LogTarget,
    host: String,
    pid: u32,
    /// The log file (`log = /path`), kept open between lines and
    /// reopened after a second, so a rotated file is let go promptly.
    file: std::sync::Mutex<Option<(std::fs::File, std::time::Instant)>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Set where this process logs and under which tag (`sendmail`, `pop3d`,
/// ...).  The first call wins.
pub fn init(ident: &str, target: &LogTarget, host: &str) {
    let short_host = host.split('.').next().unwrap_or(host).to_string();
    let logger = Logger {
        ident: ident.to_string(),
        target: target.clone(),
        host: short_host,
        pid: std::process::id(),
        file: std::sync::Mutex::new(None),
    };
    if LOGGER.set(logger).is_ok()
        && let Some(l) = LOGGER.get()
        && l.target == LogTarget::Syslog
    {
        // openlog keeps the pointer: leak one small string for the
        // life of the process.
        let ident = CString::new(l.ident.clone()).unwrap_or_default();
        let ptr = Box::leak(ident.into_boxed_c_str()).as_ptr();
        // SAFETY: ptr stays valid forever; flags and facility are
        // plain constants.
        unsafe { libc::openlog(ptr, libc::LOG_PID, libc::LOG_MAIL) };
    }
}

/// Open the log now (syslog's socket, or the log file), so that logging
/// keeps working after a chroot or a change of user.
pub fn prepare_for_chroot() {
    let Some(l) = LOGGER.get() else {
        return;
    };
    match &l.target {
        LogTarget::Syslog => {
            // openlog kept the ident pointer from init; LOG_NDELAY connects now.
            if let Ok(ident) = CString::new(l.ident.clone()) {
                let ptr = Box::leak(ident.into_boxed_c_str()).as_ptr();
                // SAFETY: ptr stays valid forever; constant flags.
                unsafe { libc::openlog(ptr, libc::LOG_PID | libc::LOG_NDELAY, libc::LOG_MAIL) };
            }
        }
        LogTarget::File(path) => {
            let mut slot = l.file.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(f) = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
            {
                // Kept for good: it cannot be reopened from inside.
                *slot = Some((
                    f,
                    std::time::Instant::now() + std::time::Duration::from_secs(1 << 40),
                ));
            }
        }
    }
}

/// Log `text` about message `qid` (if any) at `level`.
pub fn log(level: Level, qid: Option<&str>, text: &str) {
    let msg = match qid {
        Some(id) => format!("{id}: {text}"),
        None => text.to_string(),
    };
    // One line each: a newline in the text would forge a log line.
    let msg: String = msg
        .chars()
        .map(|c| {
            if c == '\n' || c == '\r' || c == '\0' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let Some(l) = LOGGER.get() else {
        return;
    };
    // A child forked from a threaded process must not call syslog(3),
    // whose lock another thread may have held at the fork (and, switched
    // to a mailbox owner, could not open the log file): it holds its
    // lines for its parent to write (see [`take_held`]).
    // A thread working on files as a mailbox's owner
    // ([`crate::privs::FilesAs`]) holds its lines too: the log file is
    // root's.
    if crate::privs::in_forked_child() || HOLDING.with(|h| h.get()) {
        HELD.with(|h| h.borrow_mut().push((level, msg)));
        return;
    }
    match &l.target {
        LogTarget::Syslog => {
            if let Ok(c) = CString::new(msg) {
                // SAFETY: "%s" with a valid C string.
                unsafe { libc::syslog(level.syslog(), c"%s".as_ptr(), c.as_ptr()) };
            }
        }
        LogTarget::File(path) => {
            let now = crate::date::ctime(crate::date::now());
            let line = format!(
                "{} {} {}[{}]: {}\n",
                &now[4..19],
                l.host,
                l.ident,
                l.pid,
                msg
            );
            let mut slot = l.file.lock().unwrap_or_else(|p| p.into_inner());
            if slot
                .as_ref()
                .is_none_or(|(_, at)| at.elapsed() >= std::time::Duration::from_secs(1))
                && let Ok(f) = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)
            {
                // (If it cannot be reopened, the old one is kept.)
                *slot = Some((f, std::time::Instant::now()));
            }
            if let Some((f, _)) = slot.as_mut() {
                // One write per line: O_APPEND keeps lines from several
                // processes whole.
                let _ = f.write_all(line.as_bytes());
            }
        }
    }
}

thread_local! {
    /// Lines a forked child logged (its only thread is the one that forked).
    static HELD: std::cell::RefCell<Vec<(Level, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// In a forked child: the lines it logged so far, to hand to its parent,
/// which writes them with [`log`].
pub fn take_held() -> Vec<(Level, String)> {
    HELD.with(|h| std::mem::take(&mut *h.borrow_mut()))
}

thread_local! {
    /// This thread holds its lines (see [`hold_in_this_thread`]).
    static HOLDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Hold this thread's lines instead of writing them (`true`), or write
/// what was held and stop holding (`false`).
pub fn hold_in_this_thread(on: bool) {
    HOLDING.with(|h| h.set(on));
    if !on {
        for (level, text) in take_held() {
            log(level, None, &text);
        }
    }
}

pub fn info(qid: Option<&str>, text: &str) {
    log(Level::Info, qid, text)
}

pub fn notice(qid: Option<&str>, text: &str) {
    log(Level::Notice, qid, text)
}

pub fn warning(qid: Option<&str>, text: &str) {
    log(Level::Warning, qid, text)
}

pub fn err(qid: Option<&str>, text: &str) {
    log(Level::Err, qid, text)
}
