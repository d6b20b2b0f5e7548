//! Logging in to the panel: the login door ([`crate::login::Door`], the
//! check POP3 and SMTP AUTH use: the same names, the same refusals, the
//! same log lines), plus slowing that lasts across requests.
//!
//! pop3d slows a client within one connection; a panel login is a new
//! process each time, so the failures are counted on disk instead, per
//! login name.  The pause before a `refused` answer is POP3's
//! ([`crate::login::Pace`] from `pop3_auth_fail_delay`): the delay after
//! the first recent failure of that name, doubling with each one, at
//! most 32 times.  A success ends the count; so do [`DECAY`] seconds
//! without a failure.
//!
//! ## The counters
//!
//! In the panel's state directory ([`super::state_dir`]), one file per
//! login name: `f-HASH`, HASH the SHA-256 in hex of the name as the door
//! normalizes it (the raw bytes for a name it would not take).  Any name
//! gets one, known or not, so an unknown name is counted and paced
//! exactly as a known one, and a listing tells no one which names were
//! tried.  The text is `FAILURES LAST-FAILURE-UNIX-TIME\n`, written whole
//! (`.tmp-PID` then rename) under `flock` of the directory's `.lock`;
//! an unreadable file counts as none.  Each login attempt first removes
//! the counters that decayed ([`sweep`]).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::session::{read_small, sha256_hex};
use crate::config::Config;
use crate::login::{Attempt, Door, Identity, Outcome, Pace, Refused};

/// Seconds without a failure after which a name's count starts over.
pub const DECAY: i64 = 15 * 60;

/// The failure count of one login name.
pub struct Counter {
    dir: PathBuf,
    path: PathBuf,
}

impl Counter {
    /// The counter of the login name `raw` (as typed).
    pub fn of(dir: &Path, raw: &[u8]) -> Counter {
        let key = match crate::login::normalize(raw) {
            Some(n) => sha256_hex(n.as_bytes()),
            None => sha256_hex(raw),
        };
        Counter {
            dir: dir.to_path_buf(),
            path: dir.join(format!("f-{key}")),
        }
    }

    /// Recent failures at `now`.
    pub fn failures(&self, now: i64) -> u32 {
        let Some(text) = read_small(&self.path) else {
            return 0;
        };
        let mut w = text.split_whitespace();
        let n: u32 = w.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let last: i64 = w.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        if now - last >= DECAY || last > now + 300 {
            0
        } else {
            n
        }
    }

    /// One more failure at `now`; the count it makes.
    pub fn fail(&self, now: i64) -> u32 {
        let _lock = self.lock();
        let n = self.failures(now).saturating_add(1).min(1000);
        let tmp = self.dir.join(format!(".tmp-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .and_then(|mut f| f.write_all(format!("{n} {now}\n").as_bytes()))
            .and_then(|()| fs::rename(&tmp, &self.path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        n
    }

    /// The name logged in: its count ends.
    pub fn clear(&self) {
        let _lock = self.lock();
        let _ = fs::remove_file(&self.path);
    }

    fn lock(&self) -> Option<fs::File> {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.dir.join(".lock"))
            .ok()?;
        // SAFETY: flock on a valid descriptor; released when `f` closes.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        Some(f)
    }
}

/// Remove the counters of `dir` that decayed (no failure for [`DECAY`]
/// seconds): names tried once and never again leave nothing behind.
pub fn sweep(dir: &Path, now: i64) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with("f-") {
            continue;
        }
        let c = Counter {
            dir: dir.to_path_buf(),
            path: e.path(),
        };
        if c.failures(now) == 0 {
            let _lock = c.lock();
            if c.failures(now) == 0 {
                let _ = fs::remove_file(&c.path);
            }
        }
    }
}

/// Try `name` and `password` at the door: the identity, or `None` after
/// the failure was counted, logged (as pop3d logs it, tagged `panel`)
/// and paused for.
pub fn attempt(
    cfg: &Config,
    settings: &crate::login::Settings,
    pace: Pace,
    counter: &Counter,
    name: &[u8],
    password: &[u8],
    from: &str,
) -> Option<Identity> {
    let now = crate::date::now();
    // The pause this failure would earn: POP3's for the count it makes.
    let prior = counter.failures(now);
    let door_pace = Pace {
        delay: pace.pause(prior.saturating_add(1)),
        max_failures: u32::MAX,
    };
    let mut door = Door::new(cfg, settings, door_pace);
    let log = |why: &Refused| {
        // Counted before the pause: a client that gives up early (or a
        // second request at once) finds the count already there.
        counter.fail(now);
        log_failure(why, from);
    };
    match door.attempt(&Attempt::password(name, password), log) {
        Outcome::LoggedIn(id) => Some(id),
        Outcome::Failed | Outcome::TooManyFailures => None,
    }
}

/// A login that cannot even be tried (no name, an overlong password):
/// counted, logged and paused for like any other failure.
pub fn refuse(pace: Pace, counter: &Counter, from: &str) {
    let now = crate::date::now();
    let n = counter.fail(now);
    log_failure(&Refused::Unknown, from);
    std::thread::sleep(pace.pause(n));
}

fn log_failure(why: &Refused, from: &str) {
    crate::log::notice(
        None,
        &format!("login failed: {} from {from} (panel)", why.who()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_per_name_decay_and_clear() {
        let dir = std::env::temp_dir().join(format!("mr-panel-fail-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let bob = Counter::of(&dir, b"Bob");
        // The same name however it is typed.
        assert_eq!(bob.path, Counter::of(&dir, b"bob").path);
        assert_ne!(bob.path, Counter::of(&dir, b"carol").path);
        assert_eq!(
            Counter::of(&dir, b"info%shop.example").path,
            Counter::of(&dir, b"info@shop.example").path
        );
        assert_eq!(bob.failures(1000), 0);
        assert_eq!(bob.fail(1000), 1);
        assert_eq!(bob.fail(1010), 2);
        assert_eq!(bob.failures(1010 + DECAY - 1), 2);
        assert_eq!(bob.failures(1010 + DECAY), 0);
        assert_eq!(bob.fail(1010 + DECAY), 1);
        let carol = Counter::of(&dir, b"carol");
        carol.fail(1010);
        sweep(&dir, 1010 + DECAY);
        assert!(bob.path.exists() && !carol.path.exists());
        bob.clear();
        assert_eq!(bob.failures(1010 + DECAY), 0);
        // No file names the login.
        for e in fs::read_dir(&dir).unwrap() {
            assert!(!e.unwrap().file_name().to_string_lossy().contains("bob"));
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
