//! Small time-stamp files pop3d keeps under `/var/spool/mailroom`
//! (root-owned; written before pop3d gives up root):
//!
//! * `pop-before-smtp` — for POP-before-SMTP relaying: one line per client
//!   address that logged in, `ADDRESS UNIX-TIME`, the time of its latest
//!   login.  Lines older than `pop_before_smtp_window` are dropped at every
//!   write; readers (the SMTP server) must also ignore them.
//! * `pop3-logins` — for `LOGIN-DELAY`, when configured: `LOGIN UNIX-TIME`.
//!
//! Each update reads the file, replaces one line, and renames a new file
//! into place, under an `flock` on `.lock` in the same directory.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// The directory of the stamp files.
pub fn dir(cfg: &Config) -> PathBuf {
    cfg.paths.resolve("/var/spool/mailroom")
}

pub const POP_BEFORE_SMTP: &str = "pop-before-smtp";
pub const POP3_LOGINS: &str = "pop3-logins";

/// The entries of a stamp file younger than `window` seconds.
pub fn read(path: &Path, now: i64, window: i64) -> BTreeMap<String, i64> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, t) = l.split_once(' ')?;
            let t: i64 = t.trim().parse().ok()?;
            (now - t < window && !k.is_empty()).then(|| (k.to_string(), t))
        })
        .collect()
}

/// Set `key`'s time to `now`, dropping entries older than `window`;
/// returns the time `key` had before (if still within the window).
pub fn update(
    cfg: &Config,
    name: &str,
    key: &str,
    now: i64,
    window: i64,
) -> io::Result<Option<i64>> {
    if key.is_empty() || key.contains(['\n', ' ']) {
        return Ok(None);
    }
    let d = dir(cfg);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&d)?;
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(d.join(".lock"))?;
    // SAFETY: flock on a valid descriptor; released when `lock` closes.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let path = d.join(name);
    let mut entries = read(&path, now, window);
    let before = entries.insert(key.to_string(), now);
    let tmp = d.join(format!(".{name}.{}", std::process::id()));
    {
        let mut f: File = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        let mut text = String::new();
        for (k, t) in &entries {
            text.push_str(&format!("{k} {t}\n"));
        }
        f.write_all(text.as_bytes())?;
    }
    fs::rename(&tmp, &path)?;
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_keeps_fresh_entries_only() {
        let root = std::env::temp_dir().join(format!("mr-stamps-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let cfg = Config::defaults(crate::config::Paths::under(&root));
        assert_eq!(
            update(&cfg, POP_BEFORE_SMTP, "192.0.2.1", 1000, 1800).unwrap(),
            None
        );
        assert_eq!(
            update(&cfg, POP_BEFORE_SMTP, "192.0.2.2", 2000, 1800).unwrap(),
            None
        );
        assert_eq!(
            update(&cfg, POP_BEFORE_SMTP, "192.0.2.2", 2100, 1800).unwrap(),
            Some(2000)
        );
        // 192.0.2.1 is too old by now and is dropped.
        update(&cfg, POP_BEFORE_SMTP, "192.0.2.3", 3000, 1800).unwrap();
        let text = fs::read_to_string(dir(&cfg).join(POP_BEFORE_SMTP)).unwrap();
        assert_eq!(text, "192.0.2.2 2100\n192.0.2.3 3000\n");
    }
}
