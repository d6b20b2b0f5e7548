//! A DKIM verifier for the tests: it checks the signatures [`super::sign`]
//! makes (relaxed/relaxed, no `l=`) and RFC 8463's published examples,
//! with the key records given by the caller.  Not part of the product:
//! compiled for unit tests and, through the `dkim-test-verifier` feature
//! that `cargo test` turns on, for the integration tests; the compat suite
//! checks signatures with independent verifiers.

use std::collections::HashMap;

use ring::signature;

use super::canon::{header_hash_input, relaxed_body, relaxed_header, split};

/// Check the DKIM signatures of `message` made the way
/// [`super::sign_message`] makes them (relaxed/relaxed, no `l=`), with
/// `record(selector, domain)` giving the TXT record; one result per
/// signature, top first.
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

pub(super) fn tag_list(value: &str) -> HashMap<String, String> {
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
pub(super) fn spki_inner(spki: &[u8]) -> Option<&[u8]> {
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
    use super::super::test_vectors::*;
    use super::*;

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
}
