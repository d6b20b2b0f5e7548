//! The panel's sessions: who is logged in, as what, until when.  Every
//! request is a new `panel-helper` process, so a session lives on disk.
//!
//! ## The files
//!
//! `/var/spool/mailroom/panel/` ([`super::state_dir`]; root's, `0700`),
//! one file per session named `s-HASH`, HASH the SHA-256 of the token in
//! hex: a listing of the directory (or a backup of it) gives no token
//! that would let anyone in.  The token itself is 32 bytes of the
//! operating system's random generator, in hex; only the browser's
//! cookie holds it.  A file is lines `KEY VALUE`:
//!
//! ```text
//! login info-shop
//! name info@shop.example
//! role domain-admin
//! domain shop.example
//! csrf 9b1f...
//! created 1764950000
//! used 1764950120
//! from 192.0.2.7
//! ```
//!
//! * `login`: the account ([`crate::login::Identity::login`]); `name`:
//!   the login name as typed, normalized (the mailbox a user manages);
//!   `role` and `domain` (repeated): what [`super::roles`] granted at
//!   login; `csrf`: the session's form token (32 random bytes, hex);
//!   `created`, `used`: Unix seconds; `from`: the client at login.
//! * A session ends after `panel_session_idle` without a request, or
//!   `panel_session_max` after login, whichever comes first; at logout;
//!   and when its password is changed ([`Store::rotate`]; set by an
//!   admin, or its mailbox removed: [`Store::end_login`]).  An expired
//!   file is removed when it is next presented, and every login sweeps
//!   the directory.
//! * Files are written whole (`.tmp-PID` then `rename`): a crash leaves
//!   the old session or the new one, and a stray `.tmp-*` is swept.
//!
//! A login always makes a new session with a new token: a token known
//! before the login (planted in a browser) is worth nothing after it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::panel::protocol::Role;

/// Random bytes in a token and a CSRF token.
const TOKEN_BYTES: usize = 32;
/// The prefix of session files.
const PREFIX: &str = "s-";

/// One logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The cookie's token (never stored).
    pub token: String,
    pub login: String,
    pub name: String,
    pub role: Role,
    pub domains: Vec<String>,
    pub csrf: String,
    pub created: i64,
    pub used: i64,
    pub from: String,
}

/// The session directory and its lifetimes.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
    /// Seconds without a request before a session ends.
    pub idle: i64,
    /// Seconds after login before a session ends.
    pub max: i64,
}

/// `n` bytes from the operating system's random generator, in hex.
pub fn random_hex(n: usize) -> io::Result<String> {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| io::Error::other("no random numbers from the system"))?;
    Ok(crate::login::hex(&b))
}

/// SHA-256 of `text`, in hex.
pub fn sha256_hex(text: &[u8]) -> String {
    crate::login::hex(ring::digest::digest(&ring::digest::SHA256, text).as_ref())
}

