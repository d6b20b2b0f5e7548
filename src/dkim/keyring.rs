//! The DKIM keys on disk, and the keys of one queue run.
//!
//! `/etc/mail/dkim/DOMAIN/SELECTOR.key`: one private key per file, PEM
//! ([`super::keys`]), owned by root, mode 0600 (only the queue runner,
//! which runs as root, reads them).  The file name gives the selector.
//! Other names (dot files, `*.txt`) are ignored.  A domain with an RSA and
//! an Ed25519 key signs with both (RFC 8463 §4: receivers that do not know
//! Ed25519 ignore that signature).
//!
//! The signing domain is the domain of the `From:` address when it has
//! keys (DMARC alignment), else the envelope sender's; subdomains have
//! their own keys or none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::canon::split;
use super::keys::{Key, valid_domain};
use super::sign::sign_message;
use crate::config::Config;

/// `/etc/mail/dkim`.
pub fn keys_dir(cfg: &Config) -> PathBuf {
    cfg.paths.etc_mail("dkim")
}

/// The key files of `domain`: (selector, path), sorted; empty when the
/// domain has none.
pub fn key_files(cfg: &Config, domain: &str) -> std::io::Result<Vec<(String, PathBuf)>> {
    let dir = keys_dir(cfg).join(domain);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(sel) = name.strip_suffix(".key")
            && !name.starts_with('.')
        {
            out.push((sel.to_string(), e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Load one key file.
pub fn load_key(selector: &str, path: &Path) -> Result<Key, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {}", path.display(), crate::exit::io_reason(&e)))?;
    Key::from_pem(selector, &text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every key of `domain`; an error when any of them cannot be used.
pub fn load_domain(cfg: &Config, domain: &str) -> Result<Vec<Key>, String> {
    let files = key_files(cfg, domain).map_err(|e| {
        format!(
            "{}: {}",
            keys_dir(cfg).join(domain).display(),
            crate::exit::io_reason(&e)
        )
    })?;
    files.iter().map(|(s, p)| load_key(s, p)).collect()
}

/// A domain's keys as loaded (or why they could not be).
type DomainKeys = Arc<Result<Vec<Key>, String>>;

/// The keys of one queue run, loaded once per domain.
pub struct Keyring {
    cfg: Config,
    loaded: Mutex<HashMap<String, DomainKeys>>,
}

impl Keyring {
    pub fn new(cfg: &Config) -> Keyring {
        Keyring {
            cfg: cfg.clone(),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    fn keys(&self, domain: &str) -> DomainKeys {
        let mut map = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(domain.to_string())
            .or_insert_with(|| Arc::new(load_domain(&self.cfg, domain)))
            .clone()
    }

    /// `message` signed for the first of its From: domain and `sender`'s
    /// domain that has keys (`None`: neither has); an error when that
    /// domain's keys cannot be read (the caller defers: sending unsigned
    /// would fail a DMARC policy the keys were made for).
    pub fn sign(&self, message: &[u8], sender: &str, now: i64) -> Result<Option<Vec<u8>>, String> {
        let mut candidates = Vec::new();
        if let Some(d) = from_domain(message) {
            candidates.push(d);
        }
        if let (_, Some(d)) = crate::address::split_addr(sender) {
            candidates.push(d.to_ascii_lowercase());
        }
        for domain in candidates {
            if !valid_domain(&domain) {
                continue;
            }
            let keys = self.keys(&domain);
            match keys.as_ref() {
                Err(e) => return Err(format!("DKIM key for {domain}: {e}")),
                Ok(k) if k.is_empty() => continue,
                Ok(k) => return sign_message(message, &domain, k, now).map(Some),
            }
        }
        Ok(None)
    }
}

/// The domain of the first address of the first `From:` field.
fn from_domain(message: &[u8]) -> Option<String> {
    let (header, _) = split(message);
    let h = crate::message::Header::parse(header);
    let from = h.get("From")?.value();
    let list = crate::address::parse_list(&from).ok()?;
    let first = list.iter().find(|m| !m.addr.is_empty())?;
    crate::address::split_addr(&first.addr)
        .1
        .map(str::to_ascii_lowercase)
}
