//! Who is logging in: the forms a login name takes, the account it names,
//! and the password check.
//!
//! ## Login names
//!
//! `bob`, `info@example.com`, `info%example.com` and `info/example.com`
//! (the forms Outlook, Eudora-era and Netscape-era clients send; the first
//! `%` or `/` becomes `@`).  A name is at most 128 bytes of
//! `[A-Za-z0-9._+=-]` and one separator, and never becomes a path.
//!
//! * A bare name is a system account (`/var/mail/NAME` or `~/Maildir`) or
//!   a bare-named virtual account.
//! * An address is a virtual account of `/etc/mail/passwd` with that login,
//!   or else whatever mailbox mail for that address is delivered to —
//!   virtusertable, then aliases, exactly as delivery resolves it (without
//!   `.forward` files).  `info@example.com` logs into the mailbox of the
//!   user the virtusertable names; an address that reaches several
//!   mailboxes logs into none.
//!
//! ## Passwords
//!
//! System accounts: the hash in `/etc/shadow`, checked with the system's
//! own `crypt(3)` (libcrypt: yescrypt, SHA-512, ...); locked (`!`, `*`),
//! empty and expired entries never match; root and accounts below
//! `pop3_first_uid` are refused.  Virtual accounts: their field in
//! `/etc/mail/passwd` — a crypt hash, `{CRYPT}hash`, or `{PLAIN}secret`
//! (the only form APOP can use).
//!
//! The whole check runs in a short-lived child process ([`authenticate`]):
//! hashes and account files never live in the process that goes on to
//! serve the mailbox.  An unknown name costs a `crypt()` like a known one
//! (against a real hash from the same files), so timing reveals nothing.

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

use md5::{Digest, Md5};

use super::settings::Settings;
use crate::accounts::{Account, Accounts, MailboxPath};
use crate::config::Config;
use crate::resolve::{Resolver, Target};
use crate::users::UserDb;

/// Longest login name accepted.
pub const MAX_NAME: usize = 128;

/// What the client offered as proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// USER/PASS, AUTH PLAIN, AUTH LOGIN.
    Password(Vec<u8>),
    /// APOP: the greeting's timestamp and the client's digest.
    Apop { timestamp: String, digest: String },
}

/// An authenticated account: what the session needs to serve its mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account's login (system user name or virtual login).
    pub login: String,
    /// The system user the mailbox belongs to.
    pub owner: String,
    pub uid: u32,
    pub gid: u32,
    pub mailbox: MailboxPath,
}

/// A login name in its canonical form (`user` or `user@domain`, lower
/// case), or `None` when it is not an acceptable name.
pub fn normalize(raw: &[u8]) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_NAME {
        return None;
    }
    let mut out = String::with_capacity(raw.len());
    let mut separated = false;
    for &b in raw {
        let c = match b {
            b'@' | b'%' | b'/' if !separated => {
                separated = true;
                '@'
            }
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'+' | b'=' => b as char,
            b'A'..=b'Z' => (b as char).to_ascii_lowercase(),
            _ => return None,
        };
        out.push(c);
    }
    let (local, domain) = match out.split_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (out.as_str(), None),
    };
    if local.is_empty() || local.starts_with('.') || local.contains("..") {
        return None;
    }
    if let Some(d) = domain
        && (d.is_empty() || d.starts_with('.') || d.ends_with('.') || d.contains(".."))
    {
        return None;
    }
    Some(out)
}

/// Why a login failed, for the log only (the client hears the same in
/// every case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No such account (its name is not logged).
    Unknown,
    /// The account exists: wrong password, or not allowed to log in.
    Account(String),
}

/// Check `name` and `proof` in a child process: the identity, or why not.
pub fn authenticate(
    cfg: &Config,
    settings: &Settings,
    name: &[u8],
    proof: &Proof,
) -> Result<Identity, Refused> {
    let answer = crate::privs::in_child(|| match check(cfg, settings, name, proof) {
        Ok(id) => encode(&id),
        Err(Refused::Account(login)) if !login.contains('\n') => format!("-{login}\n").into_bytes(),
        Err(_) => b"?\n".to_vec(),
    })
    .map_err(|_| Refused::Unknown)?;
    match answer.strip_prefix(b"-") {
        Some(rest) => Err(Refused::Account(
            String::from_utf8_lossy(rest).trim_end().to_string(),
        )),
        None => decode(&answer).ok_or(Refused::Unknown),
    }
}

