//! SRS, the Sender Rewriting Scheme: mail from outside that an alias or a
//! `.forward` sends on to another outside address leaves with an envelope
//! sender of this host's, so the next server's SPF check passes; a bounce
//! to that address is decoded and delivered back to the original sender.
//!
//! ```text
//! alice@far.example  ->  SRS0=HHHH=TT=far.example=alice@HOSTNAME
//! ```
//!
//! * `TT`: the day (days since 1970, modulo 1024) in base 32; an address
//!   older than [`MAX_AGE_DAYS`] is refused.
//! * `HHHH`: the first four base-32 characters of HMAC-MD5 over
//!   `TT=domain=local` (lower-cased) with the host's secret, so nobody can
//!   make this host relay to an address it did not forward from.  Only this
//!   host checks it; base 32 keeps it intact through servers that change
//!   the case of local parts.
//! * The secret: `/etc/mail/srs-secret`, 32 random bytes in hex, made by
//!   the first root process that needs it; `root:mqueue 0640`, so the SMTP
//!   server (group `mqueue`) can check bounce addresses at RCPT time.
//!   Without a readable secret nothing is rewritten (mail is forwarded
//!   with its original sender).
//! * A sender that already is an SRS address is kept: a bounce then goes
//!   back along the chain of forwarders, each decoding its own part.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use md5::{Digest, Md5};

use crate::config::Config;

/// How long an SRS address is honoured.
pub const MAX_AGE_DAYS: i64 = 21;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The host's SRS secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Read the secret; as root, make it when missing.
    pub fn load(cfg: &Config) -> Option<Secret> {
        let path = cfg.paths.etc_mail("srs-secret");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let t = text.trim();
            return (t.len() >= 32).then(|| Secret(t.as_bytes().to_vec()));
        }
        let may_write = nix::unistd::geteuid().is_root() || !cfg.paths.is_system();
        if !may_write || !path.parent().is_some_and(|p| p.is_dir()) {
            return None;
        }
        let mut raw = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut raw))
            .ok()?;
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = path.with_extension("new");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&tmp)
            .ok()?;
        f.write_all(format!("{hex}\n").as_bytes()).ok()?;
        f.sync_all().ok()?;
        if let Some(g) = crate::users::group_id("mqueue") {
            let _ = std::os::unix::fs::fchown(&f, None, Some(g));
        }
        // Another process may have won the race: keep its secret.
        if std::fs::hard_link(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return Secret::load_existing(&path);
        }
        let _ = std::fs::remove_file(&tmp);
        Some(Secret(hex.into_bytes()))
    }

    fn load_existing(path: &std::path::Path) -> Option<Secret> {
        let t = std::fs::read_to_string(path).ok()?;
        let t = t.trim();
        (t.len() >= 32).then(|| Secret(t.as_bytes().to_vec()))
    }

    /// A secret given directly (tests).
    pub fn from_bytes(b: &[u8]) -> Secret {
        Secret(b.to_vec())
    }

    fn hash(&self, stamp: &str, domain: &str, local: &str) -> String {
        let msg = format!("{stamp}={domain}={local}").to_ascii_lowercase();
        let mac = hmac_md5(&self.0, msg.as_bytes());
        // 4 characters of base 32 = 20 bits.
        let bits = u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]]);
        (0..4)
            .map(|i| BASE32[((bits >> (27 - 5 * i)) & 31) as usize] as char)
            .collect()
    }
}

fn hmac_md5(key: &[u8], msg: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..16].copy_from_slice(&Md5::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Md5::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Md5::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn day_stamp(now: i64) -> String {
    let d = (now.div_euclid(86_400)).rem_euclid(1024) as usize;
    [BASE32[d >> 5] as char, BASE32[d & 31] as char]
        .iter()
        .collect()
}

/// Is `local` an SRS local part?
pub fn is_srs(local: &str) -> bool {
    let l = local.to_ascii_lowercase();
    l.starts_with("srs0=") || l.starts_with("srs1=")
}

/// Rewrite `sender` (`local@domain`) as an address at `host`.  `None` for
/// the null sender, an unqualified one, or one that is SRS already.
pub fn forward_sender(secret: &Secret, sender: &str, host: &str, now: i64) -> Option<String> {
    let (local, domain) = crate::address::split_addr(sender);
    let domain = domain?;
    if local.is_empty() || is_srs(local) || local.contains('=') && local.starts_with('"') {
        return None;
    }
    let stamp = day_stamp(now);
    let hash = secret.hash(&stamp, domain, local);
    Some(format!("SRS0={hash}={stamp}={domain}={local}@{host}"))
}

/// Why an SRS address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    Malformed,
    BadHash,
    Expired,
}

/// Decode an SRS0 local part back into the original sender.
pub fn reverse(secret: &Secret, local: &str, now: i64) -> Result<String, Invalid> {
    let rest = match local.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("SRS0=") => &local[5..],
        _ => return Err(Invalid::Malformed),
    };
    let mut parts = rest.splitn(4, '=');
    let (Some(hash), Some(stamp), Some(domain), Some(orig)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid::Malformed);
    };
    if stamp.len() != 2 || domain.is_empty() || orig.is_empty() {
        return Err(Invalid::Malformed);
    }
    if !secret.hash(stamp, domain, orig).eq_ignore_ascii_case(hash) {
        return Err(Invalid::BadHash);
    }
    let value = |c: u8| BASE32.iter().position(|&b| b == c.to_ascii_lowercase());
    let s = stamp.as_bytes();
    let (Some(hi), Some(lo)) = (value(s[0]), value(s[1])) else {
        return Err(Invalid::Malformed);
    };
    let then = (hi * 32 + lo) as i64;
    let today = now.div_euclid(86_400).rem_euclid(1024);
    if (today - then).rem_euclid(1024) > MAX_AGE_DAYS {
        return Err(Invalid::Expired);
    }
    Ok(format!("{orig}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_tamper_and_expiry() {
        let s = Secret::from_bytes(b"0123456789abcdef0123456789abcdef");
        let now = 1_795_000_000;
        let a = forward_sender(&s, "Alice@Far.Example", "mx.test", now).unwrap();
        assert!(
            a.starts_with("SRS0=") && a.ends_with("=Far.Example=Alice@mx.test"),
            "{a}"
        );
        let local = a.split('@').next().unwrap();
        assert_eq!(reverse(&s, local, now).unwrap(), "Alice@Far.Example");
        // Servers may change the case of local parts.
        assert_eq!(
            reverse(&s, &local.to_ascii_uppercase(), now).unwrap(),
            "ALICE@FAR.EXAMPLE"
        );
        let forged = local.replace("=Alice", "=mallory");
        assert_eq!(reverse(&s, &forged, now), Err(Invalid::BadHash));
        assert_eq!(reverse(&s, local, now + 22 * 86_400), Err(Invalid::Expired));
        assert!(reverse(&s, local, now + 20 * 86_400).is_ok());
        let other = Secret::from_bytes(b"another secret, another host....");
        assert_eq!(reverse(&other, local, now), Err(Invalid::BadHash));
        assert_eq!(forward_sender(&s, "", "mx.test", now), None);
        assert_eq!(forward_sender(&s, &a, "mx2.test", now), None, "kept");
    }
}