/// Equal, in a time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A token as this module makes them: 64 lower-case hex digits.
fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_BYTES * 2
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A value as it may stand in a file line: no line breaks, no spaces
/// at the ends (logins, domains and addresses never have them).
fn clean(v: &str) -> String {
    v.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

impl Session {
    fn to_text(&self) -> String {
        let mut t = format!(
            "login {}\nname {}\nrole {}\n",
            clean(&self.login),
            clean(&self.name),
            self.role
        );
        for d in &self.domains {
            t.push_str(&format!("domain {}\n", clean(d)));
        }
        t.push_str(&format!(
            "csrf {}\ncreated {}\nused {}\nfrom {}\n",
            self.csrf,
            self.created,
            self.used,
            clean(&self.from)
        ));
        t
    }

    fn parse(token: &str, text: &str) -> Option<Session> {
        let mut s = Session {
            token: token.to_string(),
            login: String::new(),
            name: String::new(),
            role: Role::User,
            domains: Vec::new(),
            csrf: String::new(),
            created: 0,
            used: 0,
            from: String::new(),
        };
        let mut role = None;
        for line in text.lines() {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            match k {
                "login" => s.login = v.to_string(),
                "name" => s.name = v.to_string(),
                "role" => role = Role::parse(v),
                "domain" => s.domains.push(v.to_string()),
                "csrf" => s.csrf = v.to_string(),
                "created" => s.created = v.parse().ok()?,
                "used" => s.used = v.parse().ok()?,
                "from" => s.from = v.to_string(),
                _ => {}
            }
        }
        s.role = role?;
        (!s.login.is_empty() && well_formed(&s.csrf) && s.created > 0).then_some(s)
    }
}

impl Store {
    /// The directory (made root-only when missing) with these lifetimes.
    pub fn open(dir: PathBuf, idle: i64, max: i64) -> io::Result<Store> {
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        Ok(Store { dir, idle, max })
    }

    fn path(&self, token: &str) -> PathBuf {
        self.dir
            .join(format!("{PREFIX}{}", sha256_hex(token.as_bytes())))
    }

    /// When `s` ends unless used again (Unix seconds).
    pub fn expires(&self, s: &Session) -> i64 {
        (s.used + self.idle).min(s.created + self.max)
    }

    fn expired(&self, s: &Session, now: i64) -> bool {
        now >= self.expires(s) || s.used > now + 300
    }

    /// A new session (a new token, a new CSRF token), written.
    pub fn create(
        &self,
        login: &str,
        name: &str,
        role: Role,
        domains: &[String],
        from: &str,
        now: i64,
    ) -> io::Result<Session> {
        let s = Session {
            token: random_hex(TOKEN_BYTES)?,
            login: login.to_string(),
            name: name.to_string(),
            role,
            domains: domains.to_vec(),
            csrf: random_hex(TOKEN_BYTES)?,
            created: now,
            used: now,
            from: from.to_string(),
        };
        self.write(&s)?;
        Ok(s)
    }

    fn write(&self, s: &Session) -> io::Result<()> {
        let path = self.path(&s.token);
        let tmp = self.dir.join(format!(".tmp-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(s.to_text().as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    }

    /// The live session of `token`, its last use now recorded; `None`
    /// for a token that is malformed, unknown, ended or expired (an
    /// expired one's file is removed).
    pub fn find(&self, token: &str, now: i64) -> Option<Session> {
        if !well_formed(token) {
            return None;
        }
        let path = self.path(token);
        let text = read_small(&path)?;
        let Some(mut s) = Session::parse(token, &text) else {
            let _ = fs::remove_file(&path);
            return None;
        };
        if self.expired(&s, now) {
            let _ = fs::remove_file(&path);
            return None;
        }
        if s.used != now {
            s.used = now;
            // A session that cannot be touched still serves this request.
            let _ = self.write(&s);
        }
        Some(s)
    }

    /// End the session of `token` (logout).
    pub fn end(&self, token: &str) {
        if well_formed(token) {
            let _ = fs::remove_file(self.path(token));
        }
    }

    /// A new token for the same login, and every other session of that
    /// login ended (a changed password: whoever had an old cookie is out).
    pub fn rotate(&self, old: &Session, now: i64) -> io::Result<Session> {
        let s = self.create(
            &old.login,
            &old.name,
            old.role,
            &old.domains,
            &old.from,
            now,
        )?;
        self.end(&old.token);
        self.end_login(&old.login, Some(&s));
        Ok(s)
    }

    /// End every session of the account `login` but `keep` (its
    /// password was set, or its mailbox removed).
    pub fn end_login(&self, login: &str, keep: Option<&Session>) {
        let keep = keep.map(|s| self.path(&s.token));
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let path = e.path();
            let theirs = e.file_name().to_string_lossy().starts_with(PREFIX)
                && keep.as_ref() != Some(&path)
                && read_small(&path)
                    .and_then(|t| Session::parse("", &t))
                    .is_some_and(|o| o.login == login);
            if theirs {
                let _ = fs::remove_file(&path);
            }
        }
    }

    /// Remove every expired session and stray temporary file.
    pub fn sweep(&self, now: i64) {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with(".tmp-") {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 60);
                if old {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            if !name.starts_with(PREFIX) {
                continue;
            }
            let live = read_small(&path)
                .and_then(|t| Session::parse("", &t))
                .is_some_and(|s| !self.expired(&s, now));
            if !live {
                let _ = fs::remove_file(&path);
            }
        }
    }
}

/// A state file's text (they are small; a huge one is not ours).
pub fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut t = String::new();
    f.take(64 * 1024).read_to_string(&mut t).ok()?;
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> Store {
        let dir = std::env::temp_dir().join(format!("mr-panel-sess-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Store::open(dir, 1800, 8 * 3600).unwrap()
    }

    #[test]
    fn a_session_is_found_by_its_token_and_the_files_do_not_hold_it() {
        let st = store("find");
        let s = st
            .create(
                "info-shop",
                "info@shop.example",
                Role::User,
                &[],
                "192.0.2.7",
                1000,
            )
            .unwrap();
        assert_eq!(s.token.len(), 64);
        assert_ne!(s.token, s.csrf);
        let found = st.find(&s.token, 1010).unwrap();
        assert_eq!((found.login.as_str(), found.used), ("info-shop", 1010));
        for e in fs::read_dir(&st.dir).unwrap() {
            let e = e.unwrap();
            assert!(!e.file_name().to_string_lossy().contains(&s.token));
            assert!(!fs::read_to_string(e.path()).unwrap().contains(&s.token));
        }
        // Another token, a malformed one, a path: nothing.
        let other = random_hex(32).unwrap();
        assert!(st.find(&other, 1010).is_none());
        assert!(st.find("../../etc/passwd", 1010).is_none());
        assert!(st.find("", 1010).is_none());
        fs::remove_dir_all(&st.dir).unwrap();
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_maximum_and_end_at_logout() {
        let st = store("expire");
        let s = st.create("bob", "bob", Role::Admin, &[], "", 1000).unwrap();
        // Idle: 1800 s without a request.
        assert!(st.find(&s.token, 1000 + 1799).is_some());
        assert!(st.find(&s.token, 1000 + 1799 + 1800).is_none());
        // The file went with it.
        assert!(st.find(&s.token, 1000 + 1800).is_none());
        // Used every 20 minutes, it still ends 8 h after login.
        let s = st.create("bob", "bob", Role::Admin, &[], "", 1000).unwrap();
        let mut t = 1000;
        while t + 1200 < 1000 + 8 * 3600 {
            t += 1200;
            assert!(st.find(&s.token, t).is_some(), "at {t}");
        }
        assert!(st.find(&s.token, 1000 + 8 * 3600).is_none());
        // Logout.
        let s = st.create("bob", "bob", Role::Admin, &[], "", 1000).unwrap();
        st.end(&s.token);
        assert!(st.find(&s.token, 1001).is_none());
        // Rotation: the old token ends, the new one carries the login.
        let s = st
            .create(
                "bob",
                "bob",
                Role::DomainAdmin,
                &["a.example".into()],
                "",
                1000,
            )
            .unwrap();
        let n = st.rotate(&s, 1002).unwrap();
        assert!(st.find(&s.token, 1003).is_none());
        let n = st.find(&n.token, 1003).unwrap();
        assert_eq!(n.domains, ["a.example"]);
        assert_ne!(n.csrf, s.csrf);
        // The sweep removes what expired, not what lives.
        let old = st.create("x", "x", Role::User, &[], "", 1).unwrap();
        st.sweep(1900);
        assert!(st.find(&n.token, 1905).is_some());
        assert!(!st.path(&old.token).exists());
        fs::remove_dir_all(&st.dir).unwrap();
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }
}
