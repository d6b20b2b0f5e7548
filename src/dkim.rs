//! DKIM signatures on outbound mail: RFC 6376 with `rsa-sha256` and RFC
//! 8463 `ed25519-sha256`, relaxed/relaxed canonicalization, no `l=`.
//!
//! ## Keys on disk
//!
//! `/etc/mail/dkim/DOMAIN/SELECTOR.key`: one private key per file, PEM,
//! owned by root, mode 0600 (only the queue runner, which runs as root,
//! reads them).  The file name gives the selector, the key the algorithm:
//! PKCS#8 (`BEGIN PRIVATE KEY`, RSA or Ed25519: what `mailroom dkim
//! generate` and today's `opendkim-genkey` write) or PKCS#1 (`BEGIN RSA
//! PRIVATE KEY`, older OpenSSL's), so an OpenDKIM key is copied in as it is.
//! Other names (dot files, `*.txt`) are ignored.  A domain with an RSA and
//! an Ed25519 key signs with both (RFC 8463 §4: receivers that do not know
//! Ed25519 ignore that signature).
//!
//! ## What is signed
//!
//! The signing domain is the domain of the `From:` address when it has
//! keys (DMARC alignment), else the envelope sender's; subdomains have
//! their own keys or none.  `h=` lists every present field of
//! [`SIGNED_FIELDS`] once per instance, and `From` once more so that a
//! second `From:` cannot be added.  The body is signed as it goes on the
//! wire (CRLF line ends, before dot-stuffing); a body with 8-bit bytes is
//! made 7-bit first (RFC 6376 §5.3), so no relay has to convert it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair, RsaKeyPair};

use crate::config::Config;

/// Header fields signed when present (RFC 6376 §5.4.1's list, plus the
/// list headers bulk senders are asked to sign).
pub const SIGNED_FIELDS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Sender",
    "List-Id",
    "List-Post",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
];

/// The longest RSA key `generate` makes (ring signs 2048..=8192 bits).
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    /// `a=` of the signature.
    pub fn tag(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa-sha256",
            Algorithm::Ed25519 => "ed25519-sha256",
        }
    }

    /// `k=` of the DNS record.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// One private key and its selector.
pub struct Key {
    pub selector: String,
    pair: Pair,
}

impl Key {
    /// Read a PEM key (see the module text).
    pub fn from_pem(selector: &str, pem: &str) -> Result<Key, String> {
        let (label, der) = pem_decode(pem).ok_or("not a PEM private key")?;
        let pair = match label.as_str() {
            "PRIVATE KEY" => match Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
                Ok(k) => Pair::Ed25519(k),
                Err(_) => Pair::Rsa(
                    RsaKeyPair::from_pkcs8(&der)
                        .map_err(|e| format!("not an Ed25519 or usable RSA key ({e})"))?,
                ),
            },
            "RSA PRIVATE KEY" => Pair::Rsa(
                RsaKeyPair::from_der(&der).map_err(|e| format!("not a usable RSA key ({e})"))?,
            ),
            other => return Err(format!("a {other:?}, not a private key")),
        };
        Ok(Key {
            selector: selector.to_string(),
            pair,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Rsa(_) => Algorithm::Rsa,
            Pair::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Key size in bits.
    pub fn bits(&self) -> usize {
        match &self.pair {
            Pair::Rsa(k) => k.public().modulus_len() * 8,
            Pair::Ed25519(_) => 256,
        }
    }

    /// `p=`: SubjectPublicKeyInfo for RSA (what every verifier reads), the
    /// raw 32 bytes for Ed25519 (RFC 8463 §4.2).
    pub fn public_key(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(k) => rsa_spki(k.public_key().as_ref()),
            Pair::Ed25519(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// The TXT record's text: `v=DKIM1; k=rsa; p=...`.
    pub fn dns_record(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm().key_type(),
            crate::b64::encode(&self.public_key())
        )
    }

    /// Sign the hash input of one signature.  Ed25519 signs the SHA-256 of
    /// the data (RFC 8463 §3), RSA the data (PKCS#1 v1.5 hashes it).
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        match &self.pair {
            Pair::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    data,
                    &mut sig,
                )
                .map_err(|_| "RSA signing failed".to_string())?;
                Ok(sig)
            }
            Pair::Ed25519(k) => {
                let hash = ring::digest::digest(&ring::digest::SHA256, data);
                Ok(k.sign(hash.as_ref()).as_ref().to_vec())
            }
        }
    }
}

