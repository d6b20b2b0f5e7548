//! System accounts: `getpwnam`/`getpwuid`/`getgrnam` through the C
//! library, so NSS (files, LDAP, ...) is honoured exactly as sendmail does.
//!
//! [`UserDb`] is what resolution and delivery use: NSS in production; in a
//! private root (`MAILROOM_ROOT`, tests and `make demo`) with its own
//! `etc/passwd`, that file instead, so tests can have users without root.
//! An admin command reads `/etc/passwd` itself ahead of NSS
//! ([`UserDb::from_source`]), through the one parser here, which keeps
//! each entry's line ([`parse_passwd`]).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use crate::table::Source;

/// One passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

impl User {
    /// The full name sendmail derives from GECOS: the text before the first
    /// comma, with `&` replaced by the login name capitalised.
    pub fn full_name(&self) -> String {
        full_name_from_gecos(&self.gecos, &self.name)
    }
}

/// GECOS to a display name (see [`User::full_name`]).
pub fn full_name_from_gecos(gecos: &str, login: &str) -> String {
    let first = gecos.split(',').next().unwrap_or("");
    let mut cap = String::new();
    let mut chars = login.chars();
    if let Some(c) = chars.next() {
        cap.extend(c.to_uppercase());
        cap.push_str(chars.as_str());
    }
    first.replace('&', &cap).trim().to_string()
}

fn cstr(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the C library returns NUL-terminated strings inside the
    // caller-supplied buffer, which outlives this call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn lookup(
    by: impl Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> i32,
) -> Option<User> {
    let mut buf_len = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; buf_len];
        // SAFETY: an all-zero passwd is a valid out-parameter.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = by(&mut pw, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == libc::ERANGE && buf_len < 1 << 20 {
            buf_len *= 4;
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        return Some(User {
            name: cstr(pw.pw_name),
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            gecos: cstr(pw.pw_gecos),
            home: cstr(pw.pw_dir),
            shell: cstr(pw.pw_shell),
        });
    }
}

/// The account called `name`, exactly as spelled (no case folding here).
pub fn by_name(name: &str) -> Option<User> {
    if name.is_empty() || name.contains('\0') {
        return None;
    }
    let c = CString::new(name).ok()?;
    lookup(|pw, buf, len, res| {
        // SAFETY: all pointers are valid; buf has len bytes.
        unsafe { libc::getpwnam_r(c.as_ptr(), pw, buf, len, res) }
    })
}

/// The account with `uid`.
pub fn by_uid(uid: u32) -> Option<User> {
    lookup(|pw, buf, len, res| {
        // SAFETY: all pointers are valid; buf has len bytes.
        unsafe { libc::getpwuid_r(uid, pw, buf, len, res) }
    })
}

/// The gid of group `name`.
pub fn group_id(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: an all-zero group is a valid out-parameter.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: all pointers are valid; buf has buf.len() bytes.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut gr,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        None
    } else {
        Some(gr.gr_gid)
    }
}

/// One passwd(5) entry and its line in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub user: User,
    /// 1-based.
    pub line: usize,
}

/// A passwd(5) file, parsed: its entries in file order.  A name given
/// twice is the first one's, as the C library's `files` database reads
/// it.
#[derive(Debug, Clone, Default)]
pub struct PasswdFile {
    pub path: PathBuf,
    entries: Vec<PasswdEntry>,
    by_name: HashMap<String, usize>,
}

impl PasswdFile {
    pub fn parse(path: &Path, text: &str) -> PasswdFile {
        let mut f = PasswdFile {
            path: path.to_path_buf(),
            ..PasswdFile::default()
        };
        for e in parse_passwd(text) {
            f.push(e);
        }
        f
    }

    /// Add an entry (an admin change planning a new user: the line it
    /// will have).
    pub fn push(&mut self, e: PasswdEntry) {
        self.by_name
            .entry(e.user.name.clone())
            .or_insert(self.entries.len());
        self.entries.push(e);
    }

    /// The entry of `name`, exactly as spelled.
    pub fn get(&self, name: &str) -> Option<&PasswdEntry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// The first entry with `uid`.
    pub fn by_uid(&self, uid: u32) -> Option<&PasswdEntry> {
        self.entries.iter().find(|e| e.user.uid == uid)
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[PasswdEntry] {
        &self.entries
    }
}

/// Where user accounts come from: a passwd file's entries, the system's
/// user database (NSS), or the file first and then the system.
#[derive(Debug, Clone)]
pub struct UserDb {
    file: Option<PasswdFile>,
    /// Ask the system (NSS) for names and uids the file does not have.
    nss: bool,
}

impl Default for UserDb {
    fn default() -> UserDb {
        UserDb::system()
    }
}

impl UserDb {
    /// The system's accounts.
    pub fn system() -> UserDb {
        UserDb {
            file: None,
            nss: true,
        }
    }

