//! The login stamps in [`super::DIR`]: small time-stamp files pop3d's
//! root side writes and the SMTP server's root side reads.
//!
//! * `pop-before-smtp` — for POP-before-SMTP relaying: one line per client
//!   address that logged in, `ADDRESS UNIX-TIME`, the time of its latest
//!   login.  ADDRESS is the client as [`crate::wire::peer`] gives it
//!   (`192.0.2.7`, `2001:db8::1`; an IPv4-mapped client as its IPv4
//!   address), the same spelling the SMTP server looks up.  Lines older
//!   than `pop_before_smtp_window` ([`pop_before_smtp_window`]) are
//!   dropped at every write; readers must also ignore them.
//! * `pop3-logins` — for `LOGIN-DELAY`, when configured: `LOGIN UNIX-TIME`.
//!
//! Each update reads the file, replaces one line, and renames a new file
//! into place, under an `flock` on `.lock` in the same directory.
//!
//! ## Root's alone
//!
//! A stamp is a relay permit for its address, so who can write one
//! matters as much as who can log in.  The files are `root:root 0600` in
//! `root:root 0755` (`make install` creates the directory; pop3d creates it
//! `0700` if it is missing):
//!
//! * **Written** only by pop3d's root side (the authority), after the
//!   password check and before it becomes the mailbox's owner — never by
//!   the unprivileged network process or the session.
//! * **Read** only by root: the SMTP server looks its client up in its
//!   root process, before it forks the dialogue as `smtp_user` + group
//!   `mqueue` ([`crate::smtp::server::policy::Policy::look_up_pop_login`]).
//!   Not readable by group `mqueue` or user `mail`: every local user runs
//!   the set-group-id `mqueue` sendmail and pop3d sessions hold group
//!   `mail`, and neither needs to learn who logged in from where.
//! * **Checked** at every use: the directory must be a real directory
//!   owned by root (by the process's own user in a private test root) and
//!   writable by nobody else, or the stamps are neither read nor written
//!   (logged) — a directory made group-writable by mistake turns
//!   POP-before-SMTP off instead of letting a group forge permits.  Files
//!   are opened with `O_NOFOLLOW`; the new file is created with `O_EXCL`
//!   (nothing planted under its name is written through); a stamp file not
//!   owned by root, or writable by others, is ignored.  A hard link to the
//!   file elsewhere cannot be written (mode 0600) and stops mattering at
//!   the next rename.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::dir;
use crate::config::{Config, parse_duration};
use crate::exit::Failure;

pub use super::{POP_BEFORE_SMTP, POP3_LOGINS};

/// Keys read here, with defaults, for `mailroom check` and
/// `etc/mailroom.conf`.
pub const KEYS: &[(&str, &str, &str)] = &[(
    "pop_before_smtp_window",
    "30m",
    "how long a POP3 login lets its IP address relay (0 = record nothing)",
)];

/// `pop_before_smtp_window` in seconds: how long a login's stamp is a
/// relay permit (pop3d records nothing when it is 0).
pub fn pop_before_smtp_window(cfg: &Config) -> Result<u64, Failure> {
    let key = "pop_before_smtp_window";
    parse_duration(cfg.get(key).unwrap_or("30m"), 1)
        .ok_or_else(|| cfg.bad_value(key, "not a duration (e.g. 30s, 10m)"))
}

/// Users whose files may be trusted: root, and this process's own user
/// (a private root in tests is owned by whoever runs them).
fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// Refuse a stamp directory others could plant files in.
fn check_dir(d: &Path) -> io::Result<()> {
    let m = fs::symlink_metadata(d)?;
    let why = if !m.file_type().is_dir() {
        "not a directory"
    } else if !trusted_owner(m.uid()) {
        "not owned by root"
    } else if m.mode() & 0o022 != 0 {
        "writable by group or others"
    } else {
        return Ok(());
    };
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{} is {why}; stamps are not trusted there", d.display()),
    ))
}

/// The entries of stamp file `name` younger than `window` seconds.  An
/// unusable file or directory counts as empty (and is logged, unless it
/// simply does not exist yet).
pub fn read(cfg: &Config, name: &str, now: i64, window: i64) -> BTreeMap<String, i64> {
    match read_checked(&dir(cfg), name) {
        Ok(text) => parse(&text, now, window),
        Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => {
            crate::log::warning(None, &format!("{name}: ignored: {e}"));
            BTreeMap::new()
        }
    }
}

