//! System accounts: `getpwnam`/`getpwuid`/`getgrnam` through the C
//! library, so NSS (files, LDAP, ...) is honoured exactly as sendmail does.
//!
//! [`UserDb`] is what resolution and delivery use: NSS in production; in a
//! private root (`MAILROOM_ROOT`, tests and `make demo`) with its own
//! `etc/passwd`, that file instead, so tests can have users without root.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::Path;

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

/// Where user accounts come from.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    /// `None`: the system (NSS).  `Some`: a private passwd file's entries.
    file: Option<HashMap<String, User>>,
}

impl UserDb {
    /// The system's accounts.
    pub fn system() -> UserDb {
        UserDb { file: None }
    }

    /// Accounts from a passwd(5) file.
    pub fn from_file(path: &Path) -> std::io::Result<UserDb> {
        let text = std::fs::read_to_string(path)?;
        Ok(UserDb {
            file: Some(
                parse_passwd(&text)
                    .into_iter()
                    .map(|u| (u.name.clone(), u))
                    .collect(),
            ),
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

    pub fn by_name(&self, name: &str) -> Option<User> {
        match &self.file {
            None => by_name(name),
            Some(m) => m.get(name).cloned(),
        }
    }

    pub fn by_uid(&self, uid: u32) -> Option<User> {
        match &self.file {
            None => by_uid(uid),
            Some(m) => m.values().find(|u| u.uid == uid).cloned(),
        }
    }
}

/// Parse passwd(5) lines.
pub fn parse_passwd(text: &str) -> Vec<User> {
    text.lines().filter_map(parse_passwd_line).collect()
}

/// One passwd(5) line; `None` for comments, blank lines, NIS `+`/`-`
/// entries and lines without numeric ids.
pub fn parse_passwd_line(l: &str) -> Option<User> {
    if l.trim().is_empty() || l.starts_with('#') {
        return None;
    }
    let f: Vec<&str> = l.split(':').collect();
    if f.len() < 7 {
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
        assert_eq!(users[1].full_name(), "Bob B");
        assert_eq!(users[1].home, "/home/bob");
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
