//! What each mailbox's owner was last warned about: one small file per
//! mailbox in `/var/spool/mailroom/quota-warnings/` (see
//! [`crate::state`]), read and written by delivery as root.  The
//! directory is `root:mqueue 2750` (`make install`; delivery makes it
//! `0750` if missing), the files `0640`: the SMTP server's unprivileged
//! side reads a record's allowance for its RCPT check ([`allowance`]),
//! nobody but root writes.
//!
//! ## The file
//!
//! Named after the mailbox's path, every byte other than `A-Z a-z 0-9 .
//! _ - + @` written `%XX` (`/var/mail/bob` is `%2Fvar%2Fmail%2Fbob`), so
//! a mailbox that moves (mbox to Maildir) starts afresh.  Lines of
//! `NAME VALUE`:
//!
//! ```text
//! level 80
//! generation 7
//! allowance 1432
//! pending 6BQ9x2Lk004211
//! ```
//!
//! * `level` — the highest threshold (percent) the owner has been warned
//!   about and the mailbox has not since been seen below; 0 = none.
//! * `generation` — counts the file's rewrites.  A delivery reads the file
//!   before it writes the message and compares after: if no rewrite came
//!   between, the mailbox's size it saw before writing is newer than the
//!   recorded level, and if it was below that level the owner is warned
//!   again when it is reached (a mailbox emptied by POP3 and filled again
//!   in between two deliveries).  A size read before someone else's
//!   rewrite is not used: it may predate the warning that rewrite
//!   records, and would send a second one.
//! * `allowance` — bytes of warnings delivered into the mailbox since it
//!   was last seen below every threshold: the quota is that much larger,
//!   and the levels are computed without them, so a warning never makes
//!   real mail bounce sooner (once the mailbox is back below every
//!   threshold, the allowance ends: a warning kept from then on is mail
//!   like any other).
//! * `pending` — queue ids of warnings queued and not yet delivered (at
//!   most [`PENDING_KEPT`], the newest): the delivery of one of them
//!   ignores the quota, and adds its size to the allowance.
//!
//! A missing file is level 0, nothing pending.  A file that does not
//! parse is logged and counts as missing.
//!
//! ## Updates, and a kill at any instant
//!
//! Every update is made under `flock` on `quota-warnings/.lock` (one lock
//! for every mailbox: it is held for a read, a compare and, rarely, a
//! rewrite): the new text goes to `.NAME.tmp`, is `fsync`ed, renamed over
//! `NAME`, and the directory is `fsync`ed.  A reader sees the old file or
//! the new one; a kill leaves at worst a `.tmp`, overwritten next time.
//! A warning is queued *before* the file records it
//! ([`super::warning`]): a kill between the two costs a second warning
//! at the next delivery, never a lost one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Warnings remembered as pending, the newest (one that was never
/// delivered — deleted from the queue by hand — must not stay forever).
pub const PENDING_KEPT: usize = 8;

/// One mailbox's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub level: u8,
    pub generation: u64,
    pub allowance: u64,
    pub pending: Vec<String>,
}

impl State {
    pub fn parse(text: &str) -> Result<State, String> {
        let mut s = State::default();
        for (i, line) in text.lines().enumerate() {
            let bad = || format!("line {}: {line:?}", i + 1);
            let (name, value) = line.split_once(' ').ok_or_else(bad)?;
            match name {
                "level" => s.level = value.parse().map_err(|_| bad())?,
                "generation" => s.generation = value.parse().map_err(|_| bad())?,
                "allowance" => s.allowance = value.parse().map_err(|_| bad())?,
                "pending" if crate::queue::QueueId::parse(value).is_some() => {
                    s.pending.push(value.to_string())
                }
                _ => return Err(bad()),
            }
        }
        Ok(s)
    }

    pub fn to_text(&self) -> String {
        let mut t = format!(
            "level {}\ngeneration {}\nallowance {}\n",
            self.level, self.generation, self.allowance
        );
        let skip = self.pending.len().saturating_sub(PENDING_KEPT);
        for id in &self.pending[skip..] {
            t.push_str(&format!("pending {id}\n"));
        }
        t
    }
}