/// The check itself (in the child).
fn check(
    cfg: &Config,
    settings: &Settings,
    name: &[u8],
    proof: &Proof,
) -> Result<Identity, Refused> {
    let login = normalize(name);
    let account = login.as_deref().and_then(|l| find_account(cfg, l));
    let ok = match (&account, proof) {
        (Some(a), Proof::Password(pw)) if a.is_virtual => {
            a.secret.as_deref().is_some_and(|s| secret_matches(s, pw))
        }
        (Some(a), Proof::Password(pw)) => {
            let allowed = a.owner.uid != 0 && a.owner.uid >= settings.first_uid;
            let matched = shadow_hash(cfg, &a.owner.name).is_some_and(|h| crypt_matches(pw, &h));
            allowed && matched
        }
        (Some(a), Proof::Apop { timestamp, digest }) => a
            .secret
            .as_deref()
            .and_then(|s| s.strip_prefix("{PLAIN}"))
            .is_some_and(|secret| apop_matches(timestamp, secret, digest)),
        (None, Proof::Password(pw)) => {
            // As slow as a real check.
            let _ = crypt_matches(pw, &dummy_hash(cfg));
            false
        }
        (None, Proof::Apop { .. }) => false,
    };
    let Some(a) = account else {
        return Err(Refused::Unknown);
    };
    if !ok {
        return Err(Refused::Account(a.login));
    }
    Ok(Identity {
        login: a.login,
        owner: a.owner.name,
        uid: a.owner.uid,
        gid: a.owner.gid,
        mailbox: a.mailbox,
    })
}

/// The account a canonical login name names (see the module text).
pub fn find_account(cfg: &Config, login: &str) -> Option<Account> {
    let accounts = Accounts::load(cfg, UserDb::for_root(&cfg.paths));
    if let Some(a) = accounts.virtual_account(login) {
        return Some(a);
    }
    if !login.contains('@') {
        return accounts.system(login);
    }
    let res = Resolver::for_checking(cfg).resolve(login);
    let mut found: Option<Account> = None;
    for f in &res.finals {
        match &f.target {
            Target::Mailbox { account, .. } => match &found {
                Some(a) if a.login != account.login => return None,
                _ => found = Some(account.clone()),
            },
            Target::Error(_) => return None,
            _ => {}
        }
    }
    found
}

/// A virtual account's secret field against a password.
fn secret_matches(secret: &str, pw: &[u8]) -> bool {
    if let Some(plain) = secret.strip_prefix("{PLAIN}") {
        return !plain.is_empty() && constant_time_eq(plain.as_bytes(), pw);
    }
    let hash = secret.strip_prefix("{CRYPT}").unwrap_or(secret);
    hash.starts_with('$') && crypt_matches(pw, hash)
}

/// RFC 1939 §7: the digest is MD5(timestamp secret) in lower-case hex.
pub fn apop_matches(timestamp: &str, secret: &str, digest: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let mut h = Md5::new();
    h.update(timestamp.as_bytes());
    h.update(secret.as_bytes());
    let want = hex(&h.finalize());
    constant_time_eq(want.as_bytes(), digest.to_ascii_lowercase().as_bytes())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The shadow file (the real one, or the private root's).
fn shadow_path(cfg: &Config) -> PathBuf {
    cfg.paths.resolve("/etc/shadow")
}

/// A system user's usable password hash, if any.
fn shadow_hash(cfg: &Config, user: &str) -> Option<String> {
    let text = std::fs::read_to_string(shadow_path(cfg)).ok()?;
    let today = crate::date::now() / 86400;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 2 || f[0] != user {
            return None;
        }
        let hash = f[1];
        // Locked, disabled or empty: no login.
        if !hash.starts_with('$') {
            return None;
        }
        // Field 8: the day the account expires.
        if let Some(exp) = f.get(7).and_then(|e| e.parse::<i64>().ok())
            && today >= exp
        {
            return None;
        }
        Some(hash.to_string())
    })
}

/// A real hash to check unknown names against (so they take as long).
fn dummy_hash(cfg: &Config) -> String {
    std::fs::read_to_string(shadow_path(cfg))
        .ok()
        .and_then(|t| {
            t.lines()
                .filter_map(|l| l.split(':').nth(1))
                .find(|h| h.starts_with('$'))
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            "$y$j9T$7w9HRL/jGeoPyOG8d4exD1$Y5hyAoiyAoLdzUC0m5VJLryUuJgrdkW.vSInkVdbHFD".into()
        })
}

pub(crate) type CryptFn =
    unsafe extern "C" fn(*const libc::c_char, *const libc::c_char) -> *mut libc::c_char;

/// The system's crypt(3), from libcrypt (loaded at run time, so building
/// needs no development package).
pub(crate) fn system_crypt() -> Option<CryptFn> {
    static CRYPT: OnceLock<Option<usize>> = OnceLock::new();
    let addr = *CRYPT.get_or_init(|| {
        for lib in [c"libcrypt.so.1", c"libcrypt.so.2", c"libcrypt.so"] {
            // SAFETY: dlopen/dlsym with NUL-terminated names.
            unsafe {
                let h = libc::dlopen(lib.as_ptr(), libc::RTLD_NOW);
                if h.is_null() {
                    continue;
                }
                let f = libc::dlsym(h, c"crypt".as_ptr());
                if !f.is_null() {
                    return Some(f as usize);
                }
            }
        }
        None
    });
    // SAFETY: the symbol is crypt(3) with this signature.
    addr.map(|a| unsafe { std::mem::transmute::<usize, CryptFn>(a) })
}

