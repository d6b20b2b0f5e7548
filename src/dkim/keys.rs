//! One DKIM private key: the PEM encodings read and written, its
//! algorithm, and the DNS record that publishes its public half.
//!
//! Keys are read as PKCS#8 (`BEGIN PRIVATE KEY`, RSA or Ed25519: what
//! `mailroom dkim generate` and today's `opendkim-genkey` write) or
//! PKCS#1 (`BEGIN RSA PRIVATE KEY`, older OpenSSL's), so an OpenDKIM key
//! is copied in as it is; the key gives the algorithm.  `generate` writes
//! PKCS#8.  The record's `p=` is SubjectPublicKeyInfo for RSA (what every
//! verifier reads), the raw 32 bytes for Ed25519 (RFC 8463 §4.2).

use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair, RsaKeyPair};

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
    pub(super) fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
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

#[cfg(test)]
impl Key {
    /// An Ed25519 key from its 32-byte seed (how RFC 8463 gives its key).
    pub(super) fn ed25519_from_seed(selector: &str, seed: &[u8]) -> Key {
        Key {
            selector: selector.to_string(),
            pair: Pair::Ed25519(Ed25519KeyPair::from_seed_unchecked(seed).unwrap()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_vectors::rfc_record;
    use super::super::verify::{spki_inner, tag_list};
    use super::*;

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