/// The directory of the records.
pub fn dir(cfg: &Config) -> PathBuf {
    crate::state::dir(cfg).join(crate::state::QUOTA_WARNINGS)
}

/// The file name of `mailbox`'s record.
pub fn name(mailbox: &Path) -> String {
    let mut out = String::new();
    for &b in mailbox.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"._-+@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The record `name` in `dir` (missing or unreadable: none, the latter
/// logged).
pub fn read(dir: &Path, name: &str) -> State {
    let path = dir.join(name);
    let ignored = |why: String| {
        crate::log::warning(
            None,
            &format!("quota warnings: {}: ignored: {why}", path.display()),
        );
        State::default()
    };
    match fs::read_to_string(&path) {
        Ok(text) => State::parse(&text).unwrap_or_else(ignored),
        Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
        Err(e) => ignored(crate::exit::io_reason(&e)),
    }
}

/// The bytes of warnings `mailbox` may hold beyond its quota, for those
/// who only check (the SMTP server's RCPT): 0 when there is no record
/// or it cannot be read, without a word (the delivery will say).
pub fn allowance(cfg: &Config, mailbox: &Path) -> u64 {
    fs::read_to_string(dir(cfg).join(name(mailbox)))
        .ok()
        .and_then(|t| State::parse(&t).ok())
        .map_or(0, |s| s.allowance)
}

/// The updates' lock, held until dropped.
pub struct Lock(#[allow(dead_code)] File);

/// Take the updates' lock (creating the directory `0750` if missing).
pub fn lock(dir: &Path) -> io::Result<Lock> {
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(".lock"))?;
    // SAFETY: flock on a valid descriptor; released when `f` closes.
    while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(Lock(f))
}

/// One step of [`write`], for the tests that stop it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `.NAME.tmp` written and `fsync`ed.
    Written,
    /// Renamed over `NAME`.
    Renamed,
}

/// Replace the record `name` with `state` (the caller holds [`lock`]).
/// `stop`: return after this step, as a kill there would leave things
/// (the tests' switch; `None` in real use).
pub fn write(dir: &Path, name: &str, state: &State, stop: Option<Step>) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(state.to_text().as_bytes())?;
        f.sync_all()?;
    }
    if stop == Some(Step::Written) {
        return Ok(());
    }
    fs::rename(&tmp, dir.join(name))?;
    if stop == Some(Step::Renamed) {
        return Ok(());
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_keeps_the_newest_pending() {
        let mut s = State {
            level: 80,
            generation: 7,
            allowance: 1432,
            pending: vec!["6BQ9x2Lk004211".into()],
        };
        assert_eq!(State::parse(&s.to_text()).unwrap(), s);
        s.pending = (0..12).map(|i| format!("6BQ9x2Lk0042{i:02}")).collect();
        let back = State::parse(&s.to_text()).unwrap();
        assert_eq!(back.pending.len(), PENDING_KEPT);
        assert_eq!(back.pending.last(), s.pending.last());
        for bad in ["level x\n", "level\n", "colour blue\n", "pending ../x\n"] {
            assert!(State::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(State::parse("").unwrap(), State::default());
    }

    #[test]
    fn names_are_the_path_with_separators_escaped() {
        assert_eq!(name(Path::new("/var/mail/bob")), "%2Fvar%2Fmail%2Fbob");
        assert_eq!(
            name(Path::new("/home/info shop/Maildir")),
            "%2Fhome%2Finfo%20shop%2FMaildir"
        );
        assert_ne!(name(Path::new("/a/b%2Fc")), name(Path::new("/a/b/c")));
    }

    #[test]
    fn a_broken_file_counts_as_none() {
        let d = std::env::temp_dir().join(format!("mr-quota-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("x"), "level ninety\n").unwrap();
        assert_eq!(read(&d, "x"), State::default());
        assert_eq!(read(&d, "missing"), State::default());
        let _l = lock(&d).unwrap();
        let s = State {
            level: 95,
            ..State::default()
        };
        write(&d, "x", &s, None).unwrap();
        assert_eq!(read(&d, "x"), s);
        fs::remove_dir_all(&d).unwrap();
    }
}
