//! Passwords against what the account files hold: the system's `crypt(3)`
//! for `/etc/shadow` and crypt-hashed virtual secrets, `{PLAIN}` secrets,
//! and APOP digests (RFC 1939 §7).  Every comparison takes the same time
//! whatever the bytes.

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

use md5::{Digest, Md5};

use crate::config::Config;

/// A virtual account's secret field against a password.
pub(super) fn secret_matches(secret: &str, pw: &[u8]) -> bool {
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
pub(super) fn shadow_hash(cfg: &Config, user: &str) -> Option<String> {
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
pub(super) fn dummy_hash(cfg: &Config) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