/// crypt(password, hash) == hash.
pub fn crypt_matches(pw: &[u8], hash: &str) -> bool {
    let (Ok(key), Ok(setting)) = (CString::new(pw), CString::new(hash)) else {
        return false;
    };
    let Some(crypt) = system_crypt() else {
        crate::log::err(None, "cannot load libcrypt: no password can be checked");
        return false;
    };
    // SAFETY: two valid C strings; crypt returns a static buffer or NULL.
    let out = unsafe { crypt(key.as_ptr(), setting.as_ptr()) };
    if out.is_null() {
        return false;
    }
    // SAFETY: a NUL-terminated string from crypt.
    let got = unsafe { CStr::from_ptr(out) }.to_bytes();
    !got.starts_with(b"*") && constant_time_eq(got, hash.as_bytes())
}

/// The child's answer: one field per line.
fn encode(id: &Identity) -> Vec<u8> {
    let (kind, path) = match &id.mailbox {
        MailboxPath::Mbox(p) => ("mbox", p),
        MailboxPath::Maildir(p) => ("maildir", p),
    };
    let fields = [
        id.login.clone(),
        id.owner.clone(),
        id.uid.to_string(),
        id.gid.to_string(),
        kind.to_string(),
        path.to_string_lossy().into_owned(),
    ];
    if fields.iter().any(|f| f.contains('\n')) {
        return Vec::new();
    }
    let mut out = fields.join("\n").into_bytes();
    out.push(b'\n');
    out
}

fn decode(bytes: &[u8]) -> Option<Identity> {
    let text = std::str::from_utf8(bytes).ok()?;
    let f: Vec<&str> = text.strip_suffix('\n')?.split('\n').collect();
    let [login, owner, uid, gid, kind, path] = f[..] else {
        return None;
    };
    let path = PathBuf::from(path);
    Some(Identity {
        login: login.to_string(),
        owner: owner.to_string(),
        uid: uid.parse().ok()?,
        gid: gid.parse().ok()?,
        mailbox: match kind {
            "mbox" => MailboxPath::Mbox(path),
            "maildir" => MailboxPath::Maildir(path),
            _ => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_name_forms() {
        assert_eq!(normalize(b"Bob").as_deref(), Some("bob"));
        assert_eq!(
            normalize(b"info@Example.com").as_deref(),
            Some("info@example.com")
        );
        assert_eq!(
            normalize(b"info%example.com").as_deref(),
            Some("info@example.com")
        );
        assert_eq!(
            normalize(b"info/example.com").as_deref(),
            Some("info@example.com")
        );
        for bad in [
            &b""[..],
            b"../etc/passwd",
            b"a/b/c",
            b".hidden",
            b"a b",
            b"a\0b",
            b"bob@",
            b"@example.com",
            b"bob@example..com",
            "b\u{e9}b".as_bytes(),
        ] {
            assert_eq!(normalize(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(normalize(&[b'a'; 129]), None);
    }

    #[test]
    fn apop_digest_of_rfc_1939() {
        assert!(apop_matches(
            "<1896.697170952@dbc.mtview.ca.us>",
            "tanstaaf",
            "c4c9334bac560ecc979e58001b3e22fb"
        ));
        assert!(!apop_matches(
            "<1896.697170952@dbc.mtview.ca.us>",
            "wrong",
            "c4c9334bac560ecc979e58001b3e22fb"
        ));
    }

    #[test]
    fn secrets() {
        assert!(secret_matches("{PLAIN}s3cret", b"s3cret"));
        assert!(!secret_matches("{PLAIN}s3cret", b"s3cre"));
        assert!(!secret_matches("{PLAIN}", b""));
        assert!(!secret_matches("*", b"*"));
        assert!(!secret_matches("!", b""));
        let h = "$y$j9T$7w9HRL/jGeoPyOG8d4exD1$Y5hyAoiyAoLdzUC0m5VJLryUuJgrdkW.vSInkVdbHFD";
        assert!(secret_matches(h, b"mailroom-dummy-password"));
        assert!(secret_matches(
            &format!("{{CRYPT}}{h}"),
            b"mailroom-dummy-password"
        ));
        assert!(!secret_matches(h, b"guess"));
    }

    #[test]
    fn identity_round_trip() {
        let id = Identity {
            login: "info@example.com".into(),
            owner: "vmail".into(),
            uid: 5000,
            gid: 5000,
            mailbox: MailboxPath::Maildir("/var/mail/virtual/example.com/info/".into()),
        };
        assert_eq!(decode(&encode(&id)), Some(id));
        assert_eq!(decode(b""), None);
    }
}