/// A new private key as PEM (PKCS#8).  RSA keys come from the `rsa` crate
/// (ring cannot make them); ring signs with both.
pub fn generate(alg: Algorithm, bits: usize) -> Result<String, String> {
    let der = match alg {
        Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| "no random numbers".to_string())?
            .as_ref()
            .to_vec(),
        Algorithm::Rsa => {
            use rsa::pkcs8::EncodePrivateKey;
            if !RSA_BITS.contains(&bits) {
                return Err(format!(
                    "RSA keys have {} to {} bits",
                    RSA_BITS.start(),
                    RSA_BITS.end()
                ));
            }
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
                .map_err(|e| format!("RSA key generation failed: {e}"))?;
            key.to_pkcs8_der()
                .map_err(|e| format!("RSA key encoding failed: {e}"))?
                .as_bytes()
                .to_vec()
        }
    };
    Ok(pem_encode("PRIVATE KEY", &der))
}

/// The DNS record in zone-file form, cut into strings of at most 255
/// characters (one TXT string's limit).
pub fn zone_entry(selector: &str, domain: &str, record: &str) -> String {
    let parts: Vec<String> = record
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )",
        parts.join("\n\t")
    )
}

/// A domain name as DKIM's `d=` (letters, digits, hyphens; at least two
/// labels).
pub fn valid_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A selector: one or more DNS labels.
pub fn valid_selector(s: &str) -> bool {
    valid_domain(&format!("{s}.x"))
}

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

/// Header block (with its final LF) and body of an LF (or CRLF) message.
fn split(msg: &[u8]) -> (&[u8], &[u8]) {
    let mut at = 0;
    for line in msg.split_inclusive(|&b| b == b'\n') {
        if line == b"\n" || line == b"\r\n" {
            return (&msg[..at], &msg[at + line.len()..]);
        }
        at += line.len();
    }
    (msg, &msg[msg.len()..])
}