fn read_checked(d: &Path, name: &str) -> io::Result<String> {
    check_dir(d)?;
    let path = d.join(name);
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)?;
    let m = f.metadata()?;
    if !m.file_type().is_file() || !trusted_owner(m.uid()) || m.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a regular file owned by root and writable only by it",
                path.display()
            ),
        ));
    }
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(text)
}

fn parse(text: &str, now: i64, window: i64) -> BTreeMap<String, i64> {
    text.lines()
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
    check_dir(&d)?;
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(d.join(super::LOCK))?;
    // SAFETY: flock on a valid descriptor; released when `lock` closes.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut entries = match read_checked(&d, name) {
        Ok(text) => parse(&text, now, window),
        Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
        // Whatever is there is not ours: replaced below.
        Err(_) => BTreeMap::new(),
    };
    let before = entries.insert(key.to_string(), now);
    let tmp = d.join(format!(".{name}.{}", std::process::id()));
    // Left by a killed update with this pid (we hold the lock).
    let _ = fs::remove_file(&tmp);
    {
        let mut f: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        // The mode whatever the umask.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        let mut text = String::new();
        for (k, t) in &entries {
            text.push_str(&format!("{k} {t}\n"));
        }
        f.write_all(text.as_bytes())?;
    }
    fs::rename(&tmp, d.join(name))?;
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn root(name: &str) -> (PathBuf, Config) {
        let root = std::env::temp_dir().join(format!("mr-stamps-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let cfg = Config::defaults(crate::config::Paths::under(&root));
        (root, cfg)
    }

    #[test]
    fn update_keeps_fresh_entries_only() {
        let (root, cfg) = root("fresh");
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
        let path = dir(&cfg).join(POP_BEFORE_SMTP);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, "192.0.2.2 2100\n192.0.2.3 3000\n");
        assert_eq!(
            read(&cfg, POP_BEFORE_SMTP, 3001, 1800)
                .keys()
                .collect::<Vec<_>>(),
            ["192.0.2.2", "192.0.2.3"]
        );
        assert_eq!(read(&cfg, POP_BEFORE_SMTP, 3901, 1800).len(), 1);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn a_directory_others_can_write_is_neither_read_nor_written() {
        let (root, cfg) = root("opendir");
        update(&cfg, POP_BEFORE_SMTP, "192.0.2.1", 1000, 1800).unwrap();
        let d = dir(&cfg);
        fs::set_permissions(&d, fs::Permissions::from_mode(0o775)).unwrap();
        assert!(read(&cfg, POP_BEFORE_SMTP, 1001, 1800).is_empty());
        let e = update(&cfg, POP_BEFORE_SMTP, "192.0.2.9", 1001, 1800).unwrap_err();
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(read(&cfg, POP_BEFORE_SMTP, 1001, 1800).len(), 1);
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn a_planted_link_is_not_followed_or_written_through() {
        let (root, cfg) = root("links");
        let d = dir(&cfg);
        fs::create_dir_all(&d).unwrap();
        let victim = root.join("victim");
        fs::write(&victim, "192.0.2.66 4000000000\n").unwrap();
        // A symlink in the stamp's place is not read ...
        std::os::unix::fs::symlink(&victim, d.join(POP_BEFORE_SMTP)).unwrap();
        assert!(read(&cfg, POP_BEFORE_SMTP, 1000, 1800).is_empty());
        // ... and a file planted under the temporary name is not written
        // through: the update replaces both names, the victim is intact.
        let tmp = d.join(format!(".{POP_BEFORE_SMTP}.{}", std::process::id()));
        fs::hard_link(&victim, &tmp).unwrap();
        update(&cfg, POP_BEFORE_SMTP, "192.0.2.1", 1000, 1800).unwrap();
        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            "192.0.2.66 4000000000\n"
        );
        let stamp = d.join(POP_BEFORE_SMTP);
        assert!(fs::symlink_metadata(&stamp).unwrap().file_type().is_file());
        assert_eq!(fs::read_to_string(&stamp).unwrap(), "192.0.2.1 1000\n");
        // A stamp file others may write is ignored.
        fs::set_permissions(&stamp, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(read(&cfg, POP_BEFORE_SMTP, 1001, 1800).is_empty());
        let _ = fs::remove_dir_all(root);
    }
}