    /// Accounts from a passwd(5) file only.
    pub fn from_file(path: &Path) -> std::io::Result<UserDb> {
        let text = std::fs::read_to_string(path)?;
        Ok(UserDb {
            file: Some(PasswdFile::parse(path, &text)),
            nss: false,
        })
    }

    /// For a configuration: the private root's `etc/passwd` when running
    /// under a private root that has one, else the system.
    pub fn for_root(paths: &crate::config::Paths) -> UserDb {
        if !paths.is_system() {
            let p = paths.resolve("/etc/passwd");
            if let Ok(db) = UserDb::from_file(&p) {
                return db;
            }
        }
        UserDb::system()
    }

    /// As [`UserDb::for_root`], from `source`: read as text
    /// ([`Source::Text`]), the real system's `/etc/passwd` (as a change
    /// leaves it) comes before NSS, so that its entries have lines and a
    /// user the change adds is known.
    pub fn from_source(paths: &crate::config::Paths, source: &Source) -> UserDb {
        if !source.is_text() {
            return UserDb::for_root(paths);
        }
        let p = paths.resolve("/etc/passwd");
        match source.read(&p) {
            Ok(Some(text)) => UserDb {
                file: Some(PasswdFile::parse(&p, &String::from_utf8_lossy(&text))),
                nss: paths.is_system(),
            },
            _ => UserDb::system(),
        }
    }

    pub fn by_name(&self, name: &str) -> Option<User> {
        self.find(name).map(|(u, _)| u)
    }

    /// The account `name` and its passwd line (`None`: from NSS).
    pub fn find(&self, name: &str) -> Option<(User, Option<usize>)> {
        if let Some(e) = self.file.as_ref().and_then(|f| f.get(name)) {
            return Some((e.user.clone(), Some(e.line)));
        }
        if self.nss {
            return by_name(name).map(|u| (u, None));
        }
        None
    }

    pub fn by_uid(&self, uid: u32) -> Option<User> {
        if let Some(e) = self.file.as_ref().and_then(|f| f.by_uid(uid)) {
            return Some(e.user.clone());
        }
        if self.nss { by_uid(uid) } else { None }
    }

    /// The passwd file read, if any.
    pub fn file(&self) -> Option<&PasswdFile> {
        self.file.as_ref()
    }

    /// Does it ask the system's user database too?
    pub fn asks_system(&self) -> bool {
        self.nss
    }

    /// Add a user an admin change is planning, at `line` of `path`.
    pub fn stage(&mut self, path: &Path, user: User, line: usize) {
        self.file
            .get_or_insert_with(|| PasswdFile {
                path: path.to_path_buf(),
                ..PasswdFile::default()
            })
            .push(PasswdEntry { user, line });
    }
}

/// Parse passwd(5) text: the entries with their lines.  Comments, blank
/// lines, NIS `+`/`-` lines and lines without a name or numeric ids are
/// no entries.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            Some(PasswdEntry {
                user: parse_passwd_line(l)?,
                line: i + 1,
            })
        })
        .collect()
}

/// One passwd(5) line (see [`parse_passwd`]).
fn parse_passwd_line(l: &str) -> Option<User> {
    if l.trim().is_empty() || l.starts_with(['#', '+', '-']) {
        return None;
    }
    let f: Vec<&str> = l.split(':').collect();
    if f.len() < 7 || f[0].is_empty() {
        return None;
    }
    Some(User {
        name: f[0].to_string(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        gecos: f[4].to_string(),
        home: f[5].to_string(),
        shell: f[6].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_file() {
        let users = parse_passwd(
            "root:x:0:0:root:/root:/bin/sh
# c
bob:x:1000:1000:Bob B,,,:/home/bob:/bin/sh
bad line
",
        );
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].user.full_name(), "Bob B");
        assert_eq!(users[1].user.home, "/home/bob");
        assert_eq!(users[1].line, 3);
    }

    #[test]
    fn gecos_full_name() {
        assert_eq!(
            full_name_from_gecos("Dave Q. User,,,", "dave"),
            "Dave Q. User"
        );
        assert_eq!(full_name_from_gecos("& Smith,Room 1", "bob"), "Bob Smith");
        assert_eq!(full_name_from_gecos("", "x"), "");
    }

    #[test]
    fn root_exists() {
        let r = by_uid(0).expect("uid 0");
        assert_eq!(r.name, "root");
        assert_eq!(by_name("root").unwrap().uid, 0);
        assert!(by_name("no-such-user-hopefully").is_none());
        assert!(by_name("").is_none());
    }
}