/// `message` with one `DKIM-Signature:` field per key added at the top.
/// 8-bit bodies are converted to quoted-printable first (see the module
/// text), so the result is what must be sent.
pub fn sign_message(
    message: &[u8],
    domain: &str,
    keys: &[Key],
    now: i64,
) -> Result<Vec<u8>, String> {
    let converted;
    let message = if crate::smtp::data::has_8bit(split(message).1) {
        converted = crate::smtp::data::to_7bit(message);
        &converted[..]
    } else {
        message
    };
    let (header, body) = split(message);
    let fields = crate::message::Header::parse(header).fields;
    let bh = crate::b64::encode(
        ring::digest::digest(&ring::digest::SHA256, &relaxed_body(body)).as_ref(),
    );
    let mut names: Vec<&str> = Vec::new();
    for want in SIGNED_FIELDS {
        let n = fields.iter().filter(|f| f.is(want)).count();
        let n = if *want == "From" { n + 1 } else { n };
        names.extend(std::iter::repeat_n(*want, n));
    }
    let mut out = Vec::with_capacity(message.len() + 1024 * keys.len());
    for key in keys {
        let unsigned = signature_field(key, domain, now, &names, &bh);
        let mut data = header_hash_input(&fields, &names);
        data.extend_from_slice(&relaxed_header(unsigned.as_bytes()));
        let b = crate::b64::encode(&key.sign(&data)?);
        out.extend_from_slice(unsigned.as_bytes());
        out.extend_from_slice(fold_b64(&b).as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(message);
    Ok(out)
}

/// The signature field up to and including the empty `b=`, folded below
/// 78 columns.
fn signature_field(key: &Key, domain: &str, now: i64, names: &[&str], bh: &str) -> String {
    let mut s = format!(
        "DKIM-Signature: v=1; a={}; c=relaxed/relaxed; d={domain};\n\ts={}; t={now};\n\th=",
        key.algorithm().tag(),
        key.selector
    );
    let mut col = 3;
    for (i, n) in names.iter().enumerate() {
        let piece = if i + 1 < names.len() {
            format!("{n}:")
        } else {
            format!("{n};")
        };
        if col + piece.len() > 76 {
            s.push_str("\n\t ");
            col = 2;
        }
        s.push_str(&piece);
        col += piece.len();
    }
    s.push_str(&format!("\n\tbh={bh};\n\tb="));
    s
}

/// The b= value folded into lines of 72 characters.
fn fold_b64(b: &str) -> String {
    b.as_bytes()
        .chunks(72)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n\t ")
}

/// The canonical fields named in `h=`, each name taking the next instance
/// from the bottom (RFC 6376 §5.4.2); names with no instance left add
/// nothing.
fn header_hash_input(fields: &[crate::message::Field], names: &[&str]) -> Vec<u8> {
    let mut used = vec![false; fields.len()];
    let mut out = Vec::new();
    for n in names {
        if let Some(i) = (0..fields.len())
            .rev()
            .find(|&i| !used[i] && fields[i].is(n))
        {
            used[i] = true;
            out.extend_from_slice(&relaxed_header(&fields[i].raw));
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Relaxed header canonicalization (RFC 6376 §3.4.2) of one field, raw
/// with its line ends, giving `name:value` without the final CRLF.
pub fn relaxed_header(raw: &[u8]) -> Vec<u8> {
    let colon = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
    let name = &raw[..colon];
    let name_end = name.iter().rposition(|&b| !is_wsp(b)).map_or(0, |i| i + 1);
    let mut out: Vec<u8> = name[..name_end].to_ascii_lowercase();
    out.push(b':');
    // Unfold: line breaks go (each line loses the CR the wire would drop).
    let mut value = Vec::with_capacity(raw.len());
    for line in raw[(colon + 1).min(raw.len())..].split(|&b| b == b'\n') {
        value.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    let mut v = Vec::with_capacity(value.len());
    let mut space = false;
    for &b in &value {
        if is_wsp(b) {
            space = true;
        } else {
            if space && !v.is_empty() {
                v.push(b' ');
            }
            space = false;
            v.push(b);
        }
    }
    out.extend_from_slice(&v);
    out
}

/// Relaxed body canonicalization (RFC 6376 §3.4.4) of a body with LF or
/// CRLF line ends, as the wire carries it.
pub fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut l = Vec::with_capacity(line.len());
        let mut space = false;
        for &b in line {
            if is_wsp(b) {
                space = true;
            } else {
                if space {
                    l.push(b' ');
                }
                space = false;
                l.push(b);
            }
        }
        lines.push(l);
        rest = next;
    }
    while lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    let mut out = Vec::with_capacity(body.len());
    for l in lines {
        out.extend_from_slice(&l);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// RSAPublicKey (PKCS#1) wrapped as SubjectPublicKeyInfo.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    const ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let bit_string = der(0x03, &bits);
    let mut inner = ALG.to_vec();
    inner.extend_from_slice(&bit_string);
    der(0x30, &inner)
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b = crate::b64::encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for c in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(c));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The label and bytes of the first PEM block.
fn pem_decode(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end = body.find(&format!("-----END {label}-----"))?;
    let b64: String = body[..end].split_whitespace().collect();
    Some((label, crate::b64::decode(&b64)?))
}

/// Check the DKIM signatures of `message` made the way [`sign_message`]
/// makes them (relaxed/relaxed, no `l=`), with `record(selector, domain)`
/// giving the TXT record; one result per signature, top first.  Used by
/// the tests (the compat suite checks with independent verifiers).
pub fn verify(
    message: &[u8],
    record: &dyn Fn(&str, &str) -> Option<String>,
) -> Vec<Result<String, String>> {
    let (header, body) = split(message);
    let fields = crate::message::Header::parse(header).fields;
    fields
        .iter()
        .filter(|f| f.is("DKIM-Signature"))
        .map(|sig| verify_one(sig, &fields, body, record))
        .collect()
}

fn verify_one(
    sig: &crate::message::Field,
    fields: &[crate::message::Field],
    body: &[u8],
    record: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<String, String> {
    let value = String::from_utf8_lossy(sig.raw_value()).into_owned();
    let tags = tag_list(&value);
    let tag = |t: &str| tags.get(t).cloned().ok_or(format!("no {t}= tag"));
    let (d, s, a) = (tag("d")?, tag("s")?, tag("a")?);
    if tag("c")? != "relaxed/relaxed" || tags.contains_key("l") {
        return Err("not relaxed/relaxed without l=".into());
    }
    let bh = crate::b64::encode(
        ring::digest::digest(&ring::digest::SHA256, &relaxed_body(body)).as_ref(),
    );
    if bh != tag("bh")? {
        return Err("body hash mismatch".into());
    }
    let names: Vec<String> = tag("h")?.split(':').map(|n| n.trim().to_string()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut data = header_hash_input(fields, &refs);
    // The signature field itself with the b= value removed.
    let raw = String::from_utf8_lossy(&sig.raw).into_owned();
    let b_at = find_b_tag(&raw).ok_or("no b= tag")?;
    let b_end = raw[b_at..].find(';').map_or(raw.len(), |i| b_at + i);
    let stripped = format!("{}{}", &raw[..b_at + 2], &raw[b_end..]);
    data.extend_from_slice(&relaxed_header(stripped.trim_end_matches('\n').as_bytes()));
    let rec = record(&s, &d).ok_or(format!("no key record {s}._domainkey.{d}"))?;
    let rtags = tag_list(&rec);
    let p = crate::b64::decode(rtags.get("p").ok_or("no p= in the key record")?)
        .ok_or("bad p= in the key record")?;
    let sigbytes = crate::b64::decode(&tag("b")?).ok_or("bad b=")?;
    let ok = match a.as_str() {
        "rsa-sha256" => {
            // p= is SubjectPublicKeyInfo; ring wants the RSAPublicKey in it.
            let pkcs1 = spki_inner(&p).ok_or("bad RSA key record")?;
            signature::UnparsedPublicKey::new(
                &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                pkcs1,
            )
            .verify(&data, &sigbytes)
            .is_ok()
        }
        "ed25519-sha256" => {
            let hash = ring::digest::digest(&ring::digest::SHA256, &data);
            signature::UnparsedPublicKey::new(&signature::ED25519, &p)
                .verify(hash.as_ref(), &sigbytes)
                .is_ok()
        }
        other => return Err(format!("unknown algorithm {other}")),
    };
    if ok {
        Ok(format!("{a} d={d} s={s}"))
    } else {
        Err(format!("{a} d={d} s={s}: bad signature"))
    }
}

/// Where the `b=` tag (not `bh=`) starts in a signature field.
fn find_b_tag(raw: &str) -> Option<usize> {
    let colon = raw.find(':')?;
    let mut at = colon + 1;
    for part in raw[colon + 1..].split(';') {
        let lead = part.len() - part.trim_start().len();
        if part.trim_start().starts_with("b=") {
            return Some(at + lead);
        }
        at += part.len() + 1;
    }
    None
}

fn tag_list(value: &str) -> HashMap<String, String> {
    value
        .split(';')
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            let k = k.trim();
            // Folding white space means nothing inside these values.
            let sep = if matches!(k, "h" | "b" | "bh" | "p") {
                ""
            } else {
                " "
            };
            let v = v.split_whitespace().collect::<Vec<_>>().join(sep);
            Some((k.to_string(), v))
        })
        .collect()
}

/// The BIT STRING content of a SubjectPublicKeyInfo (skipping its unused
/// bits byte).
fn spki_inner(spki: &[u8]) -> Option<&[u8]> {
    fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
        let tag = *b.first()?;
        let l0 = *b.get(1)? as usize;
        if l0 < 0x80 {
            return Some((tag, 2, l0));
        }
        let n = l0 & 0x7f;
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        Some((tag, 2 + n, len))
    }
    let (_, h, _) = header(spki)?; // outer SEQUENCE
    let inner = &spki[h..];
    let (_, ah, alen) = header(inner)?; // AlgorithmIdentifier
    let rest = inner.get(ah + alen..)?;
    let (tag, bh, blen) = header(rest)?;
    if tag != 0x03 {
        return None;
    }
    rest.get(bh + 1..bh + blen)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8463 Appendix A.3, byte for byte.
    const RFC8463: &str = concat!(
        "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n",
        " d=football.example.com; i=@football.example.com;\r\n",
        " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n",
        " subject : date : message-id : from : subject : date;\r\n",
        " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n",
        " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n",
        " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n",
        " d=football.example.com; i=@football.example.com;\r\n",
        " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n",
        " date : message-id : from : subject : date;\r\n",
        " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n",
        " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n",
        " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n",
        " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n",
        "From: Joe SixPack <joe@football.example.com>\r\n",
        "To: Suzie Q <suzie@shopping.example.net>\r\n",
        "Subject: Is dinner ready?\r\n",
        "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n",
        "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n",
        "\r\n",
        "Hi.\r\n",
        "\r\n",
        "We lost the game.  Are you hungry yet?\r\n",
        "\r\n",
        "Joe.\r\n",
    );

    /// RFC 8463 Appendix A.2's key records.
    fn rfc_record(s: &str, d: &str) -> Option<String> {
        assert_eq!(d, "football.example.com");
        match s {
            "brisbane" => Some("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".into()),
            "test" => Some(concat!(
                "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3id",
                "Y6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lx",
                "j+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"
            ).into()),
            _ => None,
        }
    }

    /// RFC 8463 Appendix A.1's Ed25519 secret key.
    fn rfc_ed25519() -> Key {
        let seed = crate::b64::decode("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=").unwrap();
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        Key {
            selector: "brisbane".into(),
            pair: Pair::Ed25519(pair),
        }
    }

    #[test]
    fn rfc8463_body_hash_and_both_signatures_verify() {
        let (_, body) = split(RFC8463.as_bytes());
        assert_eq!(
            crate::b64::encode(
                ring::digest::digest(&ring::digest::SHA256, &relaxed_body(body)).as_ref()
            ),
            "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
        );
        // Our canonicalization and header selection reproduce the data both
        // published signatures (RSA and Ed25519) were made over.
        let results = verify(RFC8463.as_bytes(), &rfc_record);
        assert_eq!(
            results,
            vec![
                Ok("ed25519-sha256 d=football.example.com s=brisbane".to_string()),
                Ok("rsa-sha256 d=football.example.com s=test".to_string()),
            ]
        );
        let tampered = RFC8463.replace("hungry", "hangry");
        assert!(
            verify(tampered.as_bytes(), &rfc_record)
                .iter()
                .all(Result::is_err)
        );
    }

    #[test]
    fn rfc8463_ed25519_signature_reproduced_exactly() {
        let key = rfc_ed25519();
        assert_eq!(
            key.dns_record(),
            "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
        let (header, _) = split(RFC8463.as_bytes());
        let fields = crate::message::Header::parse(header).fields;
        let names = [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "from",
            "subject",
            "date",
        ];
        let mut data = header_hash_input(&fields, &names);
        let sig = String::from_utf8(fields[0].raw.clone()).unwrap();
        let unsigned = &sig[..sig.find(" b=").unwrap() + 3];
        data.extend_from_slice(&relaxed_header(unsigned.as_bytes()));
        assert_eq!(
            crate::b64::encode(&key.sign(&data).unwrap()),
            "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw=="
        );
    }

    #[test]
    fn rfc6376_canonicalization_example() {
        // RFC 6376 §3.4.6.
        assert_eq!(relaxed_header(b"A: X\r\n"), b"a:X");
        assert_eq!(relaxed_header(b"B : Y\t\r\n\tZ  \r\n"), b"b:Y Z");
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        // LF line ends (the queue's) canonicalize as the wire's CRLF would.
        assert_eq!(relaxed_body(b" C \nD \t E\n\n\n"), b" C\r\nD E\r\n");
        // A last line without a line end gets one; an empty body is empty.
        assert_eq!(relaxed_body(b"x"), b"x\r\n");
        assert_eq!(relaxed_body(b"\n\n"), b"");
    }

    fn sample() -> &'static [u8] {
        b"Received: from x\n\tby y\nFrom: Shop <orders@shop.example>\nTo: a@example.com,\n  b@example.net\nCc: c@example.org\nBcc: hidden@example.org\nSubject: Your   order\nDate: Sat, 21 Nov 2026 10:00:00 +0000\nMessage-ID: <1@shop.example>\nX-Mailer: PHP\n\nThanks.\n\n"
    }

    #[test]
    fn signs_present_fields_oversigns_from_and_verifies() {
        let key = rfc_ed25519();
        let record = key.dns_record();
        let signed = sign_message(sample(), "shop.example", &[key], 1_800_000_000).unwrap();
        let text = String::from_utf8(signed.clone()).unwrap();
        assert!(text.starts_with("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=shop.example;\n\ts=brisbane; t=1800000000;\n\th=From:From:Subject:Date:To:Cc:Message-ID;\n\tbh="), "{text}");
        assert!(text.ends_with("\n\nThanks.\n\n"));
        assert!(text.lines().all(|l| l.len() <= 78), "{text}");
        let lookup =
            |s: &str, d: &str| (s == "brisbane" && d == "shop.example").then(|| record.clone());
        assert_eq!(
            verify(&signed, &lookup),
            vec![Ok("ed25519-sha256 d=shop.example s=brisbane".to_string())]
        );
        // Each kind of tampering breaks it: body, a signed header, a second
        // From: added on top, white space changes do not.
        for (from, to) in [
            ("Thanks.", "Thanks!"),
            ("Your   order", "Your refund"),
            (
                "Received: from x",
                "From: evil@example.com\nReceived: from x",
            ),
        ] {
            let bad = text.replacen(from, to, 1);
            assert!(
                verify(bad.as_bytes(), &lookup)[0].is_err(),
                "{from} -> {to}"
            );
        }
        let spaced = text
            .replace("Thanks.\n", "Thanks.  \r\n")
            .replace("X-Mailer: PHP", "X-Mailer: other");
        assert!(verify(spaced.as_bytes(), &lookup)[0].is_ok());
    }

    #[test]
    fn eight_bit_bodies_are_signed_as_quoted_printable() {
        let msg = "From: a@shop.example\nSubject: s\n\ncaf\u{e9}\n".as_bytes();
        let key = rfc_ed25519();
        let record = key.dns_record();
        let signed = sign_message(msg, "shop.example", &[key], 1).unwrap();
        let text = String::from_utf8(signed.clone()).unwrap();
        assert!(
            text.ends_with("Content-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9\n"),
            "{text}"
        );
        // What the SMTP client would do to it for a 7-bit server changes nothing.
        assert_eq!(crate::smtp::data::to_7bit(&signed), signed);
        let lookup = |_: &str, _: &str| Some(record.clone());
        assert!(verify(&signed, &lookup)[0].is_ok());
    }

    #[test]
    fn pem_keys_and_records() {
        let pem = generate(Algorithm::Ed25519, 0).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let key = Key::from_pem("s1", &pem).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519);
        assert_eq!(key.public_key().len(), 32);
        assert!(
            Key::from_pem(
                "s",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            )
            .is_err()
        );
        assert!(Key::from_pem("s", "garbage").is_err());
        assert!(generate(Algorithm::Rsa, 1024).is_err());
        // The RFC's RSA record: our SPKI wrapping of its RSAPublicKey is
        // the record's p= itself.
        let rec = rfc_record("test", "football.example.com").unwrap();
        let p = crate::b64::decode(&tag_list(&rec)["p"]).unwrap();
        assert_eq!(rsa_spki(spki_inner(&p).unwrap()), p);
        // Long records are cut into 255-character strings.
        let long = "x".repeat(600);
        let z = zone_entry("sel", "shop.example", &long);
        assert!(z.starts_with("sel._domainkey.shop.example. IN TXT ( \""));
        let strings: Vec<&str> = z.split('"').skip(1).step_by(2).collect();
        assert_eq!(
            strings.iter().map(|s| s.len()).collect::<Vec<_>>(),
            vec![255, 255, 90]
        );
    }

    #[test]
    fn rsa_key_generated_signs_and_verifies_with_ed25519_beside_it() {
        let rsa = Key::from_pem("r", &generate(Algorithm::Rsa, 2048).unwrap()).unwrap();
        assert_eq!((rsa.algorithm(), rsa.bits()), (Algorithm::Rsa, 2048));
        let records = [
            ("r", rsa.dns_record()),
            ("brisbane", rfc_ed25519().dns_record()),
        ];
        assert!(
            records[0]
                .1
                .starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A")
        );
        let signed = sign_message(sample(), "shop.example", &[rsa, rfc_ed25519()], 5).unwrap();
        let lookup = |s: &str, _: &str| records.iter().find(|r| r.0 == s).map(|r| r.1.clone());
        assert_eq!(
            verify(&signed, &lookup),
            vec![
                Ok("rsa-sha256 d=shop.example s=r".to_string()),
                Ok("ed25519-sha256 d=shop.example s=brisbane".to_string())
            ]
        );
    }

    #[test]
    fn pkcs1_rsa_keys_as_opendkim_writes_them_load() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::EncodePublicKey;
        let k = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let pem = pem_encode("RSA PRIVATE KEY", k.to_pkcs1_der().unwrap().as_bytes());
        let key = Key::from_pem("legacy", &pem).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Rsa);
        // Our SPKI wrapping equals the rsa crate's encoding of the key.
        let spki = k.to_public_key().to_public_key_der().unwrap();
        assert_eq!(key.public_key(), spki.as_bytes());
    }

    #[test]
    fn domain_and_selector_names() {
        assert!(valid_domain("shop.example"));
        assert!(valid_domain("mail-1.shop.example"));
        for bad in [
            "shop",
            "-a.example",
            "a..b",
            "a b.example",
            "../etc",
            "a_b.example",
            "",
        ] {
            assert!(!valid_domain(bad), "{bad}");
        }
        assert!(valid_selector("202611"));
        assert!(valid_selector("mail.rsa"));
        assert!(!valid_selector("a/b"));
    }
}
